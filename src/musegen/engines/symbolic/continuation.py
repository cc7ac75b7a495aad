"""Prompts from requests, and sampled tokens back into the user's score.

The seed is encoded (canonical parts, see :mod:`.tokens`) as the prompt; the
model continues it from the first bar line after the seed; the new notes are
moved into the seed's own tracks (by canonical part) at the seed's tick
resolution, so the seed stays an exact prefix of the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from musegen.engines.base import EngineOutput, Request, continuation_start
from musegen.engines.symbolic.tokens import (
    BASS_PROGRAM,
    MELODY_PROGRAM,
    canonical_program,
    canonicalize,
    condition_tokens,
    decode,
    encode,
)
from musegen.errors import EngineError

OUT_TPQ = 480
ROLE_NAMES = {MELODY_PROGRAM: "lead", BASS_PROGRAM: "bass", -1: "drums"}
MODEL_BASS_STYLES = ("chorale", "polyphony", "classical")


@dataclass
class PromptPlan:
    prompt: list[int]              # conditioning + body
    body: list[int]                # the REMI part of the prompt (decoded together with new tokens)
    prompt_bars: int               # bars in ``body``; new bars start after them
    programs: tuple[int, ...]      # canonical parts the model may write
    key_pcs: frozenset[int]
    part_map: dict[int, int] = field(default_factory=dict)  # canonical program -> seed track
    start_tick: int = 0            # continuation start in output ticks
    role_programs: dict[int, tuple[int, str]] = field(default_factory=dict)  # canonical -> (GM program, role)
    wanted: tuple[int, ...] = ()   # parts to encourage when they fall silent
    pc_profile: tuple[float, ...] = ()  # pitch-class distribution (12) the new notes lean toward
    seed_pcs: tuple[float, ...] = ()    # the sketch's own pitch-class distribution (duration-weighted)
    sketch_body: list[int] = field(default_factory=list)  # all the sketch's bars, also those the prompt drops


def _preset_parts(request: Request) -> dict[int, tuple[int, str]]:
    """Canonical program -> (real GM program, role) for the preset's melodic roles."""
    inst = request.preset.instruments
    parts: dict[int, tuple[int, str]] = {}
    if inst.lead is not None:
        parts[MELODY_PROGRAM] = (inst.lead, "lead")
    if inst.harmony is not None:
        parts.setdefault(canonical_program(inst.harmony, False, "harmony"), (inst.harmony, "harmony"))
    if inst.pad is not None:
        parts.setdefault(canonical_program(inst.pad, False, "pad"), (inst.pad, "pad"))
    if request.preset.style in ("chorale", "polyphony") and 0 not in parts and inst.harmony is not None:
        # inner voices: the model writes them as one accompaniment part in the voices' timbre
        # (only where the preset has a harmony role: a preset's roles are all it gets)
        parts[0] = (inst.harmony, "harmony")
    if inst.bass is not None and request.preset.style in MODEL_BASS_STYLES:
        # the model learned bass voices from chorales and polyphony; for other styles
        # the procedural arranger writes the bass over the model's chords
        parts[BASS_PROGRAM] = (inst.bass, "bass")
    return parts


def control_ids(layout, body: list[int], programs, density: float | None = None,
                polyphony: float | None = None) -> list[int]:
    """The controls of a version-3 prompt (:mod:`.layout`): the parts that may play, and the
    density and polyphony asked for (0-1 across the buckets), else the sketch's own (``body``);
    without either a kind is left out, and the model chooses."""
    from musegen.engines.symbolic.layout import DENSITY_EDGES, POLYPHONY_EDGES

    import numpy as np

    dens = poly = None
    if body:  # None, None for a body without notes
        dens, poly, _ = layout.controls_of(np.asarray(body, dtype=np.int64))
    if density is not None:
        dens = int(round(float(density) * len(DENSITY_EDGES)))
    if polyphony is not None:
        poly = int(round(float(polyphony) * len(POLYPHONY_EDGES)))
    return layout.controls(dens, poly, list(programs) or None)


def plan_prompt(request: Request, tokenizer, grammar, context: int, *, drums: bool = False, layout=None,
                density: float | None = None, polyphony: float | None = None,
                strip_drums: bool = False) -> PromptPlan:
    """The prompt and the parts the model may write for ``request``.

    ``drums``: the model learned drum parts (its checkpoint says so), so it continues a
    sketch's drums; otherwise the procedural drummer does (see :func:`build_outputs`).
    The model writes only the sketch's parts and the preset's melodic roles: with none
    of either (a drum-only sketch, a drums-only preset) it writes empty bars.  With a
    ``layout`` (a version-3 model) the prompt carries its controls (:func:`control_ids`).
    ``strip_drums``: the sketch's drums stay out of the prompt (a version-3 model writes
    drums in a sequence of their own, :mod:`.drums`, as it learned them).
    """
    from musegen.midi.analysis import scale_pitch_classes

    try:
        ts_id = grammar.timesig_id(request.meter)
    except KeyError:
        raise EngineError(
            f"the symbolic model does not know the meter {request.meter[0]}/{request.meter[1]}; "
            "use --engine procedural"
        ) from None
    cond = condition_tokens(tokenizer, request.preset.style, request.tonic, request.mode)
    key_pcs = frozenset(scale_pitch_classes(request.tonic, request.mode))
    preset_parts = _preset_parts(request)
    if request.seed is None:
        programs = tuple(sorted(preset_parts))
        # open the first bar with the meter and the tempo, so the model is conditioned on both
        body = [grammar.bar_id, ts_id, grammar.position_id(0), grammar.tempo_id(request.tempo_bpm)]
        profile = tuple((0.85 / len(key_pcs) if pc in key_pcs else 0.15 / (12 - len(key_pcs)))
                        for pc in range(12))
        if layout is not None:
            cond = cond + control_ids(layout, [], programs, density, polyphony)
        return PromptPlan(cond + body, body, 0, programs, key_pcs, {}, 0, preset_parts, wanted=programs,
                          pc_profile=profile)

    seed, analysis = request.seed, request.seed_analysis
    canon, pmap = canonicalize(seed, list(analysis.tracks))
    if strip_drums:
        for trk in canon.tracks:
            if trk.is_drum:
                trk.notes.clear()
    body = encode(tokenizer, canon)
    bar_id = grammar.bar_id
    start_tick = continuation_start(analysis)
    # bars before the continuation (the seed's grid); pad the prompt with empty bars up to it
    want_bars = sum(1 for b in analysis.bar_starts if b < start_tick)
    if want_bars == 0 and start_tick > 0:
        want_bars = max(1, round(start_tick / analysis.bar_ticks))
    have = sum(1 for t in body if t == bar_id)
    body = body + [bar_id, ts_id] * max(0, want_bars - have)
    sketch_body = body
    # keep the prompt inside the context
    body, dropped = drop_front_bars(body, bar_id, context * 3 // 4 - len(cond))
    prompt_bars = max(want_bars, have) - dropped
    seed_parts = {p for p in pmap.tracks if p != -1 or drums}
    if request.continue_only:
        programs = tuple(sorted(seed_parts))
    else:
        programs = tuple(sorted(seed_parts | set(preset_parts)))
    role_programs = dict(preset_parts)
    # every part of the sketch keeps playing; with generate, the preset's parts join in
    wanted = programs
    if layout is not None:
        cond = cond + control_ids(layout, sketch_body, programs, density, polyphony)
    return PromptPlan(cond + body, body, prompt_bars, programs, key_pcs, dict(pmap.tracks),
                      start_tick, role_programs, wanted=wanted, pc_profile=_seed_profile(seed, key_pcs),
                      seed_pcs=_seed_pcs(seed), sketch_body=sketch_body)


def drop_front_bars(body: list[int], bar_id: int, budget: int) -> tuple[list[int], int]:
    """``(body, dropped)``: whole bars dropped from the front of ``body`` until it fits ``budget``
    tokens (down to its last bar), and how many."""
    if len(body) <= budget:
        return body, 0
    bar_pos = [i for i, t in enumerate(body) if t == bar_id]
    keep_from = next((i for i in bar_pos if len(body) - i <= budget), bar_pos[-1] if bar_pos else 0)
    return body[keep_from:], sum(1 for i in bar_pos if i < keep_from)


def _seed_pcs(seed: Score) -> tuple[float, ...]:
    """The sketch's duration-weighted pitch-class distribution (empty without melodic notes)."""
    from musegen.midi.analysis import pitch_class_histogram

    h = pitch_class_histogram(seed)
    total = float(h.sum())
    return tuple(float(x) / total for x in h) if total > 0 else ()


def _seed_profile(seed: Score, key_pcs: frozenset[int]) -> tuple[float, ...]:
    """Duration-weighted pitch-class distribution of the sketch, blended with its key's scale."""
    from musegen.midi.analysis import pitch_class_histogram

    h = pitch_class_histogram(seed)
    total = float(h.sum())
    scale = [1.0 / len(key_pcs) if pc in key_pcs else 0.0 for pc in range(12)]
    if total <= 0:
        return tuple(scale)
    return tuple(0.7 * float(x) / total + 0.3 * s for x, s in zip(h, scale))


def _new_score(request: Request) -> Score:
    from musegen.engines.procedural.theory import key_signature

    s = Score(OUT_TPQ)
    s.tempos.append(Tempo(0, float(request.tempo_bpm)))
    s.time_signatures.append(TimeSignature(0, request.meter[0], request.meter[1]))
    sharps, minor = key_signature(request.tonic, request.mode)
    s.key_signatures.append(KeySignature(0, sharps, minor))
    return s


def _extract_new(score_tok: Score, plan: PromptPlan, meter, bars: int, out_tpq: int) -> dict[int, list[Note]]:
    """New notes per canonical program, moved to output ticks after ``plan.start_tick``.

    Notes are cut at the end of the requested bars so the result has exactly that length.
    """
    tpq = score_tok.ticks_per_quarter
    bar_tok = tpq * 4 * meter[0] // meter[1]
    origin = plan.prompt_bars * bar_tok
    ratio = out_tpq / tpq
    end = plan.start_tick + bars * (out_tpq * 4 * meter[0] // meter[1])
    out: dict[int, list[Note]] = {}
    for trk in score_tok.tracks:
        prog = -1 if trk.is_drum else int(trk.program)
        for n in trk.notes:
            if n.time < origin:
                continue
            t = plan.start_tick + int(round((n.time - origin) * ratio))
            if t >= end:
                continue
            d = max(1, min(int(round(n.duration * ratio)), end - t))
            out.setdefault(prog, []).append(Note(t, d, int(n.pitch), int(n.velocity)))
    return out


def build_outputs(request: Request, tokenizer, plan: PromptPlan, new_rows: list[list[int]], *,
                  accompany: bool, model_name: str, drums=None, added=None) -> list[EngineOutput]:
    """The request's scores: the sketch (or a new score) with the sampled notes in their parts.

    ``drums``: ``(DrumPlan, rows)``, the drum part the model wrote for each row (:mod:`.drums`);
    ``added``: per row, the parts the model wrote under the sketch (:func:`.parts.add_parts`).
    """
    outputs = []
    for v, new in enumerate(new_rows):
        try:
            score_tok = decode(tokenizer, plan.body + new)
        except Exception as exc:  # miditok raises assorted errors on malformed streams
            raise EngineError(f"the model's output could not be decoded: {exc}") from None
        base = request.seed.copy() if request.seed is not None else _new_score(request)
        out_tpq = base.ticks_per_quarter
        parts = _extract_new(score_tok, plan, request.meter, request.bars, out_tpq)
        written = {}
        for prog, notes in sorted(parts.items()):
            if prog in plan.part_map:
                trk = base.tracks[plan.part_map[prog]]
            else:
                if request.continue_only:
                    continue
                real, role = plan.role_programs.get(prog, (max(prog, 0), ROLE_NAMES.get(prog, "harmony")))
                trk = Track(name=role, program=int(real), is_drum=prog == -1)
                base.tracks.append(trk)
            for n in notes:
                trk.notes.append(n)
            written[prog] = len(notes)
        for role, real, prog, notes in (added[v] if added else []):
            trk = Track(name=role, program=int(real), is_drum=False)
            for n in notes:
                trk.notes.append(n)
            base.tracks.append(trk)
            written[prog] = written.get(prog, 0) + len(notes)
        info = {"model": model_name, "variation": v + 1, "tokens": len(new), "parts": written,
                "prompt_bars": plan.prompt_bars}
        if drums is not None:
            from musegen.engines.symbolic.drums import drum_notes

            dplan, drows = drums
            notes = drum_notes(tokenizer, dplan, drows[v], request.meter, out_tpq)
            if dplan.track is not None:
                trk = base.tracks[dplan.track]
            else:
                drum_program = request.preset.instruments.drums
                trk = Track(name="drums", program=int(drum_program or 0), is_drum=True)
                base.tracks.append(trk)
            for n in notes:
                trk.notes.append(n)
            info["model_drums"] = len(notes)
        elif -1 in plan.part_map and -1 not in plan.programs:
            # the sketch's drums go on, by the procedural drummer where the model learned none
            from musegen.engines.symbolic.accompany import continue_sketch_drums

            info["sketch_drums"] = continue_sketch_drums(base, request, variation=v)
        if accompany:
            from musegen.engines.symbolic.accompany import add_accompaniment

            info["accompaniment"] = add_accompaniment(base, request, plan.start_tick, written, variation=v)
        outputs.append(EngineOutput(score=base, info=info))
    return outputs


# -- best-of-K phrases -------------------------------------------------------------------

#: bars per ranked phrase: one bar, so the choices compound (each bar is picked knowing
#: the ones before it); on the validation pieces 1 bar kept the sketch's balance better than 2
RANK_PHRASE_BARS = 1
#: weight of the density term against the pitch-class overlap (both about 0-1); on 60
#: validation pieces with the shipped model, 0.3 against 0.1 brought the mean density ratio
#: from 1.46 to 1.29 for an overlap of 0.720 instead of 0.730
RANK_DENSITY_WEIGHT = 0.3


def note_stats(grammar, ids: list[int]) -> list[tuple[int, int, float]]:
    """(canonical program, pitch, duration in beats) of the melodic notes in REMI ids."""
    out, prog, pitch = [], None, None
    for t in ids:
        kind = grammar.kind[t]
        if kind == "Program":
            prog = grammar.prog_value[t]
        elif kind == "Pitch":
            pitch = int(grammar.pitch_value[t])
        elif kind == "PitchDrum":
            pitch = None
        elif kind == "Duration" and pitch is not None:
            beats, sub, res = (int(x) for x in grammar.value[t].split("."))
            out.append((prog, pitch, beats + sub / res))
            pitch = None
    return out


def _pc_weights(notes) -> list[float]:
    h = [0.0] * 12
    for _, pitch, dur in notes:
        h[pitch % 12] += dur
    return h


def phrase_score(grammar, chosen: list[int], cand: list[int], profile, per_bar: float | None,
                 bars: int, parts: frozenset[int] | None = None) -> float:
    """How well a candidate phrase continues the chosen ones: the overlap of the new music's
    pitch-class histogram (chosen + candidate, duration-weighted) with ``profile``, less
    ``RANK_DENSITY_WEIGHT`` times how far (log ratio) the candidate's notes per bar stray from
    ``per_bar`` (the sketch's; None: no density term).  ``parts``: judge only the notes of these
    parts (the sketch's own): parts a preset adds have no counterpart in the sketch, and their
    chord tones would otherwise count against every candidate in which they play."""
    def own(ids):
        return [n for n in note_stats(grammar, ids) if parts is None or n[0] in parts]

    new = own(cand)
    h = [a + b for a, b in zip(_pc_weights(own(chosen)), _pc_weights(new))]
    total = sum(h)
    score = sum(min(x / total, p) for x, p in zip(h, profile)) if total > 0 else 0.0
    if per_bar is not None:
        score -= RANK_DENSITY_WEIGHT * abs(math.log((len(new) / max(1, bars) + 1) / (per_bar + 1)))
    return score


def reprise_guides(grammar, plan: PromptPlan, bars: int, bias: float) -> list:
    """Per new bar, the :class:`.recall.RefBar` it restates (None: a free bar); empty without
    a reprise (``bias`` 0, or no sketch bars to restate)."""
    from musegen.engines.symbolic.recall import reference_bars, reprise_plan

    if bias <= 0 or plan.prompt_bars <= 0:
        return []
    ref = reference_bars(grammar, plan.sketch_body or plan.body)
    phrase, refs = reprise_plan(len(ref), bars)
    if not phrase:
        return []
    ref = ref[-phrase:]
    return [ref[r] if r is not None else None for r in refs]


def reprise_guide(grammar, plan: PromptPlan, bars: int, bias: float):
    """The :class:`.recall.Recall` of a one-pass sampling of ``bars`` new bars, or None."""
    from musegen.engines.symbolic.recall import Recall

    refs = reprise_guides(grammar, plan, bars, bias)
    return Recall(refs, bias) if refs else None


def sample_ranked(sampler, plan: PromptPlan, request: Request, settings, generator, *, candidates: int,
                  reprise: float = 0.0, progress=None) -> tuple[list[list[int]], list[list[int]]]:
    """New ids per variation, written phrase by phrase as the best of ``candidates`` samples.

    Each phrase (``RANK_PHRASE_BARS`` bars) is sampled ``candidates`` times as one batch; the
    one whose pitch content keeps the new music closest to ``plan.seed_pcs`` (the sketch's
    own tonal balance; ``plan.pc_profile`` without one) and whose density stays nearest the
    sketch's is kept, and the next phrase continues from it.  The prompt is fed once, into a
    one-row cache that each chosen phrase extends; every phrase's candidates start from copies
    of it.  Returns the ids and, per variation, the chosen candidate index of each phrase.
    With one candidate this is plain sampling in one pass.

    ``reprise`` > 0 restates the sketch (see :func:`reprise_guides`): in the bars that
    restate it, every candidate leans toward the sketch's bar by that logit bonus, and the
    ranking chooses among the variants.
    """
    from dataclasses import replace

    import numpy as np

    from musegen.engines.symbolic.recall import Recall

    if candidates <= 1:
        guide = reprise_guide(sampler.g, plan, request.bars, reprise)
        guides = [guide] * request.variations if guide else None
        new = sampler.sample([plan.prompt] * request.variations, bars=request.bars, meter=request.meter,
                             settings=settings, generator=generator, progress=progress, guides=guides)
        return new, [[] for _ in new]
    g = sampler.g
    refs = reprise_guides(g, plan, request.bars, reprise)
    seed_notes = note_stats(g, plan.body)
    parts = frozenset(plan.part_map)
    seed_bars = sum(1 for t in plan.body if t == g.bar_id)
    per_bar = None
    if request.seed is not None and seed_bars and any(p in parts for p, _, _ in seed_notes):
        per_bar = sum(1 for p, _, _ in seed_notes if p in parts) / seed_bars
    target = plan.seed_pcs or plan.pc_profile
    results, picks = [], []
    for v in range(request.variations):
        trunk = sampler.model.new_cache(1)
        logits = sampler.prefill(np.array([plan.prompt], dtype=np.int64), trunk)
        chosen: list[int] = []
        picked: list[int] = []
        done = 0
        while done < request.bars:
            n = min(RANK_PHRASE_BARS, request.bars - done)
            phrase_settings = settings
            if chosen and settings.wanted:
                # the sampler nudges parts that fell silent; it cannot see the bars before this
                # phrase, so only the parts silent in the last chosen bar count as fallen silent
                last_bar = chosen[max((i for i, t in enumerate(chosen) if t == g.bar_id), default=0):]
                playing = {p for p, _, _ in note_stats(g, last_bar)}
                phrase_settings = replace(settings, wanted=tuple(p for p in settings.wanted if p not in playing))
            step = _phrase_progress(progress, v, done, request)
            start = (trunk.repeat(candidates), np.repeat(logits, candidates, axis=0))
            guides = None
            if refs and any(r is not None for r in refs[done:done + n]):
                guides = [Recall(refs[done:done + n], reprise)] * candidates
            cands = sampler.sample([plan.prompt + chosen] * candidates, bars=n, meter=request.meter,
                                   settings=phrase_settings, generator=generator, progress=step, prefilled=start,
                                   guides=guides)
            scores = [phrase_score(g, chosen, c, target, per_bar, n, parts) for c in cands]
            best = max(range(candidates), key=lambda i: scores[i])
            if cands[best]:
                logits = sampler.prefill(np.array([cands[best]], dtype=np.int64), trunk)
            chosen += cands[best]
            picked.append(best)
            done += n
        results.append(chosen)
        picks.append(picked)
    return results, picks


def _phrase_progress(progress, v: int, done: int, request: Request):
    if progress is None:
        return None
    return lambda b, total, what: progress(min(request.bars, done + b), request.bars, what)
