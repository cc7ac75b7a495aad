"""Numpy building blocks for the default effects: FFT convolution, biquads, sliding windows.

They replace ``scipy.signal`` and ``scipy.ndimage`` on the path every preset
takes (reverb, loudness, limiter): importing ``scipy.signal`` alone costs
about 0.75 s, more than the effects themselves on a minute of music.
(``scipy.fft`` would transform faster, but importing it costs about 0.35 s, as
much as it saves on a minute of music; analysis, which transforms more, uses it.)
"""

from __future__ import annotations

import math

import numpy as np


def _fast_len(n: int) -> int:
    """Smallest 2**a * 3**b >= n (pocketfft is fastest on such sizes)."""
    best = 1 << max(0, (n - 1).bit_length())
    p3 = 1
    while p3 < best:
        p2 = p3
        while p2 < n:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution along the last axis, by overlap-add in float32.

    Parameters
    ----------
    x : np.ndarray, shape (cx, n)
    h : np.ndarray, shape (ch, m)
        ``cx`` and ``ch`` broadcast (1 and c, c and 1, or equal).

    Returns
    -------
    np.ndarray, shape (max(cx, ch), n + m - 1), float32
    """
    x = np.asarray(x, dtype=np.float32)
    h = np.asarray(h, dtype=np.float32)
    n, m = x.shape[-1], h.shape[-1]
    channels = max(x.shape[0], h.shape[0])
    nfft = _fast_len(max(4 * m, 1 << 15))
    step = nfft - m + 1
    spec_h = np.fft.rfft(h, nfft, axis=-1)
    out = np.zeros((channels, n + m - 1), dtype=np.float32)
    for start in range(0, n, step):
        block = x[:, start:start + step]
        seg = np.fft.irfft(np.fft.rfft(block, nfft, axis=-1) * spec_h, nfft, axis=-1)
        stop = min(out.shape[-1], start + nfft)
        out[:, start:stop] += seg[:, : stop - start]
    return out


def biquad_impulse(sos: np.ndarray, length: int) -> np.ndarray:
    """Impulse response of a cascade of biquads ``[b0, b1, b2, a0, a1, a2]`` per row, float64."""
    y = np.zeros(length)
    y[0] = 1.0
    for b0, b1, b2, a0, a1, a2 in np.asarray(sos, dtype=np.float64):
        b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
        x, y = y, np.empty(length)
        x1 = x2 = y1 = y2 = 0.0
        for i, xi in enumerate(x.tolist()):
            yi = b0 * xi + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            y[i] = yi
            x2, x1, y2, y1 = x1, xi, y1, yi
    return y


def k_weighting_sos(sr: int) -> np.ndarray:
    """The two BS.1770 K-weighting stages (high shelf, then high pass) as biquads (``a0 = 1``).

    Coefficients follow the audio-EQ cookbook with the parameters pyloudnorm
    uses (shelf +4 dB, Q 1/sqrt(2), 1500 Hz; high pass Q 0.5, 38 Hz); the
    tests check they match pyloudnorm's to 1e-12.
    """
    def shelf(gain_db, q, fc):
        a = 10.0 ** (gain_db / 40.0)
        w0 = 2.0 * math.pi * fc / sr
        alpha = math.sin(w0) / (2.0 * q)
        c = math.cos(w0)
        r = 2.0 * math.sqrt(a) * alpha
        return [a * ((a + 1) + (a - 1) * c + r), -2 * a * ((a - 1) + (a + 1) * c), a * ((a + 1) + (a - 1) * c - r),
                (a + 1) - (a - 1) * c + r, 2 * ((a - 1) - (a + 1) * c), (a + 1) - (a - 1) * c - r]

    def highpass(q, fc):
        w0 = 2.0 * math.pi * fc / sr
        alpha = math.sin(w0) / (2.0 * q)
        c = math.cos(w0)
        return [(1 + c) / 2, -(1 + c), (1 + c) / 2, 1 + alpha, -2 * c, 1 - alpha]

    sos = np.array([shelf(4.0, 1 / math.sqrt(2), 1500.0), highpass(0.5, 38.0)])
    return sos / sos[:, 3:4]


def sliding_max(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[i] = max(x[i - before .. i + after])``, zeros outside ``x``."""
    pad = np.concatenate([np.zeros(before), x, np.zeros(after)])
    win = np.lib.stride_tricks.sliding_window_view(pad, before + after + 1)
    return win.max(axis=1)


def trailing_mean(x: np.ndarray, width: int) -> np.ndarray:
    """``out[i] = mean(x[i - width + 1 .. i])``, the first value repeated before the start."""
    pad = np.concatenate([np.full(width - 1, x[0]), x])
    cum = np.concatenate([[0.0], np.cumsum(pad)])
    return (cum[width:] - cum[:-width]) / width
