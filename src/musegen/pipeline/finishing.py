"""Finishing: an engine's outputs rendered, post-processed, described and written, atomically.

render (a score through the SoundFont; audio resampled) -> post chain (cut to
``--seconds`` where asked) -> the sidecar (:mod:`musegen.pipeline.sidecar`)
-> WAV, MIDI and JSON written together through :class:`~musegen.outputs.ResultFiles`
(all of a result's files or none).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from musegen.engines.base import Request, continuation_start
from musegen.errors import EngineError
from musegen.outputs import ResultFiles, write_json
from musegen.pipeline import sidecar as sidecars  # noqa: I001
from musegen.pipeline import stems as stemming
from musegen.pipeline.planning import TAIL_SECONDS
from musegen.provenance import note_licence, wav_metadata

from musegen.pipeline.result import Result

if TYPE_CHECKING:
    from musegen.pipeline.planning import Job

Progress = Callable[[float, float, str], None]

#: fade-out where the audio of a result asked for in seconds is cut to its length
CUT_FADE_S = 0.05


def finish(job: "Job", outputs: list, t_eng: float, report: Progress) -> list[Result]:
    """Render, post-process and write the engine's outputs of one call."""
    variations = job.request.variations
    if len(outputs) != variations:
        raise EngineError(f"engine {job.engine_name!r} returned {len(outputs)} outputs for {variations} variations")
    report(1, job.n_steps, "rendering")
    for item in outputs if job.ignored_inputs else ():
        item.info["ignored_inputs"] = list(job.ignored_inputs)
    results = [finish_item(job, item, i, t_eng / variations, report) for i, item in enumerate(outputs)]
    if not (job.args.commercial_use or job.preset.engine.commercial_use):
        note_licence(job.engine_name, job.request.options)  # said once the files are written
    return results


def finish_item(job: "Job", item, index: int, t_engine: float, report: Progress) -> Result:
    """Variation ``index``: render, post, describe and write it; its progress steps follow the engine's."""
    from musegen.audio.io import resample, write_audio
    from musegen.midi.io import save_midi
    from musegen.render.synth import render_score

    request, stem, sr = job.request, job.stems[index], job.sample_rate
    step0, n_steps = 1 + 3 * index, job.n_steps
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
        y = render_score(score, sample_rate=sr, soundfont=job.soundfont, gain_db=job.preset.render.gain_db,
                         tail_seconds=TAIL_SECONDS)
    else:
        raise EngineError(f"engine {job.engine_name!r} returned neither a score nor audio")
    parts = stemming.render(job, item, score, y, sr=sr) if stemming.wanted(job) else None
    stems_audio = list(parts.audio) if parts is not None else None
    timings["render_s"] = round(time.perf_counter() - t, 4)
    report(step0 + 1, n_steps, f"{stem}: post-processing")
    t = time.perf_counter()
    loop = None
    if job.args.loop:
        y, out_sr, loop = _post_loop(y, sr=sr, steps=job.steps, item=item, request=request, stems=stems_audio)
    else:
        target_s = None if job.seconds_requested is None else _result_seconds(item, request, job.seconds_requested)
        y, out_sr = _post(y, sr=sr, steps=job.steps, seconds=target_s, stems=stems_audio)
    timings["post_s"] = round(time.perf_counter() - t, 4)

    files = ResultFiles(job.out, stem)
    record = sidecars.build(job, item, index, files, score, y, out_sr, timings)
    if loop is not None:
        record.analysis["loop"] = loop
    record.parameters["stems"] = stemming.wanted(job)
    if record.parameters["stems"]:
        record.analysis["stems"] = stemming.record(job, parts, stems_audio or [], result_stem=stem,
                                                   steps=job.steps, from_audio=item.audio is not None,
                                                   sr=out_sr, mix_lufs=record.analysis["lufs"])
        record.files["stems"] = [{"wav": p["wav"], "mid": p["mid"]} for p in record.analysis["stems"]["parts"]]
    prov = record.provenance
    wav_meta = wav_metadata(prov, title=stem, genre=job.preset.style, tempo_bpm=request.tempo_bpm,
                            meter=request.meter, tonic=request.tonic, music_s=record.analysis["music_s"],
                            duration_s=record.analysis["duration_s"], steps=job.steps)
    report(step0 + 2, n_steps, f"{stem}: writing")
    data = record.to_dict()
    with files:
        if score is not None:
            from musegen.engines.procedural.theory import key_signature
            from musegen.midi.meta import fill_signatures

            fill_signatures(score, tempo_bpm=request.tempo_bpm, meter=request.meter,
                            key_signature=key_signature(request.tonic, request.mode))
            save_midi(score, files.mid, text=prov["text"])
            files.wrote(files.mid)
        write_audio(files.wav, y, sr=out_sr, metadata=_with_loop(wav_meta, loop))
        files.wrote(files.wav)
        if parts is not None:
            stemming.write(files, parts, stems_audio, sr=out_sr, midi_text=prov["text"],
                           metadata=_with_loop(wav_meta, loop))
        write_json(files.json, data)
        files.wrote(files.json)
    report(step0 + 3, n_steps, f"{stem}: done")
    return Result(stem, files.wav, files.mid if score is not None else None, files.json, data)


def _apply_tempo_override(score, request: Request) -> None:
    """With ``--tempo`` over a seed, the new bars switch to the asked tempo."""
    from symusic import Tempo

    a = request.seed_analysis
    current = a.tempo_map[-1][1] if a.tempo_map else a.tempo_bpm
    if abs(current - request.tempo_bpm) > 1e-6:
        score.tempos.append(Tempo(continuation_start(a), request.tempo_bpm))
        score.tempos.sort(key=lambda t: t.time)


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


def _post(y, *, sr: int, steps: list[dict[str, Any]], seconds: float | None, stems: list | None = None):
    """The post chain; with ``seconds``, the audio is fitted to that length before the chain's last
    fade-out (so the fade ends the file) and after the chain (a reverb's tail is cut).

    ``stems`` (a list of the parts' audio) go through it alike, mastering aside
    (:class:`musegen.pipeline.stems.Bus`), and are replaced in the list."""
    from musegen.pipeline.stems import Bus

    bus = Bus(y, stems or ())
    if seconds is None:
        sr = bus.chain(steps, sr=sr)
    else:
        bus.map(_fit_length, sr=sr, seconds=seconds)
        last_fade = max((i for i, step in enumerate(steps) if step["op"] == "fade_out"), default=None)
        if last_fade is not None:
            sr = bus.chain(steps[:last_fade], sr=sr)
            bus.map(_fit_length, sr=sr, seconds=seconds)
            steps = steps[last_fade:]
        sr = bus.chain(steps, sr=sr)
        bus.map(_fit_length, sr=sr, seconds=seconds)
    if stems is not None:
        stems[:] = bus.stems
    return bus.mix, sr


#: steps a loop leaves out (a fade or a trimmed edge would be heard at every join),
#: and the mastering steps it applies after closing the loop (to the loop as it repeats)
LOOP_DROPS = ("trim", "fade_in", "fade_out")
LOOP_MASTERING = ("loudness", "peak_normalize")


def loop_seconds(item, request: Request, *, sr: int) -> float:
    """The loop's length: whole bars.  A score: its sketch up to the bar line where new bars start,
    then the new bars.  Audio: the whole bars that fit with room to crossfade after them."""
    from musegen.audio.loop import crossfade_room
    from musegen.errors import ParameterError

    if item.audio is None:
        return _result_seconds(item, request, request.seconds)
    bar_s = request.seconds / request.bars
    have = item.audio.shape[-1] / item.sample_rate - crossfade_room(sr) / sr
    bars = int(have / bar_s + 1e-6)
    if bars < 1:
        raise ParameterError(f"the result ({have:.1f} s) is shorter than one bar ({bar_s:.2f} s): nothing to loop")
    return bars * bar_s


def _post_loop(y, *, sr: int, steps: list[dict[str, Any]], item, request: Request, stems: list | None = None):
    """The post chain for ``--loop``: ``(audio, rate, the sidecar's loop record)``; ``stems`` as for :func:`_post`.

    The chain runs without fades and trims; what rings past the loop's end
    (MIDI engines: release and reverb) is folded onto its start, or (audio
    engines) the music that followed crossfades into it; the mastering steps
    come last, on the closed loop.
    """
    from musegen.audio.loop import crossfade_loop, fold_tail
    from musegen.pipeline.stems import Bus

    seconds = loop_seconds(item, request, sr=sr)
    dropped = [s["op"] for s in steps if s["op"] in LOOP_DROPS]
    before = [s for s in steps if s["op"] not in LOOP_DROPS + LOOP_MASTERING]
    after = [s for s in steps if s["op"] in LOOP_MASTERING]
    bus = Bus(y, stems or ())
    sr2 = bus.chain(before, sr=sr)
    length = int(round(seconds * _time_scale(before) * sr2))  # tempo and stretch steps change its length
    if item.audio is None:
        bus.map(fold_tail, length)
        method = "fold"
    else:
        bus.map(crossfade_loop, length, sr=sr2)
        method = "crossfade"
    sr3 = bus.chain(after, sr=sr2)
    y = bus.mix
    if stems is not None:
        stems[:] = bus.stems
    bars = int(round(seconds / (request.seconds / request.bars)))
    return y, sr3, {"start": 0, "end": int(y.shape[1]), "bars": bars, "seconds": round(y.shape[1] / sr3, 6),
                    "method": method, "dropped_steps": dropped}


def _time_scale(steps: list[dict[str, Any]]) -> float:
    """How much the chain's tempo and stretch steps lengthen the music (a reverb's tail aside)."""
    scale = 1.0
    for step in steps:
        if step["op"] == "tempo":
            scale *= step["tempo_from"] / step["tempo_to"]
        elif step["op"] == "stretch":
            scale /= step["rate"]
    return scale


def _with_loop(meta, loop: dict[str, Any] | None):
    """The WAV metadata with the loop's points (``smpl``), when there is a loop."""
    import dataclasses

    if loop is None or meta is None:
        return meta
    return dataclasses.replace(meta, loop=(loop["start"], loop["end"]))
