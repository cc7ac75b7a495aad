"""The arguments of one :func:`musegen.pipeline.generate` call, as one typed object."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from musegen.presets import Preset


@dataclass(frozen=True)
class GenerateArgs:
    """What the caller asked for, before anything is resolved (see :func:`musegen.pipeline.generate`).

    Planning (:func:`musegen.pipeline.planning.plan`) checks every value and
    limit once; engines then trust the :class:`~musegen.engines.base.Request`
    it builds.
    """

    preset: "str | Preset | None" = None
    midi: "str | os.PathLike[str] | None" = None
    #: ``infill``: the sketch's bars to rewrite (``"9-12"``) and its parts to rewrite in them
    #: (:mod:`musegen.pipeline.infilling`)
    infill: "str | tuple[int, ...] | None" = None
    infill_parts: "str | tuple[str, ...] | None" = None
    bars: int | None = None
    seconds: float | None = None
    seed: int | None = None
    variations: int = 1
    engine: str | None = None
    tempo: float | None = None
    key: str | None = None
    temperature: float | None = None
    prompt: str = ""
    out_dir: "str | os.PathLike[str]" = "out"
    name: str | None = None
    soundfont: str | None = None
    sample_rate: int | None = None
    post: Sequence[dict[str, Any]] | None = None
    continue_only: bool = False
    engine_options: dict[str, Any] | None = None
    loop: bool = False
    stems: bool | None = None  # None: the preset's [render] stems
    command: str = "generate"
    commercial_use: bool = False
    #: ``accompany``: the part names to add under the sketch (:mod:`musegen.pipeline.accompaniment`)
    parts: "str | tuple[str, ...] | None" = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
