"""Which requests share an engine pass, and what happens when a shared pass fails: decided here only.

An engine that can batch offers three things (see :class:`musegen.engines.base.Engine`):

- ``prepare(request)``: the request checked and set up (model loaded, prompt
  planned), as an object with ``batch_key`` (requests with equal keys may be
  rows of one pass; ``None``: the request runs alone) and ``rows`` (how many
  rows it adds to a pass);
- ``max_rows(prepared)``: the most rows one pass may hold (``None``: no limit);
- ``run_batch(prepared, progress=None)``: one pass over prepared requests of
  one key (or one request alone, in as many passes as it needs), their
  outputs in order.

:func:`run_requests` groups by key, cuts each group into passes of whole
requests, and when a shared pass fails runs its requests one at a time, so
one bad request cannot fail its neighbours.  An engine without ``run_batch``
gets its requests one at a time through ``generate``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from musegen.engines.base import EngineOutput, Request
from musegen.errors import EngineError

log = logging.getLogger("musegen.pipeline")

def can_batch(engine: Any) -> bool:
    return all(callable(getattr(engine, name, None)) for name in ("prepare", "run_batch"))


def run_requests(engine: Any, requests: Sequence[Request]) -> list[tuple[list[EngineOutput] | Exception, float]]:
    """``(outputs or the exception, engine seconds)`` for each request, in order, batched where the engine can.

    A :class:`MemoryError` is raised, not kept: retrying would only run out again, and slower.
    """
    if not can_batch(engine) or len(requests) < 2:
        return [_timed(lambda r=r: engine.generate(r)) for r in requests]
    done: list[tuple[list[EngineOutput] | Exception, float] | None] = [None] * len(requests)
    prepared: dict[int, Any] = {}
    for i, request in enumerate(requests):
        outcome = _timed(lambda r=request: engine.prepare(r))
        if isinstance(outcome[0], Exception):
            done[i] = outcome
        else:
            prepared[i] = outcome[0]
            done[i] = ([], outcome[1])  # its preparation time; outputs come below
    for members in _passes(engine, prepared):
        for i, (outputs, seconds) in zip(members, _run_pass(engine, [prepared[i] for i in members])):
            done[i] = (outputs, done[i][1] + seconds)
    return done  # type: ignore[return-value]


def generate_batched(engine: Any, requests: Sequence[Request]) -> list[list[EngineOutput]]:
    """The outputs of each request, batched as :func:`run_requests` batches them; the first failure is raised."""
    outcomes = run_requests(engine, requests)
    for outputs, _ in outcomes:
        if isinstance(outputs, Exception):
            raise outputs
    return [outputs for outputs, _ in outcomes]  # type: ignore[misc]


def _passes(engine: Any, prepared: dict[int, Any]) -> list[list[int]]:
    """Indices per pass: requests of one key, whole, up to the engine's rows per pass."""
    groups: dict[Any, list[int]] = {}
    for i, p in prepared.items():
        key = p.batch_key
        groups.setdefault(("alone", i) if key is None else ("key", key), []).append(i)
    passes = []
    for members in groups.values():
        limit = getattr(engine, "max_rows", lambda p: None)(prepared[members[0]])
        current: list[int] = []
        rows = 0
        for i in members:
            n = prepared[i].rows
            if current and limit is not None and rows + n > limit:
                passes.append(current)
                current, rows = [], 0
            current.append(i)
            rows += n
        passes.append(current)
    return passes


def _run_pass(engine: Any, batch: list[Any]) -> list[tuple[list[EngineOutput] | Exception, float]]:
    """One pass; if a shared one fails, its requests again one at a time (said in a log line)."""
    t = time.perf_counter()
    try:
        outs = engine.run_batch(batch)
        if len(outs) != len(batch):
            raise EngineError(f"engine {engine.name!r} returned {len(outs)} results for {len(batch)} requests")
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad request must not fail its neighbours
        if len(batch) == 1:
            return [(exc, time.perf_counter() - t)]
        log.warning("%s: the batched call of %d requests failed (%s); generating them one by one",
                    engine.name, len(batch), _one_line(exc))
        return [_timed(lambda p=p: engine.run_batch([p])[0]) for p in batch]
    share = (time.perf_counter() - t) / len(batch)
    return [(out, share) for out in outs]


def _timed(call) -> tuple[Any, float]:
    t = time.perf_counter()
    try:
        return call(), time.perf_counter() - t
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - kept for its own request
        return exc, time.perf_counter() - t


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for a log line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
