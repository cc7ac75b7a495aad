"""Notes that hang symusic's synthesizer, kept out of it.

With some SoundFonts symusic's synthesizer never returns from certain
(program, key) pairs: the bundled TimGM6mb.sf2 spins on program 81 (sawtooth
lead) at key 102, among others.  It holds the GIL while it spins, so nothing in
the process can stop it.  ``scripts/scan_soundfont.py`` finds those pairs by
rendering every one of them and writes them beside the font as
``<font>.hangs.json``; before synthesis, :func:`avoid_hangs` moves such a
melodic note an octave down (or up) and leaves such a drum hit out.  Only the
audio changes: the MIDI written beside it keeps the notes as they are.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["avoid_hangs", "hang_table"]


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> tuple[dict[int, frozenset[int]], frozenset[int]]:
    try:
        data = json.loads(Path(path).read_text())
        melodic = {int(p): frozenset(int(k) for k in keys) for p, keys in data.get("melodic", {}).items()}
        return melodic, frozenset(int(k) for k in data.get("drums", []))
    except (OSError, ValueError, TypeError, AttributeError):
        return {}, frozenset()  # an unreadable table protects nothing, but must not stop a render


def hang_table(font: str | Path) -> tuple[dict[int, frozenset[int]], frozenset[int]]:
    """``(program -> keys, drum keys)`` that hang the synthesizer with ``font`` (empty if unknown)."""
    table = Path(font).with_suffix(".hangs.json")
    try:
        mtime = table.stat().st_mtime_ns
    except OSError:
        return {}, frozenset()
    return _load(str(table), mtime)


def avoid_hangs(score, font: str | Path):
    """``(score, notes changed)``: a copy without notes known to hang ``font``, or ``score`` itself."""
    melodic, drums = hang_table(font)
    if not melodic and not drums:
        return score, 0
    out, changed = None, 0
    for i, trk in enumerate(score.tracks):
        bad = drums if trk.is_drum else melodic.get(int(trk.program), frozenset())
        if not bad or not len(trk.notes):
            continue
        if not np.isin(trk.notes.numpy()["pitch"], list(bad)).any():
            continue
        if out is None:
            out = score.copy()
        t = out.tracks[i]
        if trk.is_drum:
            before = len(t.notes)
            t.notes = [n for n in t.notes if n.pitch not in bad]
            changed += before - len(t.notes)
            continue
        for n in t.notes:
            if n.pitch in bad:
                n.pitch = _nearest_safe(int(n.pitch), bad)
                changed += 1
    return (out, changed) if out is not None else (score, 0)


def _nearest_safe(key: int, bad: frozenset[int]) -> int:
    for shift in (-12, 12, -24, 24, -1, 1, -2, 2):
        k = key + shift
        if 0 <= k <= 127 and k not in bad:
            return k
    return key  # every neighbour hangs too: nothing better to do
