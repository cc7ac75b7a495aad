"""Drum patterns on the General MIDI percussion map, with fills and accents.

Patterns are step strings per meter family (``duple`` 16 steps per 4/4 bar,
``triple`` 12 per 3/4 bar, ``compound`` 12 per 6/8 bar) where ``X x o g``
are accent, normal, soft and ghost hits.  Other meters repeat or cut the
family pattern to their length.  Each phrase ends in a fill that suits the
pattern and the next phrase opens with a crash; the piece ends on one hit.
"""

from __future__ import annotations

import random

from musegen.engines.procedural.chance import chance
from musegen.engines.procedural.form import Phrase
from musegen.engines.procedural.melody import Note
from musegen.engines.procedural.meter import Grid

KICK, SIDE, SNARE, CLAP, FLOOR_LO, CHH, FLOOR_HI, PHH = 36, 37, 38, 39, 41, 42, 43, 44
TOM_LO, OHH, TOM_LM, TOM_HM, CRASH, TOM_HI, RIDE, TAMB, SHAKER = 45, 46, 47, 48, 49, 50, 51, 54, 70
_LEVEL = {"X": 1.22, "x": 1.0, "o": 0.72, "g": 0.42}

PATTERNS: dict[str, dict[str, dict[int, str]]] = {
    "backbeat": {
        "duple": {KICK: "x.......x.x.....", SNARE: "....X.......X...", CHH: "x.o.x.o.x.o.x.o."},
        "triple": {KICK: "x...........", SNARE: "....x...x...", CHH: "x.o.x.o.x.o."},
        "compound": {KICK: "x.........o.", SNARE: "......X.....", CHH: "x.o.o.x.o.o."},
    },
    "ballad": {
        "duple": {KICK: "x.......x.....o.", SIDE: "....x.......x...", CHH: "o.g.o.g.o.g.o.g."},
        "triple": {KICK: "x...........", SIDE: "....o...o...", CHH: "o.g.o.g.o.g."},
        "compound": {KICK: "x.........o.", SIDE: "......x.....", CHH: "o.g.g.o.g.g."},
    },
    "four-on-floor": {
        "duple": {KICK: "X...X...X...X...", CLAP: "....x.......x...", OHH: "..o...o...o...o.",
                  CHH: "g.g.g.g.g.g.g.g."},
        "triple": {KICK: "X...X...X...", CLAP: "....x...x...", OHH: "..o...o...o."},
        "compound": {KICK: "X.....X.....", CLAP: "......x.....", OHH: "..o.o...o.o."},
    },
    "boom-bap": {
        "duple": {KICK: "X.....x..x......", SNARE: "....X.......X..g", CHH: "x.o.x.o.x.o.x.o."},
        "triple": {KICK: "X.....x.....", SNARE: "....X.......", CHH: "x.o.x.o.x.o."},
        "compound": {KICK: "X....x......", SNARE: "......X.....", CHH: "x.o.o.x.o.o."},
    },
    "half-time": {
        "duple": {KICK: "x.....x...x.....", SNARE: "........X.......", CHH: "x.o.x.o.x.o.x.o."},
        "triple": {KICK: "x.........x.", SNARE: "........X...", CHH: "x.o.x.o.x.o."},
        "compound": {KICK: "x.......x...", SNARE: "......X.....", CHH: "x.o.o.x.o.o."},
    },
    "bossa": {
        # two bars: the rim click plays the 3-2 bossa clave
        "duple": {KICK: "x..xx...x..xx...", SIDE: "x.....x.....x.......x.....x.....", SHAKER: "x.o.x.o.x.o.x.o."},
        "triple": {KICK: "x..x....x...", SIDE: "x.....x.....", SHAKER: "x.o.x.o.x.o."},
        "compound": {KICK: "x....xx....x", SIDE: "x.....x.....", SHAKER: "x.o.o.x.o.o."},
    },
    "jazz-ride": {
        "duple": {RIDE: "x...x.o.x...x.o.", PHH: "....x.......x...", KICK: "g...g...g...g..."},
        "triple": {RIDE: "x...x.o.x.o.", PHH: "....x...x..."},
        "compound": {RIDE: "x...o.x...o.", PHH: "......x....."},
    },
    "reel": {
        "duple": {FLOOR_HI: "X.o.x.o.X.o.x.o.", KICK: "o.......o......."},
        "triple": {FLOOR_HI: "X.o.x.o.x.o."},
        "compound": {FLOOR_HI: "X.o.o.x.o.o.", KICK: "o.....o....."},
    },
    "chiptune": {
        "duple": {KICK: "x.....x.x.......", SNARE: "....x.......x...", CHH: "x.xox.xox.xox.xo"},
        "triple": {KICK: "x...........", SNARE: "....x...x...", CHH: "x.x.x.x.x.x."},
        "compound": {KICK: "x.....x.....", SNARE: "......x.....", CHH: "x.x.x.x.x.x."},
    },
    "synthwave": {
        "duple": {KICK: "x.......x.x.....", SNARE: "....X.......X...", CLAP: "....x.......x...",
                  CHH: "x.o.x.o.x.o.x.o."},
        "triple": {KICK: "x...........", SNARE: "....X...x...", CHH: "x.o.x.o.x.o."},
        "compound": {KICK: "x.........x.", SNARE: "......X.....", CHH: "x.o.o.x.o.o."},
    },
    "cinematic": {
        "duple": {FLOOR_LO: "X..x..x.x..x..x.", KICK: "x.......x.......", FLOOR_HI: "..........o..o.."},
        "triple": {FLOOR_LO: "X...x...x.o.", KICK: "x..........."},
        "compound": {FLOOR_LO: "X.o.o.x.o.o.", KICK: "x.....x....."},
    },
}
_FILL = {"backbeat": "toms", "ballad": "toms8", "four-on-floor": "roll", "boom-bap": "break",
         "half-time": "toms", "bossa": "rim", "jazz-ride": "jazz", "reel": "reel", "chiptune": "roll",
         "synthwave": "toms", "cinematic": "toms"}
_CRASH_ON_START = {"backbeat", "synthwave", "chiptune", "cinematic"}
_NO_CRASH = {"reel"}
_TOMS = (TOM_HI, TOM_HI, TOM_HM, TOM_HM, TOM_LM, TOM_LM, TOM_LO, FLOOR_LO)


def _family(grid: Grid) -> tuple[str, int]:
    if grid.compound:
        return "compound", 6
    if grid.beats == 3:
        return "triple", 4
    return "duple", 4


def _bar_steps(layer: str, steps: int, bar_index: int, base_len: int) -> str:
    if len(layer) > base_len:      # a two-bar layer
        half = len(layer) // 2
        layer = layer[half:] if bar_index % 2 else layer[:half]
    reps = -(-steps // len(layer))
    return (layer * reps)[:steps]


class _Kit:
    def __init__(self, grid: Grid, velocity: int):
        self.grid, self.velocity = grid, velocity
        self.notes: list[Note] = []

    def hit(self, t: int, pitch: int, level: float, dur: int | None = None) -> None:
        v = int(round(self.velocity * level))
        self.notes.append([t, dur or max(1, self.grid.sixteenth), pitch, max(1, min(127, v))])


def drum_part(pattern: str, grid: Grid, phrases: list[Phrase], *, rng: random.Random, velocity: int,
              density: float = 0.5, temperature: float = 1.0, fills: bool = True,
              ending: bool = True) -> list[Note]:
    """Notes of a drum track (GM percussion pitches) over ``phrases``."""
    if pattern == "none" or pattern not in PATTERNS:
        return []
    family, spb = _family(grid)
    table = PATTERNS[pattern][family]
    base_len = min(len(s) for s in table.values())
    steps = grid.beats * spb
    step = grid.beat // spb
    kit = _Kit(grid, velocity)
    fill_kind = _FILL[pattern]
    last_phrase = phrases[-1]
    for ph in phrases:
        for bar in range(ph.start_bar, ph.end_bar):
            b0 = grid.bar_start(bar)
            is_last_bar = bar == ph.end_bar - 1
            final_bar = ending and ph is last_phrase and is_last_bar and ph.end_bar - phrases[0].start_bar >= 2
            if final_bar:
                kit.hit(b0, KICK, 1.1)
                if pattern not in _NO_CRASH:
                    kit.hit(b0, CRASH, 1.0, grid.bar)
                else:
                    kit.hit(b0, FLOOR_HI, 1.2)
                continue
            fill_beats = 0
            if fills and is_last_bar and ph is not last_phrase and grid.beats >= 2:
                fill_beats = 1 if density < 0.5 else 2
                if ph.index % 2 == 1:
                    fill_beats += 1
                fill_beats = min(fill_beats, grid.beats - 1)
            fill_from = steps - fill_beats * spb
            for pitch, layer in table.items():
                line = _bar_steps(layer, steps, bar, base_len)
                if pitch in (CHH, SHAKER) and density > 0.75 and pattern in ("backbeat", "synthwave", "four-on-floor"):
                    line = "".join(c if c != "." else "g" for c in line)
                for k, c in enumerate(line):
                    if c == "." or k >= fill_from and pitch not in (KICK, PHH, RIDE):
                        continue
                    if k >= fill_from and pitch == KICK and k % spb:
                        continue
                    if pitch in (CHH, SHAKER) and density < 0.3 and k % spb:
                        continue
                    level = _LEVEL[c]
                    if pitch == CHH and k == steps - 2 and bar % 2 == 1 and pattern in (
                            "backbeat", "synthwave", "boom-bap") and fill_beats == 0:
                        kit.hit(b0 + k * step, OHH, level, grid.sub)
                        continue
                    kit.hit(b0 + k * step, pitch, level)
            # small variations
            if pattern == "jazz-ride":
                for k in range(steps):
                    if k % (spb // 2) == 0 and k % spb and k < fill_from and chance(rng, 0.22 * density + 0.05):
                        kit.hit(b0 + k * step, SNARE, rng.uniform(0.3, 0.55))
            elif table.get(KICK) and chance(rng, 0.12 * temperature) and fill_beats == 0:
                k = rng.choice([s for s in range(steps // 2, steps) if s % 2 == 0 and s % spb])
                kit.hit(b0 + k * step, KICK, 0.7)
            if fill_beats:
                _fill(kit, fill_kind, b0 + fill_from * step, b0 + grid.bar, grid, rng)
        # a crash (with a kick under it) opens every phrase after the first
        t0 = grid.bar_start(ph.start_bar)
        if pattern not in _NO_CRASH and (ph.index > 0 or pattern in _CRASH_ON_START) and \
                not (ending and ph is last_phrase and ph.bars == 1):
            kit.hit(t0, RIDE if pattern == "jazz-ride" else CRASH, 0.8 if pattern == "jazz-ride" else 1.0,
                    grid.bar)
            if pattern != "jazz-ride" and not any(n[0] == t0 and n[2] == KICK for n in kit.notes):
                kit.hit(t0, KICK, 1.0)
    return kit.notes


def _fill(kit: _Kit, kind: str, start: int, end: int, grid: Grid, rng: random.Random) -> None:
    s16 = grid.sixteenth if not grid.compound else grid.sub // 2
    n = max(1, (end - start) // s16)
    if kind in ("toms", "toms8"):
        stride = 2 if kind == "toms8" else 1
        for i in range(0, n, stride):
            tom = _TOMS[min(len(_TOMS) - 1, int(i * len(_TOMS) / n))]
            kit.hit(start + i * s16, tom, 0.75 + 0.35 * i / n)
        kit.hit(start, KICK, 0.9)
    elif kind == "roll":
        for i in range(n):
            kit.hit(start + i * s16, SNARE, 0.4 + 0.75 * i / n)
    elif kind == "break":
        for i in range(n):
            if i % 2 == 0 or chance(rng, 0.4):
                kit.hit(start + i * s16, SNARE, 0.55 + 0.4 * (i % 2 == 0))
    elif kind == "jazz":
        trip = grid.beat // 3
        for i in range(max(1, (end - start) // trip)):
            kit.hit(start + i * trip, SNARE if i % 3 else TOM_LM, rng.uniform(0.45, 0.75))
        kit.hit(end - trip, KICK, 0.8)
    elif kind == "rim":
        for i in range(0, n, 2):
            kit.hit(start + i * s16, SIDE, 0.5 + 0.3 * i / n)
        kit.hit(end - s16, TOM_LO, 0.6)
    elif kind == "reel":
        trip = max(1, s16 * 2 // 3)
        for i in range(max(1, (end - start) // trip)):
            kit.hit(start + i * trip, FLOOR_HI, 0.55 + 0.5 * i * trip / max(1, end - start))
