"""Constrained sampling from the music transformer.

A small REMI grammar runs beside the model so that every sampled sequence
decodes to valid MIDI: ``Bar -> TimeSig -> (Position -> [Program -> Pitch ->
Velocity -> Duration]+)* -> Bar ...``, positions rising within the bar and
inside the meter, only the allowed programs (parts; none allowed: empty
bars), the meter fixed, no tempo changes, and optionally only in-key pitches.  Rows of a batch keep
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
    #: a token the model writes where its sequence ends (``INFILL_END`` of a version-3 model,
    #: :mod:`.layout`): in a row's last bar its probability counts toward the Bar that ends the row
    close_id: int | None = None


#: notes one onset may hold (a ten-finger chord and a few more): past it the row moves on, so a
#: model that keeps adding notes at one onset cannot pile them up until the token budget is spent
MAX_ONSET_NOTES = 12

#: added to a key profile before its log, so that a pitch class the profile almost never
#: sees costs a bounded penalty: at weight 1, about 2 nats below the tonic (log 0.036 vs 0.27)
PRIOR_FLOOR = 0.03


def key_prior(tonic: int, mode: str, weight: float) -> np.ndarray:
    """A tonal prior for ``SampleSettings.pc_bias``: logits by pitch class that lean toward a key.

    ``weight * log(profile + PRIOR_FLOOR)``, shifted so that its largest value is 0, where
    ``profile`` is how often each pitch class sounds in music in that key (the
    Albrecht-Shanahan profile of :data:`musegen.midi.keys.KEY_PROFILES`, rotated to
    ``tonic``).  It favours the tonic, the fifth and the third over the other scale
    degrees and those over the notes outside the scale, so it holds the key's centre,
    not only its scale (a flat in-scale prior lets Eb major drift to its relative or
    to F minor).  Modes other than major and minor take the profile of their third
    (major or minor), each of its scale degrees moved to the mode's degree a semitone
    away (dorian: the minor profile's b6 weight on the 6).

    Parameters
    ----------
    tonic : int
        Pitch class 0-11.
    mode : str
        A mode of :data:`musegen.theory.MODES`.
    weight : float
        Strength (0: no bias).

    Returns
    -------
    numpy.ndarray
        Shape (12,), float64, values <= 0.
    """
    from musegen.midi.keys import KEY_PROFILES, SCALES
    from musegen.theory import MINOR_MODES

    minor = mode in MINOR_MODES
    base = "minor" if minor else "major"
    profile = np.asarray(KEY_PROFILES["albrecht"][int(minor)], dtype=np.float64)
    profile = profile / profile.sum()
    have, want = set(SCALES[base]), set(SCALES.get(mode, SCALES[base]))
    for degree in sorted(have - want):  # each degree the mode alters: a semitone up or down
        moved = next((d for d in ((degree + 1) % 12, (degree - 1) % 12) if d in want - have), None)
        if moved is not None:
            profile[[degree, moved]] = profile[[moved, degree]]
            want.discard(moved)
    bias = np.log(np.roll(profile, int(tonic) % 12) + PRIOR_FLOOR) * float(weight)
    return bias - bias.max()


class Grammar:
    """Per-token-type masks derived from a miditok REMI vocabulary."""

    def __init__(self, tokenizer, size: int | None = None):
        """``size``: the model's vocabulary, when it has tokens after the REMI ones
        (tokenizer version 3, :mod:`.layout`): they are never sampled, only given."""
        vocab = tokenizer.vocab
        self.V = V = max(len(vocab), size or 0)
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


class _Row:
    """One row's grammar state while sampling."""

    __slots__ = ("state", "cur_pos", "bars_done", "done", "new", "last_bar", "played", "prog_tok", "pitch_tok",
                 "guide")

    def __init__(self, state: int, cur_pos: int, bars_done: int, guide=None):
        self.state, self.cur_pos, self.bars_done = state, cur_pos, bars_done
        self.done = False
        self.new: list[int] = []
        self.last_bar: dict[int, int] = {}  # program -> bar it last played in
        self.played: list[tuple[int, int]] = []  # (Program, Pitch) tokens of the notes at the current position
        self.prog_tok = self.pitch_tok = -1  # the current note's Program and Pitch tokens
        self.guide = guide  # a .recall.Recall, or None

    def table_row(self, after0: int) -> int:
        if self.done:
            return S_DONE
        return after0 + self.cur_pos + 1 if self.state == S_DURATION else self.state

    def take(self, t: int, g: Grammar, bars: int) -> None:
        """Advance by token ``t``; a Bar that would open bar ``bars + 1`` ends the row instead."""
        if t == g.bar_id:
            self.bars_done += 1
            if self.bars_done > bars:
                self.done = True
                return
            self.cur_pos = -1
            self.played = []
        elif g.kind[t] == "Position":
            self.cur_pos = int(g.pos_index[t])
            self.played = []
        self.new.append(t)
        self.state = state = g.state_after(t)
        if state in (S_PROGRAM_MEL, S_PROGRAM_DRUM):
            self.last_bar[g.prog_value[t]] = self.bars_done
            self.prog_tok = t
        elif state == S_PITCH:
            self.pitch_tok = t
        elif state == S_DURATION:
            self.played.append((self.prog_tok, self.pitch_tok))


class _Rules:
    """The settings and the grammar of one ``sample`` call, as arrays over the vocabulary."""

    def __init__(self, g: Grammar, settings: SampleSettings, masks, positions: int):
        prog_mask, pitch_mask, pos_ok, ts_id = masks
        # one table of allowed-token rows: grammar states first, then "after a Duration at position k"
        table = np.zeros((S_DONE + 1 + positions + 1, g.V), dtype=bool)
        table[S_BAR, ts_id] = True
        table[S_TIMESIG] = pos_ok
        table[S_TIMESIG, g.bar_id] = True  # an empty bar
        table[S_POSITION] = prog_mask
        if not prog_mask.any():
            table[S_POSITION, g.bar_id] = True  # a prompt that opened a bar closes it empty
        table[S_PROGRAM_MEL] = pitch_mask
        table[S_PROGRAM_DRUM] = g.m_drum
        table[S_PITCH] = g.m_vel
        table[S_VELOCITY] = g.m_dur
        table[S_DONE, g.ids["PAD_None"]] = True
        self.after0 = after0 = S_DONE + 1  # row after0 + k + 1: after a note at position k (k = -1: no bar yet)
        table[after0] = g.m_bar
        for k in range(positions):
            table[after0 + k + 1] = prog_mask | g.m_bar | (pos_ok & (g.pos_index > k))
        # the additive form: 0 where allowed, -inf elsewhere (one add masks a batch), plus the tonal prior
        add = np.where(table, np.float32(0.0), np.float32(-np.inf))
        if settings.pc_bias is not None:
            pc_bias = np.asarray(settings.pc_bias, dtype=np.float32).reshape(12)
            add += np.where(g.pitch_value >= 0, pc_bias[g.pitch_value % 12], np.float32(0.0)).astype(np.float32)
        self.add = add
        self.temp = np.float32(max(1e-3, settings.temperature))
        self.top_k = min(settings.top_k, g.V) if settings.top_k else 0
        self.top_p = float(settings.top_p)
        self.V = g.V
        prog_id = {p: i for i, p in g.prog_value.items()}
        self.prog_ids = np.array(sorted(g.prog_value), dtype=np.int64)
        self.wanted = {p: prog_id[p] for p in settings.wanted if p in prog_id}
        self.part_bias = settings.part_bias
        self.g = g
        self.close_id = settings.close_id
        self.bars = 0  # set by ConstrainedSampler.sample: a row in bar `bars` may close

    def weights(self, logits: np.ndarray, rows: list[_Row]) -> np.ndarray:
        """Unnormalised sampling weights (B, V) for the rows' next tokens: 0 where not allowed."""
        lg = logits / self.temp
        close = lg[:, self.close_id].copy() if self.close_id is not None else None
        lg += self.add[[r.table_row(self.after0) for r in rows]]
        if close is not None:  # the end of the sequence closes the last bar as a Bar does
            bar = self.g.bar_id
            for b, r in enumerate(rows):
                if r.bars_done >= self.bars and np.isfinite(lg[b, bar]):
                    lg[b, bar] = np.logaddexp(lg[b, bar], close[b])
        if self.wanted:  # parts the request wants to hear, silent this bar and the last
            for b, r in enumerate(rows):
                if r.state in (S_POSITION, S_DURATION) and not r.done:
                    for prog, tid in self.wanted.items():
                        if r.bars_done - r.last_bar.get(prog, -9) > 1:
                            lg[b, tid] += self.part_bias
        for b, r in enumerate(rows):
            if r.done or not r.played:
                continue
            if r.state in (S_PROGRAM_MEL, S_PROGRAM_DRUM):
                # the same part never plays the same pitch twice at one onset
                dup = [pt for pr, pt in r.played if pr == r.prog_tok]
                if dup:
                    keep = lg[b, dup].copy()
                    lg[b, dup] = -np.inf
                    if not np.isfinite(lg[b]).any():  # nothing else left: let it be
                        lg[b, dup] = keep
            elif r.state == S_DURATION and len(r.played) >= MAX_ONSET_NOTES:
                lg[b, self.prog_ids] = -np.inf  # a Position or a Bar stays open
        for b, r in enumerate(rows):  # rows restating a reference bar (see .recall)
            if r.guide is not None and not r.done:
                ids = r.guide.preferred(r, self.g)
                if ids:
                    lg[b, ids] += np.float32(r.guide.bias)
        if self.top_k:
            kth = np.partition(lg, self.V - self.top_k, axis=-1)[:, self.V - self.top_k, None]
            lg[lg < kth] = -np.inf
        lg -= lg.max(-1, keepdims=True)
        return np.exp(lg, out=lg)


class ConstrainedSampler:
    """Samples continuations for a batch of prompts that share meter and settings.

    A single row (batch 1) decodes with drafts: the tokens that followed the
    latest earlier occurrence of the last three tokens (music repeats itself)
    are fed with the sampled token in one model call, and kept for as long as
    the sampled tokens equal them.  Each token is still drawn from the model's
    own distribution, so drafting changes the speed, not what is sampled.
    """

    #: drafted tokens per model call at batch 1 (0: no drafting)
    draft_len = 3
    #: lengths of the context matched to find a draft, tried longest first
    draft_match = (3, 2, 1)

    def __init__(self, model, tokenizer, grammar: Grammar | None = None):
        from musegen.engines.symbolic.runtime import NumpyLM

        self.model = model if isinstance(model, NumpyLM) else NumpyLM.from_module(model)
        self.tok = tokenizer
        self.g = grammar or Grammar(tokenizer, self.model.cfg.vocab_size)
        #: the model's :class:`.layout.Layout` (tokenizer version 3), or None; set by the engine
        self.layout = None
        #: model calls and tokens sampled by the last ``sample``
        self.last_stats = {"calls": 0, "tokens": 0}

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
        if not prog_mask.any():
            # no part for the model to write (a drum-only sketch, a drums-only preset): the
            # rows are empty bars, and whatever plays in them is arranged elsewhere
            pos_ok[:] = False
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
        prefilled: "tuple[object, np.ndarray] | None" = None,
        guides: "Sequence[object | None] | None" = None,
    ) -> list[list[int]]:
        """Continue each prompt by ``bars`` bars; returns the new ids per row.

        Every prompt must end at a grammar boundary (after a Duration, a
        TimeSig, or the conditioning prefix).  Generation of a row stops when
        it would open bar ``bars + 1``.  ``generator`` is one NumPy generator
        per row, or one (or a seed) that rows share.  ``prefilled`` is a cache
        that already holds the prompts, with the logits that followed them
        (see :meth:`prefill`): the prompts then only set the grammar state.
        ``guides``: per row, a :class:`.recall.Recall` that leans the row toward
        reference bars, or None.
        """
        g = self.g
        B = len(prompts)
        model = self.model
        rngs = _row_generators(generator, B)
        masks = self._static_masks(settings, meter)
        rules = _Rules(g, settings, masks, meter[0] * 8)
        rules.bars = bars
        if len({len(p) for p in prompts}) != 1:
            raise ValueError("prompts in one batch must have the same length")
        if prefilled is None:
            cache = model.new_cache(B)
            logits = self.prefill(np.array(prompts, dtype=np.int64), cache)
        else:
            cache, logits = prefilled
            if logits.shape != (B, g.V):
                raise ValueError(f"prefilled logits must be ({B}, {g.V}), got {logits.shape}")
        self.last_stats = {"calls": 1, "tokens": 0}

        def start_state(prompt: list[int]) -> int:
            s = g.state_after(prompt[-1])
            return S_DURATION if s == S_DONE else s  # a conditioning prefix or a finished note allow a new bar

        cur_pos, bars_done = -1, 0
        if start_state(prompts[0]) == S_POSITION:  # the prompt opened the first bar (Bar TimeSig Position [Tempo])
            cur_pos = next(int(g.pos_index[t]) for t in reversed(prompts[0]) if g.kind[t] == "Position")
            bars_done = 1
        if guides is not None and len(guides) != B:
            raise ValueError(f"need one guide (or None) per row ({B}), got {len(guides)}")
        rows = [_Row(start_state(p), cur_pos, bars_done, guides[b] if guides is not None else None)
                for b, p in enumerate(prompts)]
        limit = max_tokens or bars * meter[0] * 8 * 12 + 64
        if B == 1 and self.draft_len > 0:
            self._decode_drafting(prompts[0], rows[0], logits, cache, rules, rngs[0], bars, limit, progress)
            return [rows[0].new]
        active = list(range(B))  # rows still sampling; finished rows leave the batch
        nxt = np.zeros((B, 1), dtype=np.int64)
        for step in range(limit):
            weights = rules.weights(logits, [rows[b] for b in active])
            for j, b in enumerate(active):
                t = _draw(weights[j], rules.top_p, rngs[b])
                nxt[j, 0] = t
                rows[b].take(t, g, bars)
            self.last_stats["tokens"] += len(active)
            still = [j for j, b in enumerate(active) if not rows[b].done]
            if not still:
                break
            if len(still) < len(active):
                # rows end their bars at different lengths: stop computing the finished ones
                cache.keep(still)
                nxt = nxt[still].copy()
                active = [active[j] for j in still]
            logits = model.step(nxt, cache)
            self.last_stats["calls"] += 1
            if progress is not None and step % 64 == 0:
                progress(min(bars, min(r.bars_done for r in rows)), bars, "sampling")
        return [r.new for r in rows]

    def prefill(self, ids: np.ndarray, cache) -> np.ndarray:
        """Feed prompt ids (B, T) into ``cache`` (its newest ``context - 16`` tokens), in chunks
        of half the window; returns the logits (B, V) that follow them."""
        model = self.model
        room = model.cfg.context // 2
        if ids.shape[1] > model.cfg.context - 16:
            ids = ids[:, -(model.cfg.context - 16):]
        logits = None
        for start in range(0, ids.shape[1], room):
            logits = model.step(ids[:, start:start + room], cache)
        return logits

    def _decode_drafting(self, prompt, row: _Row, logits, cache, rules: _Rules, rng, bars: int, limit: int,
                         progress) -> None:
        """Batch-1 decoding with drafted tokens (see the class docstring); fills ``row.new``."""
        g, model, k = self.g, self.model, self.draft_len
        orders = self.draft_match
        history = list(prompt)
        # per n: n-gram -> where its latest occurrence ends; history[:indexed[n]] is indexed
        seen: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in orders}
        indexed = {n: n - 1 for n in orders}
        drawn = 0
        t = _draw(rules.weights(logits, [row])[0], rules.top_p, rng)
        drawn += 1
        row.take(t, g, bars)
        while not row.done and drawn < limit:
            history.append(t)
            # index every n-gram but the last one, then look the last one up, longest first
            draft: list[int] = []
            for n in orders:
                table = seen[n]
                for end in range(indexed[n], len(history) - 1):
                    table[tuple(history[end - n + 1:end + 1])] = end
                indexed[n] = max(indexed[n], len(history) - 1)
                if not draft:
                    hit = table.get(tuple(history[-n:]))
                    if hit is not None:
                        draft = history[hit + 1:hit + 1 + k]
            # never past the end of the window: it must slide where plain decoding slides it,
            # or the kept context (and so the samples) would differ
            draft = draft[:max(0, model.cfg.context - cache.length - 1)]
            feed = np.array([[t] + draft], dtype=np.int64)
            out = model.step(feed, cache, every=True)[0]  # (1 + len(draft), V)
            self.last_stats["calls"] += 1
            kept = 0
            for j in range(len(draft) + 1):
                t = _draw(rules.weights(out[j:j + 1], [row])[0], rules.top_p, rng)
                drawn += 1
                row.take(t, g, bars)
                if row.done or drawn >= limit or j == len(draft) or t != draft[j]:
                    break
                kept += 1
                history.append(t)
            cache.rewind(len(draft) - kept)
            if progress is not None and drawn % 64 < kept + 1:
                progress(min(bars, row.bars_done), bars, "sampling")
        self.last_stats["tokens"] = drawn


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
