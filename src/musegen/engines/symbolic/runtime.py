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


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    d = x - mu
    var = np.einsum("...c,...c->...", d, d)[..., None] / x.shape[-1]
    d *= w / np.sqrt(var + _EPS)  # the scale and the weight in one multiply per row
    d += b
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
    __slots__ = ("ln1_w", "ln1_b", "w_qkv", "w_proj", "ln2_w", "ln2_b", "w_fc", "w_out")

    def __init__(self, get, i: int):
        p = f"blocks.{i}."
        self.ln1_w, self.ln1_b = get(p + "ln1.weight"), get(p + "ln1.bias")
        self.ln2_w, self.ln2_b = get(p + "ln2.weight"), get(p + "ln2.bias")
        # torch's Linear stores (out, in); x @ W wants (in, out), contiguous for BLAS
        self.w_qkv = np.ascontiguousarray(get(p + "qkv.weight").T)
        self.w_proj = np.ascontiguousarray(get(p + "proj.weight").T)
        self.w_fc = np.ascontiguousarray(get(p + "fc.weight").T)
        self.w_out = np.ascontiguousarray(get(p + "out.weight").T)


class NumpyLM:
    """Inference copy of a :class:`.model.MusicTransformer` (``new_cache`` / ``step`` like it)."""

    def __init__(self, cfg: ModelConfig, state: Mapping[str, np.ndarray]):
        self.cfg = cfg

        def get(name: str) -> np.ndarray:
            if name not in state:
                raise KeyError(name)
            return np.asarray(state[name], dtype=np.float32)

        self.emb = np.ascontiguousarray(get("tok.weight"))  # (V, C)
        self.head = np.ascontiguousarray(self.emb.T)         # tied: logits = h @ emb.T
        self.layers = [_Layer(get, i) for i in range(cfg.n_layer)]
        self.lnf_w, self.lnf_b = get("ln_f.weight"), get("ln_f.bias")
        hd = cfg.d_model // cfg.n_head
        self.inv_freq = (1.0 / (cfg.rope_base ** (np.arange(0, hd, 2, dtype=np.float32) / hd))).astype(np.float32)
        self.scale = np.float32(1.0 / math.sqrt(hd))

    @classmethod
    def from_module(cls, model) -> "NumpyLM":
        """From a live torch model (training and tests); the shipped path loads safetensors directly."""
        state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
        return cls(model.cfg, state)

    def new_cache(self, batch: int) -> "NumpyCache":
        return NumpyCache(self.cfg, batch)

    def _rope(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        ang = np.arange(start, start + length, dtype=np.float64)[:, None] * self.inv_freq[None, :]
        return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)

    def step(self, idx: np.ndarray, cache: "NumpyCache") -> np.ndarray:
        """Feed new tokens ``idx`` (B, T) through the cache; float32 logits of the last position (B, V)."""
        idx = np.asarray(idx)
        B, T = idx.shape
        cache.make_room(T)
        n = cache.length
        cfg = self.cfg
        C, H = cfg.d_model, cfg.n_head
        D = C // H
        cos, sin = self._rope(cache.pos, T)  # (T, D/2)
        x = self.emb[idx]  # (B, T, C), a copy
        neg = None
        if T > 1:  # new tokens see the past and themselves, not later new tokens
            j = np.arange(n + T)[None, :]
            i = np.arange(T)[:, None]
            neg = np.where(j > n + i, np.float32(-np.inf), np.float32(0.0))
        for li, L in enumerate(self.layers):
            h = _layer_norm(x, L.ln1_w, L.ln1_b)
            qkv = (h @ L.w_qkv).reshape(B, T, 3, H, D)
            qk = qkv[:, :, :2].transpose(2, 0, 3, 1, 4)  # (2, B, H, T, D)
            even, odd = qk[..., 0::2], qk[..., 1::2]
            rot = np.empty_like(qk)
            rot[..., 0::2] = even * cos - odd * sin
            rot[..., 1::2] = even * sin + odd * cos
            kt, vc = cache.kt[li], cache.v[li]
            kt[:, :, :, n:n + T] = rot[1].transpose(0, 1, 3, 2)
            vc[:, :, n:n + T] = qkv[:, :, 2].transpose(0, 2, 1, 3)
            s = rot[0] @ kt[:, :, :, : n + T]  # (B, H, T, n+T)
            s *= self.scale
            if neg is not None:
                s += neg
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(-1, keepdims=True)
            y = (s @ vc[:, :, : n + T]).transpose(0, 2, 1, 3).reshape(B, T, C)
            x += y @ L.w_proj
            h = _layer_norm(x, L.ln2_w, L.ln2_b)
            x += _gelu_tanh(h @ L.w_fc) @ L.w_out
        cache.length += T
        cache.pos += T
        return _layer_norm(x[:, -1], self.lnf_w, self.lnf_b) @ self.head


class NumpyCache:
    """Keys (transposed) and values per layer with a sliding window of ``context`` positions."""

    def __init__(self, cfg: ModelConfig, batch: int):
        hd = cfg.d_model // cfg.n_head
        self.window = cfg.context
        self.kt = [np.zeros((batch, cfg.n_head, hd, cfg.context), np.float32) for _ in range(cfg.n_layer)]
        self.v = [np.zeros((batch, cfg.n_head, cfg.context, hd), np.float32) for _ in range(cfg.n_layer)]
        self.length = 0  # filled slots
        self.pos = 0     # absolute position of the next token (for rotary angles)

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
