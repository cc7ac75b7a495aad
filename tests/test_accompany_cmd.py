"""``musegen accompany MELODY --parts ...``: a band under a melody (issue 15).

The melody is kept note for note, the parts asked for (and only those) play
from its first bar to its last bar line, nothing follows it, and the result is
in the melody's key, tempo and meter.  Both engines, through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

ENGINES = ("procedural", "symbolic")
TPQ = 480
METER = (3, 4)
TEMPO = 90.0
BAR = TPQ * 3
#: the melody's harmony, one chord per bar (D major: I IV V I vi IV V I), as pitch classes
CHORDS = [(2, 6, 9), (7, 11, 2), (9, 1, 4), (2, 6, 9), (11, 2, 6), (7, 11, 2), (9, 1, 4), (2, 6, 9)]
#: the last note stops on beat 2 of bar 8: the result still ends at bar 8's bar line
LAST_BAR_LINE = len(CHORDS) * BAR
GM_DRUMS = range(35, 82)


def _melody(path: Path) -> Path:
    """A D-major tune in 3/4 at 90 BPM: each bar arpeggiates its chord of :data:`CHORDS` above C5."""
    from symusic import Note, Score, Tempo, TimeSignature, Track

    s = Score(TPQ)
    s.tempos.append(Tempo(0, TEMPO))
    s.time_signatures.append(TimeSignature(0, *METER))
    mel = Track(name="tune", program=73)
    for b, chord in enumerate(CHORDS):
        pitches = [74 + (pc - 2) % 12 for pc in chord]   # from D5 up
        last = b == len(CHORDS) - 1
        for k, p in enumerate(pitches[:2] if last else pitches):
            mel.notes.append(Note(b * BAR + k * TPQ, TPQ - 20 if not last else TPQ, p, 80 + 5 * k))
    s.tracks.append(mel)
    s.dump_midi(str(path))
    return path


@pytest.fixture(scope="module")
def melody(tmp_path_factory) -> Path:
    return _melody(tmp_path_factory.mktemp("melody") / "tune.mid")


_RUNS: dict = {}


def _accompany(melody: Path, tmp_root: Path, engine: str, parts: str):
    """(completed process, output score, sidecar) of one CLI run, cached per (engine, parts)."""
    from symusic import Score

    key = (engine, parts)
    if key not in _RUNS:
        out = tmp_root / f"{engine}-{parts.replace(',', '-')}"
        r = run_cli("accompany", melody, "--parts", parts, "--engine", engine, "--seed", "3", "--no-post",
                    "-o", out, "--name", "band", "--json")
        assert r.returncode == 0, r.stderr
        _RUNS[key] = (r, Score(str(out / "band.mid")), json.loads((out / "band.json").read_text()), out)
    return _RUNS[key]


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("accompany")


def _part(score, role: str):
    """The one track of ``role``: named by its role where the model wrote it ("bass"), by the
    procedural arranger's part name where that did ("Bass")."""
    (track,) = [t for t in score.tracks if t.name.lower() == role]
    return track


def _rows(track):
    return sorted((int(n.time), int(n.duration), int(n.pitch), int(n.velocity)) for n in track.notes)


@pytest.mark.parametrize("engine", ENGINES)
def test_melody_kept_note_for_note(melody, tmp_root, engine):
    from symusic import Score

    _, score, _, _ = _accompany(melody, tmp_root, engine, "bass,drums,piano")
    src = Score(str(melody))
    assert score.ticks_per_quarter == TPQ
    assert score.tracks[0].name == "tune" and score.tracks[0].program == 73
    assert _rows(score.tracks[0]) == _rows(src.tracks[0])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("parts, names", [("bass,drums,piano", {"bass", "drums", "harmony"}),
                                          ("bass,drums", {"bass", "drums"})])
def test_only_the_parts_asked_for_from_bar_1_to_the_last_bar_line(melody, tmp_root, engine, parts, names):
    _, score, side, _ = _accompany(melody, tmp_root, engine, parts)
    added = list(score.tracks)[1:]
    assert sorted(t.name.lower() for t in added) == sorted(names)
    for t in added:
        notes = list(t.notes)
        assert min(n.time for n in notes) < TPQ // 4, f"{t.name} starts late"
        # sounding in every bar (humanized notes may start a little early), nothing past the last bar line
        silent = [b for b in range(len(CHORDS))
                  if not any(n.time < (b + 1) * BAR - TPQ // 4 and n.time + n.duration > b * BAR + TPQ // 4
                             for n in notes)]
        assert not silent, f"{t.name} is silent in bars {silent}"
        assert max(n.time + n.duration for n in notes) <= LAST_BAR_LINE
    assert max(n.time + n.duration for t in added for n in t.notes) > LAST_BAR_LINE - BAR
    # in the melody's tempo and meter, no bars added after it
    assert [(ts.numerator, ts.denominator) for ts in score.time_signatures] == [METER]
    assert [round(t.qpm, 3) for t in score.tempos] == [TEMPO]
    p = side["parameters"]
    assert p["bars"] == 0 and p["key"] == "D" and p["mode"] == "major"
    assert sorted(x["role"] for x in p["parts"]) == sorted(names)
    assert side["command"] == "accompany"


@pytest.mark.parametrize("engine", ENGINES)
def test_audio_is_the_melody_to_its_last_bar_line_and_the_tail(melody, tmp_root, engine):
    import soundfile as sf

    from musegen.pipeline import TAIL_SECONDS

    _, _, _, out = _accompany(melody, tmp_root, engine, "bass,drums,piano")
    info = sf.info(str(out / "band.wav"))
    music_s = LAST_BAR_LINE / TPQ * 60.0 / TEMPO   # 8 bars of 3/4 at 90 BPM: 16 s
    assert music_s - 0.05 <= info.duration <= music_s + TAIL_SECONDS + 0.05


@pytest.mark.parametrize("engine", ENGINES)
def test_bass_plays_chord_tones_of_the_melodys_harmony(melody, tmp_root, engine):
    _, score, _, _ = _accompany(melody, tmp_root, engine, "bass,drums,piano")
    bass = _part(score, "bass")
    on, beats = 0, 0
    for b, chord in enumerate(CHORDS):
        for k in range(METER[0]):
            tick = b * BAR + k * TPQ
            sounding = [n for n in bass.notes if n.time <= tick + TPQ // 8 and n.time + n.duration > tick]
            if not sounding:
                continue
            beats += 1
            on += all(n.pitch % 12 in chord for n in sounding)
    assert beats >= 0.5 * len(CHORDS) * METER[0]
    assert on / beats >= 0.75, f"bass on chord tones on {on} of {beats} beats"


@pytest.mark.parametrize("engine", ENGINES)
def test_drums_on_channel_10_with_gm_drum_notes(melody, tmp_root, engine):
    import mido

    _, score, _, out = _accompany(melody, tmp_root, engine, "bass,drums,piano")
    drums = _part(score, "drums")
    assert drums.is_drum and len(drums.notes) > 0
    assert all(n.pitch in GM_DRUMS for n in drums.notes)
    channels = {(m.channel, m.note) for tr in mido.MidiFile(str(out / "band.mid")).tracks for m in tr
                if m.type == "note_on"}
    drum_channel_notes = {n for c, n in channels if c == 9}
    assert drum_channel_notes and drum_channel_notes <= set(GM_DRUMS)


def test_a_bad_part_name_is_refused_naming_it_and_the_known_ones(melody, tmp_path):
    from musegen.pipeline.accompaniment import PARTS

    out = tmp_path / "out"
    r = run_cli("accompany", melody, "--parts", "bass,kazoo", "--engine", "procedural", "-o", out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "'kazoo'" in lines[0]
    assert all(name in lines[0] for name in PARTS)
    assert "Traceback" not in r.stderr and not out.exists()


def test_an_engine_that_cannot_accompany_is_refused(melody, tmp_path):
    r = run_cli("accompany", melody, "--parts", "bass", "--engine", "musicgen", "-o", tmp_path / "out")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "'musicgen'" in r.stderr
    assert "procedural" in r.stderr and not (tmp_path / "out").exists()


def test_help_lists_every_part_name():
    from musegen.pipeline.accompaniment import PARTS

    r = run_cli("accompany", "--help")
    assert r.returncode == 0
    flat = " ".join(r.stdout.split())
    assert all(name in flat for name in PARTS)


def test_a_part_the_preset_lacks_gets_a_default_program(melody, tmp_path):
    """bach-chorale has no drums and no pad: both are added with the defaults, chords as blocks."""
    from musegen.pipeline.accompaniment import DEFAULT_PROGRAMS, accompany_preset, parse_parts
    from musegen.presets import load_preset

    p = accompany_preset(load_preset("bach-chorale"), parse_parts("pad, drums,bass"))
    assert p.instruments.pad == DEFAULT_PROGRAMS["pad"] and p.instruments.drums == DEFAULT_PROGRAMS["drums"]
    assert p.instruments.lead is None and p.instruments.harmony is None
    assert p.groove.drum_pattern != "none" and p.harmony.chord_style == "block"
    assert accompany_preset(load_preset("pop-ballad"), ("piano",)).instruments.harmony == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_under_a_long_rest_the_chords_go_on(tmp_path, engine):
    """A tune sung over I IV V vi, resting four bars, then sung again: under the rest the bass
    restates the progression instead of holding the last chord for four bars."""
    from symusic import Note, Score, Tempo, TimeSignature, Track

    from musegen.pipeline import accompany

    tpq, bar = 480, 1920
    chords = [(0, 4, 7), (5, 9, 0), (7, 11, 2), (9, 0, 4)]   # C major: I IV V vi
    s = Score(tpq)
    s.tempos.append(Tempo(0, 100.0))
    s.time_signatures.append(TimeSignature(0, 4, 4))
    mel = Track(name="tune", program=73)
    for b in (0, 1, 2, 3, 8, 9):
        for k, pc in enumerate(chords[b % 4]):
            mel.notes.append(Note(b * bar + k * tpq, tpq, 72 + (pc - 0) % 12, 90))
    s.tracks.append(mel)
    path = tmp_path / "rest.mid"
    s.dump_midi(str(path))
    (r,) = accompany(path, parts="bass", engine=engine, seed=1, out_dir=tmp_path / "out", post=[])
    out = Score(str(r.mid))
    bass = _part(out, "bass")
    roots = []
    for b in range(4, 8):   # the rest
        first = min((n for n in bass.notes if b * bar - tpq // 4 <= n.time < (b + 1) * bar - tpq // 4),
                    key=lambda n: n.time)
        roots.append(first.pitch % 12)
    assert roots == [c[0] for c in chords], roots
