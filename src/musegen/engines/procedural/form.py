"""Form: cutting a piece into phrases with labels and cadences.

Phrases with the same label share harmony and melodic material (``A A B A``);
cadences alternate half and full, and the last phrase closes on the tonic.
"""

from __future__ import annotations

from dataclasses import dataclass

_TEMPLATES = {
    "folk": "AABB",
    "chorale": "AABCDEFGH",
    "polyphony": "ABCDEFGH",
    "electronic": "AABB",
    "ambient": "ABAB",
}
_DEFAULT = "AABA"


@dataclass(frozen=True)
class Phrase:
    """One phrase: ``bars`` bars from bar ``start_bar`` (relative to the grid)."""

    index: int
    label: str
    variant: int          # how often this label was heard before (0 = first time)
    start_bar: int
    bars: int
    cadence: str          # "half", "full" or "final"

    @property
    def end_bar(self) -> int:
        return self.start_bar + self.bars


def plan_form(n_bars: int, phrase_bars: int, style: str) -> list[Phrase]:
    """Phrases covering ``n_bars`` bars; a short remainder joins the last phrase."""
    phrase_bars = max(1, min(phrase_bars, n_bars))
    lengths = [phrase_bars] * (n_bars // phrase_bars)
    rest = n_bars - sum(lengths)
    if rest:
        if lengths and rest * 2 < phrase_bars:
            lengths[-1] += rest
        else:
            lengths.append(rest)
    template = _TEMPLATES.get(style, _DEFAULT)
    phrases, seen, bar = [], {}, 0
    for i, n in enumerate(lengths):
        label = template[i % len(template)]
        if i == len(lengths) - 1:
            cadence = "final"
        else:
            cadence = "full" if i % 2 else "half"
        phrases.append(Phrase(i, label, seen.get(label, 0), bar, n, cadence))
        seen[label] = seen.get(label, 0) + 1
        bar += n
    return phrases
