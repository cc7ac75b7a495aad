"""The metric grid: bars, beats, subdivisions and metric strength in ticks.

Compound meters (6/8, 9/8, 12/8) count dotted-quarter beats split into three
eighths; simple meters split each beat in two.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Grid:
    """A run of ``bars`` bars of one meter starting at tick ``origin``."""

    tpq: int
    num: int
    den: int
    bars: int
    origin: int = 0

    @property
    def compound(self) -> bool:
        return self.den >= 8 and self.num >= 6 and self.num % 3 == 0

    @property
    def bar(self) -> int:
        """Ticks per bar."""
        return self.num * self.tpq * 4 // self.den

    @property
    def unit(self) -> int:
        """Ticks of one denominator note (a quarter in 4/4, an eighth in 6/8)."""
        return self.tpq * 4 // self.den

    @property
    def beat(self) -> int:
        """Ticks per felt beat (dotted quarter in 6/8)."""
        return self.unit * 3 if self.compound else self.unit

    @property
    def beats(self) -> int:
        """Felt beats per bar."""
        return self.num // 3 if self.compound else self.num

    @property
    def sub(self) -> int:
        """Ticks per beat subdivision (an eighth in 4/4 and in 6/8)."""
        return self.unit if self.compound else self.beat // 2

    @property
    def sixteenth(self) -> int:
        return self.tpq // 4

    @property
    def start(self) -> int:
        return self.origin

    @property
    def end(self) -> int:
        return self.origin + self.bars * self.bar

    def bar_start(self, i: int) -> int:
        return self.origin + i * self.bar

    def bar_of(self, tick: int) -> int:
        return (tick - self.origin) // self.bar

    @property
    def mid_beat(self) -> int | None:
        """Index of the secondary strong beat (beat 3 of 4/4), if the meter has one."""
        b = self.beats
        if b == 4 or b == 6:
            return b // 2
        if b == 5:
            return 3
        if b == 2 and self.compound:
            return 1
        return None

    def strength(self, tick: int) -> int:
        """Metric weight of ``tick``: 3 downbeat, 2 secondary strong beat, 1 beat, 0 off-beat."""
        off = (tick - self.origin) % self.bar
        if off == 0:
            return 3
        if off % self.beat:
            return 0
        k = off // self.beat
        return 2 if k == self.mid_beat else 1

    def half_bar(self) -> int:
        """Ticks to the bar's midpoint beat (larger half first for odd beat counts)."""
        return ((self.beats + 1) // 2) * self.beat
