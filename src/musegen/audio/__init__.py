"""Audio: reading and atomic writing, effects, post-processing chains, analysis.

Audio is a float32 numpy array shaped ``(channels, samples)`` (mono is
``(1, n)``) with its sample rate ``sr`` in Hz passed alongside.  Effects are
pure functions ``f(y, *, sr, ...) -> y``.

Importing this package loads numpy and soundfile only; scipy (filters),
librosa (stretch, pitch shift) and matplotlib (plots) load inside the
functions that use them, so the default mastering chain imports none of them.
"""

from musegen.audio.analysis import analyze_audio, loudness_lufs, peak_dbfs, plot_audio, rms_dbfs
from musegen.audio.chain import OPS, apply_chain, validate_chain
from musegen.audio.effects import (
    change_tempo,
    fade_in,
    fade_out,
    gain,
    highpass,
    lowpass,
    normalize_loudness,
    peak_normalize,
    pitch_shift,
    reverb,
    time_stretch,
    trim,
)
from musegen.audio.io import read_audio, resample, write_audio

__all__ = [
    "OPS",
    "analyze_audio",
    "apply_chain",
    "change_tempo",
    "fade_in",
    "fade_out",
    "gain",
    "highpass",
    "loudness_lufs",
    "lowpass",
    "normalize_loudness",
    "peak_dbfs",
    "peak_normalize",
    "pitch_shift",
    "plot_audio",
    "read_audio",
    "resample",
    "reverb",
    "rms_dbfs",
    "time_stretch",
    "trim",
    "validate_chain",
    "write_audio",
]
