"""Progress bars for the CLI (library code only calls a callback)."""

from __future__ import annotations

import sys

import click


class ProgressBar:
    """A ``progress(done, total, message)`` callback drawing a bar on stderr.

    Draws only when stderr is a terminal; otherwise it stays silent so that
    logs and pipes get no control characters.
    """

    def __init__(self, label: str, *, enabled: bool | None = None):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        self._pos = 0

    def __call__(self, done: float, total: float, message: str = "") -> None:
        if not self.enabled:
            return
        total_i = max(1, int(round(total * 100)))
        if self._bar is None:
            self._bar = click.progressbar(length=total_i, label=self.label, file=sys.stderr,
                                          show_eta=True, item_show_func=lambda _: None)
            self._bar.__enter__()
        target = min(total_i, int(round(done * 100)))
        if target > self._pos:
            self._bar.update(target - self._pos)
            self._pos = target

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
