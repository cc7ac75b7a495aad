"""Chord estimation by template matching on duration-weighted pitch classes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from symusic import Score, TimeUnit

from musegen.errors import ParameterError
from musegen.midi.keys import KEY_NAMES, pitch_class_from_name

__all__ = [
    "CHORD_QUALITIES",
    "chord_name",
    "estimate_chords",
    "parse_chord_name",
]

#: Chord qualities (POP909 / Harte spelling) and their intervals above the root.
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "sus4": (0, 5, 7),
}

# Multiplies each quality's match score: plain triads are the likelier reading
# when the evidence is thin (on POP909 songs 001-100 this finds 1.3 points more
# half-bar roots than equal priors).
_QUALITY_PRIOR = {
    "maj": 1.0,
    "min": 1.0,
    "dim": 0.9,
    "aug": 0.85,
    "7": 0.96,
    "maj7": 0.96,
    "min7": 0.96,
    "sus4": 0.9,
}
_QUALITIES = tuple(CHORD_QUALITIES)
# Lowest-note samples taken per window to find the bass.
_BASS_STEPS = 16
_MIN_WEIGHT = 1e-9


def _templates() -> np.ndarray:
    """Unit-norm chord templates, shape (n_qualities, 12 roots, 12 pcs)."""
    out = np.zeros((len(_QUALITIES), 12, 12))
    for q, quality in enumerate(_QUALITIES):
        for root in range(12):
            for step in CHORD_QUALITIES[quality]:
                out[q, root, (root + step) % 12] = 1.0
    return out / np.linalg.norm(out, axis=2, keepdims=True)


_TEMPLATES = _templates()
_PRIOR = np.array([_QUALITY_PRIOR[q] for q in _QUALITIES])[:, None]
_IS_TONE = (_TEMPLATES > 0).astype(np.float64)
_IS_ROOT = np.zeros_like(_IS_TONE)
for _q in range(len(_QUALITIES)):
    for _r in range(12):
        _IS_ROOT[_q, _r, _r] = 1.0


def chord_name(root: int, quality: str) -> str:
    """Label in POP909 / Harte style: ``"C:maj"``, ``"A:min7"``; ``"N"`` for no chord.

    Raises
    ------
    ParameterError
        If ``quality`` is not ``"N"`` or one of :data:`CHORD_QUALITIES`, or the
        root is not 0-11.
    """
    if quality == "N":
        return "N"
    if quality not in CHORD_QUALITIES:
        raise ParameterError(
            f"unknown chord quality {quality!r}; expected N or {', '.join(_QUALITIES)}"
        )
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < 12:
        raise ParameterError(f"chord root must be a pitch class 0-11, got {root!r}")
    return f"{KEY_NAMES[int(root)]}:{quality}"


def parse_chord_name(label: str) -> tuple[int, str]:
    """Root pitch class and quality of a label such as ``"Bb:min7/b7"``.

    The bass after ``/`` is dropped; the quality is returned as written (it
    may be outside :data:`CHORD_QUALITIES`, e.g. ``"sus2"``). ``"N"`` gives
    ``(-1, "N")``.

    Raises
    ------
    ParameterError
        If the root is not a note name.
    """
    text = str(label).strip()
    if text in ("N", "X", ""):
        return -1, "N"
    root, _, quality = text.partition(":")
    return pitch_class_from_name(root), (quality.split("/")[0] or "maj")


def estimate_chords(
    score: Score,
    windows: Iterable[tuple[int, int]],
    *,
    bass_weight: float = 0.3,
    exclude_tracks: Sequence[int] = (),
) -> list[tuple[int, int, int, str]]:
    """Best chord in each time window.

    Each window's non-drum notes give a pitch-class vector weighted by how
    long each note sounds inside the window; it is matched (cosine) against
    the templates of :data:`CHORD_QUALITIES` in all 12 roots. The lowest
    sounding pitch, sampled 16 times per window, adds ``bass_weight`` times
    its share of the window to chords with that root (a third of that to
    chords that merely contain it).

    Parameters
    ----------
    score : symusic.Score
        The score (converted to ticks if needed).
    windows : iterable of (int, int)
        ``(start_tick, end_tick)`` spans, ``end > start``.
    bass_weight : float
        Weight of the bass evidence (0 ignores the bass); 0.3, the default,
        was best on POP909 songs 001-100 (76 % of bar roots against 73 %
        without the bass).
    exclude_tracks : sequence of int
        Track indices left out, e.g. the melody track, whose passing notes
        blur the harmony.

    Returns
    -------
    list of (int, int, int, str)
        ``(start_tick, end_tick, root_pc, quality)`` per window; windows with
        no sounding notes get ``root_pc = -1`` and quality ``"N"``.
    """
    if score.ttype != TimeUnit.tick:
        score = score.to("tick")
    if not np.isfinite(bass_weight) or bass_weight < 0:
        raise ParameterError(f"bass_weight must be >= 0, got {bass_weight}")
    starts, ends, pitches = _pitched_notes(score, set(exclude_tracks))
    reach = np.maximum.accumulate(ends) if ends.size else ends
    out: list[tuple[int, int, int, str]] = []
    for start, end in windows:
        start, end = int(start), int(end)
        if end <= start:
            raise ParameterError(f"chord window must have end > start, got ({start}, {end})")
        # notes before `first` all end by `start`; notes from `stop` on start after `end`
        first = np.searchsorted(reach, start, side="right")
        stop = np.searchsorted(starts, end, side="left")
        sel = slice(first, max(first, stop))
        overlap = np.minimum(ends[sel], end) - np.maximum(starts[sel], start)
        inside = overlap > 0
        if not np.any(inside):
            out.append((start, end, -1, "N"))
            continue
        root, quality = _best_chord(
            pitches[sel][inside],
            starts[sel][inside],
            ends[sel][inside],
            overlap[inside],
            start,
            end,
            bass_weight,
        )
        out.append((start, end, root, quality))
    return out


def _pitched_notes(score: Score, exclude: set[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end and pitch of all non-drum notes, sorted by start."""
    starts, ends, pitches = [], [], []
    for index, track in enumerate(score.tracks):
        if track.is_drum or index in exclude or len(track.notes) == 0:
            continue
        notes = track.notes.numpy()
        starts.append(notes["time"].astype(np.int64))
        ends.append(notes["time"].astype(np.int64) + notes["duration"].astype(np.int64))
        pitches.append(notes["pitch"].astype(np.int64))
    if not starts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    s, e, p = np.concatenate(starts), np.concatenate(ends), np.concatenate(pitches)
    order = np.argsort(s, kind="stable")
    return s[order], e[order], p[order]


def _best_chord(pitch, start, end, overlap, w_start, w_end, bass_weight) -> tuple[int, str]:
    chroma = np.bincount(pitch % 12, weights=overlap.astype(np.float64), minlength=12)
    norm = np.linalg.norm(chroma)
    if norm < _MIN_WEIGHT:
        return -1, "N"
    score = (_TEMPLATES @ (chroma / norm)) * _PRIOR
    if bass_weight > 0:
        grid = w_start + (np.arange(_BASS_STEPS) + 0.5) * (w_end - w_start) / _BASS_STEPS
        sounding = (start[None, :] <= grid[:, None]) & (end[None, :] > grid[:, None])
        lowest = np.where(sounding, pitch[None, :], 1000).min(axis=1)
        lowest = lowest[lowest < 1000]
        if lowest.size:
            bass = np.bincount(lowest % 12, minlength=12) / _BASS_STEPS
            score = score + bass_weight * (_IS_ROOT @ bass + (_IS_TONE - _IS_ROOT) @ bass / 3)
    q, root = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(root), _QUALITIES[int(q)]
