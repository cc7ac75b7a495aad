"""Train the embedded model on a user's MIDI files: all weights, low-rank adapters, or from scratch.

Both ``musegen train`` (:mod:`musegen.engines.symbolic.folder`) and
``musegen style learn`` (:mod:`musegen.style.learn`) run :func:`finetune`.

``method="full"`` trains every weight; ``method="lora"`` freezes the base
and trains rank-``r`` adapters on each block's four projections (about 4% of
the weights), merged into the base weights when saved, so a style's
checkpoint loads like any other.  ``scripts/eval_style.py`` measures both on a
held-out collection; the default is the one that measured better there.
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from musegen.errors import InputError

METHODS = ("full", "lora")
DEFAULT_METHOD = "full"
ADAPTED = ("qkv", "proj", "fc", "out")


class LoRALinear(nn.Module):
    """``base(x) + (alpha / rank) * x A^T B^T`` with ``base`` frozen; B starts at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        base.weight.requires_grad_(False)
        self.scale = alpha / rank
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=False)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * (self.b @ self.a))
        return out


def add_adapters(model: nn.Module, rank: int = 16, alpha: float = 32.0) -> nn.Module:
    """Freeze ``model`` and wrap each block's projections in :class:`LoRALinear` (in place)."""
    for p in model.parameters():
        p.requires_grad_(False)
    for blk in model.blocks:
        for name in ADAPTED:
            setattr(blk, name, LoRALinear(getattr(blk, name), rank, alpha))
    return model


def merge_adapters(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every adapter folded into its base weights."""
    plain = copy.deepcopy(model)
    for blk in plain.blocks:
        for name in ADAPTED:
            layer = getattr(blk, name)
            if isinstance(layer, LoRALinear):
                setattr(blk, name, layer.merged())
    return plain


def split_files(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """``(train, valid)``: about one file in six for validation (at least one), chosen by a hash
    of the file name so a rerun splits the same way."""
    rank = sorted(files, key=lambda f: hashlib.sha256(f.name.encode()).hexdigest())
    n_valid = max(1, round(len(files) / 6))
    return rank[n_valid:], rank[:n_valid]


def finetune(
    files: list[Path],
    out_dir: str | Path,
    *,
    model_style: str | None,
    base: str | Path | None = None,
    from_scratch: bool = False,
    name: str | None = None,
    method: str = DEFAULT_METHOD,
    steps: int = 200,
    minutes: float = 5.0,
    batch: int = 12,
    lr: float | None = None,
    patience: int = 3,
    seed: int = 0,
    log: Callable[[dict], None] | None = None,
) -> dict:
    """Fine-tune ``base`` (default: the shipped model) on ``files``, or train a new model
    (``from_scratch``, all weights); the best checkpoint by validation loss goes to ``out_dir``.
    Returns the training summary.  ``name`` goes into the checkpoint's config (default: the folder's).

    ``model_style`` is the style token the files are learned under; ``None`` picks the one
    under which the base model already predicts the validation files best, among those a
    preset's style selects (:data:`.tokens.STYLE_TO_MODEL`).
    """
    from musegen.engines.symbolic.checkpoint import load_checkpoint
    from musegen.engines.symbolic.data import WindowSampler, build_corpus
    from musegen.engines.symbolic.model import ModelConfig, MusicTransformer
    from musegen.engines.symbolic.tokens import STYLE_TO_MODEL, build_tokenizer, model_styles
    from musegen.engines.symbolic.train import TrainConfig, evaluate, train

    if method not in METHODS:
        raise InputError(f"fine-tune method must be one of {', '.join(METHODS)}, got {method!r}")
    if from_scratch:
        if method != "full":
            raise InputError("a model trained from scratch trains all its weights (method 'full')")
        tokenizer = build_tokenizer()
        model, config = MusicTransformer(ModelConfig(vocab_size=len(tokenizer))), {"name": "scratch"}
    else:
        model, tokenizer, config = load_checkpoint(base)
    layout = None
    if config.get("extra_tokens"):  # a version-3 base: fine-tune it in its own layouts (.layout)
        from musegen.engines.symbolic.layout import Layout

        layout = Layout(tokenizer)
    styles = model_styles(tokenizer)
    train_files, valid_files = split_files(files)
    pad = tokenizer.vocab["PAD_None"]
    # tokenized under no style label: "pop" would force 4/4 (POP909's declared meters are wrong),
    # and a user's files keep the meters they declare; the style token is set below
    train_c = build_corpus(tokenizer, [(f.stem, str(f), "") for f in train_files], log=None)
    valid_c = build_corpus(tokenizer, [(f.stem, str(f), "") for f in valid_files], log=None)
    if len(train_c) == 0 or len(valid_c) == 0:
        raise InputError("the files hold too few usable notes to fine-tune on")
    # the base model's loss on the validation files, per style token: the figure to beat
    losses = {}
    # a style no preset style selects (version 2's drums, piano, lieder, leadsheet) would leave the
    # learned preset unable to ask for the token its files were learned under
    for style in ([model_style] if model_style else [s for s in styles if s in STYLE_TO_MODEL.values()]):
        code = styles.index(style)
        train_c.style[:] = code
        valid_c.style[:] = code
        torch.manual_seed(seed)
        losses[style] = evaluate(model, WindowSampler(tokenizer, valid_c, model.cfg.context, seed=seed + 1,
                                                      transpose=False,
                                                      layout=layout.plain() if layout else None), 4, batch, pad)
    model_style = min(losses, key=losses.get)
    train_c.style[:] = valid_c.style[:] = styles.index(model_style)
    base_valid = losses[model_style]
    if method == "lora":
        add_adapters(model)
        export = merge_adapters
        lr = lr or 2e-3
    else:
        export = None
        lr = lr or 3e-4
    model.train()
    tc = TrainConfig(steps=steps, batch=batch, lr=lr, min_lr=lr / 10, warmup=min(20, max(1, steps // 10)),
                     eval_every=max(5, steps // 10), eval_batches=4, patience=patience,
                     time_limit_s=minutes * 60, seed=seed, bf16=_has_fast_bf16())
    summary = train(tokenizer, train_c, valid_c, out_dir, init=model, train_cfg=tc, export=export, log=log,
                    layout=layout,
                    meta={"name": name or Path(out_dir).name, "base": "none" if from_scratch else str(base or "shipped"),
                          "base_model": config.get("name", "musegen-symbolic"), "method": method,
                          "style": model_style, "files": len(files)})
    if summary.get("signal") is not None:
        # a fine-tune cut short by SIGTERM/SIGINT is no model (it has no state to resume from):
        # the signal goes on, so the caller removes the folder being built and the CLI says
        # "terminated" or "interrupted", as it would have had the trainer not caught it
        import signal

        signal.raise_signal(summary["signal"])
    summary.pop("history", None)
    summary.update(method=method, model_style=model_style, base_valid_loss=base_valid,
                   base_valid_loss_by_style={k: round(v, 4) for k, v in losses.items()},
                   train_files=len(train_files), valid_files=len(valid_files), train_pieces=len(train_c),
                   valid_pieces=len(valid_c))
    return summary


def _has_fast_bf16() -> bool:
    """bfloat16 autocast pays off on CPUs with AMX or AVX512-BF16 (about 1.8x here), not elsewhere."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
