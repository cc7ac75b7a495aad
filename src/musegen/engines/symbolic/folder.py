"""Train or fine-tune the symbolic model on a user's folder of MIDI files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

from musegen.errors import InputError, ParameterError

MIDI_SUFFIXES = (".mid", ".midi", ".smf")
MAX_FILES = 20_000


def find_midi_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Every MIDI file in ``paths`` (files, or folders searched recursively), sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(f for f in p.rglob("*") if f.suffix.lower() in MIDI_SUFFIXES and f.is_file())
        elif p.is_file():
            found.append(p)
        else:
            raise InputError(f"{str(p)!r} does not exist")
    found = sorted(set(found))
    if len(found) > MAX_FILES:
        raise ParameterError(f"{len(found)} MIDI files is over the limit of {MAX_FILES}")
    return found


def train_on_folder(
    paths: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    style: str = "pop",
    base: str | os.PathLike[str] | None = "shipped",
    steps: int = 600,
    minutes: float = 10.0,
    batch: int = 16,
    lr: float = 3e-4,
    patience: int = 3,
    seed: int = 0,
    log: Callable[[dict], None] | None = None,
) -> dict:
    """Fine-tune (``base`` a checkpoint, ``"shipped"`` the packaged model) or train from scratch (``None``).

    Files are split by a hash of their path: about 1 in 10 for validation
    (at least one); training stops early when validation loss stops improving.
    """
    from musegen.engines.symbolic.checkpoint import load_checkpoint
    from musegen.engines.symbolic.data import build_corpus
    from musegen.engines.symbolic.model import ModelConfig, MusicTransformer
    from musegen.engines.symbolic.tokens import MODEL_STYLES, build_tokenizer
    from musegen.engines.symbolic.train import TrainConfig, train

    if style not in MODEL_STYLES:
        raise ParameterError(f"style must be one of {', '.join(MODEL_STYLES)}, got {style!r}")
    files = find_midi_files(paths)
    if len(files) < 2:
        raise InputError(f"training needs at least 2 MIDI files; found {len(files)} in {', '.join(map(str, paths))}")
    if base is not None:
        model, tokenizer, _ = load_checkpoint(None if base == "shipped" else base)
        model.train()
    else:
        tokenizer = build_tokenizer()
        model = MusicTransformer(ModelConfig(vocab_size=len(tokenizer)))
    rank = sorted(files, key=lambda f: hashlib.sha256(str(f).encode()).hexdigest())
    n_valid = max(1, len(files) // 10)
    valid_files, train_files = rank[:n_valid], rank[n_valid:]
    items = lambda fs: [(f.stem, str(f), style) for f in fs]  # noqa: E731
    train_c = build_corpus(tokenizer, items(train_files), log=None)
    valid_c = build_corpus(tokenizer, items(valid_files), log=None)
    if len(train_c) == 0:
        raise InputError("none of the training files holds usable notes")
    tc = TrainConfig(steps=steps, batch=batch, lr=lr, min_lr=lr / 10, warmup=min(50, steps // 10),
                     eval_every=max(10, steps // 12), eval_batches=4, patience=patience,
                     time_limit_s=minutes * 60, seed=seed)
    summary = train(tokenizer, train_c, valid_c if len(valid_c) else None, out_dir, init=model, train_cfg=tc,
                    meta={"name": Path(out_dir).name, "base": str(base), "style": style,
                          "files": len(files), "train_pieces": len(train_c), "valid_pieces": len(valid_c)},
                    log=log)
    summary.pop("history", None)
    summary.update(files=len(files), train_pieces=len(train_c), valid_pieces=len(valid_c), out=str(out_dir))
    return summary
