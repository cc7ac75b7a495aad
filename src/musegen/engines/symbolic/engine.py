"""The ``symbolic`` engine: the embedded music transformer behind generate/extend.

The model writes the melodic parts (lead, harmony, bass where it has them);
where a preset asks for drums (or a bass the model did not write), the
procedural engine arranges them over the model's own chords.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from musegen.engines.base import EngineOutput, Request
from musegen.errors import ParameterError, check_range

_LOCK = threading.Lock()


class SymbolicEngine:
    """Embedded transformer engine (weights ship inside the package).

    Options (``--option KEY=VALUE`` or a preset's ``[engine.options]``):
    ``model`` (a checkpoint folder; default the shipped one), ``top_p``
    (0.95), ``top_k`` (0 = off), ``key_constraint`` (true: melodic notes stay
    in the scale), ``tonal_prior`` (0: weight of a pitch-class prior from the
    sketch's own notes, or from the key's scale without a sketch; 0 turns it
    off), ``accompany`` (true: procedural drums/bass where the preset has them
    and the model wrote none), ``candidates`` (1-16; default 4 when continuing
    only the sketch's parts, as ``extend`` does, else 1: each bar is sampled
    that many times and the one that keeps the sketch's pitch-class balance
    and density best is kept), ``reprise`` (0-10; default 6 when continuing
    only the sketch's parts, else 0: the continuation restates the sketch's
    last phrase, varied, in alternate sections (A A' B A'' ...); the value is
    the logit bonus of the tokens that restate it, 0 turns it off; see
    :mod:`.recall`).
    """

    name = "symbolic"
    produces = "midi"
    OPTIONS = {"model", "top_p", "top_k", "key_constraint", "accompany", "threads", "tonal_prior", "candidates",
               "reprise"}

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
                from musegen.engines.symbolic.checkpoint import load_runtime
                from musegen.engines.symbolic.sampler import ConstrainedSampler

                model, tokenizer, config = load_runtime(path)
                self._loaded = (key, model, tokenizer, config, ConstrainedSampler(model, tokenizer))
            return self._loaded[1:]

    def generate(self, request: Request, progress=None) -> list[EngineOutput]:
        return self._generate_job(self._setup(request), progress)

    @staticmethod
    def _generate_job(job: "_Job", progress=None) -> list[EngineOutput]:
        import numpy as np

        from musegen.engines.symbolic.continuation import sample_ranked

        request = job.request
        gen = np.random.default_rng(int(request.random_seed) % (2**63))
        with _blas_threads(job.threads):
            new, picks = sample_ranked(job.sampler, job.plan, request, job.settings, gen,
                                       candidates=job.candidates, reprise=job.reprise, progress=progress)
        return job.outputs(new, picks)

    def generate_many(self, requests: list[Request], progress=None) -> list[list[EngineOutput]]:
        """Outputs of several requests, those that can share a sampler call sampled as one batch.

        Requests share a call when they use the same model and threads, meter,
        bars, prompt length and sampling settings (a sweep over random seeds,
        say).  Every request keeps its own generator, seeded from its own
        ``random_seed`` as :meth:`generate` seeds it, so its outputs do not
        depend on the requests batched with it (up to float rounding in the
        model, which the batch size changes).  Each output's ``info["batch"]``
        says how many requests were sampled with it.
        """
        import numpy as np

        jobs = [self._setup(r) for r in requests]
        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            # a request ranking candidates bar by bar already samples a batch of its own
            groups.setdefault(job.batch_key() if job.candidates == 1 else ("alone", i), []).append(i)
        results: list[list[EngineOutput] | None] = [None] * len(requests)
        done = 0
        for members in groups.values():
            first = jobs[members[0]]
            if first.candidates > 1:
                results[members[0]] = self._generate_job(first)
                done += 1
                continue
            prompts, gens, rows_of, guides = [], [], [], []
            for i in members:
                req = requests[i]
                gen = np.random.default_rng(int(req.random_seed) % (2**63))
                rows_of.append(range(len(prompts), len(prompts) + req.variations))
                prompts += [jobs[i].plan.prompt] * req.variations
                gens += [gen] * req.variations  # one request's rows share its generator, as in generate()
                guides += [jobs[i].guide()] * req.variations

            def step(d, total, msg, _done=done, _n=len(members)):
                if progress is not None:
                    progress(_done + _n * d / max(total, 1e-9), len(requests), msg)

            with _blas_threads(first.threads):
                new = first.sampler.sample(prompts, bars=first.request.bars, meter=first.request.meter,
                                           settings=first.settings, generator=gens, progress=step,
                                           guides=guides if any(guides) else None)
            for i, rows in zip(members, rows_of):
                results[i] = jobs[i].outputs([new[r] for r in rows], batch=len(members))
            done += len(members)
        return results  # type: ignore[return-value]

    def _setup(self, request: Request) -> "_Job":
        """Load the model and plan the prompt and the sampling settings of ``request``."""
        import numpy as np

        from musegen.engines.symbolic.continuation import plan_prompt
        from musegen.engines.symbolic.sampler import SampleSettings

        opts = request.options
        model_key = opts.get("model", self.model_path)
        model, tokenizer, config, sampler = self._load(model_key)
        plan = plan_prompt(request, tokenizer, sampler.g, model.cfg.context, drums=bool(config.get("drums", False)))
        top_p = float(_option(opts, "top_p", 0.95, 0, 1))
        if top_p == 0:
            raise ParameterError("top_p must be greater than 0, got 0")
        top_k = _option(opts, "top_k", 0, 0, sampler.g.V, integer=True)
        tonal = float(_option(opts, "tonal_prior", 0.0, 0, 10))
        # ranking and the reprise judge and restate the sketch's own parts, so by default they
        # run only when continuing them (extend): where a preset adds parts, bars in which the
        # model gives those notes thin the sketch's parts and would lose, so they fall silent
        own_parts = request.seed is not None and request.continue_only
        settings = SampleSettings(
            temperature=request.temperature, top_p=top_p, top_k=top_k,
            key_pcs=plan.key_pcs if _truthy(opts.get("key_constraint", False)) else None,
            programs=plan.programs,
            wanted=plan.wanted,
            pc_bias=np.log(np.asarray(plan.pc_profile) + 0.03) * tonal if tonal else None,
        )
        return _Job(request, plan, settings, sampler, tokenizer, config, str(model_key),
                    _option(opts, "threads", 1, 0, 256, integer=True), _truthy(opts.get("accompany", True)),
                    _option(opts, "candidates", DEFAULT_CANDIDATES if own_parts else 1, 1, 16, integer=True),
                    float(_option(opts, "reprise", DEFAULT_REPRISE if own_parts else 0.0, 0, 10)))


class _Job:
    """One request made ready to sample: its prompt plan, settings and the loaded sampler."""

    def __init__(self, request, plan, settings, sampler, tokenizer, config, model_key, threads, accompany,
                 candidates, reprise):
        self.request, self.plan, self.settings, self.sampler = request, plan, settings, sampler
        self.tokenizer, self.config, self.model_key = tokenizer, config, model_key
        self.threads, self.accompany, self.candidates, self.reprise = threads, accompany, candidates, reprise

    def guide(self):
        """The :class:`.recall.Recall` of a one-pass (one candidate) sampling, or None."""
        from musegen.engines.symbolic.continuation import reprise_guide

        return reprise_guide(self.sampler.g, self.plan, self.request.bars, self.reprise)

    def batch_key(self) -> tuple:
        """Requests with equal keys can be rows of one ``ConstrainedSampler.sample`` call."""
        s, r = self.settings, self.request
        pc_bias = None if s.pc_bias is None else tuple(float(x) for x in s.pc_bias)
        return (self.model_key, self.threads, r.meter, r.bars, len(self.plan.prompt), s.temperature, s.top_k,
                s.top_p, s.key_pcs, s.programs, s.wanted, s.part_bias, pc_bias)

    def outputs(self, new_rows: list[list[int]], picks: list[list[int]] | None = None,
                batch: int = 1) -> list[EngineOutput]:
        """The request's results from its sampled rows; ``picks``: the chosen candidate per bar of each."""
        from musegen.engines.symbolic.continuation import build_outputs

        outs = build_outputs(self.request, self.tokenizer, self.plan, new_rows, accompany=self.accompany,
                             model_name=str(self.config.get("name", "musegen-symbolic")))
        for i, out in enumerate(outs):
            out.info.update(candidates=self.candidates, reprise=self.reprise, batch=batch)
            if picks and picks[i]:
                out.info["phrase_picks"] = picks[i]
        return outs


#: candidates per bar when continuing a sketch's own parts (without a sketch there is no
#: profile to rank by)
DEFAULT_CANDIDATES = 4
#: logit bonus of the tokens that restate the sketch, when continuing a sketch's own parts
#: (on 150 validation pieces, extending bars 1-8 by 8 bars: off 0.749 pitch-class overlap with
#: the true bars 9-16, 4 -> 0.780, 6 -> 0.790 against 0.788 for repeating the sketch; with 6,
#: 75% of the restated bars come out verbatim, the rest varied)
DEFAULT_REPRISE = 6.0


def _option(opts: dict, key: str, default, lo: float, hi: float, *, integer: bool = False):
    """Engine option ``key`` checked to lie in ``[lo, hi]``, or ``default`` when not given."""
    value = opts.get(key)
    return default if value is None else check_range(key, value, lo, hi, integer=integer)


@contextlib.contextmanager
def _blas_threads(n: int):
    """Small models decode fastest on one thread (two collapse when the other core is busy)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, n), user_api="blas"):
        yield


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)

