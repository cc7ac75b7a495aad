"""Scales, roman numerals, chords and keys: the pitch vocabulary.

Pitch classes are ints 0-11 (0 = C); pitches are MIDI note numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from musegen.errors import ParameterError
from musegen.midi.keys import SCALES
from musegen.theory import NOTE_NAMES, ROMAN_RE

SCALE_STEPS = SCALES  # one table for the whole package (musegen.midi.keys)
_MAJOR = SCALE_STEPS["major"]
# semitones from a mode's tonic up to its relative major's tonic
_RELATIVE_MAJOR = {"major": 0, "minor": 3, "harmonic-minor": 3, "dorian": 10, "phrygian": 8,
                   "lydian": 7, "mixolydian": 5, "locrian": 1}
_SHARPS = {0: 0, 7: 1, 2: 2, 9: 3, 4: 4, 11: 5, 6: 6, 5: -1, 10: -2, 3: -3, 8: -4, 1: -5}
_NUMERALS = {"I": 0, "II": 1, "III": 2, "IV": 3, "V": 4, "VI": 5, "VII": 6}

QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "sus2": (0, 2, 7), "sus4": (0, 5, 7), "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "hdim7": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9), "minmaj7": (0, 3, 7, 11),
    "9": (0, 4, 7, 10, 14), "maj9": (0, 4, 7, 11, 14), "min9": (0, 3, 7, 10, 14),
}


def scale_pcs(tonic: int, scale: str) -> tuple[int, ...]:
    """Pitch classes of ``scale`` on ``tonic``, in scale order."""
    if scale not in SCALE_STEPS:
        raise ParameterError(f"unknown scale {scale!r} (choose from {', '.join(SCALE_STEPS)})")
    return tuple((tonic + s) % 12 for s in SCALE_STEPS[scale])


def key_signature(tonic: int, mode: str) -> tuple[int, int]:
    """``(sharps, tonality)`` for a MIDI key-signature event (flats negative; tonality 1 = minor)."""
    major = (tonic + _RELATIVE_MAJOR.get(mode, 0)) % 12
    return _SHARPS[major], 1 if mode in ("minor", "harmonic-minor") else 0


def key_label(tonic: int, mode: str) -> str:
    return f"{NOTE_NAMES[tonic % 12]} {mode}"


@dataclass(frozen=True)
class Chord:
    """A chord: root pitch class, intervals above it, and the symbol it came from."""

    root: int
    intervals: tuple[int, ...]
    symbol: str = ""
    bass: int | None = None   # pitch class of an inverted bass, None = root

    @property
    def pcs(self) -> tuple[int, ...]:
        """Pitch classes, root first, then 3rd, 5th, 7th, 9th as present."""
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def triad(self) -> tuple[int, ...]:
        return self.pcs[:3]

    @property
    def third(self) -> int:
        return (self.root + self.intervals[1]) % 12

    @property
    def fifth(self) -> int:
        return (self.root + self.intervals[2]) % 12

    @property
    def seventh(self) -> int | None:
        return (self.root + self.intervals[3]) % 12 if len(self.intervals) > 3 else None

    @property
    def bass_pc(self) -> int:
        return self.root if self.bass is None else self.bass

    def with_intervals(self, intervals: tuple[int, ...]) -> Chord:
        return Chord(self.root, intervals, self.symbol, self.bass)


def parse_roman(symbol: str, tonic: int, mode: str) -> Chord:
    """Chord for a roman numeral in a key.

    Case gives the quality (``V`` major, ``v`` minor); ``°``/``o`` diminished,
    ``+`` augmented; ``7`` a dominant seventh on upper case and a minor (or
    half-diminished, on a diminished degree) seventh on lower case.  Without an
    accidental the root is the mode's degree; ``b``/``#`` alter the major scale's
    degree, so ``bVII`` is the same chord in every key.
    """
    m = ROMAN_RE.match(symbol)
    if not m:
        raise ParameterError(f"not a roman numeral: {symbol!r}")
    acc, num, suffix = m.group(1), m.group(2), m.group(3)
    degree = _NUMERALS[num.upper()]
    steps = SCALE_STEPS[mode] if len(SCALE_STEPS.get(mode, ())) == 7 else _MAJOR
    if acc:
        root = (tonic + _MAJOR[degree] + (1 if acc == "#" else -1)) % 12
    else:
        root = (tonic + steps[degree]) % 12
    upper = num.isupper()
    diatonic_dim = not acc and (steps[(degree + 2) % 7] - steps[degree]) % 12 == 3 and \
        (steps[(degree + 4) % 7] - steps[degree]) % 12 == 6
    if suffix in ("°", "o"):
        quality = "dim"
    elif suffix == "+":
        quality = "aug"
    elif suffix == "7":
        quality = "7" if upper else ("hdim7" if diatonic_dim else "min7")
    elif suffix == "maj7":
        quality = "maj7" if upper else "minmaj7"
    elif suffix == "m7":
        quality = "min7"
    elif suffix == "9":
        quality = "9" if upper else "min9"
    elif suffix in ("sus2", "sus4"):
        quality = suffix
    elif suffix == "6":
        quality = "maj6" if upper else "min6"
    else:
        quality = "maj" if upper else "min"
    return Chord(root, QUALITIES[quality], symbol)


def chord_from_quality(root: int, quality: str, symbol: str = "") -> Chord:
    """Chord from a root pitch class and a quality name (ours or the analysis's ``"7"`` etc.)."""
    iv = QUALITIES.get(quality, QUALITIES["maj"])
    return Chord(root % 12, iv, symbol or f"{NOTE_NAMES[root % 12]}:{quality}")


def extend(chord: Chord, level: str, mode_pcs: tuple[int, ...]) -> Chord:
    """Add diatonic sevenths (``"sevenths"``) or sevenths and ninths (``"ninths"``) to a triad."""
    if level == "triads":
        return chord
    iv = list(chord.intervals)
    if len(iv) == 3 and iv[1] in (3, 4) and iv[2] != 8:
        if iv[2] == 6:
            iv.append(10 if (chord.root + 10) % 12 in mode_pcs else 9)
        elif iv[1] == 4:
            iv.append(11 if (chord.root + 11) % 12 in mode_pcs else 10)
        else:
            iv.append(10)
    if level == "ninths" and len(iv) == 4 and iv[:3] != [0, 3, 6]:
        if (chord.root + 2) % 12 in mode_pcs or (chord.root + 1) % 12 not in mode_pcs:
            iv.append(14)
    return chord.with_intervals(tuple(iv))


def scale_pitches(scale: tuple[int, ...], lo: int, hi: int) -> list[int]:
    """All pitches in ``[lo, hi]`` whose pitch class is in ``scale``."""
    s = set(scale)
    return [p for p in range(lo, hi + 1) if p % 12 in s]


def nearest_pitch(pc: int, target: float, lo: int = 0, hi: int = 127) -> int:
    """The pitch of class ``pc`` nearest ``target`` inside ``[lo, hi]`` (if possible)."""
    base = int(round(target)) - ((int(round(target)) - pc) % 12)
    cands = [base + k * 12 for k in (-1, 0, 1, 2)]
    inside = [p for p in cands if lo <= p <= hi] or cands
    return min(inside, key=lambda p: (abs(p - target), p))


def step_in_scale(pitch: int, steps: int, scale: tuple[int, ...]) -> int:
    """Move ``pitch`` by ``steps`` scale degrees (chromatic pitches snap down first)."""
    s = sorted(set(scale))
    octave, pc = divmod(pitch, 12)
    chromatic = 0
    while pc not in s:
        pc -= 1
        chromatic += 1
        if pc < 0:
            pc += 12
            octave -= 1
    idx = s.index(pc) + steps
    o, i = divmod(idx, len(s))
    return (octave + o) * 12 + s[i] + chromatic


def scale_distance(a: int, b: int, scale: tuple[int, ...]) -> int:
    """Signed number of scale steps from pitch ``a`` to pitch ``b`` (approximate for chromatic notes)."""
    s = sorted(set(scale))

    def index(p: int) -> int:
        o, pc = divmod(p, 12)
        k = sum(1 for x in s if x <= pc) - 1
        return o * len(s) + k

    return index(b) - index(a)

