"""Size and length limits on everything musegen reads or makes.

Every input can be hostile: a 2 GB "MIDI file", a delta time that puts a note
a day after the others, a plan whose sweep expands to millions of jobs.  Each
limit here is checked before the work it protects starts (a file's size
before it is read, a length before anything is generated or synthesized), so
an input over a limit ends in one clear error instead of a machine that runs
out of memory.

The defaults suit a laptop.  Each one can be raised (or lowered) with an
environment variable, ``MUSEGEN_MAX_<NAME>``; a bad value is reported with
the variable's name.  Limits are read when they are checked, so a change to
the environment takes effect at once.

>>> from musegen import limits
>>> limits.get("midi_bytes")
16777216
>>> limits.check("bars", 12, what="bars 12")   # raises ParameterError over the limit
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import BinaryIO

from musegen.errors import MusegenError, ParameterError

__all__ = ["LIMITS", "MAX_OVERRIDE", "Limit", "check", "get", "message", "read_bounded", "table"]


@dataclass(frozen=True)
class Limit:
    """One limit: its name, default, unit and what it protects."""

    name: str
    default: int | float
    unit: str
    protects: str

    @property
    def env(self) -> str:
        """The environment variable that overrides it, e.g. ``MUSEGEN_MAX_MIDI_BYTES``."""
        return "MUSEGEN_MAX_" + self.name.upper()

    @property
    def integer(self) -> bool:
        return isinstance(self.default, int)


_MIB = 1 << 20

#: Every limit, in the order the README's table lists them.
LIMITS: dict[str, Limit] = {
    lim.name: lim
    for lim in (
        Limit("midi_bytes", 16 * _MIB, "bytes", "size of a MIDI file, checked before it is read"),
        Limit("midi_tracks", 256, "tracks", "tracks in a MIDI file (header count and after splitting channels)"),
        Limit("midi_notes", 1_000_000, "notes", "notes in a MIDI file, over all tracks"),
        Limit("bars", 1000, "bars", "new bars one request generates, checked before the engine runs"),
        Limit("seconds", 3600.0, "seconds", "length of the new music one request generates"),
        Limit("variations", 64, "results", "variations one request generates"),
        Limit("audio_seconds", 3600.0, "seconds",
              "length of audio read (post, analyze) or synthesized (render, generate with a sketch), "
              "checked from the header or the score before decoding or synthesis"),
        Limit("audio_samples", 400_000_000, "samples",
              "samples (frames x channels) of audio held in memory, about 4 bytes each: "
              "read, synthesized or made by a post step (resample, stretch); checked before the step runs"),
        Limit("soundfont_bytes", 1 << 30, "bytes", "size of a SoundFont, checked before it is loaded"),
        Limit("preset_bytes", 256 * 1024, "bytes", "size of a preset TOML file"),
        Limit("plan_bytes", _MIB, "bytes", "size of a batch plan TOML file"),
        Limit("batch_jobs", 100_000, "jobs", "jobs a batch plan expands to (sweeps multiply)"),
    )
}

#: The largest value a ``MUSEGEN_MAX_*`` variable may set: a petabyte, or 31 million years
#: of seconds.  A limit only bounds what is read or made, but a larger value is a mistake
#: (``1e30`` bytes), and as an integer it overflows what the C libraries below take.
MAX_OVERRIDE = 10**15

#: How much :func:`read_bounded` reads at a time.
_READ_CHUNK = 1 << 20

_NUMBER = re.compile(r"\s*\+?(\d[\d_]*(\.\d*)?([eE]\+?\d+)?)\s*")


def _lookup(name: str) -> Limit:
    try:
        return LIMITS[name]
    except KeyError:
        raise ParameterError(f"unknown limit {name!r} (limits: {', '.join(LIMITS)})") from None


def get(name: str) -> int | float:
    """The limit now in force: ``MUSEGEN_MAX_<NAME>`` if set, else the default.

    Raises
    ------
    ParameterError
        If the environment variable is not a positive number (a whole number
        for counts and bytes) of at most :data:`MAX_OVERRIDE`; the message
        names the variable.
    """
    lim = _lookup(name)
    raw = os.environ.get(lim.env)
    if raw is None or raw.strip() == "":
        return lim.default
    kind = "a positive whole number" if lim.integer else "a positive number"
    m = _NUMBER.fullmatch(raw)
    bad = ParameterError(f"environment variable {lim.env} must be {kind} of {lim.unit}, got {raw!r}")
    if not m or "__" in m.group(1) or m.group(1).endswith("_"):
        raise bad
    text = m.group(1).replace("_", "")
    try:
        value: int | float = float(text)
    except ValueError:  # pragma: no cover - the pattern admits only numbers
        raise bad from None
    if not math.isfinite(value) or value <= 0:
        raise bad
    if value > MAX_OVERRIDE:
        raise ParameterError(f"environment variable {lim.env} must be at most {MAX_OVERRIDE:,} {lim.unit}, "
                             f"got {raw!r}")
    if lim.integer:
        if value != int(value):
            raise bad
        value = int(text) if text.isdigit() else int(value)
    return value


def read_bounded(handle: BinaryIO, limit: int) -> bytes:
    """Read ``handle`` to its end, but never more than ``limit + 1`` bytes.

    A limit bounds what is read; it is never the size of a buffer.  Reading
    goes in chunks of at most 1 MiB and stops as soon as more than ``limit``
    bytes have come, so the memory used is what the file holds (at most
    ``limit + 1`` bytes), whatever the limit says.

    Parameters
    ----------
    handle : binary file object
        Open for reading.
    limit : int
        The most bytes accepted; the caller refuses the data if it is longer.

    Returns
    -------
    bytes
        The file's bytes, or its first ``limit + 1`` bytes if it is longer
        than ``limit`` (a file that grew after its size was checked).
    """
    chunks: list[bytes] = []
    got = 0
    while got <= limit:
        chunk = handle.read(min(_READ_CHUNK, limit + 1 - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def message(name: str, what: str, limit: int | float | None = None) -> str:
    """``"<what>, over the <name> limit of N <unit> (set MUSEGEN_MAX_<NAME> to raise it)"``."""
    lim = _lookup(name)
    value = get(name) if limit is None else limit
    shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
    return f"{what}, over the {name} limit of {shown} {lim.unit} (set {lim.env} to raise it)"


def check(
    name: str,
    value: int | float,
    *,
    what: str,
    error: type[MusegenError] = ParameterError,
) -> None:
    """Raise ``error`` if ``value`` is over the limit ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`LIMITS`.
    value : int or float
        The measured size or length, in the limit's unit.
    what : str
        How the message describes the value, e.g. ``"song.mid is 20000000 bytes"``.
    error : type
        The :class:`~musegen.errors.MusegenError` subclass to raise.
    """
    limit = get(name)
    if not value <= limit:  # NaN is over every limit
        raise error(message(name, what, limit))


def table() -> list[dict[str, object]]:
    """The limits as rows (name, default, now, unit, env, protects), e.g. for the README."""
    return [
        {"name": lim.name, "default": lim.default, "now": get(lim.name), "unit": lim.unit,
         "env": lim.env, "protects": lim.protects}
        for lim in LIMITS.values()
    ]
