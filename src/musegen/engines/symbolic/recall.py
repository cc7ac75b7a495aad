"""Reprise: sampling that leans on the sketch's own bars.

Songs and tunes restate their opening strain (AABA, verse after verse, a
folk tune's repeated first half), so a continuation that never comes back to
the sketch's material sounds aimless.  A :class:`Recall` guide gives one
sampled row a reference bar for each bar it writes (a bar of the sketch, or
None for a free bar); while the row writes a guided bar, the tokens that
would restate the reference get ``bias`` added to their logits: the next
onset position the reference has, its parts, pitches, velocities and
durations there.  The bonus is aligned by position, not by token count, so
after the model departs from the reference (another pitch, an extra note, a
skipped onset) the guide picks up again at the next position it reaches: the
result is a varied restatement, and the model still writes every token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from musegen.engines.symbolic import sampler as S


@dataclass(frozen=True)
class RefNote:
    """One note of a reference bar, as token ids."""

    prog: int
    pitch: int
    velocity: int
    duration: int


class RefBar:
    """The notes of one bar by onset position (notes in token order), and the tokens that open them."""

    __slots__ = ("notes", "next_open")

    def __init__(self, notes: dict[int, list[RefNote]], g: "S.Grammar"):
        self.notes = notes
        positions = sorted(notes)
        # after position k (-1: the bar line), the token that opens the reference's next onset
        self.next_open: dict[int, int] = {}
        for k in range(-1, (positions[-1] if positions else -1) + 1):
            later = [p for p in positions if p > k]
            self.next_open[k] = g.position_id(later[0]) if later else g.bar_id

    def opener(self, k: int, g: "S.Grammar") -> int:
        return self.next_open.get(k, g.bar_id)


def reference_bars(g: "S.Grammar", ids: list[int]) -> list[RefBar]:
    """The bars of REMI ``ids`` (a prompt body), each as a :class:`RefBar`."""
    bars: list[dict[int, list[RefNote]]] = []
    pos = prog = pitch = vel = None
    for t in ids:
        kind = g.kind[t]
        if kind == "Bar":
            bars.append({})
            pos = None
        elif kind == "Position":
            pos = int(g.pos_index[t])
        elif kind == "Program":
            prog = t
        elif kind in ("Pitch", "PitchDrum"):
            pitch = t
        elif kind == "Velocity":
            vel = t
        elif kind == "Duration" and bars and pos is not None and None not in (prog, pitch, vel):
            bars[-1].setdefault(pos, []).append(RefNote(prog, pitch, vel, t))
    return [RefBar(b, g) for b in bars]


class Recall:
    """A row's guide: ``bars[i]`` is the reference for the i-th bar the row writes (None: free)."""

    __slots__ = ("bars", "bias")

    def __init__(self, bars: list[RefBar | None], bias: float):
        self.bars, self.bias = bars, float(bias)

    def preferred(self, row: "S._Row", g: "S.Grammar") -> list[int]:
        """The token ids that would restate the reference at the row's state (maybe none)."""
        i = row.bars_done - 1
        if i < 0 or i >= len(self.bars) or self.bars[i] is None:
            return []
        ref = self.bars[i]
        state = row.state
        here = ref.notes.get(row.cur_pos, ())
        # the reference's notes at this onset that the row has not played yet, in token order
        left = [n for n in here if (n.prog, n.pitch) not in row.played] if row.played else list(here)
        if state in (S.S_TIMESIG, S.S_DURATION):
            if row.cur_pos >= 0 and left:
                return [left[0].prog]  # another note at this onset
            return [ref.opener(row.cur_pos, g)]  # the next onset, or the bar line
        if state == S.S_POSITION:
            return [left[0].prog] if left else []
        if state in (S.S_PROGRAM_MEL, S.S_PROGRAM_DRUM):
            return next(([n.pitch] for n in left if n.prog == row.prog_tok), [])
        note = next((n for n in here if n.prog == row.prog_tok and n.pitch == row.pitch_tok), None)
        if note is None:
            return []
        if state == S.S_PITCH:
            return [note.velocity]
        if state == S.S_VELOCITY:
            return [note.duration]
        return []


def reprise_plan(sketch_bars: int, new_bars: int) -> tuple[int, list[int | None]]:
    """Which sketch bar each new bar restates: ``(phrase, refs)``.

    The phrase is the sketch's last ``min(sketch_bars, 8)`` bars.  New bars come in sections
    of that phrase's length (repeated up to at least 4 bars); sections alternate between
    restating the phrase (A', A'' ...) and free bars (B), starting with a restatement, so
    an 8-bar sketch extended by 16 bars runs A A' B.  ``refs[j]`` is the index, within the
    phrase, of the bar new bar ``j`` restates, or None for a free bar.
    """
    phrase = min(sketch_bars, 8)
    if phrase <= 0:
        return 0, [None] * new_bars
    section = phrase * math.ceil(4 / phrase)
    refs: list[int | None] = []
    for j in range(new_bars):
        refs.append(j % phrase if (j // section) % 2 == 0 else None)
    return phrase, refs
