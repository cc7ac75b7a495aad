"""``infill``: bars K..M of a sketch rewritten so they lead into bar M+1, the rest kept note for note.

Planning here checks the gap (``--bars K-M``) against the sketch and the parts
(``--parts``) against its tracks, then hands the engine a
:class:`~musegen.engines.base.Request` whose ``infill`` names the gap.  Engines
that can rewrite bars inside a sketch say so with ``infills = True`` (the symbolic
engine: :mod:`musegen.engines.symbolic.infill`); the others are refused by name.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from musegen.errors import ParameterError

Progress = Callable[[float, float, str], None]

#: the engine ``infill`` uses when none is named (the preset's may write audio)
DEFAULT_ENGINE = "symbolic"
#: part names that pick tracks by role (besides the tracks' own names)
ROLE_PARTS = {"lead": "melody", "melody": "melody", "bass": "bass", "drums": "drums", "harmony": "harmony",
              "chords": "harmony", "accompaniment": "harmony"}


def parse_gap(value: str | Sequence[int], n_bars: int) -> tuple[int, int]:
    """``(K, M)`` from ``"K-M"`` (or ``"K"``, or a pair), with ``1 <= K <= M <= n_bars``.

    Raises
    ------
    ParameterError
        Naming the value and the sketch's bars.
    """
    shown = value if isinstance(value, str) else "-".join(str(v) for v in value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
        pair = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else None
    else:
        vals = list(value)
        pair = (vals[0], vals[-1]) if len(vals) in (1, 2) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in vals) else None
    if pair is None:
        raise ParameterError(f"--bars must look like K-M (bars K to M of the sketch, e.g. 9-12), got {shown!r}")
    first, last = pair
    if not 1 <= first <= last <= n_bars:
        raise ParameterError(f"--bars {shown!r} is not within the sketch's {n_bars} bars "
                             f"(need 1 <= K <= M <= {n_bars})")
    return first, last


def resolve_parts(parts: str | Sequence[str] | None, analysis) -> tuple[int, ...] | None:
    """The sketch's track indices that ``--parts`` names (None: all tracks).

    A name is a role (``lead``/``melody``, ``bass``, ``drums``, ``harmony``/``chords``)
    or a track's own name (case-insensitive).
    """
    if parts is None:
        return None
    names = parts.split(",") if isinstance(parts, str) else list(parts)
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise ParameterError("--parts names no part")
    tracks = [t for t in analysis.tracks if t.n_notes > 0]
    out: list[int] = []
    for name in names:
        low = name.lower()
        hits = [t.index for t in tracks if (t.name or "").strip().lower() == low]
        if not hits and low in ROLE_PARTS:
            hits = [t.index for t in tracks if t.role == ROLE_PARTS[low]]
        if not hits:
            have = ", ".join(f"{t.name or '#' + str(t.index)} ({t.role})" for t in tracks) or "none"
            raise ParameterError(f"--parts: the sketch has no part {name!r}; its tracks: {have}")
        out += [i for i in hits if i not in out]
    return tuple(sorted(out))


def infill_request(args, request, analysis, engine_name: str):
    """``request`` with the gap and the parts of ``args`` (``None`` gap: unchanged)."""
    from musegen.engines.registry import get_engine

    if args.infill is None:
        return request
    if analysis is None:
        raise ParameterError("infill needs a MIDI sketch")
    if not getattr(get_engine(engine_name), "infills", False):
        raise ParameterError(f"engine {engine_name!r} cannot rewrite bars inside a sketch; use --engine symbolic")
    if len(analysis.meter_map) > 1:
        raise ParameterError("infill needs a sketch in one meter (this one changes meter)")
    first, last = parse_gap(args.infill, int(analysis.n_bars))
    tracks = resolve_parts(args.infill_parts, analysis)
    return dataclasses.replace(request, bars=last - first + 1, infill=(first, last), infill_tracks=tracks)


def infill(midi: str | os.PathLike[str], *, bars: str | Sequence[int], parts: str | Sequence[str] | None = None,
           engine: str | None = None, name: str | None = None, variations: int = 1,
           progress: Progress | None = None, **kwargs: Any) -> list:
    """Rewrite bars ``bars`` (``"9-12"``) of the sketch ``midi`` so they lead into the bar after them.

    Every note that starts outside the gap is kept as it is (a note that starts before
    it and sounds into it too); in the parts rewritten (``parts``: roles or track names,
    default all the model can write), the notes that start inside the gap are the
    model's, cut at the gap's end.  Writes WAV, MIDI and JSON like
    :func:`musegen.pipeline.generate`; the sidecar's ``engine.info.infill`` records the
    gap and every candidate's score.  Other keywords as for ``generate``.
    """
    from musegen.pipeline import generate

    if name is None:
        gap = bars if isinstance(bars, str) else "-".join(str(b) for b in bars)
        name = "{midi}-bars" + re.sub(r"[^0-9]+", "-", str(gap)).strip("-") + "-s{seed}" + (
            "-v{variation}" if variations > 1 else "")
    return generate(midi=midi, infill=bars, infill_parts=parts, engine=engine or DEFAULT_ENGINE, name=name,
                    variations=variations, continue_only=True, command="infill", progress=progress, **kwargs)
