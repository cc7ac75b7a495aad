"""Under load (issue #7): a long batch of short jobs completes and its workers do not grow.

    python scripts/bench_load.py [--jobs 500] [--workers 2] [--bars 2] [--no-images] [--keep DIR]

Runs ``musegen batch`` (local executor) on ``--jobs`` short procedural jobs
in a fresh process, then reads the manifest: every job row records its
worker (``host:pid``), the worker's resident memory after the job
(``worker_rss_mb``) and its peak so far (``worker_maxrss_mb``).  For each
worker it prints the memory over its first and its last ``--window`` jobs
and calls the run stable when, for every worker, the peak at the end is
within ``--tolerance`` (default 20 %) of the peak at the start.

Exit code 0 when every job is ok and memory is stable.  The load average
before and after is printed: other work on the machine slows the run but
does not change the memory figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = ("lofi-chill", "synthwave", "techno", "bossa-nova", "chiptune")


def write_plan(folder: Path, *, jobs: int, bars: int) -> Path:
    text = (f'title = "load: {jobs} jobs of {bars} bars"\n'
            f'[defaults]\nengine = "procedural"\nbars = {bars}\n')
    for i in range(jobs):  # presets in turn, so every stretch of the run mixes them
        text += f'[[job]]\npreset = "{PRESETS[i % len(PRESETS)]}"\nseed = {i // len(PRESETS) + 1}\n'
    path = folder / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def per_worker(rows: list[dict], window: int) -> list[dict]:
    """Memory of each worker over its first and last ``window`` jobs (in the order they finished)."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("worker") and r.get("worker_rss_mb") is not None:
            by.setdefault(r["worker"], []).append(r)
    table = []
    for worker, jobs in sorted(by.items()):
        jobs.sort(key=lambda r: r["finished_at"])
        first, last = jobs[:window], jobs[-window:]
        table.append({
            "worker": worker, "jobs": len(jobs),
            "rss_start": max(r["worker_rss_mb"] for r in first),
            "rss_end": max(r["worker_rss_mb"] for r in last),
            "peak_start": max(r["worker_maxrss_mb"] for r in first),
            "peak_end": max(r["worker_maxrss_mb"] for r in last),
        })
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bars", type=int, default=2)
    ap.add_argument("--window", type=int, default=10, help="jobs per worker averaged at the start and at the end")
    ap.add_argument("--tolerance", type=float, default=0.20)
    ap.add_argument("--no-images", action="store_true", help="skip the report pictures")
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="musegen-load-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        plan = write_plan(folder, jobs=args.jobs, bars=args.bars)
        out = folder / "run"
        cmd = [sys.executable, "-m", "musegen", "batch", str(plan), "-o", str(out),
               "--workers", str(args.workers), "--json"] + (["--no-images"] if args.no_images else [])
        print(f"{args.jobs} jobs ({args.bars} bars, procedural{', no images' if args.no_images else ''}) "
              f"on {args.workers} workers; {os.cpu_count()} cores; load average before: {loadavg()}",
              file=sys.stderr)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            print(proc.stderr[-2000:], file=sys.stderr)
            return 2
        doc = json.loads(proc.stdout)
        rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]

    table = per_worker(rows, args.window)
    print(f"jobs {doc['jobs']}: {doc['ok']} ok, {doc['failed']} failed, not run {doc['not_run']}; "
          f"{wall:.0f} s total ({wall / max(1, doc['jobs']) * args.workers:.2f} s per job per worker); "
          f"load average after: {loadavg()}")
    print(f"{'worker':<28}{'jobs':>6}{'RSS start':>11}{'RSS end':>9}{'peak start':>12}{'peak end':>10}{'growth':>8}")
    stable = bool(table)
    for t in table:
        growth = t["peak_end"] / t["peak_start"] - 1
        stable &= growth <= args.tolerance
        print(f"{t['worker']:<28}{t['jobs']:>6}{t['rss_start']:>9.0f}MB{t['rss_end']:>7.0f}MB"
              f"{t['peak_start']:>10.0f}MB{t['peak_end']:>8.0f}MB{growth:>+8.0%}")
    print(f"memory {'stable' if stable else 'NOT stable'} (peak at the end within {args.tolerance:.0%} "
          f"of the peak over each worker's first {args.window} jobs)")
    return 0 if stable and doc["ok"] == doc["jobs"] else 1


if __name__ == "__main__":
    sys.exit(main())
