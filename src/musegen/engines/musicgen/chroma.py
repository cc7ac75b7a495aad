"""Melody conditioning for MusicGen-Melody: 12-bin one-hot chroma per frame.

The model was trained on chroma from audio: 32 kHz, an STFT with n_fft 16384
and hop 4096 (Hann window, centred frames, power 2), a 12-bin chroma filter
bank, normalised per frame, then one-hot at the loudest bin.  Frame ``j``
is centred on sample ``j * hop``, so audio of ``n`` samples has
``1 + n // hop`` frames (7.8 per second).  Silent frames come out as bin 0
(C), exactly as the model's feature extractor gives them.

:func:`chroma_from_notes` builds the same frames straight from MIDI notes:
each note adds energy to its own pitch class only (no audio round trip, no
leakage from harmonics), weighted like the filter bank weights an octave and
by how much of the note falls under each frame's window.
:func:`chroma_from_audio` is the audio recipe itself, on torch's STFT (the
model's extractor needs torchaudio, which does not install beside every torch).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musegen.errors import ParameterError

PARTS = ("melodic", "all", "melody")


@dataclass(frozen=True)
class ChromaLayout:
    """Frame layout of the chroma a MusicGen-Melody model expects.

    Attributes
    ----------
    sample_rate : int
        Rate the STFT runs at, in Hz.
    hop : int
        Samples between frame centres.
    n_fft : int
        STFT size (and Hann window length) in samples.
    n_chroma : int
        Bins per frame (12, bin 0 = C).
    chroma_length : int
        Frames the model reads per window; shorter chroma is repeated, longer truncated.
    """

    sample_rate: int = 32000
    hop: int = 4096
    n_fft: int = 16384
    n_chroma: int = 12
    chroma_length: int = 235

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop

    def n_frames(self, seconds: float) -> int:
        """Frames the model's extractor gives for ``seconds`` of audio."""
        return 1 + int(round(seconds * self.sample_rate)) // self.hop

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre of each frame in seconds, shape ``(n_frames,)``."""
        return np.arange(n_frames) * (self.hop / self.sample_rate)

    @classmethod
    def from_model_dir(cls, path: str | Path, *, chroma_length: int = 235,
                       n_chroma: int = 12) -> "ChromaLayout":
        """The layout in a model folder's ``preprocessor_config.json`` (defaults where absent)."""
        f = Path(path) / "preprocessor_config.json"
        cfg = {}
        if f.is_file():
            try:
                cfg = json.loads(f.read_text())
            except (OSError, ValueError):
                cfg = {}
        return cls(sample_rate=int(cfg.get("sampling_rate", 32000)), hop=int(cfg.get("hop_length", 4096)),
                   n_fft=int(cfg.get("n_fft", 16384)), n_chroma=int(cfg.get("num_chroma", n_chroma)),
                   chroma_length=int(chroma_length))


def octave_weight(pitch: np.ndarray) -> np.ndarray:
    """The chroma filter bank's Gaussian weighting of a MIDI pitch's octave.

    Centred on A5 (880 Hz) with a half-width of two octaves, as in librosa's
    and transformers' ``chroma_filter_bank`` (octaves counted from A0).
    """
    octave = (np.asarray(pitch, dtype=np.float64) - 21.0) / 12.0
    return np.exp(-0.5 * ((octave - 5.0) / 2.0) ** 2)


def _hann_integral(a: np.ndarray, b: np.ndarray, n: float) -> np.ndarray:
    """Integral of the periodic Hann window ``0.5 - 0.5 cos(2 pi x / n)`` over ``[a, b]`` within ``[0, n]``."""
    a = np.clip(a, 0.0, n)
    b = np.clip(b, 0.0, n)
    k = 2.0 * np.pi / n
    return 0.5 * (b - a) - (np.sin(k * b) - np.sin(k * a)) / (2.0 * k)


def chroma_energy_from_notes(
    start: np.ndarray, end: np.ndarray, pitch: np.ndarray, velocity: np.ndarray,
    *, n_frames: int, layout: ChromaLayout = ChromaLayout(),
) -> np.ndarray:
    """Per-frame pitch-class energy of notes, shape ``(n_frames, n_chroma)``.

    A note of velocity ``v`` adds ``(v / 127 * W)**2 * octave_weight`` to its
    pitch class, where ``W`` is the share of the frame's Hann window the note
    covers: what the STFT's power would see of a pure tone.

    Parameters
    ----------
    start, end : np.ndarray, shape (n,)
        Note on and off times in seconds.
    pitch, velocity : np.ndarray, shape (n,)
        MIDI pitch and velocity (1-127).
    n_frames : int
    layout : ChromaLayout
    """
    energy = np.zeros((n_frames, layout.n_chroma), dtype=np.float64)
    if len(start) == 0 or n_frames <= 0:
        return energy
    sr, hop, n = float(layout.sample_rate), float(layout.hop), float(layout.n_fft)
    s = np.asarray(start, dtype=np.float64) * sr
    e = np.maximum(np.asarray(end, dtype=np.float64) * sr, s + 1.0)
    amp = (np.asarray(velocity, dtype=np.float64) / 127.0) * np.sqrt(octave_weight(pitch))
    pcs = (np.asarray(pitch, dtype=np.int64) % 12) * layout.n_chroma // 12
    # frames whose window [j*hop - n/2, j*hop + n/2) overlaps the note
    first = np.maximum(0, np.ceil((s - n / 2) / hop).astype(np.int64))
    last = np.minimum(n_frames - 1, np.floor((e + n / 2) / hop).astype(np.int64))
    counts = np.maximum(0, last - first + 1)
    if counts.sum() == 0:
        return energy
    idx = np.repeat(np.arange(len(s)), counts)
    frames = np.concatenate([np.arange(f, f + c) for f, c in zip(first, counts)])
    left = frames * hop - n / 2
    w = _hann_integral(s[idx] - left, e[idx] - left, n) / (n / 2)
    np.add.at(energy, (frames, pcs[idx]), (amp[idx] * w) ** 2)
    return energy


def one_hot(energy: np.ndarray) -> np.ndarray:
    """One-hot at each frame's loudest bin (bin 0 where a frame is silent), float32."""
    out = np.zeros(energy.shape, dtype=np.float32)
    if energy.size:
        out[np.arange(energy.shape[0]), np.argmax(energy, axis=1)] = 1.0
    return out


def chroma_from_notes(
    start: np.ndarray, end: np.ndarray, pitch: np.ndarray, velocity: np.ndarray,
    *, duration_s: float, layout: ChromaLayout = ChromaLayout(),
) -> np.ndarray:
    """One-hot chroma of notes for ``duration_s`` seconds, shape ``(frames, n_chroma)``, float32.

    ``frames = layout.n_frames(duration_s)``: the frames the model's extractor
    would give for a rendering of the notes that long.
    """
    if not duration_s > 0:
        raise ParameterError(f"chroma duration must be positive, got {duration_s!r}")
    n_frames = layout.n_frames(duration_s)
    return one_hot(chroma_energy_from_notes(start, end, pitch, velocity, n_frames=n_frames, layout=layout))


def select_tracks(score, *, parts: str = "melodic", roles: list[str] | None = None,
                  melody_track: int | None = None) -> list[int]:
    """Indices of the pitched tracks that carry the melody.

    Parameters
    ----------
    score : symusic.Score
    parts : {"melodic", "all", "melody"}
        ``"melodic"`` (default) leaves out drums and bass lines, like the
        vocals + other stems MusicGen-Melody was conditioned on; ``"all"``
        keeps every pitched track; ``"melody"`` only the melody track.  When
        the choice leaves no notes, every pitched track is used.
    roles : list of str, optional
        Role of each track (``SeedAnalysis.tracks[i].role``); without it no
        track counts as bass.
    melody_track : int, optional
        Index of the melody track, for ``parts="melody"``.
    """
    if parts not in PARTS:
        raise ParameterError(f"chroma_parts must be one of {', '.join(PARTS)}, got {parts!r}")
    pitched = [i for i, t in enumerate(score.tracks) if not t.is_drum and len(t.notes)]
    chosen = pitched
    if parts == "melodic" and roles is not None:
        chosen = [i for i in pitched if i >= len(roles) or roles[i] not in ("bass", "drums")]
    elif parts == "melody":
        chosen = [i for i in pitched if i == melody_track]
    return chosen or pitched


def score_notes(score, tracks: list[int] | None = None) -> tuple[np.ndarray, ...]:
    """``(start_s, end_s, pitch, velocity)`` arrays of a symusic score's notes.

    Parameters
    ----------
    score : symusic.Score
        Any time unit.
    tracks : list of int, optional
        Track indices (default: every pitched track).
    """
    sec = score.to("second")
    if tracks is None:
        tracks = select_tracks(sec, parts="all")
    cols = {"time": [], "duration": [], "pitch": [], "velocity": []}
    for i in tracks:
        arr = sec.tracks[i].notes.numpy()
        for k in cols:
            cols[k].append(np.asarray(arr[k]))
    if not tracks:
        empty = np.zeros(0)
        return empty, empty, empty.astype(np.int64), empty.astype(np.int64)
    start = np.concatenate(cols["time"]).astype(np.float64)
    end = start + np.concatenate(cols["duration"]).astype(np.float64)
    return (start, end, np.concatenate(cols["pitch"]).astype(np.int64),
            np.concatenate(cols["velocity"]).astype(np.int64))


def chroma_from_score(score, *, duration_s: float | None = None, layout: ChromaLayout = ChromaLayout(),
                      tracks: list[int] | None = None) -> np.ndarray:
    """One-hot chroma of a score's notes, shape ``(frames, n_chroma)``.

    ``tracks`` picks the tracks (see :func:`select_tracks`; default every
    pitched one); ``duration_s`` defaults to the end of the last note.
    """
    start, end, pitch, vel = score_notes(score, tracks)
    if duration_s is None:
        duration_s = float(end.max()) if len(end) else 0.0
    if not duration_s > 0:
        raise ParameterError("the MIDI seed has no pitched notes to take a melody from")
    return chroma_from_notes(start, end, pitch, vel, duration_s=duration_s, layout=layout)


def chroma_from_audio(y: np.ndarray, *, sr: int, layout: ChromaLayout = ChromaLayout()) -> np.ndarray:
    """One-hot chroma of audio by the model extractor's recipe, shape ``(frames, n_chroma)``, float32.

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples) or (samples,)
        Audio; channels are averaged.
    sr : int
        Its rate in Hz; resampled to ``layout.sample_rate`` when different.
    """
    import torch
    from transformers.audio_utils import chroma_filter_bank

    from musegen.audio.io import resample

    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y[None]
    if sr != layout.sample_rate:
        y = resample(y, sr=sr, target_sr=layout.sample_rate)
    wav = torch.from_numpy(np.ascontiguousarray(y.mean(axis=0)))
    if wav.shape[-1] < layout.n_fft:  # the extractor pads short clips symmetrically
        pad = layout.n_fft - wav.shape[-1]
        wav = torch.nn.functional.pad(wav, (pad // 2, pad - pad // 2))
    window = torch.hann_window(layout.n_fft)
    spec = torch.stft(wav, n_fft=layout.n_fft, hop_length=layout.hop, window=window, center=True,
                      pad_mode="reflect", return_complex=True).abs() ** 2
    filters = torch.from_numpy(chroma_filter_bank(sampling_rate=layout.sample_rate, num_frequency_bins=layout.n_fft,
                                                  tuning=0, num_chroma=layout.n_chroma)).float()
    raw = filters @ spec  # (n_chroma, frames)
    return one_hot(raw.T.numpy())


def window_chroma(chroma: np.ndarray, *, start_s: float, seconds: float,
                  layout: ChromaLayout = ChromaLayout()) -> np.ndarray:
    """The chroma frames for one generation window, looping the melody when it is shorter.

    Mirrors AudioCraft's long-form melody conditioning, which reads the
    reference periodically from the window's start time.

    Returns
    -------
    np.ndarray, shape (min(frames in ``seconds``, chroma_length), n_chroma)
    """
    n = min(layout.chroma_length, max(1, int(math.ceil(seconds * layout.frame_rate))))
    first = int(round(start_s * layout.frame_rate))
    idx = (first + np.arange(n)) % len(chroma)
    return chroma[idx]
