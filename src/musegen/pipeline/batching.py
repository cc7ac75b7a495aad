"""Several generate calls with one engine pass per engine: grouping, chunking and the fallback, in one place.

The batch runner hands a worker's jobs here (:func:`generate_many`); the
requests that share an engine go to its ``generate_many`` together, and when
that batched call fails they are generated one by one, so one bad request
cannot fail its neighbours.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

from musegen.engines.base import Request
from musegen.errors import EngineError
from musegen.pipeline.args import GenerateArgs
from musegen.pipeline.finishing import finish
from musegen.pipeline.planning import Job, log, plan

from musegen.pipeline.result import Result


def generate_many(calls: Sequence[dict[str, Any]]) -> Iterator[tuple[int, list[Result] | Exception, float]]:
    """Several :func:`~musegen.pipeline.generate` calls, with one engine call for the requests of each engine.

    Engines with a ``generate_many`` method (see :class:`musegen.engines.base.Engine`)
    get their requests together, so engines that batch sample them as one
    batch; others get them one at a time.  A failure stays with its call: when
    the engine's batched call fails, its requests are generated one by one,
    so one bad request cannot fail the others.

    Parameters
    ----------
    calls : sequence of dict
        Keyword arguments of :func:`~musegen.pipeline.generate` (``progress`` excepted).

    Yields
    ------
    (int, list of Result or Exception, float)
        The index of a call, its results or what it raised, and its own cost
        in seconds (its planning and finishing, and its share of the
        engine call), as each call finishes with its files written.
    """
    jobs: dict[int, Job] = {}
    cost: dict[int, float] = {}
    for i, kwargs in enumerate(calls):
        t = time.perf_counter()
        try:
            jobs[i] = plan(GenerateArgs(**kwargs))
        except Exception as exc:  # noqa: BLE001 - reported for this call only
            yield i, exc, time.perf_counter() - t
            continue
        cost[i] = time.perf_counter() - t
    by_engine: dict[int, list[int]] = {}
    for i, job in jobs.items():
        by_engine.setdefault(id(job.engine), []).append(i)
    for members in by_engine.values():
        engine = jobs[members[0]].engine
        outcomes = run_engine(engine, [jobs[i].request for i in members])
        for i, (outputs, t_eng) in zip(members, outcomes):
            t = time.perf_counter()
            if not isinstance(outputs, Exception):
                try:
                    outputs = finish(jobs[i], outputs, t_eng, lambda done, total, msg: None)
                except Exception as exc:  # noqa: BLE001
                    outputs = exc
            yield i, outputs, cost[i] + t_eng + time.perf_counter() - t


def run_engine(engine, requests: list[Request]) -> list[tuple["list | Exception", float]]:
    """``(outputs or the exception, engine seconds)`` per request: batched if the engine can."""
    many = getattr(engine, "generate_many", None)
    if many is not None and len(requests) > 1:
        t = time.perf_counter()
        try:
            outs = many(requests)
            if len(outs) != len(requests):
                raise EngineError(f"engine {engine.name!r} returned {len(outs)} results for {len(requests)} requests")
        except MemoryError:  # retrying would only run out again, and slower
            raise
        except Exception as exc:  # noqa: BLE001 - one bad request must not fail its neighbours: retry one by one
            log.warning("%s: the batched call of %d requests failed (%s); generating them one by one",
                        engine.name, len(requests), _one_line(exc))
        else:
            share = (time.perf_counter() - t) / len(requests)
            return [(out, share) for out in outs]
    done: list[tuple[list | Exception, float]] = []
    for request in requests:
        t = time.perf_counter()
        try:
            done.append((engine.generate(request), time.perf_counter() - t))
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            done.append((exc, time.perf_counter() - t))
    return done


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for a log line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
