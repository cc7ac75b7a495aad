"""Measurements and pictures of audio: loudness, peaks, tempo, key, spectrum."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from musegen.audio._checks import as_audio, check_sr
from musegen.errors import ParameterError

__all__ = ["analyze_audio", "loudness_lufs", "peak_dbfs", "plot_audio", "rms_dbfs"]

#: What :func:`loudness_lufs` reports for silence: BS.1770's absolute gate.
LUFS_FLOOR = -70.0
#: What :func:`analyze_audio` reports for the peak or RMS of digital silence.
DB_FLOOR = -120.0

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl-Kessler key profiles, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_ANALYSIS_SR = 22050


def loudness_lufs(y: np.ndarray, *, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, as pyloudnorm measures it).

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples)
    sr : int
        Sample rate in Hz.

    Returns
    -------
    float
        LUFS.  Silence, and anything whose every 400 ms block is under the
        -70 LUFS absolute gate, reports the floor ``-70.0`` (never ``-inf``,
        so the value can go into JSON).  Audio shorter than 400 ms is
        measured as a single block.
    """
    from musegen.audio import _loudness

    y = as_audio(y)
    sr = check_sr(sr)
    return max(LUFS_FLOOR, _loudness.integrated_loudness(y, sr=sr))


def peak_dbfs(y: np.ndarray) -> float:
    """Largest absolute sample in dBFS (sample peak, not true peak).

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples)

    Returns
    -------
    float
        ``-inf`` for digital silence.
    """
    y = as_audio(y, contiguous=False)
    peak = max(float(y.max()), -float(y.min()))
    return 20.0 * math.log10(peak) if peak > 0 else float("-inf")


def rms_dbfs(y: np.ndarray) -> float:
    """Root-mean-square level over all channels and samples, in dBFS.

    A full-scale sine measures -3.01 dBFS (no +3 dB "AES" offset).

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples)

    Returns
    -------
    float
        ``-inf`` for digital silence.
    """
    y = as_audio(y)
    mean_square = float(np.mean(np.square(y, dtype=np.float64)))
    return 10.0 * math.log10(mean_square) if mean_square > 0 else float("-inf")


def _estimate_key(chroma_energy: np.ndarray) -> str | None:
    """Best-correlating Krumhansl-Schmuckler key for a 12-bin chroma sum."""
    if not np.any(chroma_energy > 0) or np.ptp(chroma_energy) == 0:
        return None
    best, best_r = None, -np.inf
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for tonic in range(12):
            r = np.corrcoef(chroma_energy, np.roll(profile, tonic))[0, 1]
            if r > best_r:
                best, best_r = f"{NOTE_NAMES[tonic]} {mode}", r
    return best


def analyze_audio(y: np.ndarray, *, sr: int) -> dict[str, Any]:
    """Describe audio in JSON-ready numbers.

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples)
    sr : int
        Sample rate in Hz.

    Returns
    -------
    dict
        ``duration_s``, ``sample_rate``, ``channels``; ``lufs`` (floored at
        -70.0); ``peak_dbfs`` and ``rms_dbfs`` (floored at -120.0);
        ``tempo_bpm`` (onset autocorrelation, :mod:`musegen.audio._features`;
        ``None`` for silence, under 2 s, or no pulse found); ``key`` such as ``"A minor"`` (chroma against
        Krumhansl-Schmuckler profiles; ``None`` for silence or under 1 s);
        ``spectral_centroid_hz`` (mean over non-silent frames).  Plain
        floats, ints, strings or ``None`` only.
    """
    from musegen.audio import _features as feat
    from musegen.audio.io import resample

    y = as_audio(y)
    sr = check_sr(sr)
    result: dict[str, Any] = {
        "duration_s": round(y.shape[1] / sr, 3),
        "sample_rate": sr,
        "channels": int(y.shape[0]),
        "lufs": round(loudness_lufs(y, sr=sr), 2),
        "peak_dbfs": round(max(DB_FLOOR, peak_dbfs(y)), 2),
        "rms_dbfs": round(max(DB_FLOOR, rms_dbfs(y)), 2),
    }
    mono = y.mean(axis=0, keepdims=True)
    if sr > _ANALYSIS_SR:  # plenty for tempo, key and centroid, and faster
        mono = resample(mono, sr=sr, target_sr=_ANALYSIS_SR)
        rate = _ANALYSIS_SR
    else:
        rate = sr
    mono = mono[0]
    # judged before any padding: a short clip padded to n_fft is still too short for beats
    long_enough = mono.size >= 2 * rate
    silent = not np.any(mono)

    # one spectrogram serves tempo, key and centroid
    n_fft, hop = feat.N_FFT, feat.HOP
    power = feat.stft_power(mono, n_fft, hop)
    tempo = None
    if not silent and long_enough:
        bpm = feat.tempo_bpm(feat.onset_strength(power, rate, n_fft), rate, hop)
        tempo = round(bpm, 2) if bpm else None
    result["tempo_bpm"] = tempo

    key = None
    if not silent and y.shape[1] >= sr:
        key = _estimate_key(feat.chroma(power, rate, n_fft).sum(axis=1))
    result["key"] = key

    magnitude = np.sqrt(power)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    frame_sum = magnitude.sum(axis=0)
    active = frame_sum > 1e-8 * max(float(frame_sum.max()), 1e-30)
    if silent or not np.any(active):
        centroid = 0.0
    else:
        centroid = float(np.mean(freqs @ magnitude[:, active] / frame_sum[active]))
    result["spectral_centroid_hz"] = round(centroid, 1)
    return result


def _log_spectrogram(mono: np.ndarray, sr: int, max_frames: int = 1500, n_bands: int = 240):
    """Power spectrogram on log-spaced bands: (times, band edges, dB values)."""
    n_fft = 2048
    hop = max(n_fft // 4, -(-mono.size // max_frames))
    if mono.size < n_fft:
        mono = np.pad(mono, (0, n_fft - mono.size))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop]
    window = np.hanning(n_fft).astype(np.float32)
    # Scaled so a full-scale sine peaks near 0 dB (dBFS).
    from scipy import fft

    power = (np.abs(fft.rfft(frames * window, axis=1)) * (2.0 / window.sum())) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.geomspace(max(20.0, 2 * freqs[1]), sr / 2, n_bands + 1)
    # Each band averages the FFT bins inside it; a band narrower than a bin
    # takes the nearest bin.
    which = np.searchsorted(edges, freqs, side="right") - 1
    weights = np.zeros((n_bands, freqs.size))
    inside = (which >= 0) & (which < n_bands)
    weights[which[inside], np.flatnonzero(inside)] = 1.0
    empty = weights.sum(axis=1) == 0
    centres = np.sqrt(edges[:-1] * edges[1:])
    weights[np.flatnonzero(empty), np.abs(freqs[None, :] - centres[empty, None]).argmin(axis=1)] = 1.0
    weights /= weights.sum(axis=1, keepdims=True)
    banded = weights @ power.T  # (bands, frames); a BLAS product, not einsum's loop
    db = 10.0 * np.log10(np.maximum(banded, 1e-14))
    db = np.maximum(db, db.max() - 90.0)
    times = (np.arange(frames.shape[0] + 1) * hop) / sr
    return times, edges, db


def plot_audio(
    y: np.ndarray, *, sr: int, path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Save a PNG with the waveform above a log-frequency spectrogram.

    Draws with matplotlib's Agg canvas directly (no pyplot, no global backend
    change) and writes atomically.

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples)
    sr : int
        Sample rate in Hz.
    path : str or path-like
        Ends in ``.png``.
    title : str, optional

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        ``path`` does not end in .png, or bad audio.
    OutputError
        The file could not be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from musegen.atomic import atomic_output

    y = as_audio(y)
    sr = check_sr(sr)
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ParameterError(f"plot path must end in .png, got {str(path)!r}")
    channels, n = y.shape
    duration = n / sr

    # fixed axes rectangles: a layout engine would measure every label first (about 1 s)
    fig = Figure(figsize=(11, 6), dpi=100)
    FigureCanvasAgg(fig)
    wave_ax = fig.add_axes((0.07, 0.66, 0.82, 0.28))
    spec_ax = fig.add_axes((0.07, 0.09, 0.82, 0.53), sharex=wave_ax)
    bar_ax = fig.add_axes((0.905, 0.09, 0.015, 0.53))
    wave_ax.tick_params(labelbottom=False)
    # Min/max per pixel column keeps the picture right and the drawing fast.
    columns = min(n, 2000)
    edges = np.linspace(0, n, columns + 1).astype(np.int64)
    t = edges[:-1] / sr
    for c in range(channels):
        lows = np.minimum.reduceat(y[c], edges[:-1])
        highs = np.maximum.reduceat(y[c], edges[:-1])
        label = f"ch {c + 1}" if channels > 1 else None
        wave_ax.fill_between(t, lows, highs, linewidth=0.3, alpha=0.6, label=label)
    wave_ax.set_ylim(-1.05, 1.05)
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_xlim(0, duration)
    if channels > 1:
        wave_ax.legend(loc="upper right", fontsize="small")
    if title:
        wave_ax.set_title(title)

    times, bands, db = _log_spectrogram(y.mean(axis=0), sr)
    # the bands are evenly spaced in log frequency, so the picture is an image on a
    # log-frequency axis: drawn as one bitmap (a mesh of 360,000 quads cost 10x more)
    lo, hi = np.log10(bands[0]), np.log10(bands[-1])
    mesh = spec_ax.imshow(db, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                          extent=(times[0], times[-1], lo, hi))
    ticks = [f for f in (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if bands[0] <= f <= bands[-1]]
    spec_ax.set_yticks(np.log10(ticks), [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in ticks])
    spec_ax.set_ylim(lo, hi)
    spec_ax.set_ylabel("frequency (Hz)")
    spec_ax.set_xlabel("time (s)")
    fig.colorbar(mesh, cax=bar_ax, label="dBFS")

    with atomic_output(path) as handle:
        fig.savefig(handle, format="png")
    return path
