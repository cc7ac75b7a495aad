"""Parts added to a user's sketch: from its first bar, over its chords, under its tune.

When a preset adds roles a sketch lacks (``generate --midi``, ``extend
--add-parts``), both engines write those parts from the sketch's first bar
on, not only after it: in the sketch's bars they follow the sketch's own
chords (those :func:`~musegen.engines.procedural.continuation.seed_chords`
finds, which the continuation then carries on), so the sketch is accompanied
and the level does not jump where the new bars begin.  The engine option
``accompany_from = "end"`` keeps the sketch alone, as before (a solo intro).

The voicing rule (:func:`voice_under`): each harmony or pad note lies
strictly below the median pitch of the melody notes starting in every bar it
sounds in (a note held over a bar line is judged by both bars).  A bar where
the melody starts no note takes the limit of the bar before (the bars before
the melody's first note take the first limit).  A note at or above its limit
moves down by octaves; one that would fall below ``floor`` on the way is left
out, as is one that lands on a pitch already struck at the same tick.
"""

from __future__ import annotations

import statistics

from musegen.engines.procedural.meter import Grid
from musegen.errors import ParameterError

#: values of the ``accompany_from`` engine option
ACCOMPANY_FROM = ("start", "end")
#: roles whose voicings stay under the melody
UNDER_ROLES = ("harmony", "pad")
#: lowest pitch a harmony or pad note is moved down to (C2); below it the note is left out
FLOOR = 36


def accompany_from(options: dict) -> str:
    """The ``accompany_from`` option: ``"start"`` (added parts from the sketch's first bar, the
    default) or ``"end"`` (only after the sketch)."""
    value = options.get("accompany_from", "start")
    if value not in ACCOMPANY_FROM:
        raise ParameterError(f"engine option accompany_from must be 'start' or 'end', got {value!r}")
    return value


def sketch_origin(bar_starts: list[int], start: int, bar: int, first_note: int) -> int:
    """Tick where added parts begin: the bar line of the sketch's first note, within the run of
    bars of ``bar`` ticks that ends at ``start`` (the continuation's first bar line).

    Bars of another meter before that run get no added parts (their grid is not the
    continuation's); a sketch whose last bar has another length gets none before ``start``.
    """
    lines = sorted(b for b in bar_starts if b < start) + [start]
    k = len(lines) - 1
    while k > 0 and lines[k] - lines[k - 1] == bar:
        k -= 1
    for b in lines[k:-1]:
        if b + bar > first_note:
            return b
    return start


def sketch_spans(windows, origin: int, start: int):
    """Chord spans over ``[origin, start)`` from ``(start, end, Chord)`` windows, gaps closed
    (each chord holds until the next begins; the first one reaches back to ``origin``)."""
    from musegen.engines.procedural.harmony import ChordSpan

    cut = sorted((max(a, origin), min(b, start), c) for a, b, c in windows
                 if c is not None and min(b, start) > max(a, origin))
    spans = []
    for i, (a, _, c) in enumerate(cut):
        a = origin if i == 0 else a
        b = cut[i + 1][0] if i + 1 < len(cut) else start
        if b > a:
            spans.append(ChordSpan(a, b, c))
    return spans


def bar_limits(melody: list[list[int]], grid: Grid) -> list[float | None]:
    """Per bar of ``grid``, the median pitch of the melody notes starting in it (see the module
    docstring for bars without one); all None without melody notes."""
    per_bar: list[list[int]] = [[] for _ in range(grid.bars)]
    for n in melody:
        b = grid.bar_of(int(n[0]))
        if 0 <= b < grid.bars:
            per_bar[b].append(int(n[2]))
    limits: list[float | None] = [float(statistics.median(p)) if p else None for p in per_bar]
    first = next((x for x in limits if x is not None), None)
    prev = first
    for i, x in enumerate(limits):
        prev = x if x is not None else prev
        limits[i] = prev
    return limits


def voice_under(notes: list[list[int]], limits: list[float | None], grid: Grid,
                floor: int = FLOOR) -> list[list[int]]:
    """``notes`` (``[start, dur, pitch, vel]``) with each pitch moved down by octaves to lie below
    its bar's limit (:func:`bar_limits`); see the module docstring for the notes left out."""
    out, struck = [], set()
    for t, d, p, v in sorted(notes):
        first, last = grid.bar_of(int(t)), grid.bar_of(int(t) + max(1, int(d)) - 1)
        held = [x for x in limits[max(0, first):max(0, last + 1)] if x is not None]
        limit = min(held) if held else None
        if limit is not None:
            while p >= limit and p - 12 >= floor:
                p -= 12
            if p >= limit:
                continue
        if (t, p) in struck:
            continue
        struck.add((t, p))
        out.append([t, d, p, v])
    return out
