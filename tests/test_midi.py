"""Tests of musegen.midi: loading and saving, analysis, piano rolls, samples."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from musegen.errors import MidiError, OutputError, ParameterError
from musegen.midi import (
    SCALES,
    SeedAnalysis,
    analyze_score,
    chord_name,
    estimate_chords,
    estimate_key,
    load_midi,
    load_midi_bytes,
    parse_chord_name,
    pitch_class_from_name,
    pitch_class_histogram,
    save_midi,
    scale_pitch_classes,
    score_digest,
    seconds_to_ticks,
    tempo_map,
    ticks_to_seconds,
)

from conftest import POP909  # ../shared/data/pop909 beside the checkout

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

needs_pop909 = pytest.mark.skipif(not POP909.is_dir(), reason="POP909 data not available")


# ---------------------------------------------------------------- helpers


def _smf(fmt: int, n_tracks: int, division: int, *tracks: bytes) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, fmt, n_tracks, division) + b"".join(tracks)


def _mtrk(events: bytes) -> bytes:
    return b"MTrk" + struct.pack(">I", len(events)) + events


# one 96-tick middle C, then end of track
_NOTE_TRACK = _mtrk(b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00")
_EMPTY_TRACK = _mtrk(b"\x00\xff\x03\x04Void\x00\xff\x2f\x00")


@pytest.fixture
def rich_score() -> Score:
    """Two pitched tracks and drums, tempo and meter changes, a key signature."""
    score = Score(480)
    score.tempos.extend([Tempo(0, qpm=100), Tempo(3840, qpm=150)])
    score.time_signatures.extend([TimeSignature(0, 4, 4), TimeSignature(3840, 3, 4)])
    score.key_signatures.append(KeySignature(0, -3, 0))  # Eb major
    lead = Track(name="Lead", program=73)
    for i, pitch in enumerate([63, 65, 67, 68, 70, 72, 74, 75, 75, 74, 72, 70]):
        lead.notes.append(Note(i * 480, 450, pitch, 80 + i))
    pad = Track(name="Pad", program=89)
    for bar in range(4):
        for pitch in (51, 55, 58):
            pad.notes.append(Note(bar * 1920, 1900, pitch, 60))
    drums = Track(name="Kit", program=0, is_drum=True)
    for i in range(16):
        drums.notes.append(Note(i * 240, 60, 42, 70 + (i % 2) * 20))
    score.tracks.extend([lead, pad, drums])
    return score


def _notes(track) -> list[tuple[int, int, int, int]]:
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)


# ---------------------------------------------------------------- io


def test_round_trip_keeps_notes_tempo_meter(rich_score, tmp_path):
    path = save_midi(rich_score, tmp_path / "sub" / "rich.mid")
    assert path.is_file()
    assert not list(path.parent.glob(".*.part"))
    back = load_midi(path)
    assert back.ticks_per_quarter == 480
    assert [(t.name, t.program, t.is_drum) for t in back.tracks] == [
        ("Lead", 73, False),
        ("Pad", 89, False),
        ("Kit", 0, True),
    ]
    for mine, theirs in zip(rich_score.tracks, back.tracks):
        assert _notes(mine) == _notes(theirs)
    assert [(t.time, t.mspq) for t in back.tempos] == [(t.time, t.mspq) for t in rich_score.tempos]
    assert [(t.time, t.numerator, t.denominator) for t in back.time_signatures] == [
        (0, 4, 4),
        (3840, 3, 4),
    ]
    assert [(k.time, k.key, k.tonality) for k in back.key_signatures] == [(0, -3, 0)]
    assert score_digest(back) == score_digest(rich_score)


def test_score_digest_ignores_order_but_not_content(rich_score):
    digest = score_digest(rich_score)
    shuffled = rich_score.copy()
    notes = list(shuffled.tracks[0].notes)[::-1]
    shuffled.tracks[0].notes = notes
    assert score_digest(shuffled) == digest
    changed = rich_score.copy()
    changed.tracks[0].notes[3].pitch += 1
    assert score_digest(changed) != digest
    assert len(digest) == 64


def test_save_midi_failure_leaves_nothing(rich_score, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot write"):
        save_midi(rich_score, blocker / "out.mid")
    target = tmp_path / "dir.mid"
    target.mkdir()
    with pytest.raises(OutputError):
        save_midi(rich_score, target)
    assert not list(tmp_path.glob(".*.part"))
    with pytest.raises(ParameterError):
        save_midi("not a score", tmp_path / "x.mid")


def test_type0_file_with_drums_loads(tmp_path):
    mid = mido.MidiFile(type=0, ticks_per_beat=96)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    track.append(mido.Message("program_change", channel=0, program=40, time=0))
    track.append(mido.Message("program_change", channel=1, program=33, time=0))
    for step in range(8):
        track.append(mido.Message("note_on", channel=0, note=72 + step % 3, velocity=80, time=0))
        track.append(mido.Message("note_on", channel=1, note=36, velocity=80, time=0))
        track.append(
            mido.Message(
                "note_on", channel=9, note=36 if step % 2 == 0 else 38, velocity=100, time=0
            )
        )
        track.append(mido.Message("note_off", channel=0, note=72 + step % 3, time=90))
        track.append(mido.Message("note_off", channel=1, note=36, time=0))
        track.append(mido.Message("note_off", channel=9, note=36 if step % 2 == 0 else 38, time=0))
        track.append(mido.MetaMessage("text", text="x", time=6))
    path = tmp_path / "type0.mid"
    mid.save(path)
    assert path.read_bytes()[8:10] == b"\x00\x00"  # really type 0

    score = load_midi(path)
    assert score.ticks_per_quarter == 96
    assert sorted((t.program, t.is_drum, len(t.notes)) for t in score.tracks) == [
        (0, True, 8),
        (33, False, 8),
        (40, False, 8),
    ]
    roles = {t.program if not t.is_drum else "drums": t.role for t in analyze_score(score).tracks}
    assert roles["drums"] == "drums"
    assert roles[33] == "bass"
    assert roles[40] == "melody"


def test_tempo_and_meter_changes_parsed(rich_score):
    analysis = analyze_score(rich_score)
    assert analysis.tempo_map == [(0, 100.0), (3840, 150.0)]
    assert analysis.meter_map == [(0, 4, 4), (3840, 3, 4)]
    # 2 bars of 4/4 (1920 ticks), then 3/4 bars (1440) up to the end at 7660
    assert analysis.bar_starts == [0, 1920, 3840, 5280, 6720]
    assert analysis.n_bars == 5
    assert analysis.meter == (4, 4)  # held for 3840 ticks; 3/4 for 3820
    assert analysis.bar_ticks == 1920
    assert analysis.end_tick == 7660
    expected = 3840 / 480 * 0.6 + (7660 - 3840) / 480 * 0.4
    assert analysis.duration_s == pytest.approx(expected)
    assert analysis.declared_key == "Eb major"
    seconds = rich_score.to("second")
    assert analysis.duration_s == pytest.approx(seconds.end(), abs=1e-3)


def test_default_tempo_and_meter_when_missing():
    score = Score(480)
    track = Track(name="x")
    track.notes.append(Note(960, 480, 60, 90))
    score.tracks.append(track)
    analysis = analyze_score(score)
    assert analysis.tempo_map == [(0, 120.0)]
    assert analysis.meter_map == [(0, 4, 4)]
    assert analysis.duration_s == pytest.approx(1.5)


def test_ticks_seconds_inverse():
    tempos = [(0, 120.0), (960, 60.0), (1920, 240.0)]
    ticks = np.array([0, 480, 960, 1440, 1920, 2400])
    seconds = ticks_to_seconds(ticks, tempos, 480)
    assert seconds.tolist() == pytest.approx([0, 0.5, 1.0, 2.0, 3.0, 3.25])
    assert seconds_to_ticks(seconds, tempos, 480) == pytest.approx(ticks)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("empty.mid", b"", "empty file"),
        ("text.mid", b"this is just some text\n" * 3, "not a MIDI file"),
        ("short.mid", b"MThd\x00\x00", "truncated MIDI header"),
        ("div0.mid", _smf(0, 1, 0, _NOTE_TRACK), "0 ticks per quarter"),
        ("smpte.mid", _smf(0, 1, 0xE728, _NOTE_TRACK), "SMPTE"),
        ("type2.mid", _smf(2, 1, 480, _NOTE_TRACK), "type-2"),
        ("type3.mid", _smf(3, 1, 480, _NOTE_TRACK), "unknown MIDI format 3"),
        ("header-only.mid", _smf(1, 0, 480), "holds no tracks"),
        ("missing-track.mid", _smf(1, 2, 480, _NOTE_TRACK), "announces 2 tracks, found 1"),
        ("no-notes.mid", _smf(1, 2, 480, _EMPTY_TRACK, _EMPTY_TRACK), "holds no notes"),
        ("bad-event.mid", _smf(0, 1, 480, _mtrk(b"\x00\x3c\x40")), "corrupt or truncated"),
    ],
)
def test_unusable_files_raise_midi_error(tmp_path, name, data, problem):
    path = _write(tmp_path, name, data)
    with pytest.raises(MidiError) as info:
        load_midi(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)
    assert info.value.exit_code == 2


def test_truncated_real_midi(tmp_path):
    data = (SAMPLES / "piano-piece.mid").read_bytes()
    for cut in (20, len(data) // 2, len(data) - 3):
        path = _write(tmp_path, f"cut{cut}.mid", data[:cut])
        with pytest.raises(MidiError, match=r"cut\d+\.mid: (truncated|corrupt)"):
            load_midi(path)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(MidiError, match="no such MIDI file"):
        load_midi(tmp_path / "nope.mid")
    with pytest.raises(MidiError, match="not a regular file"):
        load_midi(tmp_path)


def test_limits_are_named(tmp_path):
    path = SAMPLES / "chord-loop.mid"
    with pytest.raises(MidiError, match="max_bytes"):
        load_midi(path, max_bytes=100)
    with pytest.raises(MidiError, match="max_tracks"):
        load_midi(path, max_tracks=1)
    with pytest.raises(MidiError, match="max_notes"):
        load_midi(path, max_notes=10)
    with pytest.raises(ParameterError, match="max_notes"):
        load_midi(path, max_notes=0)


def test_lenient_variants_load():
    # header chunk longer than 6 bytes (legal), alien chunk, trailing bytes, RIFF wrapper
    long_header = b"MThd" + struct.pack(">IHHHH", 8, 0, 1, 96, 0) + _NOTE_TRACK
    assert load_midi_bytes(long_header).note_num() == 1
    alien = _smf(1, 1, 96, b"XFIH" + struct.pack(">I", 3) + b"abc", _NOTE_TRACK) + b"\0\0"
    assert load_midi_bytes(alien).note_num() == 1
    smf = _smf(0, 1, 96, _NOTE_TRACK)
    riff = (
        b"RIFF" + struct.pack("<I", len(smf) + 12) + b"RMIDdata" + struct.pack("<I", len(smf)) + smf
    )
    assert load_midi_bytes(riff).note_num() == 1
    with pytest.raises(MidiError, match="^clip: holds no notes"):
        load_midi_bytes(_smf(1, 1, 96, _EMPTY_TRACK), name="clip")


def test_absurd_length_is_refused():
    # a corrupt delta time puts the only note 2**28 ticks (at 1 tick per quarter) in
    score = load_midi_bytes(_smf(0, 1, 1, _mtrk(b"\xff\xff\xff\x7f\x90\x3c\x40\x01\x80\x3c\x00")))
    with pytest.raises(MidiError, match="max_bars"):
        analyze_score(score)


# ---------------------------------------------------------------- analysis


@pytest.fixture(scope="module")
def samples() -> dict[str, Score]:
    return {p.stem: load_midi(p) for p in sorted(SAMPLES.glob("*.mid"))}


@pytest.mark.parametrize(
    ("sample", "key"),
    [
        ("melody", "G major"),
        ("chord-loop", "A minor"),
        ("piano-piece", "D major"),
        ("melody-and-chords", "E minor"),
    ],
)
def test_key_of_samples(samples, sample, key):
    analysis = analyze_score(samples[sample])
    assert analysis.key_name == key
    assert analysis.declared_key == key
    assert analysis.key_confidence > 0.8


def test_samples_meters_and_tempi(samples):
    expect = {
        "melody": ((4, 4), 100.0, 8),
        "chord-loop": ((4, 4), 85.0, 8),
        "drum-groove": ((4, 4), 96.0, 4),
        "piano-piece": ((3, 4), 90.0, 8),
        "melody-and-chords": ((6, 8), 110.0, 8),
    }
    assert set(samples) == set(expect)
    for name, (meter, bpm, bars) in expect.items():
        analysis = analyze_score(samples[name])
        assert (analysis.meter, analysis.tempo_bpm, analysis.n_bars) == (meter, bpm, bars), name
    for path in SAMPLES.glob("*.mid"):
        assert path.stat().st_size < 8192


def test_roles_and_melody_on_samples(samples):
    melody = analyze_score(samples["melody"])
    assert [t.role for t in melody.tracks] == ["melody"]
    assert melody.melody_track == 0
    assert melody.melody == _notes_as_tuples(samples["melody"].tracks[0])
    assert melody.melody[-1][2] % 12 == 7  # ends on the tonic G

    loop = analyze_score(samples["chord-loop"])
    assert {t.name: t.role for t in loop.tracks} == {"Piano chords": "harmony", "Bass": "bass"}
    assert loop.melody_track is None  # no melody track: the skyline of the chords
    assert loop.melody[0][2] == 64

    drums = analyze_score(samples["drum-groove"])
    assert [t.role for t in drums.tracks] == ["drums"]
    assert drums.melody == [] and drums.key_confidence == 0.0
    assert set(drums.chord_names()) == {"N"}

    piece = analyze_score(samples["piano-piece"])
    assert [t.role for t in piece.tracks] == ["melody", "harmony"]
    assert piece.melody_track == 0

    lilt = analyze_score(samples["melody-and-chords"])
    assert [t.role for t in lilt.tracks] == ["melody", "harmony"]


def _notes_as_tuples(track) -> list[tuple[int, int, int, int]]:
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)


def test_skyline_of_one_piano_track(samples):
    # the two hands merged into one track: a polyphonic piano track is "harmony",
    # and the melody falls back to the skyline, which should be the right hand
    piece = samples["piano-piece"]
    merged = Score(piece.ticks_per_quarter)
    merged.tempos = piece.tempos
    merged.time_signatures = piece.time_signatures
    both = Track(name="Piano", program=0)
    for track in piece.tracks:
        both.notes.extend(list(track.notes))
    merged.tracks.append(both)
    analysis = analyze_score(merged)
    assert [t.role for t in analysis.tracks] == ["harmony"]
    assert analysis.melody_track is None
    right = _notes_as_tuples(piece.tracks[0])
    assert [n[::2] for n in analysis.melody] == [n[::2] for n in right]  # same starts and pitches


def test_chords_of_samples(samples):
    loop = analyze_score(samples["chord-loop"])
    assert loop.chord_names() == ["A:min", "F:maj", "C:maj", "G:maj"] * 2
    assert [c[:2] for c in loop.chords[:2]] == [(0, 1920), (1920, 3840)]
    piece = analyze_score(samples["piano-piece"])
    assert piece.chord_names() == [
        "D:maj",
        "G:maj",
        "A:7",
        "A:maj",
        "D:maj",
        "G:maj",
        "A:7",
        "D:maj",
    ]
    lilt = analyze_score(samples["melody-and-chords"], chord_resolution="half-bar")
    assert lilt.chord_names() == [
        "E:min",
        "E:min",
        "A:min",
        "A:min",
        "D:maj",
        "D:maj",
        "B:7",
        "B:7",
        "E:min",
        "E:min",
        "C:maj",
        "C:maj",
        "A:min",
        "B:7",
        "E:min",
        "E:min",
    ]
    beats = analyze_score(samples["melody-and-chords"], chord_resolution="beat")
    assert len(beats.chords) == 16  # 6/8 has two dotted-quarter beats
    with pytest.raises(ParameterError, match="chord_resolution"):
        analyze_score(samples["melody"], chord_resolution="bars")


def test_analysis_json_round_trip(samples):
    analysis = analyze_score(samples["melody-and-chords"])
    data = json.loads(json.dumps(analysis.to_dict()))
    assert data["key_name"] == "E minor"
    assert data["tracks"][0]["role"] == "melody"
    assert SeedAnalysis.from_dict(data) == analysis
    with pytest.raises(ParameterError, match="unknown keys"):
        SeedAnalysis.from_dict({**data, "colour": "red"})


def test_analysis_of_second_based_score_matches(samples):
    score = samples["piano-piece"]
    assert analyze_score(score.to("second")).chord_names() == analyze_score(score).chord_names()


# ---------------------------------------------------------------- keys, scales, chord names


def test_scales():
    assert scale_pitch_classes(7, "major") == {7, 9, 11, 0, 2, 4, 6}
    assert scale_pitch_classes(9, "minor") == {9, 11, 0, 2, 4, 5, 7}
    assert scale_pitch_classes(9, "harmonic-minor") == {9, 11, 0, 2, 4, 5, 8}
    assert scale_pitch_classes(2, "Dorian") == scale_pitch_classes(0, "major")
    assert scale_pitch_classes(0, "blues") == {0, 3, 5, 6, 7, 10}
    assert scale_pitch_classes(0, "pentatonic_major") == {0, 2, 4, 7, 9}
    for mode, steps in SCALES.items():
        assert len(scale_pitch_classes(5, mode)) == len(steps)
    with pytest.raises(ParameterError, match="unknown mode 'klingon'"):
        scale_pitch_classes(0, "klingon")
    with pytest.raises(ParameterError, match="tonic"):
        scale_pitch_classes(12, "major")


def test_estimate_key_basics():
    assert estimate_key(np.zeros(12)) == (0, "major", 0.0)
    hist = np.zeros(12)
    hist[[2, 4, 6, 7, 9, 11, 1]] = [5, 2, 3, 2, 4, 1, 1]
    assert estimate_key(hist)[:2] == (2, "major")
    with pytest.raises(ParameterError):
        estimate_key(np.ones(11))
    with pytest.raises(ParameterError):
        estimate_key(-np.ones(12))


def test_names():
    assert pitch_class_from_name("Gb") == pitch_class_from_name("F#") == 6
    assert pitch_class_from_name("Cb") == 11
    with pytest.raises(ParameterError):
        pitch_class_from_name("H")
    assert chord_name(9, "min7") == "A:min7"
    assert chord_name(-1, "N") == "N"
    assert parse_chord_name("C#:min7/b7") == (1, "min7")
    assert parse_chord_name("N") == (-1, "N")
    with pytest.raises(ParameterError):
        chord_name(0, "power")


def test_pitch_class_histogram_skips_drums(rich_score):
    hist = pitch_class_histogram(rich_score)
    assert hist[6] == 0  # the hats (42 = F#) are drums
    counts = pitch_class_histogram(rich_score, weighted=False)
    assert counts.sum() == 12 + 12


# ---------------------------------------------------------------- POP909


def _pop909_key(song: str) -> tuple[int, str]:
    start, end, label = (POP909 / song / "key_audio.txt").read_text().splitlines()[0].split("\t")
    root, quality = parse_chord_name(label)
    return root, "major" if quality == "maj" else "minor"


@needs_pop909
@pytest.mark.parametrize("song", ["001", "002", "004", "007", "013"])
def test_key_on_pop909(song):
    analysis = analyze_score(load_midi(POP909 / song / f"{song}.mid"))
    assert (analysis.key_tonic, analysis.key_mode) == _pop909_key(song)
    assert analysis.melody_track == 0  # the MELODY track
    assert [t.role for t in analysis.tracks][2] == "harmony"  # PIANO


@needs_pop909
def test_chords_on_pop909_annotated_bars():
    song = POP909 / "001"
    score = load_midi(song / "001.mid")
    beats = np.loadtxt(song / "beat_midi.txt", ndmin=2)
    downbeats = beats[beats[:, 2] == 1, 0]
    tempos = tempo_map(score)
    edges = np.round(seconds_to_ticks(downbeats, tempos, score.ticks_per_quarter)).astype(int)
    halves = sorted({*edges.tolist(), *((edges[:-1] + edges[1:]) // 2).tolist()})
    windows = list(zip(halves[:-1], halves[1:]))
    labels = []
    for line in (song / "chord_midi.txt").read_text().splitlines():
        start, end, label = line.split("\t")
        labels.append((float(start), float(end), parse_chord_name(label)[0]))
    hits = total = 0
    for begin, stop, root, _ in estimate_chords(score, windows, exclude_tracks=[0]):
        a, b = ticks_to_seconds([begin, stop], tempos, score.ticks_per_quarter)
        overlap = {}
        for s, e, r in labels:
            if min(b, e) > max(a, s):
                overlap[r] = overlap.get(r, 0.0) + min(b, e) - max(a, s)
        if not overlap or max(overlap, key=overlap.get) < 0:
            continue
        total += 1
        hits += root == max(overlap, key=overlap.get)
    assert total > 100
    assert hits / total > 0.85


# ---------------------------------------------------------------- piano rolls


def test_pianoroll_png(samples, tmp_path):
    from musegen.midi import plot_pianoroll, plot_pianorolls

    one = plot_pianoroll(samples["chord-loop"], tmp_path / "loop.png", title="loop", max_seconds=5)
    many = plot_pianorolls(
        [(name, score) for name, score in samples.items()], tmp_path / "rolls" / "all.png"
    )
    for path in (one, many):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob(".*.part"))
    with pytest.raises(ParameterError):
        plot_pianorolls([], tmp_path / "none.png")
    with pytest.raises(ParameterError):
        plot_pianoroll(samples["melody"], tmp_path / "x.png", max_seconds=0)


# ---------------------------------------------------------------- packaging


def test_import_is_light():
    code = (
        "import sys, musegen.midi; "
        "print(sorted(m for m in ('matplotlib', 'scipy', 'mido', 'torch', 'librosa') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_make_samples_is_deterministic(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_samples", ROOT / "scripts" / "make_samples.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.count(".mid") == len(module.SAMPLES)
    for name in module.SAMPLES:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name
