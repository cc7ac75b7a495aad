"""The studio's jobs: state on disk, work in a spawned worker process.

A job is one press of *Generate* (or *Extend*): its parameters, status,
progress and, once done, its takes (one per variation).  Its state lives in
``<folder>/jobs/<id>.json`` (written atomically), its files in
``<folder>/takes/<id>/``, so a reloaded page - or a restarted studio - finds
its history where it left it.  Two more kinds run the same way: *style*
learns a style from uploaded sketches (:func:`musegen.style.learn.learn_style`,
into the user's style store, where it is a preset at once) and *sweep* runs a
small batch plan built in the page through the batch runner into
``<folder>/sweeps/<id>/`` (its manifest and ``report.html``).

The work never runs in the server: one long-lived worker process, started
with ``spawn`` (no state copied from the server), takes one job at a time
over a pipe and sends progress back.  An engine loads once in it and is
reused by the next job.  Cancelling the running job kills the worker (an
engine call cannot be interrupted politely) and starts a fresh one; the
job's folder is removed, so no half-written take stays behind.  A worker
that dies (out of memory, killed) fails its job with that reason and is
replaced; a job that raises fails alone with its error on its take.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from musegen.errors import ParameterError

#: what a job id, a sketch id and a take's file stem look like (all the server makes)
JOB_ID = re.compile(r"[0-9a-f]{12}")
SKETCH_ID = re.compile(r"[0-9a-f]{16}")
KINDS = ("generate", "extend", "style", "sweep")
#: parameters a sweep built in the page may vary (batch plan keys), and how many at once
SWEEP_AXES = ("seed", "temperature", "tempo", "key", "lufs")
MAX_SWEEP_AXES = 2
#: most jobs one studio sweep runs (a bigger experiment is a `musegen batch` plan)
MAX_SWEEP_JOBS = 64
#: most sketches one style is learned from in the studio
MAX_STYLE_FILES = 64
#: most variations one studio job makes (each is a take on the page)
MAX_VARIATIONS = 8
FINAL = ("done", "failed", "cancelled")
#: how long a cancelled style or sweep job may take to clean up before it is killed
POLITE_S = 30.0


def _cleans_up(job: dict[str, Any]) -> bool:
    """Whether a job is stopped with SIGTERM first: a style removes its hidden work folder, a
    sweep's batch runner stops its pool (killed at once, its processes and semaphores would leak)."""
    return job["params"]["kind"] in ("style", "sweep")


def default_folder() -> Path:
    """``$XDG_DATA_HOME/musegen/studio`` (``~/.local/share/musegen/studio``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "musegen" / "studio"


def _write_json(path: Path, doc: Any) -> None:
    from musegen.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=1, default=str), create_parent=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# -- validation (in the server, before anything is queued) --------------------------------

def _number(params: dict[str, Any], name: str, kind: type, lo: float, hi: float) -> Any:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ParameterError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if not lo <= value <= hi:
        raise ParameterError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return kind(value)


def check_params(raw: Any, folder: Path) -> dict[str, Any]:
    """The job parameters a request asked for, checked; :class:`ParameterError` names the bad one."""
    import musegen.style  # noqa: F401  (learned styles register as a preset source)
    from musegen import limits
    from musegen.engines.registry import available_engines, check_options
    from musegen.presets import load_preset

    if not isinstance(raw, dict):
        raise ParameterError("the job must be a JSON object")
    if raw.get("kind") == "style":
        return check_style_params(raw, folder)
    if raw.get("kind") == "sweep":
        return check_sweep_params(raw, folder)
    known = {"kind", "preset", "engine", "bars", "seconds", "seed", "temperature", "variations",
             "options", "sketch", "add_parts", "stems"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParameterError(f"unknown job field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    kind = raw.get("kind", "generate")
    if kind not in KINDS:
        raise ParameterError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    preset_name = raw.get("preset") or None
    if preset_name is not None and not isinstance(preset_name, str):
        raise ParameterError(f"preset must be a name, got {preset_name!r}")
    if preset_name is not None and ("/" in preset_name or "\\" in preset_name or preset_name.endswith(".toml")):
        raise ParameterError(f"preset must be a preset or style name, not a path: {preset_name!r}")
    preset = load_preset(preset_name) if preset_name else None
    engine = raw.get("engine") or None
    if engine is not None and engine not in available_engines():
        raise ParameterError(f"unknown engine {engine!r} (available: {', '.join(available_engines())})")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ParameterError(f"options must be an object of engine options, got {options!r}")
    engine_name = engine or (preset.engine.name if preset is not None else None)
    if engine_name is None:
        from musegen.presets import DEFAULT_PRESET

        engine_name = load_preset(DEFAULT_PRESET).engine.name
    check_options(engine_name, options)
    bars = _number(raw, "bars", int, 1, limits.get("bars"))
    seconds = _number(raw, "seconds", float, 0.5, limits.get("seconds"))
    if bars is not None and seconds is not None:
        raise ParameterError("give bars or seconds, not both")
    seed = _number(raw, "seed", int, 0, 2**63 - 1)
    temperature = _number(raw, "temperature", float, 0.05, 5.0)
    variations = _number(raw, "variations", int, 1, MAX_VARIATIONS) or 1
    sketch = raw.get("sketch") or None
    if sketch is not None:
        if not isinstance(sketch, str) or not SKETCH_ID.fullmatch(sketch):
            raise ParameterError(f"sketch must be the id of an uploaded sketch, got {sketch!r}")
        if not (folder / "sketches" / f"{sketch}.mid").is_file():
            raise ParameterError(f"no uploaded sketch {sketch!r}")
    if kind == "extend" and sketch is None:
        raise ParameterError("extend needs a sketch: drop a MIDI file first")
    add_parts = raw.get("add_parts", False)
    if not isinstance(add_parts, bool):
        raise ParameterError(f"add_parts must be true or false, got {add_parts!r}")
    stems = raw.get("stems")  # None: as the preset's [render] stems says
    if stems is not None and not isinstance(stems, bool):
        raise ParameterError(f"stems must be true or false, got {stems!r}")
    return {"kind": kind, "preset": preset_name, "engine": engine, "bars": bars, "seconds": seconds,
            "seed": seed, "temperature": temperature, "variations": variations, "options": options,
            "sketch": sketch, "add_parts": add_parts, "stems": stems}


def _known(raw: dict[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParameterError(f"unknown {what} field {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _sketch_ids(value: Any, folder: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParameterError(f"sketches must be a list of uploaded sketch ids, got {value!r}")
    for sketch in value:
        if not SKETCH_ID.fullmatch(sketch):
            raise ParameterError(f"sketches must be ids of uploaded sketches, got {sketch!r}")
        if not (folder / "sketches" / f"{sketch}.mid").is_file():
            raise ParameterError(f"no uploaded sketch {sketch!r}")
    return list(dict.fromkeys(value))  # the same file twice is one file


def check_style_params(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A *style* job: ``name``, ``sketches`` (ids of uploaded MIDI files), ``steps``, ``minutes`` and
    ``from_preset`` (the preset to start from; default: the closest built-in, as the CLI's)."""
    import musegen.style  # noqa: F401  (learned styles register as a preset source)
    from musegen.errors import PresetError
    from musegen.presets import load_preset
    from musegen.style.learn import MIN_FILES
    from musegen.style.store import check_name

    _known(raw, {"kind", "name", "sketches", "steps", "minutes", "from_preset"}, "style job")
    name = raw.get("name")
    check_name(name)
    try:
        clash = load_preset(name)
    except PresetError:
        clash = None
    if clash is not None:  # the studio never replaces a style: remove it first (`musegen style remove`)
        what = "learned style" if clash.source == "style" else f"{clash.source} preset"
        raise ParameterError(f"name {name!r} is already a {what}; choose another name")
    sketches = _sketch_ids(raw.get("sketches"), folder)
    if not MIN_FILES <= len(sketches) <= MAX_STYLE_FILES:
        raise ParameterError(f"sketches: learning a style needs {MIN_FILES} to {MAX_STYLE_FILES} different MIDI "
                             f"files, got {len(sketches)}")
    steps = _number(raw, "steps", int, 1, 100_000) or 200
    minutes = _number(raw, "minutes", float, 0.05, 24 * 60) or 5.0
    base = raw.get("from_preset") or None
    if base is not None:
        if not isinstance(base, str) or "/" in base or "\\" in base or base.endswith(".toml"):
            raise ParameterError(f"from_preset must be a preset name, not a path: {base!r}")
        load_preset(base)  # PresetError names an unknown one
    return {"kind": "style", "name": name, "sketches": sketches, "steps": steps, "minutes": minutes,
            "from_preset": base}


def sweep_plan(params: dict[str, Any], folder: Path):
    """The batch plan of a *sweep* job's parameters (checked by the batch planner)."""
    from musegen.batch.plan import parse_plan

    defaults = {k: params[k] for k in ("engine", "bars", "seconds") if params.get(k) is not None}
    sweep = {"grid": params["grid"]}
    if params.get("preset"):
        sweep["preset"] = params["preset"]
    title = f"studio sweep: {params.get('preset') or 'default preset'} x {' x '.join(params['grid'])}"
    return parse_plan({"title": title, "defaults": defaults, "sweep": [sweep]}, where="of the sweep", base=folder)


def check_sweep_params(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A *sweep* job: ``preset``, ``engine``, ``bars``/``seconds`` and ``grid`` (1-2 axes of values)."""
    import math

    from musegen import limits
    from musegen.engines.registry import available_engines

    _known(raw, {"kind", "preset", "engine", "bars", "seconds", "grid"}, "sweep")
    preset = raw.get("preset") or None
    if preset is not None and (not isinstance(preset, str) or "/" in preset or "\\" in preset
                               or preset.endswith(".toml")):
        raise ParameterError(f"preset must be a preset or style name, not a path: {preset!r}")
    engine = raw.get("engine") or None
    if engine is not None and engine not in available_engines():
        raise ParameterError(f"unknown engine {engine!r} (available: {', '.join(available_engines())})")
    bars = _number(raw, "bars", int, 1, limits.get("bars"))
    seconds = _number(raw, "seconds", float, 0.5, limits.get("seconds"))
    if bars is not None and seconds is not None:
        raise ParameterError("give bars or seconds, not both")
    grid = raw.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise ParameterError(f"grid must map 1 to {MAX_SWEEP_AXES} of {', '.join(SWEEP_AXES)} to lists of values, "
                             f"got {grid!r}")
    for axis, values in grid.items():
        if axis not in SWEEP_AXES:
            raise ParameterError(f"grid: {axis!r} cannot be swept here (choose from {', '.join(SWEEP_AXES)})")
        if not isinstance(values, list) or not values:
            raise ParameterError(f"grid.{axis} must be a non-empty list of values, got {values!r}")
    if len(grid) > MAX_SWEEP_AXES:
        raise ParameterError(f"grid: at most {MAX_SWEEP_AXES} parameters at once, got {len(grid)}")
    count = math.prod(len(v) for v in grid.values())
    if count > MAX_SWEEP_JOBS:
        raise ParameterError(f"grid: the sweep makes {count} jobs, more than the studio's {MAX_SWEEP_JOBS} "
                             "(use `musegen batch` for a bigger experiment)")
    params = {"kind": "sweep", "preset": preset, "engine": engine, "bars": bars, "seconds": seconds,
              "grid": {k: list(v) for k, v in grid.items()}}
    params["jobs"] = len(sweep_plan(params, folder).jobs)  # the planner checks every value (PlanError)
    return params


# -- the worker process ------------------------------------------------------------------

def _notes(mid: Path) -> list[list[float]]:
    """``[start_s, duration_s, pitch, velocity, track, is_drum]`` per note, for the page's piano roll."""
    from musegen.midi.io import load_midi

    score = load_midi(mid).to("second")
    out = []
    for t, track in enumerate(score.tracks):
        for n in track.notes:
            out.append([round(float(n.time), 4), round(float(n.duration), 4), int(n.pitch), int(n.velocity),
                        t, int(track.is_drum)])
    out.sort(key=lambda row: row[0])
    return out


def run_job(job: dict[str, Any], folder: str, send) -> None:
    """Worker side: make a job's takes in ``<folder>/takes/<id>/``, reporting through ``send``.

    ``("done", id, takes)`` goes as soon as the WAV, MIDI and JSON of every take are
    written (the page can play them), then each take's spectrogram follows as
    ``("picture", id, stem, path)``: drawing one takes as long as a short take's synthesis.
    """
    from musegen import pipeline

    p = job["params"]
    out = Path(folder) / "takes" / job["id"]
    sketch = str(Path(folder) / "sketches" / f"{p['sketch']}.mid") if p["sketch"] else None

    def progress(done: float, total: float, msg: str) -> None:
        send(("progress", job["id"], done / max(total, 1e-9), msg))

    kw: dict[str, Any] = {  # no name: the default {preset}-s{seed} names the downloads
        "preset": p["preset"], "bars": p["bars"], "seconds": p["seconds"], "seed": p["seed"],
        "variations": p["variations"], "engine": p["engine"], "temperature": p["temperature"],
        "engine_options": p["options"] or None, "out_dir": str(out), "progress": progress,
        "stems": p.get("stems")}
    if p["kind"] == "extend":
        results = pipeline.extend(sketch, add_parts=p["add_parts"], **kw)
    else:
        results = pipeline.generate(midi=sketch, **kw)
    takes = []
    rel = f"takes/{job['id']}/"
    for r in results:
        notes = out / f"{r.stem}.notes.json"
        if r.mid is not None:
            _write_json(notes, _notes(r.mid))
        a = r.sidecar.get("analysis", {})
        takes.append({
            "stem": r.stem,
            "wav": rel + r.wav.name, "json": rel + r.json.name, "png": None,
            "mid": rel + r.mid.name if r.mid is not None else None,
            "notes": rel + notes.name if r.mid is not None else None,
            "seed": r.sidecar.get("parameters", {}).get("seed"),
            # one WAV and MIDI per part, in <stem>.stems/ (paths in the sidecar are relative to the take's folder)
            "stems": [{"name": Path(s["wav"]).stem, "wav": rel + s["wav"], "mid": rel + s["mid"] if s.get("mid") else None}
                      for s in (r.sidecar.get("files", {}).get("stems") or [])],
            "summary": {k: a.get(k) for k in ("duration_s", "key", "tempo_bpm", "meter", "lufs", "peak_dbfs", "bars")},
        })
    send(("done", job["id"], takes))
    from musegen.audio.analysis import plot_audio
    from musegen.audio.io import read_audio

    for r in results:
        png = out / f"{r.stem}.png"
        try:
            y, sr = read_audio(r.wav)
            plot_audio(y, sr=sr, path=png, title=r.wav.name)  # written atomically
        except Exception:  # noqa: BLE001  (the take stands without its picture)
            send(("picture", job["id"], r.stem, None))
        else:
            send(("picture", job["id"], r.stem, rel + png.name))


def run_style(job: dict[str, Any], folder: str, send) -> None:
    """Worker side: learn a style from the job's sketches into the user's style store."""
    from musegen.errors import InputError, MusegenError, PresetError
    from musegen.presets import load_preset
    from musegen.style.learn import learn_style

    p = job["params"]
    try:  # a job queued behind another of the same name: never replace what that one learned
        load_preset(p["name"])
    except PresetError:
        pass
    else:
        raise InputError(f"name {p['name']!r} is already a learned style; choose another name")
    sketches = Path(folder) / "sketches"
    files = [str(sketches / f"{s}.mid") for s in p["sketches"]]
    # the user knows the files by the names they dropped, not by the studio's ids
    names = {}
    for s in p["sketches"]:
        meta = _read_json(sketches / f"{s}.json")
        names[f"{s}.mid"] = f"{meta['name']} ({s})" if isinstance(meta, dict) and meta.get("name") else f"{s}.mid"

    def named(text: str) -> str:
        for s in p["sketches"]:
            text = text.replace(str(sketches / f"{s}.mid"), names[f"{s}.mid"]).replace(f"{s}.mid", names[f"{s}.mid"])
        return text

    notes: list[str] = []

    def progress(done: float, total: float, msg: str) -> None:
        # reading the files is quick next to the fine-tune: a tenth of the bar
        share = done / max(total, 1e-9)
        at = 0.1 * share if msg.startswith("reading") else 0.1 + 0.9 * share
        shown = f"fine-tuning: step {int(done)} of {int(total)}" if msg == "fine-tuning" else named(msg)
        send(("progress", job["id"], at, shown))

    try:
        info = learn_style(files, p["name"], steps=p["steps"], minutes=p["minutes"],
                           from_preset=p.get("from_preset"), progress=progress, say=lambda m: notes.append(named(m)))
    except MusegenError as exc:
        exc.args = (named(str(exc)),)
        raise
    tr = info.get("training", {})
    send(("done", job["id"], [], {"style": {
        "name": p["name"], "base_preset": info.get("base_preset"), "files": len(info.get("files", [])),
        "steps": tr.get("steps"), "base_valid_loss": tr.get("base_valid_loss"),
        "best_valid_loss": tr.get("best_valid_loss"), "notes": notes[-20:]}}))


def run_sweep(job: dict[str, Any], folder: str, send) -> None:
    """Worker side: run the job's sweep with the batch runner into ``<folder>/sweeps/<id>/``."""
    from musegen.batch.local import cpu_count
    from musegen.batch.runner import run_batch

    plan = sweep_plan(job["params"], Path(folder))
    out = Path(folder) / "sweeps" / job["id"]
    labels = {j.id: {"id": j.id, "params": {k: j.params.get(k) for k in job["params"]["grid"]},
                     "status": "pending"} for j in plan.jobs}

    def progress(counts, row) -> None:
        if row is not None and row["id"] in labels:
            labels[row["id"]].update(status=row["status"], error=row.get("error"))
        done = counts.ok + counts.failed
        msg = f"{done} of {counts.total} jobs done" + (f", {counts.failed} failed" if counts.failed else "")
        send(("progress", job["id"], done / max(counts.total, 1), msg, {"rows": list(labels.values())}))

    summary = run_batch(plan, out, workers=min(cpu_count(), len(plan.jobs)), progress=progress)
    for row in summary.rows:
        if row["id"] in labels:
            labels[row["id"]].update(status=row["status"], error=row.get("error"))
    rel = f"sweeps/{job['id']}/"
    report = rel + "report.html" if (out / "report.html").is_file() else None
    send(("done", job["id"], [], {"rows": list(labels.values()), "report": report,
                                  "sweep": {"total": len(plan.jobs), "ok": summary.counts.ok,
                                            "failed": summary.counts.failed,
                                            "seconds": round(summary.wall_s, 2),
                                            "report_error": summary.report_error}}))


RUNNERS = {"style": run_style, "sweep": run_sweep}


class Cancelled(BaseException):
    """Raised in the worker by SIGTERM: the studio cancels a job that cleans up after itself."""


def _cancel_on_sigterm() -> None:
    import signal

    def stop(signum, frame):
        raise Cancelled()

    signal.signal(signal.SIGTERM, stop)


def _warm_up() -> None:
    """Import what every job needs while the user is still choosing (the first take comes sooner)."""
    import musegen.audio.analysis
    import musegen.audio.io
    import musegen.pipeline
    import musegen.render  # noqa: F401


def worker_main(conn, threads: int) -> None:
    """The worker process: run jobs sent over ``conn`` one at a time until the pipe closes."""
    from musegen.batch.local import init_worker
    from musegen.errors import MusegenError

    init_worker(threads)  # Ctrl-C is the server's; die with it; bounded math threads
    _cancel_on_sigterm()
    send = conn.send
    _warm_up()

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job, folder = msg
        try:
            RUNNERS.get(job["params"]["kind"], run_job)(job, folder, send)
        except Cancelled:
            return  # what the job was making is removed (learn_style's hidden folder); the studio knows
        except MusegenError as exc:
            send(("failed", job["id"], str(exc), type(exc).__name__))
        except Exception as exc:  # noqa: BLE001  (a bug: shown on the take, the worker goes on)
            send(("failed", job["id"], f"internal error: {type(exc).__name__}: {exc}", type(exc).__name__))


# -- the server side ---------------------------------------------------------------------

def _lock_folder(folder: Path):
    """Hold the studio folder's lock (one studio, or batch run, per folder); released with the process."""
    from musegen.batch.lock import RunLock
    from musegen.errors import MusegenError

    lock = RunLock(folder)
    try:
        return lock.__enter__()
    except MusegenError:
        try:
            holder = (folder / ".lock").read_text(encoding="utf-8").strip()
        except OSError:
            holder = ""
        raise MusegenError(f"studio folder {folder} is in use by another musegen studio "
                           f"({holder or 'unknown process'}); stop it or choose another --folder") from None


class Jobs:
    """The studio's job list and its worker; thread-safe."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder).resolve()
        self.jobs_dir = self.folder / "jobs"
        self.takes_dir = self.folder / "takes"
        for d in (self.jobs_dir, self.takes_dir, self.folder / "sketches"):
            d.mkdir(parents=True, exist_ok=True)
        self._folder_lock = _lock_folder(self.folder)  # before _load: it settles jobs a studio left running
        self._lock = threading.RLock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._pending: deque[str] = deque()
        self._running: str | None = None
        self._proc = None
        self._conn = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._atexit = False
        self._closing = False
        self._load()

    # state on disk
    def _load(self) -> None:
        for path in sorted(self.jobs_dir.glob("*.json")):
            job = _read_json(path)
            if not isinstance(job, dict) or not JOB_ID.fullmatch(str(job.get("id", ""))):
                continue
            if job.get("status") == "running":  # the studio stopped under it
                self._remove_takes(job["id"])
                job.update(status="failed", error="interrupted: the studio stopped before it finished",
                           finished=time.time())
                _write_json(path, job)
            if job.get("pictures") == "pending":  # the studio stopped while it drew them
                self._settle_pictures(job)
            self._jobs[job["id"]] = job
        queued = sorted((j for j in self._jobs.values() if j.get("status") == "queued"), key=lambda j: j["created"])
        self._pending.extend(j["id"] for j in queued)

    def _settle_pictures(self, job: dict[str, Any]) -> None:
        """The worker that drew a job's pictures is gone: keep those it finished."""
        from musegen.atomic import remove_stale_parts

        for take in job.get("takes", []):
            png = f"takes/{job['id']}/{take['stem']}.png"
            remove_stale_parts(self.folder / png)  # of a picture its worker was killed drawing
            take["png"] = png if (self.folder / png).is_file() else None
        job["pictures"] = "ready"
        self._save(job)

    def _save(self, job: dict[str, Any]) -> None:
        _write_json(self.jobs_dir / f"{job['id']}.json", job)

    def _remove_takes(self, job_id: str) -> None:
        """Remove what an unfinished (or forgotten) job made: its takes or its sweep folder.

        A style job killed before it could clean up leaves its hidden work folder in the
        style store (``.<name>.<token>.part``, never listed as a style): removed here too.
        """
        shutil.rmtree(self.takes_dir / job_id, ignore_errors=True)
        shutil.rmtree(self.folder / "sweeps" / job_id, ignore_errors=True)
        job = self._jobs.get(job_id) or {}
        params = job.get("params") or {}
        if params.get("kind") == "style" and job.get("status") != "done":
            from musegen.style.store import NAME_RE, style_root

            if NAME_RE.fullmatch(str(params.get("name", ""))):
                for part in style_root().glob(f".{params['name']}.*.part"):
                    shutil.rmtree(part, ignore_errors=True)

    # the public side
    def submit(self, raw: Any) -> dict[str, Any]:
        params = check_params(raw, self.folder)
        job = {"id": secrets.token_hex(6), "params": params, "status": "queued", "progress": 0.0,
               "message": "waiting", "error": None, "created": time.time(), "finished": None, "takes": []}
        with self._lock:
            self._jobs[job["id"]] = job
            self._save(job)
            self._pending.append(job["id"])
        return dict(job)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else json.loads(json.dumps(job, default=str))

    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j["created"], reverse=True)
            return json.loads(json.dumps(jobs, default=str))

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job["status"] in FINAL:
                return None if job is None else dict(job)
            if job["status"] == "queued":
                self._pending.remove(job_id)
            else:  # running: the worker is stopped mid-call and replaced
                self._kill_worker(polite=_cleans_up(job))
                self._running = None
                self._remove_takes(job_id)
            job.update(status="cancelled", message="cancelled", finished=time.time())
            self._save(job)
            return dict(job)

    def delete(self, job_id: str) -> dict[str, Any] | None:
        """Forget a finished job and remove its takes; ``None`` if there is no such job.

        Raises
        ------
        ParameterError
            If the job is still queued or running (cancel it first).
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job["status"] not in FINAL:
                raise ParameterError(f"job {job_id} is {job['status']}: cancel it before removing it")
            self._remove_takes(job_id)
            (self.jobs_dir / f"{job_id}.json").unlink(missing_ok=True)
            del self._jobs[job_id]
            return {"id": job_id, "deleted": True}

    # the worker
    def start(self) -> None:
        self._stop.clear()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="musegen-studio-jobs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the worker; a job it was running is cancelled and its folder removed."""
        with self._lock:
            self._closing = True  # the job loop starts nothing more, but its thread lives on:
            if self._running is not None:
                # the worker was started from that thread and dies with it (PR_SET_PDEATHSIG),
                # which would leave a job no time to stop politely
                job = self._jobs[self._running]
                self._kill_worker(polite=_cleans_up(job))
                self._remove_takes(job["id"])
                job.update(status="cancelled", message="stopped with the studio", finished=time.time())
                self._save(job)
                self._running = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            if self._conn is not None:  # idle, or drawing the last take's pictures: let it finish them
                try:
                    self._conn.send(None)
                    end = time.monotonic() + 10
                    while time.monotonic() < end and self._conn.poll(max(0.0, end - time.monotonic())):
                        self._handle(self._conn.recv())
                except (OSError, EOFError):
                    pass  # it has exited
                self._kill_worker()
            if self._folder_lock is not None:
                self._folder_lock.__exit__(None, None, None)
                self._folder_lock = None

    def _spawn(self) -> None:
        import multiprocessing

        from musegen.batch.local import _sigint_blocked, cpu_count

        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe()
        # not a daemon: a sweep's batch runner starts its own pool of processes in it (a daemon
        # may have no children); it still dies with the server (init_worker), and at exit below
        proc = ctx.Process(target=worker_main, args=(there, cpu_count()), daemon=False,
                           name="musegen-studio-worker")
        with _sigint_blocked():  # a Ctrl-C cannot kill it half-started
            proc.start()
        there.close()
        self._proc, self._conn = proc, here
        if not self._atexit:  # before multiprocessing's own exit handler, which would wait for it
            import atexit

            atexit.register(self._kill_worker)
            self._atexit = True

    def _kill_worker(self, polite: bool = False) -> None:
        """Stop the worker; ``polite``: SIGTERM first, so the job removes what it was making."""
        if self._proc is not None:
            if polite and self._proc.is_alive():
                self._proc.terminate()  # Cancelled in the worker; a fine-tune stops after its step
                self._proc.join(timeout=POLITE_S)
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
        for job in self._jobs.values():
            if job.get("pictures") == "pending":
                self._settle_pictures(job)

    def _loop(self) -> None:
        import logging

        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # never let one bad message stop the studio's jobs
                logging.getLogger("musegen.studio").exception("studio job loop")
                time.sleep(0.5)

    def _step(self) -> None:
        with self._lock:
            if self._closing:
                return
            if self._proc is None:
                self._spawn()
            if self._running is None and self._pending:
                job = self._jobs[self._pending.popleft()]
                job.update(status="running", message="starting", started=time.time())
                self._save(job)
                self._running = job["id"]
                try:
                    self._conn.send((job, str(self.folder)))
                except OSError:  # the worker died while idle
                    self._worker_died()
                    return
            conn = self._conn
        try:
            ready = conn.poll(0.1)
        except (OSError, EOFError, ValueError):  # closed by a cancel meanwhile
            return
        if not ready:
            return
        with self._lock:
            if conn is not self._conn:  # a cancel replaced the worker
                return
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                self._worker_died()
                return
            self._handle(msg)

    def _worker_died(self) -> None:
        code = self._proc.exitcode if self._proc is not None else None
        self._kill_worker()
        if self._running is not None:
            job = self._jobs[self._running]
            self._remove_takes(job["id"])
            job.update(status="failed", finished=time.time(),
                       error=f"its worker process died (exit code {code}: killed, or out of memory)")
            self._save(job)
            self._running = None

    def _handle(self, msg) -> None:
        kind, job_id = msg[0], msg[1]
        job = self._jobs.get(job_id)
        if job is None:
            return
        if kind == "picture":  # after "done": the server may have sent the worker its next job
            for take in job["takes"]:
                if take["stem"] == msg[2]:
                    take.update(png=msg[3], drawn=True)
            if all(t.get("drawn") for t in job["takes"]):
                job["pictures"] = "ready"
            self._save(job)
            return
        if job_id != self._running:
            return  # a late word from a job that was cancelled
        if kind == "progress":
            job.update(progress=round(float(msg[2]), 4), message=str(msg[3]), **(msg[4] if len(msg) > 4 else {}))
            return  # kept in memory; written when the job ends (progress is many small updates)
        if kind == "done":
            job.update(status="done", progress=1.0, message="done", takes=msg[2],
                       pictures="pending" if msg[2] else "ready", finished=time.time(),
                       **(msg[3] if len(msg) > 3 else {}))
        else:
            self._remove_takes(job_id)
            job.update(status="failed", message="failed", error=msg[2], error_type=msg[3], finished=time.time())
        self._save(job)
        self._running = None
