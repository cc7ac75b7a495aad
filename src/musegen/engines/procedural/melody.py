"""Motif-based melody.

A melody is written phrase by phrase.  Each phrase opens with a one-bar motif
(or recalls the material of an earlier phrase with the same label), develops
it by repetition and diatonic sequence, fills the rest with freely written
bars and closes with a cadence on a stable degree: the tonic at full
cadences, the 2nd/5th/7th over V at half cadences.  Pitches come from
:class:`LineWriter`, which scores every candidate (step or leap, pull toward
the phrase contour, chord tones on strong beats, gap-fill after leaps) and
samples with the engine's temperature.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from musegen.engines.procedural.chance import chance, choose, choose_by_cost
from musegen.engines.procedural.form import Phrase
from musegen.engines.procedural.harmony import ChordSpan, chord_at
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.rhythm import Event, bar_rhythm, cadence_rhythm
from musegen.engines.procedural.theory import scale_pitches, step_in_scale

#: a note: [start_tick, duration_tick, pitch, velocity]
Note = list

_ARTICULATION = {"long": 0.98, "lyrical": 0.96, "mixed": 0.92, "eighths": 0.9, "sixteenths": 0.86,
                 "syncopated": 0.86, "triplets": 0.9}


@dataclass(frozen=True)
class MelodySpec:
    """What shapes a melody (from the preset's [melody] and [groove] tables)."""

    rhythm: str
    lo: int
    hi: int
    scale: tuple[int, ...]
    tonic: int
    leap: float = 0.3
    repetition: float = 0.5
    density: float = 0.5
    velocity: int = 90
    chorale: bool = False      # one note per beat, fermata cadences, no chords given


class LineWriter:
    """Chooses the next pitch of a line, remembering the last pitch and interval."""

    def __init__(self, lo: int, hi: int, scale: tuple[int, ...], *, leap: float, rng: random.Random,
                 temperature: float, start: int | None = None):
        self.lo, self.hi, self.scale = lo, hi, scale
        self.leap = leap
        self.rng = rng
        self.temperature = temperature
        self.prev = start
        self.prev_iv = 0
        self.repeats = 0
        self.pool = scale_pitches(scale, lo, hi)

    def cost(self, p: int, target: float, chord_pcs, strong: bool) -> float:
        d = abs(p - target)
        c = 0.08 * d + 0.012 * d * d   # flat near the contour, steep far from it
        pc = p % 12
        if strong and chord_pcs and pc not in chord_pcs:
            c += 3.0
        elif not strong and chord_pcs and pc not in chord_pcs:
            c += 0.4
        if self.prev is None:
            return c
        iv = p - self.prev
        a = abs(iv)
        if a == 0:
            c += 1.0 + 1.2 * self.repeats
        elif a <= 2:
            c += 0.0
        elif a <= 4:
            c += 1.1 - 0.7 * self.leap
        elif a <= 7:
            c += 2.4 - 1.4 * self.leap
        elif a <= 12:
            c += 4.5 - 2.0 * self.leap
        else:
            c += 10.0
        if a == 6 or a == 10 or a == 11:
            c += 2.5
        if abs(self.prev_iv) >= 5 and (iv * self.prev_iv > 0 or a > 4):
            c += 2.0  # a leap wants a step back the other way
        if 0 < abs(self.prev_iv) <= 2 and 0 < a <= 2 and iv * self.prev_iv > 0:
            c -= 0.25  # scalar runs keep going
        return c

    def candidates(self, chord_pcs) -> list[int]:
        extra = [p for p in range(self.lo, self.hi + 1) if chord_pcs and p % 12 in chord_pcs]
        return sorted(set(self.pool) | set(extra))

    def pick(self, target: float, chord_pcs=(), strong: bool = False, *, only=None, penalty=None) -> int:
        """Choose, remember and return the next pitch; ``penalty(p)`` adds to the cost."""
        cands = only if only else self.candidates(chord_pcs)
        costs = [self.cost(p, target, chord_pcs, strong) for p in cands]
        if penalty is not None:
            costs = [c + penalty(p) for c, p in zip(costs, cands)]
        p = choose_by_cost(self.rng, cands, costs, self.temperature)
        self.accept(p)
        return p

    def accept(self, p: int) -> None:
        if self.prev is not None:
            iv = p - self.prev
            self.repeats = self.repeats + 1 if iv == 0 else 0
            self.prev_iv = iv
        self.prev = p


def fit_to_chord(p: int, chord_pcs, scale: tuple[int, ...], strong: bool, lo: int, hi: int) -> int:
    """Nudge ``p`` onto a chord tone (strong beats) or a scale tone, staying in range."""
    while p < lo:
        p += 12
    while p > hi:
        p -= 12
    want = chord_pcs if (strong and chord_pcs) else scale
    if p % 12 in want:
        return p
    for d in (1, -1, 2, -2, 3, -3, 4, -4):
        q = p + d
        if lo <= q <= hi and q % 12 in want:
            return q
    return p


def choose_shift(rng: random.Random, pitches: list[int], *, want: float, prev: int | None,
                 scale: tuple[int, ...], lo: int, hi: int, keep: bool = False, temperature: float = 1.0) -> int:
    """Scale steps (-4..4) to transpose a motif: near ``want``, a small step from ``prev``, inside the range.

    ``keep`` favours a literal repeat (0 steps); otherwise a real sequence is preferred.
    """
    if not pitches:
        return 0
    shifts, costs = [], []
    for sh in range(-4, 5):
        moved = [step_in_scale(p, sh, scale) for p in pitches]
        c = 0.25 * abs(moved[0] - want) + 0.15 * abs(sum(moved) / len(moved) - want)
        if prev is not None:
            leap = abs(moved[0] - prev)
            c += 0.3 * leap + (2.0 if leap > 7 else 0.0)
        if sh == 0:
            c += -0.8 if keep else 0.6
        if min(moved) < lo or max(moved) > hi:
            c += 8.0
        shifts.append(sh)
        costs.append(c)
    return choose_by_cost(rng, shifts, costs, temperature)


class _Melody:
    def __init__(self, grid: Grid, spans: list[ChordSpan] | None, spec: MelodySpec,
                 rng: random.Random, temperature: float):
        self.grid, self.spans, self.spec = grid, spans, spec
        self.rng, self.temperature = rng, temperature
        self.writer = LineWriter(spec.lo, spec.hi, spec.scale, leap=spec.leap, rng=rng,
                                 temperature=temperature)
        self.notes: list[Note] = []
        self.stored: dict[str, list[list[tuple[int, int, int | None]]]] = {}
        self.motif: list[tuple[int, int, int | None]] | None = None
        span = spec.hi - spec.lo
        self.center = spec.lo + span * 0.38
        self.stable = tuple((spec.tonic + s) % 12 for s in (0, 4, 7)) if 4 in [
            (x - spec.tonic) % 12 for x in spec.scale] else tuple((spec.tonic + s) % 12 for s in (0, 3, 7))

    # -- helpers -----------------------------------------------------------
    def chord_pcs(self, tick: int):
        """The chord tones a melody note may land on: those inside the melody's scale when there are any."""
        if self.spans:
            pcs = chord_at(self.spans, tick).chord.pcs
            return tuple(pc for pc in pcs if pc in self.spec.scale) or pcs
        return self.stable if self.grid.strength(tick) >= 2 else ()

    def rhythm(self) -> list[Event]:
        if self.spec.chorale:
            return self._chorale_rhythm()
        return bar_rhythm(self.spec.rhythm, self.grid, self.rng, density=self.spec.density,
                          temperature=self.temperature)

    def _chorale_rhythm(self, beats: int | None = None) -> list[Event]:
        g = self.grid
        out, b = [], 0
        total = g.beats if beats is None else beats
        while b < total:
            if chance(self.rng, 0.18 * self.spec.density * 2):
                out += [(b * g.beat, g.sub, False), (b * g.beat + g.sub, g.beat - g.sub, False)]
            else:
                out.append((b * g.beat, g.beat, False))
            b += 1
        return out

    def target(self, ph: Phrase, tick: int, peak: float, end: float) -> float:
        g = self.grid
        t = (tick - g.bar_start(ph.start_bar)) / float(max(1, ph.bars * g.bar))
        lift = 2.5 if ph.label not in ("A",) else 0.0
        arch = math.sin(math.pi * min(1.0, t / 0.85) ** 0.9)
        base = self.center + lift
        if t > 0.7:
            base = base + (end - base) * (t - 0.7) / 0.3
        return base + (peak - self.center) * arch * 0.8

    def cadence_pitch(self, ph: Phrase, offset: int, end_target: float) -> int:
        spec = self.spec
        tick = self.grid.bar_start(ph.end_bar - 1) + offset
        tonic = spec.tonic
        if ph.cadence == "final":
            pcs = [tonic]
        elif ph.cadence == "full":
            pcs = [tonic] if chance(self.rng, 0.7) else [tonic, (tonic + 4) % 12, (tonic + 3) % 12]
        else:
            pcs = [(tonic + 2) % 12, (tonic + 7) % 12, (tonic + 11) % 12]
        chord = self.chord_pcs(tick) if self.spans else ()
        good = [pc for pc in pcs if pc in spec.scale or pc in chord]
        if chord:
            good = [pc for pc in good if pc in chord] or list(chord[:3])
        good = good or [tonic]
        cands = [p for p in range(spec.lo, spec.hi + 1) if p % 12 in good]
        if not cands:
            return int(end_target)
        prev = self.writer.prev if self.writer.prev is not None else end_target
        return min(cands, key=lambda p: abs(p - end_target) * 0.6 + abs(p - prev) * 0.4)

    def emit(self, bar: int, events, pitches) -> list[tuple[int, int, int | None]]:
        b0 = self.grid.bar_start(bar)
        art = 0.97 if self.spec.chorale else _ARTICULATION[self.spec.rhythm]
        kept = []
        for (off, dur, rest), p in zip(events, pitches):
            kept.append((off, dur, None if rest else p))
            if rest or p is None:
                continue
            tick = b0 + off
            s = self.grid.strength(tick)
            vel = self.spec.velocity + (-3, 2, 4, 6)[s]   # off-beat, beat, mid-bar, downbeat
            length = max(1, int(dur * art)) if dur < self.grid.beat * 2 else dur - self.grid.sub // 4
            self.notes.append([tick, length, p, vel])
        return kept

    def sample_bar(self, bar: int, events, ph: Phrase, peak: float, end: float, shape: float = 0.0):
        b0 = self.grid.bar_start(bar)
        out = []
        n = max(1, len(events))
        for i, (off, dur, rest) in enumerate(events):
            if rest:
                out.append(None)
                continue
            tick = b0 + off
            strong = self.grid.strength(tick) >= (1 if self.grid.beats <= 3 else 2) or dur >= self.grid.beat
            tgt = self.target(ph, tick, peak, end) + shape * (i / n - 0.5)
            out.append(self.writer.pick(tgt, self.chord_pcs(tick), strong))
        return out

    def realise(self, bar: int, material, *, shift: int = 0):
        """Pitches for stored material moved ``shift`` scale steps, fitted to this bar's chords."""
        b0 = self.grid.bar_start(bar)
        out = []
        for off, dur, p in material:
            if p is None:
                out.append(None)
                continue
            q = step_in_scale(p, shift, self.spec.scale) if shift else p
            tick = b0 + off
            strong = self.grid.strength(tick) >= 2 or dur >= self.grid.beat
            q = fit_to_chord(q, self.chord_pcs(tick), self.spec.scale, strong, self.spec.lo, self.spec.hi)
            self.writer.accept(q)
            out.append(q)
        return out

    def sequence_shift(self, ph: Phrase, bar: int, motif, role: str, peak: float, end: float) -> int:
        """Scale steps to move the motif: toward the contour, joined smoothly to the last note."""
        pitches = [p for _, _, p in motif if p is not None]
        want = self.target(ph, self.grid.bar_start(bar), peak, end)
        return choose_shift(self.rng, pitches, want=want, prev=self.writer.prev, scale=self.spec.scale,
                            lo=self.spec.lo, hi=self.spec.hi, keep=role in ("repeat", "motif"),
                            temperature=self.temperature)

    # -- phrases -----------------------------------------------------------
    def bar_roles(self, n: int) -> list[str]:
        r = self.spec.repetition
        if n == 1:
            return ["cadence"]
        roles = ["motif"] + ["free"] * (n - 2) + ["cadence"]
        for i in range(1, n - 1):
            if n >= 6 and i == n // 2:
                roles[i] = "motif" if chance(self.rng, 0.4 + 0.6 * r) else "sequence"
            elif i % 2 == 1 and chance(self.rng, 0.25 + 0.7 * r):
                roles[i] = "sequence" if chance(self.rng, 0.65) else "repeat"
            elif chance(self.rng, 0.35 * r):
                roles[i] = "vary"
        return roles

    def phrase(self, ph: Phrase) -> None:
        spec = self.spec
        span = spec.hi - spec.lo
        peak = self.center + min(9.0, span * 0.45) + (2.0 if ph.label != "A" else 0.0)
        end = self.center - min(3.0, span * 0.15)
        stored = self.stored.get(ph.label)
        bars_out: list[list[tuple[int, int, int | None]]] = []
        roles = self.bar_roles(ph.bars)
        local_motif = None
        for k in range(ph.bars):
            bar = ph.start_bar + k
            role = roles[k]
            if stored and k < len(stored) - 1 and role != "cadence" and \
                    (k == 0 or chance(self.rng, 0.55 + 0.45 * spec.repetition)):
                material = stored[k]
                pitches = self.realise(bar, material)
                bars_out.append(self.emit(bar, [(o, d, p is None) for o, d, p in material], pitches))
                if k == 0:
                    local_motif = material
                continue
            if role == "cadence":
                bars_out.append(self.cadence_bar(ph, bar, peak, end))
                continue
            if role in ("sequence", "repeat", "vary", "motif") and local_motif is not None:
                events = [(o, d, p is None) for o, d, p in local_motif]
                shift = self.sequence_shift(ph, bar, local_motif, role, peak, end)
                if role == "vary":
                    half = len(local_motif) // 2
                    pitches = self.realise(bar, local_motif[:half], shift=shift)
                    rest = self.sample_bar(bar, events[half:], ph, peak, end)
                    pitches += rest
                else:
                    pitches = self.realise(bar, local_motif, shift=shift)
                bars_out.append(self.emit(bar, events, pitches))
                continue
            # a new motif (phrase start) or a freely written bar
            if k == 0 and self.motif is not None and ph.label != "A" and chance(self.rng, 0.5):
                events = [(o, d, p is None) for o, d, p in self.motif]   # contrast of pitch, same rhythm
            else:
                events = self.rhythm()
            shape = choose(self.rng, [4.0, -4.0, 0.0], [2, 1, 1], self.temperature) if k == 0 else 0.0
            pitches = self.sample_bar(bar, events, ph, peak, end, shape)
            kept = self.emit(bar, events, pitches)
            bars_out.append(kept)
            if k == 0:
                local_motif = kept
                if self.motif is None:
                    self.motif = kept
        if stored is None:
            self.stored[ph.label] = bars_out

    def cadence_bar(self, ph: Phrase, bar: int, peak: float, end: float):
        g = self.grid
        b0 = g.bar_start(bar)
        offset = 0
        if self.spans:
            last = chord_at(self.spans, b0 + g.bar - 1)
            if last.start > b0:
                offset = last.start - b0
        elif self.spec.chorale:
            offset = g.half_bar() if g.beats >= 2 else 0
        kind = "lyrical" if self.spec.chorale else self.spec.rhythm
        events = cadence_rhythm(g, self.rng, target_offset=offset, final=ph.cadence == "final",
                                kind=kind, density=self.spec.density)
        if self.spec.chorale and offset:
            events = self._chorale_rhythm(offset // g.beat) + events[-2 if events[-1][2] else -1:]
        goal = self.cadence_pitch(ph, offset, end)
        pitches = []
        lead_in = [e for e in events if e[0] < offset and not e[2]]
        reached = False
        for i, (off, dur, rest) in enumerate(events):
            tick = b0 + off
            if rest:
                pitches.append(None)
            elif off >= offset and not reached:
                reached = True
                self.writer.accept(goal)
                pitches.append(goal)
            elif reached:
                # running on after the goal, toward the next phrase's opening register
                pitches.append(self.writer.pick(self.center, self.chord_pcs(tick), g.strength(tick) >= 2))
            else:
                remaining = sum(1 for e in lead_in if e[0] > off)
                tgt = goal + (1.5 + remaining) * (1 if (self.writer.prev or goal) > goal else -1)
                strong = g.strength(tick) >= 2
                if remaining == 0:
                    # step into the goal from a neighbour tone
                    near = [p for p in self.writer.candidates(()) if 1 <= abs(p - goal) <= 2]
                    pitches.append(self.writer.pick(tgt, self.chord_pcs(tick), strong, only=near or None))
                else:
                    pitches.append(self.writer.pick(tgt, self.chord_pcs(tick), strong))
        return self.emit(bar, events, pitches)


def generate_melody(grid: Grid, phrases: list[Phrase], spans: list[ChordSpan] | None, spec: MelodySpec,
                    rng: random.Random, temperature: float = 1.0) -> list[Note]:
    """Notes ``[start, dur, pitch, vel]`` of a melody over ``phrases``.

    ``spans`` gives the chords; without them (chorales, harmonized later) strong
    beats lean toward the tonic triad.
    """
    m = _Melody(grid, spans, spec, rng, temperature)
    for ph in phrases:
        m.phrase(ph)
    return m.notes
