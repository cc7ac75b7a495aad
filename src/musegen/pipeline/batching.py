"""Several generate calls, planned and finished each on its own, their requests batched per engine.

The batch runner hands a worker's jobs here (:func:`generate_many`).  Which
requests share an engine pass, and the fallback when a shared pass fails, are
decided in one place: :func:`musegen.engines.batching.run_requests`.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

from musegen.engines.batching import run_requests
from musegen.pipeline.args import GenerateArgs
from musegen.pipeline.finishing import finish
from musegen.pipeline.planning import Job, plan
from musegen.pipeline.result import Result


def generate_many(calls: Sequence[dict[str, Any]]) -> Iterator[tuple[int, list[Result] | Exception, float]]:
    """Several :func:`~musegen.pipeline.generate` calls, with one engine call for the requests of each engine.

    The requests of each engine go to :func:`~musegen.engines.batching.run_requests`
    together.  A failure stays with its call: a call that cannot be planned,
    whose engine pass fails, or that cannot be finished yields its exception
    and the others go on.

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
        outcomes = run_requests(engine, [jobs[i].request for i in members])
        for i, (outputs, t_eng) in zip(members, outcomes):
            t = time.perf_counter()
            if not isinstance(outputs, Exception):
                try:
                    outputs = finish(jobs[i], outputs, t_eng, lambda done, total, msg: None)
                except Exception as exc:  # noqa: BLE001
                    outputs = exc
            yield i, outputs, cost[i] + t_eng + time.perf_counter() - t
