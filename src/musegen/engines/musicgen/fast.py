"""MusicGen's decoding loop, without the overhead of the generic ``generate()``.

transformers' ``MusicgenForConditionalGeneration.generate`` spends a large
part of each step outside the model's arithmetic: it grows the key/value
cache by concatenation (a copy of the whole cache per layer per step), builds
attention masks, re-projects the text conditioning, re-applies the delay
pattern to the whole sequence and runs its generic bookkeeping (it even runs
the prompt's forward pass twice).  :class:`FastDecoder` runs the same model
weights through the same operations in the same order (the same matrix
shapes, attention calls and logits processors), so for the same inputs and
random generator it samples the same tokens, but with:

- a static key/value cache written in place (no per-step copies);
- cross-attention keys and values computed once per generation;
- the classifier-free-guidance pair (conditional and unconditional rows)
  in one batch, the token embeddings computed once for both;
- the delay pattern applied one column at a time;
- no masks or cache objects built per step.

It decodes both MusicGen (text through cross-attention) and MusicGen-Melody
(chroma and text as a prefix of the decoder's sequence).  The ``fused`` and
``native`` kernels (:data:`KERNELS`; the engine's default on x86 CPUs is
``native``) regroup the arithmetic to read fewer bytes and run less between
the products, at the price of bit-identity with ``generate()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from musegen.errors import ParameterError


#: "exact": the same matrix products as transformers (bit-identical logits);
#: "fused": the same model with its arithmetic regrouped to read fewer bytes per step: the
#: cross-attention folded into the text's keys and values (or, for the unconditional rows,
#: computed once), and on the CPU from 4 rows up oneDNN products on weights packed once per
#: batch size with q/k/v and the codebook heads fused (logits within ~1e-5 of the exact ones);
#: "native": "fused", with each step of up to 8 rows (4 items with guidance) run by a compiled
#: step (native/step.cpp, built on first use; CPU, float32; needs a C++ compiler and ninja).
#: The engine's default, "auto", is "native" on x86 CPUs in float32 and "exact" on GPUs.
KERNELS = ("exact", "fused", "native")


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn, as transformers' processors do it (same order).

    Attributes
    ----------
    guidance_scale : float
        Classifier-free guidance; ``<= 1`` runs no unconditional pass.
    temperature : float
    top_k : int
        Keep the ``k`` most likely tokens; 0 = off.
    top_p : float
        Nucleus sampling mass; 0 or 1 = off.
    """

    guidance_scale: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0

    def __post_init__(self):
        if not self.temperature > 0:
            raise ParameterError(f"temperature must be > 0, got {self.temperature!r}")
        if self.top_k < 0:
            raise ParameterError(f"top_k must be >= 0, got {self.top_k!r}")
        if not 0 <= self.top_p <= 1:
            raise ParameterError(f"top_p must be between 0 and 1, got {self.top_p!r}")
        if not 0 <= self.guidance_scale <= 50:
            raise ParameterError(f"guidance_scale must be between 0 and 50, got {self.guidance_scale!r}")

    @property
    def guided(self) -> bool:
        return self.guidance_scale > 1

    def warpers(self) -> list:
        """transformers' warpers for these settings, in ``generate()``'s order."""
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        out = []
        if self.temperature != 1.0:
            out.append(TemperatureLogitsWarper(float(self.temperature)))
        if self.top_k:
            out.append(TopKLogitsWarper(top_k=int(self.top_k)))
        if 0 < self.top_p < 1.0:
            out.append(TopPLogitsWarper(top_p=float(self.top_p)))
        return out

    def generate_kwargs(self) -> dict:
        """The same settings as keyword arguments of transformers' ``generate()``."""
        return {"do_sample": True, "guidance_scale": self.guidance_scale if self.guided else None,
                "temperature": self.temperature, "top_k": self.top_k,
                "top_p": self.top_p if 0 < self.top_p < 1 else None}


@dataclass
class Conditioning:
    """Conditioning for one batch, rows already doubled for guidance (conditional first).

    Attributes
    ----------
    encoder_states : Tensor or None, shape (rows, S, hidden)
        MusicGen: text states projected to the decoder's width and masked.
    encoder_mask : Tensor or None, shape (rows, 1, 1, S), bool
        Which text positions the cross-attention reads; ``None`` = all.
    prefix : Tensor or None, shape (rows, P, hidden)
        MusicGen-Melody: chroma and text states that precede the audio tokens.
    """

    encoder_states: torch.Tensor | None = None
    encoder_mask: torch.Tensor | None = None
    prefix: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        t = self.encoder_states if self.encoder_states is not None else self.prefix
        return int(t.shape[0])


class FastDecoder:
    """Samples MusicGen audio tokens with a static cache; see the module docstring.

    Parameters
    ----------
    lm : MusicgenForCausalLM or MusicgenMelodyForCausalLM
        ``model.decoder`` of a loaded model (eval mode).
    kernels : {"exact", "fused", "native"}
        ``"exact"`` runs transformers' own matrix products, so the tokens are
        those of ``generate()``.  ``"fused"`` regroups the arithmetic to read
        fewer bytes: each step's cross-attention reads the text's keys and
        values folded into the q and out projections (short texts, few
        items) and runs once for the unconditional rows; on the CPU in
        float32, batches of 4+ rows multiply with weights packed for oneDNN
        (q, k, v as one product, the K heads as one).  ``"native"`` is
        ``"fused"`` with every single-position step of up to 8 rows on the
        CPU in float32 run by a compiled step (:mod:`.native`).  Their logits
        differ from the exact ones by ~1e-6, so a sampled token can differ
        where two candidates are that close.
    """

    def __init__(self, lm, *, kernels: str = "exact"):
        self.lm = lm
        self._packed: dict[tuple[int, int], torch.Tensor] = {}
        self._fused: dict = {}  # layer index or "heads" -> concatenated (weight, bias), for the packed kernels
        self.kernels = kernels
        core = lm.model.decoder
        self.layers = list(core.layers)
        self.embed = list(core.embed_tokens)
        self.positions = core.embed_positions
        self.final_norm = core.layer_norm
        self.heads = list(lm.lm_heads)
        cfg = lm.config
        self.K = int(lm.num_codebooks)
        self.heads_n = int(cfg.num_attention_heads)
        self.hidden = int(cfg.hidden_size)
        self.head_dim = self.hidden // self.heads_n
        self.cross = hasattr(self.layers[0], "encoder_attn")
        self.max_positions = int(cfg.max_position_embeddings)
        self._cache: tuple | None = None

    @property
    def kernels(self) -> str:
        """Arithmetic: ``"exact"`` (default), ``"fused"`` or ``"native"``; see :data:`KERNELS`."""
        return self._kernels

    @kernels.setter
    def kernels(self, value: str) -> None:
        if value not in KERNELS:
            raise ParameterError(f"kernels must be one of {', '.join(KERNELS)}, got {value!r}")
        if value != getattr(self, "_kernels", None):
            self._kernels = value
            self._packed.clear()
            self._fused.clear()

    # -- cache ------------------------------------------------------------------------

    def _caches(self, rows: int, length: int, ref: torch.Tensor):
        if length > self.max_positions:
            raise ParameterError(f"a window of {length} positions does not fit the model's "
                                 f"{self.max_positions}; use a shorter window")
        shape = (rows, self.heads_n, length, self.head_dim)
        c = self._cache
        if c is None or c[0].shape[0] != rows or c[0].shape[2] < length or c[0].dtype != ref.dtype \
                or c[0].device != ref.device:
            # zeros, not empty: the pages are touched here in one sweep instead of being
            # faulted in a position at a time inside the loop (a few ms per step at batch 4)
            keys = [torch.zeros(shape, dtype=ref.dtype, device=ref.device) for _ in self.layers]
            values = [torch.zeros(shape, dtype=ref.dtype, device=ref.device) for _ in self.layers]
            self._cache = c = (keys[0], keys, values)
        return c[1], c[2]

    def release(self) -> None:
        """Free the key/value cache (kept between calls of the same shape)."""
        self._cache = None

    # -- one forward pass -----------------------------------------------------------------

    @staticmethod
    def _norm(m, x):
        return F.layer_norm(x, m.normalized_shape, m.weight, m.bias, m.eps)

    def _heads(self, x, rows, n):
        return x.view(rows, n, self.heads_n, self.head_dim).transpose(1, 2)

    def _linear_fn(self, m: int):
        """The product for ``m`` rows: ``F.linear``, or oneDNN with weights packed for ``m`` rows."""
        if self.kernels == "exact" or m < 4 or self.positions.weights.device.type != "cpu" \
                or self.positions.weights.dtype != torch.float32:
            return F.linear
        packed = self._packed
        if packed and next(iter(packed))[1] != m:
            packed.clear()  # one batch size at a time: packed copies cost as much memory as the weights

        def linear(x, weight, bias):
            p = packed.get((id(weight), m))
            if p is None:
                p = packed[(id(weight), m)] = torch.ops.mkldnn._reorder_linear_weight(weight, m)
            x2 = x.reshape(m, x.shape[-1])
            return torch.ops.mkldnn._linear_pointwise(x2, p, bias, "none", [], "").reshape(*x.shape[:-1], -1)

        return linear

    def _forward(self, x, pos: int, keys, values, cross: "_Cross | None"):
        """Run ``x`` (rows, n, hidden) at positions ``pos .. pos + n`` through every layer."""
        rows, n, _ = x.shape
        fast_cross = cross is not None and cross.fast and n == 1
        end = pos + n
        linear = self._linear_fn(rows) if n == 1 else F.linear
        # the packed kernels run q, k, v as one product and the K heads as one (fewer calls; packing
        # copies the weights anyway); the exact ones keep transformers' separate products
        packed = linear is not F.linear
        for i, layer in enumerate(self.layers):
            sa = layer.self_attn
            res = x
            h = self._norm(layer.self_attn_layer_norm, x)
            if packed:
                qkv = linear(h, *self._fused_weights(i))
                q, k, v = qkv.view(rows, n, 3, self.heads_n, self.head_dim).permute(2, 0, 3, 1, 4)
            else:
                q = self._heads(linear(h, sa.q_proj.weight, sa.q_proj.bias), rows, n)
                k = self._heads(linear(h, sa.k_proj.weight, sa.k_proj.bias), rows, n)
                v = self._heads(linear(h, sa.v_proj.weight, sa.v_proj.bias), rows, n)
            keys[i][:, :, pos:end] = k
            values[i][:, :, pos:end] = v
            if pos == 0:  # the prompt pass attends to its own keys, causally
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0,
                                                   is_causal=n > 1, scale=sa.scaling)
            else:
                a = F.scaled_dot_product_attention(q, keys[i][:, :, :end], values[i][:, :, :end], attn_mask=None,
                                                   dropout_p=0.0, is_causal=False, scale=sa.scaling)
            a = a.transpose(1, 2).contiguous().reshape(rows, n, -1).contiguous()
            x = res + linear(a, sa.out_proj.weight, sa.out_proj.bias)
            if cross is not None:
                res = x
                h = self._norm(layer.encoder_attn_layer_norm, x)
                x = res + (self._cross_step(i, h, cross) if fast_cross
                           else self._cross_attend(i, h, cross.kv[i], cross.mask, linear))
            res = x
            h = self._norm(layer.final_layer_norm, x)
            h = layer.activation_fn(linear(h, layer.fc1.weight, layer.fc1.bias))
            x = res + linear(h, layer.fc2.weight, layer.fc2.bias)
        x = self._norm(self.final_norm, x)
        if packed:
            logits = linear(x, *self._fused_weights("heads")).view(rows, n, self.K, -1).transpose(1, 2)
        else:
            logits = torch.stack([linear(x, hd.weight, hd.bias) for hd in self.heads], dim=1)
        return logits.reshape(-1, *logits.shape[2:])  # (rows * K, n, vocab)

    def _cross_attend(self, i, h, kv, mask, linear):
        """Layer ``i``'s cross-attention as transformers runs it: (rows, n, hidden)."""
        ca = self.layers[i].encoder_attn
        rows, n, _ = h.shape
        q = self._heads(linear(h, ca.q_proj.weight, ca.q_proj.bias), rows, n)
        a = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask, dropout_p=0.0,
                                           is_causal=False, scale=ca.scaling)
        a = a.transpose(1, 2).contiguous().reshape(rows, n, -1).contiguous()
        return linear(a, ca.out_proj.weight, ca.out_proj.bias)

    def _cross_step(self, i, h, cross: "_Cross"):
        """Layer ``i``'s cross-attention for one position, with the ``fused`` kernels' shortcuts.

        Rows from ``cross.live`` on (the unconditional ones: every key alike)
        give the same output for any query, computed once.  The live rows run
        the usual products on their own or, where that reads fewer bytes, the
        folded form: scores ``h @ A + a0``, output ``softmax(scores) @ B + bias``.
        """
        ca = self.layers[i].encoder_attn
        live = cross.live
        hl = h[:live]
        if cross.folded is not None:
            At, a0, Bt = cross.folded[i]
            s = torch.baddbmm(a0, hl, At.transpose(1, 2)).view(live, self.heads_n, -1)
            if cross.live_add is not None:
                s = s + cross.live_add[:, None, :]
            p = F.softmax(s, dim=-1).view(live, 1, -1)
            B = Bt.transpose(1, 2)
            out = torch.bmm(p, B) if ca.out_proj.bias is None else torch.baddbmm(ca.out_proj.bias, p, B)
        else:
            ck, cv = cross.kv[i]
            out = self._cross_attend(i, hl, (ck[:live], cv[:live]),
                                     None if cross.mask is None else cross.mask[:live], F.linear)
        if live == h.shape[0]:
            return out
        c = cross.const[i]
        return torch.cat([out, c.expand(h.shape[0] - live, -1, -1)])

    def _native_step(self, cross: "_Cross | None", rows: int, keys, values):
        """The compiled step (``native/step.cpp``) for this job, or None where it does not apply.

        It applies on the CPU in float32 to up to 8 rows (4 items with
        guidance) of a model with GELU layers.
        """
        p0 = self.positions.weights
        norms = [m for layer in self.layers for m in (layer.self_attn_layer_norm, layer.final_layer_norm)
                 + ((layer.encoder_attn_layer_norm,) if cross is not None else ())]
        eps = {float(m.eps) for m in norms + [self.final_norm]}  # step.cpp takes one
        if rows > 8 or p0.device.type != "cpu" or p0.dtype != torch.float32 or len(eps) != 1 \
                or getattr(self.lm.config, "activation_function", "gelu") != "gelu":
            return None
        from musegen.engines.musicgen import native

        module = native.load()
        live = rows if cross is None else cross.live
        cross_scale = float(self.layers[0].encoder_attn.scaling) if cross is not None else 1.0
        return module.Step([self._native_layer(i, cross, rows, keys[i], values[i]) for i in range(len(self.layers))],
                           _parameters(self.final_norm), [_parameters(hd) for hd in self.heads],
                           attention_heads=self.heads_n, rows=rows, live=live, eps=eps.pop(),
                           self_scale=float(self.layers[0].self_attn.scaling), cross_scale=cross_scale)

    def _native_layer(self, i: int, cross: "_Cross | None", rows: int, keys, values) -> dict:
        """Layer ``i``'s tensors for the compiled step, by the names ``step.cpp`` reads (its ``kLayerNames``).

        The model's own weights are named by their paths in the layer
        (``self_attn.q_proj.weight``), the rest after what they hold.  The
        caches are passed as they are: the step writes each position into them.
        """
        layer = self.layers[i]
        named = {"self_attn.cache_keys": keys, "self_attn.cache_values": values}
        for path in ("self_attn_layer_norm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                     "self_attn.out_proj", "final_layer_norm", "fc1", "fc2"):
            named.update(_parameters(layer.get_submodule(path), path))
        if cross is not None:
            live = cross.live
            named.update(_parameters(layer.encoder_attn_layer_norm, "encoder_attn_layer_norm"))
            named["encoder_attn.out_proj.bias"] = _plain(layer.encoder_attn.out_proj.bias)
            named["encoder_attn.padding"] = _plain(cross.live_add)
            if cross.const is not None:
                named["encoder_attn.constant"] = _plain(cross.const[i].reshape(rows - live, -1))
            if cross.folded is not None:
                At, a0, Bt = cross.folded[i]
                named.update({"encoder_attn.folded_scores": At, "encoder_attn.folded_scores_bias":
                              _plain(a0.reshape(live, -1)), "encoder_attn.folded_values": Bt})
            else:
                ck, cv = cross.kv[i]
                named.update(_parameters(layer.encoder_attn.q_proj, "encoder_attn.q_proj"))
                named.update({"encoder_attn.out_proj.weight": _plain(layer.encoder_attn.out_proj.weight),
                              "encoder_attn.text_keys": _plain(ck), "encoder_attn.text_values": _plain(cv)})
        return named

    def _fused_weights(self, which):
        """``(weight, bias)`` of layer ``which``'s q, k, v projections, or of the heads, concatenated."""
        f = self._fused.get(which)
        if f is None:
            mods = self.heads if which == "heads" else [getattr(self.layers[which].self_attn, name)
                                                        for name in ("q_proj", "k_proj", "v_proj")]
            bias = None if mods[0].bias is None else torch.cat([m.bias for m in mods])
            f = self._fused[which] = (torch.cat([m.weight for m in mods]), bias)
        return f

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(rows, K, n) token ids -> (rows, n, hidden), summed over codebooks in order."""
        return sum(self.embed[k](ids[:, k]) for k in range(self.K))

    def _cross_plan(self, cond: Conditioning) -> "_Cross | None":
        """Cross-attention keys and values of one job, and the ``fused`` kernels' precomputed forms."""
        if not self.cross or cond.encoder_states is None:
            return None
        kv = self._cross_kv(cond.encoder_states)
        if self.kernels == "exact":
            return _Cross(kv=kv, mask=cond.encoder_mask)
        rows = cond.rows
        mask = cond.encoder_mask
        # trailing rows whose keys and values are alike at every position (the unconditional rows:
        # zero states) attend the same whatever the query: their output is computed once
        live = rows
        while live > 1 and all(_alike(k[live - 1]) and _alike(v[live - 1]) for k, v in kv):
            live -= 1
        const = None
        if live < rows:
            zeros = torch.zeros(rows - live, 1, self.hidden, dtype=kv[0][0].dtype, device=kv[0][0].device)
            const = [self._cross_attend(i, zeros, (k[live:], v[live:]), None if mask is None else mask[live:],
                                        F.linear) for i, (k, v) in enumerate(kv)]
        heads, length = kv[0][0].shape[1], kv[0][0].shape[2]
        folded = live_add = None
        # the folded form reads live * heads * S * hidden * 2 numbers per layer instead of the
        # q and out projections' 2 * hidden * hidden: worth it for short texts and few items
        if live * heads * length < self.hidden:
            folded = [self._fold(i, k[:live], v[:live]) for i, (k, v) in enumerate(kv)]
        if mask is not None and not bool(mask[:live].all()):  # padded texts among the live rows
            m = mask[:live, 0, 0]  # (live, S), True = attend
            live_add = torch.zeros(m.shape, dtype=kv[0][0].dtype, device=m.device).masked_fill(~m, float("-inf"))
        return _Cross(kv=kv, mask=mask, fast=True, live=live, const=const, folded=folded, live_add=live_add)

    def _fold(self, i: int, k: torch.Tensor, v: torch.Tensor):
        """Layer ``i``'s cross-attention folded into the keys and values of ``live`` rows.

        With ``k``, ``v`` of shape (live, heads, S, head_dim): ``A`` (live, hidden,
        heads*S) = scale * Wq_h^T K_h^T, ``a0`` (live, 1, heads*S) = scale * bq_h K_h^T
        and ``B`` (live, heads*S, hidden) = V_h Wo_h^T, so that the scores are
        ``h @ A + a0`` and the output ``softmax(scores per head) @ B + bo``.
        Returns ``(A^T, a0, B^T)``, each contiguous: a product then reads
        each row of a transposed matrix in one sweep, as it reads a weight.
        """
        ca = self.layers[i].encoder_attn
        live, heads, length, hd = k.shape
        kf, vf = k.float(), v.float()
        wq = ca.q_proj.weight.float().view(heads, hd, -1)
        wo = ca.out_proj.weight.float().view(-1, heads, hd)
        scale = float(ca.scaling)
        At = torch.einsum("hdk,lhsd->lhsk", wq, kf).mul_(scale).reshape(live, heads * length, -1)
        if ca.q_proj.bias is None:
            a0 = torch.zeros(live, 1, heads * length, device=k.device)
        else:
            a0 = torch.einsum("hd,lhsd->lhs", ca.q_proj.bias.float().view(heads, hd), kf).mul_(scale)
            a0 = a0.reshape(live, 1, heads * length)
        Bt = torch.einsum("lhsd,jhd->ljhs", vf, wo).reshape(live, -1, heads * length)
        dt = k.dtype
        return At.to(dt).contiguous(), a0.to(dt).contiguous(), Bt.to(dt).contiguous()

    def _cross_kv(self, states: torch.Tensor):
        out = []
        rows, s, _ = states.shape
        for layer in self.layers:
            ca = layer.encoder_attn
            k = F.linear(states, ca.k_proj.weight, ca.k_proj.bias).view(rows, s, -1, self.head_dim).transpose(1, 2)
            v = F.linear(states, ca.v_proj.weight, ca.v_proj.bias).view(rows, s, -1, self.head_dim).transpose(1, 2)
            out.append((k, v))
        return out

    # -- sampling ---------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        cond: Conditioning,
        *,
        batch: int,
        new_frames: int,
        sampling: Sampling,
        generator: "torch.Generator | Sequence[torch.Generator] | None" = None,
        prompt: torch.Tensor | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Sample ``new_frames`` frames of audio codes after an optional prompt.

        Parameters
        ----------
        cond : Conditioning
            ``2 * batch`` rows with guidance, else ``batch``.
        batch : int
            Items generated together.
        new_frames : int
            Frames to add (50 per second for the 32 kHz models).
        sampling : Sampling
        generator : torch.Generator or sequence of them, optional
            Source of the sampling noise (the global one if ``None``); the
            same generator state gives the same tokens as ``generate()``
            seeded with it.  A sequence gives one generator per item: each
            run of consecutive items with the same generator is drawn by one
            ``multinomial`` call of its own, so requests batched together
            each draw from their own generator exactly as they would alone.
        prompt : LongTensor, shape (batch, K, T), optional
            Audio codes to continue.
        progress : callable, optional
            ``progress(done, total)`` after each step.

        Returns
        -------
        LongTensor, shape (batch, K, T + new_frames)
            The prompt's codes followed by the new ones (delay pattern undone).
        """
        K = self.K
        rows = 2 * batch if sampling.guided else batch
        if cond.rows != rows:
            raise ParameterError(f"conditioning has {cond.rows} rows, expected {rows}")
        pattern, start, max_length = self._pattern(batch, new_frames, prompt)
        seq = pattern.clone()
        prefix_len = 0 if cond.prefix is None else int(cond.prefix.shape[1])
        keys, values = self._caches(rows, prefix_len + max_length, self.positions.weights)
        cross = self._cross_plan(cond)
        warpers = sampling.warpers()
        bk = batch * K
        draws = _draw_runs(generator, batch, K)

        def embed(cols: torch.Tensor) -> torch.Tensor:  # (batch*K, n) -> (rows, n, hidden)
            e = self._embed(cols.reshape(batch, K, -1))
            return e.repeat(2, 1, 1) if sampling.guided else e

        def sample(logits: torch.Tensor) -> torch.Tensor:
            scores = logits[:, -1].to(copy=True, dtype=torch.float32)
            if sampling.guided:
                c, u = scores.split(bk, dim=0)
                scores = u + (c - u) * sampling.guidance_scale
            for w in warpers:
                scores = w(None, scores)
            probs = F.softmax(scores, dim=-1)
            if len(draws) == 1:
                return torch.multinomial(probs, num_samples=1, generator=draws[0][0]).squeeze(1)
            return torch.cat([torch.multinomial(probs[a:b], num_samples=1, generator=g).squeeze(1)
                              for g, a, b in draws])

        logits = self._prompt_pass(cond, seq[:, :start], batch, sampling.guided, keys, values, cross)
        native = self._native_step(cross, rows, keys, values) if self.kernels == "native" else None
        total = max_length - start
        for step, t in enumerate(range(start, max_length)):
            tok = sample(logits)
            col = pattern[:, t]
            seq[:, t] = torch.where(col == -1, tok, col)
            if progress is not None:
                progress(step + 1, total)
            if t + 1 == max_length:
                break
            x = embed(seq[:, t:t + 1]) + self.positions.weights[prefix_len + t:prefix_len + t + 1]
            if native is not None:
                logits = native.step(x, prefix_len + t).view(rows * K, 1, -1)
            else:
                logits = self._forward(x, prefix_len + t, keys, values, cross)
        # undo the delay pattern as generate() does: drop the start/pad tokens
        return seq[seq != self._start_id()].reshape(batch, K, -1)

    @torch.inference_mode()
    def first_logits(self, cond: Conditioning, *, batch: int, guided: bool,
                     prompt: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the first sampled position, before guidance: (rows, K, vocab) float32.

        With guidance the conditional rows come first.  For tests and
        diagnostics: it shows what the conditioning does to the model.
        """
        rows = 2 * batch if guided else batch
        pattern, start, max_length = self._pattern(batch, self.K, prompt)
        prefix_len = 0 if cond.prefix is None else int(cond.prefix.shape[1])
        keys, values = self._caches(rows, prefix_len + max_length, self.positions.weights)
        logits = self._prompt_pass(cond, pattern[:, :start], batch, guided, keys, values, self._cross_plan(cond))
        return logits[:, -1].float().reshape(rows, self.K, -1)

    # -- pieces of generate() ---------------------------------------------------------------

    def _start_id(self) -> int:
        gc = self.lm.generation_config
        return int(gc.decoder_start_token_id if gc.decoder_start_token_id is not None else self.lm.config.bos_token_id)

    def _pattern(self, batch: int, new_frames: int, prompt: torch.Tensor | None):
        """The delay pattern of a window: ``(pattern, first open position, length)``."""
        K = self.K
        device = self.positions.weights.device
        start_id = self._start_id()
        t_prompt = 0 if prompt is None else int(prompt.shape[-1])
        first = torch.full((batch * K, 1), start_id, dtype=torch.long, device=device)
        ids = first if prompt is None else torch.cat([first, prompt.reshape(batch * K, t_prompt).to(device)], dim=-1)
        max_length = t_prompt + new_frames + K
        _, pattern = self.lm.build_delay_pattern_mask(ids, pad_token_id=start_id, max_length=max_length)
        open_ = (pattern[0] == -1).nonzero()
        start = int(open_[0, 0]) if len(open_) else max_length
        return pattern, start, max_length

    def _prompt_pass(self, cond, cols, batch, guided, keys, values, cross):
        """Prefix (melody), start token and prompt codes through the model at once."""
        x = self._embed(cols.reshape(batch, self.K, -1))
        if guided:
            x = x.repeat(2, 1, 1)
        if cond.prefix is not None:
            x = torch.cat([cond.prefix.to(x.dtype), x], dim=1)
        n = x.shape[1]
        x = x + self.positions.weights[:n]
        return self._forward(x, 0, keys, values, cross)


@dataclass
class _Cross:
    """One job's cross-attention: keys and values per layer, and the ``fused`` kernels' shortcuts."""

    kv: list  # per layer (keys, values), each (rows, heads, S, head_dim)
    mask: torch.Tensor | None  # (rows, 1, 1, S) bool, True = attend
    fast: bool = False  # the fused kernels: steps take _cross_step's shortcuts
    live: int = 0  # rows [live:] attend alike whatever the query
    const: list | None = None  # per layer, their output (rows - live, 1, hidden)
    folded: list | None = None  # per layer (A^T, a0, B^T) of the live rows, see FastDecoder._fold
    live_add: torch.Tensor | None = None  # (live, S) additive mask of the live rows' padding, -inf = masked


def _plain(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` as the compiled step reads it: contiguous, outside autograd (None stays None)."""
    return None if t is None else t.detach().contiguous()


def _parameters(module, path: str = "") -> dict:
    """A linear layer's or a layer norm's ``weight`` and ``bias`` (None where it has none), named ``path.weight``..."""
    prefix = f"{path}." if path else ""
    return {f"{prefix}weight": _plain(module.weight), f"{prefix}bias": _plain(module.bias)}


def _alike(t: torch.Tensor) -> bool:
    """Whether every position of ``t`` (heads, S, head_dim) holds the same vector."""
    return bool(torch.equal(t, t[:, :1].expand_as(t)))


def _draw_runs(generator, batch: int, K: int) -> list[tuple["torch.Generator | None", int, int]]:
    """``(generator, first row, end row)`` of each sampling call: rows are ``item * K + codebook``.

    One generator (or ``None``) draws every row in one call, as ``generate()``
    does; a sequence of ``batch`` generators draws each run of consecutive
    items that share a generator in a call of its own.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return [(generator, 0, batch * K)]
    gens = list(generator)
    if len(gens) != batch:
        raise ParameterError(f"{len(gens)} generators for a batch of {batch}")
    runs: list[tuple[torch.Generator | None, int, int]] = []
    for i, g in enumerate(gens):
        if runs and runs[-1][0] is g:
            runs[-1] = (g, runs[-1][1], (i + 1) * K)
        else:
            runs.append((g, i * K, (i + 1) * K))
    return runs
