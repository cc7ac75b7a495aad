"""The local executor: a pool of long-lived worker processes.

Workers are started with the ``spawn`` method (no state copied from the
parent, the same on every platform) and live for the whole run, so an
engine - and its model weights - loads once per worker: the pipeline keeps
one engine per process (:func:`musegen.engines.registry.get_engine`), and
the runner hands out jobs grouped by engine.

A worker gets a chunk of jobs at a time: generate/extend jobs that differ
only in their seed (and in rendering and post-processing), up to
:data:`MAX_CHUNK` of them and never more than an even share of what is left,
so no worker sits idle while another has a queue.  The worker hands their
requests to the engine together (engines that batch sample them as one
batch, see :func:`musegen.batch.job.run_jobs`) and reports each job through
a queue as soon as its folder is committed, so the manifest records it even
if the worker dies before the chunk is done.  At most one chunk per worker
is in flight, so when a worker dies (killed, out of memory) only the jobs it
and its siblings had not finished are affected: they are tried once more,
each alone, in a fresh pool, and recorded as failed if their worker dies
again.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import threading
from collections import Counter, deque
from typing import Any, Callable

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
MAX_WORKER_DEATHS = 2
#: Most jobs handed to a worker at once.  The symbolic engine samples a batch of 8 about
#: twice as fast as 8 requests alone; larger batches gain little, as rows that finish
#: early wait for the longest one.
MAX_CHUNK = 8
#: Environment variable that overrides :data:`MAX_CHUNK` (1: one job at a time, no batching).
CHUNK_VAR = "MUSEGEN_BATCH_CHUNK"
#: Parameters that do not reach the engine: jobs differing only in these may share a call.
_NOT_ENGINE = {"seed", "soundfont", "sample_rate"}

OnEvent = Callable[[dict[str, Any]], None]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def batch_key(job: dict[str, Any]) -> str | None:
    """Jobs with the same key may share an engine call; ``None``: the job runs alone.

    Generate/extend jobs whose parameters differ only in the seed, the
    rendering and the post-processing share a key.  The engine decides what
    it can really sample together (a seed may pick another tempo or key).
    """
    if job["command"] not in ("generate", "extend"):
        return None
    from musegen.batch.params import CHAIN_KEYS

    same = {k: v for k, v in job["params"].items() if k not in _NOT_ENGINE and k not in CHAIN_KEYS}
    return json.dumps([job["command"], job.get("engine"), same], sort_keys=True, default=str)


class JobQueue:
    """Pending jobs, handed out in chunks of jobs with the same :func:`batch_key`."""

    def __init__(self, jobs: list[dict[str, Any]], workers: int, *, max_chunk: int | None = None):
        self.pending = deque(jobs)
        self.workers = max(1, workers)
        self.max_chunk = max(1, max_chunk if max_chunk is not None else chunk_limit())
        self.alone: set[str] = set()  # jobs whose worker died: retried one per worker

    def __len__(self) -> int:
        return len(self.pending)

    def take(self) -> list[dict[str, Any]]:
        """The next chunk: the first job and up to an even share of those it can batch with."""
        head = self.pending.popleft()
        key = None if head["id"] in self.alone else batch_key(head)
        if key is None:
            return [head]
        size = min(self.max_chunk, -(-(len(self.pending) + 1) // self.workers))
        chunk, rest = [head], deque()
        while self.pending and len(chunk) < size:
            job = self.pending.popleft()
            if job["id"] not in self.alone and batch_key(job) == key:
                chunk.append(job)
            else:
                rest.append(job)
        rest.extend(self.pending)
        self.pending = rest
        return chunk

    def retry(self, job: dict[str, Any]) -> None:
        """Put a job back at the front, to run alone (its chunk's worker died)."""
        self.alone.add(job["id"])
        self.pending.appendleft(job)


def chunk_limit() -> int:
    """:data:`MAX_CHUNK`, or the value of ``MUSEGEN_BATCH_CHUNK`` (for measuring, e.g. 1 to turn batching off)."""
    from musegen.errors import ParameterError

    value = os.environ.get(CHUNK_VAR, "").strip()
    if not value:
        return MAX_CHUNK
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise ParameterError(f"{CHUNK_VAR} must be an integer between 1 and 64, got {value!r}")
    return n


_ROWS = None  # a worker's queue to the parent for rows of finished jobs (see run_chunk)


def run_chunk(jobs: list[dict[str, Any]], out_dir: str, images: bool) -> list[dict[str, Any]]:
    """Worker side: run a chunk, sending each job's row to the parent as it is done."""
    from musegen.batch.job import run_jobs

    post = (lambda row: _ROWS.put(row)) if _ROWS is not None else None
    return run_jobs(jobs, out_dir, images=images, on_row=post)


def init_worker(threads: int, rows: Any = None) -> None:
    """Set up a worker process: the parent handles Ctrl-C; bounded math threads."""
    global _ROWS
    _ROWS = rows
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

        from musegen.batch.job import failed_row

        todo = JobQueue(jobs, self.workers)
        deaths: Counter[str] = Counter()
        threads = max(1, cpu_count() // self.workers)
        ctx = multiprocessing.get_context("spawn")
        rows_q = ctx.Queue()
        reported: set[str] = set()

        def record(row: dict[str, Any]) -> None:
            if row["id"] not in reported:
                reported.add(row["id"])
                on_result(row)

        def drain() -> None:  # rows workers sent as their jobs finished
            while True:
                try:
                    row = rows_q.get_nowait()
                except queue.Empty:
                    return
                if row["id"] in waiting:
                    record(row)

        waiting: set[str] = set()  # ids of jobs in flight
        try:
            while todo:
                n = min(self.workers, len(todo))
                pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=init_worker,
                                           initargs=(threads, rows_q))
                inflight: dict[Any, list[dict[str, Any]]] = {}
                broken = False
                try:
                    while todo or inflight:
                        while todo and len(inflight) < n and not broken:
                            chunk = todo.take()
                            with _sigint_blocked():  # submit() is where the pool starts workers
                                fut = pool.submit(run_chunk, chunk, out_dir, images)
                            inflight[fut] = chunk
                            for job in chunk:
                                waiting.add(job["id"])
                                on_start(job)
                        if not inflight:
                            break
                        batched = any(len(c) > 1 for c in inflight.values())
                        done, _ = wait(inflight, timeout=0.25 if batched else None, return_when=FIRST_COMPLETED)
                        drain()
                        for fut in done:
                            chunk = inflight.pop(fut)
                            try:
                                rows = fut.result()
                            except BrokenProcessPool:
                                broken = True
                                drain()
                                for job in chunk:
                                    waiting.discard(job["id"])
                                    if job["id"] in reported:
                                        continue
                                    deaths[job["id"]] += 1
                                    if deaths[job["id"]] >= MAX_WORKER_DEATHS:
                                        record(_died_row(job))
                                    else:
                                        todo.retry(job)
                                continue
                            except Exception as exc:  # e.g. a result that cannot be pickled
                                rows = [failed_row(job, f"internal error: {type(exc).__name__}: {exc}",
                                                   error_type=type(exc).__name__) for job in chunk]
                            for row in rows:
                                record(row)
                            for job in chunk:
                                waiting.discard(job["id"])
                except BaseException:
                    _kill(pool)
                    raise
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
                    drain()
        finally:
            rows_q.close()
            rows_q.cancel_join_thread()


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
