"""Progress bars for the CLI (library code only calls a callback)."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Callable

import click


class StepRate:
    """An ETA from the measured time of recent steps.

    The first steps of a job carry its warm-up (the first forward pass,
    allocations, a prompt's encoding) and can take many times a later step,
    so the first ``warmup`` updates only start the clock; the rate is the
    progress over the last ``window`` updates after them.  Until two updates
    past the warm-up are measured there is no estimate.
    """

    def __init__(self, *, warmup: int = 2, window: int = 8):
        self.warmup = warmup
        self._seen = 0
        self._points: deque[tuple[float, float]] = deque(maxlen=window + 1)

    def update(self, done: float, now: float) -> None:
        """Record that ``done`` units were complete at time ``now`` (seconds)."""
        self._seen += 1
        if self._seen < self.warmup:
            return
        if self._points and done <= self._points[-1][1]:
            return  # no progress since the last point: keep measuring from it
        self._points.append((now, done))

    def eta(self, total: float) -> float | None:
        """Seconds left until ``total``, or None while not yet measured."""
        if len(self._points) < 3:
            return None
        (t0, d0), (t1, d1) = self._points[0], self._points[-1]
        if t1 <= t0 or d1 <= d0:
            return None
        return max(0.0, (total - d1) * (t1 - t0) / (d1 - d0))


def format_eta(seconds: float | None) -> str:
    """``"ETA 00:01:05"``, or ``""`` when there is no estimate yet."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"ETA {s // 3600:02}:{s // 60 % 60:02}:{s % 60:02}"


class ProgressBar:
    """A ``progress(done, total, message)`` callback drawing a bar on stderr.

    Draws only when stderr is a terminal; otherwise it stays silent so that
    logs and pipes get no control characters.  The ETA comes from
    :class:`StepRate`, not from the time since the first update.
    """

    def __init__(self, label: str, *, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        from musegen.cli.text import shown

        self.label = shown(label)  # may hold a user's name ("learning NAME")
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        self._pos = 0
        self._clock = clock
        self._rate = StepRate()
        self._total: float | None = None
        #: what the bar shows after it: the ETA, or nothing while it is not known
        self.eta_text = ""

    def __call__(self, done: float, total: float, message: str = "") -> None:
        if not self.enabled:
            return
        if total != self._total:  # another unit of progress: measure afresh
            self._rate, self._total = StepRate(), total
        self._rate.update(done, self._clock())
        self.eta_text = format_eta(self._rate.eta(total))
        total_i = max(1, int(round(total * 100)))
        if self._bar is None:
            self._bar = click.progressbar(length=total_i, label=self.label, file=sys.stderr,
                                          show_eta=False, item_show_func=lambda text: text)
            self._bar.__enter__()
        target = min(total_i, int(round(done * 100)))
        self._bar.update(max(0, target - self._pos), self.eta_text)
        self._pos = max(self._pos, target)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
