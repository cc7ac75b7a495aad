"""Checkpoints: ``model.safetensors`` + ``config.json`` + ``tokenizer.json`` in one folder.

Weights are safetensors only (never pickle); the model config and the
tokenizer config travel with them, so a folder rebuilds itself.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from musegen.atomic import atomic_path, atomic_write_text
from musegen.errors import EngineError, ParameterError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
MAX_WEIGHT_BYTES = 2 << 30


def shipped_checkpoint() -> Path:
    """The model trained by ``scripts/train_symbolic.py`` and shipped in the package."""
    return Path(str(resources.files("musegen") / "engines" / "symbolic" / "weights"))


def save_checkpoint(model, tokenizer, out_dir: str | os.PathLike[str], meta: dict[str, Any], *,
                    half: bool = True) -> Path:
    """Write weights (fp16 by default), config and tokenizer atomically into ``out_dir``."""
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {}
    for k, v in model.state_dict().items():
        if k == "head.weight":  # tied to tok.weight
            continue
        v = v.detach().to("cpu").contiguous()
        state[k] = v.half() if half and v.is_floating_point() else v
    # each file appears complete or not at all, under a temporary name no other writer shares
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with atomic_path(out / TOKENIZER) as tmp:
        tokenizer.save(tmp)
    cfg = {"model": model.cfg.to_dict(), **meta}
    atomic_write_text(out / CONFIG, json.dumps(cfg, indent=2, default=str) + "\n")
    del torch
    return out


def _read(path) -> tuple[Path, dict, Any, Any, dict]:
    """``(folder, config, ModelConfig, tokenizer, float32 numpy state)``, checked, without torch."""
    import numpy as np
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from musegen.engines.symbolic.config import ModelConfig
    from musegen.engines.symbolic.tokens import build_tokenizer

    folder = Path(path) if path is not None else shipped_checkpoint()
    for name in (WEIGHTS, CONFIG, TOKENIZER):
        if not (folder / name).is_file():
            raise ParameterError(f"model folder {str(folder)!r} has no {name} "
                                 "(train one with `musegen train` or scripts/train_symbolic.py)")
    if (folder / WEIGHTS).stat().st_size > MAX_WEIGHT_BYTES:
        raise ParameterError(f"weights in {str(folder)!r} are larger than {MAX_WEIGHT_BYTES >> 30} GB")
    # safetensors' Rust reader aborts the process when an allocation fails inside it: refused first
    from musegen.memory import check_fits

    check_fits(4 * (folder / WEIGHTS).stat().st_size + (16 << 20), what=f"loading the weights in {str(folder)!r}")
    where = str(folder / CONFIG)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (ValueError, OSError) as exc:
        raise ParameterError(f"{where} is not readable JSON: {exc}") from None
    if not isinstance(config, dict) or "model" not in config:
        raise ParameterError(f"{where} must be a JSON object with a 'model' table")
    cfg = ModelConfig.from_dict(config["model"], where=where)
    try:
        tokenizer = build_tokenizer(folder / TOKENIZER)
        state = {k: v.astype(np.float32) for k, v in load_file(str(folder / WEIGHTS)).items()}
    except (ValueError, KeyError, TypeError, OSError, SafetensorError) as exc:
        raise EngineError(f"cannot load the model in {str(folder)!r}: {exc}") from None
    extra = config.get("extra_tokens", [])
    if extra:  # tokenizer version 3: musegen's own tokens after the REMI vocabulary (.layout)
        from musegen.engines.symbolic.layout import extra_tokens

        if list(extra) != extra_tokens():
            raise EngineError(f"{where}: 'extra_tokens' are not the ones this musegen knows "
                              f"({len(extra)} given, {len(extra_tokens())} known)")
    if len(tokenizer) + len(extra) != cfg.vocab_size:
        raise EngineError(f"tokenizer in {str(folder)!r} has {len(tokenizer) + len(extra)} tokens, "
                          f"model expects {cfg.vocab_size}")
    return folder, config, cfg, tokenizer, state


def _misfit(folder: Path, missing, unexpected) -> EngineError:
    return EngineError(f"weights in {str(folder)!r} do not fit the config "
                       f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")


def load_checkpoint(path: str | os.PathLike[str] | None = None, *, device: str = "cpu"):
    """``(model, tokenizer, config)`` from a checkpoint folder (default: the shipped one), as a torch model."""
    import torch

    from musegen.engines.symbolic.model import MusicTransformer

    folder, config, cfg, tokenizer, state = _read(path)
    model = MusicTransformer(cfg)
    tensors = {k: torch.from_numpy(v).to(device) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [m for m in missing if m != "head.weight"]
    if missing or unexpected:
        raise _misfit(folder, missing, unexpected)
    model.to(device).eval()
    return model, tokenizer, config


def load_runtime(path: str | os.PathLike[str] | None = None):
    """``(NumpyLM, tokenizer, config)``: the checkpoint ready for sampling, without importing torch."""
    from musegen.engines.symbolic.runtime import NumpyLM, expected_weights

    folder, config, cfg, tokenizer, state = _read(path)
    want = expected_weights(cfg)
    missing, unexpected = set(want) - set(state), set(state) - set(want)
    if missing or unexpected:
        raise _misfit(folder, sorted(missing), sorted(unexpected))
    wrong = [f"{k} {state[k].shape} != {want[k]}" for k in sorted(want) if state[k].shape != want[k]]
    if wrong:
        raise EngineError(f"weights in {str(folder)!r} do not fit the config ({wrong[0]})")
    return NumpyLM(cfg, state), tokenizer, config
