"""The procedural engine: rule-based music from a preset, offline and fast."""

from __future__ import annotations

import random
from typing import Any

from musegen.engines.base import EngineOutput, Progress, Request
from musegen.engines.options import Option, OptionSet
from musegen.engines.procedural.arrange import build_score
from musegen.engines.procedural.bass import PATTERNS as BASS_PATTERNS
from musegen.engines.procedural.chance import derive_seed
from musegen.engines.procedural.compose import Settings, compose, melody_scale
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.sketch import ACCOMPANY_FROM
from musegen.engines.procedural.theory import key_label

DEFAULT_TPQ = 480

#: the engine's options (``--option KEY=VALUE`` or a preset's ``[engine.options]``)
OPTIONS = OptionSet("procedural", [
    Option("bass_pattern", "choice", None, "the bass line's pattern (default: the preset's style decides)",
           choices=tuple(BASS_PATTERNS), nullable=True),
    Option("fills", "bool", True, "drum fills at phrase ends"),
    Option("ending", "bool", True, "a cadence and a final hit in the last bar"),
    Option("swing_unit", "choice", None, "the note value swing delays (default: the preset's groove)",
           choices=("eighth", "sixteenth"), nullable=True),
    Option("accompany_from", "choice", "start", "where parts a preset adds to a sketch begin: with its first "
           "bar (start), or only after it (end)", choices=ACCOMPANY_FROM),
])


class ProceduralEngine:
    """Harmony, melody, bass, accompaniment and drums written by rules from the preset.

    Parameters
    ----------
    **options
        Defaults for the per-request options (see :data:`OPTIONS`, or
        ``musegen engines show procedural``); an unknown name is refused.
    """

    name = "procedural"
    produces = "midi"
    OPTIONS = OPTIONS

    def __init__(self, **options: Any):
        given = OPTIONS.parse(options)
        self.options = {name: getattr(given, name) for name in given.given}

    def generate(self, request: Request, progress: Progress | None = None) -> list[EngineOutput]:
        """One :class:`EngineOutput` (score + info) per variation; same request, same notes."""
        opts = OPTIONS.parse({**self.options, **(request.options or {})}).as_dict()
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
                             bass_pattern=opts["bass_pattern"], fills=opts["fills"],
                             ending=opts["ending"], swing_unit=opts["swing_unit"])
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
            outputs.append(EngineOutput(score=score, info=info))
            if progress is not None:
                progress(i + 1, n, f"variation {i + 1}/{n}")
        return outputs
