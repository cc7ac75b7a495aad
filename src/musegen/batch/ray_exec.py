"""The Ray executor: the same jobs on a Ray cluster (or a local Ray instance).

Each worker is a Ray actor (one CPU) that lives for the whole run, so its
engine loads once; jobs are handed to idle actors in the runner's order
(grouped by engine), in chunks that can share an engine call, as the local
pool does (see :mod:`musegen.batch.local`).  Unlike the local pool, an
actor reports a chunk's rows when the whole chunk is done: when an actor
dies, the jobs of its chunk that it had committed are run again.  The run folder must be on a file
system every node sees at the same path, and every node needs musegen
installed.  Ray is an optional extra: ``pip install 'musegen[ray]'``.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from musegen.batch.local import MAX_WORKER_DEATHS, JobQueue, OnEvent, cpu_count
from musegen.errors import MusegenError


def _import_ray():
    # Usage statistics would try to reach the network; musegen runs offline.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise MusegenError("the ray executor needs Ray; install it with: pip install 'musegen[ray]'") from None
    return ray


#: Seconds to wait for a TCP connection to a cluster's address before giving up.
PROBE_TIMEOUT_S = 5.0


def _host_port(address: str) -> tuple[str, int] | None:
    """``host`` and ``port`` of ``ray://host:port`` or ``host:port``; None for ``auto`` and the like."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe_address(address: str, *, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail at once, naming ``address``, when nothing accepts connections there.

    ``ray.init`` retries an unreachable cluster for minutes, printing Ray's own
    log lines; a TCP connection to the address tells within seconds.

    Raises
    ------
    MusegenError
        Nothing listens at the address (or it is not ``host:port``-shaped and
        not one Ray resolves itself, such as ``auto``).
    """
    import socket

    where = _host_port(address)
    if where is None:
        if address in ("auto", "local"):
            return
        raise MusegenError(f"--ray-address must look like host:port or ray://host:port, got {address!r}")
    try:
        with socket.create_connection(where, timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise MusegenError(f"cannot reach the Ray cluster at {address!r}: {reason}") from None


#: Seconds ``ray.wait`` blocks before the runner looks at signals again.
WAIT_SLICE_S = 0.5


def _signal_handlers() -> dict:
    """The Python handlers of SIGTERM and SIGINT, where this thread may set them (the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signal_handlers(handlers: dict) -> None:
    import signal

    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def _start_reaper():
    """Start :mod:`musegen.batch._reaper` (see there why); None off Linux or when it cannot start."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return subprocess.Popen([sys.executable, "-m", "musegen.batch._reaper"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, close_fds=True)
    except OSError:
        return None  # Ray's own clean-up still runs; only its agents may outlive a killed runner


def _tell_reaper(proc) -> None:
    """Name to the reaper the processes below this one now (Ray's services, agents, workers)."""
    if proc is None or proc.stdin is None:
        return
    from musegen.batch._reaper import descendants, start_time

    lines = []
    for pid in descendants(os.getpid()):
        started = start_time(pid)
        if pid != proc.pid and started is not None:
            lines.append(f"{pid} {started}\n")
    try:
        proc.stdin.write("".join(lines).encode())
        proc.stdin.flush()
    except OSError:
        pass


def _abandon_start(ray, reaper) -> None:
    """After a failed or interrupted ``ray.init``: stop what it started (a raylet stopped, not
    killed, lets its agents exit at once) and have the reaper kill what is left."""
    _tell_reaper(reaper)
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - half-started: whatever it can stop
        pass
    _stop_reaper(reaper)


def _stop_reaper(proc) -> None:
    """Let the reaper kill what the Ray instance left running."""
    if proc is None:
        return
    import subprocess

    try:
        proc.stdin.close()  # end-of-file: it kills what it was told of and exits
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()


class JobActor:
    """A Ray actor running jobs in its own long-lived process."""

    def __init__(self, out_dir: str, images: bool, threads: int):
        from musegen.batch.local import THREAD_VARS

        for var in THREAD_VARS:
            os.environ.setdefault(var, str(threads))
        self.out_dir = out_dir
        self.images = images

    def run(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from musegen.batch.job import run_jobs

        return run_jobs(jobs, self.out_dir, images=self.images)


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
        if address:
            probe_address(address)

    def run(self, jobs: list[dict[str, Any]], out_dir: str, *, images: bool, on_start: OnEvent,
            on_result: OnEvent) -> None:
        import logging
        import signal

        from musegen.batch.job import failed_row

        ray = _import_ray()
        started = False
        reaper = None
        if not ray.is_initialized():
            opts = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)  # no banner lines
            if not self.address:
                reaper = _start_reaper()  # a local instance ends with the runner, even after kill -9
            handlers = _signal_handlers()
            try:
                if self.address:
                    ray.init(address=self.address, **opts)
                else:
                    ray.init(num_cpus=self.workers or cpu_count(), **opts)
            except BaseException as exc:
                _abandon_start(ray, reaper)
                if isinstance(exc, ConnectionError):
                    raise MusegenError(f"cannot reach the Ray cluster at {self.address!r}: {exc}") from None
                if isinstance(exc, SystemExit) and exc.code == signal.SIGTERM and handlers:
                    # ray.init's own SIGTERM handler exits with the signal's number: the signal goes
                    # to the handler it replaced (the CLI's: one line, exit 143) instead
                    _restore_signal_handlers(handlers)
                    signal.raise_signal(signal.SIGTERM)
                raise
            finally:
                # Ray's core worker installs a SIGTERM handler that prints a C++ stack dump and
                # exits 1: the CLI's own (one line, exit 143, temporary files removed) comes back
                _restore_signal_handlers(handlers)
            started = True
            _tell_reaper(reaper)
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
            todo = JobQueue(jobs, n)
            deaths: Counter[str] = Counter()
            told_workers = False
            inflight: dict[Any, tuple[list[dict[str, Any]], Any]] = {}
            while todo or inflight:
                while todo and idle:
                    chunk = todo.take()
                    actor = idle.pop()
                    inflight[actor.run.remote(chunk)] = (chunk, actor)
                    for job in chunk:
                        on_start(job)
                # back in Python every second, so that SIGTERM and Ctrl-C are handled at once, not
                # when a job ends (a Python signal handler runs only between bytecodes)
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=WAIT_SLICE_S)
                if reaper is not None and not told_workers:
                    _tell_reaper(reaper)  # the actors' processes, started since
                    told_workers = True
                for ref in ready:
                    chunk, actor = inflight.pop(ref)
                    try:
                        rows = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        for job in chunk:
                            deaths[job["id"]] += 1
                            if deaths[job["id"]] >= MAX_WORKER_DEATHS:
                                on_result(failed_row(job, "its Ray worker died (killed, or out of memory)",
                                                     error_type="WorkerDied"))
                            else:
                                todo.retry(job)
                        idle.append(spawn())
                        continue
                    except ray.exceptions.RayError as exc:
                        rows = [failed_row(job, f"Ray error: {type(exc).__name__}: {exc}",
                                           error_type=type(exc).__name__) for job in chunk]
                    idle.append(actor)
                    for row in rows:
                        on_result(row)
        finally:
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # already gone
                    pass
            try:
                if started:
                    ray.shutdown()
            finally:
                _stop_reaper(reaper)
