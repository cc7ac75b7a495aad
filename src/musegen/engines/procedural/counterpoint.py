"""Independent voices: four-part chorale texture and imitative polyphony.

:func:`satb` puts alto, tenor and bass under a given soprano, one chord per
slot, choosing among all chord-tone combinations the one with the least
motion and no parallel fifths or octaves, complete chords, good doubling and
resolved leading tones and sevenths; then adds passing tones.

:func:`imitative_voices` writes renaissance-style polyphony: at every phrase
the lead's opening bar becomes a point of imitation that each other voice
takes up in turn (a fourth, fifth or octave lower), then continues in free
counterpoint that is consonant on strong beats and avoids parallels with the
voices already written.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from musegen.engines.procedural.chance import chance
from musegen.engines.procedural.form import Phrase
from musegen.engines.procedural.harmony import ChordSpan, chord_at
from musegen.engines.procedural.melody import LineWriter, Note, fit_to_chord
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.rhythm import bar_rhythm
from musegen.engines.procedural.theory import Chord, step_in_scale

ALTO, TENOR, BASS = (55, 74), (48, 67), (41, 60)
_PERFECT = (0, 7)


def _parallel(p1: int, q1: int, p2: int, q2: int) -> bool:
    """Voices moving p1->p2 and q1->q2 form consecutive fifths or octaves."""
    if p1 == p2 and q1 == q2:
        return False
    a, b = abs(p1 - q1) % 12, abs(p2 - q2) % 12
    return a == b and a in _PERFECT and (p2 - p1) * (q2 - q1) > 0


def _pitches(pcs, lo: int, hi: int) -> list[int]:
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


@dataclass
class Slot:
    """One chord under one soprano note."""

    start: int
    end: int
    chord: Chord
    soprano: int
    cadence: str | None = None


def satb(slots: list[Slot], *, tonic: int, scale: tuple[int, ...], rng: random.Random,
         temperature: float = 1.0, velocity: int = 80,
         passing: float = 0.35) -> tuple[list[Note], list[Note], list[Note]]:
    """Alto, tenor and bass notes under the soprano of ``slots``."""
    leading = (tonic - 1) % 12
    prev: tuple[int, int, int, int] | None = None   # (s, a, t, b)
    held: tuple[int, int, int, int] | None = None   # the chord before ``prev``
    prev_chord: Chord | None = None
    chosen = []
    for i, sl in enumerate(slots):
        c = sl.chord
        pcs = set(c.pcs)
        s = sl.soprano
        final = sl.cadence in ("full", "final") or i == len(slots) - 1
        # bass: root preferred, first inversion allowed off cadences (and preferred for vii°)
        bass_opts = []
        for p in _pitches({c.root, c.third}, *BASS):
            if p >= s - 5:
                continue
            cost = 0.0 if p % 12 == c.root else (1.6 if c.intervals[2] != 6 else -1.0)
            if final and p % 12 != c.root:
                continue
            if prev:
                leap = abs(p - prev[3])
                cost += 0.3 * leap + (1.5 if leap > 7 and leap != 12 else 0.0)
                if _parallel(prev[0], prev[3], s, p):
                    cost += 12.0
            else:
                cost += 0.1 * abs(p - 50)
            bass_opts.append((cost + rng.random() * 0.3 * temperature, p))
        bass_opts.sort()
        best, best_cost = None, None
        for bcost, b in bass_opts[:3]:
            for a in _pitches(pcs, ALTO[0], min(ALTO[1], s - 1)):
                if s - a > 12:
                    continue
                for t in _pitches(pcs, max(TENOR[0], b + 1), min(TENOR[1], a - 1)):
                    if a - t > 12 or t - b > 19:
                        continue
                    voices = (s, a, t, b)
                    have = [v % 12 for v in voices]
                    if c.root not in have or c.third not in have:
                        continue
                    cost = bcost
                    if c.seventh is not None and c.seventh not in have:
                        cost += 3.0
                    if c.fifth not in have:
                        cost += 0.8
                    if have.count(c.third) > 1:
                        cost += 1.2 if c.third != leading else 6.0
                    if c.seventh is not None and have.count(c.seventh) > 1:
                        cost += 6.0
                    if prev:
                        cost += 0.35 * (abs(a - prev[1]) + abs(t - prev[2]))
                        if held is not None:
                            # an inner voice stuck on one note for three chords sounds inert
                            cost += 0.7 * (a == prev[1] == held[1]) + 0.7 * (t == prev[2] == held[2])
                        if abs(a - prev[1]) > 5:
                            cost += 2.0
                        if abs(t - prev[2]) > 5:
                            cost += 2.0
                        for x in range(4):
                            for y in range(x + 1, 4):
                                if _parallel(prev[x], prev[y], voices[x], voices[y]):
                                    cost += 15.0
                        if t > prev[1] or a < prev[2]:
                            cost += 2.0   # overlapping the neighbour's last note
                        if prev_chord is not None and prev_chord.root == (tonic + 7) % 12 and c.root == tonic:
                            for x in (1, 2):
                                if prev[x] % 12 == leading and voices[x] != prev[x] + 1:
                                    cost += 1.5
                        if prev_chord is not None and prev_chord.seventh is not None:
                            for x in (1, 2):
                                if prev[x] % 12 == prev_chord.seventh and not 1 <= prev[x] - voices[x] <= 2:
                                    cost += 2.5
                    else:
                        cost += 0.1 * (abs(a - 64) + abs(t - 57))
                    cost += rng.random() * 0.25 * temperature
                    if best_cost is None or cost < best_cost:
                        best, best_cost = voices, cost
        if best is None:
            # nothing fits the rules: fall back to the chord's closest tones
            b = bass_opts[0][1] if bass_opts else 36 + c.root
            a = max(_pitches(pcs, ALTO[0] - 3, s - 1) or [s - 5])
            t = max(_pitches(pcs, b + 1, a - 1) or [a - 5])
            best = (s, a, t, b)
        chosen.append(best)
        held, prev, prev_chord = prev, best, c

    alto, tenor, bass = [], [], []
    for i, (sl, v) in enumerate(zip(slots, chosen)):
        dur = sl.end - sl.start
        nxt = chosen[i + 1] if i + 1 < len(chosen) else None
        for k, part in ((1, alto), (2, tenor), (3, bass)):
            vel = velocity - (4 if k != 3 else 0)
            here, there = v[k], (nxt[k] if nxt else None)
            half = dur // 2
            gap = abs(there - here) if there is not None else 0
            if there is not None and 3 <= gap <= 4 and half >= 120 and sl.cadence is None \
                    and chance(rng, passing):
                mid = step_in_scale(here, 1 if there > here else -1, scale)
                if min(here, there) < mid < max(here, there):
                    part.append([sl.start, half, here, vel])
                    part.append([sl.start + half, dur - half, mid, vel - 6])
                    continue
            part.append([sl.start, dur, here, vel])
    return alto, tenor, bass


# -- imitative polyphony ------------------------------------------------------

@dataclass(frozen=True)
class VoiceRange:
    name: str
    lo: int
    hi: int
    bass: bool = False


def _sounding(notes: list[Note], starts: list[int], tick: int) -> int | None:
    i = bisect.bisect_right(starts, tick) - 1
    if i >= 0 and notes[i][0] + notes[i][1] > tick:
        return notes[i][2]
    return None


def imitative_voices(lead: list[Note], grid: Grid, phrases: list[Phrase], spans: list[ChordSpan],
                     voices: list[VoiceRange], *, scale: tuple[int, ...], rng: random.Random,
                     temperature: float = 1.0, velocity: int = 80, leap: float = 0.25) -> list[list[Note]]:
    """Voices imitating the lead's opening bar of each phrase, then free counterpoint."""
    written: list[list[Note]] = [sorted(lead)]
    out: list[list[Note]] = []
    gap = grid.half_bar() if grid.beats >= 4 else grid.bar
    for vi, vr in enumerate(voices):
        notes: list[Note] = []
        writer = LineWriter(vr.lo, vr.hi, scale, leap=leap, rng=rng, temperature=temperature)
        center = (vr.lo + vr.hi) / 2
        others = [(w, [n[0] for n in w]) for w in written]

        def free(t: int, stop: int, cadence_bar: int | None) -> None:
            """Free counterpoint from ``t`` to ``stop``, bar by bar; the cadence bar holds one chord tone."""
            while t < stop:
                bar = grid.bar_of(t)
                b0 = grid.bar_start(bar)
                bar_end = min(b0 + grid.bar, stop)
                beats = (bar_end - t) // grid.beat
                if beats <= 0:
                    t = bar_end
                    continue
                last_bar = bar == cadence_bar
                if last_bar:
                    events = [(t - b0, bar_end - t, False)]
                else:
                    events = [(t - b0 + o, d, r) for o, d, r in
                              bar_rhythm("long", grid, rng, density=0.5, temperature=temperature, beats=beats)]
                for off, dur, rest in events:
                    tick = b0 + off
                    if rest:
                        continue
                    ch = chord_at(spans, tick).chord
                    strong = grid.strength(tick) >= 1 or dur >= grid.beat
                    if vr.bass and (strong or last_bar):
                        pcs = (ch.root,) if last_bar else (ch.root, ch.fifth)
                    else:
                        pcs = ch.triad if last_bar else ch.pcs

                    def penalty(p, tick=tick, strong=strong):
                        c = 0.0
                        prev = writer.prev
                        for w, starts in others:
                            q = _sounding(w, starts, tick)
                            if q is None:
                                continue
                            if q == p:
                                c += 2.0
                            if abs(q - p) % 12 in (1, 2, 6, 10, 11) and strong:
                                c += 4.0
                            qp = _sounding(w, starts, tick - 1)
                            if prev is not None and qp is not None and _parallel(prev, qp, p, q):
                                c += 8.0
                        return c

                    only = [p for p in range(vr.lo, vr.hi + 1) if p % 12 in pcs] if (strong or last_bar) else None
                    p = writer.pick(center, pcs, strong, only=only, penalty=penalty)
                    notes.append([tick, dur, p, velocity - (0 if strong else 6)])
                t = bar_end

        for ph in phrases:
            p0, p1 = grid.bar_start(ph.start_bar), grid.bar_start(ph.end_bar)
            entry = p0 + (vi + 1) * gap
            subject = [n for n in lead if p0 <= n[0] < p0 + grid.bar]
            if entry + grid.bar > p1 or not subject:
                entry, subject = p0, []
            # before its entry a voice rests in the first phrase and carries on freely later
            if ph.index > 0 and entry > p0:
                free(p0, entry, None)
            if subject:
                mean = sum(n[2] for n in subject) / len(subject)
                shifts = (-3, -4, -7, -8, -10, -11, -14)
                shift = min(shifts, key=lambda s: abs(step_in_scale(int(mean), s, scale) - center))
                for n in subject:
                    tick = n[0] - p0 + entry
                    if tick >= p1:
                        break
                    ch = chord_at(spans, tick).chord
                    strong = grid.strength(tick) >= 1
                    pcs = (ch.root, ch.fifth) if vr.bass and strong else ch.pcs
                    p = fit_to_chord(step_in_scale(n[2], shift, scale), pcs, scale, strong, vr.lo, vr.hi)
                    writer.accept(p)
                    notes.append([tick, min(n[1], p1 - tick), p, velocity])
                free(entry + grid.bar, p1, ph.end_bar - 1)
            else:
                free(entry, p1, ph.end_bar - 1)
        notes.sort()
        out.append(notes)
        written.append(notes)
    return out
