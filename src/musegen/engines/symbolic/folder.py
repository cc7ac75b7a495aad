"""Train or fine-tune the symbolic model on a user's folder of MIDI files."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from musegen.engines.symbolic.checkpoint import CONFIG, TOKENIZER, WEIGHTS
from musegen.errors import EngineError, InputError, OutputError, ParameterError

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
    final = Path(out_dir)
    old = _check_model_out(final, files, None if base in (None, "shipped") else base)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = final.parent / f".{final.name}.{secrets.token_hex(4)}.part"
        work.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create the model folder {str(final)!r}: {exc.strerror or exc}") from None
    # built in a hidden folder and renamed into place: an interrupted run leaves no half-made model
    try:
        summary = finetune(files, work, model_style=style, base=None if base == "shipped" else base,
                           from_scratch=base is None, steps=steps, minutes=minutes, batch=batch, lr=lr,
                           patience=patience, seed=seed, log=log, name=final.name)
        if not (work / WEIGHTS).is_file():
            raise EngineError("training gave no usable checkpoint (the validation loss never improved)")
        aside = None
        if old:
            aside = final.parent / f".{final.name}.{secrets.token_hex(4)}.old"
            os.replace(final, aside)
        try:
            os.replace(work, final)
        except OSError as exc:
            if aside is not None:
                os.replace(aside, final)
            raise OutputError(f"cannot move the model into {str(final)!r}: {exc.strerror or exc}") from None
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    summary.update(files=len(files), out=str(out_dir))
    return summary


#: What a model folder of ``musegen train`` holds; a folder with anything else is not replaced.
MODEL_FILES = (WEIGHTS, CONFIG, TOKENIZER, "train_log.jsonl")


def _check_model_out(final: Path, files: list[Path], base) -> bool:
    """Check that training may write ``final``; returns whether an earlier model there is replaced.

    ``final`` may be new, an empty folder, or a model folder an earlier
    ``musegen train`` made; never an input of this run or a folder holding one.
    """
    from musegen.outputs import check_outputs

    check_outputs([], [*files, base], folders=[final])
    if not os.path.lexists(final):
        return False
    if final.is_symlink() or not final.is_dir():
        raise ParameterError(f"output {str(final)!r} exists and is not a folder")
    try:
        names = sorted(os.listdir(final))
    except OSError as exc:
        raise OutputError(f"cannot read the output folder {str(final)!r}: {exc.strerror or exc}") from None
    if not names:
        return False
    extra = [n for n in names if n not in MODEL_FILES]
    if extra or CONFIG not in names:
        raise ParameterError(f"output folder {str(final)!r} holds {(extra or names)[0]!r} and is not a model "
                             "folder of `musegen train`: musegen replaces only what it made; choose a new folder")
    return True
