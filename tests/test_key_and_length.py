"""What a result was asked to be and what it is: its key and its length (issue 19, items 5 and 10)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_sketch


def _result(r):
    """``({"wav": ..., "json": ...}, sidecar)`` of a one-result run, from the paths it prints on stdout."""
    assert r.returncode == 0, r.stderr
    paths = {Path(line).suffix[1:]: line for line in r.stdout.splitlines()}
    return paths, json.loads(Path(paths["json"]).read_text())


def _seconds(path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


# -- the key -----------------------------------------------------------------------------------

def test_sidecar_records_the_requested_key_and_the_key_measured_from_the_notes(cli, tmp_path):
    """A sketch in D major continued by one bar asked in F: the sidecar says both, and they differ."""
    seed = make_sketch(tmp_path / "d.mid", tonic=2, bars=8)
    r = cli("extend", seed, "--engine", "procedural", "--key", "F", "--bars", "1", "--seed", "3",
            "-o", tmp_path / "o")
    res, side = _result(r)
    a = side["analysis"]
    assert a["key_requested"] == "F major"
    # measured: the sketch's D (its F#s, or the new bar's F naturals, decide major or minor)
    assert a["key"] in ("D major", "D minor") and a["key_from"] == "midi"
    assert 0 < a["key_confidence"] <= 1
    assert a["out_of_key_ratio"] > 0.1  # the sketch's F#s and C#s are outside F major
    assert f"{a['key']} (asked F major)" in r.stderr


@pytest.mark.parametrize("engine", ["procedural", "symbolic"])
def test_sidecar_of_each_midi_engine_has_both_keys(cli, tmp_path, engine):
    r = cli("generate", "--engine", engine, "--key", "A minor", "--bars", "4", "--seed", "2",
            "-o", tmp_path / "o")
    res, side = _result(r)
    a = side["analysis"]
    assert a["key_requested"] == "A minor"
    assert a["key"] in ("A minor", "C major"), a  # C major: the relative key, the same notes
    assert a["out_of_key_ratio"] < 0.15  # the dominant's G# in minor is outside the natural minor scale
    assert "A minor" in r.stderr


def test_default_generate_stays_in_the_requested_key(cli, tmp_path):
    """The issue's example: seed 1, 16 bars of pop-ballad asked Eb major came out in F major."""
    res, side = _result(cli("generate", "--bars", "16", "--seed", "1", "-o", tmp_path))
    a = side["analysis"]
    assert a["key_requested"] == "Eb major"
    assert a["key"] == "Eb major", a
    assert a["out_of_key_ratio"] < 0.05


# -- the length ---------------------------------------------------------------------------------

def test_seconds_gives_a_file_of_that_length_and_the_sidecar_says_both(cli, tmp_path):
    r = cli("generate", "--seconds", "8", "--seed", "1", "-o", tmp_path)
    res, side = _result(r)
    assert _seconds(res["wav"]) == pytest.approx(8.0, abs=0.01)
    assert side["analysis"]["seconds_requested"] == 8.0
    assert side["analysis"]["duration_s"] == pytest.approx(8.0, abs=0.01)
    assert side["parameters"]["seconds"] == 8.0
    bar_s = 4 * 60 / side["parameters"]["tempo_bpm"]
    assert side["parameters"]["bars"] * bar_s >= 8.0  # the bars cover the request
    assert "8.00 s (asked 8 s)" in r.stderr
    y, sr = sf.read(res["wav"], always_2d=True)
    assert np.abs(y[-1]).max() < 1e-3  # it fades out, no click
    assert np.sqrt(np.mean(y[: int(7.5 * sr)] ** 2)) > 1e-3  # music up to the end, not silence


def test_seconds_after_a_sketch_count_from_where_the_sketch_ends(cli, tmp_path):
    seed = make_sketch(tmp_path / "s.mid", tempo=120, bars=2)  # 4.0 s
    res, side = _result(cli("extend", seed, "--engine", "procedural", "--seconds", "3", "--seed", "1",
                            "-o", tmp_path / "o"))
    assert _seconds(res["wav"]) == pytest.approx(7.0, abs=0.01)
    assert side["analysis"]["seconds_requested"] == 3.0


def test_seconds_keep_the_preset_fade_at_the_end(cli, tmp_path):
    """ambient's chain ends in a 4 s fade-out (after a reverb with a tail): the fade ends the cut file."""
    res, side = _result(cli("generate", "-p", "ambient", "--seconds", "10", "--seed", "1", "-o", tmp_path))
    y, sr = sf.read(res["wav"], always_2d=True)
    assert y.shape[0] / sr == pytest.approx(10.0, abs=0.01)

    def rms(a, b):
        return float(np.sqrt(np.mean(y[int(a * sr):int(b * sr)] ** 2)))

    assert rms(9.5, 10.0) < 0.25 * rms(4.0, 6.0)  # the last half second is deep in the fade


def test_bars_keep_the_bars_and_their_tail(cli, tmp_path):
    r = cli("generate", "--engine", "procedural", "--bars", "4", "--seed", "1", "--tempo", "120",
            "-o", tmp_path)
    res, side = _result(r)
    assert side["analysis"]["seconds_requested"] is None and side["parameters"]["seconds"] is None
    assert _seconds(res["wav"]) >= 8.0  # 4 bars at 120 BPM, the release after them
    assert side["parameters"]["bars"] == 4
    assert "(4 bars)" in r.stderr


def test_bars_and_seconds_together_are_refused(cli, tmp_path):
    r = cli("generate", "--bars", "4", "--seconds", "8", "-o", tmp_path)
    assert r.returncode == 2
    assert "Error:" in r.stderr and "bars or seconds" in r.stderr and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())


# -- the symbolic engine keeps the requested key ----------------------------------------------

#: twelve keys, one per seed: both modes, sharps and flats
KEYS = ["C", "G", "D", "A", "E", "F", "Bb", "Eb", "A minor", "E minor", "D minor", "C minor"]
#: measured on these 12 pieces: without the key prior (``tonal_prior=0``) 5 in their key and 3.9 % of
#: the notes outside its scale; with the default prior 12 and 0.8 %.  A key counts only exactly
#: (tonic and mode): the relative major/minor has the same notes but another centre.
AGREE_MIN = 10
OUTSIDE_MAX = 0.02


def _key_agreement(options: dict) -> tuple[int, float]:
    """Pieces of 8 bars (pop-ballad, seeds 1-12, one key each) whose measured key is the requested
    one, and the mean share of their pitched notes outside its scale."""
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.midi.keys import estimate_key, pitch_class_histogram, scale_pitch_classes
    from musegen.pipeline import plan_request
    from musegen.presets import load_preset

    engine, preset = SymbolicEngine(), load_preset("pop-ballad")
    agree, outside = 0, []
    for seed, key in enumerate(KEYS, start=1):
        req = plan_request(preset, bars=8, random_seed=seed, key=key, engine_options=dict(options))
        (out,) = engine.generate(req)
        tonic, mode, _ = estimate_key(pitch_class_histogram(out.score))
        agree += (tonic, mode) == (req.tonic, req.mode)
        scale = scale_pitch_classes(req.tonic, req.mode)
        pcs = [n.pitch % 12 for t in out.score.tracks if not t.is_drum for n in t.notes]
        outside.append(np.mean([pc not in scale for pc in pcs]))
    return agree, float(np.mean(outside))


def test_symbolic_pieces_stay_in_the_requested_key():
    agree, outside = _key_agreement({})
    assert agree >= AGREE_MIN, (agree, outside)
    assert outside < OUTSIDE_MAX, (agree, outside)

