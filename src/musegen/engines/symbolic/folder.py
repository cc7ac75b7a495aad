"""Train or fine-tune the symbolic model on a user's folder of MIDI files."""

from __future__ import annotations

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
    """Fine-tune (``base`` a checkpoint, ``"shipped"`` the packaged model) or train from scratch (``None``)
    on every MIDI file in ``paths``, under the style token ``style``; see
    :func:`musegen.engines.symbolic.finetune.finetune`.
    """
    from musegen.engines.symbolic.finetune import finetune
    from musegen.engines.symbolic.tokens import MODEL_STYLES

    if style not in MODEL_STYLES:
        raise ParameterError(f"style must be one of {', '.join(MODEL_STYLES)}, got {style!r}")
    files = find_midi_files(paths)
    if len(files) < 2:
        raise InputError(f"training needs at least 2 MIDI files; found {len(files)} in {', '.join(map(str, paths))}")
    summary = finetune(files, out_dir, model_style=style, base=None if base == "shipped" else base,
                       from_scratch=base is None, steps=steps, minutes=minutes, batch=batch, lr=lr,
                       patience=patience, seed=seed, log=log)
    summary.update(files=len(files), out=str(out_dir))
    return summary
