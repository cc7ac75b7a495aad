"""The ``symbolic`` engine: the embedded music transformer behind generate/extend.

The model writes the melodic parts (lead, harmony, bass where it has them);
where a preset asks for drums (or a bass the model did not write), the
procedural engine arranges them over the model's own chords.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from musegen.engines.base import EngineOutput, Request
from musegen.errors import ParameterError

_LOCK = threading.Lock()


class SymbolicEngine:
    """Embedded transformer engine (weights ship inside the package).

    Options (``--option KEY=VALUE`` or a preset's ``[engine.options]``):
    ``model`` (a checkpoint folder; default the shipped one), ``top_p``
    (0.95), ``top_k`` (0 = off), ``key_constraint`` (true: melodic notes stay
    in the scale), ``tonal_prior`` (0: weight of a pitch-class prior from the
    sketch's own notes, or from the key's scale without a sketch; 0 turns it
    off), ``accompany`` (true: procedural drums/bass where the preset has them
    and the model wrote none), ``candidates`` (1-16; default 4 after a sketch,
    1 without: each bar is sampled that many times and the one that
    keeps the sketch's pitch-class balance and density best is kept).
    """

    name = "symbolic"
    produces = "midi"
    OPTIONS = {"model", "top_p", "top_k", "key_constraint", "accompany", "threads", "tonal_prior", "candidates"}

    def __init__(self, model: str | os.PathLike[str] | None = None, **options: Any):
        unknown = set(options) - self.OPTIONS
        if unknown:
            raise ParameterError(f"unknown option(s) for engine 'symbolic': {', '.join(sorted(unknown))}")
        self.model_path = model
        self._loaded = None

    def _load(self, path):
        with _LOCK:
            key = str(path) if path is not None else None
            if self._loaded is None or self._loaded[0] != key:
                from musegen.engines.symbolic.checkpoint import load_checkpoint
                from musegen.engines.symbolic.sampler import ConstrainedSampler

                model, tokenizer, config = load_checkpoint(path)
                self._loaded = (key, model, tokenizer, config, ConstrainedSampler(model, tokenizer))
            return self._loaded[1:]

    def generate(self, request: Request, progress=None) -> list[EngineOutput]:
        import torch

        from musegen.engines.symbolic.continuation import build_outputs, plan_prompt, sample_ranked
        from musegen.engines.symbolic.sampler import SampleSettings

        opts = request.options
        model, tokenizer, config, sampler = self._load(opts.get("model", self.model_path))
        plan = plan_prompt(request, tokenizer, sampler.g, model.cfg.context)
        top_p = float(opts.get("top_p", 0.95))
        top_k = int(opts.get("top_k", 0))
        if not 0 < top_p <= 1:
            raise ParameterError(f"top_p must be in (0, 1], got {top_p!r}")
        if top_k < 0:
            raise ParameterError(f"top_k must be >= 0, got {top_k!r}")
        tonal = float(opts.get("tonal_prior", 0.0))
        if not 0 <= tonal <= 10:
            raise ParameterError(f"tonal_prior must be between 0 and 10, got {tonal!r}")
        candidates = _candidates(opts.get("candidates"), request)
        settings = SampleSettings(
            temperature=request.temperature, top_p=top_p, top_k=top_k,
            key_pcs=plan.key_pcs if _truthy(opts.get("key_constraint", False)) else None,
            programs=plan.programs,
            wanted=plan.wanted,
            pc_bias=torch.log(torch.as_tensor(plan.pc_profile) + 0.03) * tonal if tonal else None,
        )
        gen = torch.Generator().manual_seed(int(request.random_seed) % (2**63))
        threads = torch.get_num_threads()
        # small models decode fastest on one thread (two collapse when the other core is busy)
        torch.set_num_threads(int(opts.get("threads", 1)))
        try:
            new, picks = sample_ranked(sampler, plan, request, settings, gen, candidates=candidates,
                                       context=model.cfg.context, progress=progress)
        finally:
            torch.set_num_threads(threads)
        outputs = build_outputs(request, tokenizer, plan, new, accompany=_truthy(opts.get("accompany", True)),
                                model_name=str(config.get("name", "musegen-symbolic")))
        for out, picked in zip(outputs, picks):
            out.info["candidates"] = candidates
            if picked:
                out.info["phrase_picks"] = picked
        return outputs


#: candidates per phrase after a sketch (without one there is no sketch profile to rank by)
DEFAULT_CANDIDATES = 4


def _candidates(value: Any, request: Request) -> int:
    if value is None:
        return DEFAULT_CANDIDATES if request.seed is not None else 1
    try:
        k = int(value)
        ok = not isinstance(value, bool) and k == float(value) and 1 <= k <= 16
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ParameterError(f"candidates must be a whole number from 1 to 16, got {value!r}")
    return k


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)

