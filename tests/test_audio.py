"""musegen.audio: I/O, effects, chains and analysis on seeded synthetic signals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from musegen.audio import (
    OPS,
    analyze_audio,
    apply_chain,
    change_tempo,
    fade_in,
    fade_out,
    gain,
    highpass,
    loudness_lufs,
    lowpass,
    normalize_loudness,
    peak_dbfs,
    peak_normalize,
    pitch_shift,
    plot_audio,
    read_audio,
    resample,
    reverb,
    rms_dbfs,
    time_stretch,
    trim,
    validate_chain,
    write_audio,
)
from musegen.errors import AudioError, OutputError, ParameterError

SR = 44100


# --------------------------------------------------------------------------
# Synthetic signals


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def sine(freq, seconds, *, sr=SR, amp=0.5, channels=2):
    t = np.arange(int(seconds * sr)) / sr
    return np.tile(amp * np.sin(2 * np.pi * freq * t), (channels, 1)).astype(np.float32)


def decaying_notes(freqs, *, note_s=0.5, sr=SR, amp=0.3, decay=4.0):
    """One decaying note per ``note_s`` (with a few harmonics), stereo."""
    n = int(len(freqs) * note_s * sr + 1.0 * sr)
    y = np.zeros(n)
    t = np.arange(int(1.5 * sr)) / sr
    for i, f in enumerate(freqs):
        note = sum(np.sin(2 * np.pi * f * k * t) / k**1.5 for k in (1, 2, 3)) * np.exp(-decay * t)
        start = int(i * note_s * sr)
        seg = note[: n - start]
        y[start:start + seg.size] += seg
    y *= amp / np.abs(y).max()
    return np.stack([y, 0.9 * y]).astype(np.float32)


@pytest.fixture
def notes():
    """An A minor arpeggio over an A bass, 8 notes at 120 BPM."""
    a_minor = [220.0, 261.63, 329.63, 440.0, 329.63, 261.63, 220.0, 164.81]
    return decaying_notes(a_minor * 2, note_s=0.5)


@pytest.fixture
def transients(rng):
    """Loud and peaky: noise-burst snares and sine kicks, 8 s, peaks at 0 dBFS."""
    n = 8 * SR
    y = np.zeros((2, n))
    t = np.arange(int(0.3 * SR)) / SR
    for i, start in enumerate(range(0, n - t.size, SR // 4)):
        if i % 2:
            hit = rng.standard_normal((2, t.size)) * np.exp(-25 * t)
        else:
            hit = np.sin(2 * np.pi * 55 * t * (1 + 2 * np.exp(-30 * t))) * np.exp(-8 * t)
        y[:, start:start + t.size] += hit
    return (y / np.abs(y).max()).astype(np.float32)


@pytest.fixture
def quiet(notes):
    """The notes at about -45 LUFS."""
    return (notes * 0.005).astype(np.float32)


@pytest.fixture
def padded(notes):
    """1 s of silence, the notes, 1.5 s of silence; returns (y, start, end)."""
    lead, tail = np.zeros((2, SR), np.float32), np.zeros((2, int(1.5 * SR)), np.float32)
    return np.concatenate([lead, notes, tail], axis=1), SR, SR + notes.shape[1]


def loudness_reference(y, sr=SR):
    import pyloudnorm

    return pyloudnorm.Meter(sr).integrated_loudness(y.T.astype(np.float64))


def dominant_hz(y, sr=SR):
    x = y.mean(axis=0) * np.hanning(y.shape[1])
    spectrum = np.abs(np.fft.rfft(x, 8 * x.size))
    return np.fft.rfftfreq(8 * x.size, 1 / sr)[spectrum.argmax()]


# --------------------------------------------------------------------------
# Loudness and peaks


@pytest.mark.parametrize("signal", ["transients", "quiet", "notes"])
@pytest.mark.parametrize("target, ceiling", [(-14.0, -1.0), (-10.0, -1.0), (-23.0, -3.0)])
def test_normalize_loudness_meets_target_under_ceiling(request, signal, target, ceiling):
    y = request.getfixturevalue(signal)
    out = normalize_loudness(y, sr=SR, lufs=target, peak_db=ceiling)
    assert out.shape == y.shape and out.dtype == np.float32
    assert abs(loudness_reference(out) - target) < 0.5
    assert peak_dbfs(out) <= ceiling


def _share_at_peak(y):
    """Share of samples within 0.1 % of the largest one."""
    envelope = np.abs(y).max(axis=0)
    return np.mean(envelope >= 0.999 * envelope.max())


def test_normalize_loudness_limits_smoothly_not_by_clipping(transients):
    # At -10 LUFS these peaks would land ~8 dB over the ceiling without a limiter.
    plain_gain = -10.0 - loudness_reference(transients)
    assert peak_dbfs(transients) + plain_gain > 5.0
    out = normalize_loudness(transients, sr=SR, lufs=-10.0, peak_db=-1.0)
    # A hard clip flattens every peak onto the ceiling; a limiter only grazes it.
    ceiling = 10 ** (-1 / 20)
    clipped = np.clip(transients * np.float32(10 ** (plain_gain / 20)), -ceiling, ceiling)
    assert _share_at_peak(clipped) > 5e-3
    assert _share_at_peak(out) < 5e-4


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    seconds=st.floats(0.05, 3.0),
    level=st.floats(-60.0, 12.0),
    target=st.floats(-40.0, -6.0),
    ceiling=st.floats(-12.0, 0.0),
    channels=st.integers(1, 3),
)
def test_normalize_loudness_never_exceeds_the_ceiling(seed, seconds, level, target, ceiling, channels):
    rng = np.random.default_rng(seed)
    n = int(seconds * 8000)
    # Sparse, spiky noise: the hardest kind of input for a limiter.
    y = rng.standard_normal((channels, n)) * (rng.random(n) < 0.2) * 10 ** (level / 20)
    out = normalize_loudness(y.astype(np.float32), sr=8000, lufs=target, peak_db=ceiling)
    assert out.shape == y.shape and np.all(np.isfinite(out))
    assert peak_dbfs(out) <= ceiling


def test_normalize_loudness_leaves_silence_and_input_alone(transients):
    silence = np.zeros((2, SR), np.float32)
    assert np.array_equal(normalize_loudness(silence, sr=SR), silence)
    before = transients.copy()
    normalize_loudness(transients, sr=SR, lufs=-9.0)
    assert np.array_equal(transients, before)


def test_normalize_loudness_validates_ranges(notes):
    with pytest.raises(ParameterError, match=r"lufs must be between -70 and 0, got 5\.0"):
        normalize_loudness(notes, sr=SR, lufs=5.0)
    with pytest.raises(ParameterError, match="peak_db"):
        normalize_loudness(notes, sr=SR, peak_db=3.0)


def test_loudness_lufs_matches_pyloudnorm(notes, transients):
    for y in (notes, transients):
        assert loudness_lufs(y, sr=SR) == pytest.approx(loudness_reference(y), abs=0.01)
    assert loudness_lufs(np.zeros((1, SR), np.float32), sr=SR) == -70.0


def test_peak_and_rms_levels():
    y = sine(1000, 1.0, amp=0.5)
    assert peak_dbfs(y) == pytest.approx(20 * np.log10(0.5), abs=0.01)
    assert rms_dbfs(y) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)
    assert peak_dbfs(np.zeros((1, 10), np.float32)) == float("-inf")


def test_gain_and_peak_normalize(notes):
    assert peak_dbfs(gain(notes, sr=SR, db=-6.0)) == pytest.approx(peak_dbfs(notes) - 6.0, abs=1e-3)
    assert peak_dbfs(peak_normalize(notes, sr=SR, peak_db=-3.0)) == pytest.approx(-3.0, abs=1e-3)
    silence = np.zeros((2, 100), np.float32)
    assert np.array_equal(peak_normalize(silence, sr=SR), silence)


# --------------------------------------------------------------------------
# Trim and fades


def test_trim_removes_silence_and_keeps_content(padded):
    y, start, end = padded
    out = trim(y, sr=SR)
    content = end - start
    # The note tails decay into silence; trimming may shave the last -50 dB of
    # them but must keep the notes, and drop the padding bar a few frames.
    assert content - int(0.5 * SR) < out.shape[1] <= content + int(0.05 * SR)
    assert np.sum(out.astype(np.float64) ** 2) > 0.9999 * np.sum(y.astype(np.float64) ** 2)
    assert np.abs(out[:, : int(0.01 * SR)]).max() < 0.01  # starts just before the first note


def test_trim_of_silence_is_unchanged():
    silence = np.zeros((2, 1000), np.float32)
    assert np.array_equal(trim(silence, sr=SR), silence)


def test_fades_start_and_end_at_zero(notes):
    a = fade_in(notes, sr=SR, seconds=0.5)
    b = fade_out(notes, sr=SR, seconds=0.5)
    assert a.shape == b.shape == notes.shape
    assert np.all(a[:, 0] == 0) and np.all(b[:, -1] == 0)
    assert np.abs(a[:, :40]).max() < 0.01 * np.abs(notes).max()
    mid = slice(SR, notes.shape[1] - SR)
    assert np.array_equal(a[:, mid], notes[:, mid]) and np.array_equal(b[:, mid], notes[:, mid])
    # A fade longer than the audio fades all of it; the input is untouched.
    short = sine(440, 0.1)
    whole = fade_out(short, sr=SR, seconds=5.0)
    assert whole[0, 0] == short[0, 0] and whole[0, -1] == 0
    assert np.abs(whole[:, short.shape[1] // 2:]).max() < np.abs(short).max()
    with pytest.raises(ParameterError, match="seconds"):
        fade_in(notes, sr=SR, seconds=-1)


# --------------------------------------------------------------------------
# Time and pitch


@pytest.mark.parametrize("rate", [2.0, 0.5])
def test_time_stretch_changes_length_not_pitch(rate):
    y = sine(440, 1.0)
    out = time_stretch(y, sr=SR, rate=rate)
    assert out.shape == (2, round(y.shape[1] / rate))
    assert dominant_hz(out) == pytest.approx(440, rel=0.01)


def test_change_tempo_stretches_by_tempo_ratio():
    y = sine(440, 1.0, channels=1)
    assert change_tempo(y, sr=SR, tempo_from=120, tempo_to=60).shape == (1, 2 * SR)
    with pytest.raises(ParameterError, match="tempo_from"):
        change_tempo(y, sr=SR, tempo_from=0, tempo_to=60)


@pytest.mark.parametrize("semitones", [12, -5, 3.5])
def test_pitch_shift_moves_dominant_frequency(semitones):
    y = sine(440, 1.0, channels=1)
    out = pitch_shift(y, sr=SR, semitones=semitones)
    assert out.shape == y.shape
    assert dominant_hz(out) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)


def test_time_and_pitch_validation():
    y = sine(440, 0.1)
    with pytest.raises(ParameterError, match=r"rate must be between 0\.1 and 10, got 0\.0"):
        time_stretch(y, sr=SR, rate=0.0)
    with pytest.raises(ParameterError, match="semitones must be between -24 and 24, got 30"):
        pitch_shift(y, sr=SR, semitones=30)


@pytest.mark.parametrize("target", [22050, 48000, 8000])
def test_resample_length(target):
    y = sine(440, 1.0)
    out = resample(y, sr=SR, target_sr=target)
    assert out.dtype == np.float32 and out.shape[0] == 2
    assert abs(out.shape[1] - target) <= 1
    assert dominant_hz(out, sr=target) == pytest.approx(440, rel=0.01)


# --------------------------------------------------------------------------
# Reverb and filters


def test_reverb_adds_a_decaying_decorrelated_tail():
    click = np.zeros((2, SR // 2), np.float32)
    click[:, 100] = 1.0
    out = reverb(click, sr=SR, mix=0.5, room=0.5)
    assert out.shape[0] == 2 and out.shape[1] > click.shape[1]
    tail = out[:, click.shape[1]:]
    assert np.abs(tail).max() > 1e-4  # still ringing after the input ends
    early = np.abs(out[:, SR // 10:SR // 5]).max()
    late = np.abs(out[:, -SR // 10:]).max()
    assert late < 0.05 * early  # and decaying
    assert np.corrcoef(out[0, 200:], out[1, 200:])[0, 1] < 0.9  # a stereo tail
    assert np.array_equal(reverb(click, sr=SR, mix=0.0), click)
    assert reverb(click, sr=SR, tail=False).shape == click.shape


def test_lowpass_and_highpass_filter_the_right_side():
    y = sine(200, 0.5) + sine(8000, 0.5)
    low = lowpass(y, sr=SR, cutoff_hz=1000)
    high = highpass(y, sr=SR, cutoff_hz=1000)

    def level(x, f):
        spec = np.abs(np.fft.rfft(x[0, SR // 10:]))
        return spec[int(round(f * (x.shape[1] - SR // 10) / SR))]

    assert level(low, 8000) < 0.01 * level(y, 8000) and level(low, 200) > 0.9 * level(y, 200)
    assert level(high, 200) < 0.01 * level(y, 200) and level(high, 8000) > 0.9 * level(y, 8000)
    with pytest.raises(ParameterError, match=r"cutoff_hz must be between 0 and 22050"):
        lowpass(y, sr=SR, cutoff_hz=30000)


# --------------------------------------------------------------------------
# Files


@pytest.mark.parametrize("name, subtype, tol", [
    ("a.wav", "PCM_16", 1 / 32768),
    ("a.wav", "FLOAT", 0.0),
    ("a.flac", "PCM_24", 1 / 2**23),
])
def test_write_read_round_trip(tmp_path, notes, name, subtype, tol):
    path = tmp_path / name
    write_audio(path, notes, sr=SR, subtype=subtype)
    back, sr = read_audio(path)
    assert sr == SR and back.shape == notes.shape and back.dtype == np.float32
    assert np.abs(back - notes).max() <= tol
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_read_mono_resampled_and_write_clips(tmp_path, notes):
    path = tmp_path / "loud.wav"
    write_audio(path, notes * 10, sr=SR)
    back, sr = read_audio(path, sr=22050, mono=True)
    assert sr == 22050 and back.shape[0] == 1
    assert abs(back.shape[1] - notes.shape[1] // 2) <= 1
    assert np.abs(read_audio(path)[0]).max() <= 1.0


def test_ogg_takes_the_default_subtype(tmp_path, notes):
    path = tmp_path / "a.ogg"
    write_audio(path, notes, sr=SR)
    back, sr = read_audio(path)
    assert sr == SR and back.shape[0] == 2 and abs(back.shape[1] - notes.shape[1]) < 2048


def test_write_into_missing_folder_fails_cleanly(tmp_path, notes):
    path = tmp_path / "nope" / "a.wav"
    with pytest.raises(OutputError, match="nope"):
        write_audio(path, notes, sr=SR)
    assert not path.parent.exists()


_FULL_DISK = """
import resource, signal, sys
import numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
from musegen.audio.io import write_audio
from musegen.errors import OutputError
try:
    write_audio(sys.argv[1], np.full((2, 441000), 0.25, dtype=np.float32), sr=44100)
except OutputError as exc:
    print(exc)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_failed_write_leaves_no_partial_file(tmp_path, notes):
    """A real write failure (a 100 kB file-size limit, as a full disk would) keeps the old file."""
    path = tmp_path / "song.wav"
    write_audio(path, notes[:, :100], sr=SR)
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path)], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "song.wav" in proc.stdout and "file-size limit" in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["song.wav"]  # no .part left behind
    assert path.read_bytes() == before  # the old file is intact


def test_write_audio_validates(tmp_path, notes):
    with pytest.raises(ParameterError, match="extension"):
        write_audio(tmp_path / "a.xyz", notes, sr=SR)
    with pytest.raises(ParameterError, match="2-D"):
        write_audio(tmp_path / "a.wav", notes[0], sr=SR)
    bad = notes.copy()
    bad[0, 5] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        write_audio(tmp_path / "a.wav", bad, sr=SR)
    with pytest.raises(ParameterError, match="subtype 'VORBIS'"):
        write_audio(tmp_path / "a.wav", notes, sr=SR, subtype="VORBIS")
    assert list(tmp_path.iterdir()) == []


def test_read_audio_errors_name_the_problem(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    nan = tmp_path / "nan.wav"
    data = np.zeros((1000, 2), np.float32)
    data[10, 1] = np.nan
    sf.write(nan, data, SR, subtype="FLOAT")
    wide = tmp_path / "wide.wav"
    sf.write(wide, np.zeros((100, 9), np.float32), SR)
    slow = tmp_path / "slow.wav"
    sf.write(slow, np.zeros((100, 1), np.float32), 500)
    no_frames = tmp_path / "none.wav"
    sf.write(no_frames, np.zeros((0, 1), np.float32), SR)
    cases = [
        (tmp_path / "missing.wav", "not found"),
        (text, "not a readable audio file"),
        (empty, "empty"),
        (nan, "NaN"),
        (wide, "9 channels"),
        (slow, "500 Hz"),
        (no_frames, "no samples"),
        (tmp_path, "directory"),
    ]
    for path, needle in cases:
        with pytest.raises(AudioError) as info:
            read_audio(path)
        assert str(path) in str(info.value) and needle in str(info.value), str(info.value)


def flac_of_unknown_length(path, y, sr):
    """Write ``y`` as FLAC, then zero STREAMINFO's total-samples field (0 means "unknown")."""
    sf.write(path, y.T, sr, format="FLAC", subtype="PCM_16")
    data = bytearray(path.read_bytes())
    # "fLaC", a 4-byte block header, then STREAMINFO: its bytes 13-17 end in the 36-bit count
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "STREAMINFO comes first"
    data[8 + 13] &= 0xF0
    data[8 + 14:8 + 18] = bytes(4)
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).frames > 10**15  # libsndfile's "unknown": the header no longer tells


def test_flac_of_unknown_length_is_decoded_and_counted(tmp_path, cli):
    path = tmp_path / "stream.flac"
    y = sine(440, 1.5, sr=22050, amp=0.3)
    flac_of_unknown_length(path, y, 22050)
    got, sr = read_audio(path)
    assert sr == 22050 and got.shape == y.shape
    assert np.abs(got - y).max() < 1e-3

    r = cli("analyze", path, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["duration_s"] == pytest.approx(1.5, abs=1e-3)
    out = tmp_path / "faded.wav"
    r = cli("post", path, "-o", out, "--fade-out", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["duration_s"] == pytest.approx(1.5, abs=1e-3)
    assert sf.info(str(out)).frames == y.shape[1]


def test_flac_of_unknown_length_over_the_limit_is_refused_early(tmp_path, monkeypatch):
    path = tmp_path / "long.flac"
    flac_of_unknown_length(path, sine(220, 20.0, sr=8000, amp=0.3, channels=1), 8000)
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "2")
    with pytest.raises(AudioError) as info:
        read_audio(path)
    msg = str(info.value)
    assert str(path) in msg and "audio_seconds" in msg, msg
    # counted block by block: refused after the first 65536 frames, not after all 20 s
    assert "lasts at least 8.2 s" in msg, msg
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "3600")
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SAMPLES", "100000")
    with pytest.raises(AudioError, match="audio_samples"):
        read_audio(path)


# --------------------------------------------------------------------------
# Chains


def test_validate_chain_accepts_and_normalises():
    steps = [{"op": "trim"}, {"op": "fade_out", "seconds": 2}, {"op": "loudness", "lufs": -14, "peak_db": -1.0},
             {"op": "resample", "target_sr": 48000.0}]
    assert validate_chain(steps) == [
        {"op": "trim"}, {"op": "fade_out", "seconds": 2.0}, {"op": "loudness", "lufs": -14.0, "peak_db": -1.0},
        {"op": "resample", "target_sr": 48000},
    ]
    assert set(OPS) >= {"trim", "fade_in", "fade_out", "loudness", "tempo", "stretch", "pitch_shift", "gain",
                        "peak_normalize", "reverb", "lowpass", "highpass", "resample"}


@pytest.mark.parametrize("steps, message", [
    ([{"op": "trim"}, {"op": "gain", "db": 1}, {"op": "loudness", "lufz": -14}],
     "post[2]: unknown key 'lufz' for op 'loudness' (allowed: lufs, peak_db)"),
    ([{"op": "explode"}], "post[0]: unknown op 'explode'"),
    ([{"seconds": 2}], "post[0]: missing 'op'"),
    (["trim"], "post[0]: a step must be a table"),
    ([{"op": "fade_out", "seconds": "2"}], "post[0]: seconds for op 'fade_out' must be a number, got '2'"),
    ([{"op": "gain", "db": True}], "post[0]: db for op 'gain' must be a number, got True"),
    ([{"op": "fade_out"}], "post[0]: op 'fade_out' needs 'seconds'"),
    ([{"op": "loudness", "lufs": 5}], "post[0]: lufs for op 'loudness' must be between -70 and 0, got 5"),
    ([{"op": "resample", "target_sr": 44100.5}], "post[0]: target_sr for op 'resample' must be a whole number"),
    ({"op": "trim"}, "post must be a list"),
])
def test_validate_chain_names_the_problem(steps, message):
    with pytest.raises(ParameterError) as info:
        validate_chain(steps)
    assert message in str(info.value)


def test_apply_chain_runs_steps_and_reports_progress(padded):
    y, start, end = padded
    seen = []
    steps = [{"op": "trim"}, {"op": "fade_out", "seconds": 1.0}, {"op": "loudness", "lufs": -16.0},
             {"op": "resample", "target_sr": 22050}]
    out, sr = apply_chain(y, sr=SR, steps=steps, progress=lambda *a: seen.append(a))
    assert sr == 22050 and out.shape[1] < y.shape[1] // 2
    assert abs(loudness_reference(out, sr) - (-16.0)) < 0.5
    assert out[:, -1].max() == 0 or np.abs(out[:, -1]).max() < 1e-3
    assert seen == [(1, 4, "trim"), (2, 4, "fade_out"), (3, 4, "loudness"), (4, 4, "resample")]
    assert np.array_equal(apply_chain(y, sr=SR, steps=[])[0], y)


def test_apply_chain_prefixes_errors_found_with_the_audio(notes):
    with pytest.raises(ParameterError, match=r"post\[1\] \(lowpass\): cutoff_hz must be between 0 and 4000"):
        apply_chain(notes, sr=8000, steps=[{"op": "gain", "db": 0}, {"op": "lowpass", "cutoff_hz": 5000}])


def test_common_chain_needs_no_librosa_and_import_is_light():
    code = (
        "import sys, numpy as np\n"
        "import musegen.audio\n"
        "assert not {'librosa', 'pyloudnorm', 'scipy', 'matplotlib'} & set(sys.modules), sys.modules.keys()\n"
        "from musegen.audio import apply_chain\n"
        "y = (np.random.default_rng(0).standard_normal((2, 44100)) * 0.1).astype('float32')\n"
        "apply_chain(y, sr=44100, steps=[{'op': 'trim'}, {'op': 'fade_out', 'seconds': 0.2},"
        " {'op': 'loudness'}])\n"
        "assert 'librosa' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------
# Analysis


def test_effects_reject_bad_audio():
    with pytest.raises(ParameterError, match="2-D"):
        trim(np.zeros(100, np.float32), sr=SR)
    with pytest.raises(ParameterError, match="channels"):
        trim(np.zeros((9, 100), np.float32), sr=SR)
    with pytest.raises(ParameterError, match="sr must be between"):
        trim(np.zeros((1, 100), np.float32), sr=100)


def test_analyze_audio_reports_key_tempo_and_levels(notes):
    result = analyze_audio(notes, sr=SR)
    json.dumps(result, allow_nan=False)
    assert set(result) == {"duration_s", "sample_rate", "channels", "lufs", "peak_dbfs", "rms_dbfs",
                           "tempo_bpm", "key", "spectral_centroid_hz"}
    assert result["duration_s"] == pytest.approx(notes.shape[1] / SR, abs=1e-3)
    assert result["channels"] == 2 and result["sample_rate"] == SR
    assert result["key"] == "A minor"
    assert result["tempo_bpm"] == pytest.approx(120, rel=0.05)  # a note every 0.5 s
    assert 150 < result["spectral_centroid_hz"] < 2000
    assert result["lufs"] == pytest.approx(loudness_reference(notes), abs=0.05)


def test_analyze_silence_is_json_ready():
    result = analyze_audio(np.zeros((1, SR), np.float32), sr=SR)
    json.dumps(result, allow_nan=False)
    assert result["lufs"] == -70.0 and result["key"] is None and result["tempo_bpm"] is None


def test_plot_audio_writes_png_atomically(tmp_path, notes):
    path = plot_audio(notes, sr=SR, path=tmp_path / "wave.png", title="notes")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["wave.png"]
    with pytest.raises(ParameterError, match=r"\.png"):
        plot_audio(notes, sr=SR, path=tmp_path / "wave.jpg")


def test_default_chain_numpy_dsp_matches_scipy():
    """The numpy FFT convolution, K-weighting biquads and limiter windows equal scipy's."""
    from scipy.ndimage import maximum_filter1d, uniform_filter1d
    from scipy.signal import oaconvolve, sosfilt

    from musegen.audio import _dsp
    from musegen.audio._loudness import _k_weighting_ir

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 120_000)).astype(np.float32)
    h = (rng.standard_normal((2, 20_000)) * np.exp(-np.arange(20_000) / 3000)).astype(np.float32)
    ref = oaconvolve(x[:1], h, axes=-1)
    assert np.abs(_dsp.fft_convolve(x[:1], h) - ref).max() < 1e-4 * np.abs(ref).max()
    for sr in (8000, 44100, 96000):
        sos = _dsp.k_weighting_sos(sr)
        kw = sosfilt(sos, x.astype(np.float64), axis=-1)
        ours = _dsp.fft_convolve(x, _k_weighting_ir(sr))[:, : x.shape[1]]
        assert np.abs(ours - kw).max() < 1e-5 * np.abs(kw).max(), sr
    for hold, ahead in ((1, 1), (4, 2), (3, 7)):
        r = rng.random(300)
        width = hold + ahead
        held = maximum_filter1d(r, width, mode="constant", cval=0.0, origin=hold - width // 2)
        assert np.array_equal(_dsp.sliding_max(r, hold, ahead - 1), held)
        smooth = uniform_filter1d(held, ahead, mode="nearest", origin=(ahead - 1) - ahead // 2)
        assert np.allclose(_dsp.trailing_mean(held, ahead), smooth)


def test_k_weighting_coefficients_are_pyloudnorms():
    from pyloudnorm import IIRfilter

    from musegen.audio._dsp import k_weighting_sos

    for sr in (8000, 44100, 48000, 192000):
        shelf = IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sr, "high_shelf")
        hp = IIRfilter(0.0, 0.5, 38.0, sr, "high_pass")
        ref = np.array([np.r_[shelf.b, shelf.a], np.r_[hp.b, hp.a]])
        assert np.allclose(k_weighting_sos(sr), ref, rtol=0, atol=1e-12)
