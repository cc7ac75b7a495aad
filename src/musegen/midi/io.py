"""Read and write Standard MIDI Files as :class:`symusic.Score` objects (ticks).

Loading checks the header and every event itself and hands symusic a
canonical copy of the file (see :func:`_canonical_track`), so that every
unusable file ends in a :class:`~musegen.errors.MidiError` that names the file
and the problem, never in a parser traceback, and symusic never reads a byte
from outside the event it belongs to. Saving is atomic: a half-written file
never replaces a good one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from pathlib import Path

import numpy as np
from symusic import Note, Score, TimeUnit

from musegen import limits
from musegen.atomic import atomic_write_bytes
from musegen.errors import MidiError, OutputError, ParameterError
from musegen.midi.meta import vlq

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_NOTES",
    "DEFAULT_MAX_TRACKS",
    "load_midi",
    "load_midi_bytes",
    "save_midi",
    "score_digest",
]

#: Defaults of the limits (see :mod:`musegen.limits`; ``MUSEGEN_MAX_MIDI_*`` override them).
DEFAULT_MAX_BYTES = limits.LIMITS["midi_bytes"].default
DEFAULT_MAX_TRACKS = limits.LIMITS["midi_tracks"].default
DEFAULT_MAX_NOTES = limits.LIMITS["midi_notes"].default

_HEADER = struct.Struct(">4sIHHH")  # 'MThd', length, format, ntrks, division
_CHUNK = struct.Struct(">4sI")

log = logging.getLogger(__name__)


def load_midi(
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    max_tracks: int | None = None,
    max_notes: int | None = None,
) -> Score:
    """Read a type-0 or type-1 Standard MIDI File.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mid`` file.
    max_bytes : int, optional
        Largest file accepted, in bytes (default: the ``midi_bytes`` limit,
        16 MiB unless ``MUSEGEN_MAX_MIDI_BYTES`` says otherwise). Checked
        before the file is read.
    max_tracks : int, optional
        Most tracks accepted, counted both in the header and after symusic has
        split type-0 channels into tracks (default: the ``midi_tracks`` limit, 256).
    max_notes : int, optional
        Most notes accepted over all tracks (default: the ``midi_notes`` limit, 1,000,000).

    Returns
    -------
    symusic.Score
        The score in ticks (``score.ticks_per_quarter`` per quarter note).
        symusic drops tracks that hold no notes and splits a type-0 file into
        one track per channel/program.

    Raises
    ------
    MidiError
        If the file is missing, is not MIDI, is truncated or corrupt, is a
        type-2 file, uses SMPTE time division, holds no notes, or exceeds a
        limit. The message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise MidiError(f"{path}: no such MIDI file")
    if not path.is_file():
        raise MidiError(f"{path}: not a regular file")
    size_bound = _limits(max_bytes, max_tracks, max_notes)[0]
    size = path.stat().st_size
    if size > size_bound.value:
        raise size_bound.error(path, f"file is {size} bytes")
    try:
        with open(path, "rb") as handle:  # never more than the limit, even if the file grew
            data = limits.read_bounded(handle, size_bound.value)
    except OSError as exc:
        raise MidiError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    return load_midi_bytes(
        data, name=str(path), max_bytes=max_bytes, max_tracks=max_tracks, max_notes=max_notes
    )


def load_midi_bytes(
    data: bytes,
    *,
    name: str = "<midi bytes>",
    max_bytes: int | None = None,
    max_tracks: int | None = None,
    max_notes: int | None = None,
) -> Score:
    """Parse the bytes of a Standard MIDI File; see :func:`load_midi`.

    Parameters
    ----------
    data : bytes
        The file's content. A RIFF ``RMID`` wrapper is unwrapped.
    name : str
        What error messages call the data (a path or a URL).
    max_bytes, max_tracks, max_notes : int, optional
        Limits, as in :func:`load_midi`.

    Returns
    -------
    symusic.Score
        The score in ticks.

    Raises
    ------
    MidiError
        If the data is unusable; the message starts with ``name``.
    """
    max_bytes, max_tracks, max_notes = _limits(max_bytes, max_tracks, max_notes)
    data = bytes(data)
    if len(data) > max_bytes.value:
        raise max_bytes.error(name, f"data is {len(data)} bytes")
    data = _unwrap_rmid(data)
    ignored: list[str] = []
    data = _check_header(data, name, max_tracks, ignored)
    try:
        score = Score.from_midi(data)
    except Exception as exc:  # noqa: BLE001 - pybind maps any C++ error; all mean "corrupt"
        raise MidiError(f"{name}: corrupt or truncated MIDI data ({_parser_message(exc)})") from exc

    if len(score.tracks) > max_tracks.value:
        raise max_tracks.error(name, f"{len(score.tracks)} tracks after splitting channels")
    n_notes = score.note_num()
    if len(score.tracks) == 0 or n_notes == 0:
        raise MidiError(f"{name}: holds no notes")
    if n_notes > max_notes.value:
        raise max_notes.error(name, f"{n_notes} notes")
    _check_events(score, name)
    if ignored:  # said once the file is known to load, so a refused file gets one line, its error
        shown = "; ".join(ignored[:3]) + (f"; and {len(ignored) - 3} more" if len(ignored) > 3 else "")
        log.warning("musegen: note: %s: ignored %d meta event%s shorter than %s type requires (%s)",
                    name, len(ignored), "s" if len(ignored) > 1 else "",
                    "their" if len(ignored) > 1 else "its", shown)
    return score


def _check_events(score: Score, name: str) -> None:
    """Refuse notes outside 0-127; lengthen zero-length notes; drop meta events no player can honour.

    :func:`_canonical_track` already refuses data bytes over 127, which symusic
    would store as negative pitches and velocities in its int8 fields; this
    checks the parsed notes once more, so nothing downstream ever indexes a
    128-entry table with one.  A note-on and its note-off at the same tick
    give a note of no length, which weighs nothing where notes are weighed
    by duration (a sketch of only such notes divided by zero); it becomes one
    tick long, the shortest note a file can hold.  A tempo of 0 microseconds
    per quarter (an infinite tempo) and time signatures with a zero numerator
    or a denominator that is not a power of two up to 64 are corrupt too, but
    MIDI says what holds without them (the previous or the default tempo and
    meter), so they are dropped rather than failing the file.
    """
    for index, track in enumerate(score.tracks, 1):
        notes = track.notes.numpy()
        for field in ("pitch", "velocity"):
            values = notes[field]
            if values.size and (int(values.min()) < 0 or int(values.max()) > 127):
                raise MidiError(
                    f"{name}: corrupt MIDI data: track {index} has a note {field} outside 0-127 "
                    "(a data byte over 127)"
                )
        if notes["duration"].size and int(notes["duration"].min()) < 1:
            track.notes = Note.from_numpy(
                time=notes["time"], duration=np.maximum(notes["duration"], 1),
                pitch=notes["pitch"], velocity=notes["velocity"],
            )
    score.tempos.filter(lambda t: t.mspq > 0, inplace=True)
    score.time_signatures.filter(
        lambda t: t.numerator >= 1 and t.denominator in (1, 2, 4, 8, 16, 32, 64), inplace=True
    )


class _Bound:
    """A limit in force for one load: the caller's ``max_*`` argument or the configured limit."""

    def __init__(self, param: str, limit_name: str, value: int | None):
        self.param, self.limit_name, self.explicit = param, limit_name, value is not None
        if value is None:
            value = limits.get(limit_name)
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{param} must be a positive integer, got {value!r}")
        self.value = value

    def error(self, name: object, what: str) -> MidiError:
        if self.explicit:  # the caller chose it: name the argument, not the environment
            return MidiError(f"{name}: {what}, over the limit of {self.value} ({self.param})")
        return MidiError(f"{name}: {limits.message(self.limit_name, what, self.value)}")


def _limits(max_bytes, max_tracks, max_notes) -> tuple[_Bound, _Bound, _Bound]:
    return (_Bound("max_bytes", "midi_bytes", max_bytes), _Bound("max_tracks", "midi_tracks", max_tracks),
            _Bound("max_notes", "midi_notes", max_notes))


def _unwrap_rmid(data: bytes) -> bytes:
    """Return the SMF inside a RIFF 'RMID' file, or ``data`` unchanged."""
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"RMID":
        return data
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if chunk_id == b"data":
            return data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)
    return data


def _check_header(data: bytes, name: str, max_tracks: _Bound, ignored: list[str]) -> bytes:
    """Validate the header and chunk layout; return canonical bytes symusic can parse.

    symusic accepts some broken files silently (division 0, type 2, fewer
    track chunks than announced) and rejects a legal header longer than six
    bytes, so the checks happen here; each track is then rewritten by
    :func:`_canonical_track`, so that symusic only ever sees a six-byte
    header followed by exactly the announced ``MTrk`` chunks in canonical form.
    What was left out as unreadable is described in ``ignored``.
    """
    if not data:
        raise MidiError(f"{name}: empty file, not a MIDI file")
    if len(data) < 4 or data[:4] != b"MThd":
        raise MidiError(f"{name}: not a MIDI file (no 'MThd' header)")
    if len(data) < _HEADER.size:
        raise MidiError(f"{name}: truncated MIDI header ({len(data)} bytes)")
    _, header_len, fmt, n_tracks, division = _HEADER.unpack_from(data)
    if header_len < 6:
        raise MidiError(f"{name}: corrupt MIDI header (length {header_len}, expected 6)")
    if fmt == 2:
        raise MidiError(f"{name}: type-2 MIDI (independent sequences) is not supported")
    if fmt not in (0, 1):
        raise MidiError(f"{name}: unknown MIDI format {fmt} (expected 0 or 1)")
    if division & 0x8000:
        raise MidiError(
            f"{name}: uses SMPTE time division, which is not supported "
            "(re-save it with ticks per quarter note)"
        )
    if division == 0:
        raise MidiError(f"{name}: corrupt MIDI header (0 ticks per quarter note)")
    if n_tracks == 0:
        raise MidiError(f"{name}: holds no tracks")
    if n_tracks > max_tracks.value:
        raise max_tracks.error(name, f"header announces {n_tracks} tracks")

    out = [data[:8 + 6] if header_len == 6 else data[:4] + struct.pack(">I", 6) + data[8:14]]
    pos = 8 + header_len
    found = 0
    while found < n_tracks:
        if pos + _CHUNK.size > len(data):
            raise MidiError(
                f"{name}: truncated MIDI file (header announces {n_tracks} tracks, found {found})"
            )
        chunk_id, length = _CHUNK.unpack_from(data, pos)
        if pos + _CHUNK.size + length > len(data):
            raise MidiError(
                f"{name}: truncated MIDI file (track chunk {found + 1} claims {length} bytes, "
                f"{len(data) - pos - _CHUNK.size} remain)"
            )
        if chunk_id == b"MTrk":  # other chunk types are for other programs: left out
            found += 1
            dropped: list[str] = []
            try:
                body = _canonical_track(data, pos + _CHUNK.size, pos + _CHUNK.size + length, dropped)
            except _TrackProblem as exc:
                raise MidiError(f"{name}: corrupt or truncated MIDI data in track {found}: {exc}") from None
            ignored += [f"{what} in track {found}" for what in dropped]
            out.append(_CHUNK.pack(b"MTrk", len(body)) + body)
        pos += _CHUNK.size + length

    return b"".join(out)


#: Data bytes after a channel status byte: two for 8x 9x Ax Bx Ex, one for Cx Dx.
_DATA_BYTES = bytes([0] * 128 + [2] * 64 + [1] * 32 + [2] * 16 + [0] * 16)

#: Meta events of a fixed size: type -> (name, bytes it needs).  A longer one is cut to this size.
#: (A sequence number may be empty, so it is not here; it is left out in any case.)
_META_SIZES = {
    0x20: ("channel prefix", 1),
    0x21: ("port", 1),
    0x2F: ("end of track", 0),
    0x51: ("tempo", 3),
    0x54: ("SMPTE offset", 5),
    0x58: ("time signature", 4),
    0x59: ("key signature", 2),
}
#: Meta events handed on to symusic: the text events (track name, lyrics, markers ...) and
#: the three that set tempo, meter and key; the others carry nothing a Score holds.
_META_KEPT = frozenset(range(0x01, 0x10)) | {0x51, 0x58, 0x59}
_MAX_DELTA = 0x0FFFFFFF  # the largest four-byte variable-length quantity
_MAX_TICK = 2**31 - 1  # symusic keeps times in int32


class _TrackProblem(Exception):
    """What is wrong with a track's events (internal: becomes a MidiError naming the file)."""


def _canonical_track(data: bytes, pos: int, end: int, ignored: list[str]) -> bytes:
    """The events of the track in ``data[pos:end]``, rewritten in canonical form.

    symusic's parser cannot be handed a track as it comes (measured with
    symusic 0.5.9): it trusts the data bytes of note events (a byte over 127,
    a status byte where data belongs, becomes a negative pitch that crashes
    the process), it reads the fixed fields of a tempo, time or key
    signature from the bytes after an event that is too short for them, it
    loses notes written with running status after a sysex event, misreads
    some sysex events, and stops at an end-of-track event in the middle of a
    track.  So every event is walked here, checked, and written again:

    * every channel event gets its status byte (no running status).  The SMF
      standard says sysex and meta events cancel running status; a file that
      relies on it across them anyway is read as lenient readers do (the
      previous channel status goes on), which is what its author meant;
    * a meta event's length is authoritative.  One shorter than its type
      requires (a tempo of fewer than 3 bytes, a time signature of fewer
      than 4 ...) is dropped and listed in ``ignored`` (the loader says so
      once); a longer one is cut to its type's size.  Meta events a Score
      does not hold (sequence number, channel prefix, port, SMPTE offset,
      sequencer-specific, unknown types) are left out;
    * sysex events (``F0`` and ``F7``) are checked to lie inside the track
      and left out: a Score holds none;
    * an end-of-track event before the last event is dropped and reading
      goes on (the chunk length, not that event, says where the track
      ends); every track is closed with exactly one end-of-track event;
    * system common and real-time messages (``F1``-``FE``), which no MIDI
      file may hold, are refused because parsers disagree on their lengths.

    The delta time of each dropped event is added to the next event's, so
    every kept event stays at its tick.

    Raises
    ------
    _TrackProblem
        If the track is truncated or corrupt.
    """
    out = bytearray()
    status = 0
    pending = 0  # ticks since the last event written
    tick = 0
    copy_from = pos  # data[copy_from:event] is written as it stands (most files: the whole track)
    data_bytes = _DATA_BYTES
    while pos < end:
        event = pos
        byte = data[pos]
        pos += 1
        delta = byte & 0x7F
        n = 1
        while byte & 0x80:  # delta time: at most four bytes
            if pos >= end or n == 4:
                raise _TrackProblem("a delta time runs past the end of the track or over four bytes")
            byte = data[pos]
            pos += 1
            n += 1
            delta = (delta << 7) | (byte & 0x7F)
        if pos >= end:
            raise _TrackProblem("the track ends inside an event")
        tick += delta
        if tick > _MAX_TICK:
            raise _TrackProblem(f"an event at tick {tick}, past the {_MAX_TICK} ticks a MIDI reader can time")
        as_written = pending == 0  # nothing dropped since the last event written: its delta holds
        pending += delta
        head = pos
        byte = data[pos]
        if byte >= 0xF0:
            if byte not in (0xFF, 0xF0, 0xF7):
                raise _TrackProblem(f"a system message ({byte:#04x}) that a MIDI file cannot hold")
            meta = byte == 0xFF
            if meta:
                if pos + 1 >= end:
                    raise _TrackProblem("the track ends inside an event")
                kind = data[pos + 1]
            pos += 2 if meta else 1  # meta: status and type; sysex: status
            length = 0
            for _ in range(4):
                if pos >= end:
                    raise _TrackProblem("the track ends inside an event")
                byte = data[pos]
                pos += 1
                length = (length << 7) | (byte & 0x7F)
                if not byte & 0x80:
                    break
            else:
                raise _TrackProblem("an event length over four bytes")
            if pos + length > end:
                raise _TrackProblem(f"a meta or sysex event of {length} bytes runs past the end of the track")
            body = pos
            pos += length
            size = _META_SIZES.get(kind) if meta else None
            if size is not None and length < size[1]:
                what = f"{size[0]} of {length} byte{'' if length == 1 else 's'}"
                ignored.append(f"{what} at tick {tick}")
            if not meta or kind == 0x2F or kind not in _META_KEPT or (size is not None and length < size[1]):
                out += data[copy_from:event]  # left out: its delta goes to the next event
                copy_from = pos
                continue
            if size is not None and length > size[1]:
                out += data[copy_from:event]
                out += _delta_bytes(pending) + bytes((0xFF, kind, size[1])) + data[body : body + size[1]]
                copy_from = pos
            elif not as_written:
                out += data[copy_from:event]
                out += _delta_bytes(pending) + data[head:pos]
                copy_from = pos
            pending = 0
            continue
        explicit = bool(byte & 0x80)
        if explicit:
            status = byte
            pos += 1
        elif not status:
            raise _TrackProblem("running status without a status byte")
        count = data_bytes[status]
        if pos + count > end:
            raise _TrackProblem("the track ends inside an event")
        if data[pos] & 0x80 or (count == 2 and data[pos + 1] & 0x80):
            i = pos if data[pos] & 0x80 else pos + 1
            raise _TrackProblem(f"a data byte over 127 ({data[i]:#04x}) at byte {i}")
        pos += count
        if not as_written:  # after a left-out event: the delta changed
            out += data[copy_from:event]
            out += _delta_bytes(pending)
            out.append(status)
            out += data[pos - count : pos]
            copy_from = pos
        elif not explicit:  # running status: the status byte goes in after the delta
            out += data[copy_from:head]
            out.append(status)
            copy_from = head
        pending = 0
    out += data[copy_from:end]
    out += _delta_bytes(pending) + b"\xff\x2f\x00"
    return bytes(out)


def _delta_bytes(ticks: int) -> bytes:
    """``ticks`` as delta times: one, or, past four bytes' worth, empty text events carrying the rest."""
    head = b""
    while ticks > _MAX_DELTA:  # only after dropped events whose deltas add up past 2**28
        head += vlq(_MAX_DELTA) + b"\xff\x01\x00"
        ticks -= _MAX_DELTA
    return head + vlq(ticks)


def _parser_message(exc: BaseException) -> str:
    """Shorten symusic/minimidi's message, e.g. drop 'MiniMidi: ' and ': iostream error'."""
    text = str(exc).strip() or type(exc).__name__
    text = text.removeprefix("MiniMidi:").strip()
    return text.removesuffix(": iostream error").strip()


def save_midi(score: Score, path: str | os.PathLike[str], *, text: str | None = None) -> Path:
    """Write ``score`` as a type-1 MIDI file, atomically.

    Parameters
    ----------
    score : symusic.Score
        The score; a score in quarters or seconds is converted to ticks.
    path : str or os.PathLike
        Destination ``.mid`` file; missing parent folders are created.
    text : str, optional
        A line for a text meta event (``FF 01``) at the start of the first
        track (musegen's provenance line; see :mod:`musegen.midi.meta`).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ParameterError
        If ``score`` is not a symusic Score.
    OutputError
        If the file cannot be encoded or written.
    """
    score = _as_tick_score(score, "score")
    try:
        data = score.dumps_midi()
    except Exception as exc:  # noqa: BLE001 - any encoder failure is an output failure
        raise OutputError(f"{path}: cannot encode MIDI: {exc}") from exc
    if text:
        from musegen.midi.meta import with_text_event

        data = with_text_event(data, text)
    return atomic_write_bytes(path, data)


def _as_tick_score(score: Score, label: str) -> Score:
    if not isinstance(score, Score):
        raise ParameterError(f"{label} must be a symusic Score, got {type(score).__name__}")
    if score.ttype != TimeUnit.tick:
        score = score.to("tick")
    return score


def score_digest(score: Score) -> str:
    """Stable SHA-256 of a score's musical content.

    Covers ticks per quarter, tempos, time and key signatures, and for each
    track (in order) its name, program, drum flag and notes. Notes are sorted
    by (start, pitch, duration, velocity) first, so storage order does not
    matter. Controls, pedals and pitch bends are ignored.

    Parameters
    ----------
    score : symusic.Score
        The score; a score in quarters or seconds is converted to ticks.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    score = _as_tick_score(score, "score")
    sha = hashlib.sha256()

    def feed(tag: str, *arrays: np.ndarray) -> None:
        sha.update(tag.encode())
        for array in arrays:
            values = np.ascontiguousarray(array, dtype="<i8")
            sha.update(struct.pack("<q", values.size))
            sha.update(values.tobytes())

    feed("tpq", np.array([score.ticks_per_quarter]))
    tempos = sorted((t.time, t.mspq) for t in score.tempos)
    feed("tempo", np.array(tempos, dtype=np.int64).reshape(-1, 2))
    meters = sorted((t.time, t.numerator, t.denominator) for t in score.time_signatures)
    feed("meter", np.array(meters, dtype=np.int64).reshape(-1, 3))
    keys = sorted((k.time, k.key, k.tonality) for k in score.key_signatures)
    feed("key", np.array(keys, dtype=np.int64).reshape(-1, 3))
    for track in score.tracks:
        name = track.name.encode("utf-8", "surrogateescape")
        sha.update(b"track" + struct.pack("<q", len(name)) + name)
        feed("prog", np.array([track.program, int(track.is_drum)]))
        notes = track.notes.numpy()
        table = np.stack(
            [notes["time"], notes["pitch"], notes["duration"], notes["velocity"]], axis=1
        ).astype(np.int64)
        table = table[np.lexsort(table.T[::-1])]
        feed("notes", table)
    return sha.hexdigest()
