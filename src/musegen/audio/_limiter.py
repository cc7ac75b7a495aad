"""A lookahead peak limiter computed at block rate.

The gain is planned on 1 ms blocks: each block's true-ish peak (its largest
sample, plus the inter-sample peaks either side of it) says how many dB it
sits above the ceiling; that attenuation gets an exponential release, a hold,
a lookahead and a linear attack ramp; the per-block attenuation is then
turned into a per-sample gain by linear interpolation between block edges.
Every step only ever raises the attenuation, so each block is attenuated at
least as much as its peak needs: the output stays under the ceiling without
a hard clip.  Planning on blocks makes the gain cheap enough to re-plan many
times while the loudness normalizer searches for the right make-up gain.
"""

from __future__ import annotations

import functools

import numpy as np

BLOCK_S = 0.001
LOOKAHEAD_S = 0.005  # attack ramp: the gain starts falling this long before a peak
HOLD_S = 0.010  # keeps bass waveforms from modulating the gain every half cycle
RELEASE_S = 0.100  # time constant of the exponential return of the gain, in dB
_TAPS = 6  # half-width of the inter-sample interpolator
_FRACTIONS = (-0.75, -0.5, -0.25, 0.25, 0.5, 0.75)


def block_size(sr: int) -> int:
    """Samples per planning block: about 1 ms, dividing the 100 ms loudness hop if possible.

    When it divides the hop, loudness gating blocks fall on block edges and
    loudness can be measured exactly from per-block sums.
    """
    target = sr * BLOCK_S
    hop = 0.1 * sr
    if hop == int(hop):
        divisors = [d for d in range(1, int(2 * target) + 2) if int(hop) % d == 0]
        return min(divisors, key=lambda d: abs(d - target))
    return max(1, int(round(target)))


@functools.lru_cache(maxsize=1)
def _interpolator() -> np.ndarray:
    """Windowed-sinc weights, shape (2 * _TAPS + 1, len(_FRACTIONS)).

    Column j gives the signal at ``m + _FRACTIONS[j]`` from samples
    ``m - _TAPS .. m + _TAPS``: a 4x oversampling near one sample.
    """
    offsets = np.arange(-_TAPS, _TAPS + 1)[:, None]
    x = np.asarray(_FRACTIONS)[None, :] - offsets
    window = np.cos(0.5 * np.pi * x / (_TAPS + 1)) ** 2
    w = np.sinc(x) * window
    return (w / w.sum(axis=0)).astype(np.float32)


def block_peaks(y: np.ndarray, size: int) -> np.ndarray:
    """True-ish peak of each block, over all channels.

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples), float32
    size : int
        Block length in samples; the last block is zero-padded.

    Returns
    -------
    np.ndarray, shape (ceil(samples / size),), float32
        Largest absolute sample of each block, or the largest inter-sample
        value around it if that is higher.
    """
    n = y.shape[1]
    n_blocks = -(-n // size)
    envelope = np.zeros(n_blocks * size, dtype=np.float32)
    np.abs(y).max(axis=0, out=envelope[:n])
    blocks = envelope.reshape(n_blocks, size)
    where = blocks.argmax(axis=1) + np.arange(n_blocks) * size
    peaks = envelope[where]
    # Inter-sample peaks sit next to large samples: interpolate around each
    # block's largest sample only, in every channel.
    taps = np.clip(where[:, None] + np.arange(-_TAPS, _TAPS + 1), 0, n - 1)
    # einsum, not matmul: BLAS is slow on this tall, thin product.
    between = np.abs(np.einsum("cbt,tf->cbf", y[:, taps], _interpolator())).max(axis=(0, 2))
    return np.maximum(peaks, between)


def attenuation(over_db: np.ndarray, *, blocks_per_s: float) -> np.ndarray:
    """Smoothed attenuation per block, never below what each block needs.

    Parameters
    ----------
    over_db : np.ndarray, shape (blocks,)
        How far each block's peak is above the ceiling, in dB (<= 0: not over).
    blocks_per_s : float
        Planning blocks per second.

    Returns
    -------
    np.ndarray, shape (blocks,), float64
        Attenuation in dB (>= 0) with ``result >= over_db`` everywhere.
    """
    from musegen.audio._dsp import sliding_max, trailing_mean

    n = over_db.size
    hit = np.flatnonzero(over_db > 0)
    if hit.size == 0:
        return np.zeros(n)
    # Exponential release, r[i] = max_k<=i over[k] * a**(i - k), as a running
    # maximum in the log domain: log r[i] = i log a + max_k<=i (log over[k] - k log a).
    log_a = -1.0 / (RELEASE_S * blocks_per_s)
    logs = np.full(n, -np.inf)
    logs[hit] = np.log(over_db[hit]) - hit * log_a
    released = np.exp(np.maximum.accumulate(logs) + np.arange(n) * log_a)
    ahead = max(1, int(round(LOOKAHEAD_S * blocks_per_s)))
    hold = max(1, int(round(HOLD_S * blocks_per_s)))
    # m[i] = max(released[i - hold .. i + ahead - 1]), then s[i] = mean(m[i - ahead + 1 .. i]):
    # every window averaged for s[k] contains k, so s[k] >= released[k].
    held = sliding_max(released, hold, ahead - 1)
    return trailing_mean(held, ahead)


def _edge_gains(att_db: np.ndarray) -> np.ndarray:
    """Linear gain at block edges: the smaller of the two blocks' gains."""
    edges = np.empty(att_db.size + 1)
    edges[0], edges[-1] = att_db[0], att_db[-1]
    np.maximum(att_db[:-1], att_db[1:], out=edges[1:-1])
    return 10.0 ** (-edges / 20.0)


def block_mean_square_gain(att_db: np.ndarray) -> np.ndarray:
    """Mean of the squared per-sample gain over each block (for loudness estimates)."""
    g = _edge_gains(att_db)
    a, b = g[:-1], g[1:]
    # mean of (a + (b - a) t)**2 for t uniform in [0, 1]
    return (a * a + a * b + b * b) / 3.0


def gain_curve(att_db: np.ndarray, *, size: int, n: int) -> np.ndarray:
    """Per-sample linear gain, shape (n,), float32.

    Inside each block the gain moves linearly between the block's edges, and
    both edges are at most the block's own gain, so no sample gets less
    attenuation than its block planned.
    """
    g = _edge_gains(att_db).astype(np.float32)
    ramp = np.arange(size, dtype=np.float32) / size
    return (g[:-1, None] + (g[1:] - g[:-1])[:, None] * ramp).reshape(-1)[:n]
