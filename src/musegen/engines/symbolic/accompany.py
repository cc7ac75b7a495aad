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
from musegen.presets import MINOR_MODES

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
    """Add the preset's drums and bass for the new bars where the model wrote none.

    Returns what was added (role -> notes) for the engine's info.
    """
    from musegen.engines.procedural.chance import derive_seed
    from musegen.engines.procedural.compose import Settings, perform, write_parts
    from musegen.engines.procedural.form import plan_form
    from musegen.engines.procedural.meter import Grid

    if request.continue_only:
        return {}  # extend adds no parts
    inst = request.preset.instruments
    roles = []
    if inst.harmony is not None and not any(n for p, n in written.items() if p not in (MELODY_PROGRAM, BASS_PROGRAM, -1)):
        roles.append("harmony")  # e.g. folk styles, where the model learned bare tunes
    if inst.drums is not None and request.preset.groove.drum_pattern != "none" \
            and not any(t.is_drum and t.notes for t in score.tracks):
        roles.append("drums")
    if inst.bass is not None and not written.get(BASS_PROGRAM):
        roles.append("bass")
    if not roles:
        return {}
    tpq = score.ticks_per_quarter
    num, den = request.meter
    grid = Grid(tpq, num, den, request.bars, origin=start_tick)
    spans = _spans(score, start_tick, request.bars, grid.bar, request.tonic, request.mode)
    rng = random.Random(derive_seed(request.random_seed, variation, "accompany"))
    s = Settings(request.preset, grid, request.tonic, request.mode, rng, float(request.temperature))
    phrases = plan_form(request.bars, request.preset.melody.phrase_bars, request.preset.style)
    parts, _, _ = write_parts(s, phrases, spans, roles)
    perform(parts, s)
    added = {}
    for part in parts:
        trk = Track(name=part.name, program=int(part.program or 0), is_drum=part.is_drum)
        for t, d, p, v in part.notes:
            trk.notes.append(Note(int(t), int(d), int(p), int(v)))
        score.tracks.append(trk)
        added[part.role] = len(part.notes)
    return added


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
