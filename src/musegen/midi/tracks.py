"""Per-track statistics, role guesses and melody extraction."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from symusic import Score, TimeUnit

__all__ = [
    "ROLES",
    "TrackInfo",
    "describe_tracks",
    "extract_melody",
    "melody_track_index",
    "skyline",
]

#: Roles a track can be given.
ROLES = ("melody", "harmony", "bass", "drums", "pad")

# Thresholds of the role guess, in MIDI pitch, voices and quarter notes.
_MONO_POLYPHONY = 1.3  # mean voices while sounding; up to this counts as one line
_NAMED_LINE_POLYPHONY = 2.0  # up to this, a track named "melody"/"bass" is one
_BASS_MEDIAN_PITCH = 53  # F3: lines mostly below it are bass lines
_PAD_MEAN_QUARTERS = 2.0  # chords that last this long on average are pads
_NAME_HINTS = {
    "melody": ("melody", "melodie", "lead", "vocal", "voice", "vox", "solo", "tune"),
    "bass": ("bass",),
    "pad": ("pad", "strings"),
}
_NOT_HINTS = ("bassoon",)


def _named(name: str, role: str) -> bool:
    """Whether a track name hints at ``role`` ("Bass", "Lead vox"; not "Bassoon")."""
    lowered = name.lower()
    for word in _NOT_HINTS:
        lowered = lowered.replace(word, "")
    return any(hint in lowered for hint in _NAME_HINTS[role])


@dataclass(frozen=True)
class TrackInfo:
    """What one track holds.

    Attributes
    ----------
    index : int
        Position in ``score.tracks``.
    name : str
        Track name ('' when the file gives none).
    program : int
        General MIDI program 0-127 (meaningless for drums).
    is_drum : bool
        Channel-10 percussion.
    n_notes : int
        Number of notes.
    pitch_min, pitch_max : int
        Lowest and highest MIDI pitch.
    pitch_median : float
        Median MIDI pitch.
    mean_polyphony : float
        Mean number of notes sounding while at least one sounds (1.0 = one
        line, no overlaps).
    mean_duration_quarters : float
        Mean note length in quarter notes.
    role : str
        Guess among :data:`ROLES`.
    """

    index: int
    name: str
    program: int
    is_drum: bool
    n_notes: int
    pitch_min: int
    pitch_max: int
    pitch_median: float
    mean_polyphony: float
    mean_duration_quarters: float
    role: str

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def mean_polyphony(starts: np.ndarray, ends: np.ndarray) -> float:
    """Time-weighted mean number of sounding notes, over the time any sounds.

    A note ending at the tick where the next starts does not overlap it.
    """
    if starts.size == 0:
        return 0.0
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(starts.size), -np.ones(ends.size)])
    order = np.lexsort((steps, times))  # at equal ticks, note-offs first
    times, count = times[order], np.cumsum(steps[order])
    spans = np.diff(times).astype(np.float64)
    count = count[:-1]
    sounding = spans[count > 0].sum()
    if sounding <= 0:
        return 1.0
    return float((spans * count).sum() / sounding)


def _guess_role(
    name: str, is_drum: bool, program: int, median: float, poly: float, mean_q: float
) -> str:
    if is_drum:
        return "drums"
    mono = poly <= _MONO_POLYPHONY
    # a name is trusted for a line with some overlaps or double stops
    if poly <= _NAMED_LINE_POLYPHONY and _named(name, "bass"):
        return "bass"
    if poly <= _NAMED_LINE_POLYPHONY and _named(name, "melody"):
        return "melody"
    if mono:
        # GM programs 32-39 are basses
        if median < _BASS_MEDIAN_PITCH or (32 <= program <= 39 and median < 60):
            return "bass"
        return "melody"
    if mean_q >= _PAD_MEAN_QUARTERS or _named(name, "pad"):
        return "pad"
    return "harmony"


def describe_tracks(score: Score) -> list[TrackInfo]:
    """Statistics and a role guess for every track.

    Roles: drum flag -> ``drums``; one line at a time (mean polyphony <= 1.3)
    -> ``bass`` when its median pitch is below F3 (or it is a GM bass program
    below C4), else ``melody``; several voices -> ``pad`` when notes last two
    quarters or more on average, else ``harmony``. A single polyphonic piano
    track is therefore ``harmony``. A name containing e.g. "melody", "lead",
    "vocal" or "bass" makes a track with mean polyphony up to 2 a melody or
    a bass.
    """
    if score.ttype != TimeUnit.tick:
        score = score.to("tick")
    tpq = max(1, score.ticks_per_quarter)
    infos = []
    for index, track in enumerate(score.tracks):
        notes = track.notes.numpy()
        n = int(notes["pitch"].size)
        if n == 0:
            infos.append(
                TrackInfo(
                    index=index,
                    name=track.name,
                    program=int(track.program),
                    is_drum=bool(track.is_drum),
                    n_notes=0,
                    pitch_min=0,
                    pitch_max=0,
                    pitch_median=0.0,
                    mean_polyphony=0.0,
                    mean_duration_quarters=0.0,
                    role="drums" if track.is_drum else "harmony",
                )
            )
            continue
        starts = notes["time"].astype(np.int64)
        durations = notes["duration"].astype(np.int64)
        pitches = notes["pitch"].astype(np.int64)
        poly = mean_polyphony(starts, starts + durations)
        median = float(np.median(pitches))
        mean_q = float(durations.mean() / tpq)
        role = _guess_role(
            track.name, bool(track.is_drum), int(track.program), median, poly, mean_q
        )
        infos.append(
            TrackInfo(
                index=index,
                name=track.name,
                program=int(track.program),
                is_drum=bool(track.is_drum),
                n_notes=n,
                pitch_min=int(pitches.min()),
                pitch_max=int(pitches.max()),
                pitch_median=median,
                mean_polyphony=round(poly, 3),
                mean_duration_quarters=round(mean_q, 3),
                role=role,
            )
        )
    return infos


def melody_track_index(score: Score, infos: list[TrackInfo] | None = None) -> int | None:
    """Index of the track that carries the melody, or None when no track is a melody.

    Among ``melody``-role tracks, one whose name hints at a melody wins; then
    the one that sounds longest.
    """
    if score.ttype != TimeUnit.tick:
        score = score.to("tick")
    infos = describe_tracks(score) if infos is None else infos
    best, best_key = None, None
    for info in infos:
        if info.role != "melody" or info.n_notes == 0:
            continue
        named = _named(info.name, "melody")
        notes = score.tracks[info.index].notes.numpy()
        key = (named, int(notes["duration"].astype(np.int64).sum()))
        if best_key is None or key > best_key:
            best, best_key = info.index, key
    return best


def skyline(
    starts: np.ndarray,
    durations: np.ndarray,
    pitches: np.ndarray,
    velocities: np.ndarray,
    *,
    skip_under_held: bool = True,
) -> list[tuple[int, int, int, int]]:
    """One line from many notes: the highest note at each onset.

    A melody note is cut where the next one starts. With ``skip_under_held``,
    an onset whose highest note is below a melody note that still has more
    than a quarter of its length to sound is skipped (an accompaniment hit
    under a held tune); shorter overlaps count as legato.

    Returns
    -------
    list of (int, int, int, int)
        ``(start_tick, duration_tick, pitch, velocity)`` sorted by start.
    """
    if starts.size == 0:
        return []
    order = np.lexsort((-pitches.astype(np.int64), starts))
    s, d, p, v = starts[order], durations[order], pitches[order], velocities[order]
    first = np.r_[True, s[1:] != s[:-1]]
    line: list[list[int]] = []
    for start, dur, pitch, vel in zip(
        s[first].tolist(), d[first].tolist(), p[first].tolist(), v[first].tolist()
    ):
        if line:
            prev = line[-1]
            remaining = prev[0] + prev[1] - start
            if remaining > 0:
                if skip_under_held and pitch < prev[2] and 4 * remaining > prev[1]:
                    continue
                prev[1] = start - prev[0]
        line.append([start, max(1, dur), pitch, vel])
    return [tuple(note) for note in line]


def extract_melody(score: Score, track_index: int | None = None) -> list[tuple[int, int, int, int]]:
    """The melody as ``(start_tick, duration_tick, pitch, velocity)``.

    Parameters
    ----------
    score : symusic.Score
        The score (converted to ticks if needed).
    track_index : int or None
        Track to take it from (notes starting together keep the highest, and
        overlaps are cut); None takes the skyline of all non-drum notes.
    """
    if score.ttype != TimeUnit.tick:
        score = score.to("tick")
    tracks = (
        [score.tracks[track_index]]
        if track_index is not None
        else [t for t in score.tracks if not t.is_drum]
    )
    arrays = [t.notes.numpy() for t in tracks if len(t.notes)]
    if not arrays:
        return []
    cols = {
        k: np.concatenate([a[k] for a in arrays]).astype(np.int64)
        for k in ("time", "duration", "pitch", "velocity")
    }
    return skyline(
        cols["time"],
        cols["duration"],
        cols["pitch"],
        cols["velocity"],
        skip_under_held=track_index is None,
    )
