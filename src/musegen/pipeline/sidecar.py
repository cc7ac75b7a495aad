"""The JSON sidecar of a result: what was asked, what was made, by what, from what.

:class:`Sidecar` is the typed form; :meth:`Sidecar.to_dict` gives the JSON
object written beside each WAV (keys in a fixed order, plain JSON values).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from musegen import __version__
from musegen.engines.base import Request
from musegen.provenance import provenance
from musegen.theory import NOTE_NAMES, parse_key

if TYPE_CHECKING:
    from musegen.pipeline.planning import Job


@dataclass
class Sidecar:
    """One result's record (see the README's Outputs section for every field)."""

    command: str
    stem: str
    files: dict[str, str | None]
    parameters: dict[str, Any]
    engine: dict[str, Any]
    preset: dict[str, Any]
    analysis: dict[str, Any]
    versions: dict[str, str]
    timings: dict[str, float]
    provenance: dict[str, Any]
    musegen: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {"musegen": self.musegen, "command": self.command, "stem": self.stem, "files": self.files,
                "parameters": self.parameters, "engine": self.engine, "preset": self.preset,
                "analysis": self.analysis, "versions": self.versions, "timings": self.timings,
                "provenance": self.provenance}


def parameters(job: "Job", index: int, out_sr: int) -> dict[str, Any]:
    """The sidecar's ``parameters``: the call as resolved (enough to run it again)."""
    request = job.request
    extra = {}
    if job.args.parts is not None:   # accompany: the parts added under the sketch, with their programs
        from musegen.pipeline.accompaniment import added_parts, parse_parts

        extra["parts"] = added_parts(parse_parts(job.args.parts), job.preset)
    return {
        "preset": job.preset.name,
        "engine": job.engine_name,
        "seed": request.random_seed,
        "variation": index + 1,
        "variations": request.variations,
        "bars": request.bars,
        "seconds": job.seconds_requested,
        "tempo_bpm": request.tempo_bpm,
        "meter": list(request.meter),
        "key": NOTE_NAMES[request.tonic],
        "mode": request.mode,
        **({"infill": list(request.infill), "infill_tracks": None if request.infill_tracks is None
            else list(request.infill_tracks)} if request.infill is not None else {}),
        "temperature": request.temperature,
        "prompt": request.prompt,
        "continue_only": request.continue_only,
        "midi": str(job.midi) if job.midi is not None else None,
        "midi_sha256": job.seed_sha,
        "soundfont": str(job.soundfont),
        "sample_rate": out_sr,
        "post": job.steps,
        "engine_options": request.options,
        "loop": bool(job.args.loop),
        **extra,
    }


def analysis(job: "Job", score, y, out_sr: int) -> dict[str, Any]:
    """The sidecar's ``analysis``: what was made, measured (length, loudness, key) and as planned (tempo, bars)."""
    from musegen.audio.analysis import loudness_lufs, peak_dbfs

    request = job.request
    out = {
        "duration_s": round(y.shape[1] / out_sr, 3),
        "seconds_requested": job.seconds_requested,
        "sample_rate": out_sr,
        "channels": int(y.shape[0]),
        "lufs": round(float(loudness_lufs(y, sr=out_sr)), 2),
        "peak_dbfs": round(max(-120.0, float(peak_dbfs(y))), 2),
        "tempo_bpm": request.tempo_bpm,
        "meter": f"{request.meter[0]}/{request.meter[1]}",
        **key_analysis(score, y, out_sr, request),
        "bars": request.bars,
        "music_s": round(request.seconds + (request.seed_analysis.duration_s if request.seed_analysis else 0), 3),
    }
    if score is not None:
        out["n_notes"] = int(sum(len(t.notes) for t in score.tracks))
        out["tracks"] = [
            {"name": t.name, "program": int(t.program), "is_drum": bool(t.is_drum), "notes": len(t.notes)}
            for t in score.tracks
        ]
    return out


def provenance_block(job: "Job", item) -> dict[str, Any]:
    """The sidecar's ``provenance`` block (:func:`musegen.provenance.provenance`) of one result."""
    inputs = []
    if job.midi is not None:
        inputs.append({"kind": "midi", "path": str(job.midi), "sha256": job.seed_sha})
    if item.info.get("audio_prompt"):
        inputs.append({"kind": "audio_prompt", "path": str(item.info["audio_prompt"]),
                       "sha256": item.info.get("audio_prompt_sha256")})
    return provenance(engine=job.engine_name, info=item.info, options=job.request.options,
                      seed=job.request.random_seed, preset=job.preset.name, inputs=inputs)


def build(job: "Job", item, index: int, files, score, y, out_sr: int, timings: dict[str, float]) -> Sidecar:
    """The sidecar of variation ``index`` of ``job``, whose audio ``y`` is about to be written as ``files``."""
    return Sidecar(
        command=job.command,
        stem=files.stem,
        files={"wav": files.wav.name, "mid": files.mid.name if score is not None else None, "json": files.json.name},
        parameters=parameters(job, index, out_sr),
        engine={"name": job.engine_name, "info": item.info},
        preset=job.preset.to_dict(),
        analysis=analysis(job, score, y, out_sr),
        versions=versions(),
        timings=timings,
        provenance=provenance_block(job, item),
    )


def key_analysis(score, y, sr: int, request: Request) -> dict[str, Any]:
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


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"musegen": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "symusic", "soundfile", "soxr", "pyloudnorm", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
