"""Music-theory names shared by every layer: note names, modes, scales, keys, roman numerals.

The lowest layer of musegen: it imports nothing from the package but its errors,
so MIDI handling, engines and presets can all read it without pulling presets in.
"""

from __future__ import annotations

import re

from musegen.errors import ParameterError, PresetError

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_PITCH_CLASS = {
    "C": 0, "B#": 0, "C#": 1, "DB": 1, "D": 2, "D#": 3, "EB": 3, "E": 4, "FB": 4,
    "F": 5, "E#": 5, "F#": 6, "GB": 6, "G": 7, "G#": 8, "AB": 8, "A": 9,
    "A#": 10, "BB": 10, "B": 11, "CB": 11,
}
MODES = (
    "major", "minor", "harmonic-minor", "dorian", "phrygian", "lydian",
    "mixolydian", "locrian",
)
#: modes with a minor third above the tonic
MINOR_MODES = ("minor", "harmonic-minor", "dorian", "phrygian", "locrian")
SCALES = MODES + ("pentatonic-major", "pentatonic-minor", "blues", "chromatic")
ROMAN_RE = re.compile(r"^(b|#)?(VII|VI|IV|V|III|II|I|vii|vi|iv|v|iii|ii|i)(°|o|\+|7|maj7|m7|9|sus2|sus4|6)?$")


def pitch_class(name: str) -> int:
    """Pitch class (0-11) of a note name such as ``"F#"`` or ``"Bb"``."""
    key = str(name).strip().upper()
    if key not in _PITCH_CLASS:
        raise PresetError(f"unknown key {name!r} (use a note name such as C, F#, Bb, or 'from-seed')")
    return _PITCH_CLASS[key]


def parse_key(text: str) -> tuple[int, str | None]:
    """Parse ``"F#"``, ``"F# minor"``, ``"F#m"``, ``"Bb major"`` or ``"D dorian"``.

    Returns ``(tonic pitch class, mode or None)``; raises :class:`ParameterError`
    naming the text.
    """
    m = re.fullmatch(r"\s*([A-Ga-g][#b]?)\s*(m|min|minor|maj|major|[a-z-]+)?\s*", str(text))
    if not m:
        raise ParameterError(f"key must look like 'C', 'F#m', 'Bb major' or 'D dorian'; got {text!r}")
    tonic = _PITCH_CLASS[m.group(1)[0].upper() + m.group(1)[1:].upper()]
    word = (m.group(2) or "").lower()
    mode = {"": None, "m": "minor", "min": "minor", "maj": "major"}.get(word, word)
    if mode is not None and mode not in MODES:
        raise ParameterError(f"unknown mode {word!r} in key {text!r} (modes: {', '.join(MODES)})")
    return tonic, mode


def third(scale: str) -> str | None:
    """``"major"`` or ``"minor"``: the third above the tonic of a mode or scale; None for
    scales that hold both or colour either (blues, chromatic)."""
    if scale in ("blues", "chromatic"):
        return None
    return "minor" if scale in MINOR_MODES or scale == "pentatonic-minor" else "major"


def scale_for_mode(scale: str, mode: str) -> str:
    """The scale of the same kind as ``scale`` that fits ``mode``.

    A pentatonic scale takes the mode's third, a seven-note scale gives way to the
    mode itself, blues and chromatic stay.
    """
    if third(scale) is None or scale == mode:
        return scale
    if scale.startswith("pentatonic"):
        return f"pentatonic-{third(mode)}"
    return mode
