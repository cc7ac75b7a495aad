"""Feel: swing and humanized timing and velocity.

Both work on note lists in place of a performer; randomness comes from the
caller's seeded generator.
"""

from __future__ import annotations

import random

from musegen.engines.procedural.melody import Note
from musegen.engines.procedural.meter import Grid


def swing(notes: list[Note], grid: Grid, amount: float, *, unit: str = "eighth") -> list[Note]:
    """Delay off-beat eighths (or sixteenths) by ``amount`` of half a pair; 0.33 is triplet swing.

    Time is warped piecewise-linearly inside each pair, so note ends move with
    the starts and nothing overlaps that did not before.  Compound meters are
    already ternary and stay as they are.
    """
    if amount <= 0 or grid.compound:
        return notes
    pair = grid.beat if unit == "eighth" else grid.beat // 2
    half = pair / 2
    delay = amount * half

    def warp(t: int) -> int:
        k, r = divmod(t - grid.origin, pair)
        if r <= half:
            r2 = r * (half + delay) / half
        else:
            r2 = half + delay + (r - half) * (half - delay) / half
        return grid.origin + k * pair + int(round(r2))

    out = []
    for s, d, p, v in notes:
        a, b = warp(s), warp(s + d)
        out.append([a, max(1, b - a), p, v])
    return out


def humanize(notes: list[Note], grid: Grid, amount: float, rng: random.Random, *,
             timing: float = 1.0, lo: int | None = None, hi: int | None = None) -> list[Note]:
    """Jitter onsets (about ``amount`` x 12 ms at 120 bpm) and velocities (about ``amount`` x 8).

    Notes that start together (a chord) move together; onsets stay within
    ``[lo, hi)`` and ends at or before ``hi``.
    """
    if amount <= 0 or not notes:
        return notes
    lo = grid.origin if lo is None else lo
    hi = grid.end if hi is None else hi
    sigma_t = amount * grid.tpq * 0.025 * timing
    sigma_v = amount * 8.0
    shift: dict[int, int] = {}
    out = []
    for s, d, p, v in notes:
        if s not in shift:
            shift[s] = int(round(rng.gauss(0.0, sigma_t))) if s != lo else 0
        a = min(max(lo, s + shift[s]), hi - 1)
        end = min(hi, s + d + shift[s])
        vel = int(round(v + rng.gauss(0.0, sigma_v)))
        out.append([a, max(1, end - a), p, max(1, min(127, vel))])
    return out
