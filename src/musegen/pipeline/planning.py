"""Planning: a :class:`GenerateArgs` checked and resolved into an engine :class:`Request` and a :class:`Job`.

Every range and limit is checked here, once, before any engine runs: the
preset, the sketch, the length against the audio limits, the engine's
declared options, the result names against each other and against the
inputs (nothing is written over an input of the same run).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musegen import limits
from musegen.engines.base import Request
from musegen.errors import MidiError, ParameterError, check_range
from musegen.outputs import DEFAULT_TEMPLATE, bpm_field, ensure_dir, format_stem, key_field
from musegen.pipeline.args import GenerateArgs
from musegen.presets import DEFAULT_PRESET, Preset, load_preset
from musegen.provenance import licence_gate
from musegen.theory import MINOR_MODES, parse_key

log = logging.getLogger("musegen.pipeline")

#: Defaults of the ``bars``, ``seconds`` and ``variations`` limits (see :mod:`musegen.limits`;
#: ``MUSEGEN_MAX_BARS`` ... override them).
MAX_BARS = limits.LIMITS["bars"].default
MAX_SECONDS = limits.LIMITS["seconds"].default
MAX_VARIATIONS = limits.LIMITS["variations"].default
#: A sketch with fewer ticks per quarter is resampled: engines lay a sixteenth-note grid over it.
MIN_SEED_TPQ = 96
#: seconds of release rendered after the last note
TAIL_SECONDS = 1.0


def resolve_preset(preset: str | Preset | None) -> Preset:
    if isinstance(preset, Preset):
        return preset
    return load_preset(preset or DEFAULT_PRESET)


def load_seed(path: str | os.PathLike[str]):
    """Load and analyse a MIDI sketch: ``(score, analysis, sha256)``."""
    from musegen.midi.analysis import analyze_score
    from musegen.midi.io import load_midi

    score = load_midi(path)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if score.ticks_per_quarter < MIN_SEED_TPQ:
        # a coarse file (1 tick per quarter is legal) would give engines a zero-length grid step
        score = score.resample(480, min_dur=1)
    analysis = analyze_score(score)
    limits.check("audio_seconds", analysis.duration_s, what=f"sketch {str(path)!r} lasts {analysis.duration_s:.0f} s",
                 error=MidiError)
    return score, analysis, digest


def bar_seconds(tempo_bpm: float, meter: tuple[int, int]) -> float:
    return meter[0] * 4.0 / meter[1] * 60.0 / tempo_bpm


def plan_request(
    preset: Preset,
    *,
    bars: int | None = None,
    seconds: float | None = None,
    random_seed: int = 0,
    variations: int = 1,
    tempo: float | None = None,
    key: str | None = None,
    temperature: float | None = None,
    prompt: str = "",
    seed_score=None,
    seed_analysis=None,
    continue_only: bool = False,
    engine_options: dict[str, Any] | None = None,
    add_roles: tuple[str, ...] | None = None,
) -> Request:
    """Resolve a preset and user overrides into an engine :class:`Request`.

    With a seed, tempo, meter and key follow the seed unless overridden.
    ``add_roles`` (accompany): those roles under the seed and, by default, no new bars.
    """
    if bars is not None and seconds is not None:
        raise ParameterError("give either bars or seconds, not both")
    check_range("variations", variations, 1, math.inf, integer=True)
    limits.check("variations", variations, what=f"variations {variations}")
    check_range("seed", random_seed, 0, 2**63 - 1, integer=True)
    if temperature is not None:
        check_range("temperature", temperature, 0.01, 5.0)
    if tempo is not None:
        check_range("tempo", tempo, 20, 400)
    rng = random.Random(random_seed)

    if seed_analysis is not None:
        meter = tuple(seed_analysis.meter)
        tonic, mode = seed_analysis.key_tonic, seed_analysis.key_mode
        bpm = float(seed_analysis.tempo_map[-1][1]) if seed_analysis.tempo_map else float(seed_analysis.tempo_bpm)
        if not continue_only and _same_quality(preset.mode, mode):
            mode = preset.mode  # a dorian preset over a minor seed stays dorian
    else:
        meter = preset.meter
        bpm = float(preset.pick_tempo(rng))
        picked = preset.pick_key(rng)
        tonic = picked if picked is not None else rng.randrange(12)
        mode = preset.mode
    if tempo is not None:
        bpm = float(tempo)
    if key is not None:
        k_tonic, k_mode = parse_key(key)
        tonic, mode = k_tonic, (k_mode or mode)

    if bars is None and seconds is None:
        bars = 8 if seed_analysis is not None else 16
        if add_roles is not None and seed_analysis is not None:
            bars = 0
    if seed_analysis is not None and not (10 <= bpm <= 1000):
        raise MidiError(f"the sketch's tempo of {bpm:g} BPM is outside 10-1000 BPM (a corrupt tempo event?); "
                        "pass a tempo to override it")
    if seconds is not None:
        check_range("seconds", seconds, 0.5, math.inf)
        limits.check("seconds", seconds, what=f"seconds {seconds:g}")
        bars = max(1, math.ceil(seconds / bar_seconds(bpm, meter) - 1e-9))
    check_range("bars", bars, 0 if add_roles is not None and seed_analysis is not None else 1, math.inf,
                integer=True)
    limits.check("bars", bars, what=f"bars {bars}")
    total = bars * bar_seconds(bpm, meter)
    limits.check("seconds", total, what=f"bars {bars} at {bpm:g} BPM is {total:.0f} s")
    if seed_analysis is not None:
        limits.check("audio_seconds", total + seed_analysis.duration_s,
                     what=f"the sketch ({seed_analysis.duration_s:.0f} s) and {total:.0f} s of new music "
                          f"make {total + seed_analysis.duration_s:.0f} s")
    desc = preset.description + (f" {prompt.strip()}" if prompt and prompt.strip() else "")
    return Request(
        preset=preset,
        bars=int(bars),
        tempo_bpm=bpm,
        meter=(int(meter[0]), int(meter[1])),
        tonic=int(tonic),
        mode=str(mode),
        random_seed=int(random_seed),
        variations=int(variations),
        seed=seed_score,
        seed_analysis=seed_analysis,
        continue_only=continue_only,
        temperature=float(temperature if temperature is not None else preset.engine.temperature),
        prompt=desc,
        options={**preset.engine.options, **(engine_options or {})},
        add_roles=None if add_roles is None else tuple(add_roles),
    )


def _same_quality(mode_a: str, mode_b: str) -> bool:
    return (mode_a in MINOR_MODES) == (mode_b in MINOR_MODES)


@dataclass
class Job:
    """One :func:`~musegen.pipeline.generate` call planned up to the engine: its request and what finishing needs."""

    args: GenerateArgs
    request: Request
    preset: Preset
    engine: Any
    engine_name: str
    seed_sha: str | None
    out: Path
    sample_rate: int
    soundfont: Path
    steps: list[dict[str, Any]]
    stems: list[str]
    ignored_inputs: list[str] = field(default_factory=list)

    @property
    def midi(self) -> "str | os.PathLike[str] | None":
        return self.args.midi

    @property
    def command(self) -> str:
        return self.args.command

    @property
    def seconds_requested(self) -> float | None:
        """``seconds`` of the call: the audio is cut to it."""
        return None if self.args.seconds is None else float(self.args.seconds)

    @property
    def n_steps(self) -> int:
        """Progress steps of the call: the engine, then render, post and write per variation."""
        return self.request.variations * 3 + 1


def plan(args: GenerateArgs) -> Job:
    """Everything of a generate call before the engine runs (checks, seed, request, engine, names)."""
    from musegen.audio.chain import validate_chain
    from musegen.engines.registry import get_engine
    from musegen.render.synth import MAX_SR, MIN_SR, resolve_soundfont

    p = resolve_preset(args.preset)
    add_roles = None
    if args.parts is not None:
        from musegen.pipeline import accompaniment

        parts = accompaniment.parse_parts(args.parts)
        if args.midi is None:
            raise ParameterError("accompany needs a MIDI melody to accompany")
        p, add_roles = accompaniment.accompany_preset(p, parts), accompaniment.roles_of(parts)
        _check_accompany_engine(args.engine or p.engine.name)
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    seed_score = seed_analysis = seed_sha = None
    if args.midi is not None:
        seed_score, seed_analysis, seed_sha = load_seed(args.midi)
    elif args.continue_only:
        raise ParameterError("extend needs a MIDI sketch to continue")
    request = plan_request(
        p, bars=args.bars, seconds=args.seconds, random_seed=seed, variations=args.variations, tempo=args.tempo,
        key=args.key, temperature=args.temperature, prompt=args.prompt, seed_score=seed_score,
        seed_analysis=seed_analysis, continue_only=args.continue_only, engine_options=args.engine_options,
        add_roles=add_roles,
    )
    steps = list(p.post) if args.post is None else validate_chain(list(args.post))
    sr = int(args.sample_rate or p.render.sample_rate)
    check_range("sample rate", sr, MIN_SR, MAX_SR, integer=True)
    # the rendered result must fit the audio limits: refuse it now, not after the engine has run
    music_s = request.seconds + (seed_analysis.duration_s if seed_analysis is not None else 0.0)
    samples = int((music_s + TAIL_SECONDS) * sr) * 2
    limits.check("audio_samples", samples, what=f"{music_s:.0f} s of stereo audio at {sr} Hz is {samples:,} samples")
    sf_path = resolve_soundfont(args.soundfont if args.soundfont is not None else p.render.soundfont)
    request.soundfont = sf_path  # engines that render the seed themselves (musicgen's prompt) use it too
    engine_name = args.engine or p.engine.name
    if args.infill is not None:
        from musegen.pipeline.infilling import infill_request

        request = infill_request(args, request, seed_analysis, engine_name)
    request.options = engine_options_for(p, engine_name, args.engine_options)
    licence_gate(engine_name, request.options, commercial_use=bool(args.commercial_use or p.engine.commercial_use))
    out = ensure_dir(args.out_dir)
    eng = get_engine(engine_name)
    stems = result_stems(args, request, p.name, engine_name)
    check_result_paths(out, stems, args.midi, sf_path, request.options)
    from musegen.pipeline.stems import asked, check_plan

    if asked(args.stems, p):
        check_plan(steps, out, stems, [args.midi, sf_path, request.options.get("audio_prompt"),
                                       request.options.get("model")])
    unused = unused_inputs(eng, engine_name, args.prompt, request)
    return Job(args, request, p, eng, engine_name, seed_sha, out, sr, sf_path, steps, stems, unused)


#: engines that can add parts under a sketch's own bars (``accompany``)
ACCOMPANY_ENGINES = ("procedural", "symbolic")


def _check_accompany_engine(name: str) -> None:
    if name not in ACCOMPANY_ENGINES:
        raise ParameterError(f"engine {name!r} cannot accompany a melody (it writes audio, not parts under "
                             f"given bars); use one of {', '.join(ACCOMPANY_ENGINES)}")


def result_stems(args: GenerateArgs, request: Request, preset_name: str, engine_name: str) -> list[str]:
    """The file stem of each variation, from ``--name`` or the default template."""
    template = args.name or (DEFAULT_TEMPLATE + ("-v{variation}" if request.variations > 1 else ""))
    if args.midi is not None and args.name is None:
        template = "{midi}-" + template
    return [
        format_stem(template, preset=preset_name, seed=request.random_seed, variation=i + 1, engine=engine_name,
                    midi=Path(args.midi).stem if args.midi is not None else "", bars=request.bars,
                    tempo=bpm_field(request.tempo_bpm), bpm=bpm_field(request.tempo_bpm),
                    key=key_field(request.tonic, request.mode))
        for i in range(request.variations)
    ]


def engine_options_for(preset: Preset, engine_name: str, overrides: dict[str, Any] | None, *,
                       note: bool = True) -> dict[str, Any]:
    """The options handed to ``engine_name``: the preset's ``[engine.options]`` and ``overrides`` on top.

    The preset's options are its own engine's: with another engine they are
    left out (a log line names them unless ``note`` is false).  Both are
    checked against the engine's declared options
    (:mod:`musegen.engines.options`) before anything runs; ``audio_prompt``
    is an input, which an engine that cannot use it is told
    about instead (see :func:`unused_inputs`).

    Raises
    ------
    ParameterError
        An unknown option (the known ones listed) or a value out of its range.
    """
    from musegen.engines.registry import check_options, engine_options

    ours = dict(preset.engine.options)
    if ours and engine_name != preset.engine.name:
        if note:
            log.info("musegen: note: the preset's [engine.options] (%s) are for engine %r; not handed to %r",
                     ", ".join(sorted(ours)), preset.engine.name, engine_name)
        ours = {}
    spec = engine_options(engine_name)
    inputs = () if spec is not None and "audio_prompt" in spec.options else ("audio_prompt",)
    check_options(engine_name, ours, where=f"preset {preset.name!r} [engine.options]")
    merged = {**ours, **(overrides or {})}
    check_options(engine_name, {k: v for k, v in merged.items() if k not in inputs})
    return merged


def unused_inputs(engine: Any, engine_name: str, prompt: str, request: Request) -> list[str]:
    """The inputs of the call that ``engine`` does not use (``--prompt``, ``--audio-prompt``), each said once.

    One policy for all of them: the run goes on without the input, a log
    line says so, and the sidecar records it (``engine.info.ignored_inputs``).
    An engine lists the inputs it uses in its ``inputs`` attribute.
    """
    uses = getattr(engine, "inputs", frozenset())
    unused = []
    if prompt and prompt.strip() and "prompt" not in uses:
        unused.append("--prompt")
    if request.options.get("audio_prompt") is not None and "audio_prompt" not in uses:
        request.options.pop("audio_prompt")  # not handed on: it is named here, not among unknown options
        unused.append("--audio-prompt")
    for name in unused:
        log.info("musegen: note: engine %r does not use %s; ignored", engine_name, name)
    return unused


def check_result_paths(out: Path, stems: list[str], midi, soundfont, options: dict[str, Any]) -> None:
    """Before the engine runs: no two results share a file, and none lands on an input of the call."""
    from musegen.outputs import check_outputs

    outputs = [out / f"{stem}.{ext}" for stem in stems for ext in ("wav", "mid", "json")]
    inputs = [midi, soundfont]
    for key in ("audio_prompt", "model"):
        ref = options.get(key)
        if isinstance(ref, (str, os.PathLike)):
            inputs.append(ref)
            if key == "model":  # outputs could land among a checkpoint's files
                inputs.extend(Path(ref) / name for name in ("config.json", "tokenizer.json", "model.safetensors"))
    twice = next((s for i, s in enumerate(stems) if s in stems[:i]), None)
    if twice is not None:
        raise ParameterError(f"the name template gives two of {len(stems)} variations the name {twice!r} "
                             "(one would be lost): put {variation} in --name")
    check_outputs(outputs, inputs)
