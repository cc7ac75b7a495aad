"""Engine options declared once: name, type, range, default and help.

Every engine lists its options (``--option KEY=VALUE``, a preset's
``[engine.options]``, a batch job's ``options``) as one :class:`OptionSet`
in its ``OPTIONS`` attribute.  The set parses what a user gave into
:class:`Values` (defaults filled in, types coerced, ranges checked), refuses
a name it does not know with the list of the known ones, and describes
itself for ``musegen engines show``.  The pipeline and the batch planner
check options with the same set before anything runs, so a typo fails at
once whichever engine it is meant for.

This module imports nothing heavy: ``musegen engines show`` and the checks
run without torch.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from musegen.errors import ParameterError

#: option types, as ``engines show`` names them
TYPES = ("bool", "int", "float", "str", "path", "choice", "list[str]")
#: a request's own settings (``--temperature`` ...), which a mistyped option may have meant
SETTINGS = ("temperature", "tempo", "bars", "seconds", "seed", "key", "prompt", "variations")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One engine option.

    Attributes
    ----------
    name : str
        The key (``--option NAME=VALUE``).
    type : str
        One of :data:`TYPES`.
    default : Any
        The value when not given; ``None`` where the engine decides (``help`` says how).
    help : str
        One line for ``musegen engines show``.
    range : (float, float) or None
        Inclusive bounds of an ``int`` or ``float``.
    open_low : bool
        The lower bound itself is not allowed (``0 < top_p``).
    choices : tuple of str
        The allowed values of a ``choice``.
    nullable : bool
        ``None`` is allowed (it means the default behaviour).
    aliases : tuple of str
        Other accepted names (an alias is read as ``name``).
    """

    name: str
    type: str
    default: Any
    help: str
    range: tuple[float, float] | None = None
    open_low: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TYPES:  # a programming error in an engine's table, not user input
            raise TypeError(f"option {self.name}: type must be one of {', '.join(TYPES)}, not {self.type!r}")

    @property
    def allowed(self) -> str:
        """The values allowed, in words (``between 0 and 1``, ``one of a, b``, ``true or false``)."""
        if self.type == "bool":
            return "true or false"
        if self.type == "choice":
            return "one of " + ", ".join(self.choices)
        if self.range is not None:
            lo, hi = self.range
            if self.open_low:
                return f"greater than {lo:g}" + ("" if math.isinf(hi) else f" and at most {hi:g}")
            return f"at least {lo:g}" if math.isinf(hi) else f"between {lo:g} and {hi:g}"
        return {"int": "an integer", "float": "a number", "str": "a string", "path": "a path",
                "list[str]": "a string or a list of strings"}[self.type]

    def coerce(self, value: Any, engine: str) -> Any:
        """``value`` as this option's type, checked against its range; else :class:`ParameterError`."""
        where = f"engine {engine!r} option {self.name}"
        if value is None and (self.nullable or self.default is None):
            return None
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
                return value.strip().lower() in _TRUE
            raise ParameterError(f"{where} must be true or false, got {value!r}")
        if self.type in ("int", "float"):
            integer = self.type == "int"
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or (integer and not isinstance(value, int))):
                raise ParameterError(f"{where} must be {'an integer' if integer else 'a number'}"
                                     f"{'' if self.range is None else ' (' + self.allowed + ')'}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ParameterError(f"{where} must be a finite number, got {value!r}")
            if self.range is not None:
                lo, hi = self.range
                if not (lo < value if self.open_low else lo <= value) or value > hi:
                    raise ParameterError(f"{where} must be {self.allowed}, got {value!r}")
            return value if integer else float(value)
        if self.type == "choice":
            if value not in self.choices:
                raise ParameterError(f"{where} must be {self.allowed}, got {value!r}")
            return value
        if self.type == "list[str]":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ParameterError(f"{where} must be a string or a list of strings, got {value!r}")
            return tuple(value)
        if self.type == "path" and isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ParameterError(f"{where} must be a string, got {value!r}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """The option as ``engines show --json`` prints it."""
        return {"name": self.name, "type": self.type,
                "range": list(self.range) if self.range is not None else None,
                "choices": list(self.choices) or None, "allowed": self.allowed,
                "default": list(self.default) if isinstance(self.default, tuple) else self.default,
                "help": self.help, "aliases": list(self.aliases)}


class Values:
    """Parsed options: every declared option as an attribute (default where not given), read-only.

    ``given`` names the options the user set; ``as_dict()`` is every value.
    Equal values compare and hash equal (engines group requests by them).
    """

    __slots__ = ("_values", "given")

    def __init__(self, values: dict[str, Any], given: frozenset[str]):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "given", given)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("engine options are read-only")

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __reduce__(self):  # copy and pickle rebuild it through __init__ (attributes are read-only)
        return (Values, (self._values, self.given))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Values) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return "Values(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


class OptionSet:
    """The options of one engine.

    Parameters
    ----------
    engine : str
        The engine's name, for messages.
    options : iterable of Option
    check : callable, optional
        ``check(values)`` for rules across options (raise :class:`ParameterError`).
    """

    def __init__(self, engine: str, options: Iterable[Option], check: Callable[[Values], None] | None = None):
        self.engine = engine
        self.options: dict[str, Option] = {}
        self._alias: dict[str, str] = {}
        for opt in options:
            self.options[opt.name] = opt
            for alias in opt.aliases:
                self._alias[alias] = opt.name
        self._check = check

    @property
    def names(self) -> list[str]:
        """The option names, sorted (aliases not included)."""
        return sorted(self.options)

    def unknown(self, raw: Mapping[str, Any]) -> list[str]:
        """The names in ``raw`` that are neither an option nor an alias, sorted."""
        return sorted(k for k in raw if k not in self.options and k not in self._alias)

    def parse(self, raw: Mapping[str, Any] | None) -> Values:
        """Coerce and check ``raw``; every option comes back, defaults where not given.

        Raises
        ------
        ParameterError
            For an unknown name (listing the known ones) or a value of the
            wrong type or out of range (naming the option and its range).
        """
        raw = dict(raw or {})
        unknown = self.unknown(raw)
        if unknown:
            hints = []
            for u in unknown:
                if m := difflib.get_close_matches(u, list(self.options) + list(self._alias), n=1):
                    hints.append(f"{u!r}: did you mean {m[0]!r}?")
                elif m := difflib.get_close_matches(u, SETTINGS, n=1):
                    hints.append(f"{u!r}: {m[0]} is a setting of its own, not an engine option (--{m[0]})")
            raise ParameterError(
                f"unknown option{'s' if len(unknown) > 1 else ''} for engine {self.engine!r}: {', '.join(unknown)}"
                f"{' (' + '; '.join(hints) + ')' if hints else ''}; known: {', '.join(self.names)} "
                f"(see `musegen engines show {self.engine}`)")
        given: dict[str, Any] = {}
        for key, value in raw.items():
            name = self._alias.get(key, key)
            if name in given and key != name:
                continue  # the option's own name wins over its alias
            given[name] = self.options[name].coerce(value, self.engine)
        values = Values({name: given.get(name, opt.default) for name, opt in self.options.items()},
                        frozenset(given))
        if self._check is not None:
            self._check(values)
        return values

    def to_list(self) -> list[dict[str, Any]]:
        """Every option as a dict (``engines show --json``), sorted by name."""
        return [self.options[n].to_dict() for n in self.names]
