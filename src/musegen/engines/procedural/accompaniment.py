"""Accompaniment textures, one per :data:`musegen.presets.CHORD_STYLES` value.

Every texture turns chord spans into notes ``[start, dur, pitch, vel]`` with
voice-led voicings.  ``chorale`` and ``polyphony`` are independent voices and
live in :mod:`~musegen.engines.procedural.counterpoint`; here they fall back
to sustained four-part chords when there is no melody to set.
"""

from __future__ import annotations

import random

from musegen.engines.procedural.chance import chance, choose
from musegen.engines.procedural.harmony import ChordSpan, chord_at
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.melody import Note
from musegen.engines.procedural.voicing import close_voicing, drop2, guitar_voicing, rootless_voicing


def _accent(grid: Grid, tick: int) -> int:
    return (-4, 0, 3, 6)[grid.strength(tick)]


def _hits_between(grid: Grid, a: int, b: int, level: int) -> list[int]:
    """Ticks in ``[a, b)`` on the grid: level 0 span start only, 1 strong beats, 2 beats, 3 subdivisions."""
    if level == 0:
        return [a]
    step = grid.sub if level == 3 else grid.beat
    first = grid.origin + -(-(a - grid.origin) // step) * step
    ticks = list(range(first, b, step))
    if level == 1:
        ticks = [t for t in ticks if grid.strength(t) >= 2]
    if not ticks or ticks[0] != a:
        ticks = [a] + [t for t in ticks if t > a]
    return ticks


def block(spans, grid, *, density, velocity, rng, lo=52, hi=76, **_):
    """Struck chords: once per chord, on strong beats, every beat or (dense) a repeated-eighth ostinato."""
    level = 0 if density < 0.3 else 1 if density < 0.6 else 2 if density < 0.85 else 3
    out, prev = [], None
    for sp in spans:
        v = close_voicing(sp.chord, lo, hi, prev=prev, n=4 if len(sp.chord.pcs) >= 4 else 3)
        prev = v
        hits = _hits_between(grid, sp.start, sp.end, level)
        for i, t in enumerate(hits):
            end = hits[i + 1] if i + 1 < len(hits) else sp.end
            dur = max(1, int((end - t) * (0.92 if level < 3 else 0.6)))
            vel = velocity + _accent(grid, t)
            out += [[t, dur, p, vel] for p in v]
    return out


def sustained(spans, grid, *, velocity, lo=52, hi=76, spread=False, voices=4, **_):
    """Chords held for their whole span (pads); ``spread`` opens them with a drop-2."""
    out, prev = [], None
    for sp in spans:
        v = close_voicing(sp.chord, lo, hi, prev=prev, n=voices)
        prev = v
        if spread:
            v = drop2(v)
        out += [[sp.start, sp.length - 4, p, velocity] for p in v]
    return out


def arpeggio(spans, grid, *, density, velocity, rng, lo=52, hi=84, style="pop", **_):
    """Broken chords up (and down) in eighths, or in sixteenths when dense or for game music."""
    fast = density >= 0.6 or style == "game"
    step = grid.sixteenth if fast else grid.sub
    out, prev = [], None
    updown = style != "game"
    for sp in spans:
        v = close_voicing(sp.chord, lo, min(hi, lo + 16), prev=prev, n=min(4, len(sp.chord.pcs)))
        prev = v
        tones = v + [p + 12 for p in v[:2]]
        seq = tones + (tones[-2:0:-1] if updown else [])
        i = 0
        for t in range(sp.start, sp.end, step):
            p = seq[i % len(seq)]
            ring = step * (1 if style == "game" else 2)
            out.append([t, min(ring, sp.end - t), p, velocity + _accent(grid, t) - (0 if i % len(seq) else -3)])
            i += 1
    return out


def _broken_tones(chord, lo: int) -> list[int]:
    r = lo + (chord.root - lo) % 12
    third = chord.intervals[1]
    top = r + (chord.intervals[3] if len(chord.intervals) > 3 else 12)
    tones = [r, r + 7, top, r + 12 + third]
    return tones + [r + 19] if r + 19 <= 67 else tones


def broken(spans, grid, *, velocity, lo=41, **_):
    """Ballad piano left hand: root, fifth, octave, tenth and back, the bass note held as by the pedal."""
    out = []
    n_sub = grid.bar // grid.sub
    half = n_sub // 2 or 1
    up = list(range(min(5, half + 1)))
    shape = (up + up[-2:0:-1]) if half >= 3 else up
    for sp in spans:
        tones = _broken_tones(sp.chord, lo)
        # without room for the top fifth, turn back after the tenth: 1-5-8-10-8-10-8-5
        here = shape if len(tones) >= 5 else [x if x < 4 else 2 for x in shape]
        i = 0
        for t in range(sp.start, sp.end, grid.sub):
            idx = here[i % len(here)]
            p = tones[min(idx, len(tones) - 1)]
            if i == 0:
                dur = sp.end - t      # the pedal holds the bass of the pattern
            else:
                dur = min(grid.beat * 2, sp.end - t)
            out.append([t, dur, p, velocity + _accent(grid, t) - (0 if i == 0 else 6)])
            i += 1
    return out


def alberti(spans, grid, *, density, velocity, lo=48, hi=67, **_):
    """Classical Alberti bass: low, high, middle, high."""
    step = grid.sixteenth if density >= 0.65 else grid.sub
    out, prev = [], None
    for sp in spans:
        v = close_voicing(sp.chord, lo, hi, prev=prev, n=3, tones=list(sp.chord.triad))
        prev = v
        pattern = (v[0], v[2], v[1], v[2])
        for i, t in enumerate(range(sp.start, sp.end, step)):
            out.append([t, step, pattern[i % 4], velocity + _accent(grid, t) - (0 if i % 4 == 0 else 8)])
    return out


_STRUMS = {
    "duple": [(0, "D", 1.0), (2, "D", 0.85), (3, "U", 0.65), (5, "U", 0.65), (6, "D", 0.85), (7, "U", 0.6)],
    "driving": [(i, "D" if i % 2 == 0 else "U", 1.0 if i % 4 == 0 else 0.85 if i % 2 == 0 else 0.6) for i in range(8)],
    "triple": [(0, "D", 1.0), (2, "D", 0.8), (3, "U", 0.6), (4, "D", 0.8), (5, "U", 0.6)],
    "compound": [(0, "D", 1.0), (2, "U", 0.6), (3, "D", 0.85), (5, "U", 0.6)],
}


def strum(spans, grid, *, density, velocity, rng, **_):
    """Guitar strumming: barre shapes, down- and up-strokes spread over a few milliseconds."""
    if grid.compound:
        pattern, per_bar = _STRUMS["compound"], 6
    elif grid.beats == 3:
        pattern, per_bar = _STRUMS["triple"], 6
    else:
        pattern = _STRUMS["driving"] if density >= 0.7 else _STRUMS["duple"]
        per_bar = 8
    spread = max(1, grid.tpq // 40)   # ~12 ms between strings at 100 bpm
    out = []
    bars_seen = sorted({grid.bar_of(sp.start) for sp in spans} | {grid.bar_of(sp.end - 1) for sp in spans})
    hits = []
    for bar in bars_seen:
        b0 = grid.bar_start(bar)
        for pos, direction, acc in pattern:
            if pos >= per_bar:
                continue
            hits.append((b0 + pos * grid.bar // per_bar, direction, acc))
    hits = [h for h in hits if spans[0].start <= h[0] < spans[-1].end]
    for i, (t, direction, acc) in enumerate(hits):
        end = hits[i + 1][0] if i + 1 < len(hits) else spans[-1].end
        sp = chord_at(spans, t)
        end = min(end, sp.end)
        v = guitar_voicing(sp.chord)
        strings = v if direction == "D" else list(reversed(v[-4:]))
        vel = int(velocity * acc)
        for k, p in enumerate(strings):
            s = t + k * spread
            if s < end:
                out.append([s, max(1, end - s - 2), p, vel - k])
    return out


_COMP_JAZZ = [  # (beat offset, length in beats)
    ((0.0, 0.75), (1.5, 0.5)),                   # Charleston
    ((1.5, 0.5), (3.5, 0.5)),
    ((0.0, 1.5),),
    ((1.0, 0.5), (2.5, 0.5)),
    ((0.5, 0.5), (2.0, 0.75)),
    ((2.5, 1.0),),
]
_BOSSA = ([0, 3, 6], [2, 5])   # eighth positions of the two-bar guitar batida


def comp(spans, grid, *, density, velocity, rng, temperature=1.0, style="jazz", **_):
    """Jazz comping (syncopated rootless shells, anticipating chord changes) or a bossa-nova batida."""
    out, prev = [], None
    first_bar, last_bar = grid.bar_of(spans[0].start), grid.bar_of(spans[-1].end - 1)
    for bar in range(first_bar, last_bar + 1):
        b0 = grid.bar_start(bar)
        if style == "latin" and not grid.compound:
            eighths = _BOSSA[(bar - first_bar) % 2]
            hits = [(b0 + e * grid.sub, grid.sub * 3 // 2) for e in eighths if e * grid.sub < grid.bar]
        elif grid.beats == 4 and not grid.compound:
            k = choose(rng, list(range(len(_COMP_JAZZ))), [3, 2, 1 + 2 * (1 - density), 2, 1.5, 1], temperature)
            hits = [(b0 + int(o * grid.beat), int(d * grid.beat)) for o, d in _COMP_JAZZ[k]]
        else:
            offs = [k * grid.sub for k in range(grid.bar // grid.sub) if k % 2 == 1 or k == 0]
            hits = [(b0 + o, grid.sub) for o in offs if chance(rng, 0.3 + 0.4 * density)] or [(b0, grid.beat)]
        for t, d in hits:
            if not (spans[0].start <= t < spans[-1].end):
                continue
            # a hit just before a chord change anticipates the next chord
            sp = chord_at(spans, t + grid.sub if style != "latin" else t)
            # three-note shells (3rd, 7th, 9th): light enough to leave room for the tune
            v = rootless_voicing(sp.chord, 48, 67, prev=prev, n=3) if style != "latin" else \
                close_voicing(sp.chord, 52, 72, prev=prev, n=3)
            prev = v
            d = min(d, spans[-1].end - t)
            out += [[t, d, p, velocity + _accent(grid, t) - rng.randrange(6)] for p in v]
    return out


def stabs(spans, grid, *, density, velocity, rng, lo=55, hi=74, **_):
    """Short off-beat chord stabs (house/techno); dense grooves use a syncopated sixteenth pattern."""
    out, prev = [], None
    if density < 0.5 or grid.compound or grid.beats != 4:
        positions = [k * grid.sub for k in range(grid.bar // grid.sub) if k % 2 == 1]
    else:
        positions = [p * grid.sixteenth for p in (3, 6, 10, 14)]
    for sp in spans:
        v = close_voicing(sp.chord, lo, hi, prev=prev, n=min(4, len(sp.chord.pcs)))
        prev = v
        for bar in range(grid.bar_of(sp.start), grid.bar_of(sp.end - 1) + 1):
            b0 = grid.bar_start(bar)
            for pos in positions:
                t = b0 + pos
                if sp.start <= t < sp.end:
                    out += [[t, grid.sixteenth * 3 // 2, p, velocity + rng.randrange(-4, 5)] for p in v]
    return out


def waltz(spans, grid, *, velocity, with_bass=True, lo=55, hi=72, **_):
    """Oom-pah-pah: chords on the beats after the first (the bass, or a low root here, takes one)."""
    out, prev = [], None
    for sp in spans:
        v = close_voicing(sp.chord, lo, hi, prev=prev, n=3, tones=list(sp.chord.triad))
        prev = v
        for t in range(sp.start, sp.end, grid.beat):
            if grid.strength(t) == 3:
                if not with_bass:
                    r = 36 + (sp.chord.bass_pc - 36) % 12
                    out.append([t, grid.beat, r, velocity + 4])
                continue
            out += [[t, int(grid.beat * 0.7), p, velocity - 8] for p in v]
    return out


def four_part(spans, grid, *, velocity, **_):
    """Sustained four-part chords (chorale/polyphony without a melody to set)."""
    out, prev = [], None
    for sp in spans:
        v = close_voicing(sp.chord, 48, 72, prev=prev, n=4)
        prev = v
        out += [[sp.start, sp.length - 10, p, velocity] for p in v]
    return out


TEXTURES = {
    "block": block, "sustained": sustained, "arpeggio": arpeggio, "broken": broken, "alberti": alberti,
    "strum": strum, "comp": comp, "stabs": stabs, "waltz": waltz, "chorale": four_part, "polyphony": four_part,
}


def accompany(style: str, spans: list[ChordSpan], grid: Grid, *, rng: random.Random, density: float,
              velocity: int, temperature: float = 1.0, preset_style: str = "pop",
              with_bass: bool = True, **kw) -> list[Note]:
    """Notes of the ``style`` texture over ``spans``."""
    fn = TEXTURES[style]
    return fn(spans, grid, density=density, velocity=velocity, rng=rng, temperature=temperature,
              style=preset_style, with_bass=with_bass, **kw)
