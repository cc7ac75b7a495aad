"""Piano-roll pictures (PNG) of scores, for inspection and side-by-side comparison.

matplotlib is imported when a plot is drawn, and only its object-oriented API
with an Agg canvas is used, so the global pyplot backend is never touched.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from symusic import Score, TimeUnit

from musegen.errors import ParameterError
from musegen.atomic import atomic_write_bytes

__all__ = ["GM_DRUM_NAMES", "plot_pianoroll", "plot_pianorolls"]

#: Short names of common General MIDI percussion keys (channel 10).
GM_DRUM_NAMES = {
    35: "Kick 2",
    36: "Kick",
    37: "Side stick",
    38: "Snare",
    39: "Clap",
    40: "Snare 2",
    41: "Low tom 2",
    42: "Hat closed",
    43: "Low tom",
    44: "Hat pedal",
    45: "Mid tom 2",
    46: "Hat open",
    47: "Mid tom",
    48: "High tom 2",
    49: "Crash",
    50: "High tom",
    51: "Ride",
    52: "China",
    53: "Ride bell",
    54: "Tambourine",
    55: "Splash",
    56: "Cowbell",
    57: "Crash 2",
    59: "Ride 2",
    69: "Cabasa",
    70: "Maracas",
    75: "Claves",
}

_FIG_WIDTH_IN = 12.0
_NOTES_HEIGHT_IN = 3.6
_DRUMS_HEIGHT_IN = 1.4
_DPI = 100


def plot_pianoroll(
    score: Score,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    max_seconds: float | None = None,
) -> Path:
    """Draw one score as a piano roll and write it as a PNG, atomically.

    Pitched tracks are bars (one colour per track, legend with name and GM
    program); drum tracks are dots in their own lane below. The x axis is in
    seconds, honouring tempo changes.

    Parameters
    ----------
    score : symusic.Score
        The score, in any time unit.
    path : str or os.PathLike
        The ``.png`` to write; missing parent folders are created.
    title : str or None
        Heading; None gives none.
    max_seconds : float or None
        Show only the first ``max_seconds`` seconds.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ParameterError
        If ``score`` is not a Score or ``max_seconds`` is not positive.
    OutputError
        If the file cannot be written.
    """
    return plot_pianorolls([(title, score)], path, max_seconds=max_seconds)


def plot_pianorolls(
    items: Sequence[tuple[str | None, Score]],
    path: str | os.PathLike[str],
    *,
    max_seconds: float | None = None,
) -> Path:
    """Stack several piano rolls on one shared time axis, e.g. seed and outputs.

    Parameters
    ----------
    items : sequence of (str or None, symusic.Score)
        ``(title, score)`` pairs, drawn top to bottom.
    path : str or os.PathLike
        The ``.png`` to write; missing parent folders are created.
    max_seconds : float or None
        Show only the first ``max_seconds`` seconds.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ParameterError
        If ``items`` is empty or holds something else than (title, Score)
        pairs, or ``max_seconds`` is not positive.
    OutputError
        If the file cannot be written.
    """
    items = list(items)
    if not items:
        raise ParameterError("plot_pianorolls needs at least one (title, score) pair")
    if max_seconds is not None and not (np.isfinite(max_seconds) and max_seconds > 0):
        raise ParameterError(f"max_seconds must be a positive number, got {max_seconds!r}")
    prepared = []
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], Score)):
            raise ParameterError(f"items[{i}] must be a (title, symusic Score) pair")
        title, score = item
        prepared.append((title, _seconds(score)))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = []
    for _, score in prepared:
        heights.append(_NOTES_HEIGHT_IN if _has_pitched(score) or not _has_drums(score) else 0.0)
        heights.append(_DRUMS_HEIGHT_IN if _has_drums(score) else 0.0)
    rows = [h for h in heights if h > 0]
    fig = Figure(figsize=(_FIG_WIDTH_IN, sum(rows) + 0.4 * len(prepared)), dpi=_DPI)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(rows), 1, height_ratios=rows, hspace=0.35)

    x_end = max_seconds or max(1.0, *(float(s.end()) for _, s in prepared))
    row = 0
    first_ax = None
    for (title, score), note_h, drum_h in zip(prepared, heights[::2], heights[1::2]):
        axes = []
        for height in (note_h, drum_h):
            if height > 0:
                axes.append(fig.add_subplot(grid[row], sharex=first_ax))
                if first_ax is None:
                    first_ax = axes[-1]
                row += 1
            else:
                axes.append(None)
        note_ax, drum_ax = axes
        top = note_ax or drum_ax
        if title:
            top.set_title(str(title), fontsize=10, loc="left")
        _draw(score, note_ax, drum_ax, max_seconds)
        for ax in (note_ax, drum_ax):
            if ax is not None:
                ax.set_xlim(0, x_end)
                ax.grid(axis="x", alpha=0.25)
        (drum_ax or note_ax).set_xlabel("time (s)")

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def _seconds(score: Score) -> Score:
    if score.ttype == TimeUnit.second:
        return score
    if score.ttype != TimeUnit.tick:
        score = score.to("tick")
    return score.to("second")


def _has_pitched(score: Score) -> bool:
    return any(not t.is_drum and len(t.notes) for t in score.tracks)


def _has_drums(score: Score) -> bool:
    return any(t.is_drum and len(t.notes) for t in score.tracks)


def _label(index: int, track) -> str:
    name = track.name.strip() or f"track {index}"
    return f"{name} (drums)" if track.is_drum else f"{name} (program {track.program})"


def _draw(score: Score, note_ax, drum_ax, max_seconds: float | None) -> None:
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba

    colours = [f"C{i % 10}" for i in range(len(score.tracks))]
    lowest, highest = 127, 0
    drum_keys: set[int] = set()
    for index, track in enumerate(score.tracks):
        notes = track.notes.numpy()
        start = notes["time"].astype(np.float64)
        dur = notes["duration"].astype(np.float64)
        pitch = notes["pitch"].astype(np.int64)
        velocity = notes["velocity"].astype(np.float64)
        if max_seconds is not None:
            keep = start < max_seconds
            start, dur, pitch, velocity = start[keep], dur[keep], pitch[keep], velocity[keep]
        if start.size == 0:
            continue
        label = _label(index, track)
        if track.is_drum:
            sizes = 8 + 30 * (velocity / 127.0)
            drum_ax.scatter(
                start,
                pitch,
                s=sizes,
                color=colours[index],
                label=label,
                edgecolors="none",
                alpha=0.85,
            )
            drum_keys.update(pitch.tolist())
            continue
        lowest, highest = min(lowest, int(pitch.min())), max(highest, int(pitch.max()))
        boxes = np.stack(
            [
                np.stack([start, pitch - 0.4], axis=1),
                np.stack([start + dur, pitch - 0.4], axis=1),
                np.stack([start + dur, pitch + 0.4], axis=1),
                np.stack([start, pitch + 0.4], axis=1),
            ],
            axis=1,
        )
        colour = np.tile(to_rgba(colours[index]), (start.size, 1))
        colour[:, 3] = 0.45 + 0.5 * (velocity / 127.0)  # louder notes darker
        note_ax.add_collection(
            PolyCollection(boxes, facecolors=colour, edgecolors="none", label=label)
        )
    if note_ax is not None:
        if highest < lowest:
            note_ax.text(0.5, 0.5, "no notes", transform=note_ax.transAxes, ha="center")
            lowest, highest = 60, 72
        note_ax.set_ylim(lowest - 2, highest + 2)
        note_ax.set_ylabel("pitch")
        _pitch_ticks(note_ax, lowest, highest)
        if note_ax.collections:
            note_ax.legend(
                loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, framealpha=0.8
            )
    if drum_ax is not None:
        keys = sorted(drum_keys)
        drum_ax.set_yticks(keys)
        drum_ax.set_yticklabels([GM_DRUM_NAMES.get(k, str(k)) for k in keys], fontsize=7)
        drum_ax.set_ylim(min(keys) - 1.5, max(keys) + 1.5)
        drum_ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, framealpha=0.8)


def _pitch_ticks(ax, lowest: int, highest: int) -> None:
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    span = highest - lowest
    # label Cs on a wide roll, C-E-G on a medium one, every white key on a narrow one
    shown = (0,) if span > 30 else (0, 4, 7) if span > 14 else (0, 2, 4, 5, 7, 9, 11)
    ticks = [t for t in range(lowest - 2, highest + 3) if t % 12 in shown]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{names[t % 12]}{t // 12 - 1}" for t in ticks], fontsize=7)
