"""Where learned styles live: one folder per style in the user's data folder.

``$MUSEGEN_STYLE_DIR`` (default ``$XDG_DATA_HOME/musegen/styles``, that is
``~/.local/share/musegen/styles``) holds ``<name>/preset.toml`` (the derived
preset), ``<name>/model/`` (the fine-tuned checkpoint: safetensors, config,
tokenizer) and ``<name>/style.json`` (the statistics, the files learned from
and the training summary).  The preset loader finds styles here like any
preset, with origin ``style``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from musegen.errors import ParameterError, PresetError

STYLE_DIR_ENV = "MUSEGEN_STYLE_DIR"
PRESET_FILE = "preset.toml"
INFO_FILE = "style.json"
MODEL_DIR = "model"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def style_root() -> Path:
    """The styles folder (not created here)."""
    env = os.environ.get(STYLE_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "musegen" / "styles"


def check_name(name: str) -> str:
    """A style name is a preset name: 1-64 lowercase letters, digits, ``-``, ``_``, ``.``."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in (".", ".."):
        raise ParameterError(f"style name {name!r} must be 1-64 lowercase letters, digits, '-', '_' or '.' "
                             "(starting with a letter or digit)")
    return name


def style_dir(name: str) -> Path:
    return style_root() / check_name(name)


def find_style(name: str) -> Path | None:
    """The folder of style ``name`` when it exists and is complete."""
    try:
        folder = style_dir(name)
    except ParameterError:
        return None
    return folder if (folder / PRESET_FILE).is_file() else None


def list_styles() -> list[str]:
    root = style_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and NAME_RE.fullmatch(p.name) and (p / PRESET_FILE).is_file())


def style_info(name: str) -> dict[str, Any]:
    """``style.json`` of a style, with its folder."""
    folder = find_style(name)
    if folder is None:
        raise PresetError(f"no learned style named {name!r} in {str(style_root())!r} "
                          f"(styles: {', '.join(list_styles()) or 'none'})")
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PresetError(f"style {name!r} has no readable {INFO_FILE}: {exc}") from None
    check_info(info, str(folder / INFO_FILE))
    info["folder"] = str(folder)
    return info


_NUM = (int, float)
#: The shape of ``style.json`` as ``style show`` reads it: key -> type, or a nested table.
INFO_SHAPE: dict[str, Any] = {
    "name": str, "created": str, "base_preset": str, "model_style": str, "files": list, "skipped": list,
    "stats": {"tempo_bpm": {"p10": _NUM, "median": _NUM, "p90": _NUM}, "meters": dict, "keys": dict,
              "programs_by_role": dict, "notes_per_bar": _NUM, "swing": _NUM,
              "velocity": {"mean": _NUM, "std": _NUM}, "chords": (dict, list), "progressions": list},
    "training": {"method": str, "steps": int, "base_valid_loss": _NUM, "best_valid_loss": _NUM},
}


def check_info(info: Any, where: str, shape: dict[str, Any] = INFO_SHAPE, prefix: str = "") -> None:
    """Check a style's statistics against :data:`INFO_SHAPE`, naming the file and the key at fault."""
    if not isinstance(info, dict):
        raise PresetError(f"{where}: {prefix.rstrip('.') or 'the file'} must be a JSON object, "
                          f"got {type(info).__name__}")
    for key, want in shape.items():
        if key not in info:
            raise PresetError(f"{where} lacks the key {prefix + key!r}")
        value = info[key]
        if isinstance(want, dict):
            check_info(value, where, want, f"{prefix}{key}.")
        elif isinstance(value, bool) or not isinstance(value, want):
            raise PresetError(f"{where}: {prefix + key!r} has the wrong type ({type(value).__name__}: "
                              f"{value!r:.60})")
    if prefix == "":
        progressions = info["stats"]["progressions"]
        if not all(isinstance(p, list) and all(isinstance(c, str) for c in p) for p in progressions):
            raise PresetError(f"{where}: 'stats.progressions' must be lists of chord names")


def remove_style(name: str) -> Path:
    """Delete a style's folder; returns the folder removed."""
    folder = style_dir(name)
    if not folder.is_dir() or folder.is_symlink():
        raise PresetError(f"no learned style named {name!r} in {str(style_root())!r} "
                          f"(styles: {', '.join(list_styles()) or 'none'})")
    check_made_by_learn(folder)
    shutil.rmtree(folder)
    return folder


def check_made_by_learn(folder: Path) -> None:
    """Refuse to delete or replace a folder that ``style learn`` cannot have made.

    A style folder holds ``preset.toml`` (a file, not a link) and nothing but
    what :func:`musegen.style.learn.learn_style` writes.
    """
    preset = folder / PRESET_FILE
    if preset.is_symlink() or not preset.is_file():
        raise PresetError(f"{str(folder)!r} is not a learned style (it has no {PRESET_FILE}); "
                          "musegen deletes only what it made: leaving it alone")
    try:
        extra = sorted(n for n in os.listdir(folder) if n not in (PRESET_FILE, INFO_FILE, MODEL_DIR))
    except OSError as exc:
        raise PresetError(f"cannot read the style folder {str(folder)!r}: {exc.strerror or exc}") from None
    if extra:
        raise PresetError(f"style folder {str(folder)!r} holds {extra[0]!r}, which `style learn` did not write; "
                          "musegen deletes only what it made: move it away first")
