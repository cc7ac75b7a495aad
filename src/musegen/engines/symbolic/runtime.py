"""The music transformer's decode loop in NumPy: sampling without torch.

:mod:`.model` defines and trains the network in PyTorch.  This module runs the
same arithmetic in float32 from the saved weights, for sampling only.  At
batch 1 a decode step of this small model is dominated by per-operation
overhead, which is several times lower in NumPy than in eager PyTorch, and a
cold ``musegen extend`` no longer pays for importing torch (about a second).

The layout follows the decode step of :class:`.model.MusicTransformer`: pre-norm
blocks, rotary positions on interleaved channel pairs, tied embeddings, a KV
cache with a sliding window.  Keys are cached transposed (``(B, H, D, window)``)
so that attention scores are one strided matrix product without a copy.
``tests/test_symbolic.py`` checks that both give the same logits.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from musegen.engines.symbolic.config import ModelConfig

_EPS = 1e-5  # torch.nn.LayerNorm's default
_GELU_C = math.sqrt(2.0 / math.pi)
#: OpenBLAS multiplies a few rows by a matrix with its small-matrix kernel while rows x
#: columns x depth stays under about this; above it, it packs the whole matrix first and
#: 4 rows cost 3-4x what 1 row does.  Splitting the columns keeps a few rows cheap.
_SMALL_GEMM = 3 << 18
_SPLIT_ROWS = 16  # from this many rows on, packing pays for itself


class _Mat:
    """A weight matrix (in, out) that multiplies a few rows fast: see :data:`_SMALL_GEMM`."""

    __slots__ = ("w", "_parts")
    __array_ufunc__ = None  # makes ``ndarray @ _Mat`` defer to __rmatmul__

    def __init__(self, w: np.ndarray):
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self._parts: dict[int, list[np.ndarray]] = {}

    def __rmatmul__(self, x: np.ndarray) -> np.ndarray:
        K, N = self.w.shape
        M = x.size // K
        if M == 1 or M >= _SPLIT_ROWS or M * K * N <= _SMALL_GEMM:
            return x @ self.w
        n = -(-M * K * N // _SMALL_GEMM)
        parts = self._parts.get(n)
        if parts is None:
            parts = self._parts[n] = [np.ascontiguousarray(p) for p in np.array_split(self.w, n, axis=1)]
        x2 = x.reshape(M, K)
        return np.concatenate([x2 @ p for p in parts], axis=1).reshape(*x.shape[:-1], N)


def _normalize(x: np.ndarray, inv_c: np.ndarray) -> np.ndarray:
    """LayerNorm without its affine part (folded into the next matrix): (x - mean) / std, a new array.

    Means are products with a ``1/C`` vector: one BLAS call each, cheaper than ``mean()``.
    """
    d = x - x @ inv_c
    var = (d * d) @ inv_c
    var += _EPS
    d /= np.sqrt(var, out=var)
    return d


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU with the tanh approximation (``approximate="tanh"`` in torch), in place on x."""
    inner = x * x
    inner *= 0.044715
    inner += 1.0
    inner *= x
    inner *= _GELU_C
    np.tanh(inner, out=inner)
    inner += 1.0
    inner *= 0.5
    x *= inner
    return x


def expected_weights(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor a checkpoint holds (the tied head is not stored)."""
    C = cfg.d_model
    shapes = {"tok.weight": (cfg.vocab_size, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        shapes.update({p + "ln1.weight": (C,), p + "ln1.bias": (C,), p + "ln2.weight": (C,), p + "ln2.bias": (C,),
                       p + "qkv.weight": (3 * C, C), p + "proj.weight": (C, C),
                       p + "fc.weight": (4 * C, C), p + "out.weight": (C, 4 * C)})
    return shapes


class _Layer:
    """One block's weights, rearranged for decoding (same function as the torch block).

    - LayerNorm scales and shifts are folded into the matrix that follows each
      norm: ``(n * w + b) @ W == n @ (w[:, None] * W) + b @ W``.
    - Each head's query and key channels are reordered from interleaved pairs
      (0, 1), (2, 3), ... to halves (0, 2, 4, ... | 1, 3, 5, ...): attention
      scores do not change when queries and keys share a channel order, and
      rotary embedding then works on two contiguous halves.
    - Queries are pre-scaled by ``1 / sqrt(head_dim)``.
    """

    __slots__ = ("w_qkv", "b_qkv", "w_proj", "w_fc", "b_fc", "w_out")

    def __init__(self, get, i: int, cfg: ModelConfig):
        p = f"blocks.{i}."
        C, H = cfg.d_model, cfg.n_head
        D = C // H
        # torch's Linear stores (out, in); x @ W wants (in, out)
        w_qkv = get(p + "qkv.weight").T.astype(np.float64)
        halves = np.concatenate([np.arange(0, D, 2), np.arange(1, D, 2)])
        order = np.concatenate([h * D + halves for h in range(H)])
        w_qkv[:, :C] = w_qkv[:, :C][:, order] / math.sqrt(D)
        w_qkv[:, C:2 * C] = w_qkv[:, C:2 * C][:, order]
        self.w_qkv, self.b_qkv = _fold(get(p + "ln1.weight"), get(p + "ln1.bias"), w_qkv)
        self.w_proj = _Mat(get(p + "proj.weight").T)
        self.w_fc, self.b_fc = _fold(get(p + "ln2.weight"), get(p + "ln2.bias"), get(p + "fc.weight").T)
        self.w_out = _Mat(get(p + "out.weight").T)


def _fold(w: np.ndarray, b: np.ndarray, mat: np.ndarray) -> tuple[_Mat, np.ndarray]:
    """``(w[:, None] * mat, b @ mat)`` in float32, computed in float64."""
    mat = np.asarray(mat, dtype=np.float64)
    return _Mat((w.astype(np.float64)[:, None] * mat).astype(np.float32)), (b.astype(np.float64) @ mat).astype(np.float32)


class NumpyLM:
    """Inference copy of a :class:`.model.MusicTransformer` (``new_cache`` / ``step`` like it)."""

    def __init__(self, cfg: ModelConfig, state: Mapping[str, np.ndarray]):
        self.cfg = cfg

        def get(name: str) -> np.ndarray:
            if name not in state:
                raise KeyError(name)
            return np.asarray(state[name], dtype=np.float32)

        self.emb = np.ascontiguousarray(get("tok.weight"))  # (V, C)
        self.layers = [_Layer(get, i, cfg) for i in range(cfg.n_layer)]
        # tied head: logits = ln_f(x) @ emb.T, with ln_f folded in
        self.head, self.b_head = _fold(get("ln_f.weight"), get("ln_f.bias"), self.emb.T)
        C = cfg.d_model
        self.inv_c = np.full((C, 1), 1.0 / C, dtype=np.float32)
        hd = C // cfg.n_head
        self.inv_freq = 1.0 / (cfg.rope_base ** (np.arange(0, hd, 2, dtype=np.float64) / hd))

    @classmethod
    def from_module(cls, model) -> "NumpyLM":
        """From a live torch model (training and tests); the shipped path loads safetensors directly."""
        state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
        return cls(model.cfg, state)

    def new_cache(self, batch: int) -> "NumpyCache":
        return NumpyCache(self.cfg, batch)

    def _rope(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """cos over whole heads (T, 1, 1, D) and sin over half heads (T, 1, 1, D/2), for q and k at once."""
        ang = np.arange(start, start + length, dtype=np.float64)[:, None] * self.inv_freq[None, :]
        cos = np.cos(ang).astype(np.float32)
        return np.concatenate([cos, cos], axis=1)[:, None, None, :], np.sin(ang).astype(np.float32)[:, None, None, :]

    def step(self, idx: np.ndarray, cache: "NumpyCache", *, every: bool = False) -> np.ndarray:
        """Feed new tokens ``idx`` (B, T) through the cache; float32 logits of the last position (B, V).

        With ``every``, the logits of every new position (B, T, V), for checking drafted tokens.
        """
        idx = np.asarray(idx)
        B, T = idx.shape
        cache.make_room(T)
        n = cache.length
        cfg = self.cfg
        C, H = cfg.d_model, cfg.n_head
        D, half = C // H, C // H // 2
        cos, sin = self._rope(cache.pos, T)
        inv_c = self.inv_c
        x = self.emb[idx]  # (B, T, C), a copy
        neg = None
        if T > 1:  # new tokens see the past and themselves, not later new tokens
            j = np.arange(n + T)[None, :]
            i = np.arange(T)[:, None]
            neg = np.where(j > n + i, np.float32(-np.inf), np.float32(0.0))
        for li, L in enumerate(self.layers):
            qkv = _normalize(x, inv_c) @ L.w_qkv
            qkv += L.b_qkv
            qkv = qkv.reshape(B, T, 3, H, D)
            qk = qkv[:, :, :2]                  # (B, T, 2, H, D): rotate queries and keys together
            lo, hi = qk[..., :half], qk[..., half:]
            lo_sin, hi_sin = lo * sin, hi * sin
            qk *= cos
            lo -= hi_sin
            hi += lo_sin
            cache.kt[li][:, :, :, n:n + T] = qkv[:, :, 1].transpose(0, 2, 3, 1)
            cache.v[li][:, :, n:n + T] = qkv[:, :, 2].transpose(0, 2, 1, 3)
            s = qkv[:, :, 0].transpose(0, 2, 1, 3) @ cache.kt[li][:, :, :, : n + T]  # (B, H, T, n+T)
            if neg is not None:
                s += neg
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            y = s @ cache.v[li][:, :, : n + T]  # (B, H, T, D), normalised below
            y /= s.sum(-1, keepdims=True)
            x += y.transpose(0, 2, 1, 3).reshape(B, T, C) @ L.w_proj
            h = _normalize(x, inv_c) @ L.w_fc
            h += L.b_fc
            x += _gelu_tanh(h) @ L.w_out
        cache.length += T
        cache.pos += T
        logits = _normalize(x if every else x[:, -1], inv_c) @ self.head
        logits += self.b_head
        return logits


class NumpyCache:
    """Keys (transposed) and values per layer with a sliding window of ``context`` positions."""

    def __init__(self, cfg: ModelConfig, batch: int):
        hd = cfg.d_model // cfg.n_head
        self.window = cfg.context
        self.kt = [np.zeros((batch, cfg.n_head, hd, cfg.context), np.float32) for _ in range(cfg.n_layer)]
        self.v = [np.zeros((batch, cfg.n_head, cfg.context, hd), np.float32) for _ in range(cfg.n_layer)]
        self.length = 0  # filled slots
        self.pos = 0     # absolute position of the next token (for rotary angles)

    def repeat(self, rows: int) -> "NumpyCache":
        """A new cache whose ``rows`` rows each hold a copy of this one-row cache."""
        if self.kt[0].shape[0] != 1:
            raise ValueError("only a one-row cache can be repeated")
        out = object.__new__(NumpyCache)
        out.window, out.length, out.pos = self.window, self.length, self.pos
        out.kt = [np.repeat(k, rows, axis=0) for k in self.kt]
        out.v = [np.repeat(v, rows, axis=0) for v in self.v]
        return out

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (in this order), e.g. when the others have finished sampling."""
        idx = np.asarray(rows, dtype=np.int64)
        self.kt = [k[idx] for k in self.kt]
        self.v = [v[idx] for v in self.v]

    def rewind(self, t: int) -> None:
        """Forget the last ``t`` fed tokens (drafts that were not kept)."""
        if not 0 <= t <= self.length:
            raise ValueError(f"cannot rewind {t} of {self.length} cached tokens")
        self.length -= t
        self.pos -= t

    def make_room(self, t: int) -> None:
        if t > self.window:
            raise ValueError(f"cannot feed {t} tokens at once into a {self.window}-token window")
        if self.length + t > self.window:
            # keep the most recent half window: relative distances stay within the training range
            keep = max(0, self.window // 2 - t)
            drop = self.length - keep
            for kt in self.kt:
                kt[..., :keep] = kt[..., drop:self.length].copy()
            for v in self.v:
                v[:, :, :keep] = v[:, :, drop:self.length].copy()
            self.length = keep
