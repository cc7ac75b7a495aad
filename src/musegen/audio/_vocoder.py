"""A phase vocoder whose phase is shared by every channel.

Processing the channels of a stereo mix one by one lets each accumulate its
own phase: after a few seconds left and right no longer line up, the stereo
image turns diffuse (left/right correlation near 0) and the mono fold-down
loses about 6 dB.  Here the phase advance is computed once, from the sum of
the channels, and every channel's bins are turned by the same rotation, so
the phase differences between channels stay what they were in the input.

Identity phase locking (Laroche and Dolson, 1999) keeps the bins around each
spectral peak of the sum turning with that peak, as they do in the input;
without it, neighbouring bins drift apart, partly cancel in the overlap-add
and the level drops by 2-3 dB.

numpy and scipy.fft only: importing librosa and compiling its numba kernels
costs more than the work on a song.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["frame_size", "stretch"]

#: output frames computed at once: bounds memory to a few MB per channel
#: whatever the length of the audio.
_BLOCK = 512


def frame_size(sr: int) -> int:
    """FFT size for ``sr``: the power of two nearest 46 ms (2048 at 44.1 and 48 kHz)."""
    return max(256, 1 << round(math.log2(0.046 * sr)))


def _peak_owner(mag: np.ndarray) -> np.ndarray:
    """For each frame of ``mag`` (frames, bins), the index of the peak each bin belongs to.

    A peak is a bin larger than its two neighbours on each side; a bin belongs
    to the nearest peak.  A frame without peaks (silence) owns itself.
    """
    bins = mag.shape[1]
    padded = np.pad(mag, ((0, 0), (2, 2)))
    c = padded[:, 2:-2]
    peak = (c > padded[:, 1:-3]) & (c > padded[:, :-4]) & (c >= padded[:, 3:-1]) & (c >= padded[:, 4:])
    idx = np.arange(bins, dtype=np.int32)
    # nearest peak at or below, and at or above, each bin (-1 / bins where none)
    below = np.maximum.accumulate(np.where(peak, idx, np.int32(-1)), axis=1)
    above = np.minimum.accumulate(np.where(peak, idx, np.int32(bins))[:, ::-1], axis=1)[:, ::-1]
    owner = np.where((below < 0) | ((above < bins) & (above - idx < idx - below)), above, below)
    return np.where(owner < bins, owner, idx)  # a frame without peaks


def stretch(y: np.ndarray, *, rate: float, n_fft: int, out_len: int) -> np.ndarray:
    """Time-stretch ``y`` by ``rate`` (2.0: half as long), keeping pitch and channel phase.

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples), float32
    rate : float
        Speed factor; the output has ``out_len`` samples (about ``samples / rate``).
    n_fft : int
        Frame size, a multiple of 4 (the hop is a quarter of it).
    out_len : int
        Samples to return.

    Returns
    -------
    np.ndarray, shape (channels, out_len), float32
    """
    from scipy import fft  # 4x numpy's for float32 frames, and lighter to import than scipy.signal

    channels, n = y.shape
    hop = n_fft // 4
    pad = n_fft // 2
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    frames_out = (out_len + pad) // hop + 1
    # zero padding: half a frame in front (frames are centred), and behind
    # enough for the last output frame's analysis frame and its successor
    last = int(math.floor((frames_out - 1) * rate)) + 2
    x = np.zeros((channels, max(n + 2 * pad, last * hop + n_fft)), dtype=np.float32)
    x[:, pad : pad + n] = y
    advance = ((2.0 * np.pi * hop / n_fft) * np.arange(n_fft // 2 + 1)).astype(np.float32)

    out = np.zeros((channels, (frames_out - 1) * hop + n_fft), dtype=np.float32)
    phase = None  # output phase of the sum, per bin, of the previous output frame
    for start in range(0, frames_out, _BLOCK):
        t = np.arange(start, min(start + _BLOCK, frames_out))
        pos = t * rate
        k = np.floor(pos).astype(np.int64)
        frac = (pos - k).astype(np.float32)[:, None]
        k0 = int(k[0])
        used = int(k[-1]) - k0 + 2  # frames k0 .. k[-1] + 1
        seg = x[:, k0 * hop : (k0 + used - 1) * hop + n_fft]
        frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft, axis=-1)[:, ::hop][:, :used]
        spec = fft.rfft(frames * window, axis=-1)  # (channels, used, bins)
        ref = spec.sum(axis=0)  # the sum's spectrum sets the phase
        ref_angle = np.angle(ref)
        j = k - k0
        angle = ref_angle[j]
        # instantaneous phase advance over one hop, from frame k to k + 1
        dphi = ref_angle[j + 1] - angle - advance
        dphi -= np.float32(2.0 * np.pi) * np.round(dphi / np.float32(2.0 * np.pi))
        dphi += advance
        ref_mag = np.abs(ref)
        owner = _peak_owner((1.0 - frac) * ref_mag[j] + frac * ref_mag[j + 1])
        # a peak's phase advances by its own frequency; the bins it owns keep
        # their phase offset to it, as in the input:
        #   phase[t] = phase[t - 1][owner[t]] + step[t]
        rows = np.arange(t.size)[:, None]
        step = dphi[rows, owner] + (angle - angle[rows, owner])
        phases = np.empty_like(angle, dtype=np.float64)
        for i in range(t.size):
            if phase is None:
                phase = angle[0].astype(np.float64)
            else:
                phase = phase[owner[i]] + step[i]
            phases[i] = phase
        phase = np.remainder(phase, 2.0 * np.pi)  # bounded, so float32 keeps its precision
        mag = np.abs(spec)
        scale = ((1.0 - frac) * mag[:, j] + frac * mag[:, j + 1]) / np.maximum(mag[:, j], np.float32(1e-30))
        turn = np.remainder(phases - angle, 2.0 * np.pi).astype(np.float32)
        rot = np.empty(turn.shape, dtype=np.complex64)  # cos + i sin: a third of np.exp's time
        rot.real = np.cos(turn)
        rot.imag = np.sin(turn)
        blocks = fft.irfft(spec[:, j] * scale * rot, n=n_fft, axis=-1).astype(np.float32, copy=False)
        blocks *= window
        for q in range(4):  # overlap-add: a frame spans four hops
            seg_out = blocks[:, :, q * hop : (q + 1) * hop].reshape(channels, -1)
            at = start * hop + q * hop
            out[:, at : at + seg_out.shape[1]] += seg_out
    # the windows' squared overlap-add is 1.5 inside; divide it out, edges included
    norm = np.zeros(out.shape[1], dtype=np.float32)
    w2 = window**2
    for q in range(4):
        part = np.tile(w2[q * hop : (q + 1) * hop], frames_out)
        norm[q * hop : q * hop + part.size] += part
    out /= np.maximum(norm, 1e-3)
    return np.ascontiguousarray(out[:, pad : pad + out_len])
