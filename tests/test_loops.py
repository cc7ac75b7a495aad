"""--loop: whole bars that repeat without a click or a gap, loop points in the WAV and the sidecar."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from musegen.audio.loop import crossfade_loop, crossfade_room, fold_tail, join_jump
from musegen.audio.wavmeta import read_metadata


def _bar_s(tempo: float, meter: list[int]) -> float:
    return meter[0] * 4.0 / meter[1] * 60.0 / tempo


@pytest.mark.parametrize("engine, preset", [("procedural", "lofi-chill"), ("symbolic", "pop-ballad")])
def test_a_loop_is_whole_bars_and_joins_without_a_click(cli, tmp_path, engine, preset):
    proc = cli("generate", "--preset", preset, "--engine", engine, "--bars", "4", "--seed", "3", "--loop",
               "--name", "x", "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "x.json").read_text())
    a, p = doc["analysis"], doc["parameters"]
    y, sr = sf.read(tmp_path / "x.wav", dtype="float32", always_2d=True)
    length = int(round(4 * _bar_s(p["tempo_bpm"], p["meter"]) * sr))
    assert y.shape[0] == length  # exactly four bars: no tail, no gap
    assert a["loop"] == {"start": 0, "end": length, "bars": 4, "seconds": round(length / sr, 6),
                         "method": "fold", "dropped_steps": a["loop"]["dropped_steps"]}
    assert "fade_out" in a["loop"]["dropped_steps"] or not any(s["op"] == "fade_out" for s in p["post"])
    assert p["loop"] is True
    join, own = join_jump(y.T)
    assert join <= own, f"the join steps by {join:.4f}, the music's own 99.9th-percentile step is {own:.4f}"
    assert np.abs(y).max() > 0.05  # music, not silence
    smpl = read_metadata(tmp_path / "x.wav")["smpl"]
    assert smpl is not None and smpl["loops"] == [(0, length)]


def test_without_loop_the_file_holds_the_tail_and_no_loop_points(cli, tmp_path):
    proc = cli("generate", "--preset", "lofi-chill", "--engine", "procedural", "--bars", "4", "--seed", "3",
               "--name", "x", "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "x.json").read_text())
    y, sr = sf.read(tmp_path / "x.wav", always_2d=True)
    assert y.shape[0] > int(4 * _bar_s(doc["parameters"]["tempo_bpm"], doc["parameters"]["meter"]) * sr)
    assert "loop" not in doc["analysis"] and read_metadata(tmp_path / "x.wav")["smpl"] is None


def test_fold_tail_adds_what_rings_past_the_end_onto_the_start():
    sr = 8000
    t = np.arange(3 * sr) / sr
    note = (np.sin(2 * np.pi * 200 * t) * np.exp(-3 * t)).astype(np.float32)[None, :]
    looped = fold_tail(note, sr)
    assert looped.shape == (1, sr)
    np.testing.assert_allclose(looped[0], note[0, :sr] + note[0, sr:2 * sr] + note[0, 2 * sr:], atol=1e-6)


def test_a_crossfaded_loop_of_continuing_music_has_no_click():
    sr = 16000
    t = np.arange(int(2.3 * sr)) / sr
    y = (0.5 * np.sin(2 * np.pi * 233.0 * t)).astype(np.float32)[None, :].repeat(2, axis=0)
    length = int(1.37 * sr)  # not a whole number of periods: a plain cut would click
    plain_join, plain_own = join_jump(y[:, :length])
    assert plain_join > 2 * plain_own  # the cut alone clicks
    looped = crossfade_loop(y, length, sr=sr)
    join, own = join_jump(looped)
    assert looped.shape == (2, length) and join <= own
    # equal power: the level through the crossfade stays within a few dB of the music's
    rms = np.sqrt(np.mean(looped[:, :crossfade_room(sr)] ** 2))
    assert 0.5 / np.sqrt(2) / 1.5 < rms < 0.5 * 1.5


def test_loop_is_a_batch_key(tmp_path):
    from musegen.batch.params import ALLOWED

    assert "loop" in ALLOWED["generate"] and "loop" in ALLOWED["extend"]
