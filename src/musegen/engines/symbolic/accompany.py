"""Drums and bass under the model's parts, arranged by the procedural engine.

The corpus the model learned from has no drum kits, few separate bass parts
and many bare folk tunes, so where a preset asks for drums, bass or a harmony
part and the model wrote none, the procedural arranger writes it over the
chords the model actually played.
"""

from __future__ import annotations

import random

from symusic import Note, Track

from musegen.engines.symbolic.tokens import BASS_PROGRAM, MELODY_PROGRAM
from musegen.theory import MINOR_MODES

_QUALITY_INTERVALS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8), "sus4": (0, 5, 7),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
}


def _spans(score, start: int, bars: int, bar_ticks: int, tonic: int, mode: str):
    """Chord spans of the new bars, read from the model's notes (tonic triad where a bar is empty)."""
    from musegen.engines.procedural.harmony import ChordSpan
    from musegen.engines.procedural.theory import Chord
    from musegen.midi.chords import estimate_chords

    windows = [(start + i * bar_ticks, start + (i + 1) * bar_ticks) for i in range(bars)]
    found = estimate_chords(score, windows)
    minor = mode in MINOR_MODES
    spans = []
    for (a, b), ch in zip(windows, found):
        _, _, root, quality = ch
        if root is None or root < 0 or quality not in _QUALITY_INTERVALS:
            root, quality = tonic, "min" if minor else "maj"
        spans.append(ChordSpan(a, b, Chord(int(root), _QUALITY_INTERVALS[quality], f"{root}:{quality}")))
    return spans


def add_accompaniment(score, request, start_tick: int, written: dict[int, int], *, variation: int) -> dict:
    """Add, by the procedural arranger, the preset's parts the model did not write.

    In the new bars: drums, bass, or a harmony part where the model wrote none (and, after
    a sketch, any role the sketch lacks that the model left silent).  With a sketch, every
    role the preset has and the sketch lacks also plays in the sketch's bars, from its
    first one, over the sketch's chords (:func:`.procedural.continuation.seed_chord_windows`),
    in the track the model wrote for that role where there is one; added harmony and pad
    stay under the melody (:mod:`.procedural.sketch`).  ``accompany_from = "end"``: the
    sketch's bars stay alone, as before.

    Returns what was added (role -> notes) for the engine's info.
    """
    from musegen.engines.procedural import sketch as under
    from musegen.engines.procedural.arrange import clip, note_list
    from musegen.engines.procedural.chance import derive_seed
    from musegen.engines.procedural.compose import Settings, perform, write_parts
    from musegen.engines.procedural.form import plan_form
    from musegen.engines.procedural.meter import Grid

    if request.continue_only:
        return {}  # extend adds no parts
    inst = request.preset.instruments
    n_seed = len(request.seed.tracks) if request.seed is not None else 0
    model_tracks: dict[str, int] = {}   # role -> the track the model wrote it in
    for i in range(n_seed, len(score.tracks)):
        model_tracks.setdefault(score.tracks[i].name, i)

    def wrote(role: str) -> bool:
        i = model_tracks.get(role)
        return i is not None and len(score.tracks[i].notes) > 0

    roles = []   # played in the new bars
    if inst.harmony is not None and not any(n for p, n in written.items() if p not in (MELODY_PROGRAM, BASS_PROGRAM, -1)):
        roles.append("harmony")  # e.g. folk styles, where the model learned bare tunes
    if inst.drums is not None and request.preset.groove.drum_pattern != "none" \
            and not any(t.is_drum and t.notes for t in score.tracks):
        roles.append("drums")
    if inst.bass is not None and not written.get(BASS_PROGRAM):
        roles.append("bass")
    lacking: list[str] = []   # the preset's roles the sketch lacks: played in its bars too
    origin = start_tick
    view = None
    if request.seed is not None:
        from musegen.engines.procedural.continuation import ROLE_OF
        from musegen.engines.procedural.seed import read_seed

        view = read_seed(request.seed, request.seed_analysis)
        have = {ROLE_OF.get(t.role, t.role) for t in view.tracks}
        lacking = [r for r in inst.roles() if r not in have
                   and (r != "drums" or request.preset.groove.drum_pattern != "none")]
        if request.add_roles is not None:   # accompany: the roles asked for, whatever the sketch's tracks are
            lacking = [r for r in request.add_roles if r != "drums" or request.preset.groove.drum_pattern != "none"]
            roles = [r for r in roles if r in lacking]
        roles += [r for r in lacking if r not in roles and not wrote(r)]
        if under.accompany_from(request.options) == "start" and view.start == start_tick:
            first = min(n[0] for t in view.tracks for n in t.notes) if view.tracks else start_tick
            origin = under.sketch_origin(view.bar_starts, start_tick, _bar_ticks(score, request), first)
    if not roles and (origin == start_tick or not lacking) and request.seed is None:
        return {}
    tpq = score.ticks_per_quarter
    num, den = request.meter
    grid = Grid(tpq, num, den, request.bars, origin=start_tick)
    lead_bars = (start_tick - origin) // grid.bar
    full = Grid(tpq, num, den, request.bars + lead_bars, origin=origin)
    spans = _spans(score, start_tick, request.bars, grid.bar, request.tonic, request.mode)
    if lead_bars:
        from musegen.engines.procedural.continuation import seed_chord_windows

        windows, _ = seed_chord_windows(view, request.tonic, request.mode)
        before = under.sketch_spans(windows, origin, start_tick)
        spans = (before or _spans(score, origin, lead_bars, grid.bar, request.tonic, request.mode)) + spans
    rng = random.Random(derive_seed(request.random_seed, variation, "accompany"))
    s = Settings(request.preset, full, request.tonic, request.mode, rng, float(request.temperature))
    phrases = plan_form(full.bars, request.preset.melody.phrase_bars, request.preset.style)
    writing = roles + [r for r in lacking if r not in roles] if lead_bars else roles
    parts = write_parts(s, phrases, spans, writing)[0] if writing else []
    perform(parts, s)
    added: dict[str, int] = {}
    changed: dict[int, list[list[int]]] = {}   # merged track -> all its notes, written back sorted
    for part in parts:
        if part.role not in lacking:
            notes = clip(part.notes, start_tick, full.end)   # the sketch plays its own
        elif part.role in roles:
            notes = part.notes
        else:   # the model wrote the new bars: these notes fill the sketch's and those it left silent
            notes = _fill_silent_bars(part.notes, score.tracks[model_tracks[part.role]], full, start_tick)
        if not notes:
            continue
        i = None if part.role in roles else model_tracks.get(part.role)
        if i is None:
            trk = Track(name=part.name, program=int(part.program or 0), is_drum=part.is_drum)
            for t, d, p, v in notes:
                trk.notes.append(Note(int(t), int(d), int(p), int(v)))
            score.tracks.append(trk)
            model_tracks.setdefault(part.role, len(score.tracks) - 1)
        else:
            changed[i] = changed.get(i) or _rows(score.tracks[i])
            changed[i] += notes
        added[part.role] = added.get(part.role, 0) + len(notes)
    if request.seed is not None:
        # the added harmony and pad, the model's too, go under the tune
        tune = _melody(score, request, model_tracks)
        if tune:
            limits = under.bar_limits(tune, full)
            for role in under.UNDER_ROLES:
                i = model_tracks.get(role)
                if i is not None and i >= n_seed and role in lacking:
                    changed[i] = under.voice_under(changed.get(i) or _rows(score.tracks[i]), limits, full)
    for i, rows in changed.items():
        score.tracks[i].notes = note_list(rows)
    return added


def _fill_silent_bars(notes: list[list[int]], track, grid, start_tick: int) -> list[list[int]]:
    """``notes`` in the bars before ``start_tick`` and in the bars of ``grid`` where ``track``
    sounds no note, each cut at the next bar where it does."""
    busy = set()
    for n in track.notes:
        first, last = grid.bar_of(int(n.time)), grid.bar_of(int(n.time) + max(1, int(n.duration)) - 1)
        busy.update(range(first, last + 1))
    out = []
    for t, d, p, v in notes:
        b = grid.bar_of(t)
        if grid.bar_start(b) >= start_tick and b in busy:
            continue
        stop = next((grid.bar_start(k) for k in range(b + 1, grid.bars) if k in busy), grid.end)
        if grid.bar_start(b) < start_tick:
            stop = min(stop, start_tick) if grid.bar_of(start_tick) in busy else stop
        out.append([t, max(1, min(d, stop - t)), p, v])
    return out


def _bar_ticks(score, request) -> int:
    num, den = request.meter
    return int(num) * score.ticks_per_quarter * 4 // int(den)


def _rows(track) -> list[list[int]]:
    return [[int(n.time), int(n.duration), int(n.pitch), int(n.velocity)] for n in track.notes]


def _melody(score, request, model_tracks: dict[str, int]) -> list[list[int]]:
    """The sketch's melody track with its continuation; without one, the added lead."""
    analysis = request.seed_analysis
    index = getattr(analysis, "melody_track", None)
    roles = {t.index: t.role for t in getattr(analysis, "tracks", [])}
    if index is None or roles.get(index) != "melody":
        index = next((i for i, r in sorted(roles.items()) if r == "melody"), None)
    if index is None:
        index = model_tracks.get("lead")
    if index is None and request.add_roles is not None:   # accompany: the sketch is the tune
        return [r for t in list(score.tracks)[:len(request.seed.tracks)] if not t.is_drum for r in _rows(t)]
    return _rows(score.tracks[index]) if index is not None else []


def continue_sketch_drums(score, request, *, variation: int) -> dict[int, int]:
    """Continue the sketch's own drum tracks in ``score`` with the procedural drummer.

    For models that learned no drum parts (the shipped one): the sketch's groove
    is looped with variations and fills into each drum track, after its notes.
    Returns track index -> new notes.
    """
    from musegen.engines.procedural.chance import derive_seed
    from musegen.engines.procedural.continuation import continue_drums
    from musegen.engines.procedural.form import plan_form
    from musegen.engines.procedural.arrange import clip, note_list
    from musegen.engines.procedural.meter import Grid
    from musegen.engines.procedural.seed import read_seed

    view = read_seed(request.seed, request.seed_analysis)
    drums = [t for t in view.tracks if t.is_drum]
    if not drums:
        return {}
    num, den = request.meter
    grid = Grid(view.tpq, int(num), int(den), request.bars, origin=view.start)
    phrases = plan_form(request.bars, request.preset.melody.phrase_bars, request.preset.style)
    rng = random.Random(derive_seed(request.random_seed, variation, "sketch-drums"))
    added = {}
    for t in drums:
        new = clip(continue_drums(t, view, grid, phrases, rng=rng, temperature=float(request.temperature),
                                  fills=True, ending=True), grid.start, grid.end)
        score.tracks[t.index].notes.extend(note_list(new))
        added[t.index] = len(new)
    return added
