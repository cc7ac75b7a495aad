"""Batch throughput (issue #5): one plan, run end to end by the CLI in fresh processes.

    python scripts/bench_batch.py [--jobs 100] [--seconds 30] [--workers 1,2] [--ray]
                                  [--engine NAME] [--no-images] [--keep DIR] [--batching]

The plan is ``--jobs`` generate jobs of ``--seconds`` seconds each (five
presets x seeds) with the default engine: ``symbolic`` when its weights are
installed, else ``procedural`` (``--engine`` overrides).  Each configuration
runs ``musegen batch plan.toml -o <fresh folder> --workers N`` and reports:

1. total wall time (process start, worker start-up, every job with its
   report pictures, manifest and report);
2. the speedup from 1 to 2 workers (target >= 1.8x on two cores);
3. with ``--ray``, the Ray executor on the same plan and worker count
   against the local pool: total wall time and the mean time inside a job,
   so start-up overhead and per-job overhead show apart;
4. with ``--batching``, the plan on one worker with jobs handed out one at
   a time (``MUSEGEN_BATCH_CHUNK=1``) against chunks whose engine requests
   are sampled as one batch (the default): wall time and their ratio.

Run it on an otherwise idle machine; runs are sequential, never overlapping.
Each line also says how many cores other processes kept busy meanwhile
(Linux), so a run disturbed by something else shows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

PRESETS = ("pop-ballad", "lofi-chill", "synthwave", "bossa-nova", "techno")


def default_engine() -> str:
    weights = resources.files("musegen") / "engines" / "symbolic" / "weights" / "model.safetensors"
    return "symbolic" if weights.is_file() else "procedural"


def write_plan(folder: Path, *, jobs: int, seconds: float, engine: str) -> Path:
    seeds = list(range(1, -(-jobs // len(PRESETS)) + 1))
    text = (f'title = "bench: {jobs} jobs x {seconds:g} s ({engine})"\n'
            f'[defaults]\nengine = "{engine}"\nseconds = {seconds}\n'
            f'[[sweep]]\ngrid.preset = {json.dumps(list(PRESETS))}\ngrid.seed = {json.dumps(seeds)}\n')
    path = folder / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has been busy (Linux), to spot other loads during a run."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(plan: Path, out: Path, *, workers: int, executor: str, images: bool, limit: int,
        chunk: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "musegen", "batch", str(plan), "-o", str(out), "--workers", str(workers),
           "--executor", executor, "--json"]
    if not images:
        cmd.append("--no-images")
    busy0, ours0 = busy_cpu_s(), children_cpu_s()
    t = time.perf_counter()
    env = dict(os.environ)
    if chunk is not None:
        env["MUSEGEN_BATCH_CHUNK"] = str(chunk)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    busy1, ours1 = busy_cpu_s(), children_cpu_s()
    # CPU time of the machine minus that of our (reaped) process tree: other programs' load.
    others = None if busy0 is None else max(0.0, (busy1 - busy0) - (ours1 - ours0)) / wall
    if proc.returncode != 0:
        sys.exit(f"{executor} x{workers} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[:limit]
    job_s = [r["timings"]["total_s"] for r in rows]
    engine_s = [r["timings"].get("engine_s", 0.0) for r in rows]
    images_s = [r["timings"].get("images_s", 0.0) for r in rows]
    music = sum(r["analysis"]["duration_s"] for r in rows)
    return {"executor": executor, "workers": workers, "wall_s": wall, "jobs": len(rows),
            "job_mean_s": statistics.mean(job_s), "engine_mean_s": statistics.mean(engine_s),
            "images_mean_s": statistics.mean(images_s), "audio_s": music,
            "workers_seen": len({r["worker"] for r in rows}), "other_cores": others,
            "batch_mean": statistics.mean(r.get("batch_size", 1) for r in rows)}


def show(r: dict) -> None:
    print(f"{r['executor']:5s} x{r['workers']}: {r['wall_s']:7.1f} s wall for {r['jobs']} jobs "
          f"({r['jobs'] / r['wall_s'] * 60:.0f} jobs/min, {r['audio_s'] / r['wall_s']:.0f}x real time); "
          f"per job {r['job_mean_s']:.2f} s (engine {r['engine_mean_s']:.2f}, pictures {r['images_mean_s']:.2f}); "
          f"{r['workers_seen']} worker processes, mean batch {r['batch_mean']:.1f}"
          + _other_load(r), flush=True)


def _other_load(r: dict) -> str:
    if r["other_cores"] is None:
        return ""
    if r["executor"] == "ray":  # Ray's actors are not our children: their CPU time shows here too
        return f"; CPU outside our process tree {r['other_cores']:.2f} cores (Ray's own actors included)"
    return f"; other load {r['other_cores']:.2f} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts for the local pool")
    ap.add_argument("--ray", action="store_true", help="also run the Ray executor with the largest count")
    ap.add_argument("--engine", default=None, help="default: symbolic if its weights exist, else procedural")
    ap.add_argument("--no-images", action="store_true", help="skip the report pictures")
    ap.add_argument("--keep", type=Path, help="keep the run folders here")
    ap.add_argument("--batching", action="store_true",
                    help="only compare one worker unbatched (one job at a time) with batched chunks")
    args = ap.parse_args()
    engine = args.engine or default_engine()
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        plan = write_plan(base, jobs=args.jobs, seconds=args.seconds, engine=engine)
        print(f"plan: {args.jobs} jobs x {args.seconds:g} s, engine {engine}, "
              f"pictures {'off' if args.no_images else 'on'}", flush=True)
        if args.batching:
            solo = run(plan, base / "unbatched", workers=1, executor="local", images=not args.no_images,
                       limit=args.jobs, chunk=1)
            show(solo)
            many = run(plan, base / "batched", workers=1, executor="local", images=not args.no_images,
                       limit=args.jobs)
            show(many)
            print(f"batched vs unbatched, 1 worker: wall {many['wall_s']:.1f} s vs {solo['wall_s']:.1f} s, "
                  f"{solo['wall_s'] / many['wall_s']:.2f}x faster; engine time per job "
                  f"{many['engine_mean_s']:.3f} s vs {solo['engine_mean_s']:.3f} s")
            return
        results = {}
        for w in counts:
            results[("local", w)] = r = run(plan, base / f"local-{w}", workers=w, executor="local",
                                             images=not args.no_images, limit=args.jobs)
            show(r)
        if 1 in counts and 2 in counts:
            one, two = results[("local", 1)], results[("local", 2)]
            print(f"speedup 1 -> 2 workers: {one['wall_s'] / two['wall_s']:.2f}x (target >= 1.8x)")
        if args.ray:
            w = max(counts)
            r = run(plan, base / f"ray-{w}", workers=w, executor="ray", images=not args.no_images,
                    limit=args.jobs)
            show(r)
            local = results[("local", w)]
            print(f"ray vs local pool, {w} workers: wall {r['wall_s'] / local['wall_s']:.2f}x "
                  f"({r['wall_s'] - local['wall_s']:+.1f} s); time inside a job "
                  f"{r['job_mean_s'] / local['job_mean_s']:.2f}x")


if __name__ == "__main__":
    main()
