"""ITU-R BS.1770-4 integrated loudness, vectorized.

pyloudnorm is the reference implementation (its K-weighting filters are used
here, applied by FFT convolution), but its gating loops over blocks in Python; the loudness normalizer
needs to re-estimate loudness several times per call, so the gating here
works on cumulative sums instead.  The tests check the two agree.
"""

from __future__ import annotations

import functools

import numpy as np

BLOCK_S = 0.4  # gating block length
HOP_S = 0.1  # 75 % overlap
ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the absolutely gated loudness
#: Channel weights of BS.1770 for L, R, C, Ls, Rs; further channels count 1.0.
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)


@functools.lru_cache(maxsize=16)
def _k_weighting_sos(sr: int) -> np.ndarray:
    """The two K-weighting biquads (pyloudnorm's parameters; the tests compare)."""
    from musegen.audio._dsp import k_weighting_sos

    return k_weighting_sos(sr)


@functools.lru_cache(maxsize=16)
def _k_weighting_ir(sr: int) -> np.ndarray:
    """K-weighting as an FIR: the biquads' impulse response over 0.25 s, where it has decayed
    below 1e-15 of its peak at every supported rate; shape (1, taps), float32."""
    from musegen.audio._dsp import biquad_impulse

    ir = biquad_impulse(_k_weighting_sos(sr), max(256, int(0.25 * sr))).astype(np.float32)[None, :]
    ir.flags.writeable = False
    return ir


def weighted_power(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Channel-weighted power of the K-weighted signal.

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples), float32
    sr : int
        Sample rate in Hz.

    Returns
    -------
    np.ndarray, shape (samples,), float32
        ``sum_c w_c * k(y_c)**2``; its block means are what BS.1770 gates.
        Accumulate it in float64.
    """
    from musegen.audio._dsp import fft_convolve

    # FFT convolution with the filters' impulse response: the same output as
    # running the biquads (to ~1e-6), without importing scipy.signal (0.75 s)
    kw = fft_convolve(y, _k_weighting_ir(sr))[:, : y.shape[1]]
    kw *= kw
    n_w = min(len(CHANNEL_WEIGHTS), y.shape[0])
    if any(w != 1.0 for w in CHANNEL_WEIGHTS[:n_w]):
        kw[:n_w] *= np.asarray(CHANNEL_WEIGHTS[:n_w], dtype=np.float32)[:, None]
    return kw.sum(axis=0) if kw.shape[0] > 1 else kw[0]


def cumulative(power: np.ndarray) -> np.ndarray:
    """``[0, cumsum(power)]`` in float64, for block sums by subtraction."""
    cum = np.empty(power.size + 1)
    cum[0] = 0.0
    np.cumsum(power, dtype=np.float64, out=cum[1:])
    return cum


def block_bounds(n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end samples of the gating blocks of a signal ``n`` samples long.

    Only whole 400 ms blocks count; a signal shorter than one block is measured
    as a single block spanning all of it.
    """
    size = int(round(BLOCK_S * sr))
    hop = HOP_S * sr
    if n < size:
        return np.array([0]), np.array([n])
    count = int((n - size) // hop) + 1
    starts = np.round(np.arange(count) * hop).astype(np.int64)
    starts = starts[starts + size <= n]
    return starts, starts + size


def block_sums(power: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``power`` over consecutive blocks of ``size`` samples (float64).

    The last block is zero-padded.
    """
    n_blocks = -(-power.size // size)
    full = power.size // size
    sums = np.empty(n_blocks)
    sums[:full] = power[: full * size].reshape(full, size).sum(axis=1, dtype=np.float64)
    if n_blocks > full:
        sums[-1] = power[full * size:].sum(dtype=np.float64)
    return sums


def loudness_from_block_sums(sums: np.ndarray, *, n: int, sr: int, size: int) -> float:
    """Integrated loudness from per-block power sums (see :func:`block_sums`).

    Exact when ``size`` divides the 100 ms hop; otherwise the gating blocks'
    edges are rounded to the nearest block edge.
    """
    cum = np.concatenate(([0.0], np.cumsum(sums)))
    starts, ends = block_bounds(n, sr)
    first = np.rint(starts / size).astype(np.int64)
    last = np.minimum(np.rint(ends / size).astype(np.int64), sums.size)
    last[ends >= n] = sums.size
    return gated_loudness((cum[last] - cum[first]) / (ends - starts))


def gated_loudness(block_power: np.ndarray) -> float:
    """Integrated loudness in LUFS from mean powers per gating block.

    Returns ``-inf`` when no block passes the absolute gate.
    """
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(block_power)
    kept = block_power[block_lufs >= ABSOLUTE_GATE]
    if kept.size == 0:
        return float("-inf")
    relative = -0.691 + 10.0 * np.log10(kept.mean()) + RELATIVE_GATE
    kept = block_power[(block_lufs > relative) & (block_lufs > ABSOLUTE_GATE)]
    if kept.size == 0:
        return float("-inf")
    return float(-0.691 + 10.0 * np.log10(kept.mean()))


def loudness_from_cumulative(cum: np.ndarray, *, sr: int) -> float:
    """Integrated loudness from ``cum = [0, cumsum(weighted_power)]``."""
    n = cum.size - 1
    starts, ends = block_bounds(n, sr)
    return gated_loudness((cum[ends] - cum[starts]) / (ends - starts))


def integrated_loudness(y: np.ndarray, *, sr: int) -> float:
    """BS.1770 integrated loudness of ``y`` in LUFS; ``-inf`` below the -70 LUFS gate."""
    return loudness_from_cumulative(cumulative(weighted_power(y, sr=sr)), sr=sr)
