"""RIFF metadata of the WAV files musegen writes: ``LIST/INFO``, ``acid`` and ``smpl`` chunks.

What a DAW or a file browser reads from a WAV without opening a sidecar:

- ``LIST/INFO`` (RIFF 1991): ``INAM`` title, ``ISFT`` software, ``ICMT``
  comment (musegen puts its provenance line there), ``IGNR`` genre, ``ICRD``
  creation date.  libsndfile, Windows Explorer, foobar2000, Reaper and most
  tag readers show them.
- ``acid`` (Sonic Foundry ACID, 24 bytes): tempo, beats, meter and root note,
  which Ableton Live, FL Studio, Reaper and ACID read to tempo-match a file.
  The layout (little-endian, as libsndfile's ``wav_read_acid_chunk`` reads
  it): ``u32 flags, u16 root note, u16 unknown (0x8000), f32 unknown (0),
  u32 beats, u16 meter denominator, u16 meter numerator, f32 tempo``.
  Flags: 0x01 one-shot (else a loop), 0x02 root note set, 0x04 stretch,
  0x08 disk-based, 0x10 high octave.
- ``smpl`` (Microsoft/IBM multimedia, samplers): the MIDI unity note and
  loop points, written only when a loop is given.

The chunks go after ``fmt`` (and ``fact``/``PEAK``) and before ``data``, where
players that stop reading at ``data`` (Python's :mod:`wave`, many samplers)
still skip over them and readers that read everything find them; the samples
are not touched.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from musegen.errors import AudioError, ParameterError

__all__ = ["WavMetadata", "add_metadata", "read_metadata", "riff_chunks"]

#: acid flags
ACID_ONE_SHOT = 0x01
ACID_ROOT_NOTE = 0x02
ACID_STRETCH = 0x04
ACID_DISK_BASED = 0x08
#: INFO ids of the WavMetadata text fields, in the order they are written
INFO_IDS = {"title": b"INAM", "software": b"ISFT", "comment": b"ICMT", "genre": b"IGNR", "date": b"ICRD"}
#: the most bytes one INFO string takes (longer text is cut at a character boundary)
MAX_INFO_BYTES = 4096
_CHUNK = struct.Struct("<4sI")
_ACID = struct.Struct("<IHHfIHHf")
_SMPL = struct.Struct("<9I")
_LOOP = struct.Struct("<6I")
_BLOCK = 1 << 20


@dataclass(frozen=True)
class WavMetadata:
    """What :func:`add_metadata` writes into a WAV file; ``None`` fields are left out.

    Attributes
    ----------
    title, software, comment, genre, date : str or None
        ``INFO`` text: ``INAM``, ``ISFT``, ``ICMT``, ``IGNR``, ``ICRD`` (date as ``YYYY-MM-DD``).
    tempo_bpm : float or None
        Quarter notes per minute; with it an ``acid`` chunk is written.
    beats : int or None
        Quarter-note beats of the music in the file (the ``acid`` beat count; 0 if None).
    meter : (int, int)
        Time signature of the ``acid`` chunk.
    root_note : int or None
        MIDI note (0-127) of the music's tonic (``acid`` root note, ``smpl`` unity note).
    one_shot : bool
        Mark the ``acid`` chunk one-shot (played once, not tempo-stretched) instead of a
        stretchable loop.
    loop : (int, int) or None
        Loop start and end in sample frames, end exclusive (``0 <= start < end <= frames``);
        with it a ``smpl`` chunk holds one forward loop.
    """

    title: str | None = None
    software: str | None = None
    comment: str | None = None
    genre: str | None = None
    date: str | None = None
    tempo_bpm: float | None = None
    beats: int | None = None
    meter: tuple[int, int] = (4, 4)
    root_note: int | None = None
    one_shot: bool = False
    loop: tuple[int, int] | None = None


def _chunk(ckid: bytes, payload: bytes) -> bytes:
    """One RIFF chunk: id, size, payload and the pad byte an odd size needs."""
    return _CHUNK.pack(ckid, len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _info_text(text: str) -> bytes:
    raw = str(text).replace("\0", " ").encode("utf-8")
    if len(raw) >= MAX_INFO_BYTES:
        raw = raw[: MAX_INFO_BYTES - 1].decode("utf-8", "ignore").encode("utf-8")
    return raw + b"\0"  # INFO strings are NUL-terminated


def info_chunk(meta: WavMetadata) -> bytes:
    """The ``LIST`` chunk of type ``INFO`` holding the text fields of ``meta`` (b"" if none)."""
    subs = b"".join(_chunk(ckid, _info_text(getattr(meta, name)))
                    for name, ckid in INFO_IDS.items() if getattr(meta, name))
    return _chunk(b"LIST", b"INFO" + subs) if subs else b""


def acid_chunk(meta: WavMetadata) -> bytes:
    """The ``acid`` chunk of ``meta`` (b"" without a tempo)."""
    if meta.tempo_bpm is None:
        return b""
    tempo = float(meta.tempo_bpm)
    if not (math.isfinite(tempo) and tempo > 0):
        raise ParameterError(f"acid tempo must be a positive number of BPM, got {meta.tempo_bpm!r}")
    num, den = (int(x) for x in meta.meter)
    if not (1 <= num <= 0xFFFF and 1 <= den <= 0xFFFF):
        raise ParameterError(f"acid meter must be two numbers 1-65535, got {meta.meter!r}")
    beats = int(meta.beats or 0)
    if not 0 <= beats <= 0xFFFFFFFF:
        raise ParameterError(f"acid beats must be 0 or more, got {meta.beats!r}")
    flags = ACID_ONE_SHOT if meta.one_shot else ACID_STRETCH
    root = 60
    if meta.root_note is not None:
        root = _midi_note(meta.root_note)
        flags |= ACID_ROOT_NOTE
    return _chunk(b"acid", _ACID.pack(flags, root, 0x8000, 0.0, beats, den, num, tempo))


def smpl_chunk(meta: WavMetadata, *, sr: int, frames: int) -> bytes:
    """The ``smpl`` chunk with ``meta.loop`` as one forward loop (b"" without a loop)."""
    if meta.loop is None:
        return b""
    start, end = (int(x) for x in meta.loop)
    if not 0 <= start < end <= frames:
        raise ParameterError(f"loop ({meta.loop[0]}, {meta.loop[1]}) must satisfy 0 <= start < end <= "
                             f"{frames} (the file's frames)")
    unity = 60 if meta.root_note is None else _midi_note(meta.root_note)
    period_ns = round(1e9 / sr)  # one sample's duration in nanoseconds
    head = _SMPL.pack(0, 0, period_ns, unity, 0, 0, 0, 1, 0)
    # the smpl end is the loop's last frame (inclusive); 0 plays: loop forever
    loop = _LOOP.pack(0, 0, start, end - 1, 0, 0)
    return _chunk(b"smpl", head + loop)


def _midi_note(note: int) -> int:
    if not (isinstance(note, int) and 0 <= note <= 127):
        raise ParameterError(f"root note must be a MIDI note 0-127, got {note!r}")
    return note


def riff_chunks(meta: WavMetadata, *, sr: int, frames: int) -> bytes:
    """The chunks of ``meta`` for a file of ``frames`` sample frames at ``sr`` Hz."""
    return info_chunk(meta) + acid_chunk(meta) + smpl_chunk(meta, sr=sr, frames=frames)


def _walk(f: BinaryIO, size: int, name: str):
    """``(id, offset of the chunk header, payload size)`` of each top-level chunk of a RIFF/WAVE file."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(f"{name!r} is not a RIFF/WAVE file")
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        ckid, cksize = _CHUNK.unpack(f.read(8))
        yield ckid, pos, cksize
        pos += 8 + cksize + (cksize & 1)


def _fmt(f: BinaryIO, offset: int, size: int) -> tuple[int, int]:
    """``(sample rate, block align)`` from a ``fmt `` chunk."""
    f.seek(offset + 8)
    _tag, _channels, sr, _rate, align = struct.unpack("<HHIIH", f.read(14))
    return sr, align


def add_metadata(path: str | os.PathLike[str], meta: WavMetadata) -> None:
    """Put the chunks of ``meta`` into the WAV file at ``path``, before its ``data`` chunk.

    The file is changed in place (the samples move up by the chunks' size, block by
    block, so memory use stays small); write it under a temporary name first.

    Raises
    ------
    AudioError
        ``path`` is not a RIFF/WAVE file with ``fmt `` and ``data`` chunks.
    ParameterError
        A field of ``meta`` is out of range (the file is then unchanged).
    """
    name = str(path)
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        fmt = data = None
        for ckid, offset, cksize in _walk(f, size, name):
            if ckid == b"fmt " and cksize >= 16:
                fmt = _fmt(f, offset, cksize)
            elif ckid == b"data":
                data = (offset, cksize)
                break
        if fmt is None or data is None:
            raise AudioError(f"{name!r} has no fmt and data chunks")
        sr, align = fmt
        frames = data[1] // max(align, 1)
        blob = riff_chunks(meta, sr=sr, frames=frames)
        if not blob:
            return
        if size + len(blob) - 8 > 0xFFFFFFFF:
            raise AudioError(f"{name!r} would pass the 4 GiB a RIFF file can hold with its metadata")
        _insert(f, data[0], blob, size)
        f.seek(4)
        f.write(struct.pack("<I", size + len(blob) - 8))


def _insert(f: BinaryIO, offset: int, blob: bytes, size: int) -> None:
    """Insert ``blob`` at ``offset`` of a file of ``size`` bytes, moving what follows up."""
    end = size
    while end > offset:
        start = max(offset, end - _BLOCK)
        f.seek(start)
        block = f.read(end - start)
        f.seek(start + len(blob))
        f.write(block)
        end = start
    f.seek(offset)
    f.write(blob)


def read_metadata(path: str | os.PathLike[str]) -> dict:
    """The metadata chunks of a WAV file, parsed: what :func:`add_metadata` writes.

    Returns
    -------
    dict
        ``chunks`` (top-level chunk ids in file order), ``info`` (INFO id -> text),
        ``acid`` (``flags``, ``one_shot``, ``root_note`` (None if unset), ``beats``,
        ``meter``, ``tempo_bpm``) or None, ``smpl`` (``unity_note``, ``loops``: list
        of ``(start, end)`` frames, end exclusive) or None, ``data`` (offset and size of
        the sample bytes).
    """
    name = str(path)
    out: dict = {"chunks": [], "info": {}, "acid": None, "smpl": None, "data": None}
    with open(Path(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for ckid, offset, cksize in _walk(f, size, name):
            out["chunks"].append(ckid.decode("latin-1"))
            f.seek(offset + 8)
            if ckid == b"data":
                out["data"] = (offset + 8, cksize)
                continue
            payload = f.read(min(cksize, 1 << 20))
            if ckid == b"LIST" and payload[:4] == b"INFO":
                pos = 4
                while pos + 8 <= len(payload):
                    sub, n = _CHUNK.unpack_from(payload, pos)
                    text = payload[pos + 8: pos + 8 + n].split(b"\0", 1)[0]
                    out["info"][sub.decode("latin-1")] = text.decode("utf-8", "replace")
                    pos += 8 + n + (n & 1)
            elif ckid == b"acid" and len(payload) >= _ACID.size:
                flags, root, _u1, _u2, beats, den, num, tempo = _ACID.unpack_from(payload)
                out["acid"] = {"flags": flags, "one_shot": bool(flags & ACID_ONE_SHOT),
                               "root_note": root if flags & ACID_ROOT_NOTE else None, "beats": beats,
                               "meter": (num, den), "tempo_bpm": tempo}
            elif ckid == b"smpl" and len(payload) >= _SMPL.size:
                head = _SMPL.unpack_from(payload)
                loops = []
                for i in range(head[7]):
                    at = _SMPL.size + i * _LOOP.size
                    if at + _LOOP.size > len(payload):
                        break
                    _cue, _kind, start, end, _frac, _count = _LOOP.unpack_from(payload, at)
                    loops.append((start, end + 1))
                out["smpl"] = {"unity_note": head[3], "loops": loops}
    return out
