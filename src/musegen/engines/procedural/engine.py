"""The procedural engine: rule-based music from a preset, offline and fast."""

from __future__ import annotations

import operator
import random
from typing import Any

from musegen.engines.base import EngineOutput, Progress, Request
from musegen.engines.procedural.arrange import build_score
from musegen.engines.procedural.bass import PATTERNS as BASS_PATTERNS
from musegen.engines.procedural.chance import derive_seed
from musegen.engines.procedural.compose import Settings, compose, melody_scale
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.theory import key_label
from musegen.errors import ParameterError
from musegen.presets import MODES

DEFAULT_TPQ = 480

#: options this engine understands: name -> (check, description)
OPTIONS: dict[str, tuple[Any, str]] = {
    "bass_pattern": (lambda v: v is None or v in BASS_PATTERNS, f"one of {', '.join(BASS_PATTERNS)}"),
    "fills": (lambda v: isinstance(v, bool), "true or false"),
    "ending": (lambda v: isinstance(v, bool), "true or false"),
    "swing_unit": (lambda v: v is None or v in ("eighth", "sixteenth"), "'eighth' or 'sixteenth'"),
}


def check_options(options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Known options validated, and the names of the unknown ones (which are ignored)."""
    known, ignored = {}, []
    for key, value in options.items():
        if key not in OPTIONS:
            ignored.append(key)
            continue
        ok, what = OPTIONS[key]
        if not ok(value):
            raise ParameterError(f"procedural engine option {key!r} must be {what}, got {value!r}")
        known[key] = value
    return known, sorted(ignored)


def _check_request(r: Request) -> None:
    if not isinstance(r.bars, int) or isinstance(r.bars, bool) or not 1 <= r.bars <= 4096:
        raise ParameterError(f"bars must be an integer from 1 to 4096, got {r.bars!r}")
    if not isinstance(r.variations, int) or isinstance(r.variations, bool) or not 1 <= r.variations <= 1024:
        raise ParameterError(f"variations must be an integer from 1 to 1024, got {r.variations!r}")
    if not (isinstance(r.tempo_bpm, (int, float)) and 10 <= r.tempo_bpm <= 1000):
        raise ParameterError(f"tempo_bpm must be between 10 and 1000, got {r.tempo_bpm!r}")
    num, den = r.meter
    if not (1 <= int(num) <= 32 and int(den) in (1, 2, 4, 8, 16, 32)):
        raise ParameterError(f"meter must be like (4, 4) or (6, 8), got {r.meter!r}")
    if r.mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}, got {r.mode!r}")
    try:
        tonic = operator.index(r.tonic)
    except TypeError:
        tonic = -1
    if not 0 <= tonic <= 11:
        raise ParameterError(f"tonic must be a pitch class 0-11, got {r.tonic!r}")
    if not (isinstance(r.temperature, (int, float)) and 0 < r.temperature <= 10):
        raise ParameterError(f"temperature must be in (0, 10], got {r.temperature!r}")


class ProceduralEngine:
    """Harmony, melody, bass, accompaniment and drums written by rules from the preset.

    Parameters
    ----------
    **options
        Defaults for the per-request options (see :data:`OPTIONS`); unknown
        names are ignored and reported in each output's ``info``.
    """

    name = "procedural"
    produces = "midi"

    def __init__(self, **options: Any):
        self.options, self.ignored = check_options(options)

    def generate(self, request: Request, progress: Progress | None = None) -> list[EngineOutput]:
        """One :class:`EngineOutput` (score + info) per variation; same request, same notes."""
        _check_request(request)
        opts, ignored = check_options(dict(request.options or {}))
        opts = {**self.options, **opts}
        ignored = sorted(set(ignored) | set(self.ignored))
        temperature = float(request.temperature)
        outputs = []
        n = request.variations
        for i in range(n):
            seed = derive_seed(request.random_seed, i)
            rng = random.Random(seed)
            if request.seed is not None:
                from musegen.engines.procedural.continuation import continue_seed

                score, info = continue_seed(request, rng, opts)
            else:
                grid = Grid(DEFAULT_TPQ, int(request.meter[0]), int(request.meter[1]), request.bars)
                s = Settings(request.preset, grid, request.tonic, request.mode, rng, temperature,
                             bass_pattern=opts.get("bass_pattern"), fills=opts.get("fills", True),
                             ending=opts.get("ending", True), swing_unit=opts.get("swing_unit"))
                parts, info = compose(s)
                score = build_score(parts, tpq=DEFAULT_TPQ, tempo_bpm=request.tempo_bpm, meter=request.meter,
                                    tonic=request.tonic, mode=request.mode)
                info["tracks"] = [p.describe() for p in parts]
            info = {
                "engine": self.name,
                "preset": request.preset.name,
                "variation": i,
                "seed": seed,
                "tempo_bpm": float(request.tempo_bpm),
                "meter": f"{request.meter[0]}/{request.meter[1]}",
                "key": key_label(request.tonic, request.mode),
                "scale": melody_scale(request.preset, request.mode),
                "bars": request.bars,
                "chord_style": request.preset.harmony.chord_style,
                "drum_pattern": request.preset.groove.drum_pattern,
                "temperature": temperature,
                **info,
            }
            if ignored:
                info["ignored_options"] = ignored
            outputs.append(EngineOutput(score=score, info=info))
            if progress is not None:
                progress(i + 1, n, f"variation {i + 1}/{n}")
        return outputs
