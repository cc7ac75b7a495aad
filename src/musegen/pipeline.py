"""One result end to end: preset + seed -> engine -> render -> post -> files.

This is the Python API behind the CLI's ``generate`` and ``extend``; batch
runs call it once per job.  Everything is resolved here (tempo, meter, key,
length, seeds) so that engines get a complete :class:`Request`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import platform
import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import musegen.style  # noqa: F401  (learned styles register as a preset source)
from musegen import __version__, limits
from musegen.engines.base import Request, continuation_start
from musegen.errors import EngineError, MidiError, ParameterError, check_range
from musegen.outputs import (DEFAULT_TEMPLATE, ResultFiles, bpm_field, ensure_dir, format_stem, key_field,
                             write_json)
from musegen.presets import DEFAULT_PRESET, Preset, load_preset
from musegen.provenance import provenance, wav_metadata
from musegen.theory import MINOR_MODES, NOTE_NAMES, parse_key

Progress = Callable[[float, float, str], None]
log = logging.getLogger(__name__)

#: Defaults of the ``bars``, ``seconds`` and ``variations`` limits (see :mod:`musegen.limits`;
#: ``MUSEGEN_MAX_BARS`` ... override them).
MAX_BARS = limits.LIMITS["bars"].default
MAX_SECONDS = limits.LIMITS["seconds"].default
MAX_VARIATIONS = limits.LIMITS["variations"].default
#: A sketch with fewer ticks per quarter is resampled: engines lay a sixteenth-note grid over it.
MIN_SEED_TPQ = 96
TAIL_SECONDS = 1.0


@dataclass
class Result:
    """One generated item: its files and its sidecar (as written)."""

    stem: str
    wav: Path
    mid: Path | None
    json: Path
    sidecar: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stem": self.stem,
            "wav": str(self.wav),
            "mid": str(self.mid) if self.mid else None,
            "json": str(self.json),
            "analysis": self.sidecar.get("analysis", {}),
            "parameters": self.sidecar.get("parameters", {}),
        }


# -- validation of plain parameters ------------------------------------------

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
) -> Request:
    """Resolve a preset and user overrides into an engine :class:`Request`.

    With a seed, tempo, meter and key follow the seed unless overridden.
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
    if seed_analysis is not None and not (10 <= bpm <= 1000):
        raise MidiError(f"the sketch's tempo of {bpm:g} BPM is outside 10-1000 BPM (a corrupt tempo event?); "
                        "pass a tempo to override it")
    if seconds is not None:
        check_range("seconds", seconds, 0.5, math.inf)
        limits.check("seconds", seconds, what=f"seconds {seconds:g}")
        bars = max(1, math.ceil(seconds / bar_seconds(bpm, meter) - 1e-9))
    check_range("bars", bars, 1, math.inf, integer=True)
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
    )


def _same_quality(mode_a: str, mode_b: str) -> bool:
    return (mode_a in MINOR_MODES) == (mode_b in MINOR_MODES)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"musegen": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "symusic", "soundfile", "soxr", "pyloudnorm", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _apply_tempo_override(score, request: Request) -> None:
    """With ``--tempo`` over a seed, the new bars switch to the asked tempo."""
    from symusic import Tempo

    a = request.seed_analysis
    current = a.tempo_map[-1][1] if a.tempo_map else a.tempo_bpm
    if abs(current - request.tempo_bpm) > 1e-6:
        score.tempos.append(Tempo(continuation_start(a), request.tempo_bpm))
        score.tempos.sort(key=lambda t: t.time)


def generate(
    preset: str | Preset | None = None,
    *,
    midi: str | os.PathLike[str] | None = None,
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
    command: str = "generate",
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

    Returns
    -------
    list of Result
    """
    call = dict(locals())  # the arguments: nothing else is bound yet
    call.pop("progress")
    t0 = time.perf_counter()
    job = _prepare(call)
    n_steps = variations * 3 + 1
    report = progress or (lambda done, total, msg: None)

    def engine_progress(done: float, total: float, msg: str) -> None:
        report(done / max(total, 1e-9), n_steps, msg)

    report(0, n_steps, f"{job.engine_name}: generating")
    t_eng = time.perf_counter()
    outputs = job.engine.generate(job.request, progress=engine_progress)
    results = _finish(job, outputs, time.perf_counter() - t_eng, report)
    report(n_steps, n_steps, f"done in {time.perf_counter() - t0:.1f} s")
    return results


def generate_many(calls: Sequence[dict[str, Any]]) -> Iterator[tuple[int, "list[Result] | Exception", float]]:
    """Several :func:`generate` calls, with one engine call for the requests of each engine.

    Engines with a ``generate_many`` method (see :class:`musegen.engines.base.Engine`)
    get their requests together, so engines that batch sample them as one
    batch; others get them one at a time.  A failure stays with its call: when
    the engine's batched call fails, its requests are generated one by one,
    so one bad request cannot fail the others.

    Parameters
    ----------
    calls : sequence of dict
        Keyword arguments of :func:`generate` (``progress`` excepted).

    Yields
    ------
    (int, list of Result or Exception, float)
        The index of a call, its results or what it raised, and its own cost
        in seconds (its preparation and finishing, and its share of the
        engine call), as each call finishes with its files written.
    """
    jobs: dict[int, _Job] = {}
    cost: dict[int, float] = {}
    for i, kwargs in enumerate(calls):
        t = time.perf_counter()
        try:
            jobs[i] = _prepare(kwargs)
        except Exception as exc:  # noqa: BLE001 - reported for this call only
            yield i, exc, time.perf_counter() - t
            continue
        cost[i] = time.perf_counter() - t
    by_engine: dict[int, list[int]] = {}
    for i, job in jobs.items():
        by_engine.setdefault(id(job.engine), []).append(i)
    for members in by_engine.values():
        engine = jobs[members[0]].engine
        outcomes = _run_engine(engine, [jobs[i].request for i in members])
        for i, (outputs, t_eng) in zip(members, outcomes):
            t = time.perf_counter()
            if not isinstance(outputs, Exception):
                try:
                    outputs = _finish(jobs[i], outputs, t_eng, lambda done, total, msg: None)
                except Exception as exc:  # noqa: BLE001
                    outputs = exc
            yield i, outputs, cost[i] + t_eng + time.perf_counter() - t


def _run_engine(engine, requests: list[Request]) -> list[tuple["list | Exception", float]]:
    """``(outputs or the exception, engine seconds)`` per request: batched if the engine can."""
    many = getattr(engine, "generate_many", None)
    if many is not None and len(requests) > 1:
        t = time.perf_counter()
        try:
            outs = many(requests)
            if len(outs) != len(requests):
                raise EngineError(f"engine {engine.name!r} returned {len(outs)} results for {len(requests)} requests")
        except MemoryError:  # retrying would only run out again, and slower
            raise
        except Exception as exc:  # noqa: BLE001 - one bad request must not fail its neighbours: retry one by one
            log.warning("%s: the batched call of %d requests failed (%s); generating them one by one",
                        engine.name, len(requests), _one_line(exc))
        else:
            share = (time.perf_counter() - t) / len(requests)
            return [(out, share) for out in outs]
    done: list[tuple[list | Exception, float]] = []
    for request in requests:
        t = time.perf_counter()
        try:
            done.append((engine.generate(request), time.perf_counter() - t))
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            done.append((exc, time.perf_counter() - t))
    return done


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for a log line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class _Job:
    """A :func:`generate` call resolved up to the engine: its request and what finishing needs."""

    request: Request
    preset: Preset
    engine: Any
    engine_name: str
    midi: "str | os.PathLike[str] | None"
    seed_sha: str | None
    out: Path
    sample_rate: int
    soundfont: Any
    steps: list[dict[str, Any]]
    stems: list[str]
    command: str
    ignored_inputs: list[str] = field(default_factory=list)
    seconds_requested: float | None = None  # ``seconds`` of the call: the audio is cut to it


def engine_options_for(preset: Preset, engine_name: str, overrides: dict[str, Any] | None, *,
                       note: bool = True) -> dict[str, Any]:
    """The options handed to ``engine_name``: the preset's ``[engine.options]`` and ``overrides`` on top.

    The preset's options are its own engine's: with another engine they are
    left out (a log line names them unless ``note`` is false).  Both are
    checked against the engine's declared options
    (:mod:`musegen.engines.options`) before anything runs; ``audio_prompt``
    is an input, which an engine that cannot use it is told
    about instead (see :func:`_unused_inputs`).

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


def _unused_inputs(engine: Any, engine_name: str, prompt: str, request: Request) -> list[str]:
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


def _prepare(call: dict[str, Any]) -> _Job:
    """Everything of :func:`generate` before the engine runs (checks, seed, request, engine).

    ``call``: keyword arguments of :func:`generate`, bound to its signature (so its defaults
    apply, and an unknown name raises ``TypeError`` as calling it would).
    """
    import inspect
    from types import SimpleNamespace

    from musegen.audio.chain import validate_chain
    from musegen.engines.registry import get_engine

    bound = inspect.signature(generate).bind(**call)
    bound.apply_defaults()
    c = SimpleNamespace(**bound.arguments)
    p = resolve_preset(c.preset)
    seed = secrets.randbelow(2**31) if c.seed is None else c.seed
    seed_score = seed_analysis = seed_sha = None
    if c.midi is not None:
        seed_score, seed_analysis, seed_sha = load_seed(c.midi)
    elif c.continue_only:
        raise ParameterError("extend needs a MIDI sketch to continue")
    request = plan_request(
        p, bars=c.bars, seconds=c.seconds, random_seed=seed, variations=c.variations, tempo=c.tempo,
        key=c.key, temperature=c.temperature, prompt=c.prompt, seed_score=seed_score,
        seed_analysis=seed_analysis, continue_only=c.continue_only, engine_options=c.engine_options,
    )
    steps = list(p.post) if c.post is None else validate_chain(list(c.post))
    sr = int(c.sample_rate or p.render.sample_rate)
    from musegen.render.synth import MAX_SR, MIN_SR, resolve_soundfont

    check_range("sample rate", sr, MIN_SR, MAX_SR, integer=True)
    # the rendered result must fit the audio limits: refuse it now, not after the engine has run
    music_s = request.seconds + (seed_analysis.duration_s if seed_analysis is not None else 0.0)
    samples = int((music_s + TAIL_SECONDS) * sr) * 2
    limits.check("audio_samples", samples, what=f"{music_s:.0f} s of stereo audio at {sr} Hz is {samples:,} samples")
    sf_path = resolve_soundfont(c.soundfont if c.soundfont is not None else p.render.soundfont)
    request.soundfont = sf_path  # engines that render the seed themselves (musicgen's prompt) use it too
    engine_name = c.engine or p.engine.name
    request.options = engine_options_for(p, engine_name, c.engine_options)
    out = ensure_dir(c.out_dir)
    eng = get_engine(engine_name)
    template = c.name or (DEFAULT_TEMPLATE + ("-v{variation}" if c.variations > 1 else ""))
    if c.midi is not None and c.name is None:
        template = "{midi}-" + template
    stems = [
        format_stem(template, preset=p.name, seed=request.random_seed, variation=i + 1, engine=engine_name,
                    midi=Path(c.midi).stem if c.midi is not None else "", bars=request.bars,
                    tempo=bpm_field(request.tempo_bpm), bpm=bpm_field(request.tempo_bpm),
                    key=key_field(request.tonic, request.mode))
        for i in range(request.variations)
    ]
    _check_result_paths(out, stems, c.midi, sf_path, request.options)
    unused = _unused_inputs(eng, engine_name, c.prompt, request)
    return _Job(request, p, eng, engine_name, c.midi, seed_sha, out, sr, sf_path, steps, stems, c.command, unused,
                seconds_requested=None if c.seconds is None else float(c.seconds))


def _check_result_paths(out: Path, stems: list[str], midi, soundfont, options: dict[str, Any]) -> None:
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


def _finish(job: _Job, outputs: list, t_eng: float, report: Progress) -> list[Result]:
    """Render, post-process and write the engine's outputs of one call."""
    request, variations = job.request, job.request.variations
    if len(outputs) != variations:
        raise EngineError(f"engine {job.engine_name!r} returned {len(outputs)} outputs for {variations} variations")
    n_steps = variations * 3 + 1
    report(1, n_steps, "rendering")
    for item in outputs if job.ignored_inputs else ():
        item.info["ignored_inputs"] = list(job.ignored_inputs)
    results = []
    for i, item in enumerate(outputs):
        results.append(
            _finish_item(
                item, request, job.preset, job.stems[i], job.out, job.sample_rate, job.soundfont, job.steps, job.command,
                job.engine_name, i, job.midi, job.seed_sha, report, 1 + 3 * i, n_steps, t_eng / variations,
                seconds_requested=job.seconds_requested,
            )
        )
    return results


def _key_analysis(score, y, sr: int, request: Request) -> dict[str, Any]:
    """The sidecar's key figures: the key asked for and the key the result is in.

    ``key`` is measured: from the result's MIDI notes (drums aside, duration-weighted,
    :func:`musegen.midi.keys.estimate_key`) where there is a score, else from the audio's
    chroma (:func:`musegen.audio.analysis.analyze_audio`); ``key_from`` says which
    (``None``: nothing to measure, ``key`` is then ``None``).  ``out_of_key_ratio``: the
    share of the MIDI's pitched notes outside the requested key's scale.
    """
    requested = f"{NOTE_NAMES[request.tonic]} {request.mode}"
    out: dict[str, Any] = {"key": None, "key_requested": requested, "key_from": None, "key_confidence": None}
    if score is not None:
        import numpy as np

        from musegen.midi.keys import estimate_key, pitch_class_histogram, scale_pitch_classes

        hist = pitch_class_histogram(score)
        pcs = [n.pitch % 12 for t in score.tracks if not t.is_drum for n in t.notes]
        if pcs:
            tonic, mode, confidence = estimate_key(hist)
            scale = scale_pitch_classes(request.tonic, request.mode)
            out.update(key=f"{NOTE_NAMES[tonic]} {mode}", key_from="midi", key_confidence=round(confidence, 3),
                       out_of_key_ratio=round(float(np.mean([pc not in scale for pc in pcs])), 4))
        return out
    if y is not None and y.shape[1] >= sr:
        from musegen.audio.analysis import analyze_audio

        measured = analyze_audio(y, sr=sr).get("key")
        if measured:
            tonic, mode = parse_key(measured)
            out.update(key=f"{NOTE_NAMES[tonic]} {mode}", key_from="audio")
    return out


def _result_seconds(item, request: Request, seconds: float) -> float:
    """Length of a result asked for as ``seconds`` of new music.

    A score: the sketch up to where its new bars start, then ``seconds``.  Audio: what
    the engine made (a lead-in such as an audio prompt, then ``request.seconds`` of new
    music), less what the bars' rounding added to ``seconds``.
    """
    if item.audio is not None:
        return item.audio.shape[-1] / item.sample_rate - max(0.0, request.seconds - seconds)
    a = request.seed_analysis
    if a is None:
        return seconds
    from musegen.midi.timing import ticks_to_seconds

    return float(ticks_to_seconds(continuation_start(a), a.tempo_map, a.tpq)) + seconds


#: fade-out where the audio of a result asked for in seconds is cut to its length
CUT_FADE_S = 0.05


def _fit_length(y, *, sr: int, seconds: float):
    """``y`` made ``seconds`` long: cut with a :data:`CUT_FADE_S` fade-out, or padded with silence."""
    import numpy as np

    from musegen.audio.effects import fade_out

    n = int(round(seconds * sr))
    if y.shape[1] > n:
        return fade_out(y[:, :n], sr=sr, seconds=min(CUT_FADE_S, n / sr))
    if y.shape[1] < n:
        return np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return y


def _post(y, *, sr: int, steps: list[dict[str, Any]], seconds: float | None):
    """The post chain; with ``seconds``, the audio is fitted to that length before the chain's last
    fade-out (so the fade ends the file) and after the chain (a reverb's tail is cut)."""
    from musegen.audio.chain import apply_chain

    if seconds is None:
        return apply_chain(y, sr=sr, steps=steps)
    y = _fit_length(y, sr=sr, seconds=seconds)
    last_fade = max((i for i, step in enumerate(steps) if step["op"] == "fade_out"), default=None)
    if last_fade is not None:
        y, sr = apply_chain(y, sr=sr, steps=steps[:last_fade])
        y = _fit_length(y, sr=sr, seconds=seconds)
        steps = steps[last_fade:]
    y, sr = apply_chain(y, sr=sr, steps=steps)
    return _fit_length(y, sr=sr, seconds=seconds), sr


def _finish_item(item, request, p, stem, out, sr, sf_path, steps, command,
                 engine_name, index, midi, seed_sha, report, step0, n_steps, t_engine, *,
                 seconds_requested: float | None = None):
    from musegen.audio.analysis import loudness_lufs, peak_dbfs
    from musegen.audio.io import resample, write_audio
    from musegen.midi.io import save_midi
    from musegen.render.synth import render_score

    timings = {"engine_s": round(t_engine, 4)}
    score = item.score
    if score is not None and request.seed_analysis is not None:
        _apply_tempo_override(score, request)
    t = time.perf_counter()
    if item.audio is not None:
        y = item.audio
        if item.sample_rate != sr:
            y = resample(y, sr=item.sample_rate, target_sr=sr)
    elif score is not None:
        y = render_score(score, sample_rate=sr, soundfont=sf_path, gain_db=p.render.gain_db,
                         tail_seconds=TAIL_SECONDS)
    else:
        raise EngineError(f"engine {engine_name!r} returned neither a score nor audio")
    timings["render_s"] = round(time.perf_counter() - t, 4)
    report(step0 + 1, n_steps, f"{stem}: post-processing")
    t = time.perf_counter()
    target_s = None if seconds_requested is None else _result_seconds(item, request, seconds_requested)
    y, out_sr = _post(y, sr=sr, steps=steps, seconds=target_s)
    timings["post_s"] = round(time.perf_counter() - t, 4)

    files = ResultFiles(out, stem)
    analysis = {
        "duration_s": round(y.shape[1] / out_sr, 3),
        "seconds_requested": seconds_requested,
        "sample_rate": out_sr,
        "channels": int(y.shape[0]),
        "lufs": round(float(loudness_lufs(y, sr=out_sr)), 2),
        "peak_dbfs": round(max(-120.0, float(peak_dbfs(y))), 2),
        "tempo_bpm": request.tempo_bpm,
        "meter": f"{request.meter[0]}/{request.meter[1]}",
        **_key_analysis(score, y, out_sr, request),
        "bars": request.bars,
        "music_s": round(request.seconds + (request.seed_analysis.duration_s if request.seed_analysis else 0), 3),
    }
    if score is not None:
        analysis["n_notes"] = int(sum(len(t.notes) for t in score.tracks))
        analysis["tracks"] = [
            {"name": t.name, "program": int(t.program), "is_drum": bool(t.is_drum), "notes": len(t.notes)}
            for t in score.tracks
        ]
    sidecar = {
        "musegen": __version__,
        "command": command,
        "stem": stem,
        "files": {"wav": files.wav.name, "mid": files.mid.name if score is not None else None,
                  "json": files.json.name},
        "parameters": {
            "preset": p.name,
            "engine": engine_name,
            "seed": request.random_seed,
            "variation": index + 1,
            "variations": request.variations,
            "bars": request.bars,
            "seconds": seconds_requested,
            "tempo_bpm": request.tempo_bpm,
            "meter": list(request.meter),
            "key": NOTE_NAMES[request.tonic],
            "mode": request.mode,
            "temperature": request.temperature,
            "prompt": request.prompt,
            "continue_only": request.continue_only,
            "midi": str(midi) if midi is not None else None,
            "midi_sha256": seed_sha,
            "soundfont": str(sf_path),
            "sample_rate": out_sr,
            "post": steps,
            "engine_options": request.options,
        },
        "engine": {"name": engine_name, "info": item.info},
        "preset": p.to_dict(),
        "analysis": analysis,
        "versions": _versions(),
        "timings": timings,
    }
    sidecar["provenance"] = _provenance(item, request, p, engine_name, midi, seed_sha)
    wav_meta = wav_metadata(sidecar["provenance"], title=stem, genre=p.style, tempo_bpm=request.tempo_bpm,
                            meter=request.meter, tonic=request.tonic, music_s=analysis["music_s"],
                            duration_s=analysis["duration_s"], steps=steps)
    report(step0 + 2, n_steps, f"{stem}: writing")
    with files:
        if score is not None:
            from musegen.engines.procedural.theory import key_signature
            from musegen.midi.meta import fill_signatures

            fill_signatures(score, tempo_bpm=request.tempo_bpm, meter=request.meter,
                            key_signature=key_signature(request.tonic, request.mode))
            save_midi(score, files.mid, text=sidecar["provenance"]["text"])
            files.wrote(files.mid)
        write_audio(files.wav, y, sr=out_sr, metadata=wav_meta)
        files.wrote(files.wav)
        write_json(files.json, sidecar)
        files.wrote(files.json)
    report(step0 + 3, n_steps, f"{stem}: done")
    return Result(stem, files.wav, files.mid if score is not None else None, files.json, sidecar)


def _provenance(item, request: Request, p: Preset, engine_name: str, midi, seed_sha: str | None) -> dict[str, Any]:
    """The sidecar's ``provenance`` block (:func:`musegen.provenance.provenance`) of one result."""
    inputs = []
    if midi is not None:
        inputs.append({"kind": "midi", "path": str(midi), "sha256": seed_sha})
    if item.info.get("audio_prompt"):
        inputs.append({"kind": "audio_prompt", "path": str(item.info["audio_prompt"]),
                       "sha256": item.info.get("audio_prompt_sha256")})
    return provenance(engine=engine_name, info=item.info, options=request.options, seed=request.random_seed,
                      preset=p.name, inputs=inputs)


def extend(midi: str | os.PathLike[str], *, add_parts: bool = False, **kwargs: Any) -> list[Result]:
    """Continue a MIDI sketch: the sketch unchanged, then ``bars`` more of its own parts.

    ``add_parts=True`` also adds the preset's roles the sketch lacks.
    """
    return generate(midi=midi, continue_only=not add_parts, command="extend", **kwargs)
