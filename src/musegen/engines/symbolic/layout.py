"""Sequence layouts of tokenizer version 3: controls, bar infilling and part infilling.

Version 3 keeps version 2's REMI vocabulary and appends musegen's own tokens
after it (ids ``len(tokenizer)`` and up), so a version-2 corpus serves as it
is.  A sequence starts ``BOS STYLE KEY`` followed by *controls* that describe
the music of the sequence:

- ``DENS_k``: notes per bar, in :data:`DENSITY_EDGES` buckets;
- ``POLY_k``: notes per onset (1 = one line, 3 = chords), :data:`POLYPHONY_EDGES`;
- ``PART_p``: one per canonical program that plays (``-1`` = drums).

Each kind may be missing (training drops it now and then), so a user sets
only what they want.  Three layouts follow the controls:

- plain: the music, bar after bar;
- bar infill: ``before HOLE after INFILL_START gap INFILL_END`` -- the model
  writes the gap knowing what comes before *and after* it;
- part infill: ``ADD_p`` among the controls, then the music without part
  ``p``, ``PART_START``, then part ``p`` alone over the same bars -- the model
  writes a part knowing every other part of the passage.

Everything here is NumPy: the trainer and the sampler build the same layouts.
"""

from __future__ import annotations

import numpy as np

#: notes per bar: bucket k holds densities in [EDGES[k-1], EDGES[k])
DENSITY_EDGES = (6.0, 9.0, 13.0, 18.0, 24.0, 32.0, 45.0)  # about the octiles of the training windows
#: notes per onset
POLYPHONY_EDGES = (1.2, 1.7, 2.5)
#: the canonical programs (tokens.canonical_program): drums, then each GM family
#: (32 is the bass part, 72 the melody)
PART_PROGRAMS = (-1,) + tuple(range(0, 128, 8))
INFILL = ("INFILL_HOLE", "INFILL_START", "INFILL_END", "PART_START")


def extra_tokens() -> list[str]:
    """Version 3's own tokens, in id order after the REMI vocabulary."""
    return ([f"DENS_{k}" for k in range(len(DENSITY_EDGES) + 1)]
            + [f"POLY_{k}" for k in range(len(POLYPHONY_EDGES) + 1)]
            + [f"PART_{p}" for p in PART_PROGRAMS]
            + [f"ADD_{p}" for p in PART_PROGRAMS]
            + list(INFILL))


def density_bucket(notes_per_bar: float) -> int:
    return int(np.searchsorted(DENSITY_EDGES, notes_per_bar, side="right"))


def polyphony_bucket(notes_per_onset: float) -> int:
    return int(np.searchsorted(POLYPHONY_EDGES, notes_per_onset, side="right"))


_BAR, _TS, _POS, _TEMPO, _PROG, _PITCH, _VEL, _DUR, _OTHER = range(9)
_KINDS = {"Bar": _BAR, "TimeSig": _TS, "Position": _POS, "Tempo": _TEMPO, "Program": _PROG,
          "Pitch": _PITCH, "PitchDrum": _PITCH, "Velocity": _VEL, "Duration": _DUR}


class Layout:
    """Builds version-3 sequences from REMI bodies (training windows and sampling prompts).

    Parameters
    ----------
    tokenizer
        The REMI tokenizer (version 2's vocabulary).
    p_infill, p_part : float
        Chance that a training window is laid out for bar infilling or part infilling.
    p_drop : float
        Chance that each kind of control is left out of a training window.
    """

    def __init__(self, tokenizer, *, p_infill: float = 0.25, p_part: float = 0.25, p_drop: float = 0.15):
        vocab = tokenizer.vocab
        self.base = len(vocab)
        self.bar_id = vocab["Bar_None"]
        self.extra = {name: self.base + i for i, name in enumerate(extra_tokens())}
        self.vocab_size = self.base + len(self.extra)
        self.p_infill, self.p_part, self.p_drop = p_infill, p_part, p_drop
        self.kind = np.full(self.vocab_size, _OTHER, np.int8)
        self.value = np.full(self.vocab_size, -999, np.int64)  # Program / Position values
        for tok, i in vocab.items():
            head, _, val = tok.partition("_")
            self.kind[i] = _KINDS.get(head, _OTHER)
            if head in ("Program", "Position"):
                self.value[i] = int(val)
        self.part_index = {p: k for k, p in enumerate(PART_PROGRAMS)}

    def plain(self) -> "Layout":
        """The same vocabulary, every window plain with all its controls (validation)."""
        out = Layout.__new__(Layout)
        out.__dict__.update(self.__dict__)
        out.p_infill = out.p_part = out.p_drop = 0.0
        return out

    # -- what a body holds -------------------------------------------------------------------
    def stats(self, body: np.ndarray) -> tuple[float, float, list[int]]:
        """``(notes per bar, notes per onset, programs that play)`` of a REMI body."""
        kind = self.kind[body]
        is_prog = kind == _PROG
        notes = int(is_prog.sum())
        bars = max(1, int((kind == _BAR).sum()))
        if not notes:
            return 0.0, 0.0, []
        bar_no = np.cumsum(kind == _BAR)
        pos_at = np.where(kind == _POS, self.value[body], -1)
        # forward-fill the position within each bar (a Bar resets it)
        idx = np.where((kind == _POS) | (kind == _BAR), np.arange(len(body)), 0)
        np.maximum.accumulate(idx, out=idx)
        pos = pos_at[idx]
        onsets = len(np.unique(bar_no[is_prog] * 4096 + pos[is_prog]))
        programs = sorted(set(self.value[body[is_prog]].tolist()))
        return notes / bars, notes / max(1, onsets), programs

    def controls(self, density: int | None, polyphony: int | None, parts: list[int] | None,
                 add: int | None = None) -> list[int]:
        """Control ids in their fixed order; ``None`` leaves a kind out."""
        out = []
        if density is not None:
            out.append(self.extra[f"DENS_{density}"])
        if polyphony is not None:
            out.append(self.extra[f"POLY_{polyphony}"])
        if parts is not None:
            out += [self.extra[f"PART_{p}"] for p in sorted(set(parts), key=self.part_index.__getitem__)]
        if add is not None:
            out.append(self.extra[f"ADD_{add}"])
        return out

    def controls_of(self, body: np.ndarray) -> tuple[int | None, int | None, list[int]]:
        density, polyphony, parts = self.stats(body)
        if not parts:
            return None, None, []
        return density_bucket(density), polyphony_bucket(polyphony), parts

    # -- layouts ------------------------------------------------------------------------------
    def bar_starts(self, body: np.ndarray) -> np.ndarray:
        return np.flatnonzero(self.kind[body] == _BAR)

    def bar_infill(self, body: np.ndarray, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """``(context, gap)``: the body with bars ``first..last`` (0-based, inclusive) taken out.

        ``context`` is ``before HOLE after INFILL_START``; ``gap`` is the bars
        taken out followed by ``INFILL_END``: the sequence the model learns
        (and writes) is ``context + gap``.
        """
        starts = np.append(self.bar_starts(body), len(body))
        a, b = int(starts[first]), int(starts[last + 1])
        x = self.extra
        context = np.concatenate([body[:a], [x["INFILL_HOLE"]], body[b:], [x["INFILL_START"]]])
        return context.astype(np.int64), np.append(body[a:b], x["INFILL_END"]).astype(np.int64)

    def split_part(self, body: np.ndarray, program: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rest, part)``: the body without ``program``'s notes, and those notes alone.

        Both keep every Bar and TimeSig token, so their bars line up; ``rest``
        drops the Position tokens left without a note or tempo, ``part`` keeps
        one Position per onset of its own.
        """
        kind = self.kind[body]
        n = len(body)
        is_prog = kind == _PROG
        heads = np.flatnonzero(is_prog & (self.value[body] == program))
        mine = np.zeros(n, bool)
        for k in range(4):  # Program Pitch Velocity Duration
            mine[np.minimum(heads + k, n - 1)] = True
        # the Position token that opens each of the part's onsets
        last_pos = np.where((kind == _POS) | (kind == _BAR), np.arange(n), -1)
        np.maximum.accumulate(last_pos, out=last_pos)
        owner = last_pos[heads]
        owner = owner[(owner >= 0) & (kind[np.maximum(owner, 0)] == _POS)]
        keep_part = (kind == _BAR) | (kind == _TS) | mine
        keep_part[owner] = True
        rest_idx = np.flatnonzero(~mine)
        rest = body[rest_idx]
        rk = self.kind[rest]
        # a Position followed by another Position, a Bar or nothing has lost its notes
        nxt = np.append(rk[1:], _BAR)
        empty = (rk == _POS) & ((nxt == _POS) | (nxt == _BAR))
        return rest[~empty].astype(np.int64), body[keep_part].astype(np.int64)

    def part_infill(self, body: np.ndarray, program: int) -> tuple[np.ndarray, np.ndarray]:
        """``(context, part)``: the body without ``program`` then ``PART_START``; the part alone."""
        rest, part = self.split_part(body, program)
        return np.append(rest, self.extra["PART_START"]).astype(np.int64), part

    # -- training windows ---------------------------------------------------------------------
    def window(self, rng: np.random.Generator, head: np.ndarray, body: np.ndarray, complete: bool,
               length: int) -> np.ndarray:
        """One training sequence of at most ``length`` ids: ``head`` (BOS STYLE KEY), controls, layout.

        ``body`` starts at a bar line; ``complete`` says it ends at the piece's
        end (otherwise its last, cut bar is dropped for the infill layouts).
        """
        density, polyphony, parts = self.controls_of(body)
        mode = rng.random()
        add = None
        starts = self.bar_starts(body)
        whole = body if complete or len(starts) < 2 else body[:starts[-1]]
        n_bars = len(self.bar_starts(whole))
        if mode < self.p_infill and n_bars >= 3:
            g = int(rng.integers(1, min(8, n_bars - 1) + 1))
            first = int(rng.integers(0, n_bars - g + 1))
            context, gap = self.bar_infill(whole, first, first + g - 1)
            density, polyphony, parts = self.controls_of(whole)
            seq = np.concatenate([context, gap])
        elif mode < self.p_infill + self.p_part and parts and n_bars >= 1:
            density, polyphony, parts = self.controls_of(whole)
            add = int(parts[int(rng.integers(len(parts)))]) if parts else None
            if add is None:
                seq = body
            else:
                context, part = self.part_infill(whole, add)
                seq = np.concatenate([context, part])
        else:
            seq = body
        if rng.random() < self.p_drop:
            density = None
        if rng.random() < self.p_drop:
            polyphony = None
        keep_parts = parts if (parts and rng.random() >= self.p_drop) else None
        ctrl = self.controls(density, polyphony, keep_parts, add)
        return np.concatenate([head, ctrl, seq]).astype(np.int64)[:length]
