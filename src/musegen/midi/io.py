"""Read and write Standard MIDI Files as :class:`symusic.Score` objects (ticks).

Loading checks the header itself before handing the bytes to symusic, so that
every unusable file ends in a :class:`~musegen.errors.MidiError` that names the
file and the problem, never in a parser traceback. Saving is atomic: a
half-written file never replaces a good one.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
from symusic import Score, TimeUnit

from musegen.atomic import atomic_write_bytes
from musegen.errors import MidiError, OutputError, ParameterError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_NOTES",
    "DEFAULT_MAX_TRACKS",
    "load_midi",
    "load_midi_bytes",
    "save_midi",
    "score_digest",
]

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_TRACKS = 256
DEFAULT_MAX_NOTES = 1_000_000

_HEADER = struct.Struct(">4sIHHH")  # 'MThd', length, format, ntrks, division
_CHUNK = struct.Struct(">4sI")


def load_midi(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_tracks: int = DEFAULT_MAX_TRACKS,
    max_notes: int = DEFAULT_MAX_NOTES,
) -> Score:
    """Read a type-0 or type-1 Standard MIDI File.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mid`` file.
    max_bytes : int
        Largest file accepted, in bytes (default 16 MiB).
    max_tracks : int
        Most tracks accepted, counted both in the header and after symusic has
        split type-0 channels into tracks (default 256).
    max_notes : int
        Most notes accepted over all tracks (default 1,000,000).

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
    size = path.stat().st_size
    if size > max_bytes:
        raise MidiError(
            f"{path}: file is {size} bytes, over the limit of {max_bytes} bytes (max_bytes)"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MidiError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    return load_midi_bytes(
        data, name=str(path), max_bytes=max_bytes, max_tracks=max_tracks, max_notes=max_notes
    )


def load_midi_bytes(
    data: bytes,
    *,
    name: str = "<midi bytes>",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_tracks: int = DEFAULT_MAX_TRACKS,
    max_notes: int = DEFAULT_MAX_NOTES,
) -> Score:
    """Parse the bytes of a Standard MIDI File; see :func:`load_midi`.

    Parameters
    ----------
    data : bytes
        The file's content. A RIFF ``RMID`` wrapper is unwrapped.
    name : str
        What error messages call the data (a path or a URL).
    max_bytes, max_tracks, max_notes : int
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
    for label, value in (
        ("max_bytes", max_bytes),
        ("max_tracks", max_tracks),
        ("max_notes", max_notes),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{label} must be a positive integer, got {value!r}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise MidiError(
            f"{name}: data is {len(data)} bytes, over the limit of {max_bytes} bytes (max_bytes)"
        )
    data = _unwrap_rmid(data)
    data = _check_header(data, name, max_tracks)
    try:
        score = Score.from_midi(data)
    except Exception as exc:  # noqa: BLE001 - pybind maps any C++ error; all mean "corrupt"
        raise MidiError(f"{name}: corrupt or truncated MIDI data ({_parser_message(exc)})") from exc

    if len(score.tracks) > max_tracks:
        raise MidiError(
            f"{name}: {len(score.tracks)} tracks after splitting channels, "
            f"over the limit of {max_tracks} (max_tracks)"
        )
    n_notes = score.note_num()
    if len(score.tracks) == 0 or n_notes == 0:
        raise MidiError(f"{name}: holds no notes")
    if n_notes > max_notes:
        raise MidiError(f"{name}: {n_notes} notes, over the limit of {max_notes} (max_notes)")
    return score


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


def _check_header(data: bytes, name: str, max_tracks: int) -> bytes:
    """Validate the header and chunk layout; return bytes symusic can parse.

    symusic accepts some broken files silently (division 0, type 2, fewer
    track chunks than announced) and rejects a legal header longer than six
    bytes, so the checks and that normalisation happen here.
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
    if n_tracks > max_tracks:
        raise MidiError(
            f"{name}: header announces {n_tracks} tracks, "
            f"over the limit of {max_tracks} (max_tracks)"
        )

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
        if chunk_id == b"MTrk":
            found += 1
        pos += _CHUNK.size + length

    if header_len != 6:
        data = data[:4] + struct.pack(">I", 6) + data[8:14] + data[8 + header_len :]
    return data


def _parser_message(exc: BaseException) -> str:
    """Shorten symusic/minimidi's message, e.g. drop 'MiniMidi: ' and ': iostream error'."""
    text = str(exc).strip() or type(exc).__name__
    text = text.removeprefix("MiniMidi:").strip()
    return text.removesuffix(": iostream error").strip()


def save_midi(score: Score, path: str | os.PathLike[str]) -> Path:
    """Write ``score`` as a type-1 MIDI file, atomically.

    Parameters
    ----------
    score : symusic.Score
        The score; a score in quarters or seconds is converted to ticks.
    path : str or os.PathLike
        Destination ``.mid`` file; missing parent folders are created.

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
