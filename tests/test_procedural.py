"""The procedural engine: every preset, determinism, bars, roles, scales, meters and seed continuation."""

from __future__ import annotations

import dataclasses

import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from musegen.engines.base import Engine, Request
from musegen.engines.procedural import ProceduralEngine
from musegen.engines.procedural.theory import scale_pcs
from musegen.errors import ParameterError
from musegen.presets import list_names, load_preset, pitch_class

PRESETS = list_names()
TPQ = 480


def _request(name_or_preset, *, bars=8, seed=0, meter=None, **kw) -> Request:
    p = load_preset(name_or_preset) if isinstance(name_or_preset, str) else name_or_preset
    tonic = 0 if p.key in ("random", "from-seed") else pitch_class(p.key)
    return Request(preset=p, bars=bars, tempo_bpm=p.tempo[0], meter=meter or p.meter, tonic=tonic, mode=p.mode,
                   random_seed=seed, **kw)


def _notes(score: Score) -> list[tuple]:
    return [(i, n.time, n.duration, n.pitch, n.velocity) for i, t in enumerate(score.tracks) for n in t.notes]


def _steady(name: str):
    """The preset without swing or humanizing, so onsets sit exactly on the grid."""
    p = load_preset(name)
    return dataclasses.replace(p, groove=dataclasses.replace(p.groove, humanize=0.0, swing=0.0))


@pytest.fixture(scope="module")
def engine():
    return ProceduralEngine()


@pytest.fixture(scope="module")
def outputs(engine):
    """8 bars of every preset, seeds 0 and 1, and seed 0 again."""
    return {name: [engine.generate(_request(name, seed=s))[0] for s in (0, 1, 0)] for name in PRESETS}


def test_engine_protocol_and_registry():
    from musegen.engines.registry import get_engine

    eng = get_engine("procedural")
    assert isinstance(eng, ProceduralEngine) and isinstance(eng, Engine)
    assert eng.name == "procedural" and eng.produces == "midi"


@pytest.mark.parametrize("name", PRESETS)
def test_deterministic_and_seed_dependent(outputs, name):
    a, b, a2 = outputs[name]
    assert _notes(a.score) == _notes(a2.score)
    assert a.info == a2.info
    assert _notes(a.score) != _notes(b.score)


@pytest.mark.parametrize("name", PRESETS)
def test_bars_roles_programs_and_drums(outputs, name):
    out = outputs[name][0]
    preset = load_preset(name)
    score = out.score
    num, den = preset.meter
    bar = TPQ * 4 * num // den
    assert score.ticks_per_quarter == TPQ
    assert 7 * bar < score.end() <= 8 * bar
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (num, den)
    assert len(score.tempos) == 1 and len(score.key_signatures) == 1
    tracks = out.info["tracks"]
    assert len(tracks) == len(score.tracks)
    roles_seen = set()
    for desc, track in zip(tracks, score.tracks):
        role = desc["role"]
        roles_seen.add(role)
        assert track.program == getattr(preset.instruments, role), (name, track.name, role)
        assert track.is_drum == (role == "drums")
        assert len(track.notes) > 0, (name, track.name)
        if track.is_drum:
            assert all(27 <= n.pitch <= 87 for n in track.notes)
    expected = set(preset.instruments.roles())
    if preset.groove.drum_pattern == "none":
        expected.discard("drums")
    assert roles_seen == expected


@pytest.mark.parametrize("name", PRESETS)
def test_melody_in_range_and_scale(outputs, name):
    preset = load_preset(name)
    if preset.instruments.lead is None:
        pytest.skip("no lead role")
    for out in outputs[name][:2]:
        lead = [t for t, d in zip(out.score.tracks, out.info["tracks"]) if d["role"] == "lead"]
        assert len(lead) == 1
        notes = list(lead[0].notes)
        lo, hi = preset.melody.range
        assert all(lo <= n.pitch <= hi for n in notes)
        tonic = pitch_class(preset.key)
        scale = set(scale_pcs(tonic, preset.scale or preset.mode))
        inside = sum(n.pitch % 12 in scale for n in notes) / len(notes)
        assert inside >= 0.85, (name, inside)
        # a line, not chords
        starts = [n.time for n in notes]
        assert len(starts) == len(set(starts))


@pytest.mark.parametrize("meter, beats", [((3, 4), (0, 480, 960)), ((6, 8), (0, 720))])
def test_meters_group_beats(engine, meter, beats):
    bar = TPQ * 4 * meter[0] // meter[1]
    out = engine.generate(_request(_steady("pop-ballad"), meter=meter, bars=8, seed=3))[0]
    score = out.score
    assert 7 * bar < score.end() <= 8 * bar
    by_role = {d["role"]: t for d, t in zip(out.info["tracks"], score.tracks)}
    # every bar opens with a bass note, and bass notes fall on beats (dotted quarters in 6/8)
    bass = by_role["bass"].notes
    assert {n.time // bar for n in bass if n.time % bar == 0} == set(range(8))
    assert {n.time % bar for n in bass} <= set(beats)
    # the side-stick backbeat lands on beats after the first, never between them
    side = {n.time % bar for n in by_role["drums"].notes if n.pitch == 37}
    assert side and side <= set(beats[1:])
    # nothing off the sixteenth grid
    assert all(n.time % (TPQ // 4) == 0 for t in score.tracks for n in t.notes if not t.is_drum or n.pitch != 37)


def test_waltz_and_jig_grids(engine):
    waltz = engine.generate(_request(_steady("viennese-waltz"), seed=2))[0]
    roles = {d["role"]: t for d, t in zip(waltz.info["tracks"], waltz.score.tracks)}
    assert {n.time % 1440 for n in roles["bass"].notes} == {0}
    assert {n.time % 1440 for n in roles["harmony"].notes} == {480, 960}
    jig = engine.generate(_request(_steady("irish-jig"), seed=2))[0]
    drums = next(t for t in jig.score.tracks if t.is_drum)
    accents = {n.time % 1440 for n in drums.notes if n.velocity >= 0.95 * max(m.velocity for m in drums.notes)}
    assert accents <= {0, 720}
    lead = jig.score.tracks[0]
    assert all(n.time % 240 == 0 for n in lead.notes if n.duration >= 240)


def _seed_score(tpq: int = TPQ, meter=(4, 4), bars: int = 2) -> Score:
    """A small melody + bass + drums sketch in C major, ending a little before a bar line."""
    s = Score(tpq)
    s.tempos.append(Tempo(0, 96.0))
    s.time_signatures.append(TimeSignature(0, *meter))
    bar = tpq * 4 * meter[0] // meter[1]
    beat = tpq * 4 // meter[1]
    mel = Track("Tune", 73, False)
    pitches = [72, 74, 76, 79, 77, 76, 74, 72, 71, 72, 74, 72]
    t, i = 0, 0
    while t < bars * bar:
        d = beat if i % 3 else beat // 2
        mel.notes.append(Note(t, d - 10, pitches[i % len(pitches)], 80 + i % 7))
        t += d
        i += 1
    bass = Track("Bass", 33, False)
    for b in range(bars):
        root = (36, 41, 43, 36)[b % 4]
        bass.notes.append(Note(b * bar, bar // 2, root, 90))
        bass.notes.append(Note(b * bar + bar // 2, bar // 2 - 20, root + 7, 84))
    drums = Track("Drums", 0, True)
    for b in range(bars):
        for k in range(bar // (beat // 2)):
            drums.notes.append(Note(b * bar + k * beat // 2, 30, 42, 60 + 10 * (k % 2 == 0)))
        drums.notes.append(Note(b * bar, 60, 36, 110))
        drums.notes.append(Note(b * bar + beat, 60, 38, 100))
    s.tracks.extend([mel, bass, drums])
    return s


@pytest.mark.parametrize("tpq, meter", [(TPQ, (4, 4)), (96, (3, 4)), (384, (6, 8))])
@pytest.mark.parametrize("continue_only", [True, False])
def test_seed_is_an_exact_prefix_and_every_part_goes_on(engine, tpq, meter, continue_only):
    seed = _seed_score(tpq, meter)
    bar = tpq * 4 * meter[0] // meter[1]
    preset = load_preset("pop-ballad")
    req = Request(preset=preset, bars=4, tempo_bpm=96.0, meter=meter, tonic=0, mode="major", random_seed=5,
                  seed=seed, continue_only=continue_only)
    out = engine.generate(req)[0]
    score = out.score
    assert score.ticks_per_quarter == tpq
    assert [(t.time, t.qpm) for t in score.tempos] == [(t.time, t.qpm) for t in seed.tempos]
    assert [(t.time, t.numerator, t.denominator) for t in score.time_signatures] == \
        [(t.time, t.numerator, t.denominator) for t in seed.time_signatures]
    seed_end = max(n.time + n.duration for t in seed.tracks for n in t.notes)
    start = -(-seed_end // bar) * bar
    assert out.info["start_tick"] == start
    for i, st in enumerate(seed.tracks):
        ot = score.tracks[i]
        assert (ot.name, ot.program, ot.is_drum) == (st.name, st.program, st.is_drum)
        head = [(n.time, n.duration, n.pitch, n.velocity) for n in ot.notes[:len(st.notes)]]
        assert head == [(n.time, n.duration, n.pitch, n.velocity) for n in st.notes]
        new = ot.notes[len(st.notes):]
        assert len(new) > 0, st.name
        assert all(start <= n.time < start + 4 * bar for n in new)
        assert all(n.time + n.duration <= start + 4 * bar for n in new)
        assert any(n.time >= start + 3 * bar for n in new) or st.is_drum
    if continue_only:
        assert len(score.tracks) == len(seed.tracks)
    else:
        # pop-ballad's harmony and pad roles are missing from the seed: they are added
        added = score.tracks[len(seed.tracks):]
        assert {t.program for t in added} == {preset.instruments.harmony, preset.instruments.pad}
        # they accompany the seed from its first bar (issue 19.6), and end with the new bars
        assert all(min(n.time for n in t.notes) < bar for t in added)
        assert all(n.time + n.duration <= start + 4 * bar for t in added for n in t.notes)
    assert start + 3 * bar < score.end() <= start + 4 * bar


def test_seed_continuation_keeps_register_and_material(engine):
    seed = _seed_score(TPQ, (4, 4), bars=4)
    preset = load_preset("pop-ballad")
    req = Request(preset=preset, bars=8, tempo_bpm=96.0, meter=(4, 4), tonic=0, mode="major", random_seed=1,
                  seed=seed, continue_only=True)
    out = engine.generate(req)[0]
    again = engine.generate(req)[0]
    assert _notes(out.score) == _notes(again.score)
    mel_seed = seed.tracks[0].notes
    mel_new = out.score.tracks[0].notes[len(mel_seed):]
    lo, hi = min(n.pitch for n in mel_seed), max(n.pitch for n in mel_seed)
    assert all(lo - 3 <= n.pitch <= hi + 3 for n in mel_new)
    # the seed's rhythm vocabulary: new durations are durations the seed used (bar ends may hold longer)
    seed_durs = {n.duration for n in mel_seed}
    share = sum(n.duration in seed_durs for n in mel_new) / len(mel_new)
    assert share >= 0.7
    bass_new = out.score.tracks[1].notes[len(seed.tracks[1].notes):]
    assert all(n.pitch < 60 for n in bass_new)
    # the drum loop keeps its kick on the downbeats
    drums_new = out.score.tracks[2].notes[len(seed.tracks[2].notes):]
    kicks = {n.time % 1920 for n in drums_new if n.pitch == 36}
    assert 0 in kicks


def test_variations_options_and_bad_input(engine):
    outs = engine.generate(_request("jazz-trio", bars=4, variations=3))
    assert len(outs) == 3 and len({tuple(_notes(o.score)) for o in outs}) == 3
    assert [o.info["variation"] for o in outs] == [0, 1, 2]
    calls = []
    engine.generate(_request("techno", bars=2), progress=lambda d, t, m: calls.append((d, t)))
    assert calls == [(1, 1)]
    out = engine.generate(_request("pop-ballad", bars=4, options={"bass_pattern": "walking"}))[0]
    assert out.info["bass_pattern"] == "walking" and "ignored_options" not in out.info
    with pytest.raises(ParameterError, match="unknown option for engine 'procedural': nope; known: .*bass_pattern"):
        engine.generate(_request("pop-ballad", bars=4, options={"bass_pattern": "walking", "nope": 1}))
    with pytest.raises(ParameterError, match="bass_pattern"):
        engine.generate(_request("pop-ballad", options={"bass_pattern": "dubstep"}))
    with pytest.raises(ParameterError, match="bars"):
        engine.generate(_request("pop-ballad", bars=0))
    with pytest.raises(ParameterError, match="mode"):
        engine.generate(dataclasses.replace(_request("pop-ballad"), mode="happy"))
    with pytest.raises(ParameterError, match="colour"):
        ProceduralEngine(fills=False, colour="red")
    with pytest.raises(ParameterError, match="fills .*'maybe'"):
        ProceduralEngine(fills="maybe")


@pytest.mark.parametrize("temperature", [0.2, 3.0])
def test_temperature_and_short_pieces(engine, temperature):
    for bars in (1, 2, 3):
        out = engine.generate(_request("bach-chorale", bars=bars, temperature=temperature))[0]
        assert (bars - 1) * 1920 < out.score.end() <= bars * 1920


def test_chorale_voice_leading_has_no_parallel_fifths_or_octaves(engine):
    out = engine.generate(_request("bach-chorale", bars=16, seed=4))[0]
    voices = [sorted((n.time, n.end, n.pitch) for n in t.notes) for t in out.score.tracks]
    onsets = sorted({n[0] for v in voices for n in v})

    def at(v, t):
        return next((p for s, e, p in v if s <= t < e), None)

    snap = [[at(v, t) for v in voices] for t in onsets]
    bad = 0
    for a, b in zip(snap, snap[1:]):
        for i in range(4):
            for j in range(i + 1, 4):
                if None in (a[i], a[j], b[i], b[j]) or (a[i] == b[i] and a[j] == b[j]):
                    continue
                x, y = abs(a[i] - a[j]) % 12, abs(b[i] - b[j]) % 12
                bad += x == y and x in (0, 7) and (b[i] - a[i]) * (b[j] - a[j]) > 0
    assert bad <= 1


def test_progressions_and_scale_follow_a_requested_mode(engine):
    """A major-key preset asked for A minor (as a seed's key would) stays in A minor."""
    p = load_preset("pop-ballad")
    req = Request(preset=p, bars=8, tempo_bpm=72, meter=(4, 4), tonic=9, mode="minor", random_seed=2)
    out = engine.generate(req)[0]
    minor = set(scale_pcs(9, "minor")) | {8}   # natural minor plus the leading tone of V
    pitched = [n for t in out.score.tracks if not t.is_drum for n in t.notes]
    assert sum(n.pitch % 12 in minor for n in pitched) / len(pitched) >= 0.97
    assert out.info["chords"][0]["chord"] in ("i", "VI", "iv", "III")
    assert out.info["scale"] == "minor"
