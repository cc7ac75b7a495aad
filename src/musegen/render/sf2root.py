"""SoundFonts for symusic's synthesizer with their root keys baked into the sample headers.

symusic 0.5's synthesizer ignores the ``overridingRootKey`` generator (SF2 2.04,
section 8.1.2, generator 58) and plays every sample from the ``originalPitch``
of its header.  Many fonts set the root key per zone instead, the bundled
TimGM6mb among them (all its piano samples say 60 and each zone names the
real root), so notes came out up to two octaves off: a piano A4 sounded as
G#6.  (symusic's issue 55 reports the same for FluidR3Mono.)

The cure keeps the font's sound and its sample data: every (sample, root key)
pair that a zone asks for gets a sample header of its own whose
``originalPitch`` is that root key, and the zone points at it.  Only the
46-byte headers are added; the sample data is shared.  The result is written
once per font (keyed by the font's path, size and mtime) into musegen's cache
folder, atomically, and reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from pathlib import Path

GEN_ROOT_KEY = 58
GEN_SAMPLE_ID = 53
SHDR_SIZE = 46
PITCH_OFFSET = 40       # byProgramPitch (originalPitch) inside a sample header
log = logging.getLogger(__name__)
#: bumped when the rewrite changes, so old cached copies are not used
VERSION = 1


def _chunks(data: bytes, start: int, stop: int):
    """``(id, body start, body size)`` of the RIFF chunks in ``data[start:stop]``."""
    pos = start
    while pos + 8 <= stop:
        cid = data[pos:pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def bake_root_keys(data: bytes) -> bytes | None:
    """The font with each zone's root key moved into a sample header; None when nothing changes.

    ``data`` is a whole SF2 file that :func:`musegen.render.sf2check.check_soundfont`
    has accepted (chunk sizes and table indices are trusted here).
    """
    pdta = next(((s, s + n) for cid, s, n in _chunks(data, 12, len(data))
                 if cid == b"LIST" and data[s:s + 4] == b"pdta"), None)
    if pdta is None:
        return None
    where = {cid: (s, n) for cid, s, n in _chunks(data, pdta[0] + 4, pdta[1])}
    if not {b"inst", b"ibag", b"igen", b"shdr"} <= where.keys():
        return None
    body = {cid: data[s:s + n] for cid, (s, n) in where.items()}
    inst_bags = [struct.unpack_from("<H", body[b"inst"], i + 20)[0] for i in range(0, len(body[b"inst"]), 22)]
    bag_gens = [struct.unpack_from("<H", body[b"ibag"], i)[0] for i in range(0, len(body[b"ibag"]), 4)]
    igen = bytearray(body[b"igen"])
    shdr = body[b"shdr"]
    n_samples = len(shdr) // SHDR_SIZE - 1          # the last header is the terminal "EOS"
    added: list[bytes] = []
    copies: dict[tuple[int, int], int] = {}
    for inst in range(len(inst_bags) - 1):
        global_root = None
        for zone in range(inst_bags[inst], inst_bags[inst + 1]):
            gens = range(bag_gens[zone], bag_gens[zone + 1])
            ops = {struct.unpack_from("<H", igen, g * 4)[0]: g for g in gens}
            root_at, sample_at = ops.get(GEN_ROOT_KEY), ops.get(GEN_SAMPLE_ID)
            root = struct.unpack_from("<h", igen, root_at * 4 + 2)[0] if root_at is not None else None
            if sample_at is None:  # a global zone: its root key holds for the zones that set none
                if zone == inst_bags[inst]:
                    global_root = root
                continue
            root = global_root if root is None else root
            sample = struct.unpack_from("<H", igen, sample_at * 4 + 2)[0]
            if root is None or not 0 <= root <= 127 or sample >= n_samples:
                continue
            header = shdr[sample * SHDR_SIZE:(sample + 1) * SHDR_SIZE]
            if header[PITCH_OFFSET] == root:
                continue
            key = (sample, root)
            if key not in copies:
                if n_samples + len(added) >= 0xFFFF:
                    return None  # no room for more headers: leave the font as it is
                copies[key] = n_samples + len(added)
                added.append(header[:PITCH_OFFSET] + bytes([root]) + header[PITCH_OFFSET + 1:])
            struct.pack_into("<H", igen, sample_at * 4 + 2, copies[key])
    if not added:
        return None
    new_shdr = shdr[:n_samples * SHDR_SIZE] + b"".join(added) + shdr[n_samples * SHDR_SIZE:]
    replaced = {b"igen": bytes(igen), b"shdr": new_shdr}
    pdta_body = b"pdta" + b"".join(
        cid + struct.pack("<I", len(replaced.get(cid, body[cid]))) + replaced.get(cid, body[cid])
        + (b"\0" if len(replaced.get(cid, body[cid])) & 1 else b"")
        for cid in where)
    out = bytearray()
    for cid, s, n in _chunks(data, 12, len(data)):
        if cid == b"LIST" and data[s:s + 4] == b"pdta":
            out += b"LIST" + struct.pack("<I", len(pdta_body)) + pdta_body
        else:
            out += data[s - 8:s + n + (n & 1)]
    return b"RIFF" + struct.pack("<I", len(out) + 4) + b"sfbk" + bytes(out)


def _cache_dir() -> Path | None:
    from musegen.cache import folder

    return folder("soundfonts")


def font_for_symusic(path: str) -> str:
    """``path``, or a cached copy with its root keys baked in when the font needs one.

    Where no cache folder can be written at all, ``path`` comes back with a
    warning: the notes then play as symusic reads them.
    """
    st = os.stat(path)
    tag = hashlib.sha256(f"{VERSION}:{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:24]
    folder = _cache_dir()
    if folder is not None:
        done, same = folder / f"{tag}.sf2", folder / f"{tag}.same"
        if done.is_file():
            return str(done)
        if same.is_file():
            return path
    fixed = bake_root_keys(Path(path).read_bytes())
    if folder is None:
        if fixed is not None:
            log.warning("no writable cache folder for the repaired SoundFont (set MUSEGEN_CACHE_DIR): "
                        "notes of %s may play off pitch", path)
        return path
    from musegen.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(same if fixed is None else done, b"" if fixed is None else fixed)
    except OSError as exc:
        if fixed is not None:
            log.warning("cannot write the repaired SoundFont to %s (%s): notes of %s may play off pitch",
                        folder, exc.strerror or exc, path)
        return path
    return path if fixed is None else str(done)
