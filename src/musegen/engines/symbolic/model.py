"""A small decoder-only transformer over music tokens, with a KV cache.

Pre-norm GPT blocks with rotary position embeddings, so that a sliding-window
KV cache stays valid when generation runs past the training context: only
relative distances matter, and they never exceed ``context``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from musegen.engines.symbolic.config import ModelConfig  # noqa: F401  (re-exported)


def _inv_freq(head_dim: int, base: float) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels; x (B, H, T, D), cos/sin (T, D/2)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=False)
        self.out = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, cache=None):
        """x (B, T, C).  ``cache`` is ``(k, v, length)`` buffers for decoding, or None."""
        B, T, C = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
        if cache is None:
            # no attention dropout: on CPU it forces SDPA's slow math path (about 1.6x per step)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            kbuf, vbuf, n = cache
            kbuf[:, :, n:n + T] = k
            vbuf[:, :, n:n + T] = v
            k_all, v_all = kbuf[:, :, : n + T], vbuf[:, :, : n + T]
            if T == 1:
                y = F.scaled_dot_product_attention(q, k_all, v_all)
            else:  # prefill: causal over the new block, full view of the past
                mask = torch.ones(T, n + T, dtype=torch.bool, device=x.device).tril(diagonal=n)
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + self.drop(self.proj(y))
        x = x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh")))
        return x


class MusicTransformer(nn.Module):
    """GPT-style language model over token ids."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.n_head or (cfg.d_model // cfg.n_head) % 2:
            raise ValueError("d_model must split into an even head size")
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied embeddings: fewer parameters, better small-model LM
        self.register_buffer("inv_freq", _inv_freq(cfg.d_model // cfg.n_head, cfg.rope_base), persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("out.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def _rope(self, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin (length, head_dim/2) for absolute positions start..start+length-1."""
        pos = torch.arange(start, start + length, dtype=torch.float32, device=self.inv_freq.device)
        ang = torch.outer(pos, self.inv_freq)
        dt = self.tok.weight.dtype
        return ang.cos().to(dt), ang.sin().to(dt)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Training/scoring forward.  idx (B, T) -> logits (B, T, V) [, mean CE loss]."""
        T = idx.shape[1]
        if T > self.cfg.context:
            raise ValueError(f"sequence of {T} tokens exceeds the context of {self.cfg.context}")
        x = self.drop(self.tok(idx))
        cos, sin = self._rope(0, T)
        for blk in self.blocks:
            x = blk(x, cos, sin)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    # -- incremental decoding --------------------------------------------------
    def new_cache(self, batch: int) -> "KVCache":
        return KVCache(self, batch)

    @torch.inference_mode()
    def step(self, idx: torch.Tensor, cache: "KVCache") -> torch.Tensor:
        """Feed new tokens idx (B, T) through the cache; logits of the last position (B, V).

        Written with functional ops on the raw weights: at batch 1 a decode step
        is dominated by per-call overhead, and module dispatch doubles it.
        """
        B, T = idx.shape
        cache.make_room(T)
        n, pos = cache.length, cache.pos
        cfg = self.cfg
        C, H = cfg.d_model, cfg.n_head
        D = C // H
        cos, sin = self._rope(pos, T)
        x = F.embedding(idx, self.tok.weight)
        mask = None
        if T > 1:
            mask = torch.ones(T, n + T, dtype=torch.bool, device=x.device).tril(diagonal=n)
        for i, blk in enumerate(self.blocks):
            h = F.layer_norm(x, (C,), blk.ln1.weight, blk.ln1.bias)
            qkv = F.linear(h, blk.qkv.weight).view(B, T, 3, H, D)
            qk = qkv[:, :, :2].permute(2, 0, 3, 1, 4)  # (2, B, H, T, D): rotate q and k together
            qk = _apply_rope(qk, cos, sin)
            kbuf, vbuf = cache.k[i], cache.v[i]
            kbuf[:, :, n:n + T] = qk[1]
            vbuf[:, :, n:n + T] = qkv[:, :, 2].transpose(1, 2)
            y = F.scaled_dot_product_attention(qk[0], kbuf[:, :, : n + T], vbuf[:, :, : n + T], attn_mask=mask)
            x = x + F.linear(y.transpose(1, 2).reshape(B, T, C), blk.proj.weight)
            h = F.layer_norm(x, (C,), blk.ln2.weight, blk.ln2.bias)
            x = x + F.linear(F.gelu(F.linear(h, blk.fc.weight), approximate="tanh"), blk.out.weight)
        cache.length += T
        cache.pos += T
        x = F.layer_norm(x[:, -1], (C,), self.ln_f.weight, self.ln_f.bias)
        return F.linear(x, self.tok.weight)


class KVCache:
    """Preallocated keys/values per layer with a sliding window of ``context`` positions."""

    def __init__(self, model: MusicTransformer, batch: int):
        cfg = model.cfg
        hd = cfg.d_model // cfg.n_head
        dev, dt = model.tok.weight.device, model.tok.weight.dtype
        self.window = cfg.context
        shape = (batch, cfg.n_head, cfg.context, hd)
        self.k = [torch.zeros(shape, device=dev, dtype=dt) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=dev, dtype=dt) for _ in range(cfg.n_layer)]
        self.length = 0  # filled slots
        self.pos = 0     # absolute position of the next token (for rotary angles)

    def make_room(self, t: int) -> None:
        if t > self.window:
            raise ValueError(f"cannot feed {t} tokens at once into a {self.window}-token window")
        if self.length + t > self.window:
            # keep the most recent half window: relative distances stay within training range
            keep = max(0, self.window // 2 - t)
            drop = self.length - keep
            for buf in self.k + self.v:
                buf[:, :, :keep] = buf[:, :, drop:self.length].clone()
            self.length = keep
