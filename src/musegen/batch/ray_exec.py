"""The Ray executor: the same jobs on a Ray cluster (or a local Ray instance).

Each worker is a Ray actor (one CPU) that lives for the whole run, so its
engine loads once; jobs are handed to idle actors in the runner's order
(grouped by engine), one at a time each.  The run folder must be on a file
system every node sees at the same path, and every node needs musegen
installed.  Ray is an optional extra: ``pip install 'musegen[ray]'``.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from typing import Any

from musegen.batch.local import MAX_WORKER_DEATHS, OnEvent, cpu_count
from musegen.errors import MusegenError


def _import_ray():
    # Usage statistics would try to reach the network; musegen runs offline.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise MusegenError("the ray executor needs Ray; install it with: pip install 'musegen[ray]'") from None
    return ray


class JobActor:
    """A Ray actor running jobs in its own long-lived process."""

    def __init__(self, out_dir: str, images: bool, threads: int):
        from musegen.batch.local import THREAD_VARS

        for var in THREAD_VARS:
            os.environ.setdefault(var, str(threads))
        self.out_dir = out_dir
        self.images = images

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        from musegen.batch.job import run_job

        return run_job(job, self.out_dir, images=self.images)


class RayExecutor:
    """Run jobs as Ray actor calls.

    Parameters
    ----------
    workers : int, optional
        Number of actors (default: the cluster's CPUs).
    address : str, optional
        A running cluster (``ray://host:10001`` or ``host:6379``); without
        one a local Ray instance is started for the run and stopped after.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None):
        self.workers = workers
        self.address = address
        _import_ray()  # fail before the run folder is touched

    def run(self, jobs: list[dict[str, Any]], out_dir: str, *, images: bool, on_start: OnEvent,
            on_result: OnEvent) -> None:
        import logging

        from musegen.batch.job import failed_row

        ray = _import_ray()
        started = False
        if not ray.is_initialized():
            opts = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            try:
                if self.address:
                    ray.init(address=self.address, **opts)
                else:
                    ray.init(num_cpus=self.workers or cpu_count(), **opts)
            except ConnectionError as exc:
                raise MusegenError(f"cannot reach the Ray cluster at {self.address!r}: {exc}") from None
            started = True
        actors: list[Any] = []
        try:
            n = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            n = max(1, min(n, len(jobs)))
            remote = ray.remote(num_cpus=1, max_restarts=0)(JobActor)
            threads = 1 if self.address else max(1, cpu_count() // n)

            def spawn():
                actor = remote.remote(out_dir, images, threads)
                actors.append(actor)
                return actor

            idle = [spawn() for _ in range(n)]
            pending = deque(jobs)
            deaths: Counter[str] = Counter()
            inflight: dict[Any, tuple[dict[str, Any], Any]] = {}
            while pending or inflight:
                while pending and idle:
                    job = pending.popleft()
                    actor = idle.pop()
                    inflight[actor.run.remote(job)] = (job, actor)
                    on_start(job)
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    job, actor = inflight.pop(ref)
                    try:
                        row = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        deaths[job["id"]] += 1
                        if deaths[job["id"]] >= MAX_WORKER_DEATHS:
                            on_result(failed_row(job, "its Ray worker died (killed, or out of memory)",
                                                 error_type="WorkerDied"))
                        else:
                            pending.appendleft(job)
                        idle.append(spawn())
                        continue
                    except ray.exceptions.RayError as exc:
                        row = failed_row(job, f"Ray error: {type(exc).__name__}: {exc}",
                                         error_type=type(exc).__name__)
                    idle.append(actor)
                    on_result(row)
        finally:
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # already gone
                    pass
            if started:
                ray.shutdown()
