"""Run one job inside a worker process and commit its folder atomically.

A job writes into ``<out>/.staging/<id>.<random>/`` and, once every file is
there (audio, MIDI, JSON sidecar, spectrogram and piano-roll pictures), the
folder is renamed to ``<out>/<id>/``.  A job folder therefore exists only
complete; whatever an interrupted job leaves is under ``.staging``, which the
runner removes.  :func:`run_job` never raises for a failed job: it returns a
manifest row that says ``failed`` and why.

:func:`run_jobs` runs a chunk of generate/extend jobs whose engine requests
can be batched (a sweep over seeds, say): one engine call for all of them,
then each job is rendered, written and committed on its own, exactly as
:func:`run_job` does, and reported as soon as it is committed.
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
from typing import Any, Callable

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
    where = _where()
    stage = _new_stage(out_dir, job)
    try:
        stage.mkdir(parents=True)
        files, analysis, timings, score_path = _execute(job, stage)
        return _complete(job, out_dir, stage, files, analysis, timings, score_path, where, t0, images=images)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the job's row
        return _failure(job, exc, where, t0)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run_jobs(jobs: list[dict[str, Any]], out_dir: str, *, images: bool = True,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run a chunk of jobs; generate/extend jobs hand their engines their requests together.

    Each job gets its own staging folder, files, commit and row, as with
    :func:`run_job`; a job that fails (before, in or after the engine) fails
    alone.  ``on_row(row)`` is called as each job is committed or fails, so a
    caller can record it before the rest of the chunk is done.  A row's
    ``wall_s`` is the job's own cost: its share of the engine call, and its
    own preparation, rendering, files and pictures.  Rows of jobs generated
    in a batch carry ``batch_size``: how many requests were sampled together
    with theirs (theirs included).

    Returns
    -------
    list of dict
        The manifest rows, in the order of ``jobs``.
    """
    emit = on_row or (lambda row: None)
    rows: dict[int, dict[str, Any]] = {}
    where = _where()
    stages: dict[int, Path] = {}
    calls: list[dict[str, Any]] = []
    owners: list[int] = []
    try:
        for i, job in enumerate(jobs):
            if job["command"] not in ("generate", "extend"):
                rows[i] = run_job(job, out_dir, images=images)
                emit(rows[i])
                continue
            stages[i] = stage = _new_stage(out_dir, job)
            try:
                stage.mkdir(parents=True)
                calls.append(_generation_kwargs(job, stage))
                owners.append(i)
            except Exception as exc:  # noqa: BLE001
                rows[i] = _failure(job, exc, where, time.perf_counter())
                emit(rows[i])
        if calls:
            from musegen import pipeline

            for c, outcome, cost in pipeline.generate_many(calls):
                i = owners[c]
                job, t = jobs[i], time.perf_counter()
                try:
                    if isinstance(outcome, Exception):
                        raise outcome
                    (result,) = outcome
                    files, analysis, timings, score_path = _result_files(result)
                    row = _complete(job, out_dir, stages[i], files, analysis, timings, score_path, where,
                                    t - cost, images=images)
                    row["batch_size"] = int((result.sidecar.get("engine", {}).get("info") or {}).get("batch", 1))
                    rows[i] = row
                except Exception as exc:  # noqa: BLE001
                    rows[i] = _failure(job, exc, where, t - cost)
                emit(rows[i])
    finally:
        for stage in stages.values():
            shutil.rmtree(stage, ignore_errors=True)
    return [rows[i] for i in range(len(jobs)) if i in rows]


def _where() -> dict[str, str]:
    return {"worker": f"{socket.gethostname()}:{os.getpid()}", "started_at": now_iso()}


def _new_stage(out_dir: str, job: dict[str, Any]) -> Path:
    return Path(out_dir) / STAGING / f"{job['id']}.{secrets.token_hex(4)}"


def _failure(job: dict[str, Any], exc: BaseException, where: dict[str, str], t0: float) -> dict[str, Any]:
    """The row of a failed job: the message of a MusegenError, the traceback of anything else."""
    wall = round(time.perf_counter() - t0, 3)
    if isinstance(exc, MusegenError):
        return failed_row(job, str(exc), error_type=type(exc).__name__, **where, wall_s=wall, **worker_memory())
    # a bug or an unexpected library failure: keep the traceback
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=20))
    return failed_row(job, f"internal error: {type(exc).__name__}: {exc}", error_type=type(exc).__name__,
                      traceback=trace, **where, wall_s=wall, **worker_memory())


def _complete(job, out_dir, stage: Path, files, analysis, timings, score_path, where, t0, *,
              images: bool) -> dict[str, Any]:
    """Draw the pictures, commit the staged folder and return the job's ``ok`` row."""
    if images:
        t = time.perf_counter()
        files.update(_pictures(stage / files["wav"], score_path, stage, title=job["id"]))
        timings["images_s"] = round(time.perf_counter() - t, 4)
    _commit(stage, Path(out_dir) / job["id"])
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


def _generation_kwargs(job: dict[str, Any], stage: Path) -> dict[str, Any]:
    """Keyword arguments of :func:`musegen.pipeline.generate` for a generate or extend job."""
    from musegen import pipeline
    from musegen.batch.params import build_chain
    from musegen.batch.plan import is_path, resolve_path

    p = job["params"]
    soundfont = p.get("soundfont")
    if soundfont is not None and soundfont != "default":
        soundfont = resolve_path(job["base"], soundfont)
    preset = pipeline.resolve_preset(
        resolve_path(job["base"], p["preset"]) if is_path(p.get("preset", "")) else p.get("preset"))
    options = dict(p.get("options", {}))
    if "model" in p:
        options["model"] = _path(job, "model")
    extend = job["command"] == "extend"
    return dict(
        preset=preset, midi=_path(job, "midi"), bars=p.get("bars"), seconds=p.get("seconds"), seed=p["seed"],
        engine=p.get("engine"), tempo=p.get("tempo"), key=p.get("key"),
        temperature=p.get("temperature"), prompt=p.get("prompt", ""), out_dir=stage,
        soundfont=soundfont, sample_rate=p.get("sample_rate"),
        post=build_chain(p, list(preset.post)), engine_options=options,
        continue_only=extend and not p.get("add_parts", False), command=job["command"],
        commercial_use=bool(p.get("commercial_use", False)), loop=bool(p.get("loop", False)),
        stems=p.get("stems"),
    )


def _result_files(result):
    """``(file names by kind, analysis, timings, MIDI path or None)`` of a pipeline result."""
    files = {"wav": result.wav.name, "json": result.json.name}
    if result.mid is not None:
        files["mid"] = result.mid.name
    stems = result.sidecar.get("analysis", {}).get("stems") or {}
    if stems.get("parts"):
        files["stems"] = stems["folder"]
    timings = dict(result.sidecar.get("timings", {}))
    return files, dict(result.sidecar.get("analysis", {})), timings, result.mid


def _execute(job: dict[str, Any], stage: Path):
    """Run the job's command into ``stage``.

    Returns ``(file names by kind, analysis, timings, MIDI to draw or None)``.
    """
    from musegen.batch.params import build_chain
    from musegen.batch.plan import resolve_path

    p = job["params"]
    command = job["command"]
    soundfont = p.get("soundfont")
    if soundfont is not None and soundfont != "default":
        soundfont = resolve_path(job["base"], soundfont)
    if command in ("generate", "extend"):
        from musegen import pipeline

        (result,) = pipeline.generate(**_generation_kwargs(job, stage))
        return _result_files(result)

    from musegen import actions
    from musegen.outputs import safe_stem, write_json

    src = _path(job, "midi" if command == "render" else "audio")
    stem = safe_stem(Path(src).stem)
    wav = stage / f"{stem}.wav"
    t = time.perf_counter()
    chain = build_chain(p, [])
    if command == "render":
        info = actions.render_file(src, wav, soundfont=soundfont, sample_rate=p.get("sample_rate", 44100),
                          backend=p.get("backend", "symusic"), steps=chain)
        info.update(_midi_figures(src))
    else:
        info = actions.post_file(src, wav, chain)
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
    from musegen.theory import NOTE_NAMES

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
