"""One result end to end: preset + sketch -> plan -> engine -> finish -> files.

This is the Python API behind the CLI's ``generate`` and ``extend``; batch
runs call :func:`generate_many` with a worker's jobs.  The stages, one module each:

- :mod:`~musegen.pipeline.args`: :class:`GenerateArgs`, the call as one typed object;
- :mod:`~musegen.pipeline.planning`: every value and limit checked once, the
  preset, sketch, tempo, meter, key and length resolved into the engine's
  :class:`~musegen.engines.base.Request`, the result names checked (:func:`plan`);
- the engine's ``generate`` (or ``generate_many``, :mod:`~musegen.pipeline.batching`);
- :mod:`~musegen.pipeline.finishing`: render -> post -> sidecar
  (:mod:`~musegen.pipeline.sidecar`) -> atomic writes.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

import musegen.style  # noqa: F401  (learned styles register as a preset source)
from musegen.pipeline.args import GenerateArgs
from musegen.pipeline.batching import generate_many
from musegen.pipeline.finishing import finish
from musegen.pipeline.infilling import infill  # noqa: F401  (public API: musegen infill)
from musegen.pipeline.planning import (
    MAX_BARS, MAX_SECONDS, MAX_VARIATIONS, MIN_SEED_TPQ, TAIL_SECONDS, Job, bar_seconds, engine_options_for,
    load_seed, plan, plan_request, resolve_preset,
)
from musegen.pipeline.result import Result
from musegen.presets import Preset

Progress = Callable[[float, float, str], None]

__all__ = [
    "GenerateArgs", "Job", "MAX_BARS", "MAX_SECONDS", "MAX_VARIATIONS", "MIN_SEED_TPQ", "Result", "TAIL_SECONDS",
    "accompany", "bar_seconds", "engine_options_for", "extend", "generate", "generate_many", "load_seed", "plan",
    "plan_request", "resolve_preset",
]


def generate(
    preset: str | Preset | None = None,
    *,
    midi: str | os.PathLike[str] | None = None,
    infill: str | Sequence[int] | None = None, infill_parts: str | Sequence[str] | None = None,  # see infilling
    bars: int | None = None,
    seconds: float | None = None,
    seed: int | None = None,
    variations: int = 1,
    engine: str | None = None,
    tempo: float | None = None,
    key: str | None = None,
    temperature: float | None = None,
    prompt: str = "",
    out_dir: str | os.PathLike[str] = "out",
    name: str | None = None,
    soundfont: str | None = None,
    sample_rate: int | None = None,
    post: Sequence[dict[str, Any]] | None = None,
    continue_only: bool = False,
    engine_options: dict[str, Any] | None = None,
    loop: bool = False,
    stems: bool | None = None,
    command: str = "generate",
    commercial_use: bool = False,
    parts: str | Sequence[str] | None = None,
    progress: Progress | None = None,
) -> list[Result]:
    """Generate ``variations`` results and write ``<stem>.wav/.mid/.json`` for each.

    Parameters
    ----------
    preset : str, Preset or None
        Preset name or path (default :data:`musegen.presets.DEFAULT_PRESET`).
    midi : path, optional
        A MIDI sketch; every output starts with it unchanged, then ``bars``
        new bars follow in its tempo, meter and key.
    bars, seconds : int or float, optional
        Length of the new material (one of them; default 16 bars, 8 after a seed).
    seed : int, optional
        Random seed; ``None`` draws one (it is recorded in the sidecar).
    post : list of dict, optional
        Post-processing chain; ``None`` uses the preset's, ``[]`` none.
    continue_only : bool
        Continue only the seed's own parts (``extend``).
    commercial_use : bool
        Refuse to run a model whose weights' licence forbids commercial use or is
        unknown (:func:`musegen.provenance.check_commercial_use`); without it, a
        non-commercial model is named in a one-line notice.
    loop : bool
        A seamless loop of whole bars: the preset's fades and trim left out, what
        rings past the end folded onto the start (audio engines: crossfaded), loop
        points in the WAV's ``smpl`` chunk and the sidecar's ``analysis.loop``.
    stems : bool or None
        Also one WAV and MIDI file per part, in ``<stem>.stems/`` (:mod:`musegen.pipeline.stems`).
    parts : str or list of str, optional
        ``accompany``: the parts to add under the sketch (see :func:`accompany`).

    Returns
    -------
    list of Result
    """
    args = GenerateArgs(
        preset=preset, midi=midi, bars=bars, seconds=seconds, seed=seed, variations=variations, engine=engine,
        tempo=tempo, key=key, temperature=temperature, prompt=prompt, out_dir=out_dir, name=name, infill=infill,
        soundfont=soundfont, sample_rate=sample_rate, post=post, continue_only=continue_only, infill_parts=infill_parts,
        engine_options=engine_options, loop=loop, stems=stems, command=command, commercial_use=commercial_use,
        parts=parts if parts is None or isinstance(parts, str) else tuple(parts),
    )
    report = progress or (lambda done, total, msg: None)
    t0 = time.perf_counter()
    job = plan(args)
    report(0, job.n_steps, f"{job.engine_name}: generating")
    t_eng = time.perf_counter()
    outputs = job.engine.generate(
        job.request, progress=lambda done, total, msg: report(done / max(total, 1e-9), job.n_steps, msg))
    results = finish(job, outputs, time.perf_counter() - t_eng, report)
    report(job.n_steps, job.n_steps, f"done in {time.perf_counter() - t0:.1f} s")
    return results


def extend(midi: str | os.PathLike[str], *, add_parts: bool = False, **kwargs: Any) -> list[Result]:
    """Continue a MIDI sketch: the sketch unchanged, then ``bars`` more of its own parts.

    ``add_parts=True`` also adds the preset's roles the sketch lacks.
    """
    return generate(midi=midi, continue_only=not add_parts, command="extend", **kwargs)


def accompany(midi: str | os.PathLike[str], *, parts: str | Sequence[str], **kwargs: Any) -> list[Result]:
    """A band under a melody: ``parts`` (``"bass,drums,piano"``; names in
    :data:`musegen.pipeline.accompaniment.PARTS`) added from its first bar to its last bar line,
    in its key, tempo and meter; the melody unchanged, nothing after it."""
    return generate(midi=midi, parts=parts, command="accompany", **kwargs)
