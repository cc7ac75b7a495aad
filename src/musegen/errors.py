"""Exception hierarchy, and the range check behind most parameter errors.

Every error musegen raises on purpose derives from :class:`MusegenError`.
The CLI turns them into one ``Error: ...`` line on stderr; ``exit_code`` says
which code it exits with: 2 for bad input or usage, 1 for runtime failures.
"""

from __future__ import annotations

import math
from typing import Any


class MusegenError(Exception):
    """Root of musegen's errors (runtime failure, exit code 1)."""

    exit_code = 1


class InputError(MusegenError):
    """The user gave something unusable: a bad value, file or name (exit 2)."""

    exit_code = 2


class ParameterError(InputError):
    """A parameter value is out of range or of the wrong kind."""


class PresetError(InputError):
    """A preset is missing, malformed or invalid."""


class MidiError(InputError):
    """A MIDI file cannot be read, or holds nothing usable."""


class AudioError(InputError):
    """An audio file cannot be read, or holds nothing usable."""


class SoundFontError(InputError):
    """A SoundFont is missing or unreadable."""


class PlanError(InputError):
    """A batch plan is missing, malformed or invalid."""


class EngineError(MusegenError):
    """An engine failed while generating (exit 1)."""


class RenderError(MusegenError):
    """Synthesis failed while rendering (exit 1)."""


class OutputError(MusegenError):
    """An output could not be written (disk full, permissions...) (exit 1)."""


class OutOfMemoryError(MusegenError, MemoryError):
    """Too little memory (or address space, ``ulimit -v``) for the work (exit 1).

    A ``MemoryError`` too, so code that lets allocation failures through
    (rather than retrying or recording them) treats it as one.
    """


def check_range(name: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> Any:
    """Validate a user number, naming the parameter and the value on failure."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ParameterError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not (lo <= value <= hi) or (isinstance(value, float) and not math.isfinite(value)):
        raise ParameterError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return value
