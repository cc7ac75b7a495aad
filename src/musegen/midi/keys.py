"""Pitch classes, scales and key estimation by key-profile correlation."""

from __future__ import annotations

import numpy as np
from symusic import Score, TimeUnit

from musegen.errors import ParameterError
from musegen.theory import NOTE_NAMES

__all__ = [
    "KEY_NAMES",
    "KEY_PROFILES",
    "SCALES",
    "estimate_key",
    "key_correlations",
    "key_name",
    "pitch_class_from_name",
    "pitch_class_histogram",
    "scale_pitch_classes",
]

#: Pitch-class names, index = pitch class (0 = C). Flats except F#, as in
#: common key signatures.
KEY_NAMES: tuple[str, ...] = NOTE_NAMES

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

#: Scale intervals above the tonic, in semitones.
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic-minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "pentatonic-major": (0, 2, 4, 7, 9),
    "pentatonic-minor": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "chromatic": tuple(range(12)),
}
_SCALE_ALIASES = {
    "ionian": "major",
    "aeolian": "minor",
    "natural-minor": "minor",
    "harmonic": "harmonic-minor",
    "major-pentatonic": "pentatonic-major",
    "minor-pentatonic": "pentatonic-minor",
}

#: Published key profiles (major, minor), index 0 = tonic.
KEY_PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Krumhansl & Kessler (1982), probe-tone ratings.
    "krumhansl": (
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
    # Temperley (2007), Kostka-Payne corpus.
    "temperley": (
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
    # Albrecht & Shanahan (2013), duration-weighted corpus profile.
    "albrecht": (
        (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
        (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052),
    ),
}


def pitch_class_from_name(name: str) -> int:
    """Pitch class of a note name such as ``"C"``, ``"F#"``, ``"Bb"`` or ``"Cb"``.

    Raises
    ------
    ParameterError
        If ``name`` is not a letter A-G followed by ``#``/``b`` signs.
    """
    text = str(name).strip()
    if not text or text[0].upper() not in _LETTERS or any(c not in "#b" for c in text[1:]):
        raise ParameterError(f"not a note name: {name!r} (expected e.g. 'C', 'F#', 'Bb')")
    return (_LETTERS[text[0].upper()] + text.count("#") - text.count("b")) % 12


def key_name(tonic: int, mode: str) -> str:
    """Readable key name, e.g. ``key_name(3, "major") == "Eb major"``."""
    return f"{KEY_NAMES[_check_tonic(tonic)]} {mode}"


def _check_tonic(tonic: int) -> int:
    if isinstance(tonic, bool) or not isinstance(tonic, (int, np.integer)) or not 0 <= tonic < 12:
        raise ParameterError(f"tonic must be a pitch class 0-11, got {tonic!r}")
    return int(tonic)


def scale_pitch_classes(tonic: int, mode: str) -> set[int]:
    """Pitch classes of a scale.

    Parameters
    ----------
    tonic : int
        Pitch class of the tonic, 0 (C) to 11 (B).
    mode : str
        One of :data:`SCALES` (``major``, ``minor``, ``harmonic-minor``,
        ``dorian``, ``phrygian``, ``lydian``, ``mixolydian``, ``locrian``,
        ``pentatonic-major``, ``pentatonic-minor``, ``blues``); case, ``_``
        and spaces are forgiven, and ``ionian``/``aeolian`` are accepted.

    Returns
    -------
    set of int
        Pitch classes 0-11.

    Raises
    ------
    ParameterError
        If the tonic or the mode is unknown.
    """
    tonic = _check_tonic(tonic)
    key = str(mode).strip().lower().replace("_", "-").replace(" ", "-")
    key = _SCALE_ALIASES.get(key, key)
    if key not in SCALES:
        raise ParameterError(f"unknown mode {mode!r}; expected one of {', '.join(SCALES)}")
    return {(tonic + step) % 12 for step in SCALES[key]}


def pitch_class_histogram(score: Score, weighted: bool = True) -> np.ndarray:
    """Pitch-class content of the non-drum notes.

    Parameters
    ----------
    score : symusic.Score
        Any score (converted to ticks if needed).
    weighted : bool
        Weight each note by its duration in ticks (default) rather than
        counting notes.

    Returns
    -------
    numpy.ndarray
        Shape (12,), float64, index = pitch class; not normalised.
    """
    if score.ttype != TimeUnit.tick:
        score = score.to("tick")
    hist = np.zeros(12, dtype=np.float64)
    for track in score.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        notes = track.notes.numpy()
        pcs = notes["pitch"].astype(np.int64) % 12
        # a note of no length weighs one tick: notes only of that length still name a key
        weights = np.maximum(notes["duration"], 1).astype(np.float64) if weighted else None
        hist += np.bincount(pcs, weights=weights, minlength=12)
    return hist


def estimate_key(histogram: np.ndarray, *, profile: str = "albrecht") -> tuple[int, str, float]:
    """Best-matching major or minor key for a pitch-class histogram.

    Correlates the histogram with the 24 rotations of a key profile
    (Krumhansl-Schmuckler method).

    Parameters
    ----------
    histogram : numpy.ndarray
        Shape (12,), non-negative weights per pitch class.
    profile : str
        Key profile from :data:`KEY_PROFILES`: ``"albrecht"`` (default; 88 %
        exact on POP909 songs 001-818 with duration weights, against 83 % for
        ``"krumhansl"`` and 82 % for ``"temperley"``).

    Returns
    -------
    tonic : int
        Pitch class 0-11.
    mode : str
        ``"major"`` or ``"minor"``.
    confidence : float
        Pearson correlation of the best key, clipped to 0-1; 0 for an empty
        or flat histogram (the key is then ``(0, "major")``: C major).

    Raises
    ------
    ParameterError
        If the histogram has the wrong shape, negative or non-finite values,
        or the profile is unknown.
    """
    scores = key_correlations(histogram, profile=profile)
    if not np.any(np.isfinite(scores)):
        return 0, "major", 0.0
    best = int(np.nanargmax(scores))
    mode_index, tonic = divmod(best, 12)
    confidence = float(np.clip(scores.flat[best], 0.0, 1.0))
    return tonic, ("major", "minor")[mode_index], confidence


def key_correlations(histogram: np.ndarray, *, profile: str = "albrecht") -> np.ndarray:
    """Correlation of ``histogram`` with every key.

    Returns
    -------
    numpy.ndarray
        Shape (2, 12): row 0 major, row 1 minor, column = tonic pitch class.
        All NaN when the histogram is flat (no evidence).
    """
    hist = np.asarray(histogram, dtype=np.float64)
    if hist.shape != (12,):
        raise ParameterError(f"histogram must have shape (12,), got {hist.shape}")
    if not np.all(np.isfinite(hist)) or np.any(hist < 0):
        raise ParameterError("histogram must hold finite, non-negative values")
    if profile not in KEY_PROFILES:
        raise ParameterError(
            f"unknown key profile {profile!r}; expected one of {', '.join(KEY_PROFILES)}"
        )
    out = np.full((2, 12), np.nan)
    centred = hist - hist.mean()
    norm = np.linalg.norm(centred)
    if norm == 0:
        return out
    for mode_index, weights in enumerate(KEY_PROFILES[profile]):
        base = np.asarray(weights) - np.mean(weights)
        base /= np.linalg.norm(base)
        # rows: tonic t, profile rotated so that its index 0 lands on t
        rotations = np.stack([np.roll(base, t) for t in range(12)])
        out[mode_index] = rotations @ centred / norm
    return out
