"""Tempo and key features of mono audio in plain NumPy (no librosa, no numba).

``musegen analyze`` waits for these, so they must cost milliseconds, also on
first use in a fresh environment: librosa's beat tracker spends seconds
compiling (or loading cached) numba code before it measures anything.  The
measures follow the usual recipe:

- **onset strength**: spectral flux of a log-power mel spectrogram (the mean
  over bands of each band's rise from one frame to the next);
- **tempo**: the onset strength's autocorrelation, averaged over 8-second
  windows, weighted by a log-normal prior around 120 BPM (one octave wide),
  with the peak refined between lags;
- **chroma**: STFT power folded onto the twelve pitch classes, weighted
  towards the middle octaves, each frame scaled to its loudest class.

``scripts/bench_analysis.py`` compares them with librosa's on rendered songs
of known tempo and key.
"""

from __future__ import annotations

import numpy as np

N_FFT = 2048
HOP = 512
N_MELS = 128
TOP_DB = 80.0
#: tempo search range and prior
MIN_BPM, MAX_BPM = 30.0, 320.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
AC_SECONDS = 8.0


def stft_power(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Power spectrogram ``(n_fft // 2 + 1, frames)`` of a centred, Hann-windowed STFT."""
    y = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2)
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    from scipy import fft  # single precision, about 4x numpy.fft here

    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    out = np.empty((n_fft // 2 + 1, frames.shape[0]), dtype=np.float32)
    for start in range(0, frames.shape[0], 512):  # blocks keep the working set small
        spec = fft.rfft(frames[start:start + 512] * window, axis=1)
        out[:, start:start + 512] = (spec.real ** 2 + spec.imag ** 2).T
    return out


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filters(sr: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular filters ``(n_mels, n_fft // 2 + 1)`` evenly spaced in mel, area-normalised."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - lower) / (centre - lower)
    fall = (upper - freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rise, fall))
    weights *= (2.0 / (upper - lower))
    return weights.astype(np.float32)


def onset_strength(power: np.ndarray, sr: int, n_fft: int) -> np.ndarray:
    """Spectral flux of the log-mel spectrogram, one value per frame (the first is 0)."""
    mel = mel_filters(sr, n_fft) @ power
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - TOP_DB)
    flux = np.maximum(0.0, np.diff(db, axis=1)).mean(axis=0)
    return np.concatenate([[0.0], flux]).astype(np.float64)


def tempo_bpm(onsets: np.ndarray, sr: int, hop: int) -> float | None:
    """The onset strength's dominant beat period in BPM, or None when nothing pulses."""
    frame_rate = sr / hop
    env = onsets - onsets.mean()
    if not np.any(env):
        return None
    win = int(round(AC_SECONDS * frame_rate))
    max_lag = min(win, int(frame_rate * 60.0 / MIN_BPM) + 2)
    if env.size < 4:
        return None
    # windows of AC_SECONDS every half window (one window when the clip is shorter)
    starts = range(0, max(1, env.size - win + 1), max(1, win // 2))
    acf = np.zeros(max_lag + 1)
    taper = np.hanning(min(win, env.size) + 2)[1:-1]
    for s in starts:
        seg = env[s:s + win]
        seg = seg * taper[:seg.size]
        n = 1 << int(np.ceil(np.log2(2 * seg.size)))
        f = np.fft.rfft(seg, n)
        ac = np.fft.irfft(f * np.conj(f), n)[:max_lag + 1]
        if ac[0] > 0:
            acf[:ac.size] += ac / ac[0]
    lags = np.arange(1, max_lag + 1)
    bpm = 60.0 * frame_rate / lags
    ok = (bpm >= MIN_BPM) & (bpm <= MAX_BPM)
    if not np.any(ok) or not np.any(acf[1:][ok] > 0):
        return None
    prior = -0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2
    score = np.where(ok, np.log1p(1e6 * np.maximum(acf[1:], 0.0)) + prior, -np.inf)
    i = int(np.argmax(score))
    lag = float(lags[i])
    if 0 < i < lags.size - 1:  # a parabola through the peak and its neighbours on the acf
        a, b, c = acf[i], acf[i + 1], acf[i + 2]
        denom = a - 2 * b + c
        if denom < 0:
            lag += float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return 60.0 * frame_rate / lag


def chroma(power: np.ndarray, sr: int, n_fft: int) -> np.ndarray:
    """Pitch-class energy ``(12, frames)``, C first; each frame scaled to its loudest class."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    use = (freqs >= 55.0) & (freqs <= 5000.0)
    midi = 69.0 + 12.0 * np.log2(freqs[use] / 440.0)
    nearest = np.rint(midi)
    # a bin counts for its nearest semitone, less the further it lies from its centre
    closeness = np.maximum(0.0, 1.0 - 2.0 * np.abs(midi - nearest))
    octave_weight = np.exp(-0.5 * ((midi / 12.0 - 6.0) / 2.0) ** 2)  # centred on C5, two octaves wide
    weights = np.zeros((12, freqs.size), dtype=np.float32)
    weights[(nearest.astype(int) % 12), np.flatnonzero(use)] = closeness * octave_weight
    out = weights @ power
    peak = out.max(axis=0, keepdims=True)
    return np.divide(out, peak, out=np.zeros_like(out), where=peak > 0)
