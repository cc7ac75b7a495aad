"""Engines by name, imported lazily.

Built-in engines are listed here as ``module:attribute`` strings; third-party
packages add theirs through the ``musegen.engines`` entry-point group.  An
engine object is created once per process and reused (model weights load once).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from musegen.errors import EngineError, ParameterError

BUILTIN: dict[str, tuple[str, str]] = {
    "symbolic": ("musegen.engines.symbolic.engine:SymbolicEngine",
                 "the embedded music transformer trained on POP909 and music21's corpus (offline)"),
    "procedural": ("musegen.engines.procedural:ProceduralEngine",
                   "rule-based harmony, melody, bass, chords and drums from the preset (offline)"),
    "musicgen": ("musegen.engines.musicgen:MusicGenEngine",
                 "MusicGen / MusicGen-Melody audio via transformers (your weights; pip install 'musegen[musicgen]')"),
}
ENTRY_POINT_GROUP = "musegen.engines"


def _entry_points() -> dict[str, tuple[str, str]]:
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, (ep.value, f"plugin from {ep.value.split(':')[0]}"))
    return found


def available_engines() -> dict[str, str]:
    """Engine names with a one-line description."""
    table = {**_entry_points(), **BUILTIN}
    return {name: desc for name, (_, desc) in sorted(table.items())}


def _load_factory(name: str):
    table = {**_entry_points(), **BUILTIN}
    if name not in table:
        raise ParameterError(f"unknown engine {name!r} (available: {', '.join(sorted(table))})")
    target = table[name][0]
    mod_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise EngineError(
            f"engine {name!r} needs a package that is not installed ({exc.name or exc}); "
            f"install it with: pip install 'musegen[{name}]'"
        ) from None
    return getattr(module, attr)


def engine_options(name: str):
    """The :class:`~musegen.engines.options.OptionSet` of engine ``name``, without building the engine.

    ``None`` for a plugin engine that declares none (its options are then its own business).
    """
    return getattr(_load_factory(name), "OPTIONS", None)


def check_options(name: str, options: dict[str, Any], *, where: str = "") -> None:
    """Refuse options engine ``name`` does not declare, or values out of their range.

    ``where`` (e.g. ``"preset 'x' [engine.options]"``) is prefixed to the message.

    Raises
    ------
    ParameterError
        Naming the option and the known ones, or the option and its range.
    """
    spec = engine_options(name)
    if spec is None:
        return
    try:
        spec.parse(options)
    except ParameterError as exc:
        if not where:
            raise
        raise ParameterError(f"{where}: {exc}") from None


@lru_cache(maxsize=8)
def _cached(name: str, options: tuple[tuple[str, Any], ...]):
    return _load_factory(name)(**dict(options))


def get_engine(name: str, **options: Any):
    """The engine called ``name``, built once per process for the same options."""
    try:
        key = tuple(sorted(options.items()))
        hash(key)
    except TypeError:
        return _load_factory(name)(**options)
    return _cached(name, key)
