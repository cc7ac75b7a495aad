"""Drum parts written by the model (a version-3 model that learned drums).

The model learned drums from the Groove performances, where the kit plays
alone, so it writes a drum part as a sequence of its own (``STYLE_drums``,
``PART_-1``) in the request's tempo and meter, bar for bar beside the
melodic parts: it continues a sketch's drums from the sketch's own drum
notes, and otherwise starts a groove with the sketch's first bar (or after
the sketch, ``accompany_from = "end"``).  The procedural drummer stays the
fallback (``--option drummer=procedural``, or a model without drums).
"""

from __future__ import annotations

from dataclasses import dataclass

from symusic import Note

from musegen.engines.base import Request, continuation_start
from musegen.engines.symbolic.continuation import drop_front_bars
from musegen.engines.symbolic.tokens import canonicalize, condition_tokens, encode


@dataclass
class DrumPlan:
    prompt: list[int]
    body: list[int]          # the REMI part of the prompt
    prompt_bars: int         # bars of ``body`` before the drums to write
    bars: int                # bars to write
    start_tick: int          # where the written bars begin, in output ticks
    track: int | None        # the sketch's drum track the notes go into, or None: a new track


def wants_model_drums(request: Request, config: dict, layout, drummer: str | None) -> bool:
    """True where the model writes the drums: it learned them, has controls, and drums are wanted."""
    if layout is None or not config.get("drums", False) or drummer == "procedural":
        return False
    inst = request.preset.instruments
    preset_drums = inst.drums is not None and request.preset.groove.drum_pattern != "none"
    if request.seed is None:
        return preset_drums and not request.continue_only
    sketch_drums = any(t.is_drum and len(t.notes) for t in request.seed.tracks)
    if request.continue_only:
        return sketch_drums
    if request.add_roles is not None:  # accompany: only where drums are asked for
        return "drums" in request.add_roles and not sketch_drums
    return sketch_drums or preset_drums


def plan_drums(request: Request, tokenizer, grammar, layout, context: int) -> DrumPlan:
    """The prompt of the drum part of ``request`` (see the module docstring)."""
    from musegen.engines.procedural.sketch import accompany_from

    cond = condition_tokens(tokenizer, "drums", request.tonic, request.mode) + layout.controls(None, None, [-1])
    ts_id = grammar.timesig_id(request.meter)
    opening = [grammar.bar_id, ts_id, grammar.position_id(0), grammar.tempo_id(request.tempo_bpm)]
    if request.seed is None:
        return DrumPlan(cond + opening, opening, 0, request.bars, 0, None)
    analysis = request.seed_analysis
    start_tick = continuation_start(analysis)
    sketch_bars = sum(1 for b in analysis.bar_starts if b < start_tick)
    if sketch_bars == 0 and start_tick > 0:
        sketch_bars = max(1, round(start_tick / analysis.bar_ticks))
    canon, pmap = canonicalize(request.seed, list(analysis.tracks))
    if -1 not in pmap.tracks:  # no drums in the sketch: a groove of its own
        if accompany_from(request.options) == "start" and not request.continue_only:
            return DrumPlan(cond + opening, opening, 0, sketch_bars + request.bars, 0, None)
        return DrumPlan(cond + opening, opening, 0, request.bars, start_tick, None)
    for trk in canon.tracks:  # the drums alone, as the model learned them
        if not trk.is_drum:
            trk.notes.clear()
    body = encode(tokenizer, canon)
    have = sum(1 for t in body if t == grammar.bar_id)
    body = body + [grammar.bar_id, ts_id] * max(0, sketch_bars - have)
    body, dropped = drop_front_bars(body, grammar.bar_id, context * 3 // 4 - len(cond))
    return DrumPlan(cond + body, body, max(sketch_bars, have) - dropped, request.bars, start_tick,
                    pmap.tracks[-1])


def sample_drums(sampler, plan: DrumPlan, request: Request, generators) -> list[list[int]]:
    """The drum rows of every variation (one generator per variation)."""
    from musegen.engines.symbolic.sampler import SampleSettings

    settings = SampleSettings(temperature=request.temperature, programs=(-1,), wanted=(-1,))
    return sampler.sample([plan.prompt] * len(generators), bars=plan.bars, meter=request.meter,
                          settings=settings, generator=list(generators))


def drum_notes(tokenizer, plan: DrumPlan, new: list[int], meter: tuple[int, int], out_tpq: int) -> list[Note]:
    """The written drum notes in output ticks, cut at the end of the plan's bars."""
    from musegen.engines.symbolic.continuation import _extract_new
    from musegen.engines.symbolic.tokens import decode

    return _extract_new(decode(tokenizer, plan.body + new), plan, meter, plan.bars, out_tpq).get(-1, [])
