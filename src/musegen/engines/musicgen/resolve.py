"""Find a MusicGen model on this machine: a folder, or a hub id in the local cache.

musegen never downloads weights on its own.  A hub id (``facebook/musicgen-small``)
resolves only from the local Hugging Face cache; when it is not there the
error names the model and the one command that fetches it.  Nothing here
touches the network, so a missing model fails at once instead of hanging.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from musegen.errors import InputError

DEFAULT_MODEL = "facebook/musicgen-small"
MODEL_TYPES = {"musicgen": "text", "musicgen_melody": "melody"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# files of AudioCraft's own checkpoint format (not loadable by transformers)
_AUDIOCRAFT_FILES = ("state_dict.bin", "compression_state_dict.bin")
# weights saved with torch.save: a pickle, which can run code when loaded
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder that transformers can load.

    Attributes
    ----------
    name : str
        What the user asked for (hub id or folder), for messages and sidecars.
    path : Path
        The folder holding ``config.json``, weights and tokenizer files.
    kind : {"text", "melody"}
        MusicGen (text conditioning through cross-attention) or MusicGen-Melody
        (chroma + text as a decoder prefix).
    config : dict
        The parsed ``config.json``.
    """

    name: str
    path: Path
    kind: str
    config: dict


def fetch_hint(repo_id: str) -> str:
    return (f"fetch it once with `hf download {repo_id}` (needs network and huggingface_hub), "
            f"or pass a local model folder with --model DIR")


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_model(spec: str | os.PathLike[str] | None) -> ResolvedModel:
    """Turn ``--model`` into a loadable folder without touching the network.

    Parameters
    ----------
    spec : str, path or None
        A folder (transformers format), a hub id such as
        ``facebook/musicgen-melody``, a bare ``musicgen-*`` name (read as
        ``facebook/musicgen-*``), or ``None`` for :data:`DEFAULT_MODEL`.

    Raises
    ------
    InputError
        The folder is missing or not a MusicGen model, or the hub id is not in
        the local cache.  One line, naming the model and how to get it.
    """
    name = str(spec) if spec is not None else DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_dir():
        return _check_folder(name, path)
    repo_id = f"facebook/{name}" if name.startswith("musicgen") and "/" not in name else name
    if path.exists() or not _HUB_ID.match(repo_id):
        raise InputError(f"MusicGen model folder {name!r} not found")
    return _check_folder(name, _from_cache(repo_id), repo_id=repo_id)


def _from_cache(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # transformers depends on it, so this is a broken install
        raise InputError(f"MusicGen model {repo_id!r} is not a folder and huggingface_hub is not installed; "
                         f"install it with: pip install 'musegen[musicgen]'") from None
    try:
        # local_files_only: a cache lookup, never a request (no hang when offline)
        found = snapshot_download(repo_id, local_files_only=True, cache_dir=hub_cache_dir())
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        raise InputError(
            f"MusicGen model {repo_id!r} is not a local folder and not in the local Hugging Face cache "
            f"({hub_cache_dir()}); musegen never downloads models: {fetch_hint(repo_id)}"
        ) from None
    return Path(found)


def _check_folder(name: str, path: Path, *, repo_id: str | None = None) -> ResolvedModel:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        if any((path / f).exists() for f in _AUDIOCRAFT_FILES):
            raise InputError(
                f"{name!r} is an AudioCraft checkpoint; convert it to the transformers format first "
                f"with transformers' convert_musicgen_transformers.py (see README, 'MusicGen')"
            )
        raise InputError(f"{name!r} is not a MusicGen model folder (no config.json)"
                         + (f"; {fetch_hint(repo_id)}" if repo_id else ""))
    try:
        config = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"MusicGen model {name!r}: cannot read config.json ({exc})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in MODEL_TYPES:
        raise InputError(f"{name!r} is not a MusicGen model (model_type {model_type!r}; expected one of "
                         f"{', '.join(sorted(MODEL_TYPES))})")
    weights = list(path.glob("*.safetensors"))
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if not weights and pickles:
        raise InputError(
            f"MusicGen model {name!r} has only pickle weights ({pickles[0]}); musegen loads safetensors only, "
            f"since loading a pickle can run code: convert them once with "
            f"model.save_pretrained(DIR, safe_serialization=True) where you trust the file"
        )
    if not weights:
        raise InputError(f"MusicGen model {name!r} has no weights in {str(path)!r}"
                         + (f"; {fetch_hint(repo_id)}" if repo_id else ""))
    if not ((path / "tokenizer.json").is_file() or (path / "spiece.model").is_file()):
        raise InputError(
            f"MusicGen model {name!r} has no text tokenizer (tokenizer.json); add one with "
            f"AutoTokenizer.from_pretrained('google-t5/t5-base').save_pretrained({str(path)!r})"
        )
    return ResolvedModel(name=name, path=path, kind=MODEL_TYPES[model_type], config=config)
