"""Bar infilling with a left-to-right model: rewrite bars K..M of a sketch so they lead into bar M+1.

The shipped model was trained only to continue, never to fill a gap, so the gap is
written as a continuation of the bars before it, :data:`DEFAULT_CANDIDATES` times, and
the candidate kept is the one after which the model finds the sketch's own next bars
likeliest: ``log p(bars M+1..M+LOOKAHEAD_BARS | bars before, candidate)``, the
after-bars tokenized as they are in the sketch and appended to the candidate.  Among
samples of ``p(gap | before)`` that picks the one closest to ``p(gap | before, after)``.
A seam term keeps the gap's note density near the neighbouring bars', and a pitch-class
term its tonal balance near the bars around it (``PC_WEIGHT``).  A model trained
with an infilling objective (the after-bars in its prompt) would take over in
:func:`sample_gap`; the request, the scoring record and the result's shape stay as they are.

What the result keeps: every note that starts outside the gap, unchanged (pitch, start,
duration, velocity, track), also a note that starts before the gap and sounds into it;
the notes of the infilled parts that start inside the gap are replaced by the model's,
which are cut at the gap's end, so none of them sounds into bar M+1.  Parts not infilled
(``--parts``) keep their gap notes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from musegen.engines.base import EngineOutput, Request
from musegen.errors import EngineError, ParameterError

#: gap candidates sampled per variation (the engine's ``candidates`` option overrides it)
DEFAULT_CANDIDATES = 6
#: bars after the gap whose likelihood ranks the candidates (16 validation pieces, pitch-class
#: overlap of the rewrite with the hidden bars: 2 -> 0.773, 4 -> 0.784, within one standard error)
LOOKAHEAD_BARS = 4
#: neighbouring bars (each side) whose note density the gap should keep
SEAM_BARS = 2
#: nats lost per unit of ``|log((gap notes per bar + 1) / (neighbours' + 1))|``: a gap of twice
#: its neighbours' density (about 0.6 in the log) costs about 3 nats, a few notes' worth of
#: after-bar likelihood
SEAM_DENSITY_WEIGHT = 5.0
#: bars each side of the gap whose pitch-class balance the gap is ranked against
PC_BARS = 4
#: nats gained per unit of overlap (0-1) of the gap's duration-weighted pitch classes with the
#: bars around it.  On 16 validation pieces (``scripts/eval_symbolic.py --task infill --split
#: valid``, 6 candidates), the rewrite's pitch-class overlap with the hidden bars: 0 -> 0.726,
#: 30 -> 0.773, 100 -> 0.765 (copying bars 5-8: 0.756, bars 13-16: 0.804)
PC_WEIGHT = 30.0
#: weight of the sampler's pitch-class prior toward the bars around the gap (the ``tonal_prior``
#: option overrides it): off, as 1.0 lowered that overlap on the same pieces (0.654; with
#: ``PC_WEIGHT`` 30: 0.672), concentrating the gap on the likeliest pitch classes
DEFAULT_TONAL_PRIOR = 0.0


@dataclass
class Gap:
    """Bars ``first..last`` (1-based, inclusive) of a sketch, in its ticks: ``[start, end)``."""

    first: int
    last: int
    start: int
    end: int

    @property
    def bars(self) -> int:
        return self.last - self.first + 1


def gap_of(analysis, first: int, last: int) -> Gap:
    """The ticks of bars ``first..last`` on the sketch's bar grid."""
    starts = [int(b) for b in analysis.bar_starts]
    bt = int(analysis.bar_ticks)
    start = starts[first - 1] if first - 1 < len(starts) else (first - 1) * bt
    end = starts[last] if last < len(starts) else start + (last - first + 1) * bt
    return Gap(first, last, start, end)


def meter_as_read(score):
    """``score`` with one time signature per tick, the last one (as :func:`musegen.midi.analysis.meter_map`
    and a sequencer read it).  miditok takes the first of two at one tick, so a file that says 4/4 and
    then 1/4 at tick 0 (many POP909 songs do) would be tokenized in bars other than the user's."""
    from symusic import TimeSignature

    last = {}
    for t in score.time_signatures:
        last[int(t.time)] = (int(t.numerator), int(t.denominator))
    if len(last) == len(score.time_signatures):
        return score
    out = score.copy()
    out.time_signatures.clear()
    for tick, (num, den) in sorted(last.items()):
        out.time_signatures.append(TimeSignature(tick, num, den))
    return out


def track_programs(canon) -> list[int]:
    """Canonical program (-1 = drums) of each track of a canonicalized score."""
    return [-1 if t.is_drum else int(t.program) for t in canon.tracks]


class InfillJob:
    """One infill request made ready: the prompt (the bars before the gap), the after-bars' tokens,
    the parts to rewrite.  ``batch_key`` is None: its candidates are a batch of its own."""

    batch_key = None

    def __init__(self, request: Request, sampler, tokenizer, config, context: int, settings_base,
                 candidates: int, card: dict, drums_ok: bool):
        from musegen.engines.symbolic.continuation import plan_prompt
        from musegen.engines.symbolic.tokens import canonicalize, encode

        self.request, self.sampler, self.tokenizer, self.config = request, sampler, tokenizer, config
        self.candidates, self.card = candidates, card
        seed, a = meter_as_read(request.seed), request.seed_analysis
        first, last = request.infill
        self.gap = gap = gap_of(a, first, last)
        canon, _ = canonicalize(seed, list(a.tracks))
        progs = track_programs(canon)
        chosen = list(request.infill_tracks) if request.infill_tracks is not None else [
            i for i, t in enumerate(seed.tracks) if len(t.notes)]
        self.kept_drums = False
        if not drums_ok and any(progs[i] == -1 for i in chosen):
            if request.infill_tracks is not None:
                raise ParameterError("the symbolic model writes no drums: --parts cannot name the drum track "
                                     f"{seed.tracks[next(i for i in chosen if progs[i] == -1)].name or 'drums'!r}")
            chosen = [i for i in chosen if progs[i] != -1]  # the sketch's drums play on through the gap
            self.kept_drums = True
        if not chosen:
            raise ParameterError("the sketch has no part the model can infill (only drums, or no notes)")
        self.tracks = chosen
        # each canonical part's new notes go to its chosen track with the most notes
        self.part_map: dict[int, int] = {}
        for i in chosen:
            p = progs[i]
            if p not in self.part_map or len(seed.tracks[i].notes) > len(seed.tracks[self.part_map[p]].notes):
                self.part_map[p] = i
        # the prompt: the notes that start before the gap, as `extend` would continue them from bar K
        prefix = seed.clip(0, gap.start, clip_end=False)
        pa = dataclasses.replace(a, end_tick=max(0, gap.start - 1) if gap.start > 0 else 0)
        sub = dataclasses.replace(request, seed=prefix, seed_analysis=pa, bars=gap.bars, continue_only=True,
                                  infill=None, infill_tracks=None)
        self.plan = plan = plan_prompt(sub, tokenizer, sampler.g, context, drums=drums_ok)
        if plan.start_tick != gap.start:
            raise EngineError(f"the gap starts at tick {gap.start}, the prompt ends at {plan.start_tick} "
                              "(a meter change before the gap?)")
        self.settings = dataclasses.replace(settings_base, programs=tuple(sorted(self.part_map)),
                                            wanted=tuple(sorted(self.part_map)))
        # the after-bars, tokenized as in the whole sketch: the Bar tokens of bars M+1..M+L
        g = sampler.g
        ahead = min(LOOKAHEAD_BARS, max(0, len(a.bar_starts) - last))
        body = encode(tokenizer, canon.clip(0, gap.end + ahead * int(a.bar_ticks), clip_end=False)) if ahead else []
        bars_at = [i for i, t in enumerate(body) if t == g.bar_id]
        self.tail = body[bars_at[last]:] if ahead and len(bars_at) > last else []
        # the neighbours' density (notes per bar of the infilled tracks, SEAM_BARS each side)
        bt = int(a.bar_ticks)
        lo, hi = max(0, gap.start - SEAM_BARS * bt), min(gap.end + SEAM_BARS * bt, max(gap.end, int(a.end_tick)))
        n_neigh = sum(1 for i in chosen for n in seed.tracks[i].notes
                      if lo <= n.time < gap.start or gap.end <= n.time < hi)
        bars_neigh = (gap.start - lo + hi - gap.end) / bt
        self.neighbour_density = n_neigh / bars_neigh if bars_neigh > 0 else None
        # the pitch classes around the gap (duration-weighted, the infilled tracks' notes)
        lo, hi = gap.start - PC_BARS * bt, gap.end + PC_BARS * bt
        h = [0.0] * 12
        for i in chosen:
            if not seed.tracks[i].is_drum:
                for n in seed.tracks[i].notes:
                    if lo <= n.time < gap.start or gap.end <= n.time < hi:
                        h[n.pitch % 12] += n.duration
        total = sum(h)
        self.around_pcs = [x / total for x in h] if total > 0 else None
        self.prompt = plan.prompt  # what the gap is sampled after
        self.method = "rank continuations by the after-bars' likelihood (no infilling objective)"
        layout = getattr(sampler, "layout", None)
        if layout is not None:  # a model trained to infill: the bars after the gap go into its prompt
            whole = encode(tokenizer, canon)
            at = [i for i, t in enumerate(whole) if t == g.bar_id]
            after = whole[at[last]:] if len(at) > last else []
            self.prompt = infill_prompt(layout, plan, whole, after, gap.bars, context)
            self.settings = dataclasses.replace(self.settings, close_id=layout.extra["INFILL_END"])
            self.method = ("the model's infilling layout (the bars before and after the gap in its prompt); "
                           "candidates ranked by the after-bars' likelihood")

    def tonal_bias(self, weight: float | None):
        """``SampleSettings.pc_bias`` leaning toward the pitch classes around the gap (None: off)."""
        weight = DEFAULT_TONAL_PRIOR if weight is None else weight
        if not weight or self.around_pcs is None:
            return None
        from musegen.engines.symbolic.sampler import PRIOR_FLOOR

        return np.log(np.asarray(self.around_pcs) + PRIOR_FLOOR) * float(weight)

    @property
    def rows(self) -> int:
        return self.request.variations

    def run(self, progress=None) -> list[EngineOutput]:
        gen = np.random.default_rng(int(self.request.random_seed) % (2**63))
        outs = []
        for v in range(self.request.variations):
            cands = sample_gap(self.sampler, self.prompt, self.gap.bars, self.request.meter, self.settings,
                               gen, self.candidates, progress)
            scored = [self.score(c) for c in cands]
            best = max(range(len(cands)), key=lambda i: scored[i]["score"])
            outs.append(self.output(cands[best], v, best, scored))
        return outs

    def score(self, cand: list[int]) -> dict:
        """The candidate's ranking: after-bars' log-likelihood less the density seam term."""
        from musegen.engines.symbolic.continuation import _pc_weights, note_stats

        ll = tail_logprob(self.sampler, self.plan.prompt, cand, self.tail)
        own = [n for n in note_stats(self.sampler.g, cand) if n[0] in self.part_map]
        per_bar = len(own) / self.gap.bars
        penalty = 0.0
        if self.neighbour_density is not None:
            penalty = SEAM_DENSITY_WEIGHT * abs(math.log((per_bar + 1) / (self.neighbour_density + 1)))
        fit = 0.0
        if self.around_pcs is not None and PC_WEIGHT:
            h = _pc_weights(own)
            total = sum(h)
            fit = sum(min(x / total, p) for x, p in zip(h, self.around_pcs)) if total > 0 else 0.0
        score = ll - penalty + PC_WEIGHT * fit
        return {"after_logprob": round(ll, 3), "notes_per_bar": round(per_bar, 3),
                "density_penalty": round(penalty, 3), "pc_fit": round(fit, 4), "score": round(score, 3),
                "tokens": len(cand)}

    def output(self, cand: list[int], v: int, best: int, scored: list[dict]) -> EngineOutput:
        from musegen.engines.symbolic.continuation import _extract_new
        from musegen.engines.symbolic.tokens import decode

        try:
            score_tok = decode(self.tokenizer, self.plan.body + cand)
        except Exception as exc:  # noqa: BLE001 - miditok raises assorted errors on malformed streams
            raise EngineError(f"the model's output could not be decoded: {exc}") from None
        base = self.request.seed.copy()
        gap = self.gap
        for i in self.tracks:
            trk = base.tracks[i]
            keep = [n for n in trk.notes if not gap.start <= n.time < gap.end]
            trk.notes.clear()
            for n in keep:
                trk.notes.append(n)
        parts = _extract_new(score_tok, self.plan, self.request.meter, gap.bars, base.ticks_per_quarter)
        written, cut = {}, 0
        for prog, notes in sorted(parts.items()):
            if prog not in self.part_map:
                continue
            trk = base.tracks[self.part_map[prog]]
            for n in notes:
                cut += n.time + n.duration == gap.end  # a note the gap's end cut (or one that ends on it)
                trk.notes.append(n)
            trk.notes.sort()
            written[prog] = len(notes)
        info = {"model": str(self.config.get("name", "musegen-symbolic")), "variation": v + 1,
                "tokens": len(cand), "parts": written, "prompt_bars": self.plan.prompt_bars,
                "infill": {"bars": [gap.first, gap.last], "ticks": [gap.start, gap.end],
                           "tracks": list(self.tracks), "drums_kept": self.kept_drums,
                           "method": self.method,
                           "lookahead_bars": LOOKAHEAD_BARS, "after_tokens": len(self.tail),
                           "neighbour_notes_per_bar": None if self.neighbour_density is None
                           else round(self.neighbour_density, 3),
                           "notes_ending_at_gap_end": int(cut),
                           "chosen": best, "candidates": scored},
                "candidates": self.candidates, **self.card}
        return EngineOutput(score=base, info=info)


def infill_prompt(layout, plan, whole: list[int], after: list[int], gap_bars: int, context: int) -> list[int]:
    """A version-3 infilling prompt: ``BOS STYLE KEY controls before HOLE after INFILL_START``.

    The controls describe the whole sketch (its parts, density and polyphony).  Whole bars
    are dropped from the far ends of ``before`` (``plan.body``) and ``after`` until the gap
    (guessed at twice the sketch's tokens per bar) fits in the context with them.
    """
    from musegen.engines.symbolic.continuation import control_ids

    head = plan.prompt[:len(plan.prompt) - len(plan.body)][:3]  # BOS STYLE KEY
    cond = head + control_ids(layout, whole, plan.programs)
    bars_whole = max(1, sum(1 for t in whole if t == layout.bar_id))
    gap_room = 2 * gap_bars * len(whole) // bars_whole + 32
    room = max(64, context - 16 - len(cond) - 2 - gap_room)
    after = _whole_bars(layout, after, room // 3, keep="start")
    before = _whole_bars(layout, plan.body, room - len(after), keep="end")
    return cond + before + [layout.extra["INFILL_HOLE"]] + after + [layout.extra["INFILL_START"]]


def _whole_bars(layout, ids: list[int], budget: int, *, keep: str) -> list[int]:
    """``ids`` cut to at most ``budget`` tokens at bar lines, keeping its start or its end."""
    if len(ids) <= budget:
        return list(ids)
    starts = [i for i, t in enumerate(ids) if t == layout.bar_id]
    if keep == "start":
        cut = max([i for i in starts if i <= budget] or [0])
        return list(ids[:cut])
    from musegen.engines.symbolic.continuation import drop_front_bars

    return list(drop_front_bars(list(ids), layout.bar_id, budget)[0])


def sample_gap(sampler, prompt: list[int], bars: int, meter, settings, generator, candidates: int,
               progress=None) -> list[list[int]]:
    """``candidates`` continuations of ``prompt`` by ``bars`` bars, sampled as one batch from one prefill."""
    trunk = sampler.model.new_cache(1)
    logits = sampler.prefill(np.array([prompt], dtype=np.int64), trunk)
    start = (trunk.repeat(candidates), np.repeat(logits, candidates, axis=0))
    return sampler.sample([prompt] * candidates, bars=bars, meter=meter, settings=settings, generator=generator,
                          progress=progress, prefilled=start)


def tail_logprob(sampler, prompt: list[int], cand: list[int], tail: list[int]) -> float:
    """Summed log-probability (nats) of ``tail`` after ``prompt + cand`` under the model (0 without a tail)."""
    if not tail:
        return 0.0
    model = sampler.model
    cache = model.new_cache(1)
    logits = sampler.prefill(np.array([prompt + cand], dtype=np.int64), cache)
    total = 0.0
    room = model.cfg.context // 2
    prev = logits  # (1, V): predicts tail[0]
    for s in range(0, len(tail), room):
        chunk = tail[s:s + room]
        out = model.step(np.array([chunk], dtype=np.int64), cache, every=True)[0]  # (T, V)
        preds = np.concatenate([prev, out[:-1]], axis=0).astype(np.float64)
        preds -= preds.max(-1, keepdims=True)
        logp = preds - np.log(np.exp(preds).sum(-1, keepdims=True))
        total += float(logp[np.arange(len(chunk)), chunk].sum())
        prev = out[-1:]
    return total
