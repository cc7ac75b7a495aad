"""Constrained sampling from the music transformer.

A small REMI grammar runs beside the model so that every sampled sequence
decodes to valid MIDI: ``Bar -> TimeSig -> (Position -> [Program -> Pitch ->
Velocity -> Duration]+)* -> Bar ...``, positions rising within the bar and
inside the meter, only the allowed programs (parts), the meter fixed, no
tempo changes, and optionally only in-key pitches.  Rows of a batch keep
their own grammar state, so N variations sample as one batch.

Everything here is NumPy: the model runs through :class:`.runtime.NumpyLM`
(a torch model is converted on the way in), and each row draws from its own
``numpy.random.Generator``, so a row's tokens depend on its own seed only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# grammar states: what the previous token was
S_BAR, S_TIMESIG, S_POSITION, S_PROGRAM_MEL, S_PROGRAM_DRUM, S_PITCH, S_VELOCITY, S_DURATION, S_DONE = range(9)


@dataclass
class SampleSettings:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.95
    key_pcs: frozenset[int] | None = None  # allowed pitch classes for melodic notes
    programs: tuple[int, ...] | None = None  # canonical programs allowed (-1 = drums)
    #: parts the request wants to hear: their Program tokens get ``part_bias`` added to
    #: the logits while the part has been silent for the current and the previous bar
    wanted: tuple[int, ...] = ()
    part_bias: float = 2.5
    #: added to the logits of melodic pitch tokens by pitch class (a tonal prior), shape (12,)
    pc_bias: "np.ndarray | Sequence[float] | None" = None


class Grammar:
    """Per-token-type masks derived from a miditok REMI vocabulary."""

    def __init__(self, tokenizer):
        vocab = tokenizer.vocab
        self.V = V = len(vocab)
        self.ids = vocab
        kind = ["?"] * V
        self.value: list[str] = [""] * V
        for tok, i in vocab.items():
            head, _, val = tok.partition("_")
            kind[i] = head
            self.value[i] = val
        self.kind = kind

        def mask_of(pred) -> np.ndarray:
            return np.array([pred(i) for i in range(V)], dtype=bool)

        self.m_bar = mask_of(lambda i: kind[i] == "Bar")
        self.m_pos = mask_of(lambda i: kind[i] == "Position")
        self.m_prog = mask_of(lambda i: kind[i] == "Program")
        self.m_pitch = mask_of(lambda i: kind[i] == "Pitch")
        self.m_drum = mask_of(lambda i: kind[i] == "PitchDrum")
        self.m_vel = mask_of(lambda i: kind[i] == "Velocity")
        self.m_dur = mask_of(lambda i: kind[i] == "Duration")
        self.pos_index = np.full(V, -1, dtype=np.int64)
        for i in range(V):
            if kind[i] == "Position":
                self.pos_index[i] = int(self.value[i])
        self.prog_value = {i: int(self.value[i]) for i in range(V) if kind[i] == "Program"}
        self.pitch_value = np.full(V, -1, dtype=np.int64)
        for i in range(V):
            if kind[i] == "Pitch":
                self.pitch_value[i] = int(self.value[i])
        self.bar_id = vocab["Bar_None"]

    def timesig_id(self, meter: tuple[int, int]) -> int:
        key = f"TimeSig_{meter[0]}/{meter[1]}"
        if key not in self.ids:
            raise KeyError(key)
        return self.ids[key]

    def position_id(self, pos: int) -> int:
        return self.ids[f"Position_{pos}"]

    def tempo_id(self, bpm: float) -> int:
        best, best_d = None, float("inf")
        for tok, i in self.ids.items():
            if tok.startswith("Tempo_"):
                d = abs(float(tok.split("_")[1]) - bpm)
                if d < best_d:
                    best, best_d = i, d
        return best

    def state_after(self, tok: int) -> int:
        k = self.kind[tok]
        if k == "Bar":
            return S_BAR
        if k == "TimeSig":
            return S_TIMESIG
        if k in ("Position", "Tempo"):
            return S_POSITION
        if k == "Program":
            return S_PROGRAM_DRUM if self.prog_value[tok] == -1 else S_PROGRAM_MEL
        if k in ("Pitch", "PitchDrum"):
            return S_PITCH
        if k == "Velocity":
            return S_VELOCITY
        if k == "Duration":
            return S_DURATION
        return S_DONE


class ConstrainedSampler:
    """Samples continuations for a batch of prompts that share meter and settings."""

    def __init__(self, model, tokenizer, grammar: Grammar | None = None):
        from musegen.engines.symbolic.runtime import NumpyLM

        self.model = model if isinstance(model, NumpyLM) else NumpyLM.from_module(model)
        self.tok = tokenizer
        self.g = grammar or Grammar(tokenizer)

    def _static_masks(self, settings: SampleSettings, meter: tuple[int, int]):
        g = self.g
        prog_mask = g.m_prog.copy()
        if settings.programs is not None:
            allowed = set(settings.programs)
            for i, p in g.prog_value.items():
                if p not in allowed:
                    prog_mask[i] = False
        pitch_mask = g.m_pitch.copy()
        if settings.key_pcs is not None:
            in_key = np.isin(g.pitch_value % 12, sorted(settings.key_pcs)) & (g.pitch_value >= 0)
            pitch_mask &= in_key
        positions = meter[0] * 8
        pos_ok = g.m_pos & (g.pos_index < positions)
        return prog_mask, pitch_mask, pos_ok, g.timesig_id(meter)

    def sample(
        self,
        prompts: list[list[int]],
        *,
        bars: int,
        meter: tuple[int, int],
        settings: SampleSettings,
        generator: "np.random.Generator | Sequence[np.random.Generator] | int",
        max_tokens: int | None = None,
        progress=None,
    ) -> list[list[int]]:
        """Continue each prompt by ``bars`` bars; returns the new ids per row.

        Every prompt must end at a grammar boundary (after a Duration, a
        TimeSig, or the conditioning prefix).  Generation of a row stops when
        it would open bar ``bars + 1``.  ``generator`` is one NumPy generator
        per row, or one (or a seed) that rows share.
        """
        g = self.g
        B = len(prompts)
        model = self.model
        rngs = _row_generators(generator, B)
        prog_mask, pitch_mask, pos_ok, ts_id = self._static_masks(settings, meter)
        positions = meter[0] * 8
        if not prog_mask.any():
            raise ValueError("no allowed program token")
        cache = model.new_cache(B)
        if len({len(p) for p in prompts}) != 1:
            raise ValueError("prompts in one batch must have the same length")
        x = np.array(prompts, dtype=np.int64)
        room = model.cfg.context // 2
        if x.shape[1] > model.cfg.context - 16:
            x = x[:, -(model.cfg.context - 16):]
        logits = None
        for start in range(0, x.shape[1], room):
            logits = model.step(x[:, start:start + room], cache)
        last = [p[-1] for p in prompts]
        state = [g.state_after(t) for t in last]
        # a conditioning prefix or a finished note both allow a new bar
        state = [S_DURATION if s == S_DONE else s for s in state]
        cur_pos = [-1] * B
        bars_done = [0] * B
        if state[0] == S_POSITION:  # the prompt opened the first bar (Bar TimeSig Position [Tempo])
            first_pos = next(int(g.pos_index[t]) for t in reversed(prompts[0]) if g.kind[t] == "Position")
            cur_pos = [first_pos] * B
            bars_done = [1] * B
        new: list[list[int]] = [[] for _ in range(B)]
        done = [False] * B
        limit = max_tokens or bars * meter[0] * 8 * 12 + 64
        temp = np.float32(max(1e-3, settings.temperature))
        # one table of allowed-token rows: grammar states first, then "after a Duration at position k"
        table = np.zeros((S_DONE + 1 + positions + 1, g.V), dtype=bool)
        table[S_BAR, ts_id] = True
        table[S_TIMESIG] = pos_ok
        table[S_TIMESIG, g.bar_id] = True  # an empty bar
        table[S_POSITION] = prog_mask
        table[S_PROGRAM_MEL] = pitch_mask
        table[S_PROGRAM_DRUM] = g.m_drum
        table[S_PITCH] = g.m_vel
        table[S_VELOCITY] = g.m_dur
        table[S_DONE, g.ids["PAD_None"]] = True
        after0 = S_DONE + 1  # row after0 + k + 1: after a note at position k (k = -1: bar not opened)
        table[after0] = g.m_bar
        for k in range(positions):
            table[after0 + k + 1] = prog_mask | g.m_bar | (pos_ok & (g.pos_index > k))
        # the additive form of the table: 0 where allowed, -inf elsewhere (one add masks a batch)
        table_add = np.where(table, np.float32(0.0), np.float32(-np.inf))
        if settings.pc_bias is not None:
            pc_bias = np.asarray(settings.pc_bias, dtype=np.float32).reshape(12)
            pitch_bias = np.where(g.pitch_value >= 0, pc_bias[g.pitch_value % 12], np.float32(0.0))
            table_add = table_add + pitch_bias.astype(np.float32)
        prog_id = {p: i for i, p in g.prog_value.items()}
        wanted_ids = {p: prog_id[p] for p in settings.wanted if p in prog_id}
        last_bar: list[dict[int, int]] = [dict() for _ in range(B)]
        top_k = min(settings.top_k, g.V) if settings.top_k else 0
        top_p = float(settings.top_p)
        nxt = np.zeros((B, 1), dtype=np.int64)
        for step in range(limit):
            rows = [S_DONE if done[b] else (after0 + cur_pos[b] + 1 if state[b] == S_DURATION else state[b])
                    for b in range(B)]
            lg = logits / temp
            lg += table_add[rows]
            if wanted_ids:
                for b in range(B):
                    if state[b] in (S_POSITION, S_DURATION) and not done[b]:
                        for prog, tid in wanted_ids.items():
                            if bars_done[b] - last_bar[b].get(prog, -9) > 1:
                                lg[b, tid] += settings.part_bias
            if top_k:
                kth = np.partition(lg, g.V - top_k, axis=-1)[:, g.V - top_k, None]
                lg[lg < kth] = -np.inf
            lg -= lg.max(-1, keepdims=True)
            probs = np.exp(lg, out=lg)
            for b in range(B):
                if done[b]:
                    continue
                t = _draw(probs[b], top_p, rngs[b])
                nxt[b, 0] = t
                if t == g.bar_id:
                    bars_done[b] += 1
                    if bars_done[b] > bars:
                        done[b] = True
                        continue
                    cur_pos[b] = -1
                elif g.kind[t] == "Position":
                    cur_pos[b] = int(g.pos_index[t])
                new[b].append(t)
                state[b] = g.state_after(t)
                if state[b] in (S_PROGRAM_MEL, S_PROGRAM_DRUM):
                    last_bar[b][g.prog_value[t]] = bars_done[b]
            if all(done):
                break
            logits = model.step(nxt, cache)
            if progress is not None and step % 64 == 0:
                progress(min(bars, min(bars_done)), bars, "sampling")
        return new


def _row_generators(generator, rows: int) -> list[np.random.Generator]:
    if isinstance(generator, (int, np.integer)):
        generator = np.random.default_rng(int(generator))
    if isinstance(generator, np.random.Generator):
        return [generator] * rows
    gens = list(generator)
    if len(gens) != rows or not all(isinstance(x, np.random.Generator) for x in gens):
        raise ValueError(f"need one numpy Generator per row ({rows}), got {len(gens)}")
    return gens


def _draw(weights: np.ndarray, top_p: float, rng: np.random.Generator) -> int:
    """One token from unnormalised weights (0 for banned tokens), nucleus-truncated at ``top_p``."""
    if top_p < 1.0:
        order = np.argsort(-weights, kind="stable")
        w = weights[order]
        cum = np.cumsum(w)
        # keep the smallest prefix whose mass reaches top_p (the token that crosses it included)
        keep = int(np.searchsorted(cum, top_p * cum[-1], side="left")) + 1
        cum = cum[:keep]
        i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        return int(order[min(i, keep - 1)])
    cum = np.cumsum(weights)
    i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return min(i, len(weights) - 1)
