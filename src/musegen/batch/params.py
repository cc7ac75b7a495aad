"""The parameters a batch job may set, their checks, and the post chain they build.

A job is one call of ``generate``, ``extend``, ``render`` or ``post``; its
parameters are the same as the CLI's options of that command, under the
same names (``sample_rate`` for ``--sample-rate``).  Checking here uses the
same validators as the commands themselves, so a plan fails before any job
runs rather than halfway through.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from musegen.errors import ParameterError

COMMANDS = ("generate", "extend", "render", "post")

#: Post-processing shortcuts, usable by every command (see :func:`build_chain`).
CHAIN_KEYS = ("post", "trim", "tempo_from", "tempo_to", "pitch_shift", "fade_in", "fade_out",
              "lufs", "peak_db", "resample")
_GENERATION = ("preset", "midi", "engine", "model", "options", "bars", "seconds", "seed", "tempo",
               "key", "temperature", "prompt", "soundfont", "sample_rate", "commercial_use", "loop", "stems")

#: Which parameters each command takes.
ALLOWED: dict[str, tuple[str, ...]] = {
    "generate": ("command",) + _GENERATION + CHAIN_KEYS,
    "extend": ("command",) + _GENERATION + ("add_parts",) + CHAIN_KEYS,
    "render": ("command", "midi", "soundfont", "sample_rate", "backend") + CHAIN_KEYS,
    "post": ("command", "audio") + CHAIN_KEYS,
}
ALL_PARAMS: tuple[str, ...] = tuple(dict.fromkeys(k for keys in ALLOWED.values() for k in keys))
#: Parameters holding file names (resolved against the plan's folder).
PATH_PARAMS = ("midi", "audio", "soundfont", "model", "preset")
#: Those that may be globs expanding to one job per matching file.
GLOB_PARAMS = ("midi", "audio")

SEED_DEFAULT = 0  # every job is reproducible, and its id stable, even without a seed


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    from musegen.errors import check_range

    return float(check_range(name, value, lo, hi))


def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    from musegen.errors import check_range

    return int(check_range(name, value, lo, hi, integer=True))


def _any_number(name: str, value: Any) -> float:
    # Ranges of post shortcuts are checked by validate_chain, with the op's own limits.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    return float(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be true or false, got {value!r}")
    return value


def _key(name: str, value: Any) -> str:
    from musegen.theory import parse_key

    parse_key(_text(name, value))
    return value


def _engine(name: str, value: Any) -> str:
    from musegen.engines.registry import available_engines

    names = available_engines()
    if not isinstance(value, str) or value not in names:  # a list or table would not even hash
        raise ParameterError(f"unknown engine {value!r} (available: {', '.join(names)})")
    return value


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        return value
    return check


def _table(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParameterError(f"{name} must be a table, got {value!r}")
    return dict(value)


def _steps(name: str, value: Any) -> list[dict[str, Any]]:
    from musegen.audio.chain import validate_chain

    return validate_chain(value, name=name)


def _limited(limit: str, value: Any, name: str) -> Any:
    """``value`` if within the limit ``limit`` (read when the plan is checked, see :mod:`musegen.limits`)."""
    from musegen import limits

    limits.check(limit, value, what=f"{name} {value:g}")
    return value


def _prompt(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"{name} must be a string, got {value!r}")
    return value


CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "command": _choice(*COMMANDS),
    "preset": _text,
    "midi": _text,
    "audio": _text,
    "engine": _engine,
    "model": _text,
    "options": _table,
    "bars": lambda n, v: _limited("bars", _integer(n, v, 1, math.inf), n),
    "seconds": lambda n, v: _limited("seconds", _number(n, v, 0.5, math.inf), n),
    "seed": lambda n, v: _integer(n, v, 0, 2**63 - 1),
    "tempo": lambda n, v: _number(n, v, 20, 400),
    "key": _key,
    "temperature": lambda n, v: _number(n, v, 0.01, 5.0),
    "prompt": _prompt,
    "soundfont": _text,
    "sample_rate": lambda n, v: _integer(n, v, 8000, 192000),
    "backend": _choice("symusic", "fluidsynth"),
    "add_parts": _flag,
    "commercial_use": _flag,
    "loop": _flag,
    "stems": _flag,
    "post": _steps,
    "trim": _flag,
    "tempo_from": _any_number,
    "tempo_to": _any_number,
    "pitch_shift": _any_number,
    "fade_in": _any_number,
    "fade_out": _any_number,
    "lufs": _any_number,
    "peak_db": _any_number,
    "resample": lambda n, v: _integer(n, v, 8000, 192000),
}


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise one job's parameters (numbers become int or float).

    Raises
    ------
    ParameterError
        Naming the parameter and the value.
    """
    out = {}
    for name, value in params.items():
        out[name] = CHECKS[name](name, value)
    command = out.get("command", "generate")
    if command in ("extend", "render") and "midi" not in out:
        raise ParameterError(f"{command} jobs need a midi file")
    if command == "post" and "audio" not in out:
        raise ParameterError("post jobs need an audio file")
    if "bars" in out and "seconds" in out:
        raise ParameterError("give either bars or seconds, not both")
    if ("tempo_from" in out) != ("tempo_to" in out):
        raise ParameterError("tempo_from and tempo_to go together")
    if command in ("generate", "extend"):
        out.setdefault("seed", SEED_DEFAULT)
    return out


def build_chain(params: dict[str, Any], base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The post-processing chain of a job.

    ``post`` (a list of steps) replaces ``base`` (the preset's chain for
    generate/extend, nothing for render/post).  The shortcuts ``trim``,
    ``tempo_from``/``tempo_to``, ``pitch_shift``, ``fade_in`` and ``fade_out``
    add steps in that order, before the chain's loudness step if it has one;
    ``lufs``/``peak_db`` set the loudness step's target (adding one at the
    end if there is none); ``resample`` comes last.

    Raises
    ------
    ParameterError
        When the resulting chain is invalid (values out of range...).
    """
    from musegen.audio.chain import validate_chain

    steps = [dict(s) for s in (params["post"] if "post" in params else base)]
    extra: list[dict[str, Any]] = []
    if params.get("trim"):
        extra.append({"op": "trim"})
    if "tempo_from" in params:
        extra.append({"op": "tempo", "tempo_from": params["tempo_from"], "tempo_to": params["tempo_to"]})
    if params.get("pitch_shift"):
        extra.append({"op": "pitch_shift", "semitones": params["pitch_shift"]})
    if params.get("fade_in"):
        extra.append({"op": "fade_in", "seconds": params["fade_in"]})
    if params.get("fade_out"):
        extra.append({"op": "fade_out", "seconds": params["fade_out"]})
    loud = [i for i, s in enumerate(steps) if s.get("op") == "loudness"]
    at = loud[-1] if loud else len(steps)
    steps[at:at] = extra
    if "lufs" in params or "peak_db" in params:
        loud = [i for i, s in enumerate(steps) if s.get("op") == "loudness"]
        if loud:
            step = steps[loud[-1]]
        else:
            if "lufs" not in params:
                raise ParameterError("peak_db needs lufs, or a loudness step in the post chain")
            step = {"op": "loudness", "peak_db": -1.0}
            steps.append(step)
        for name in ("lufs", "peak_db"):
            if name in params:
                step[name] = params[name]
    if "resample" in params:
        steps.append({"op": "resample", "target_sr": params["resample"]})
    return validate_chain(steps)
