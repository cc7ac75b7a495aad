"""What the continuation needs to know about a MIDI seed.

Built from the pipeline's :class:`~musegen.midi.analysis.SeedAnalysis` (or an
analysis made here when there is none): bar lines, the tick where new
material starts, every track's notes and role, and the seed's chords as
:class:`~musegen.engines.procedural.theory.Chord` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from symusic import Score

from musegen.engines.procedural.theory import Chord, chord_from_quality

_WINDOWS = {"bar": 1, "half-bar": 2}


@dataclass
class SeedTrack:
    """One non-empty track of the seed; ``notes`` rows are ``[start, dur, pitch, vel]``, sorted."""

    index: int
    name: str
    program: int
    is_drum: bool
    role: str                      # melody, harmony, bass, pad or drums
    notes: list[list[int]] = field(default_factory=list)

    @property
    def lo(self) -> int:
        return min(n[2] for n in self.notes)

    @property
    def hi(self) -> int:
        return max(n[2] for n in self.notes)


@dataclass
class SeedView:
    """Bars, tracks and chords of a seed, in its own ticks."""

    tpq: int
    end: int                       # where the last note ends
    start: int                     # first bar line at or after ``end``: the new material's origin
    bar_starts: list[int]          # every seed bar's start, up to ``start`` (exclusive)
    bar: int                       # ticks per bar of the last meter
    meter: tuple[int, int]
    tracks: list[SeedTrack]
    chords: list[tuple[int, int, Chord | None]]
    windows_per_bar: int = 1

    def bar_of(self, tick: int) -> int:
        """Index of the seed bar holding ``tick``."""
        lo, hi = 0, len(self.bar_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.bar_starts[mid] <= tick:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def chord_at(self, tick: int) -> Chord | None:
        found = None
        for a, b, c in self.chords:
            if a <= tick:
                found = c if c is not None else found
            else:
                break
        return found

    def by_bar(self, track: SeedTrack) -> list[list[list[int]]]:
        """The track's notes grouped by seed bar, as ``[offset, dur, pitch, vel]`` from the bar start."""
        out: list[list[list[int]]] = [[] for _ in self.bar_starts]
        for s, d, p, v in track.notes:
            b = self.bar_of(s)
            out[b].append([s - self.bar_starts[b], d, p, v])
        return out


def _bar_lines(score: Score, end: int, tpq: int) -> tuple[list[int], int, tuple[int, int]]:
    sigs = sorted(((int(t.time), int(t.numerator), int(t.denominator)) for t in score.time_signatures))
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    lines = []
    for i, (t, num, den) in enumerate(sigs):
        length = max(1, num * tpq * 4 // den)
        stop = sigs[i + 1][0] if i + 1 < len(sigs) else None
        x = t
        while (stop is None and x < end) or (stop is not None and x < stop):
            lines.append(x)
            x += length
        if stop is None:
            return lines or [0], x, (num, den)
    return lines, end, (4, 4)   # pragma: no cover - the loop always returns


def read_seed(score: Score, analysis=None) -> SeedView:
    """A :class:`SeedView` of ``score`` (ticks); runs the seed analysis when ``analysis`` is None."""
    if analysis is None:
        from musegen.midi.analysis import analyze_score

        analysis = analyze_score(score)
    tpq = int(score.ticks_per_quarter)
    end = 0
    for t in score.tracks:
        for n in t.notes:
            end = max(end, int(n.time) + int(n.duration))
    bar_starts, start, meter = _bar_lines(score, end, tpq)
    bar = meter[0] * tpq * 4 // meter[1]
    roles = {info.index: info.role for info in getattr(analysis, "tracks", [])}
    tracks = []
    for i, t in enumerate(score.tracks):
        if len(t.notes) == 0:
            continue
        a = t.notes.numpy()
        rows = sorted(zip(a["time"].tolist(), a["duration"].tolist(), a["pitch"].tolist(), a["velocity"].tolist()))
        role = roles.get(i) or ("drums" if t.is_drum else "harmony")
        if t.is_drum:
            role = "drums"
        tracks.append(SeedTrack(i, t.name, int(t.program), bool(t.is_drum), role, [list(r) for r in rows]))
    chords = []
    for a, b, root, quality in getattr(analysis, "chords", []):
        chords.append((int(a), int(b), None if root < 0 or quality == "N" else chord_from_quality(root, quality)))
    windows = _WINDOWS.get(getattr(analysis, "chord_resolution", "bar"), 0) or max(1, meter[0] if meter[1] <= 4
                                                                                 else meter[0] // 3)
    return SeedView(tpq, end, start, bar_starts, bar, meter, tracks, chords, windows)
