"""The local executor: a pool of long-lived worker processes.

Workers are started with the ``spawn`` method (no state copied from the
parent, the same on every platform) and live for the whole run, so an
engine - and its model weights - loads once per worker: the pipeline keeps
one engine per process (:func:`musegen.engines.registry.get_engine`), and
the runner hands out jobs grouped by engine.  At most one job per worker is
in flight, so when a worker dies (killed, out of memory) only the jobs it
and its siblings were running are affected: they are tried once more in a
fresh pool, and recorded as failed if their worker dies again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections import Counter, deque
from typing import Any, Callable

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
MAX_WORKER_DEATHS = 2

OnEvent = Callable[[dict[str, Any]], None]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def init_worker(threads: int) -> None:
    """Set up a worker process: the parent handles Ctrl-C; bounded math threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked since the spawn (see _sigint_blocked)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent()
    # Several workers each using every core for BLAS/torch would fight over them.
    for var in THREAD_VARS:
        os.environ.setdefault(var, str(threads))


def _die_with_parent() -> None:
    """Linux: end this worker if the runner is killed, rather than finish a job nobody records."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    import multiprocessing

    # The signal only covers a death from now on: a runner killed while this worker was
    # starting would leave it waiting for jobs forever (its siblings hold the queue open).
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT while workers are spawned: they inherit the mask, so a Ctrl-C
    reaching the whole process group cannot kill one half-started (the parent
    gets its SIGINT when the block ends; the worker discards it)."""
    can = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    if can:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if can:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _died_row(job: dict[str, Any]) -> dict[str, Any]:
    from musegen.batch.job import failed_row

    return failed_row(job, "its worker process died (killed, or out of memory)", error_type="WorkerDied")


class LocalExecutor:
    """Run jobs on ``workers`` processes of this machine (default: all cores)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or cpu_count()

    def run(self, jobs: list[dict[str, Any]], out_dir: str, *, images: bool, on_start: OnEvent,
            on_result: OnEvent) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        from musegen.batch.job import failed_row, run_job

        pending = deque(jobs)
        deaths: Counter[str] = Counter()
        threads = max(1, cpu_count() // self.workers)
        ctx = multiprocessing.get_context("spawn")
        while pending:
            n = min(self.workers, len(pending))
            pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=init_worker,
                                       initargs=(threads,))
            inflight: dict[Any, dict[str, Any]] = {}
            broken = False
            try:
                while pending or inflight:
                    while pending and len(inflight) < n and not broken:
                        job = pending.popleft()
                        with _sigint_blocked():  # submit() is where the pool starts workers
                            fut = pool.submit(run_job, job, out_dir, images=images)
                        inflight[fut] = job
                        on_start(job)
                    if not inflight:
                        break
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        job = inflight.pop(fut)
                        try:
                            row = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            deaths[job["id"]] += 1
                            if deaths[job["id"]] >= MAX_WORKER_DEATHS:
                                on_result(_died_row(job))
                            else:
                                pending.appendleft(job)
                            continue
                        except Exception as exc:  # e.g. a result that cannot be pickled
                            row = failed_row(job, f"internal error: {type(exc).__name__}: {exc}",
                                             error_type=type(exc).__name__)
                        on_result(row)
            except BaseException:
                _kill(pool)
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


def _kill(pool) -> None:
    """Stop a pool's workers now (Ctrl-C): their half-done jobs are discarded."""
    kill = getattr(pool, "kill_workers", None)  # Python 3.14+
    if kill is not None:
        kill()
        return
    # Before 3.14 there is no public way to stop busy workers.
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.kill()
        except (OSError, ValueError):
            pass
