"""Continuing a MIDI seed: the seed stays a literal prefix, new bars carry its material on.

* Harmony: the seed's chord loop (its chords per bar, or half bar) is found
  and continued where it left off; a melody-only seed is harmonized bar by
  bar with diatonic triads first.  The last bar closes on the tonic.
* Accompaniment, bass and pad tracks repeat their own bars in loop order,
  each note re-mapped from the seed chord it sat on to the new chord (a root
  stays a root, a third a third) in the same octave, so register, density
  and texture stay the seed's.
* Melody tracks restate the seed's motifs in diatonic sequence, reuse its bar
  rhythms and pick new pitches with the seed's own interval distribution as a
  prior, cadencing at phrase ends.
* Drum tracks loop the seed's groove (its repeating cycle of bars) with small
  variations, fills in the seed's own drums at phrase ends and crashes where
  the seed uses them.

New notes of a continued part go into the seed's own track, after its notes.
Unless ``continue_only``, the preset's roles the seed lacks are written as
new tracks for the new bars.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

from symusic import Score, Tempo, TimeSignature, TimeUnit, Track

from musegen.engines.base import Request
from musegen.engines.procedural import sketch
from musegen.engines.procedural.arrange import Part, clip, monophonic, note_list
from musegen.engines.procedural.chance import chance, choose
from musegen.engines.procedural.compose import Settings, perform, write_parts
from musegen.engines.procedural.form import plan_form
from musegen.engines.procedural.harmony import ChordSpan, chord_at, diatonic_triads
from musegen.engines.procedural.melody import LineWriter, choose_shift, fit_to_chord
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.seed import SeedTrack, SeedView, read_seed
from musegen.engines.procedural.theory import Chord, nearest_pitch, scale_distance, scale_pcs, step_in_scale
from musegen.errors import ParameterError

ROLE_OF = {"melody": "lead", "harmony": "harmony", "bass": "bass", "pad": "pad", "drums": "drums"}
_CRASHES = (49, 52, 55, 57)
_TOMS = (50, 48, 47, 45, 43, 41)


# -- harmony -------------------------------------------------------------------

#: a bar where the tune rests restates the chord this many bars before it (a pop loop), once
#: there are that many bars; before, it holds the chord before it
REST_LOOP_BARS = 4


def _harmonize_bars(view: SeedView, track: SeedTrack, tonic: int, mode: str) -> list[Chord]:
    """A diatonic triad per seed bar covering the bar's melody notes best (strong, long notes weigh more).

    Bars where the tune rests go on with the progression (:data:`REST_LOOP_BARS`), so an
    accompaniment under a long rest does not hold one chord throughout.
    """
    triads = diatonic_triads(tonic, mode)
    out: list[Chord] = []
    prev = triads[0]
    for notes in view.by_bar(track):
        if not notes:
            out.append(out[-REST_LOOP_BARS] if len(out) >= REST_LOOP_BARS else prev)
            prev = out[-1]
            continue
        weight = Counter()
        for off, dur, p, _ in notes:
            # a note of no length (a score built in code) weighs one tick, so the sum is never 0
            weight[p % 12] += max(dur, 1) * (2.0 if off % (view.bar // 2 or 1) == 0 else 1.0)
        total = sum(weight.values())
        best = max(triads, key=lambda c: sum(weight[pc] for pc in c.pcs) / total
                   + (0.15 if c.root == tonic else 0.0) + (0.05 if c is prev else 0.0))
        out.append(best)
        prev = best
    return out


def _period(seq: list, options=(1, 2, 4, 8)) -> int:
    """Smallest period the sequence (mostly) repeats with, else its length."""
    n = len(seq)
    for p in options:
        if 2 * p > n:
            break
        same = sum(1 for i in range(p, n) if seq[i] == seq[i - p])
        if same >= 0.75 * (n - p):
            return p
    return n


def seed_chord_windows(view: SeedView, tonic: int, mode: str) -> tuple[list[tuple[int, int, Chord]], int]:
    """The seed's chords as ``(start, end, Chord)`` windows, and its windows per bar.

    A seed with accompaniment keeps the analysis's chords (``view.windows_per_bar``
    per bar, a window without one holding the chord before); a melody is harmonized
    bar by bar.  Empty for a seed without melodic notes.
    """
    has_accomp = any(t.role in ("harmony", "bass", "pad") for t in view.tracks)
    if has_accomp and any(c is not None for _, _, c in view.chords):
        seq, prev = [], None
        for a, b, c in view.chords:
            prev = c if c is not None else prev
            seq.append((a, b, prev))
        first = next(c for _, _, c in seq if c is not None)
        return [(a, b, c or first) for a, b, c in seq], view.windows_per_bar
    melody = next((t for t in view.tracks if t.role == "melody"), None) or \
        next((t for t in view.tracks if not t.is_drum), None)
    if melody is None:
        return [], 1
    ends = view.bar_starts[1:] + [view.start]
    return list(zip(view.bar_starts, ends, _harmonize_bars(view, melody, tonic, mode))), 1


def seed_chords(view: SeedView, tonic: int, mode: str) -> tuple[list[Chord | None], int]:
    """The seed's chord per window (windows per bar: ``view.windows_per_bar``) and its windows per bar."""
    windows, per_bar = seed_chord_windows(view, tonic, mode)
    return [c for _, _, c in windows], per_bar


def _key_of(c: Chord | None):
    return None if c is None else (c.root, c.intervals)


def continue_progression(seq: list[Chord], windows: int, grid: Grid, tonic: int, mode: str,
                         rng: random.Random, temperature: float, ending: bool) -> tuple[list[ChordSpan], int]:
    """Chord spans for the new bars, continuing the seed's loop; also the loop length in windows."""
    period = _period([_key_of(c) for c in seq])
    cycle = seq[len(seq) - period:]
    offset = (len(seq) - period) % period if period else 0
    spans = []
    per = max(1, windows)
    cuts = [math.ceil(j * grid.beats / per) for j in range(per + 1)] if per <= grid.beats else [0, grid.beats]
    k = 0
    tonic_chord = diatonic_triads(tonic, mode)[0]
    for bar in range(grid.bars):
        b0 = grid.bar_start(bar)
        for x, y in zip(cuts[:-1], cuts[1:]):
            if y <= x:
                continue
            c = cycle[(offset + k) % len(cycle)]
            spans.append(ChordSpan(b0 + x * grid.beat, b0 + y * grid.beat, c))
            k += 1
        spans[-1] = ChordSpan(spans[-1].start, b0 + grid.bar, spans[-1].chord)
    if ending and spans and spans[-1].chord.root != tonic:
        last = spans[-1]
        spans[-1] = ChordSpan(last.start, last.end, tonic_chord, "final")
    return spans, period


# -- pitch mapping --------------------------------------------------------------

def map_pitch(p: int, src: Chord | None, dst: Chord, scale: tuple[int, ...]) -> int:
    """Move ``p`` from chord ``src`` to the same function in ``dst`` (root to root, third to third...)."""
    if src is None:
        return p
    pc = p % 12
    if pc in src.pcs:
        j = src.pcs.index(pc)
        target = dst.pcs[j] if j < len(dst.pcs) else dst.pcs[j % 3]
    else:
        target = (dst.root + (pc - src.root)) % 12
        if target not in scale and target not in dst.pcs:
            for d in (-1, 1):
                if (target + d) % 12 in scale:
                    target = (target + d) % 12
                    break
    return nearest_pitch(target, p, 0, 127)


def _template_bar(k: int, n_bars: int, period_bars: int, usable: list[int]) -> int:
    if not usable:
        return 0
    if 0 < period_bars <= n_bars:
        first = n_bars - period_bars
        cand = first + k % period_bars
        if cand in usable:
            return cand
    return usable[k % len(usable)]


def continue_accompaniment(track: SeedTrack, view: SeedView, grid: Grid, spans: list[ChordSpan],
                           scale: tuple[int, ...], period_bars: int, ending: bool) -> list[list[int]]:
    """A harmony, pad or bass track's bars repeated in loop order, re-mapped to the new chords."""
    bars = view.by_bar(track)
    usable = [i for i, b in enumerate(bars) if b and i < len(view.bar_starts)]
    out: list[list[int]] = []
    for k in range(grid.bars):
        b0 = grid.bar_start(k)
        src = _template_bar(k, len(bars), period_bars, usable)
        final = ending and k == grid.bars - 1
        seen = set()
        for off, dur, p, v in bars[src]:
            if off >= grid.bar or (final and off > 0):
                continue
            tick = b0 + off
            dst = chord_at(spans, tick).chord
            q = map_pitch(p, view.chord_at(view.bar_starts[src] + off), dst, scale)
            if (tick, q) in seen:
                continue
            seen.add((tick, q))
            out.append([tick, grid.bar - off if final else dur, q, v])
        if final and not any(n[0] == b0 for n in out):
            # the template bar starts late: hold the final chord from the downbeat
            dst = spans[-1].chord
            for off, dur, p, v in bars[src][:4]:
                out.append([b0, grid.bar, map_pitch(p, view.chord_at(view.bar_starts[src] + off), dst, scale), v])
    return out


# -- melody -----------------------------------------------------------------------

def _skyline(notes: list[list[int]]) -> list[list[int]]:
    by_start: dict[int, list[int]] = {}
    for n in notes:
        if n[0] not in by_start or n[2] > by_start[n[0]][2]:
            by_start[n[0]] = n
    return monophonic(list(by_start.values()))


def continue_melody(track: SeedTrack, view: SeedView, grid: Grid, spans: list[ChordSpan], phrases,
                    *, tonic: int, mode: str, rng: random.Random, temperature: float, repetition: float,
                    ending: bool) -> list[list[int]]:
    """New bars of a melody built from the seed's motifs, rhythms and interval habits."""
    line = _skyline(track.notes)
    mode_scale = scale_pcs(tonic, mode)
    used = sorted({n[2] % 12 for n in line})
    scale = tuple(pc for pc in mode_scale if pc in used) if len(used) >= 5 else mode_scale
    scale = scale if len(scale) >= 5 else mode_scale
    lo, hi = min(n[2] for n in line) - 2, max(n[2] for n in line) + 2
    if hi - lo < 12:
        lo, hi = lo - (12 - (hi - lo)) // 2, lo + 12
    center = sum(n[2] for n in line) / len(line)
    steps = Counter(max(-8, min(8, scale_distance(a[2], b[2], scale))) for a, b in zip(line, line[1:]))
    total = sum(steps.values()) or 1
    leap = min(1.0, sum(v for k, v in steps.items() if abs(k) >= 3) / total * 2.5)
    writer = LineWriter(lo, hi, scale, leap=leap, rng=rng, temperature=temperature, start=line[-1][2])

    def prior(p: int) -> float:
        if writer.prev is None:
            return 0.0
        k = max(-8, min(8, scale_distance(writer.prev, p, scale)))
        return -0.9 * math.log((steps.get(k, 0) + 0.3) / (total + 5.1))

    bars = [sorted(b) for b in view.by_bar(SeedTrack(0, "", 0, False, "melody", line))]
    motifs = [i for i, b in enumerate(bars) if len(b) >= 2] or [i for i, b in enumerate(bars) if b]
    if not motifs:
        return []
    main = motifs[0]
    # the seed's cadence rhythms: bars ending on their longest note, of at least most of a beat
    cadences = [i for i, b in enumerate(bars) if b and b[-1][1] >= max(n[1] for n in b)
                and b[-1][1] >= 0.75 * grid.beat]
    out: list[list[int]] = []

    def chord_pcs(tick: int):
        return chord_at(spans, tick).chord.pcs

    for ph in phrases:
        for k in range(ph.bars):
            bar = ph.start_bar + k
            b0 = grid.bar_start(bar)
            last = k == ph.bars - 1
            if last:
                final = ending and ph.cadence == "final"
                if final and cadences and cadences[-1] == len(bars) - 1:
                    src = cadences[-1]           # the seed's own ending
                else:
                    src = choose(rng, cadences, None) if cadences else main
                events = [n for n in bars[src] if n[0] < grid.bar]
                if final:
                    # close on the last strong-beat note, held to the end of the piece
                    strong = [i for i, n in enumerate(events) if grid.strength(b0 + n[0]) >= 2] or [0]
                    events = events[:strong[-1] + 1]
                goal_pcs = (tonic,) if ph.cadence in ("final", "full") else tuple(
                    pc for pc in chord_pcs(b0 + events[-1][0]) if pc in scale) or (tonic,)
                for i, (off, dur, p, v) in enumerate(events):
                    tick = b0 + off
                    if i == len(events) - 1:
                        goal = min((q for q in range(lo, hi + 1) if q % 12 in goal_pcs),
                                   key=lambda q: abs(q - (writer.prev or center)) + 0.3 * abs(q - center),
                                   default=writer.prev or int(center))
                        writer.accept(goal)
                        length = (grid.bar - off) if final else dur
                        out.append([tick, length, goal, v])
                    else:
                        q = writer.pick(center, chord_pcs(tick), grid.strength(tick) >= 2, penalty=prior)
                        out.append([tick, dur, q, v])
                continue
            motif_bar = k == 0 or (k % 2 == 0 and chance(rng, repetition))
            if motif_bar or chance(rng, 0.5 * repetition):
                src = main if (k == 0 and chance(rng, 0.7)) else choose(rng, motifs, None)
                material = [n for n in bars[src] if n[0] < grid.bar]
                sh = choose_shift(rng, [n[2] for n in material], want=center, prev=writer.prev, scale=scale,
                                  lo=lo, hi=hi, keep=motif_bar, temperature=temperature)
                for off, dur, p, v in material:
                    tick = b0 + off
                    strong = grid.strength(tick) >= 2 or dur >= grid.beat
                    q = fit_to_chord(step_in_scale(p, sh, scale), chord_pcs(tick), scale, strong, lo, hi)
                    writer.accept(q)
                    out.append([tick, dur, q, v])
                continue
            # a new bar: a seed rhythm, pitches from the seed's interval habits
            src = choose(rng, motifs, None)
            for off, dur, p, v in bars[src]:
                if off >= grid.bar:
                    continue
                tick = b0 + off
                strong = grid.strength(tick) >= 2 or dur >= grid.beat
                q = writer.pick(center, chord_pcs(tick), strong, penalty=prior)
                out.append([tick, dur, q, v])
    return monophonic(out)


# -- drums ----------------------------------------------------------------------

def _hits(bar: list[list[int]], q: int) -> frozenset:
    return frozenset((round(off / q), p) for off, _, p, _ in bar)


def continue_drums(track: SeedTrack, view: SeedView, grid: Grid, phrases, *, rng: random.Random,
                   temperature: float, fills: bool, ending: bool) -> list[list[int]]:
    """The seed's groove looped, with variations, fills at phrase ends and crashes on new phrases."""
    bars = view.by_bar(track)
    q = max(1, view.tpq // 4)
    sigs = [_hits(b, q) for b in bars]
    full = [i for i, b in enumerate(bars) if b]
    if not full:
        return []

    def similar(a, b) -> bool:
        return bool(a | b) and len(a & b) / len(a | b) >= 0.6

    period = len(full)
    for p in (1, 2, 4):
        if 2 * p <= len(bars) and all(similar(sigs[i], sigs[i - p]) for i in range(p, min(len(bars) - 1, 2 * p + p))):
            period = p
            break
    start = period if len(bars) >= 2 * period + 1 else 0
    cycle = [bars[i] for i in range(start, min(start + period, len(bars)))] or [bars[full[0]]]
    pitches = Counter(n[2] for b in bars for n in b)
    has_crash = any(p in _CRASHES for p in pitches)
    cycle = [[n for n in b if n[2] not in _CRASHES] for b in cycle]
    kick = 35 if pitches[35] > pitches[36] else 36
    snare = max((38, 40, 37, 39), key=lambda p: pitches[p])
    toms = [p for p in _TOMS if pitches[p]] or [snare]
    loud = max((n[3] for b in bars for n in b), default=100)
    out: list[list[int]] = []
    last_phrase = phrases[-1]
    for ph in phrases:
        for bar in range(ph.start_bar, ph.end_bar):
            b0 = grid.bar_start(bar)
            if ending and ph is last_phrase and bar == ph.end_bar - 1 and grid.bars >= 2:
                out.append([b0, q, kick, loud])
                out.append([b0, grid.bar, 49 if has_crash else snare, loud])
                continue
            tpl = cycle[(bar - phrases[0].start_bar) % len(cycle)]
            fill_from = grid.bar
            if fills and bar == ph.end_bar - 1 and ph is not last_phrase:
                fill_from = grid.bar - grid.beat * (2 if ph.index % 2 else 1)
            for off, dur, p, v in tpl:
                if off >= grid.bar or (off >= fill_from and p != kick):
                    continue
                if p not in (kick, snare) and chance(rng, 0.04 * temperature):
                    continue   # an occasional dropped hat keeps the loop breathing
                out.append([b0 + off, dur, p, v])
            if chance(rng, 0.1 * temperature) and fill_from == grid.bar:
                off = rng.randrange(grid.bar // (2 * q), grid.bar // q) * q
                out.append([b0 + off, q, snare, max(1, loud // 3)])
            if fill_from < grid.bar:
                n = (grid.bar - fill_from) // q
                for i in range(n):
                    tom = toms[min(len(toms) - 1, i * len(toms) // max(1, n))]
                    out.append([b0 + fill_from + i * q, q, tom, int(loud * (0.6 + 0.4 * i / max(1, n)))])
        if ph.index > 0 and has_crash:
            t0 = grid.bar_start(ph.start_bar)
            out.append([t0, grid.bar, 49, loud])
    return out


# -- parts the seed lacks -------------------------------------------------------------

def _melody_rows(score: Score, view: SeedView, analysis) -> list[list[int]]:
    """The seed's melody track in ``score`` (its notes and their continuation), or [] without one."""
    melodies = [t.index for t in view.tracks if t.role == "melody"]
    index = getattr(analysis, "melody_track", None)
    index = index if index in melodies else (melodies[0] if melodies else None)
    if index is None:
        return []
    return [[int(n.time), int(n.duration), int(n.pitch), int(n.velocity)] for n in score.tracks[index].notes]


def add_parts(view: SeedView, grid: Grid, spans: list[ChordSpan], roles: list[str], settings: Settings,
              melody: list[list[int]], phrase_bars: int, *, from_end: bool = False) -> tuple[list[Part], int]:
    """The parts of ``roles`` (which the seed lacks), from the seed's first bar to ``grid.end``.

    In the seed's bars they follow its chords (:func:`seed_chord_windows`), in the new
    bars ``spans``; harmony and pad stay under ``melody`` (the seed's melody with its
    continuation; without one, an added lead), by :func:`.sketch.voice_under`.
    ``from_end``: only over the new bars, as before the parts began with the seed.
    Returns the performed parts and the tick they start from.
    """
    from dataclasses import replace

    from musegen.engines.procedural.harmony import plan_chords

    first = min((n[0] for t in view.tracks for n in t.notes), default=view.start)
    origin = view.start if from_end else sketch.sketch_origin(view.bar_starts, view.start, grid.bar, first)
    lead_bars = (view.start - origin) // grid.bar
    full = Grid(grid.tpq, grid.num, grid.den, grid.bars + lead_bars, origin=origin)
    s = replace(settings, grid=full)
    before: list[ChordSpan] = []
    if lead_bars:
        windows, _ = seed_chord_windows(view, settings.tonic, settings.mode)
        before = sketch.sketch_spans(windows, origin, view.start)
        if not before:  # no melodic notes (drums only): chords as the preset plans them
            head = Grid(grid.tpq, grid.num, grid.den, lead_bars, origin=origin)
            p = settings.preset
            before = plan_chords(head, plan_form(lead_bars, phrase_bars, p.style),
                                 progressions=p.harmony.progressions, chords_per_bar=p.harmony.chords_per_bar,
                                 extensions=p.harmony.extensions, style=p.style, tonic=settings.tonic,
                                 mode=settings.mode, rng=settings.rng, temperature=settings.temperature,
                                 source_mode=p.mode)
    phrases = plan_form(full.bars, phrase_bars, settings.preset.style)
    parts, _, _ = write_parts(s, phrases, before + list(spans), roles)
    perform(parts, s)
    tune = melody or [n for part in parts if part.role == "lead" for n in part.notes]
    if tune:
        limits = sketch.bar_limits(tune, full)
        for part in parts:
            if part.role in sketch.UNDER_ROLES:
                part.notes = sketch.voice_under(part.notes, limits, full)
    return parts, origin


# -- the whole continuation ----------------------------------------------------------

def continue_seed(request: Request, rng: random.Random, opts: dict[str, Any]) -> tuple[Score, dict]:
    """The seed followed by ``request.bars`` new bars (see the module docstring).

    ``opts``: every option of the engine (:data:`.engine.OPTIONS` parsed).
    """
    seed = request.seed
    if not isinstance(seed, Score):
        raise ParameterError(f"request.seed must be a symusic Score, got {type(seed).__name__}")
    if seed.ttype != TimeUnit.tick:
        seed = seed.to("tick")
    score = seed.copy()   # a deep copy: the caller's seed is never touched
    view = read_seed(score, request.seed_analysis)
    if not view.tracks and request.continue_only:
        raise ParameterError("the seed has no notes to continue")
    preset = request.preset
    temperature = float(request.temperature)
    ending = opts["ending"]
    fills = opts["fills"]
    tonic, mode = request.tonic, request.mode
    num, den = int(request.meter[0]), int(request.meter[1])
    grid = Grid(view.tpq, num, den, request.bars, origin=view.start)
    scale = scale_pcs(tonic, mode)

    seq, windows = seed_chords(view, tonic, mode)
    if seq:
        spans, period = continue_progression(seq, windows, grid, tonic, mode, rng, temperature, ending)
        period_bars = max(1, period // max(1, windows))
    else:
        spans, period_bars = None, 0
    phrase_bars = period_bars if 2 <= period_bars <= 8 else preset.melody.phrase_bars
    phrases = plan_form(grid.bars, phrase_bars, preset.style)
    settings = Settings(preset, grid, tonic, mode, rng, temperature, bass_pattern=opts["bass_pattern"],
                        fills=fills, ending=ending, swing_unit=opts["swing_unit"])
    if spans is None:
        from musegen.engines.procedural.harmony import plan_chords

        p = preset.harmony
        spans = plan_chords(grid, phrases, progressions=p.progressions, chords_per_bar=p.chords_per_bar,
                            extensions=p.extensions, style=preset.style, tonic=tonic, mode=mode, rng=rng,
                            temperature=temperature, source_mode=preset.mode)

    continued = []
    for t in view.tracks:
        if grid.bars == 0:   # accompany: nothing after the seed
            new = []
        elif t.is_drum:
            new = continue_drums(t, view, grid, phrases, rng=rng, temperature=temperature, fills=fills,
                                 ending=ending)
        elif t.role == "melody":
            new = continue_melody(t, view, grid, spans, phrases, tonic=tonic, mode=mode, rng=rng,
                                  temperature=temperature, repetition=preset.melody.repetition, ending=ending)
        else:
            new = continue_accompaniment(t, view, grid, spans, scale, period_bars, ending)
            if t.role == "bass":
                new = monophonic(new)
        new = clip(new, grid.start, grid.end)
        score.tracks[t.index].notes.extend(note_list(new))
        continued.append({"index": t.index, "name": t.name, "role": ROLE_OF.get(t.role, t.role),
                          "program": t.program, "is_drum": t.is_drum, "n_new_notes": len(new)})

    added: list[Part] = []
    n_seed_tracks = len(score.tracks)
    accompany_start = None
    if not request.continue_only:
        have = {ROLE_OF.get(t.role, t.role) for t in view.tracks}
        missing = [r for r in preset.instruments.roles() if r not in have]
        if request.add_roles is not None:   # accompany: the roles asked for, whatever the seed's tracks were read as
            missing = list(request.add_roles)
        if missing:
            melody = _melody_rows(score, view, request.seed_analysis)
            if not melody and request.add_roles is not None:   # accompany: the seed is the tune
                melody = [n for t in view.tracks if not t.is_drum for n in t.notes]
            added, accompany_start = add_parts(view, grid, spans, missing, settings, melody, phrase_bars,
                                               from_end=sketch.accompany_from(opts) == "end")
            for part in added:
                track = Track(part.name, int(part.program), bool(part.is_drum))
                track.notes = note_list(part.notes)
                score.tracks.append(track)
    if len(score.tempos) == 0:
        score.tempos.append(Tempo(0, qpm=float(request.tempo_bpm)))
    if len(score.time_signatures) == 0:
        score.time_signatures.append(TimeSignature(0, num, den))
    info = {
        "start_tick": grid.start,
        "accompany_start_tick": accompany_start,
        "seed_end_tick": view.end,
        "seed_bars": len(view.bar_starts),
        "loop_bars": period_bars,
        "form": "".join(ph.label for ph in phrases),
        "chords": [{"tick": sp.start, "chord": sp.chord.symbol} for sp in spans],
        "continued_tracks": continued,
        "tracks": continued + [dict(p.describe(), index=n_seed_tracks + i) for i, p in enumerate(added)],
    }
    return score, info
