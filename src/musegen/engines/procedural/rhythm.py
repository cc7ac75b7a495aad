"""Melody rhythm vocabularies, one per :data:`musegen.presets.MELODY_RHYTHMS` value.

A rhythm is built from cells: each cell spans whole beats and lists note
lengths in beats (negative = rest).  Simple meters use quarter-note beats,
compound meters dotted-quarter beats, so ``1/3`` is an eighth in 6/8.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction as F

from musegen.engines.procedural.chance import choose
from musegen.engines.procedural.meter import Grid

Cell = tuple[F, ...]
_t, _s = F(1, 3), F(1, 6)

SIMPLE: dict[str, list[tuple[Cell, float]]] = {
    "long": [((F(2),), 3), ((F(1),), 2), ((F(3),), 1), ((F(4),), 1), ((F(3, 2), F(1, 2)), 1.5),
             ((F(2), F(-1)), 0.5), ((F(-1),), 0.3)],
    "lyrical": [((F(1),), 3), ((F(2),), 2), ((F(3, 2), F(1, 2)), 2), ((F(1, 2), F(1, 2)), 2),
                ((F(1, 2), F(1), F(1, 2)), 0.6), ((F(3),), 0.5)],
    "mixed": [((F(1),), 3), ((F(1, 2), F(1, 2)), 3), ((F(3, 2), F(1, 2)), 1.5), ((F(3, 4), F(1, 4)), 1),
              ((F(2),), 1), ((F(1, 4), F(1, 4), F(1, 2)), 0.5), ((F(1, 2), F(1, 4), F(1, 4)), 0.5)],
    "eighths": [((F(1, 2), F(1, 2)), 8), ((F(1),), 1.5), ((F(1, 4), F(1, 4), F(1, 2)), 0.4),
                ((_t, _t, _t), 0.3)],
    "sixteenths": [((F(1, 4),) * 4, 5), ((F(1, 2), F(1, 4), F(1, 4)), 2), ((F(1, 4), F(1, 4), F(1, 2)), 2),
                   ((F(1, 2), F(1, 2)), 1.5), ((F(3, 4), F(1, 4)), 1)],
    "syncopated": [((F(1, 2), F(1), F(1, 2)), 3), ((F(3, 4), F(3, 4), F(1, 2)), 3), ((F(-1, 2), F(1, 2)), 1),
                   ((F(1, 2), F(1, 2)), 1.5), ((F(3, 2), F(3, 2), F(1)), 2), ((F(1),), 1),
                   ((F(-1, 4), F(1, 4), F(1, 2)), 0.7)],
    "triplets": [((_t, _t, _t), 4), ((2 * _t, _t), 3), ((F(1),), 2), ((F(1, 2), F(1, 2)), 1),
                 ((-_t, _t, _t), 0.7)],
}
COMPOUND: dict[str, list[tuple[Cell, float]]] = {
    "long": [((F(1),), 3), ((F(2),), 2), ((2 * _t, _t), 2), ((_t, 2 * _t), 0.5)],
    "lyrical": [((2 * _t, _t), 3), ((F(1),), 2), ((_t, _t, _t), 2), ((F(1, 2), _s, _t), 1)],
    "mixed": [((_t, _t, _t), 3), ((2 * _t, _t), 3), ((F(1),), 1.5), ((_s, _s, _t, _t), 0.7)],
    "eighths": [((_t, _t, _t), 8), ((2 * _t, _t), 2), ((_s, _s, _t, _t), 0.4)],
    "sixteenths": [((_s,) * 6, 4), ((_t, _s, _s, _t), 2), ((_t, _t, _t), 2)],
    "syncopated": [((_t, 2 * _t), 3), ((2 * _t, _t), 2), ((-_t, _t, _t), 1), ((_t, _t, _t), 1)],
    "triplets": [((_t, _t, _t), 6), ((2 * _t, _t), 2), ((F(1),), 1)],
}

#: one rhythm event: (onset from the bar start, duration, is_rest), in ticks
Event = tuple[int, int, bool]


def _density_weight(cell: Cell, weight: float, density: float) -> float:
    span = sum(abs(x) for x in cell)
    notes_per_beat = sum(1 for x in cell if x > 0) / float(span)
    return weight * math.exp((density - 0.5) * 2.0 * (notes_per_beat - 1.0))


def bar_rhythm(kind: str, grid: Grid, rng: random.Random, *, density: float = 0.5,
               temperature: float = 1.0, beats: int | None = None) -> list[Event]:
    """Rhythm events filling ``beats`` beats (default a whole bar)."""
    vocab = (COMPOUND if grid.compound else SIMPLE)[kind]
    total = grid.beats if beats is None else beats
    pos, out = F(0), []
    while pos < total:
        room = total - pos
        fits = [(c, w) for c, w in vocab if sum(abs(x) for x in c) <= room]
        if not fits:
            fits = [((room,), 1.0)]
        cell = choose(rng, [c for c, _ in fits], [_density_weight(c, w, density) for c, w in fits], temperature)
        for d in cell:
            a, b = round(pos * grid.beat), round((pos + abs(d)) * grid.beat)
            out.append((a, b - a, d < 0))
            pos += abs(d)
    return out


def cadence_rhythm(grid: Grid, rng: random.Random, *, target_offset: int, final: bool,
                   kind: str, density: float = 0.5) -> list[Event]:
    """A cadence bar: lead-in notes up to ``target_offset``, then the goal note held."""
    out: list[Event] = []
    if target_offset > 0:
        beats = max(1, target_offset // grid.beat)
        out = bar_rhythm(kind, grid, rng, density=density, beats=beats)
    hold = grid.bar - target_offset
    if not final and kind in ("eighths", "sixteenths") and hold > grid.beat:
        # dance tunes keep running: a one-beat goal, then notes leading into the next phrase
        out.append((target_offset, grid.beat, False))
        rest = bar_rhythm(kind, grid, rng, density=density, beats=(hold - grid.beat) // grid.beat)
        return out + [(target_offset + grid.beat + o, d, r) for o, d, r in rest]
    if not final and hold > grid.beat:
        # leave a breath before the next phrase
        breath = grid.beat if hold >= 3 * grid.beat or grid.compound else grid.sub
        out.append((target_offset, hold - breath, False))
        out.append((target_offset + hold - breath, breath, True))
    else:
        out.append((target_offset, hold, False))
    return out
