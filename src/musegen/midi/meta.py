"""Meta events of the MIDI files musegen writes: tempo, meter and key at the start, and a text line.

A DAW that imports a result's ``.mid`` takes its tempo, time signature and
key signature from the conductor track, and shows a text event (``FF 01``) in
its event list or file info; musegen writes its provenance line there (what
made the file, under which licence).  symusic keeps no text events, so the
line is put into the encoded bytes (:func:`with_text_event`).
"""

from __future__ import annotations

import struct

from symusic import KeySignature, Score, Tempo, TimeSignature

from musegen.errors import ParameterError

__all__ = ["TEXT_EVENT", "fill_signatures", "with_text_event"]

#: meta event types: text, copyright notice
TEXT_EVENT = 0x01
COPYRIGHT_EVENT = 0x02
_CHUNK = struct.Struct(">4sI")


def fill_signatures(score: Score, *, tempo_bpm: float, meter: tuple[int, int],
                    key_signature: tuple[int, int] | None) -> list[str]:
    """Give ``score`` a tempo, time signature and key signature at tick 0 where it has none.

    Events the score has (a sketch's own, an engine's) are kept as they are.

    Parameters
    ----------
    tempo_bpm : float
        Quarter notes per minute.
    meter : (int, int)
        Numerator and denominator.
    key_signature : (int, int) or None
        ``(sharps, tonality)``: sharps -7..7 (flats negative), tonality 0 major, 1 minor;
        None: no key signature is added.

    Returns
    -------
    list of str
        What was added: ``"tempo"``, ``"time_signature"``, ``"key_signature"``.
    """
    added = []
    if len(score.tempos) == 0:
        score.tempos.append(Tempo(0, float(tempo_bpm)))
        added.append("tempo")
    if len(score.time_signatures) == 0:
        score.time_signatures.append(TimeSignature(0, int(meter[0]), int(meter[1])))
        added.append("time_signature")
    if len(score.key_signatures) == 0 and key_signature is not None:
        sharps, tonality = (int(x) for x in key_signature)
        if not (-7 <= sharps <= 7 and tonality in (0, 1)):
            raise ParameterError(f"key signature must be (sharps -7..7, tonality 0 or 1), got {key_signature!r}")
        score.key_signatures.append(KeySignature(0, sharps, tonality))
        added.append("key_signature")
    return added


def vlq(value: int) -> bytes:
    """A Standard MIDI File variable-length quantity (7 bits a byte, high bit: more follow)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def with_text_event(data: bytes, text: str, *, kind: int = TEXT_EVENT) -> bytes:
    """``data`` (a Standard MIDI File) with a meta event holding ``text`` at tick 0 of its first track.

    The event (UTF-8 text) comes first in the first track (the conductor track of a
    type-1 file), where the SMF specification wants a copyright notice and where DAWs
    look for the file's text.

    Raises
    ------
    ParameterError
        ``data`` is not a Standard MIDI File with a track, or ``kind`` is not 0x01-0x0F.
    """
    if not 0x01 <= kind <= 0x0F:
        raise ParameterError(f"text meta event type must be 0x01-0x0F, got {kind:#x}")
    if len(data) < 14 or data[:4] != b"MThd":
        raise ParameterError("not a Standard MIDI File (no MThd header)")
    pos = 8 + _CHUNK.unpack_from(data, 0)[1]
    while pos + 8 <= len(data):
        ckid, size = _CHUNK.unpack_from(data, pos)
        if ckid == b"MTrk":
            payload = str(text).encode("utf-8")
            event = b"\x00\xff" + bytes([kind]) + vlq(len(payload)) + payload
            head = _CHUNK.pack(b"MTrk", size + len(event))
            return data[:pos] + head + event + data[pos + 8:]
        pos += 8 + size
    raise ParameterError("the MIDI data has no track to hold a text event")


def leading_texts(data: bytes) -> list[str]:
    """The text meta events (``FF 01``) at tick 0 at the start of the first track of a MIDI file.

    Where :func:`with_text_event` puts musegen's provenance line; anything that does not
    parse ends the search (an empty list, never an error).
    """
    try:
        if data[:4] != b"MThd":
            return []
        pos = 8 + _CHUNK.unpack_from(data, 0)[1]
        while pos + 8 <= len(data):
            ckid, size = _CHUNK.unpack_from(data, pos)
            if ckid == b"MTrk":
                break
            pos += 8 + size
        else:
            return []
        end, pos = min(len(data), pos + 8 + size), pos + 8
        texts = []
        while pos + 3 <= end and data[pos] == 0 and data[pos + 1] == 0xFF:  # delta 0, a meta event
            kind, pos = data[pos + 2], pos + 3
            length = 0
            while pos < end:
                byte = data[pos]
                pos += 1
                length = (length << 7) | (byte & 0x7F)
                if not byte & 0x80:
                    break
            if kind == TEXT_EVENT:
                texts.append(data[pos: pos + length].decode("utf-8", "replace"))
            pos += length
        return texts
    except (struct.error, IndexError):
        return []
