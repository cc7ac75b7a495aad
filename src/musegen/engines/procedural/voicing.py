"""Chord voicings with smooth voice leading.

Each function returns ascending MIDI pitches.  Passing the previous voicing
makes the next one move as little as possible (common tones held, the rest
by step), which is what keeps block chords and pads from jumping around.
"""

from __future__ import annotations

from musegen.engines.procedural.theory import Chord


def _tones(chord: Chord, n: int | None) -> list[int]:
    pcs = list(chord.pcs)
    if n is None or n >= len(pcs):
        return pcs
    # drop the fifth first, then the root: thirds and sevenths carry the colour
    order = [pcs[1]] + pcs[3:] + [pcs[0], pcs[2]]
    keep = set(order[:n])
    return [pc for pc in pcs if pc in keep][:n]


def _double(voicing: list[int], root: int, n: int, lo: int, hi: int) -> list[int]:
    """Add octave doublings (root first) until the voicing has ``n`` notes."""
    v = list(voicing)
    for pc in [root] + [p % 12 for p in voicing]:
        if len(v) >= n:
            break
        base = next((p for p in v if p % 12 == pc), None)
        if base is None:
            continue
        for q in (base + 12, base - 12):
            if lo <= q <= hi and q not in v:
                v.append(q)
                break
    return sorted(v)


def _stack(tones: list[int], bottom: int) -> list[int]:
    out = []
    p = bottom - 1
    for pc in tones:
        q = p + 1 + (pc - (p + 1)) % 12
        out.append(q)
        p = q
    return out


def _motion(a: list[int], b: list[int]) -> float:
    if len(a) == len(b):
        return float(sum(abs(x - y) for x, y in zip(a, b)))
    return abs(sum(a) / len(a) - sum(b) / len(b)) * max(len(a), len(b))


def close_voicing(chord: Chord, lo: int, hi: int, *, prev: list[int] | None = None,
                  n: int | None = None, center: float | None = None, tones: list[int] | None = None) -> list[int]:
    """A close-position voicing inside ``[lo, hi]`` nearest ``prev`` (or ``center``)."""
    tones = tones if tones is not None else _tones(chord, n)
    center = (lo + hi) / 2 if center is None else center
    best, best_cost = None, None
    for r in range(len(tones)):
        rot = tones[r:] + tones[:r]
        first = lo + (rot[0] - lo) % 12
        while True:
            v = _stack(rot, first)
            if v[-1] > hi:
                break
            cost = _motion(v, prev) if prev else abs(sum(v) / len(v) - center) * 2
            if v[0] < 55 and len(v) > 1 and v[1] - v[0] < 3:
                cost += 4.0   # seconds in the low register are mud
            if best_cost is None or cost < best_cost:
                best, best_cost = v, cost
            first += 12
    if best is None:
        best = _stack(tones, lo)
        while best[-1] > hi and best[0] - 12 >= 0:
            best = [p - 12 for p in best]
    if n is not None and n > len(best):
        best = _double(best, chord.root, n, lo, hi)
    return best


def drop2(voicing: list[int]) -> list[int]:
    """Drop the second-highest note an octave: an open, warmer spread."""
    if len(voicing) < 4:
        return voicing
    v = list(voicing)
    v[-2] -= 12
    return sorted(v)


def rootless_voicing(chord: Chord, lo: int = 50, hi: int = 76, *, prev: list[int] | None = None,
                     n: int = 4) -> list[int]:
    """Jazz piano: 3rd, 7th, 9th and 5th (the first ``n``; no root, the bass has it), close to ``prev``."""
    pcs = chord.pcs
    third = pcs[1]
    seventh = pcs[3] if len(pcs) > 3 else (chord.root + (11 if chord.intervals[1] == 4 else 10)) % 12
    ninth = (chord.root + 2) % 12
    fifth = pcs[2]
    if chord.intervals[2] == 6:           # half-diminished: keep the flat fifth, no ninth
        tones = [third, seventh, fifth, chord.root]
    else:
        tones = [third, seventh, ninth, fifth]
    return close_voicing(chord, lo, hi, prev=prev, tones=sorted(tones[:n], key=lambda pc: (pc - third) % 12))


_GUITAR = {
    (0, 4, 7): (0, 7, 12, 16, 19, 24), (0, 3, 7): (0, 7, 12, 15, 19, 24),
    (0, 4, 7, 10): (0, 7, 10, 16, 19, 24), (0, 4, 7, 11): (0, 7, 11, 16, 19),
    (0, 3, 7, 10): (0, 7, 10, 15, 19, 24), (0, 3, 6): (0, 6, 12, 15), (0, 5, 7): (0, 7, 12, 17, 19, 24),
    (0, 2, 7): (0, 7, 12, 14, 19), (0, 3, 6, 10): (0, 6, 10, 15),
}


def guitar_voicing(chord: Chord, lo: int = 40, hi: int = 76) -> list[int]:
    """A barre-chord shape: root in the low strings, then fifth, octave, third."""
    shape = _GUITAR.get(chord.intervals[:4]) or _GUITAR.get(chord.intervals[:3]) or (0, 7, 12, 16, 19)
    root = lo + (chord.root - lo) % 12
    out = [root + s for s in shape if root + s <= hi]
    return out
