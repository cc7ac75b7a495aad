"""Run one job inside a worker process and commit its folder atomically.

A job writes into ``<out>/.staging/<id>.<random>/`` and, once every file is
there (audio, MIDI, JSON sidecar, spectrogram and piano-roll pictures), the
folder is renamed to ``<out>/<id>/``.  A job folder therefore exists only
complete; whatever an interrupted job leaves is under ``.staging``, which the
runner removes.  :func:`run_job` never raises for a failed job: it returns a
manifest row that says ``failed`` and why.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from musegen.errors import MusegenError

STAGING = ".staging"
SPECTROGRAM = "spectrogram.png"
PIANOROLL = "pianoroll.png"
#: Figures copied from a result's analysis into its manifest row.
FIGURES = ("duration_s", "lufs", "peak_dbfs", "tempo_bpm", "key", "meter", "bars", "n_notes", "sample_rate")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def base_row(job: dict[str, Any]) -> dict[str, Any]:
    """The manifest row of a job before it has run."""
    return {
        "id": job["id"], "index": job["index"], "label": job.get("label", ""),
        "command": job["command"], "engine": job.get("engine"), "params": job["params"],
        "status": "pending", "error": None,
    }


def failed_row(job: dict[str, Any], error: str, **extra: Any) -> dict[str, Any]:
    return {**base_row(job), "status": "failed", "error": error, "finished_at": now_iso(), **extra}


def worker_memory() -> dict[str, float]:
    """This process's resident memory now and at its peak, in MiB (fields left out where unknown).

    Recorded in every job row (``worker_rss_mb``, ``worker_maxrss_mb``), so a
    long run shows whether its workers grow.
    """
    mem: dict[str, float] = {}
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        mem["worker_maxrss_mb"] = round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)
    except (ImportError, OSError):  # pragma: no cover - Windows
        pass
    try:
        with open("/proc/self/statm", "rb") as fh:
            resident = int(fh.read().split()[1])
        mem["worker_rss_mb"] = round(resident * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):  # not Linux
        pass
    return mem


def run_job(job: dict[str, Any], out_dir: str, *, images: bool = True) -> dict[str, Any]:
    """Run one job (a :meth:`Job.to_dict` plus ``base``, the plan's folder).

    Returns
    -------
    dict
        Its manifest row: ``status`` ``ok`` with ``outputs`` (paths relative
        to ``out_dir``), ``analysis`` and ``timings``, or ``failed`` with
        ``error``.
    """
    t0 = time.perf_counter()
    started = now_iso()
    out = Path(out_dir)
    stage = out / STAGING / f"{job['id']}.{secrets.token_hex(4)}"
    where = {"worker": f"{socket.gethostname()}:{os.getpid()}", "started_at": started}
    try:
        stage.mkdir(parents=True)
        files, analysis, timings, score_path = _execute(job, stage)
        if images:
            t = time.perf_counter()
            files.update(_pictures(stage / files["wav"], score_path, stage, title=job["id"]))
            timings["images_s"] = round(time.perf_counter() - t, 4)
        _commit(stage, out / job["id"])
    except MusegenError as exc:
        return failed_row(job, str(exc), error_type=type(exc).__name__, **where,
                          wall_s=round(time.perf_counter() - t0, 3), **worker_memory())
    except Exception as exc:  # a bug or an unexpected library failure: keep the traceback
        return failed_row(job, f"internal error: {type(exc).__name__}: {exc}", error_type=type(exc).__name__,
                          traceback=traceback.format_exc(limit=20), **where,
                          wall_s=round(time.perf_counter() - t0, 3), **worker_memory())
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    wall = round(time.perf_counter() - t0, 3)
    timings["total_s"] = wall
    return {
        **base_row(job), "status": "ok", **where, "finished_at": now_iso(), "wall_s": wall,
        "outputs": {k: f"{job['id']}/{name}" for k, name in files.items()},
        "analysis": {k: analysis[k] for k in FIGURES if analysis.get(k) is not None},
        "timings": timings, **worker_memory(),
    }


def _path(job: dict[str, Any], key: str) -> str | None:
    from musegen.batch.plan import resolve_path

    ref = job["params"].get(key)
    return None if ref is None else resolve_path(job["base"], ref)


def _execute(job: dict[str, Any], stage: Path):
    """Run the job's command into ``stage``.

    Returns ``(file names by kind, analysis, timings, MIDI to draw or None)``.
    """
    from musegen.batch.params import build_chain
    from musegen.batch.plan import is_path, resolve_path

    p = job["params"]
    command = job["command"]
    soundfont = p.get("soundfont")
    if soundfont is not None and soundfont != "default":
        soundfont = resolve_path(job["base"], soundfont)
    if command in ("generate", "extend"):
        from musegen import pipeline

        preset = pipeline.resolve_preset(
            resolve_path(job["base"], p["preset"]) if is_path(p.get("preset", "")) else p.get("preset"))
        options = dict(p.get("options", {}))
        if "model" in p:
            options["model"] = _path(job, "model")
        kwargs = dict(
            preset=preset, bars=p.get("bars"), seconds=p.get("seconds"), seed=p["seed"],
            engine=p.get("engine"), tempo=p.get("tempo"), key=p.get("key"),
            temperature=p.get("temperature"), prompt=p.get("prompt", ""), out_dir=stage,
            soundfont=soundfont, sample_rate=p.get("sample_rate"),
            post=build_chain(p, list(preset.post)), engine_options=options,
        )
        if command == "extend":
            (result,) = pipeline.extend(_path(job, "midi"), add_parts=p.get("add_parts", False), **kwargs)
        else:
            (result,) = pipeline.generate(midi=_path(job, "midi"), **kwargs)
        files = {"wav": result.wav.name, "json": result.json.name}
        if result.mid is not None:
            files["mid"] = result.mid.name
        timings = dict(result.sidecar.get("timings", {}))
        return files, dict(result.sidecar.get("analysis", {})), timings, result.mid

    from musegen import api
    from musegen.outputs import safe_stem, write_json

    src = _path(job, "midi" if command == "render" else "audio")
    stem = safe_stem(Path(src).stem)
    wav = stage / f"{stem}.wav"
    t = time.perf_counter()
    chain = build_chain(p, [])
    if command == "render":
        info = api.render(src, wav, soundfont=soundfont, sample_rate=p.get("sample_rate", 44100),
                          backend=p.get("backend", "symusic"), steps=chain)
        info.update(_midi_figures(src))
    else:
        info = api.post(src, wav, chain)
    timings = {"render_s" if command == "render" else "post_s": round(time.perf_counter() - t, 4)}
    info["path"] = wav.name
    sidecar = {"command": command, "job": job["id"], "parameters": {**p, "post": chain, "input": src},
               "analysis": info, "timings": timings}
    from musegen import __version__

    sidecar["musegen"] = __version__
    write_json(stage / f"{stem}.json", sidecar)
    return {"wav": wav.name, "json": f"{stem}.json"}, info, timings, (src if command == "render" else None)


def _midi_figures(path: str) -> dict[str, Any]:
    from musegen.midi.analysis import analyze_score
    from musegen.midi.io import load_midi
    from musegen.presets import NOTE_NAMES

    score = load_midi(path)
    a = analyze_score(score)
    return {"tempo_bpm": round(float(a.tempo_bpm), 2), "key": f"{NOTE_NAMES[a.key_tonic]} {a.key_mode}",
            "meter": f"{a.meter[0]}/{a.meter[1]}",
            "n_notes": int(sum(len(t.notes) for t in score.tracks))}


def _pictures(wav: Path, score_path: str | os.PathLike[str] | None, stage: Path, *,
              title: str) -> dict[str, str]:
    """Spectrogram of the audio; piano roll of the result's MIDI (or a render's input)."""
    from musegen.audio.analysis import plot_audio
    from musegen.audio.io import read_audio

    y, sr = read_audio(wav)
    plot_audio(y, sr=sr, path=stage / SPECTROGRAM, title=title)
    made = {"spectrogram": SPECTROGRAM}
    if score_path is not None:
        from musegen.midi.io import load_midi
        from musegen.midi.pianoroll import plot_pianoroll

        plot_pianoroll(load_midi(score_path), stage / PIANOROLL, title=title)
        made["pianoroll"] = PIANOROLL
    return made


def _commit(stage: Path, final: Path) -> None:
    """Move a finished job folder into place, replacing an older copy."""
    old = None
    if os.path.lexists(final):  # a link there is moved aside, never followed
        # left by a run that died between committing and recording the job
        old = stage.parent / f"{final.name}.old.{secrets.token_hex(4)}"
        os.replace(final, old)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
