"""``musegen batch``: run a plan of many jobs (sweeps over presets, seeds, parameters...).

Imports only click at module level, so ``musegen --help`` stays fast.
stdout carries the payload (the manifest and report paths, the job list with
``--dry-run``, or one JSON document with ``--json``); progress and messages
go to stderr.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

import click

from musegen.cli.text import echo

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class BatchBar:
    """One progress line on stderr: done / failed / remaining and an ETA (terminals only)."""

    def __init__(self, *, enabled: bool | None = None, width: int = 24):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.width = width
        self._last = 0.0
        self._shown = False

    def __call__(self, counts, row: dict[str, Any] | None) -> None:
        if row is not None and row.get("status") != "ok":
            self._clear()
            echo(f"failed: {row['id']}: {row.get('error')}", err=True)
        if not self.enabled:
            return
        now = time.monotonic()
        if row is None and now - self._last < 0.1:
            return
        self._last = now
        finished = counts.ok + counts.failed + counts.skipped
        fill = int(self.width * finished / max(1, counts.total))
        line = (f"batch [{'#' * fill}{'.' * (self.width - fill)}] {finished}/{counts.total}  "
                f"done {counts.ok + counts.skipped}  failed {counts.failed}  left {counts.remaining}  "
                f"ETA {_duration(counts.eta_s)}")
        sys.stderr.write("\r" + line + "\033[K")
        sys.stderr.flush()
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._shown = False


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _print_jobs(plan, out_dir: str | None, resume: bool, as_json: bool) -> None:
    from pathlib import Path

    from musegen.batch.manifest import Manifest
    from musegen.batch.runner import is_finished

    previous = Manifest(out_dir).load() if out_dir and Path(out_dir).is_dir() else {}
    out = Path(out_dir).resolve() if out_dir else None
    rows = []
    for job in plan.jobs:
        done = bool(out) and is_finished(out, previous.get(job.id))
        rows.append({**job.to_dict(), "finished": done})
    if as_json:
        click.echo(json.dumps({"jobs": rows, "duplicates": plan.duplicates}, indent=2, default=str))
    else:
        for r in rows:
            params = " ".join(f"{k}={json.dumps(v, default=str) if isinstance(v, (list, dict)) else v}"
                              for k, v in r["params"].items())
            state = ("finished  " if r["finished"] else "todo      ") if out else ""
            echo(f"{r['id']}  {state}{r['command']}  {params}")
    finished = sum(r["finished"] for r in rows)
    extra = f", {plan.duplicates} duplicates merged" if plan.duplicates else ""
    skip = f"; {finished} finished in {out_dir} ({'skipped with --resume' if resume else 'needs --resume'})" \
        if finished else ""
    echo(f"{len(rows)} jobs{extra}{skip}", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              help="Run folder: <out>/<job-id>/, manifest.jsonl/.csv, report.html.")
@click.option("--workers", type=int, help="Parallel workers (default: all cores, or the Ray cluster's CPUs).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Process pool on this machine, or Ray.")
@click.option("--ray-address", help="Ray cluster address (default: start a local Ray instance).")
@click.option("--resume", is_flag=True, help="Skip the jobs an earlier run in OUT finished; run the rest.")
@click.option("--dry-run", is_flag=True, help="Print the expanded job list and exit.")
@click.option("--no-images", is_flag=True, help="Skip the spectrogram and piano-roll pictures.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@click.pass_context
def batch(ctx, plan, out_dir, workers, executor, ray_address, resume, dry_run, no_images, as_json) -> None:
    """Run the jobs of PLAN (a TOML file of defaults, jobs and sweeps) in parallel.

    Each job writes OUT/<job-id>/ (WAV, MIDI, JSON sidecar, pictures); the
    manifest records every job's parameters, status, timings and figures, and
    OUT/report.html lets you listen through the run.  Exit code 0 only when
    every job succeeded.

    \b
      musegen batch samples/plan.toml --dry-run
      musegen batch samples/plan.toml -o runs/exp1 --workers 2
      musegen batch samples/plan.toml -o runs/exp1 --resume
    """
    from musegen.batch.plan import load_plan

    if ray_address and executor != "ray":
        raise click.UsageError("--ray-address needs --executor ray")
    if workers is not None and workers < 1:
        raise click.UsageError(f"--workers must be at least 1, got {workers}")
    the_plan = load_plan(plan)
    if dry_run:
        _print_jobs(the_plan, out_dir, resume, as_json)
        return
    if not out_dir:
        raise click.UsageError("give the run folder with -o/--out (or use --dry-run)")

    from musegen.batch.runner import BatchInterrupted, run_batch

    if the_plan.duplicates:
        click.echo(f"{the_plan.duplicates} duplicate jobs merged (same parameters, same id)", err=True)
    bar = BatchBar()
    # SIGTERM (a job scheduler, `kill`) stops the run as cleanly as Ctrl-C.
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        summary = run_batch(the_plan, out_dir, workers=workers, executor=executor, ray_address=ray_address,
                            resume=resume, images=not no_images, progress=bar)
    except BatchInterrupted as exc:
        bar.close()
        c = exc.summary.counts
        click.echo(f"Error: interrupted: {c.ok + c.skipped} of {c.total} jobs finished, {c.failed} failed; "
                   f"rerun with --resume to finish", err=True)
        if as_json:
            click.echo(json.dumps(exc.summary.to_dict(), indent=2, default=str))
        ctx.exit(130)
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, old)
    c = summary.counts
    skipped = f", {c.skipped} finished earlier" if c.skipped else ""
    click.echo(f"{c.total} jobs: {c.ok} ok, {c.failed} failed{skipped} in {_duration(summary.wall_s)}",
               err=True)
    if summary.report_error:
        echo(f"warning: no report: {summary.report_error}", err=True)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        echo(summary.out_dir / "manifest.jsonl")
        echo(summary.out_dir / "report.html")
    ctx.exit(summary.exit_code)
