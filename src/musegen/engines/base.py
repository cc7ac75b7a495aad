"""The engine interface shared by every generator.

The pipeline resolves a :class:`Request` (tempo, meter, key and length are
already decided, the seed is already loaded and analysed) and hands it to an
engine, which returns one :class:`EngineOutput` per variation.  Symbolic
engines fill ``score``; audio engines fill ``audio``; an engine may fill both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:  # symusic and numpy are only needed by implementations
    import numpy as np
    from symusic import Score

    from musegen.midi.analysis import SeedAnalysis
    from musegen.presets import Preset

#: progress(done, total, message) -- called by engines; only the CLI draws bars.
Progress = Callable[[float, float, str], None]


@dataclass
class Request:
    """Everything an engine needs, resolved by the pipeline.

    Attributes
    ----------
    preset : Preset
        The style.  Its tempo/key fields are already resolved into the fields below.
    bars : int
        Number of new bars to generate (after the seed, when there is one).
    tempo_bpm : float
        Quarter-note tempo of the new material.
    meter : (int, int)
        Time signature of the new material, e.g. ``(6, 8)``.
    tonic : int
        Key tonic as a pitch class (0 = C).
    mode : str
        One of :data:`musegen.presets.MODES`.
    random_seed : int
        Seed of every random choice; same request, same output.
    variations : int
        Number of outputs wanted; engines that batch generate them together.
    infill : (int, int) or None
        Bars ``first..last`` (1-based, inclusive) of ``seed`` to rewrite so they lead
        into the bar after them (``musegen infill``); ``bars`` is then the gap's length
        and every note that starts outside the gap is kept.  Engines that can do it
        say so with ``infills = True``; planning refuses it for the others.
    infill_tracks : tuple of int or None
        The seed's tracks to rewrite inside the gap (None: all of them).
    seed : Score or None
        The user's MIDI sketch (ticks).  Outputs must start with it unchanged.
    seed_analysis : SeedAnalysis or None
        Tempo map, meter, key, track roles, melody and chords of ``seed``.
    continue_only : bool
        ``True`` for ``extend``: continue the seed's own parts, add no new ones.
    temperature : float
        Sampling temperature (1.0 = the model's own distribution).
    prompt : str
        Text prompt for neural engines (the preset description plus user words).
    options : dict
        Engine-specific options (preset ``[engine.options]`` merged with the CLI's).
    soundfont : path or None
        The SoundFont a MIDI result is rendered with (``--soundfont``, else the
        preset's); an engine that renders the seed itself uses it too.  ``None``:
        the preset's.
    add_roles : tuple of str or None
        ``accompany``: exactly these preset roles (``bass``, ``drums``, ``harmony``,
        ``pad``) are added to the seed, from its first bar, whatever roles the seed's
        own tracks were read as; ``bars`` may then be 0 (nothing after the seed).
    """

    preset: "Preset"
    bars: int
    tempo_bpm: float
    meter: tuple[int, int]
    tonic: int
    mode: str
    random_seed: int = 0
    variations: int = 1
    infill: "tuple[int, int] | None" = None
    infill_tracks: "tuple[int, ...] | None" = None
    seed: "Score | None" = None
    seed_analysis: "SeedAnalysis | None" = None
    continue_only: bool = False
    temperature: float = 1.0
    prompt: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    soundfont: "str | os.PathLike[str] | None" = None
    add_roles: "tuple[str, ...] | None" = None

    def __post_init__(self) -> None:
        check_request(self)

    @property
    def seconds(self) -> float:
        """Length of the new material in seconds."""
        beats = self.bars * self.meter[0] * 4.0 / self.meter[1]
        return beats * 60.0 / self.tempo_bpm


#: the ranges a request's fields must lie in; planning checks the user's values against
#: the same or narrower ones (``--tempo`` 20-400), so an engine never checks again
TEMPO_RANGE = (10.0, 1000.0)
TEMPERATURE_RANGE = (0.01, 5.0)
METER_DENOMINATORS = (1, 2, 4, 8, 16, 32)


def check_request(r: "Request") -> None:
    """Refuse a request whose fields are out of range, naming the field (done once, when it is made).

    Bars and variations are also held to their limits (:mod:`musegen.limits`).
    """
    import operator

    from musegen import limits
    from musegen.errors import ParameterError
    from musegen.theory import MODES

    def whole(name: str, value: Any, low: int) -> int:
        try:
            n = operator.index(value)
        except TypeError:
            n = None
        if n is None or isinstance(value, bool) or n < low:
            raise ParameterError(f"{name} must be a whole number of at least {low}, got {value!r}")
        return n

    # accompanying a seed adds parts under it and may add no bars after it
    least_bars = 0 if r.add_roles is not None and r.seed is not None else 1
    limits.check("bars", whole("bars", r.bars, least_bars), what=f"bars {r.bars}")
    limits.check("variations", whole("variations", r.variations, 1), what=f"variations {r.variations}")
    if not (isinstance(r.tempo_bpm, (int, float)) and TEMPO_RANGE[0] <= r.tempo_bpm <= TEMPO_RANGE[1]):
        raise ParameterError(f"tempo_bpm must be between {TEMPO_RANGE[0]:g} and {TEMPO_RANGE[1]:g}, got {r.tempo_bpm!r}")
    try:
        num, den = (operator.index(v) for v in r.meter)
    except (TypeError, ValueError):
        num = den = None
    if num is None or not 1 <= num <= 32 or den not in METER_DENOMINATORS:
        raise ParameterError(f"meter must be like (4, 4) or (6, 8), got {r.meter!r}")
    if r.mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}, got {r.mode!r}")
    if not 0 <= whole("tonic", r.tonic, 0) <= 11:
        raise ParameterError(f"tonic must be a pitch class 0-11, got {r.tonic!r}")
    low, high = TEMPERATURE_RANGE
    if not (isinstance(r.temperature, (int, float)) and low <= r.temperature <= high):
        raise ParameterError(f"temperature must be between {low:g} and {high:g}, got {r.temperature!r}")


@dataclass
class EngineOutput:
    """One variation: a score (ticks), audio ``(channels, samples)``, or both."""

    score: "Score | None" = None
    audio: "np.ndarray | None" = None
    sample_rate: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """What every engine provides.

    An engine that can sample several requests in one pass also provides
    ``prepare(request)`` (an object with ``batch_key``: requests with equal
    keys may share a pass, ``None`` runs alone; and ``rows``), ``max_rows``
    and ``run_batch(prepared, progress=None)``; batch runs then hand it
    requests of one key together (:mod:`musegen.engines.batching` groups
    them and owns the fallback).  A request's outputs must not depend on the
    requests batched with it, beyond float rounding: each request keeps its
    own random seed.  ``info["batch"]`` of an output says how many requests
    shared its pass.  Engines without these get one request at a time.
    """

    name: str
    #: "midi" (render needed), "audio" (already audio), or "both"
    produces: str

    def generate(self, request: Request, progress: Progress | None = None) -> list[EngineOutput]:
        """Return ``request.variations`` outputs for ``request``."""
        ...


def continuation_start(analysis: "SeedAnalysis") -> int:
    """Tick of the first bar line at or after a seed's last note end: where new bars begin."""
    end = int(analysis.end_tick)
    for b in analysis.bar_starts:
        if b >= end:
            return int(b)
    last = int(analysis.bar_starts[-1]) if analysis.bar_starts else 0
    bt = int(analysis.bar_ticks)
    return last + -(-max(0, end - last) // bt) * bt
