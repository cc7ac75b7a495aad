"""Run a plan into a run folder: lock, resume, execute, record, report.

Run folder layout::

    <out>/<job-id>/          one folder per finished job (audio, MIDI, JSON sidecar, PNGs)
    <out>/manifest.jsonl     one row per job (see musegen.batch.manifest)
    <out>/manifest.csv       the same, flattened for spreadsheets
    <out>/report.html        the listening report
    <out>/plan.toml          a copy of the plan of the latest run
    <out>/.lock              held while a run is going
    <out>/.staging/          jobs in progress (removed when the run ends)

A job is finished when the manifest says ``ok`` and its JSON sidecar
exists; ``resume=True`` skips finished jobs and runs the rest.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from musegen.batch.job import STAGING, base_row, now_iso
from musegen.batch.manifest import MANIFEST, Manifest, atomic_write_text, row_problem
from musegen.batch.plan import Plan
from musegen.errors import MusegenError, ParameterError

EXECUTORS = ("local", "ray")


@dataclass
class Counts:
    """Where a run stands; passed to the progress callback."""

    total: int
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    running: int = 0
    started: float = field(default_factory=time.monotonic)
    finished_here: int = 0  # ok or failed in this run (skipped ones excluded): the pace for the ETA

    @property
    def remaining(self) -> int:
        return self.total - self.ok - self.failed - self.skipped

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta_s(self) -> float | None:
        """Seconds left at this run's pace so far; ``None`` before a job has finished."""
        if self.finished_here == 0:
            return None
        return self.elapsed_s / self.finished_here * self.remaining


Progress = Callable[[Counts, "dict[str, Any] | None"], None]


@dataclass
class BatchSummary:
    """The outcome of a run; ``exit_code`` is 0 only when every job is ok."""

    out_dir: Path
    rows: list[dict[str, Any]]
    counts: Counts
    wall_s: float
    interrupted: bool = False
    report_error: str | None = None

    @property
    def exit_code(self) -> int:
        c = self.counts
        return 0 if c.ok + c.skipped == c.total and not self.interrupted else 1

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "out": str(self.out_dir), "jobs": c.total, "ok": c.ok, "failed": c.failed,
            "skipped": c.skipped, "not_run": c.remaining, "interrupted": self.interrupted,
            "wall_s": round(self.wall_s, 3),
            "manifest": str(self.out_dir / MANIFEST), "report": str(self.out_dir / "report.html"),
            "results": [{k: r.get(k) for k in ("id", "status", "error", "outputs", "analysis")}
                        for r in self.rows],
        }


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM via the CLI) stopped the run; ``summary`` says what finished."""

    def __init__(self, summary: BatchSummary):
        super().__init__("interrupted")
        self.summary = summary


def make_executor(name: str, *, workers: int | None = None, address: str | None = None):
    """An executor by name: ``local`` (process pool) or ``ray``."""
    if name == "local":
        if address:
            raise ParameterError("a Ray address needs the ray executor")
        from musegen.batch.local import LocalExecutor

        return LocalExecutor(workers)
    if name == "ray":
        from musegen.batch.ray_exec import RayExecutor

        return RayExecutor(workers, address)
    raise ParameterError(f"executor must be one of {', '.join(EXECUTORS)}; got {name!r}")


def is_finished(out: Path, row: dict[str, Any] | None) -> bool:
    """A job is finished when its row says ok and its JSON sidecar exists."""
    from musegen.batch.manifest import finished_files_exist, row_problem

    if not row or row_problem(row) is not None or row.get("status") != "ok":
        return False
    return finished_files_exist(out, row)


def run_batch(
    plan: Plan,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    resume: bool = False,
    images: bool = True,
    progress: Progress | None = None,
) -> BatchSummary:
    """Run every job of ``plan`` into ``out_dir``.

    Parameters
    ----------
    plan : Plan
        From :func:`musegen.batch.plan.load_plan`.
    out_dir : path
        The run folder (created if needed).  One run at a time per folder.
    workers : int, optional
        Parallel workers (default: all cores, or the Ray cluster's CPUs).
    executor : {"local", "ray"}
    ray_address : str, optional
        A Ray cluster to use instead of a local Ray instance.
    resume : bool
        Skip finished jobs of an earlier run in ``out_dir``; without it a
        folder that already holds a run is refused.
    images : bool
        Draw a spectrogram and a piano roll per job for the report.
    progress : callable, optional
        ``progress(counts, row)`` after each job starts (``row`` None) or ends.

    Returns
    -------
    BatchSummary

    Raises
    ------
    BatchInterrupted
        On Ctrl-C, after recording what finished and removing partial files.
    MusegenError
        Bad options, a folder in use by another run, or an unwritable folder.
    """
    from musegen.batch.lock import RunLock
    from musegen.outputs import ensure_dir
    from musegen.errors import check_range

    if workers is not None:
        check_range("workers", workers, 1, 4096, integer=True)
    runner = make_executor(executor, workers=workers, address=ray_address)
    out = ensure_dir(out_dir).resolve()
    report = progress or (lambda counts, row: None)
    t0 = time.perf_counter()
    with RunLock(out):
        manifest = Manifest(out)
        previous = manifest.load()
        if previous and not resume:
            raise ParameterError(f"{out_dir} already holds a batch run ({MANIFEST}); "
                                 "resume it (--resume) or choose another output folder")
        _check_inputs(plan, out)
        _clean_staging(out)
        rows: dict[str, dict[str, Any]] = {}
        todo: list[dict[str, Any]] = []
        counts = Counts(total=len(plan.jobs))
        for job in plan.jobs:
            spec = {**job.to_dict(), "base": str(plan.base)}
            if resume and is_finished(out, previous.get(job.id)):
                rows[job.id] = {**previous[job.id], "index": job.index, "label": job.label}
                counts.skipped += 1
            else:
                rows[job.id] = base_row(spec)
                todo.append(spec)
        # jobs of earlier plans stay listed, unless their rows do not check out (hand-edited, torn)
        older = [r for i, r in previous.items() if i not in rows and row_problem(r) is None]
        manifest.write([*rows.values(), *older])
        if plan.text and (plan.path is None or plan.path.resolve() != out / "plan.toml"):
            atomic_write_text(out / "plan.toml", plan.text)

        started: set[str] = set()

        def on_start(job: dict[str, Any]) -> None:
            started.add(job["id"])
            counts.running += 1
            report(counts, None)

        def on_result(row: dict[str, Any]) -> None:
            rows[row["id"]] = row
            manifest.append(row)
            counts.running = max(0, counts.running - 1)
            counts.finished_here += 1
            if row["status"] == "ok":
                counts.ok += 1
            else:
                counts.failed += 1
            report(counts, row)

        # Jobs of one engine together: each worker loads as few engines as it can.
        todo.sort(key=lambda j: (j.get("engine") or "", j["index"]))
        interrupted = False
        report(counts, None)
        try:
            if todo:
                runner.run(todo, str(out), images=images, on_start=on_start, on_result=on_result)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for job_id in started:
                if rows[job_id]["status"] == "pending":
                    rows[job_id] = {**rows[job_id], "status": "interrupted", "finished_at": now_iso(),
                                    "error": "the run was interrupted before this job finished"}
            _clean_staging(out)
            final = sorted(rows.values(), key=lambda r: r["index"])
            manifest.write([*final, *older])
        summary = BatchSummary(out, final, counts, time.perf_counter() - t0, interrupted)
        try:
            from musegen.batch.report import write_report

            write_report(out, [*final, *older], title=plan.title or (plan.path.stem if plan.path else "batch"),
                         description=plan.description)
        except (MusegenError, OSError) as exc:
            summary.report_error = str(exc)
    if interrupted:
        raise BatchInterrupted(summary)
    return summary


def _check_inputs(plan: Plan, out: Path) -> None:
    """Refuse a plan whose jobs read a file the run replaces: a job folder, or the run's own records."""
    from musegen.batch.plan import is_path, resolve_path
    from musegen.outputs import check_outputs

    job_dirs = {os.path.realpath(out / job.id) for job in plan.jobs} | {os.path.realpath(out / STAGING)}
    inputs = []
    for job in plan.jobs:
        for key in ("midi", "audio", "soundfont", "preset", "model"):
            ref = job.params.get(key)
            if not isinstance(ref, str) or (key in ("soundfont", "preset") and not is_path(ref)):
                continue
            path = resolve_path(plan.base, ref)
            inputs.append(path)
            real = Path(os.path.realpath(path))
            for folder in (real, *real.parents):
                if str(folder) in job_dirs:
                    raise ParameterError(f"job {job.id!r} reads {path!r}, inside a job folder this run replaces: "
                                         "musegen never replaces its inputs; copy it out of the run folder")
    records = [out / name for name in (MANIFEST, "manifest.csv", "report.html")]
    if plan.path is None or plan.path.resolve() != out / "plan.toml":
        records.append(out / "plan.toml")
    check_outputs(records, inputs)


def _clean_staging(out: Path) -> None:
    """Remove what unfinished jobs left (only this run holds the folder's lock)."""
    staging = out / STAGING
    if staging.is_symlink():  # never clean, or write into, a folder elsewhere
        staging.unlink()
    shutil.rmtree(staging, ignore_errors=True)
