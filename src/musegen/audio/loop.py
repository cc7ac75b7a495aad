"""Seamless loops: audio that can repeat end to start without a click or a gap.

Two ways to close a loop of ``length`` samples:

- :func:`fold_tail` (MIDI engines, whose audio after the last bar is only
  release and reverb): everything past the loop's end is added back onto its
  start, as it would sound when the loop repeats.  Played in a row, the loop
  is then the same signal as the music played on, bar after bar.
- :func:`crossfade_loop` (audio engines, whose audio past the end is more
  music): the start fades in under the music that followed the end, with a
  short equal-power (sine/cosine) crossfade at the bar line.

:func:`join_jump` measures what a listener would hear at the join: the
sample-to-sample step there, next to the music's own steps.
"""

from __future__ import annotations

import numpy as np

#: equal-power crossfade of :func:`crossfade_loop`
CROSSFADE_S = 0.05


def fold_tail(y: np.ndarray, length: int) -> np.ndarray:
    """``y`` cut to ``length`` samples with what lies past that end added onto the start (repeatedly,
    when the tail is longer than the loop)."""
    if not 0 < length <= y.shape[1]:
        raise ValueError(f"loop length {length} outside 1..{y.shape[1]}")
    out = y[:, :length].astype(np.float32, copy=True)
    for start in range(length, y.shape[1], length):
        piece = y[:, start:start + length]
        out[:, :piece.shape[1]] += piece
    return out


def crossfade_loop(y: np.ndarray, length: int, *, sr: int, seconds: float = CROSSFADE_S) -> np.ndarray:
    """``y`` cut to ``length`` samples, its start crossfaded with the music that followed the end.

    ``y`` must hold at least ``seconds`` of audio past ``length`` (see :func:`crossfade_room`).
    """
    n = crossfade_room(sr, seconds)
    if not 0 < length <= y.shape[1] - n:
        raise ValueError(f"loop length {length} leaves no {n} samples to crossfade in {y.shape[1]}")
    out = y[:, :length].astype(np.float32, copy=True)
    ramp = np.linspace(0.0, np.pi / 2, n, dtype=np.float32)
    out[:, :n] = out[:, :n] * np.sin(ramp) + y[:, length:length + n] * np.cos(ramp)
    return out


def crossfade_room(sr: int, seconds: float = CROSSFADE_S) -> int:
    """Samples of audio :func:`crossfade_loop` needs past the loop's end."""
    return max(2, int(round(seconds * sr)))


def join_jump(y: np.ndarray) -> tuple[float, float]:
    """``(step at the join, the music's own 99.9th-percentile step)`` of ``y`` played twice in a row."""
    steps = np.abs(np.diff(y, axis=1)).max(axis=0)
    join = float(np.abs(y[:, 0] - y[:, -1]).max())
    return join, float(np.percentile(steps, 99.9))
