"""Tempo and meter maps, bar grids and tick-to-second conversion."""

from __future__ import annotations

import numpy as np
from symusic import Score

from musegen.errors import MidiError, ParameterError

__all__ = [
    "DEFAULT_BPM",
    "DEFAULT_METER",
    "MAX_BARS",
    "bar_starts",
    "dominant",
    "meter_map",
    "tempo_map",
    "ticks_per_bar",
    "seconds_to_ticks",
    "ticks_to_seconds",
]

#: What MIDI assumes before the first tempo event (quarter notes per minute).
DEFAULT_BPM = 120.0
#: What MIDI assumes before the first time-signature event.
DEFAULT_METER = (4, 4)
#: Most bars :func:`bar_starts` lays out (about 55 hours of 4/4 at 120 BPM).
MAX_BARS = 100_000


def tempo_map(score: Score) -> list[tuple[int, float]]:
    """Tempo changes as ``(tick, bpm)``, bpm in quarter notes per minute.

    BPM are rounded to 0.001 (a file stores whole microseconds per quarter,
    so 85 BPM reads back as 85.00004). The first entry is always at tick 0
    (120 BPM when the file sets no tempo there); of several changes at one
    tick the last wins; repeats of the same tempo are dropped.
    """
    changes: dict[int, float] = {}
    for tempo in sorted(score.tempos, key=lambda t: t.time):
        if tempo.mspq > 0:
            changes[int(tempo.time)] = round(60_000_000.0 / tempo.mspq, 3)
    out: list[tuple[int, float]] = []
    if 0 not in changes:
        out.append((0, DEFAULT_BPM))
    for tick, bpm in sorted(changes.items()):
        if out and abs(out[-1][1] - bpm) < 1e-9:
            continue
        out.append((tick, bpm))
    return out


def meter_map(score: Score) -> list[tuple[int, int, int]]:
    """Time-signature changes as ``(tick, numerator, denominator)``.

    The first entry is always at tick 0 (4/4 when the file sets no meter
    there); of several changes at one tick the last wins; invalid signatures
    (zero numerator, denominator not a power of two) and repeats are dropped.
    """
    changes: dict[int, tuple[int, int]] = {}
    for sig in sorted(score.time_signatures, key=lambda t: t.time):
        num, den = int(sig.numerator), int(sig.denominator)
        if num >= 1 and den >= 1 and den & (den - 1) == 0:
            changes[int(sig.time)] = (num, den)
    out: list[tuple[int, int, int]] = []
    if 0 not in changes:
        out.append((0, *DEFAULT_METER))
    for tick, (num, den) in sorted(changes.items()):
        if out and out[-1][1:] == (num, den):
            continue
        out.append((tick, num, den))
    return out


def ticks_per_bar(numerator: int, denominator: int, tpq: int) -> int:
    """Length of one bar in ticks (at least 1)."""
    return max(1, round(tpq * 4 * numerator / denominator))


def bar_starts(
    meters: list[tuple[int, int, int]], end_tick: int, tpq: int, *, max_bars: int = MAX_BARS
) -> list[int]:
    """Tick of every bar start from 0 up to (not including) ``end_tick``.

    A meter change starts a new bar even when it falls inside one. At least
    one bar (tick 0) is returned.

    Raises
    ------
    MidiError
        If there would be more than ``max_bars`` bars (a corrupt delta time
        can put a note days after the others).
    """
    if tpq < 1:
        raise ParameterError(f"tpq must be positive, got {tpq}")
    segments = []
    for i, (tick, num, den) in enumerate(meters):
        stop = meters[i + 1][0] if i + 1 < len(meters) else max(end_tick, tick + 1)
        stop = min(stop, max(end_tick, 1))
        if tick < stop:
            segments.append((tick, stop, ticks_per_bar(num, den, tpq)))
    n_bars = sum(-(-(stop - tick) // step) for tick, stop, step in segments)
    if n_bars > max_bars:
        raise MidiError(f"score spans {n_bars} bars, over the limit of {max_bars} (max_bars)")
    starts = [np.arange(tick, stop, step, dtype=np.int64) for tick, stop, step in segments]
    if not starts:
        return [0]
    return [int(t) for t in np.concatenate(starts)]


def ticks_to_seconds(ticks, tempos: list[tuple[int, float]], tpq: int) -> np.ndarray:
    """Convert tick positions to seconds with a tempo map.

    Parameters
    ----------
    ticks : array_like
        Tick positions, any shape.
    tempos : list of (int, float)
        ``(tick, bpm)`` as from :func:`tempo_map`, sorted, first at tick 0.
    tpq : int
        Ticks per quarter note.

    Returns
    -------
    numpy.ndarray
        Seconds, float64, same shape as ``ticks``.
    """
    if tpq < 1:
        raise ParameterError(f"tpq must be positive, got {tpq}")
    ticks = np.asarray(ticks, dtype=np.float64)
    starts = np.array([t for t, _ in tempos] or [0], dtype=np.float64)
    sec_per_tick = np.array(
        [60.0 / (bpm * tpq) for _, bpm in tempos] or [60.0 / (DEFAULT_BPM * tpq)]
    )
    offsets = np.concatenate([[0.0], np.cumsum(np.diff(starts) * sec_per_tick[:-1])])
    index = np.clip(np.searchsorted(starts, ticks, side="right") - 1, 0, len(starts) - 1)
    return offsets[index] + (ticks - starts[index]) * sec_per_tick[index]


def seconds_to_ticks(seconds, tempos: list[tuple[int, float]], tpq: int) -> np.ndarray:
    """Convert times in seconds to (fractional) tick positions; inverse of :func:`ticks_to_seconds`.

    Returns
    -------
    numpy.ndarray
        Ticks as float64, same shape as ``seconds``; round them as needed.
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    starts = np.array([t for t, _ in tempos] or [0], dtype=np.float64)
    change_s = ticks_to_seconds(starts, tempos, tpq)
    ticks_per_s = np.array([bpm * tpq / 60.0 for _, bpm in tempos] or [DEFAULT_BPM * tpq / 60.0])
    index = np.clip(np.searchsorted(change_s, seconds, side="right") - 1, 0, len(starts) - 1)
    return starts[index] + (seconds - change_s[index]) * ticks_per_s[index]


def dominant(changes: list[tuple], end_tick: int):
    """The value held longest (in ticks) in a change map; earliest wins ties.

    Parameters
    ----------
    changes : list of tuple
        ``(tick, *value)`` sorted by tick, as from :func:`tempo_map` or
        :func:`meter_map`.
    end_tick : int
        Where the last value stops.

    Returns
    -------
    tuple
        The ``value`` part of the winning entry.
    """
    if not changes:
        raise ParameterError("changes must not be empty")
    spans: dict[tuple, int] = {}
    for i, (tick, *value) in enumerate(changes):
        stop = changes[i + 1][0] if i + 1 < len(changes) else max(end_tick, tick)
        spans[tuple(value)] = spans.get(tuple(value), 0) + max(0, stop - tick)
    best = max(spans.values())
    for _, *value in changes:
        if spans[tuple(value)] == best:
            return tuple(value)
    return tuple(changes[0][1:])  # unreachable: some value holds the best span
