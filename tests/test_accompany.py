"""Parts a preset adds to a sketch accompany it from its first bar, under its tune (issue 19, item 6).

``generate --midi`` and ``extend --add-parts`` used to start the added parts after the
sketch: the sketch played alone, the level jumped where the new bars began, and the new
harmony could sit above the melody.  Both engines, on the shipped samples.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from conftest import SAMPLES

ENGINES = ("procedural", "symbolic")
MELODY_SKETCHES = ("melody.mid", "melody-and-chords.mid")   # a bare tune; a tune over chords (6/8)
PRESETS = ("pop-ballad", "synthwave")                        # broken chords; a polysynth arpeggio
NEW_BARS = 4
CASES = [(e, s, p) for e in ENGINES for s in MELODY_SKETCHES for p in PRESETS]
_RESULTS: dict = {}


def _engine(name: str):
    from musegen.engines.procedural.engine import ProceduralEngine
    from musegen.engines.symbolic.engine import SymbolicEngine

    return ProceduralEngine() if name == "procedural" else SymbolicEngine()


def _generate(engine: str, sample: str, preset: str, **options):
    """(request, output score) of ``generate --midi samples/<sample> --bars 4 --seed 1``, cached."""
    key = (engine, sample, preset, tuple(sorted(options.items())))
    if key not in _RESULTS:
        from musegen.pipeline import load_seed, plan_request
        from musegen.presets import load_preset

        seed, analysis, _ = load_seed(SAMPLES / sample)
        req = plan_request(load_preset(preset), seed_score=seed, seed_analysis=analysis, bars=NEW_BARS,
                           random_seed=1, engine_options=options)
        (out,) = _engine(engine).generate(req)
        _RESULTS[key] = (req, out.score)
    return _RESULTS[key]


def _bar(req, score) -> int:
    return score.ticks_per_quarter * 4 * req.meter[0] // req.meter[1]


def _start(req, score) -> int:
    """The continuation's first bar line (after the sketch's last note)."""
    end = max(n.time + n.duration for t in req.seed.tracks for n in t.notes)
    return -(-end // _bar(req, score)) * _bar(req, score)


def _added(req, score):
    return list(score.tracks)[len(req.seed.tracks):]


def _rows(track):
    return [(n.time, n.duration, n.pitch, n.velocity) for n in track.notes]


@pytest.mark.parametrize("engine, sample, preset", CASES)
def test_added_parts_play_from_the_sketchs_first_bar_to_the_end(engine, sample, preset):
    req, score = _generate(engine, sample, preset)
    bar, start = _bar(req, score), _start(req, score)
    added = _added(req, score)
    assert added, "the preset's roles the sketch lacks are added"
    for t in added:
        times = [n.time for n in t.notes]
        assert min(times) < bar, f"{t.name!r} is silent in bar 1 (first note at tick {min(times)})"
        assert max(times) >= start, f"{t.name!r} stops with the sketch"


@pytest.mark.parametrize("engine, sample, preset", CASES)
def test_no_added_part_falls_silent_for_a_bar(engine, sample, preset):
    """Every added part sounds in every bar, the sketch's and the new ones (where the model leaves
    an added part silent for a bar, the arranger's part fills it)."""
    req, score = _generate(engine, sample, preset)
    bar = _bar(req, score)
    n_bars = _start(req, score) // bar + NEW_BARS
    for t in _added(req, score):
        sounding = {k for n in t.notes for k in range(n.time // bar, (n.time + n.duration - 1) // bar + 1)}
        silent = sorted(set(range(n_bars - 1)) - sounding)   # the last bar may end on the bar before's chord
        assert not silent, f"{t.name!r} is silent in bars {[k + 1 for k in silent]}"


@pytest.mark.parametrize("engine, sample, preset", CASES)
def test_the_sketch_is_kept_note_for_note(engine, sample, preset):
    req, score = _generate(engine, sample, preset)
    start = _start(req, score)
    for st, gt in zip(req.seed.tracks, score.tracks):
        assert (gt.name, gt.program, gt.is_drum) == (st.name, st.program, st.is_drum)
        assert _rows(gt)[:len(st.notes)] == _rows(st)
        assert all(n.time >= start for n in gt.notes[len(st.notes):]), "nothing is added inside the sketch's parts"


@pytest.mark.parametrize("engine, sample, preset", CASES)
def test_added_harmony_stays_below_the_melody_in_every_bar(engine, sample, preset):
    """In each bar (the sketch's and the new ones) where the melody starts notes, every added
    harmony or pad note starting there is below the median pitch of those melody notes."""
    req, score = _generate(engine, sample, preset)
    bar = _bar(req, score)
    inst = req.preset.instruments
    melody = score.tracks[req.seed_analysis.melody_track]
    chords = [t for t in _added(req, score) if not t.is_drum and t.program in (inst.harmony, inst.pad)]
    assert chords, "the preset adds a harmony or a pad"
    checked = 0
    for k in range(score.end() // bar + 1):
        tune = [n.pitch for n in melody.notes if k * bar <= n.time < (k + 1) * bar]
        for t in chords:
            under = [n.pitch for n in t.notes if k * bar <= n.time < (k + 1) * bar]
            if tune and under:
                median = statistics.median(tune)
                assert max(under) < median, f"bar {k + 1}: {t.name!r} reaches {max(under)}, the tune's median is {median}"
                checked += 1
    assert checked >= len(req.seed_analysis.bar_starts)


@pytest.mark.parametrize("engine, sample, preset", CASES)
def test_no_level_jump_where_the_new_bars_begin(engine, sample, preset):
    """RMS of the rendered sketch bars and of the new bars within 6 dB (was 9.4 dB for synthwave)."""
    from musegen.midi.timing import tempo_map, ticks_to_seconds
    from musegen.render.synth import render_score

    req, score = _generate(engine, sample, preset)
    sr = 22050
    audio = render_score(score, sample_rate=sr)
    ticks = np.array([0, _start(req, score), _start(req, score) + NEW_BARS * _bar(req, score)])
    a, b, c = (int(x * sr) for x in ticks_to_seconds(ticks, tempo_map(score), score.ticks_per_quarter))
    rms = [float(np.sqrt(np.mean(np.square(audio[:, i:j], dtype=np.float64)))) for i, j in ((a, b), (b, c))]
    assert min(rms) > 0
    jump = 20 * np.log10(rms[1] / rms[0])
    assert abs(jump) <= 6.0, f"the new bars are {jump:+.1f} dB against the sketch's"


def _sounding_pcs(track, tick: int) -> set[int]:
    return {n.pitch % 12 for n in track.notes if n.time <= tick < n.time + n.duration}


@pytest.mark.parametrize("engine", ENGINES)
def test_the_added_bass_follows_the_sketchs_chords(engine):
    """In the sketch's bars the added bass plays, on each beat it strikes, a note of the chord the
    sketch's own chord track sounds there."""
    req, score = _generate(engine, "melody-and-chords.mid", "pop-ballad")
    chords = next(t for t in req.seed.tracks if t.name == "Chords")
    bass = next(t for t in _added(req, score) if t.program == req.preset.instruments.bass)
    beat = score.ticks_per_quarter * 3 // 2   # 6/8: dotted quarters
    on_beat = [(n.pitch % 12, round(n.time / beat) * beat) for n in bass.notes if n.time < _start(req, score)
               and abs(n.time - round(n.time / beat) * beat) <= 48]   # humanized by a few ticks
    held = [(pc, _sounding_pcs(chords, q + 30)) for pc, q in on_beat]
    held = [(pc, pcs) for pc, pcs in held if pcs]
    assert len(held) >= 8
    share = sum(pc in pcs for pc, pcs in held) / len(held)
    assert share >= 0.8, f"only {share:.0%} of the bass's beats are chord tones of the sketch"


@pytest.mark.parametrize("engine", ENGINES)
def test_accompany_from_end_keeps_the_sketch_alone(engine):
    """The option that asks for the old behaviour: the sketch plays alone, then the parts join."""
    req, score = _generate(engine, "melody.mid", "synthwave", accompany_from="end")
    start = _start(req, score)
    added = _added(req, score)
    assert added and all(n.time >= start for t in added for n in t.notes)
    for st, gt in zip(req.seed.tracks, score.tracks):
        assert _rows(gt)[:len(st.notes)] == _rows(st)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bad_accompany_from_is_refused_by_name(engine):
    from musegen.errors import ParameterError
    from musegen.pipeline import load_seed, plan_request
    from musegen.presets import load_preset

    seed, analysis, _ = load_seed(SAMPLES / "melody.mid")
    req = plan_request(load_preset("pop-ballad"), seed_score=seed, seed_analysis=analysis, bars=2,
                       random_seed=1, engine_options={"accompany_from": "middle"})
    with pytest.raises(ParameterError, match="accompany_from.*'middle'"):
        _engine(engine).generate(req)
