"""Structural check of an SF2/SF3 file before a synthesizer loads it.

symusic's SoundFont loader trusts the file: an index past the end of a table
(a preset's bag, a bag's generator, an instrument or a sample) or a sample
that claims more data than the file holds crashes the whole process with a
segmentation fault.  Reading the small ``pdta`` tables here first turns every
such file into a :class:`~musegen.errors.SoundFontError` that names the table
at fault.  Only the chunk headers and ``pdta`` are read, never the samples.
"""

from __future__ import annotations

import os
import struct
from functools import lru_cache
from pathlib import Path

from musegen.errors import SoundFontError

__all__ = ["check_soundfont"]

#: Record size of each ``pdta`` table, in the order the specification lists them.
RECORDS = {"phdr": 38, "pbag": 4, "pmod": 10, "pgen": 4, "inst": 22, "ibag": 4, "imod": 10,
           "igen": 4, "shdr": 46}
GEN_INSTRUMENT = 41
GEN_SAMPLE_ID = 53
#: Generators the specification defines (0-60); a loader's tables stop there.
N_GENERATORS = 61
_ROM_SAMPLE = 0x8000
#: Shortest loop accepted, in samples: symusic spins forever on loops of 0-2 samples (the
#: specification asks for 32, but real fonts, the bundled one too, hold loops of 5).
MIN_LOOP = 4
_MAX_PDTA = 64 << 20


def check_soundfont(path: str | os.PathLike[str], *, name: str | None = None) -> None:
    """Raise :class:`SoundFontError` unless ``path`` is a structurally sound SF2/SF3 file.

    Parameters
    ----------
    path : str or path-like
        The ``.sf2``/``.sf3`` file.
    name : str, optional
        How messages call the file (default: ``path``).
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise SoundFontError(f"cannot read soundfont {str(name or path)!r}: {exc.strerror or exc}") from None
    problem = _problem(str(path), stat.st_size, stat.st_mtime_ns)
    if problem:
        raise SoundFontError(f"soundfont {str(name or path)!r} is corrupt: {problem}")


@lru_cache(maxsize=16)
def _problem(path: str, size: int, mtime_ns: int) -> str | None:
    """What is wrong with the file, or ``None``; cached per (path, size, mtime)."""
    try:
        with open(path, "rb") as fh:
            return _check(fh, size)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"


def _chunks(fh, start: int, stop: int, where: str):
    """``(id, data offset, length)`` of the chunks between ``start`` and ``stop``."""
    pos = start
    while pos + 8 <= stop:
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            raise _Bad(f"{where} is truncated")
        cid, length = head[:4], struct.unpack("<I", head[4:])[0]
        if pos + 8 + length > stop:
            raise _Bad(f"chunk {cid.decode('latin-1')!r} in {where} claims {length} bytes, "
                       f"{stop - pos - 8} remain")
        yield cid, pos + 8, length
        pos += 8 + length + (length & 1)


class _Bad(Exception):
    pass


def _check(fh, size: int) -> str | None:
    try:
        _check_layout(fh, size)
    except _Bad as exc:
        return str(exc)
    return None


def _check_layout(fh, size: int) -> None:
    fh.seek(0)
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise _Bad("no RIFF sfbk header")
    riff_len = struct.unpack("<I", head[4:8])[0]
    if 8 + riff_len > size:
        raise _Bad(f"the RIFF header claims {riff_len} bytes, the file holds {size - 8} (truncated?)")
    lists: dict[bytes, tuple[int, int]] = {}
    for cid, off, length in _chunks(fh, 12, 8 + riff_len, "the file"):
        if cid != b"LIST" or length < 4:
            continue
        fh.seek(off)
        kind = fh.read(4)
        lists.setdefault(kind, (off + 4, off + length))
    for kind in (b"INFO", b"sdta", b"pdta"):
        if kind not in lists:
            raise _Bad(f"no {kind.decode()} list")

    version = 2
    for cid, off, length in _chunks(fh, *lists[b"INFO"], "INFO"):
        if cid == b"ifil" and length >= 4:
            fh.seek(off)
            version = struct.unpack("<H", fh.read(2))[0]
    smpl_bytes = 0
    for cid, _, length in _chunks(fh, *lists[b"sdta"], "sdta"):
        if cid == b"smpl":
            smpl_bytes = length
    # SF2 sample offsets count 16-bit samples; SF3 (compressed) offsets count bytes
    smpl_units = smpl_bytes if version >= 3 else smpl_bytes // 2

    tables: dict[str, bytes] = {}
    start, stop = lists[b"pdta"]
    if stop - start > _MAX_PDTA:
        raise _Bad(f"pdta is {stop - start} bytes")
    for cid, off, length in _chunks(fh, start, stop, "pdta"):
        key = cid.decode("latin-1")
        if key in RECORDS and key not in tables:
            fh.seek(off)
            tables[key] = fh.read(length)
    for key, rec in RECORDS.items():
        data = tables.get(key)
        if data is None:
            raise _Bad(f"no {key} table")
        if len(data) % rec or len(data) < rec:
            raise _Bad(f"{key} table is {len(data)} bytes, not a whole number of {rec}-byte records")

    def column(key: str, fmt: str, offset: int) -> list[int]:
        rec = RECORDS[key]
        data = tables[key]
        return [struct.unpack_from(fmt, data, i + offset)[0] for i in range(0, len(data), rec)]

    n = {key: len(tables[key]) // rec for key, rec in RECORDS.items()}
    if n["phdr"] < 2:
        raise _Bad("it holds no presets")
    if n["shdr"] < 2:
        raise _Bad("it holds no samples")
    _indices(column("phdr", "<H", 24), n["pbag"], "phdr", "pbag")
    _indices(column("inst", "<H", 20), n["ibag"], "inst", "ibag")
    _indices(column("pbag", "<H", 0), n["pgen"], "pbag", "pgen")
    _indices(column("pbag", "<H", 2), n["pmod"], "pbag", "pmod")
    _indices(column("ibag", "<H", 0), n["igen"], "ibag", "igen")
    _indices(column("ibag", "<H", 2), n["imod"], "ibag", "imod")
    _generators(tables["pgen"], GEN_INSTRUMENT, n["inst"] - 1, "pgen", "instrument")
    _generators(tables["igen"], GEN_SAMPLE_ID, n["shdr"] - 1, "igen", "sample")

    shdr = tables["shdr"]
    for i in range(n["shdr"] - 1):
        s_start, s_end, loop_start, loop_end, rate = struct.unpack_from("<5I", shdr, i * 46 + 20)
        link, kind = struct.unpack_from("<HH", shdr, i * 46 + 42)
        if kind & _ROM_SAMPLE:
            continue
        if not s_start <= s_end <= smpl_units:
            raise _Bad(f"sample {i} spans {s_start}-{s_end}, outside the {smpl_units} samples of smpl")
        if version < 3 and not (loop_start <= loop_end <= smpl_units) and loop_end > loop_start:
            raise _Bad(f"sample {i} loops {loop_start}-{loop_end}, outside the {smpl_units} samples of smpl")
        # (0, 0) means "no loop"; otherwise symusic spins forever on a loop of a few samples
        # and crashes on one that starts before its sample and reaches into it
        if (loop_start, loop_end) != (0, 0):
            if 0 <= loop_end - loop_start < MIN_LOOP:
                raise _Bad(f"sample {i} loops over {loop_end - loop_start} samples "
                           f"({loop_start}-{loop_end}); a loop needs at least {MIN_LOOP}")
            if loop_start < s_start < loop_end:
                raise _Bad(f"sample {i} loops {loop_start}-{loop_end}, starting before the sample "
                           f"({s_start}-{s_end})")
        if rate == 0:
            raise _Bad(f"sample {i} has a sample rate of 0 Hz")
        if kind & 0x0E and link >= n["shdr"] - 1:  # right/left/linked samples name a partner
            raise _Bad(f"sample {i} links to sample {link}, past the last of {n['shdr'] - 1}")


def _indices(values: list[int], n_target: int, table: str, target: str) -> None:
    """Bag/generator start indices: non-decreasing, the terminal one within ``target``."""
    previous = 0
    for i, value in enumerate(values):
        if value < previous:
            raise _Bad(f"{table} record {i} points back to {target} {value} (after {previous})")
        previous = value
    if values[-1] > n_target - 1:
        raise _Bad(f"{table} points to {target} {values[-1]}, past the last of {n_target - 1}")


def _generators(data: bytes, oper_ref: int, n_refs: int, table: str, what: str) -> None:
    for i in range(0, len(data) - 4, 4):  # the terminal record is not a generator
        oper, amount = struct.unpack_from("<HH", data, i)
        if oper >= N_GENERATORS:
            # the specification says to ignore them; symusic indexes its tables with them and crashes
            raise _Bad(f"{table} record {i // 4} uses generator {oper}, past the last defined one "
                       f"({N_GENERATORS - 1})")
        if oper == oper_ref and amount >= n_refs:
            raise _Bad(f"{table} record {i // 4} names {what} {amount}, past the last of {n_refs - 1}")
