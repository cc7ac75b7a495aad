"""The ``musicgen`` engine: preset + prompt (+ MIDI seed, + audio prompt) -> audio.

The text prompt is the preset's description plus the user's words.  A MIDI
seed conditions MusicGen-Melody through its chroma (computed from the notes);
with plain MusicGen it is rendered and continued as an audio prompt.  An audio
prompt (``--audio-prompt clip.wav``) is continued by either model.  Results
longer than the model's window are generated window by window (AudioCraft's
extend stride); variations are sampled together as one batch, and in batch
runs requests of one :meth:`MusicGenEngine.prepare` key share a decoding pass
(:mod:`musegen.engines.batching`) while each request draws from its own generator.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import platform
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from musegen.engines.base import EngineOutput, Request, continuation_start
from musegen.engines.musicgen.chroma import PARTS as CHROMA_PARTS
from musegen.engines.options import Option, OptionSet, Values
from musegen.errors import EngineError, ParameterError

_LOCK = threading.Lock()
log = logging.getLogger(__name__)
MIDI_MODES = ("melody", "prompt", "none")
#: the default extend stride as a share of the window (AudioCraft's 18 s of 30)
STRIDE_OF_WINDOW = 0.6
CHROMA_SOURCES = ("midi", "audio")


def _check_across(v: Values) -> None:
    if v.extend_stride is not None and not v.extend_stride < v.window:
        raise ParameterError(f"engine 'musicgen' option extend_stride must be less than the window "
                             f"({v.window:g} s), got {v.extend_stride!r}")


#: the engine's options (``--option KEY=VALUE`` or a preset's ``[engine.options]``)
OPTIONS = OptionSet("musicgen", [
    Option("model", "path", None, "model folder or hub id in the local cache (default facebook/musicgen-small)"),
    Option("device", "str", "auto", "auto (CUDA, then MPS, else the CPU), cpu, cuda, cuda:N or mps"),
    Option("dtype", "choice", "auto", "the language model's dtype; auto: float16 on GPUs, float32 on the CPU",
           choices=("auto", "float32", "float16", "bfloat16")),
    Option("guidance_scale", "float", 3.0, "classifier-free guidance of the text prompt", range=(0, 50),
           aliases=("guidance",)),
    Option("top_k", "int", 250, "sample from the k likeliest codes (0 = off)", range=(0, 100_000)),
    Option("top_p", "float", 0.0, "nucleus sampling mass (0 = off)", range=(0, 1)),
    Option("audio_prompt", "path", None, "an audio clip to continue (--audio-prompt)"),
    Option("midi_mode", "choice", None, "what a MIDI seed becomes: melody (chroma, MusicGen-Melody), prompt "
           "(rendered and continued) or none; default melody with MusicGen-Melody, else prompt",
           choices=MIDI_MODES, nullable=True),
    Option("chroma_source", "choice", "midi", "melody chroma from the seed's notes or from its rendered audio",
           choices=CHROMA_SOURCES),
    Option("chroma_parts", "choice", "melodic", "the seed's parts the chroma is taken from",
           choices=CHROMA_PARTS),
    Option("window", "float", 30.0, "seconds the model generates at once", range=(1, 60)),
    Option("extend_stride", "float", None, "seconds a window advances by in long results, below window "
           "(default 0.6 x window: 18 s of 30)", range=(0, 60), open_low=True),
    Option("decoder", "choice", "fast", "fast (musegen's loop, per-request generators) or stock "
           "(transformers' generate())", choices=("fast", "stock")),
    Option("kernels", "choice", "auto", "the fast decoder's arithmetic; auto: native on x86 CPUs in float32, "
           "fused on other CPUs or when native cannot be built, exact elsewhere",
           choices=("auto", "exact", "fused", "native")),  # fast.KERNELS + auto, without importing torch
    Option("batch_size", "int", 4, "rows (variations, requests) decoded in one pass", range=(1, 64)),
    Option("prompts", "list[str]", (), "extra words per variation"),
    Option("decode_chunk", "float", 40.0, "seconds of audio decoded at once", range=(2, 600)),
    Option("transcribe", "bool", False, "a basic-pitch MIDI of the audio when there is no seed"),
    Option("threads", "int", 0, "torch CPU threads (0 = torch's default)", range=(0, 1024)),
], check=_check_across)


def _pick_kernels(requested: str, mg) -> str:
    """The decoder's kernels for ``requested`` on this model's device and dtype.

    ``auto`` is ``native`` on x86 CPUs in float32 (built on first use, said
    in a log line), ``fused`` there when the compiled step cannot be built
    (a warning names why) or was built without vector products (no AVX2) and
    on other CPUs, and ``exact`` on GPUs and in other dtypes.  ``native`` asked for by name
    must build, or the run stops with the reason.
    """
    import torch

    from musegen.engines.musicgen import native

    cpu32 = mg.device == "cpu" and mg.dtype == torch.float32
    if requested == "auto" and not cpu32:
        return "exact"
    if requested not in ("auto", "native") or mg.device != "cpu":
        return requested
    if requested == "auto" and platform.machine().lower() not in ("x86_64", "amd64"):
        # step.cpp's vector products are x86's; elsewhere torch's own products are faster
        log.info("musicgen: the compiled step is for x86 CPUs, this is %s; decoding with kernels=fused",
                 platform.machine() or "another CPU")
        return "fused"
    if requested == "native":
        native.load()
        return "native"
    try:
        if not native.load().simd():  # built without vector products (not x86 with AVX2): MKL is faster
            log.info("musicgen: the compiled step has no vector products for this CPU; decoding with kernels=fused")
            return "fused"
        return "native"
    except EngineError:
        log.warning("musicgen: kernels=native is unavailable here (%s); decoding with kernels=fused. "
                    "A C++ compiler and ninja (pip install ninja) make it available.", native.failure_reason())
        return "fused"


def _sha256(path) -> str:
    """The hex SHA-256 of a file's bytes, read in blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MusicGenEngine:
    """MusicGen / MusicGen-Melody through transformers (weights are the user's; CC-BY-NC for Meta's).

    Options: :data:`OPTIONS` (``musegen engines show musicgen``).
    """

    name = "musicgen"
    produces = "audio"
    OPTIONS = OPTIONS
    #: the call's inputs it uses beyond the preset (others are named as ignored by the pipeline)
    inputs = frozenset({"prompt", "audio_prompt"})

    def __init__(self, model: str | None = None, **options: Any):
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            raise EngineError("engine 'musicgen' needs torch and transformers; "
                              "install them with: pip install 'musegen[musicgen]'")
        self.default_model = model
        self.default_options = OPTIONS.parse(options) if options else None
        self._loaded: dict[tuple, Any] = {}

    # -- model --------------------------------------------------------------------------

    def load(self, spec: str | None, *, device: str = "auto", dtype: str = "auto"):
        """The :class:`~musegen.engines.musicgen.model.MusicGenModel` for ``spec`` (loaded once)."""
        from musegen.engines.musicgen.model import MusicGenModel, pick_device, pick_dtype
        from musegen.engines.musicgen.resolve import resolve_model

        resolved = resolve_model(spec)
        dev = pick_device(device)
        dt = pick_dtype(dtype, dev)
        key = (str(resolved.path), dev, str(dt))
        with _LOCK:
            if key not in self._loaded:
                self._loaded.clear()  # one model in memory at a time
                self._loaded[key] = MusicGenModel.load(resolved, device=dev, dtype=dt)
            return self._loaded[key]

    # -- generation -----------------------------------------------------------------------

    def generate(self, request: Request, progress=None) -> list[EngineOutput]:
        return self.run_batch([self.prepare(request)], progress)[0]

    # -- batching (grouping and the fallback: musegen.engines.batching) ---------------------

    def prepare(self, request: Request) -> "_Prepared":
        """The request set up on its model; ``batch_key`` says which requests may share a decoding pass.

        Requests share a pass when they use the same model, device and dtype,
        the fast decoder with the same kernels and threads, the same length
        and window plan, the same sampling settings, and the same kind of
        conditioning: text only, the same melody (chroma), or audio prompts
        of the same length; their text prompts may differ.  A request runs
        alone when it has more variations than ``batch_size`` (alone it spans
        several passes, one generator after the other), uses ``decoder=stock``
        (transformers' ``generate()`` draws every row from the one global
        generator), or its device has no seedable generator.
        """
        opts = OPTIONS.parse(dict(request.options))
        mg = self._model_for(opts)
        with mg.lock:
            job = self._setup(request, opts, mg)
            key = job.batch_key(mg)
        return _Prepared(job, mg, None if key is None else (self._model_key(opts), key))

    def max_rows(self, prepared: "_Prepared") -> int:
        return prepared.job.opts.batch_size

    def run_batch(self, batch: list["_Prepared"], progress=None) -> list[list[EngineOutput]]:
        """One request alone (in passes of up to ``batch_size`` rows), or several of one key in one pass.

        Every request keeps its own generator, seeded from its ``random_seed``
        as :meth:`generate` seeds it, and its rows draw from it in a sampling
        call of their own, so its codes do not depend on its neighbours (up to
        float rounding, which the batch size can change; with ``kernels=exact``
        on the CPU it does not).  Each output's ``info["batch"]`` says how many
        requests shared its pass.
        """
        mg = batch[0].mg
        chunks = _solo_passes(batch[0].job) if len(batch) == 1 else [[(p.job, p.job.texts) for p in batch]]
        with mg.lock:  # one generation at a time per loaded model (it owns one key/value cache)
            return self._run(mg, chunks, progress)

    # -- one request made ready, and passes of several --------------------------------------

    @staticmethod
    def _model_key(opts: Values) -> tuple:
        # transformers' own generate() needs one dtype throughout: float32 unless asked
        dtype = opts.dtype if opts.decoder == "fast" or opts.dtype != "auto" else "float32"
        return (opts.model, opts.device, dtype)

    def _model_for(self, opts: Values):
        spec, device, dtype = self._model_key(opts)
        return self.load(spec or self.default_model, device=device, dtype=dtype)

    def _setup(self, request: Request, opts: Values, mg) -> "_Job":
        """Conditioning, lengths and sampling settings of a request (under ``mg.lock``)."""
        from musegen.engines.musicgen.fast import Sampling

        sampling = Sampling(guidance_scale=opts.guidance_scale, temperature=float(request.temperature),
                            top_k=opts.top_k, top_p=opts.top_p)
        window = min(mg.frames_for(opts.window), mg.max_window_frames())
        stride_s = opts.extend_stride if opts.extend_stride is not None else STRIDE_OF_WINDOW * opts.window
        stride = min(mg.frames_for(stride_s), window - 1)
        sr, fps = mg.sample_rate, mg.frame_rate
        info: dict[str, Any] = {
            "model": mg.name, "model_kind": mg.kind, "device": mg.device,
            "dtype": str(mg.dtype).replace("torch.", ""), "decoder": opts.decoder, "kernels": opts.kernels,
            "sample_rate": sr,
            "guidance_scale": sampling.guidance_scale, "top_k": sampling.top_k, "top_p": sampling.top_p,
            "temperature": sampling.temperature, "window_s": window / fps, "extend_stride_s": stride / fps,
        }

        if opts.transcribe and request.seed is None:  # fail before generating, not after
            from musegen.engines.musicgen.transcribe import check_available

            check_available()
        prompt_codes, lead_s, chroma = self._seed_and_prompt(request, opts, mg, info)
        new_frames = mg.frames_for(request.seconds)
        if prompt_codes is not None:
            p = int(prompt_codes.shape[-1])
            total_frames = p + new_frames
            n_samples = p * mg.hop + int(round(request.seconds * sr))
        else:
            total_s = lead_s + request.seconds
            total_frames = mg.frames_for(total_s)
            n_samples = int(round(total_s * sr))
        if total_frames < mg.K:
            raise ParameterError(f"musicgen needs at least {mg.K / fps:.2f} s of audio")
        info["frames"] = total_frames
        return _Job(request=request, opts=opts, sampling=sampling, window=window, stride=stride, info=info,
                    prompt_codes=prompt_codes, chroma=chroma, total_frames=total_frames, n_samples=n_samples,
                    texts=_texts(request.prompt, opts.prompts, request.variations),
                    seed=int(request.random_seed) % (2**63))

    def _run(self, mg, chunks: list[list[tuple["_Job", list[str]]]], progress) -> list[list[EngineOutput]]:
        """Outputs of the jobs in ``chunks``, in order of first appearance.

        Each chunk is one decoding pass whose rows are the given texts of its
        jobs (jobs in a chunk share settings, see :meth:`_Job.batch_key`).
        Every job has one generator, seeded from its seed, shared by all its
        rows and passes; a pass of one job hands the decoder that generator
        alone (one sampling call for all rows, as ``generate()`` does).
        """
        import torch

        from musegen.engines.musicgen.model import Plan

        first = chunks[0][0][0]
        opts = first.opts
        report = progress or (lambda done, total, msg: None)
        outputs: dict[int, list[EngineOutput]] = {}
        spent: dict[int, list[float]] = {}
        order: list[_Job] = []
        n_batches = len(chunks)
        with contextlib.ExitStack() as stack:
            if opts.threads:
                stack.enter_context(_torch_threads(opts.threads))
            if opts.decoder == "fast":  # (transformers' generate() has its own arithmetic)
                kernels = _pick_kernels(opts.kernels, mg)
                mg.fast.kernels = kernels
                for job in (j for chunk in chunks for j, _ in chunk):
                    job.info["kernels"] = kernels
            generators: dict[int, Any] = {}
            for job in (j for chunk in chunks for j, _ in chunk):
                if id(job) in generators:
                    continue
                order.append(job)
                outputs[id(job)] = []
                generator = None
                if opts.decoder == "fast":
                    try:
                        generator = torch.Generator(device=mg.device).manual_seed(job.seed)
                    except RuntimeError:  # a backend without device generators: seed the global one
                        generator = None
                if generator is None:  # stock generate() draws from the global generator
                    if len(order) > 1 or any(len(c) > 1 for c in chunks):
                        raise EngineError("requests that draw from the global generator cannot share a batch")
                    stack.enter_context(torch.random.fork_rng(devices=[] if mg.device == "cpu" else None))
                    torch.manual_seed(job.seed)
                generators[id(job)] = generator
            for b, chunk in enumerate(chunks):
                t0 = time.perf_counter()
                texts = [t for _, rows in chunk for t in rows]
                if len(chunk) == 1:
                    generator = generators[id(chunk[0][0])]
                    prompt = first.prompt_codes
                else:
                    generator = [generators[id(j)] for j, rows in chunk for _ in rows]
                    prompt = None if first.prompt_codes is None else torch.cat(
                        [j.prompt_codes.expand(len(rows), -1, -1) for j, rows in chunk])
                plan = Plan(texts=texts, total_frames=first.total_frames, prompt=prompt, chroma=first.chroma,
                            window=first.window, stride=first.stride)

                def step(done, total, _b=b):
                    report(_b + done / max(total, 1), n_batches, f"musicgen: {done}/{total} frames")

                codes = mg.generate(plan, sampling=first.sampling, generator=generator, decoder=opts.decoder,
                                    progress=step)
                row = 0
                for job, rows in chunk:  # each job decoded on its own, as it is alone
                    outs = self._finish_batch(mg, codes[row:row + len(rows)], rows, job.n_samples, opts, job.info)
                    row += len(rows)
                    for out in outs:
                        out.info["batch"] = len(chunk)
                    outputs[id(job)].extend(outs)
                elapsed = time.perf_counter() - t0
                audio_s = sum(len(rows) * job.n_samples for job, rows in chunk) / mg.sample_rate
                for job, _ in chunk:  # the passes a job took part in, and the audio they made
                    spent[id(job)] = [a + b for a, b in zip(spent.get(id(job), (0.0, 0.0)), (elapsed, audio_s))]
                report(b + 1, n_batches, "musicgen: decoded")
        results = []
        for job in order:
            elapsed, audio_s = spent[id(job)]
            for out in outputs[id(job)]:
                out.info["generate_s"] = round(elapsed, 3)
                out.info["audio_s_per_s"] = round(audio_s / max(elapsed, 1e-9), 4)
            self._attach_scores(job.request, job.opts, outputs[id(job)])
            results.append(outputs[id(job)])
        return results

    @staticmethod
    def _finish_batch(mg, codes, texts, n_samples, opts, info) -> list[EngineOutput]:
        audio = mg.decode_long(codes, chunk_s=opts.decode_chunk)
        out = []
        for i, text in enumerate(texts):
            y = audio[i][:, :n_samples]
            if y.shape[1] < n_samples:
                y = np.pad(y, ((0, 0), (0, n_samples - y.shape[1])))
            if y.shape[0] == 1:  # musegen results are stereo
                y = np.repeat(y, 2, axis=0)
            out.append(EngineOutput(audio=np.ascontiguousarray(y, dtype=np.float32), sample_rate=mg.sample_rate,
                                    info={**info, "text": text, "windows": mg.last_windows}))
        return out

    # -- conditioning from the seed and the audio prompt ------------------------------------

    def _seed_and_prompt(self, request: Request, opts: Values, mg, info: dict):
        """``(prompt_codes or None, lead_s, chroma or None)`` for a request."""
        from musegen.engines.musicgen.chroma import chroma_from_audio, chroma_from_score, select_tracks

        prompt_audio = None
        if opts.audio_prompt:
            from musegen.audio.io import read_audio

            prompt_audio, _ = read_audio(opts.audio_prompt, sr=mg.sample_rate)
            info["audio_prompt"] = str(opts.audio_prompt)
            info["audio_prompt_sha256"] = _sha256(opts.audio_prompt)  # the path alone does not trace a result
            info["audio_prompt_s"] = round(prompt_audio.shape[1] / mg.sample_rate, 3)
        chroma = None
        lead_s = 0.0
        if request.seed is not None:
            mode = opts.midi_mode or ("melody" if mg.kind == "melody" else "prompt")
            info["midi_mode"] = mode
            a = request.seed_analysis
            span = _seed_span_s(request)
            if mode == "melody":
                if mg.kind != "melody":
                    raise ParameterError(
                        f"midi_mode=melody needs a MusicGen-Melody model; {mg.name!r} is a text-only "
                        f"MusicGen (use --option midi_mode=prompt, or a model such as facebook/musicgen-melody)"
                    )
                roles = [t.role for t in a.tracks] if a is not None else None
                tracks = select_tracks(request.seed, parts=opts.chroma_parts, roles=roles,
                                       melody_track=a.melody_track if a is not None else None)
                layout = mg.chroma_layout
                if opts.chroma_source == "audio":
                    sub = _only_tracks(request.seed, tracks)
                    y = _render(sub, request, sr=layout.sample_rate, seconds=span)
                    chroma = chroma_from_audio(y, sr=layout.sample_rate, layout=layout)
                else:
                    chroma = chroma_from_score(request.seed, duration_s=span, layout=layout, tracks=tracks)
                info["chroma"] = {"source": opts.chroma_source, "parts": opts.chroma_parts,
                                  "tracks": tracks, "frames": int(len(chroma))}
                lead_s = span
            elif mode == "prompt":
                if prompt_audio is not None:
                    raise ParameterError("give either --audio-prompt or a MIDI seed to continue "
                                         "(or set --option midi_mode=melody/none)")
                prompt_audio = _render(request.seed, request, sr=mg.sample_rate, seconds=span)
                info["seed_prompt_s"] = round(span, 3)
                # what the seed sounded like to the model: its font, and its level (silent is a bad prompt)
                info["seed_prompt_soundfont"] = str(_font(request) or "default")
                peak = float(np.abs(prompt_audio).max(initial=0.0))
                info["seed_prompt_peak_dbfs"] = round(max(-120.0, 20 * np.log10(max(peak, 1e-12))), 2)
        codes = mg.encode(prompt_audio) if prompt_audio is not None else None
        return codes, lead_s, chroma

    def _attach_scores(self, request: Request, opts: Values, outputs: list[EngineOutput]) -> None:
        if request.seed is not None:
            for out in outputs:
                out.score = request.seed.copy()
            return
        if opts.transcribe:
            from musegen.engines.musicgen.transcribe import transcribe

            for out in outputs:
                out.score = transcribe(out.audio, sr=out.sample_rate, tempo_bpm=request.tempo_bpm)
                out.info["transcription"] = "basic-pitch"


@dataclass
class _Job:
    """One request made ready to generate: its settings, conditioning and lengths."""

    request: Request
    opts: Values
    sampling: Any
    window: int
    stride: int
    info: dict[str, Any]
    prompt_codes: Any
    chroma: np.ndarray | None
    total_frames: int
    n_samples: int
    texts: list[str]
    seed: int

    def batch_key(self, mg) -> tuple | None:
        """Jobs with equal keys can be rows of one decoding pass; ``None``: this job runs alone."""
        o = self.opts
        if o.decoder != "fast" or len(self.texts) > o.batch_size:
            return None
        # audio prompts are rows of their own (equal lengths needed); a melody is shared by every row
        prompt = None if self.prompt_codes is None else tuple(self.prompt_codes.shape)
        chroma = None
        if self.chroma is not None:
            c = np.ascontiguousarray(self.chroma, dtype=np.float32)
            chroma = (c.shape, hashlib.sha256(c.tobytes()).hexdigest())
        lengths = tuple(len(ids) for ids in mg.tokenizer(self.texts)["input_ids"])
        # a melody model reads the (padded) text as part of its prefix, so the padding must match
        pad = max(lengths) if mg.kind == "melody" else None
        return (o.kernels, o.threads, o.batch_size, self.sampling, self.window, self.stride, self.total_frames,
                self.n_samples, o.decode_chunk, prompt, chroma, pad)


@contextlib.contextmanager
def _torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class _Prepared:
    """A request set up on its loaded model, with the key of the passes it may share."""

    job: "_Job"
    mg: Any
    batch_key: tuple | None

    @property
    def rows(self) -> int:
        return len(self.job.texts)


def _solo_passes(job: "_Job") -> list[list[tuple["_Job", list[str]]]]:
    """One request's rows in passes of at most ``batch_size`` (its variations in order)."""
    texts, n = job.texts, job.opts.batch_size
    return [[(job, texts[k:k + n])] for k in range(0, len(texts), n)]


def _texts(prompt: str, extra: tuple[str, ...], n: int) -> list[str]:
    base = prompt.strip()
    if not extra:
        return [base] * n
    return [f"{base} {extra[i % len(extra)].strip()}".strip() for i in range(n)]


def _seed_span_s(request: Request) -> float:
    """Seconds from the seed's start to the bar line where new music begins."""
    from musegen.midi.timing import ticks_to_seconds

    a = request.seed_analysis
    if a is None:
        sec = request.seed.to("second")
        return float(sec.end())
    tick = continuation_start(a)
    return float(ticks_to_seconds(tick, a.tempo_map or [(0, a.tempo_bpm)], a.tpq))


def _only_tracks(score, tracks: list[int]):
    out = score.copy()
    keep = set(tracks)
    for i in reversed(range(len(out.tracks))):
        if i not in keep:
            del out.tracks[i]
    return out


def _font(request: Request):
    """The SoundFont of a request: ``--soundfont`` (resolved by the pipeline), else the preset's."""
    return request.soundfont if request.soundfont is not None else request.preset.render.soundfont


def _render(score, request: Request, *, sr: int, seconds: float) -> np.ndarray:
    """The seed rendered with the request's SoundFont, exactly ``seconds`` long, (2, n) at ``sr``."""
    from musegen.render.synth import render_score

    y = render_score(score, sample_rate=sr, soundfont=_font(request),
                     gain_db=request.preset.render.gain_db)
    n = int(round(seconds * sr))
    if y.shape[1] >= n:
        return y[:, :n]
    return np.pad(y, ((0, 0), (0, n - y.shape[1])))
