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
from musegen.engines.options import Option, OptionSet

_LOCK = threading.Lock()

#: candidates per bar when continuing a sketch's own parts (without a sketch there is no
#: profile to rank by)
DEFAULT_CANDIDATES = 4
#: logit bonus of the tokens that restate the sketch, when continuing a sketch's own parts
#: (on 150 validation pieces, extending bars 1-8 by 8 bars: off 0.749 pitch-class overlap with
#: the true bars 9-16, 4 -> 0.780, 6 -> 0.790 against 0.788 for repeating the sketch; with 6,
#: 75% of the restated bars come out verbatim, the rest varied)
DEFAULT_REPRISE = 6.0
#: weight of the key's prior without a sketch (see :func:`.sampler.key_prior`): 16-bar pop-ballad
#: pieces, seeds 1-16, in the requested key: 3 without it, 15 at 1.0 (Eb major); A minor 6 -> 16
DEFAULT_TONAL_PRIOR = 1.0

#: the engine's options (``--option KEY=VALUE`` or a preset's ``[engine.options]``)
OPTIONS = OptionSet("symbolic", [
    Option("model", "path", None, "a checkpoint folder (from `musegen train` or a learned style; "
           "default the shipped model)"),
    Option("top_p", "float", 0.95, "nucleus sampling mass", range=(0, 1), open_low=True),
    Option("top_k", "int", 0, "sample from the k likeliest tokens (0 = off)", range=(0, 100_000)),
    Option("key_constraint", "bool", False, "melodic notes stay in the scale"),
    Option("tonal_prior", "float", None, "weight of a pitch-class prior: from the sketch's own notes, or "
           "without a sketch from the requested key's profile (its tonic, fifth and third first); default "
           f"{DEFAULT_TONAL_PRIOR:g} without a sketch, 0 = off with one", range=(0, 10)),
    Option("accompany", "bool", True, "procedural drums and bass where the preset has them and the model "
           "wrote none"),
    Option("accompany_from", "choice", "start", "where parts a preset adds to a sketch begin: with its first "
           "bar (start), or only after it (end)", choices=("start", "end")),
    Option("density", "float", None, "notes per bar, 0 (sparse) to 1 (dense), for models with controls "
           "(tokenizer version 3); default the sketch's own, or the model's choice", range=(0, 1)),
    Option("polyphony", "float", None, "notes per onset, 0 (single lines) to 1 (full chords), for models "
           "with controls; default the sketch's own, or the model's choice", range=(0, 1)),
    Option("drummer", "choice", None, "who plays the preset's drums: the model (default where it learned "
           "drums) or the procedural drummer", choices=("model", "procedural")),
    Option("accompany_parts", "choice", "arranger", "who writes accompany's bass and harmony: the arranger "
           "over chords read from the melody (default: on 7 held-out POP909 melodies 0.62 of their note-time "
           "on the labelled chords, the model's 0.48), or the model by part infilling (version-3 models)",
           choices=("arranger", "model")),
    Option("threads", "int", 1, "BLAS threads while sampling (small models are fastest on one)",
           range=(0, 256)),
    Option("candidates", "int", None, f"samples per bar, the one that keeps the sketch's pitch-class balance "
           f"and density best is kept; default the model's (its config's 'defaults'), else {DEFAULT_CANDIDATES}, "
           f"when continuing only the sketch's parts "
           f"(extend), else 1; with infill: samples of the whole gap, ranked by how likely the model finds the "
           f"bars after it (default 6)", range=(1, 16)),
    Option("reprise", "float", None, f"logit bonus of tokens restating the sketch's last phrase in alternate "
           f"sections (A A' B A''); default the model's (its config's 'defaults'), else {DEFAULT_REPRISE:g}, "
           f"when continuing only the sketch's parts "
           f"(extend), else 0 = off", range=(0, 10)),
])


class SymbolicEngine:
    """Embedded transformer engine (weights ship inside the package).

    Options: :data:`OPTIONS` (``musegen engines show symbolic``); the
    reprise is explained in :mod:`.recall`.
    """

    name = "symbolic"
    produces = "midi"
    OPTIONS = OPTIONS
    #: rewrites bars inside a sketch (``Request.infill``; see :mod:`.infill`)
    infills = True

    def __init__(self, model: str | os.PathLike[str] | None = None, **options: Any):
        OPTIONS.parse(options)  # refuses unknown names and bad values
        self.model_path = model
        self._loaded = None

    def _load(self, path):
        with _LOCK:
            key = str(path) if path is not None else None
            if self._loaded is None or self._loaded[0] != key:
                from musegen.engines.symbolic.checkpoint import load_runtime
                from musegen.engines.symbolic.sampler import ConstrainedSampler

                model, tokenizer, config = load_runtime(path)
                sampler = ConstrainedSampler(model, tokenizer)
                if config.get("extra_tokens"):  # tokenizer version 3: controls and infilling
                    from musegen.engines.symbolic.layout import Layout

                    sampler.layout = Layout(tokenizer)
                self._loaded = (key, model, tokenizer, config, sampler)
            return self._loaded[1:]

    def generate(self, request: Request, progress=None) -> list[EngineOutput]:
        return self.run_batch([self.prepare(request)], progress)[0]

    # -- batching (grouping and the fallback: musegen.engines.batching) ---------------------

    def prepare(self, request: Request) -> "_Job":
        """Load the model and plan the prompt and sampling settings; ``batch_key`` says who may share a call.

        Requests share a sampler call when they use the same model and threads,
        meter, bars, prompt length and sampling settings (a sweep over random
        seeds, say).  A request that ranks candidates bar by bar already samples
        a batch of its own, so it runs alone.
        """
        return self._setup(request)

    def max_rows(self, job: "_Job") -> None:
        return None  # the sampler takes any number of rows

    def run_batch(self, jobs: list["_Job"], progress=None) -> list[list[EngineOutput]]:
        """One request as :meth:`generate` samples it, or several of one ``batch_key`` as rows of one call.

        Every request keeps its own generator, seeded from its own
        ``random_seed`` as :meth:`generate` seeds it, so its outputs do not
        depend on the requests batched with it (up to float rounding in the
        model, which the batch size changes).  Each output's ``info["batch"]``
        says how many requests were sampled with it.
        """
        import numpy as np

        if len(jobs) == 1:
            if getattr(jobs[0], "request", None) is not None and jobs[0].request.infill is not None:
                return [jobs[0].run(progress)]
            return [self._generate_job(jobs[0], progress)]
        first = jobs[0]
        if first.request.bars == 0:   # accompany: no bars to sample (see _generate_job)
            return [job.outputs([[] for _ in range(job.request.variations)], batch=len(jobs)) for job in jobs]
        prompts, gens, rows_of, guides = [], [], [], []
        for job in jobs:
            req = job.request
            gen = np.random.default_rng(int(req.random_seed) % (2**63))
            rows_of.append(range(len(prompts), len(prompts) + req.variations))
            prompts += [job.plan.prompt] * req.variations
            gens += [gen] * req.variations  # one request's rows share its generator, as in generate()
            guides += [job.guide()] * req.variations
        with _blas_threads(first.threads):
            new = first.sampler.sample(prompts, bars=first.request.bars, meter=first.request.meter,
                                       settings=first.settings, generator=gens, progress=progress,
                                       guides=guides if any(guides) else None)
        return [job.outputs([new[r] for r in rows], batch=len(jobs)) for job, rows in zip(jobs, rows_of)]

    @staticmethod
    def _generate_job(job: "_Job", progress=None) -> list[EngineOutput]:
        import numpy as np

        from musegen.engines.symbolic.continuation import sample_ranked

        request = job.request
        if request.bars == 0:
            # accompany: the parts go under the sketch's own bars, and the shipped model writes
            # only after a prompt (it was not trained to fill a part in under given bars), so
            # the arranger writes them all over the sketch's chords (.accompany)
            return job.outputs([[] for _ in range(request.variations)])
        gen = np.random.default_rng(int(request.random_seed) % (2**63))
        with _blas_threads(job.threads):
            new, picks = sample_ranked(job.sampler, job.plan, request, job.settings, gen,
                                       candidates=job.candidates, reprise=job.reprise, progress=progress)
        return job.outputs(new, picks)

    def _setup(self, request: Request) -> "_Job":
        """Load the model and plan the prompt and the sampling settings of ``request``."""
        from musegen.engines.symbolic.continuation import plan_prompt
        from musegen.engines.symbolic.sampler import SampleSettings

        opts = OPTIONS.parse(request.options)
        model_key = opts.model if "model" in opts.given else self.model_path
        model, tokenizer, config, sampler = self._load(model_key)
        if request.infill is not None:
            return self._setup_infill(request, opts, model, tokenizer, config, sampler, model_key)
        from musegen.engines.symbolic.drums import plan_drums, wants_model_drums

        layout = sampler.layout
        # a version-3 model writes drums in a sequence of their own (.drums), as it learned them
        plan = plan_prompt(request, tokenizer, sampler.g, model.cfg.context,
                           drums=bool(config.get("drums", False)) and layout is None, layout=layout,
                           density=opts.density, polyphony=opts.polyphony, strip_drums=layout is not None)
        drum_plan = plan_drums(request, tokenizer, sampler.g, layout, model.cfg.context) \
            if wants_model_drums(request, config, layout, opts.drummer) else None
        top_p, top_k, tonal = opts.top_p, opts.top_k, opts.tonal_prior  # the sampler caps top_k at the vocabulary
        # ranking and the reprise judge and restate the sketch's own parts, so by default they
        # run only when continuing them (extend): where a preset adds parts, bars in which the
        # model gives those notes thin the sketch's parts and would lose, so they fall silent
        own_parts = request.seed is not None and request.continue_only
        settings = SampleSettings(
            temperature=request.temperature, top_p=top_p, top_k=top_k,
            key_pcs=plan.key_pcs if opts.key_constraint else None,
            programs=plan.programs,
            wanted=plan.wanted,
            pc_bias=_tonal_bias(request, plan, tonal),
        )
        chosen = model_defaults(config)
        job = _Job(request, plan, settings, sampler, tokenizer, config, str(model_key),
                   opts.threads, opts.accompany,
                   _or(opts.candidates, chosen.get("candidates", DEFAULT_CANDIDATES) if own_parts else 1),
                   float(_or(opts.reprise, chosen.get("reprise", DEFAULT_REPRISE) if own_parts else 0.0)))
        job.drum_plan = drum_plan
        from musegen.engines.symbolic.parts import wanted_roles

        job.part_roles = wanted_roles(request, layout) if opts.accompany_parts == "model" else []
        return job

    @staticmethod
    def _setup_infill(request, opts, model, tokenizer, config, sampler, model_key):
        """An :class:`.infill.InfillJob`: the gap's candidates, the prompt and the after-bars."""
        from musegen.engines.symbolic.card import model_card_info
        from musegen.engines.symbolic.infill import DEFAULT_CANDIDATES as GAP_CANDIDATES, InfillJob
        from musegen.engines.symbolic.sampler import SampleSettings

        settings = SampleSettings(temperature=request.temperature, top_p=opts.top_p, top_k=opts.top_k,
                                  key_pcs=None)
        card = model_card_info(config, None if model_key is None else str(model_key))
        job = InfillJob(request, sampler, tokenizer, config, model.cfg.context, settings,
                        int(_or(opts.candidates, GAP_CANDIDATES)), card, drums_ok=bool(config.get("drums", False)))
        if opts.key_constraint:
            job.settings.key_pcs = job.plan.key_pcs
        job.settings.pc_bias = job.tonal_bias(opts.tonal_prior)
        return job


class _Job:
    """One request made ready to sample: its prompt plan, settings and the loaded sampler."""

    def __init__(self, request, plan, settings, sampler, tokenizer, config, model_key, threads, accompany,
                 candidates, reprise):
        self.request, self.plan, self.settings, self.sampler = request, plan, settings, sampler
        self.tokenizer, self.config, self.model_key = tokenizer, config, model_key
        self.threads, self.accompany, self.candidates, self.reprise = threads, accompany, candidates, reprise
        self.drum_plan = None  # a .drums.DrumPlan where the model writes the drums
        self.part_roles: list[str] = []  # roles the model adds under the sketch (.parts)

    def drum_rows(self):
        """``(DrumPlan, rows)``: the drums of every variation, or None (seeded by the request alone)."""
        if self.drum_plan is None:
            return None
        import numpy as np

        from musegen.engines.symbolic.drums import sample_drums

        seed = int(self.request.random_seed) % (2**63)
        gens = [np.random.default_rng((seed, 0xD5, v)) for v in range(self.request.variations)]
        with _blas_threads(self.threads):
            return self.drum_plan, sample_drums(self.sampler, self.drum_plan, self.request, gens)

    def added_parts(self):
        """Per variation, the parts the model writes under the sketch (accompany), or None."""
        if not self.part_roles:
            return None
        import numpy as np

        from musegen.engines.symbolic.parts import add_parts

        seed = int(self.request.random_seed) % (2**63)
        gens = [np.random.default_rng((seed, 0xA7, v)) for v in range(self.request.variations)]
        with _blas_threads(self.threads):
            return add_parts(self.sampler, self.tokenizer, self.request, self.part_roles, gens,
                             self.sampler.model.cfg.context)

    def guide(self):
        """The :class:`.recall.Recall` of a one-pass (one candidate) sampling, or None."""
        from musegen.engines.symbolic.continuation import reprise_guide

        return reprise_guide(self.sampler.g, self.plan, self.request.bars, self.reprise)

    @property
    def rows(self) -> int:
        return self.request.variations

    @property
    def batch_key(self) -> tuple | None:
        """Requests with equal keys can be rows of one ``ConstrainedSampler.sample`` call; ``None``: alone."""
        if self.candidates != 1:  # ranking candidates bar by bar samples a batch of its own
            return None
        s, r = self.settings, self.request
        pc_bias = None if s.pc_bias is None else tuple(float(x) for x in s.pc_bias)
        return (self.model_key, self.threads, r.meter, r.bars, len(self.plan.prompt), s.temperature, s.top_k,
                s.top_p, s.key_pcs, s.programs, s.wanted, s.part_bias, pc_bias)

    def outputs(self, new_rows: list[list[int]], picks: list[list[int]] | None = None,
                batch: int = 1) -> list[EngineOutput]:
        """The request's results from its sampled rows; ``picks``: the chosen candidate per bar of each."""
        from musegen.engines.symbolic.continuation import build_outputs

        outs = build_outputs(self.request, self.tokenizer, self.plan, new_rows, accompany=self.accompany,
                             model_name=str(self.config.get("name", "musegen-symbolic")), drums=self.drum_rows(),
                             added=self.added_parts())
        from musegen.engines.symbolic.card import model_card_info

        card = model_card_info(self.config, None if self.model_key == "None" else self.model_key)
        for i, out in enumerate(outs):
            out.info.update(candidates=self.candidates, reprise=self.reprise, batch=batch, **card)
            if picks and picks[i]:
                out.info["phrase_picks"] = picks[i]
        return outs


def _tonal_bias(request: Request, plan, weight: float | None):
    """``SampleSettings.pc_bias`` of ``request``, or None.

    Without a sketch, the requested key's profile (:func:`.sampler.key_prior`; the model's
    key token alone lets a piece drift: 3 of 16 16-bar pop-ballad pieces asked in Eb major
    came out in it); with one, the sketch's own pitch-class balance, only when asked for.
    """
    import numpy as np

    from musegen.engines.symbolic.sampler import key_prior

    if request.seed is None:
        weight = DEFAULT_TONAL_PRIOR if weight is None else weight
        return key_prior(request.tonic, request.mode, weight) if weight else None
    return np.log(np.asarray(plan.pc_profile) + 0.03) * weight if weight else None


def model_defaults(config: dict) -> dict:
    """The continuation settings a checkpoint's ``config.json`` chose on the validation split
    (``"defaults": {"candidates": ..., "reprise": ...}``), checked; {} where it has none."""
    got = config.get("defaults")
    if not isinstance(got, dict):
        return {}
    out = {}
    for key, lo, hi, kind in (("candidates", 1, 16, int), ("reprise", 0.0, 10.0, float)):
        value = got.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi:
            out[key] = kind(value)
    return out


def _or(value, default):
    """``value``, or ``default`` where the option was left to the engine (``None``)."""
    return default if value is None else value


@contextlib.contextmanager
def _blas_threads(n: int):
    """Small models decode fastest on one thread (two collapse when the other core is busy)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, n), user_api="blas"):
        yield
