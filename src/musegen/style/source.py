"""Learned styles as a preset source: ``--preset NAME`` finds a style like any preset.

Registered with :func:`musegen.presets.register_source` when :mod:`musegen.style`
is imported, so the preset loader (a lower layer) never imports the styles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musegen.presets import PresetSource, register_source
from musegen.style.store import MODEL_DIR, PRESET_FILE, find_style, list_styles, style_root


def _find(name: str) -> Path | None:
    folder = find_style(name)
    return None if folder is None else folder / PRESET_FILE


def _entries() -> list[tuple[str, Path]]:
    return [(n, style_root() / n / PRESET_FILE) for n in list_styles()]


def _adapt(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """A style's preset plays its own fine-tuned model, wherever the styles folder is."""
    model = path.parent / MODEL_DIR
    if model.is_dir():
        engine = data.setdefault("engine", {})
        if isinstance(engine, dict) and isinstance(engine.setdefault("options", {}), dict):
            engine["options"].setdefault("model", str(model))
    return data


SOURCE = PresetSource(origin="style", find=_find, entries=_entries, adapt=_adapt)
register_source(SOURCE)
