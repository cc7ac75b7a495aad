"""Harmony: chord progressions laid out in time.

Two ways to get chords: :func:`plan_chords` loops the preset's progressions at
``chords_per_bar`` with cadences at phrase ends (most styles), and
:func:`harmonize` picks a chord for every note of a given soprano line by
dynamic programming over diatonic triads (chorales), scoring each step by the
preset's own progressions blended with common-practice chord succession.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from musegen.engines.procedural.chance import chance, choose
from musegen.engines.procedural.form import Phrase
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.theory import (
    SCALE_STEPS,
    Chord,
    extend,
    parse_roman,
    scale_pcs,
)
from musegen.theory import ROMAN_RE

#: styles whose phrases end in real cadences (half on V, full on V-I)
CADENTIAL = {"chorale", "classical", "folk", "polyphony"}
_MAJOR_THIRD_MODES = ("major", "lydian", "mixolydian")
_NUMERALS = ("I", "II", "III", "IV", "V", "VI", "VII")
_SUBSTITUTES = {
    "I": ("vi", "iii"), "IV": ("ii",), "vi": ("IV",), "ii": ("IV",), "iii": ("I",),
    "i": ("VI",), "iv": ("VI",), "VI": ("iv",), "III": ("i",), "V": ("V7",),
}
# common-practice chord succession by scale degree (0 = tonic), rows sum to ~1
_FUNCTIONAL = (
    (0.05, 0.15, 0.05, 0.25, 0.22, 0.2, 0.08),   # I
    (0.05, 0.03, 0.0, 0.07, 0.6, 0.05, 0.2),    # ii
    (0.05, 0.1, 0.02, 0.3, 0.03, 0.5, 0.0),     # iii
    (0.25, 0.15, 0.02, 0.03, 0.4, 0.05, 0.1),   # IV
    (0.62, 0.0, 0.03, 0.05, 0.05, 0.25, 0.0),   # V
    (0.08, 0.35, 0.05, 0.35, 0.15, 0.0, 0.02),  # vi
    (0.8, 0.0, 0.05, 0.0, 0.05, 0.1, 0.0),      # vii
)


@dataclass(frozen=True)
class ChordSpan:
    """A chord sounding from ``start`` to ``end`` (ticks); ``cadence`` on a phrase's last chord."""

    start: int
    end: int
    chord: Chord
    cadence: str | None = None

    @property
    def length(self) -> int:
        return self.end - self.start


def chord_at(spans: list[ChordSpan], tick: int) -> ChordSpan:
    """The span sounding at ``tick`` (the nearest one outside the covered range)."""
    lo, hi = 0, len(spans) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if spans[mid].start <= tick:
            lo = mid
        else:
            hi = mid - 1
    return spans[lo]


def tonic_symbol(mode: str) -> str:
    return "I" if mode in _MAJOR_THIRD_MODES else "i"


def dominant_symbol(mode: str) -> str:
    return {"mixolydian": "bVII", "phrygian": "bII", "locrian": "bII"}.get(mode, "V")


def slot_bounds(grid: Grid, phrase: Phrase, chords_per_bar: float) -> list[tuple[int, int]]:
    """Chord slots of one phrase as ``(start, end)`` ticks."""
    out = []
    if chords_per_bar >= 1:
        k = min(int(chords_per_bar), grid.beats)
        b = grid.beats
        cuts = [math.ceil(j * b / k) for j in range(k + 1)]
        for bar in range(phrase.start_bar, phrase.end_bar):
            b0 = grid.bar_start(bar)
            out += [(b0 + x * grid.beat, b0 + y * grid.beat) for x, y in zip(cuts[:-1], cuts[1:]) if y > x]
            out[-1] = (out[-1][0], b0 + grid.bar)
    else:
        group = int(round(1 / chords_per_bar))
        for bar in range(phrase.start_bar, phrase.end_bar, group):
            end = min(bar + group, phrase.end_bar)
            out.append((grid.bar_start(bar), grid.bar_start(end)))
    return out


def _substitute(symbol: str, rng: random.Random, p: float) -> str:
    options = _SUBSTITUTES.get(symbol)
    if options and chance(rng, p):
        return options[rng.randrange(len(options))]
    return symbol


def _apply_cadence(symbols: list[str], cadence: str, style: str, mode: str) -> list[str]:
    tonic, dom = tonic_symbol(mode), dominant_symbol(mode)
    out = list(symbols)
    if style in CADENTIAL:
        if cadence == "half":
            out[-1] = dom
        else:
            if len(out) >= 2 and out[-2] not in (dom, "V7", "vii°", "viio", "IV", "iv"):
                out[-2] = dom
            out[-1] = tonic
    elif cadence == "final" and out[-1].rstrip("79") not in (tonic, tonic + "maj", "i", "I"):
        if len(out) >= 2 and out[-1] in (dom, "V7"):
            out.append(tonic)
            out = out[1:]
        else:
            out[-1] = tonic
    return out


def adapt_symbol(symbol: str, from_mode: str, to_mode: str) -> str:
    """Re-read a numeral written for ``from_mode`` in ``to_mode``: plain degrees take the new mode's triad.

    ``vi`` of a major-key progression becomes ``VI`` in minor, so a preset's
    progressions still fit when a seed or the user picks another mode.
    Altered numerals (``bVII``) and the dominant ``V`` keep their meaning.
    """
    m = ROMAN_RE.match(symbol)
    if not m or m.group(1) or from_mode == to_mode:
        return symbol
    num, suffix = m.group(2), m.group(3) or ""
    degree = _NUMERALS.index(num.upper())
    if degree == 4 and num.isupper():
        return symbol
    triad = diatonic_triads(0, to_mode)[degree].symbol
    base = triad.rstrip("°+")
    if suffix in ("", "°", "o", "+"):
        suffix = triad[len(base):]
    elif suffix == "maj7" and base.islower():
        suffix = "7"
    return base + suffix


def plan_chords(grid: Grid, phrases: list[Phrase], *, progressions, chords_per_bar: float,
                extensions: str, style: str, tonic: int, mode: str,
                rng: random.Random, temperature: float = 1.0, source_mode: str | None = None) -> list[ChordSpan]:
    """Lay the preset's progressions over the phrases.

    Each phrase label gets its own progression (a new label prefers one not yet
    used); repeats of a label may swap a chord for a functional substitute,
    more often at higher ``temperature``; cadences follow :data:`CADENTIAL`.
    Progressions written for ``source_mode`` are re-read in ``mode`` (see
    :func:`adapt_symbol`).
    """
    mode_pcs = scale_pcs(tonic, mode)
    if source_mode and source_mode != mode:
        progressions = [tuple(adapt_symbol(x, source_mode, mode) for x in prog) for prog in progressions]
    by_label: dict[str, int] = {}
    spans: list[ChordSpan] = []
    for ph in phrases:
        slots = slot_bounds(grid, ph, chords_per_bar)
        if ph.label not in by_label:
            used = set(by_label.values())
            weights = [0.25 if i in used else 1.0 for i in range(len(progressions))]
            if not by_label:
                weights[0] *= 2.0   # the first listed progression is the style's signature
            by_label[ph.label] = choose(rng, list(range(len(progressions))), weights, temperature)
        prog = progressions[by_label[ph.label]]
        symbols = [prog[i % len(prog)] for i in range(len(slots))]
        p_sub = 0.06 * temperature * (1.5 if ph.variant else 0.5)
        symbols = [_substitute(s, rng, p_sub) if i < len(symbols) - 2 else s for i, s in enumerate(symbols)]
        symbols = _apply_cadence(symbols, ph.cadence, style, mode)
        for i, ((a, b), sym) in enumerate(zip(slots, symbols)):
            chord = extend(parse_roman(sym, tonic, mode), extensions, mode_pcs)
            spans.append(ChordSpan(a, b, chord, ph.cadence if i == len(slots) - 1 else None))
    return spans


# -- melody-first harmonization (chorales) ---------------------------------

def diatonic_triads(tonic: int, mode: str) -> list[Chord]:
    """The seven triads of ``mode`` (minor keys take V and vii° from harmonic minor)."""
    steps = SCALE_STEPS[mode] if len(SCALE_STEPS[mode]) == 7 else SCALE_STEPS["major"]
    out = []
    for d in range(7):
        s = steps
        if mode in ("minor", "dorian") and d in (4, 6):
            s = SCALE_STEPS["harmonic-minor"]
        root = s[d]
        third = (s[(d + 2) % 7] - root) % 12
        fifth = (s[(d + 4) % 7] - root) % 12
        numeral = _NUMERALS[d] if third == 4 else _NUMERALS[d].lower()
        if fifth == 6:
            numeral += "°"
        elif fifth == 8:
            numeral += "+"
        out.append(Chord((tonic + root) % 12, (0, third, fifth), numeral))
    return out


def _preset_transitions(progressions) -> list[list[float]]:
    counts = [[0.0] * 7 for _ in range(7)]
    for prog in progressions:
        degs = []
        for sym in prog:
            m = ROMAN_RE.match(sym)
            if m and not m.group(1):
                degs.append(_NUMERALS.index(m.group(2).upper()))
        for a, b in zip(degs, degs[1:] + degs[:1]):
            counts[a][b] += 1
    for row in counts:
        total = sum(row)
        if total:
            row[:] = [x / total for x in row]
    return counts


def harmonize(soprano: list[int], cadences: list[str | None], *, tonic: int, mode: str,
              progressions, rng: random.Random, temperature: float = 1.0) -> list[Chord]:
    """A chord for each soprano pitch (one per chord slot).

    ``cadences[i]`` is ``"half"``, ``"full"`` or ``"final"`` on a phrase's last
    slot, else None.  Viterbi over the diatonic triads that contain the
    soprano's pitch class, with chord succession scores from the preset's
    progressions and common practice, plus seeded noise scaled by
    ``temperature``.
    """
    triads = diatonic_triads(tonic, mode)
    preset = _preset_transitions(progressions)
    trans = [[math.log(0.02 + 0.5 * _FUNCTIONAL[a][b] + 0.5 * preset[a][b]) for b in range(7)] for a in range(7)]
    n = len(soprano)
    noise = [[rng.gauss(0, 0.35 * temperature) for _ in range(7)] for _ in range(n)]

    def allowed(i: int, d: int) -> float:
        if soprano[i] % 12 not in triads[d].pcs:
            return -math.inf
        score = noise[i][d]
        cad = cadences[i]
        if cad in ("full", "final"):
            score += 0.0 if d == 0 else -math.inf
        elif cad == "half":
            score += 0.0 if d == 4 else -math.inf
        elif i + 1 < n and cadences[i + 1] in ("full", "final"):
            score += 1.5 if d in (4, 6) else (0.3 if d in (1, 3) else -1.5)
        elif i + 1 < n and cadences[i + 1] == "half":
            score += 0.8 if d in (0, 1, 3, 5) else -1.0
        if i == 0:
            score += 2.0 if d == 0 else -2.0
        if d == 2 or d == 6:
            score -= 0.6   # iii and vii° are rare colours
        return score

    best = [[-math.inf] * 7 for _ in range(n)]
    back = [[0] * 7 for _ in range(n)]
    for d in range(7):
        best[0][d] = allowed(0, d)
    for i in range(1, n):
        for d in range(7):
            a = allowed(i, d)
            if a == -math.inf:
                continue
            scores = [best[i - 1][p] + trans[p][d] - (0.8 if p == d else 0.0) for p in range(7)]
            p = max(range(7), key=scores.__getitem__)
            best[i][d], back[i][d] = scores[p] + a, p
    last = max(range(7), key=best[-1].__getitem__)
    if best[-1][last] == -math.inf:
        # the constraints found no path (e.g. a chromatic soprano): relax to the tonic triad
        return [triads[0]] * n
    path = [last]
    for i in range(n - 1, 0, -1):
        path.append(back[i][path[-1]])
    path.reverse()
    return [triads[d] for d in path]
