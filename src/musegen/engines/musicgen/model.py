"""A loaded MusicGen model: conditioning, EnCodec, and windowed generation.

Built on transformers' ``MusicgenForConditionalGeneration`` and
``MusicgenMelodyForConditionalGeneration``.  The processors transformers pairs
with them are not used: the text tokenizer is loaded on its own, and
MusicGen-Melody's chroma comes from :mod:`.chroma` (its feature extractor
needs torchaudio).
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from musegen.engines.musicgen.chroma import ChromaLayout, window_chroma
from musegen.engines.musicgen.fast import Conditioning, FastDecoder, Sampling
from musegen.engines.musicgen.longform import decode_chunked, plan_windows
from musegen.engines.musicgen.resolve import ResolvedModel
from musegen.errors import EngineError, ParameterError

DECODERS = ("fast", "stock")


def pick_device(name: str = "auto") -> str:
    """``"auto"``: CUDA when present, then Apple's MPS, else the CPU."""
    import torch

    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ParameterError("device 'mps' asked for, but torch has no MPS support here")
    if name != "cpu" and not name.startswith(("cuda", "mps")):
        raise ParameterError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    return name


def pick_dtype(name: str, device: str):
    """``"auto"``: float16 on a GPU (the language model only), float32 on the CPU."""
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name in (None, "", "auto"):
        return torch.float32 if device == "cpu" else torch.float16
    if name not in table:
        raise ParameterError(f"dtype must be auto, float32, float16 or bfloat16, got {name!r}")
    return table[name]


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' logger and progress bars (musegen reports through callbacks)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


@dataclass
class Plan:
    """What one batch generates.

    Attributes
    ----------
    texts : list of str
        One description per item.
    total_frames : int
        Frames of the result, the prompt included.
    prompt : LongTensor (1 or batch, K, P) or None
        Audio codes the result starts with.
    chroma : np.ndarray (frames, 12) or None
        Melody of the whole result from time 0 (looped when shorter).
    window, stride : int
        Generation window and extend stride, in frames.
    """

    texts: list[str]
    total_frames: int
    prompt: object | None = None
    chroma: np.ndarray | None = None
    window: int = 1500
    stride: int = 900


class MusicGenModel:
    """Weights, tokenizer and decoding loop of one MusicGen checkpoint.

    Parameters
    ----------
    model : MusicgenForConditionalGeneration or MusicgenMelodyForConditionalGeneration
    tokenizer : the T5 tokenizer
    name : str
        What the user called it (for messages and sidecars).
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    dtype : torch.dtype
        Of the language model; the text encoder and EnCodec stay in float32.
    path : path, optional
        The model folder (MusicGen-Melody reads its chroma layout there).
    """

    def __init__(self, model, tokenizer, *, name: str, device: str = "cpu", dtype=None, path=None):
        import torch

        self.name = name
        self.kind = "melody" if model.config.model_type == "musicgen_melody" else "text"
        self.device = device
        self.dtype = dtype or torch.float32
        model.eval()
        model.to(device)
        if self.dtype != torch.float32:
            model.decoder.to(self.dtype)
        self.model = model
        self.tokenizer = tokenizer
        self.lm = model.decoder
        self.K = int(self.lm.num_codebooks)
        self.channels = int(getattr(model.config.decoder, "audio_channels", 1))
        codec = model.config.audio_encoder
        self.sample_rate = int(codec.sampling_rate)
        self.hop = int(np.prod(codec.upsampling_ratios))
        self.frame_rate = self.sample_rate / self.hop
        self.max_positions = int(model.config.decoder.max_position_embeddings)
        self.chroma_layout = None
        if self.kind == "melody":
            kw = dict(chroma_length=int(model.config.chroma_length), n_chroma=int(model.config.num_chroma))
            self.chroma_layout = ChromaLayout.from_model_dir(path, **kw) if path else ChromaLayout(**kw)
        self.fast = FastDecoder(self.lm)
        self.last_windows: list[list[int]] = []
        self.lock = threading.Lock()

    @classmethod
    def load(cls, resolved: ResolvedModel, *, device: str = "cpu", dtype=None) -> "MusicGenModel":
        """Load a resolved model folder (offline: local files only)."""
        import torch
        from transformers import (
            AutoTokenizer,
            MusicgenForConditionalGeneration,
            MusicgenMelodyForConditionalGeneration,
        )

        cls_ = MusicgenMelodyForConditionalGeneration if resolved.kind == "melody" \
            else MusicgenForConditionalGeneration
        try:
            with quiet_transformers():
                model = cls_.from_pretrained(str(resolved.path), local_files_only=True, dtype=torch.float32,
                                             use_safetensors=True)  # never a pickle
                tokenizer = AutoTokenizer.from_pretrained(str(resolved.path), local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise EngineError(f"cannot load MusicGen model {resolved.name!r}: {_first_line(exc)}") from exc
        return cls(model, tokenizer, name=resolved.name, device=device, dtype=dtype, path=resolved.path)

    # -- sizes ---------------------------------------------------------------------------

    def max_window_frames(self) -> int:
        """The most frames one generation call can hold (positions minus delay and prefix)."""
        prefix = (self.chroma_layout.chroma_length + 64) if self.kind == "melody" else 0
        return self.max_positions - self.K - prefix

    def frames_for(self, seconds: float) -> int:
        return int(math.ceil(seconds * self.frame_rate - 1e-9))

    # -- conditioning --------------------------------------------------------------------

    def _text_states(self, texts: list[str]):
        """T5 states (batch, S, text_hidden) and the attention mask (batch, S)."""
        tok = self.tokenizer(texts, padding=True, return_tensors="pt")
        ids = tok["input_ids"].to(self.device)
        mask = tok["attention_mask"].to(self.device)
        states = self.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return ids, mask, states

    def conditioning(self, texts: list[str], *, guided: bool, chroma: np.ndarray | None = None) -> Conditioning:
        """Conditioning for ``texts`` (and a melody), built as ``generate()`` builds it.

        Parameters
        ----------
        texts : list of str
        guided : bool
            Add the unconditional rows for classifier-free guidance.
        chroma : np.ndarray, shape (frames, n_chroma), optional
            MusicGen-Melody only; the same melody for every item.
        """
        import torch

        m = self.model
        with torch.inference_mode():
            _, mask, states = self._text_states(texts)
            needs_proj = m.text_encoder.config.hidden_size != m.decoder.config.hidden_size
            if self.kind == "text":
                if guided:
                    states = torch.concatenate([states, torch.zeros_like(states)], dim=0)
                    mask = torch.concatenate([mask, torch.zeros_like(mask)], dim=0)
                if needs_proj and m.decoder.config.cross_attention_hidden_size is None:
                    states = m.enc_to_dec_proj(states)
                states = states * mask[..., None]
                enc_mask = None if bool(mask.all()) else mask.bool()[:, None, None, :]
                return Conditioning(encoder_states=states.to(self.dtype), encoder_mask=enc_mask)
            # melody: [chroma, text] becomes a prefix of the decoder's sequence
            if needs_proj:
                states = m.enc_to_dec_proj(states)
            if guided:
                states = torch.concatenate([states, torch.zeros_like(states)], dim=0)
                mask = torch.concatenate([mask, torch.zeros_like(mask)], dim=0)
            states = states * mask[..., None]
            batch = len(texts)
            n_chroma = int(m.config.num_chroma)
            if chroma is not None:
                audio = torch.from_numpy(np.asarray(chroma, dtype=np.float32)).to(self.device)
                audio = audio[None].expand(batch, -1, -1)
                null = torch.zeros_like(audio)
            else:
                audio = None
                null = torch.zeros((batch, 1, n_chroma), device=self.device, dtype=torch.float32)
            null[:, :, 0] = 1
            if audio is None:
                audio = null
            if guided:
                audio = torch.concatenate([audio, null], dim=0)
            if n_chroma != m.decoder.config.hidden_size:
                audio = m.audio_enc_to_dec_proj(audio)
            length = int(m.config.chroma_length)
            if audio.shape[1] < length:
                audio = audio.repeat(1, int(math.ceil(length / audio.shape[1])), 1)
            audio = audio[:, :length]
            prefix = torch.cat([audio, states], dim=1)
            return Conditioning(prefix=prefix.to(self.dtype))

    # -- EnCodec --------------------------------------------------------------------------

    def encode(self, wav: np.ndarray):
        """Audio codes of ``wav`` (channels, samples) at the model's rate -> LongTensor (1, K, frames)."""
        import torch

        codec = self.model.audio_encoder
        y = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            if self.channels == 1:
                codes = codec.encode(y.mean(dim=0, keepdim=True)[None], return_dict=True).audio_codes[0]
            else:
                if y.shape[0] == 1:
                    y = y.repeat(2, 1)
                left = codec.encode(y[None, :1], return_dict=True).audio_codes[0]
                right = codec.encode(y[None, 1:2], return_dict=True).audio_codes[0]
                codes = torch.stack([left, right], dim=2).reshape(1, -1, left.shape[-1])
        return codes

    def decode(self, codes) -> np.ndarray:
        """Audio of codes (batch, K, frames) -> (batch, channels, frames * hop) float32."""
        import torch

        codec = self.model.audio_encoder
        with torch.inference_mode():
            codes = codes.to(self.device)
            if self.channels == 1:
                audio = codec.decode(codes[None], audio_scales=[None] * codes.shape[0]).audio_values
            else:
                left = codec.decode(codes[None, :, ::2], audio_scales=[None] * codes.shape[0]).audio_values
                right = codec.decode(codes[None, :, 1::2], audio_scales=[None] * codes.shape[0]).audio_values
                audio = torch.cat([left, right], dim=1)
        return audio.float().cpu().numpy()

    def decode_long(self, codes, *, chunk_s: float = 40.0, overlap_s: float = 2.0) -> np.ndarray:
        """:meth:`decode` in overlapping chunks joined by crossfades (bounded memory)."""
        chunk = max(8, self.frames_for(chunk_s))
        overlap = max(4, self.frames_for(overlap_s))
        return decode_chunked(lambda a, b: self.decode(codes[:, :, a:b]), int(codes.shape[-1]), hop=self.hop,
                              chunk=chunk, overlap=min(overlap, (chunk - 1) // 2))

    # -- generation -----------------------------------------------------------------------

    def generate(self, plan: Plan, *, sampling: Sampling, generator=None, decoder: str = "fast",
                 progress: Callable[[int, int], None] | None = None):
        """Codes (batch, K, total_frames) for a plan, window by window.

        ``generator`` is one ``torch.Generator`` for every item, or one per
        item (see :meth:`FastDecoder.generate`; the fast decoder only): each
        generator carries on from window to window, so an item draws the
        same noise whatever the other items in the batch are.  The stock
        decoder draws from torch's global generator.

        Returns
        -------
        LongTensor, shape (batch, K, total_frames)
        """
        import torch

        if decoder not in DECODERS:
            raise ParameterError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        batch = len(plan.texts)
        p = 0 if plan.prompt is None else int(plan.prompt.shape[-1])
        stream = (torch.zeros((batch, self.K, 0), dtype=torch.long, device=self.device) if plan.prompt is None
                  else plan.prompt.to(self.device).expand(batch, -1, -1))
        windows = plan_windows(plan.total_frames, window=plan.window, stride=plan.stride, prompt=p)
        self.last_windows = [[w.start, w.prompt, w.new] for w in windows]
        todo = sum(w.new for w in windows)
        done = 0
        text_cond = None
        for w in windows:
            if self.kind == "melody" and plan.chroma is not None:
                chroma = window_chroma(plan.chroma, start_s=w.start / self.frame_rate,
                                       seconds=(w.prompt + w.new) / self.frame_rate, layout=self.chroma_layout)
            else:
                chroma = None
            context = stream[:, :, w.start:w.start + w.prompt] if w.prompt else None

            def step(i, n, _done=done, _w=w):
                if progress is not None:
                    progress(_done + min(_w.new, max(0, i - (n - _w.new))), todo)

            if decoder == "stock":
                new = self._stock_window(plan.texts, context, w.new, chroma, sampling)
            else:
                if self.kind == "melody" or text_cond is None:
                    text_cond = self.conditioning(plan.texts, guided=sampling.guided, chroma=chroma)
                new = self.fast.generate(text_cond, batch=batch, new_frames=w.new, sampling=sampling,
                                         generator=generator, prompt=context, progress=step)
            stream = torch.cat([stream, new[:, :, w.prompt:]], dim=-1)
            done += w.new
            if progress is not None:
                progress(done, todo)
        self.fast.release()
        return stream

    def _stock_window(self, texts, context, new_frames, chroma, sampling):
        """One window through transformers' own ``generate()`` (global RNG), codes captured from its decode."""
        import torch

        m = self.model
        tok = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
        kwargs = dict(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                      max_new_tokens=new_frames + self.K - 1, **sampling.generate_kwargs())
        if context is not None:
            kwargs["decoder_input_ids"] = context.reshape(-1, context.shape[-1])
        if chroma is not None:
            feats = torch.from_numpy(np.asarray(chroma, dtype=np.float32)).to(self.device)
            kwargs["input_features"] = feats[None].expand(len(texts), -1, -1)
        captured = []
        original = m.audio_encoder.decode

        def spy(audio_codes, *args, **kw):
            captured.append(audio_codes)
            return original(audio_codes, *args, **kw)

        m.audio_encoder.decode = spy
        try:
            with quiet_transformers():
                m.generate(**kwargs)
        finally:
            del m.audio_encoder.decode
        if len(captured) == 1:
            return captured[0][0]
        left, right = captured[0][0], captured[1][0]
        return torch.stack([left, right], dim=2).reshape(left.shape[0], -1, left.shape[-1])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
