"""Bass lines: the chord roots set to a style's rhythm.

Patterns: ``root`` (held), ``ballad``, ``root-fifth``, ``folk``, ``waltz``,
``pulse`` (eighth-note roots), ``octave`` (synthwave pumping), ``walking``
(jazz quarters with chromatic approaches), ``bossa``, ``pedal`` (tonic
pedal), ``offbeat`` (techno), ``hiphop`` and ``chip``.
"""

from __future__ import annotations

import random

from musegen.engines.procedural.chance import chance, choose
from musegen.engines.procedural.harmony import ChordSpan, chord_at
from musegen.engines.procedural.melody import Note
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.theory import nearest_pitch

PATTERNS = ("root", "ballad", "root-fifth", "folk", "waltz", "pulse", "octave", "walking", "bossa",
            "pedal", "offbeat", "hiphop", "chip")


def default_pattern(style: str, drum_pattern: str, chord_style: str) -> str:
    """The bass pattern that suits a preset."""
    if chord_style == "waltz":
        return "waltz"
    by_drums = {"jazz-ride": "walking", "bossa": "bossa", "four-on-floor": "offbeat", "synthwave": "octave",
                "chiptune": "chip", "boom-bap": "hiphop", "ballad": "ballad", "backbeat": "pulse",
                "reel": "folk", "cinematic": "root", "half-time": "root-fifth"}
    by_style = {"jazz": "walking", "latin": "bossa", "ambient": "pedal", "cinematic": "root",
                "folk": "folk", "game": "chip", "hiphop": "hiphop", "classical": "root-fifth"}
    if drum_pattern in by_drums and drum_pattern != "none":
        return by_drums[drum_pattern]
    return by_style.get(style, "root-fifth")


class _Bass:
    def __init__(self, grid: Grid, spans: list[ChordSpan], *, rng, velocity, scale, lo, hi, tonic):
        self.grid, self.spans, self.rng = grid, spans, rng
        self.velocity, self.scale, self.lo, self.hi, self.tonic = velocity, scale, lo, hi, tonic
        self.prev = (lo + hi) // 2 - 3
        self.notes: list[Note] = []

    def root(self, chord, target: float | None = None) -> int:
        p = nearest_pitch(chord.bass_pc, self.prev if target is None else target, self.lo, self.hi)
        # drift back toward the centre of the register
        centre = (self.lo + self.hi) / 2 - 3
        if abs(p - centre) > 8:
            p = nearest_pitch(chord.bass_pc, centre, self.lo, self.hi)
        return p

    def add(self, t: int, dur: int, p: int, accent: int = 0) -> None:
        while p < self.lo:
            p += 12
        while p > self.hi:
            p -= 12
        s = self.grid.strength(t)
        self.notes.append([t, max(1, dur), p, self.velocity + accent + (0, 0, 2, 4)[s]])
        self.prev = p


def bass_line(pattern: str, spans: list[ChordSpan], grid: Grid, *, rng: random.Random, velocity: int,
              scale: tuple[int, ...], tonic: int, density: float = 0.5, temperature: float = 1.0,
              lo: int = 28, hi: int = 55) -> list[Note]:
    """Notes ``[start, dur, pitch, vel]`` of a bass line over ``spans``."""
    b = _Bass(grid, spans, rng=rng, velocity=velocity, scale=scale, lo=lo, hi=hi, tonic=tonic)
    beat, sub = grid.beat, grid.sub
    for i, sp in enumerate(spans):
        c = sp.chord
        nxt = spans[i + 1].chord if i + 1 < len(spans) else None
        r = b.root(c)
        fifth = r + (c.fifth - c.root) % 12
        if fifth - 12 >= lo and fifth > r + 7:
            fifth -= 12
        if pattern == "root":
            b.add(sp.start, sp.length - sub // 4, r)
        elif pattern == "pedal":
            t = sp.start
            while t < sp.end:
                d = min(grid.bar, sp.end - t)
                b.add(t, d - sub // 4, nearest_pitch(tonic, 36, lo, hi))
                t += d
        elif pattern in ("ballad", "root-fifth", "folk"):
            pulses = [t for t in range(sp.start, sp.end, beat) if grid.strength(t) >= 2] or [sp.start]
            if pattern == "folk" and grid.beats == 4:
                pulses = list(range(sp.start, sp.end, beat))
            for k, t in enumerate(pulses):
                end = pulses[k + 1] if k + 1 < len(pulses) else sp.end
                if pattern == "ballad":
                    p = r if k == 0 or chance(rng, 0.5) else fifth
                    if k == len(pulses) - 1 and nxt is not None and end - t >= 2 * beat and chance(rng, 0.45):
                        b.add(t, end - t - beat, p)
                        nr = nearest_pitch(nxt.bass_pc, p, lo, hi)
                        b.add(end - beat, beat - sub // 4, nr + choose(rng, [-2, 2, -1, 1], [2, 2, 1, 1]), -8)
                        continue
                else:
                    p = r if k % 2 == 0 else fifth
                    if pattern == "folk":
                        p = r if k % 2 == 0 else (fifth if chance(rng, 0.7) else r + 12)
                gap = sub // 2 if pattern == "folk" else sub // 4
                b.add(t, end - t - gap, p)
        elif pattern == "waltz":
            for t in range(sp.start, sp.end, grid.bar):
                bar = grid.bar_of(t)
                b.add(t, beat - sub // 4, r if bar % 2 == 0 or sp.length < 2 * grid.bar else fifth)
        elif pattern in ("pulse", "octave", "chip"):
            k = 0
            for t in range(sp.start, sp.end, sub):
                if pattern == "octave":
                    p = r if k % 2 == 0 else r + 12
                elif pattern == "chip":
                    p = (r, r + 12, fifth + 12, r + 12)[k % 4] if density >= 0.5 else (r, r + 12)[k % 2]
                else:
                    p = r
                    if t + sub >= sp.end and nxt is not None and chance(rng, 0.3):
                        p = fifth
                b.add(t, int(sub * (0.8 if pattern != "pulse" else 0.9)), p, 0 if k % 2 == 0 else -10)
                k += 1
        elif pattern == "offbeat":
            step = grid.sixteenth
            for t in range(sp.start, sp.end, step):
                pos = (t - grid.origin) % beat
                if density >= 0.6 and not grid.compound:
                    if pos == 0:
                        continue
                    b.add(t, int(step * 0.8), r + (12 if pos == 2 * step and chance(rng, 0.15) else 0), -6)
                elif pos == beat // 2:
                    b.add(t, int(sub * 0.8), r)
        elif pattern == "hiphop" and grid.beats == 4 and not grid.compound:
            s16 = grid.sixteenth
            for bar in range(grid.bar_of(sp.start), grid.bar_of(sp.end - 1) + 1):
                b0 = grid.bar_start(bar)
                for step, length, kind in ((0, 5, "r"), (6, 2, "r"), (9, 4, "f" if chance(rng, 0.5) else "r"),
                                           (14, 2, "a")):
                    t = b0 + step * s16
                    if not sp.start <= t < sp.end:
                        continue
                    if kind == "a":
                        if nxt is None or not chance(rng, 0.5):
                            continue
                        p = nearest_pitch(nxt.bass_pc, r, lo, hi) - 2
                    else:
                        p = r if kind == "r" else fifth
                    b.add(t, length * s16 - s16 // 4, p, -4 if step else 0)
        elif pattern == "bossa" and not grid.compound:
            for bar in range(grid.bar_of(sp.start), grid.bar_of(sp.end - 1) + 1):
                b0 = grid.bar_start(bar)
                for off, length, which in ((0, 1.5, "r"), (1.5, 0.5, "f"), (2.0, 1.5, "f"), (3.5, 0.5, "r")):
                    t = b0 + int(off * beat)
                    if not sp.start <= t < sp.end or off >= grid.beats:
                        continue
                    here = chord_at(spans, t).chord
                    rr = b.root(here)
                    p = rr if which == "r" else rr + (here.fifth - here.root) % 12 - (12 if rr > 40 else 0)
                    b.add(t, int(length * beat) - sub // 4, p)
        else:  # walking, and the fallbacks for meters the patterns above don't fit
            _walk(b, sp, nxt, grid, rng, temperature, pattern == "walking")
    return b.notes


def _walk(b: _Bass, sp: ChordSpan, nxt, grid: Grid, rng, temperature: float, chromatic: bool) -> None:
    beat = grid.beat
    beats = list(range(sp.start, sp.end, beat))
    r = b.root(sp.chord)
    target = nearest_pitch(nxt.bass_pc, r, b.lo, b.hi) if nxt is not None else r
    chord_pcs = set(sp.chord.pcs)
    p = r
    for k, t in enumerate(beats):
        if k == 0:
            p = r
        elif k == len(beats) - 1 and nxt is not None:
            opts = [target - 1, target + 1, target - 2, target + 2, target + 7 - 12]
            w = [3, 2, 1.5, 1.5, 1] if chromatic else [0.3, 0.3, 2, 2, 1]
            p = choose(rng, opts, w, temperature)
        else:
            remaining = len(beats) - k
            want = p + (target - p) / max(1, remaining)
            cands = [q for q in range(b.lo, b.hi + 1) if q % 12 in chord_pcs or q % 12 in b.scale]
            costs = [abs(q - want) + (0 if q % 12 in chord_pcs else 1.5) + (3 if q == p else 0)
                     + (2 if abs(q - p) > 7 else 0) for q in cands]
            best = min(costs)
            pool = [q for q, c in zip(cands, costs) if c <= best + 1.0]
            p = pool[rng.randrange(len(pool))]
        b.add(t, int(beat * 0.92), p, -3 if k % 2 else 0)
