"""Music longer than the model's window, and audio decoded in pieces.

Generation (AudioCraft's ``extend_stride``): the first window generates up to
``window`` seconds; every later window keeps the last ``window - stride``
seconds of tokens as its prompt and adds up to ``stride`` seconds more.  The
tokens form one continuous stream, so the music has no joins at all.

Decoding: EnCodec's memory grows with length, so long token streams are
decoded in overlapping chunks and the chunks are joined with an equal-gain
raised-cosine crossfade placed in the middle of each overlap, away from the
chunk edges where the decoder lacks context.  Decoding overlapping chunks
of the same tokens gives nearly the same samples, so the join is inaudible
and has no click.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from musegen.errors import ParameterError


@dataclass(frozen=True)
class Window:
    """One generation call, in frames of the token stream.

    Attributes
    ----------
    start : int
        First frame of the window (its prompt starts here).
    prompt : int
        Frames of context taken from the stream (``start .. start + prompt``).
    new : int
        Frames this window adds after its prompt.
    """

    start: int
    prompt: int
    new: int

    @property
    def end(self) -> int:
        return self.start + self.prompt + self.new


def plan_windows(total: int, *, window: int, stride: int, prompt: int = 0) -> list[Window]:
    """Windows that grow a stream of ``prompt`` frames to ``total`` frames.

    Parameters
    ----------
    total : int
        Frames wanted in the end, the prompt included.
    window : int
        The most frames one generation call holds (prompt + new).
    stride : int
        Frames each window after the first moves on by; the context kept is
        ``window - stride`` frames.
    prompt : int
        Frames already in the stream (an audio prompt).

    Returns
    -------
    list of Window
        Consecutive: each window's end is the next one's ``start + prompt``.
    """
    if window < 2:
        raise ParameterError(f"window must hold at least 2 frames, got {window}")
    if not 0 < stride < window:
        raise ParameterError(f"extend stride must be between 0 and the window ({window} frames), got {stride}")
    if total < prompt:
        raise ParameterError(f"total length {total} is shorter than the prompt {prompt}")
    keep = window - stride
    out: list[Window] = []
    have = prompt
    while have < total:
        ctx = min(have, keep)
        new = min(total - have, window - ctx)
        out.append(Window(start=have - ctx, prompt=ctx, new=new))
        have += new
    return out


def fade_curves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Raised-cosine fade-out and fade-in of ``n`` samples that sum to exactly one."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    fade_in = 0.5 - 0.5 * np.cos(np.pi * t)
    return (1.0 - fade_in).astype(np.float32), fade_in.astype(np.float32)


def crossfade_join(a: np.ndarray, b: np.ndarray, *, overlap: int) -> np.ndarray:
    """Join ``b`` after ``a`` where their last/first ``overlap`` samples hold the same audio.

    Parameters
    ----------
    a, b : np.ndarray, shape (..., samples)
    overlap : int
        Samples shared by the end of ``a`` and the start of ``b``.

    Returns
    -------
    np.ndarray, shape (..., a.samples + b.samples - overlap)
    """
    if overlap <= 0:
        return np.concatenate([a, b], axis=-1)
    if overlap > min(a.shape[-1], b.shape[-1]):
        raise ParameterError(f"overlap {overlap} is longer than a piece ({a.shape[-1]}, {b.shape[-1]})")
    out_w, in_w = fade_curves(overlap)
    mixed = a[..., -overlap:] * out_w + b[..., :overlap] * in_w
    return np.concatenate([a[..., :-overlap], mixed, b[..., overlap:]], axis=-1)


def decode_chunked(
    decode: Callable[[int, int], np.ndarray], n_frames: int, *, hop: int, chunk: int, overlap: int,
) -> np.ndarray:
    """Decode frames ``0 .. n_frames`` in overlapping chunks joined by crossfades.

    Parameters
    ----------
    decode : callable
        ``decode(first, last) -> (..., (last - first) * hop)`` audio of frames
        ``first .. last``.
    n_frames : int
    hop : int
        Samples per frame.
    chunk : int
        Frames per chunk, the overlaps included.
    overlap : int
        Frames two neighbouring chunks share.  The crossfade covers the middle
        half of the overlap, so each chunk's outer quarter (where the decoder
        lacks context) is discarded.

    Returns
    -------
    np.ndarray, shape (..., n_frames * hop)
    """
    if n_frames <= chunk:
        return decode(0, n_frames)
    if not 0 < 2 * overlap < chunk:
        raise ParameterError(f"decode overlap ({overlap} frames) must be under half the chunk ({chunk} frames)")
    step = chunk - overlap
    n_chunks = 1 + math.ceil((n_frames - chunk) / step)
    margin = overlap // 4
    fade = overlap - 2 * margin
    out = None
    for i in range(n_chunks):
        first = i * step
        last = min(first + chunk, n_frames)
        piece = decode(first, last)
        if out is None:
            out = piece[..., : piece.shape[-1] - margin * hop] if last < n_frames else piece
            continue
        piece = piece[..., margin * hop:]
        if last < n_frames:
            piece = piece[..., : piece.shape[-1] - margin * hop]
        out = crossfade_join(out, piece, overlap=fade * hop)
    return out
