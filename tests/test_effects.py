"""Tempo change and pitch shift keep the stereo image, the level and the length (issue 19, item 3).

The input is a real render: a sample sketch through the SoundFont synthesizer
and the reverb, mastered to -14 LUFS and written to a 16-bit WAV, as
``musegen generate`` leaves it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from musegen.audio import change_tempo, pitch_shift, time_stretch
from musegen.audio._loudness import integrated_loudness

SAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """``(y, sr)`` read back from a rendered, mastered stereo WAV (8 s)."""
    from symusic import Score

    from musegen.audio import normalize_loudness, read_audio, reverb, write_audio
    from musegen.render import render_score

    sr = 44100
    y = render_score(Score(str(SAMPLES / "melody-and-chords.mid")), sample_rate=sr)[:, : 8 * sr]
    y = normalize_loudness(reverb(y, sr=sr, mix=0.25, tail=False), sr=sr, lufs=-14.0)
    path = tmp_path_factory.mktemp("song") / "song.wav"
    write_audio(path, y, sr=sr)
    return read_audio(path)


def _corr(y):
    return float(np.corrcoef(y[0], y[1])[0, 1])


def _mono_db(y):
    return 10.0 * math.log10(float(np.mean(y.mean(axis=0, dtype=np.float64) ** 2)))


def _peak_db(y):
    return 20.0 * math.log10(float(np.abs(y).max()))


def _assert_same_image_and_level(y, out, sr):
    assert _corr(y) > 0.8  # a real stereo mix, not two copies of one channel
    assert abs(_corr(out) - _corr(y)) < 0.05, (_corr(y), _corr(out))
    assert abs(_mono_db(out) - _mono_db(y)) < 1.0, (_mono_db(y), _mono_db(out))
    before, after = integrated_loudness(y, sr=sr), integrated_loudness(out, sr=sr)
    assert abs(after - before) < 0.5, (before, after)
    # the phase changes raise transients; they are held under the input's -1 dBFS, never clipped
    assert _peak_db(out) <= max(_peak_db(y), -1.0) + 0.01


@pytest.mark.parametrize("tempo_to", [110.0, 70.0])
def test_tempo_change_keeps_stereo_image_level_and_length(song, tempo_to):
    y, sr = song
    out = change_tempo(y, sr=sr, tempo_from=100.0, tempo_to=tempo_to)
    assert abs(out.shape[1] - y.shape[1] * 100.0 / tempo_to) <= 0.002 * sr
    _assert_same_image_and_level(y, out, sr)


@pytest.mark.parametrize("semitones", [3.0, -5.0])
def test_pitch_shift_keeps_stereo_image_level_and_length(song, semitones):
    y, sr = song
    out = pitch_shift(y, sr=sr, semitones=semitones)
    assert out.shape == y.shape
    _assert_same_image_and_level(y, out, sr)


def test_channel_relations_survive_exactly_where_they_are_simple():
    """Opposite polarity stays opposite; a part panned hard left leaks nothing into the right."""
    sr = 22050
    t = np.arange(2 * sr) / sr
    tone = (0.3 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    wide = np.stack([tone, -tone])
    assert _corr(time_stretch(wide, sr=sr, rate=0.8)) < -0.99
    left = np.stack([tone, np.zeros_like(tone)])
    for out in (time_stretch(left, sr=sr, rate=1.25), pitch_shift(left, sr=sr, semitones=2)):
        assert np.abs(out[1]).max() < 1e-4 * np.abs(out[0]).max()


def test_cli_post_tempo_keeps_the_stereo_image(song, tmp_path):
    """The issue's reproduction: ``musegen post IN -o OUT --tempo-from 100 --tempo-to 110``."""
    from click.testing import CliRunner

    from musegen.audio import read_audio, write_audio
    from musegen.cli.main import cli

    y, sr = song
    src = tmp_path / "in.wav"
    write_audio(src, y, sr=sr)
    dst = tmp_path / "p.wav"
    r = CliRunner().invoke(cli, ["post", str(src), "-o", str(dst), "--tempo-from", "100", "--tempo-to", "110"])
    assert r.exit_code == 0, r.output
    out, out_sr = read_audio(dst)
    assert out_sr == sr
    assert abs(out.shape[1] - y.shape[1] / 1.1) <= 0.002 * sr
    _assert_same_image_and_level(y, out, sr)
