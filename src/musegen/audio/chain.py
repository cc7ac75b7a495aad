"""Post-processing chains described by data.

A preset's ``post`` list names the steps::

    post = [{op = "trim"}, {op = "fade_out", seconds = 2.0},
            {op = "loudness", lufs = -14.0, peak_db = -1.0}]

:func:`validate_chain` checks such a list when the preset loads (importing
this module pulls in neither librosa nor scipy); :func:`apply_chain` runs it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from musegen import limits
from musegen.audio import effects, io
from musegen.audio._checks import MAX_SR, MIN_SR, as_audio, check_sr
from musegen.errors import ParameterError

__all__ = ["OPS", "Op", "apply_chain", "validate_chain"]

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Op:
    """One kind of chain step.

    Attributes
    ----------
    func : callable
        ``func(y, *, sr, **params) -> y``.
    params : tuple of str
        Keyword parameters a step may set.
    required : tuple of str
        Those it must set.
    ranges : dict
        ``name -> (low, high)`` checked when the chain is validated (the
        function checks again, with the sample rate at hand).
    """

    func: Callable[..., np.ndarray]
    params: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float, float]] | None = None


def _resample(y: np.ndarray, *, sr: int, target_sr: int) -> np.ndarray:
    return io.resample(y, sr=sr, target_sr=int(target_sr))


_SECONDS = (0.0, 3600.0)
_HZ = (0.0, MAX_SR / 2)

#: Chain step names and what they run.
OPS: dict[str, Op] = {
    "trim": Op(effects.trim, ("top_db",), ranges={"top_db": effects.TOP_DB_RANGE}),
    "fade_in": Op(effects.fade_in, ("seconds",), ("seconds",), {"seconds": _SECONDS}),
    "fade_out": Op(effects.fade_out, ("seconds",), ("seconds",), {"seconds": _SECONDS}),
    "loudness": Op(
        effects.normalize_loudness,
        ("lufs", "peak_db"),
        ranges={"lufs": effects.LUFS_RANGE, "peak_db": effects.PEAK_DB_RANGE},
    ),
    "tempo": Op(
        effects.change_tempo,
        ("tempo_from", "tempo_to"),
        ("tempo_from", "tempo_to"),
        {"tempo_from": effects.TEMPO_RANGE, "tempo_to": effects.TEMPO_RANGE},
    ),
    "stretch": Op(effects.time_stretch, ("rate",), ("rate",), {"rate": effects.RATE_RANGE}),
    "pitch_shift": Op(
        effects.pitch_shift,
        ("semitones",),
        ("semitones",),
        {"semitones": (-effects.MAX_SEMITONES, effects.MAX_SEMITONES)},
    ),
    "gain": Op(effects.gain, ("db",), ("db",), {"db": effects.GAIN_DB_RANGE}),
    "peak_normalize": Op(effects.peak_normalize, ("peak_db",), ranges={"peak_db": effects.PEAK_DB_RANGE}),
    "reverb": Op(effects.reverb, ("mix", "room"), ranges={"mix": (0.0, 1.0), "room": (0.0, 1.0)}),
    "lowpass": Op(effects.lowpass, ("cutoff_hz",), ("cutoff_hz",), {"cutoff_hz": _HZ}),
    "highpass": Op(effects.highpass, ("cutoff_hz",), ("cutoff_hz",), {"cutoff_hz": _HZ}),
    "resample": Op(_resample, ("target_sr",), ("target_sr",), {"target_sr": (MIN_SR, MAX_SR)}),
}


def validate_chain(steps: Sequence[Any], *, name: str = "post") -> list[dict[str, Any]]:
    """Check a chain and return it as a list of plain dicts.

    Parameters
    ----------
    steps : list of dict
        Each step is a table with an ``op`` key naming one of :data:`OPS` and
        numeric values for that op's parameters.
    name : str
        What the chain is called in messages (``post[2]: ...``).

    Returns
    -------
    list of dict
        Copies of the steps, numbers as float (``target_sr`` as int).

    Raises
    ------
    ParameterError
        Naming the step's index, its op and the bad key or value, e.g.
        ``post[2]: unknown key 'lufz' for op 'loudness' (allowed: lufs, peak_db)``.
    """
    if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Sequence):
        raise ParameterError(f"{name} must be a list of steps like {{op = \"trim\"}}, got {type(steps).__name__}")
    checked = []
    for i, step in enumerate(steps):
        where = f"{name}[{i}]"
        if not isinstance(step, Mapping):
            raise ParameterError(f"{where}: a step must be a table like {{op = \"trim\"}}, got {step!r}")
        op_name = step.get("op")
        if op_name is None:
            raise ParameterError(f"{where}: missing 'op' (one of {', '.join(OPS)})")
        if not isinstance(op_name, str) or op_name not in OPS:
            raise ParameterError(f"{where}: unknown op {op_name!r} (known: {', '.join(OPS)})")
        op = OPS[op_name]
        allowed = ", ".join(op.params) if op.params else "none"
        clean: dict[str, Any] = {"op": op_name}
        for key, value in step.items():
            if key == "op":
                continue
            if key not in op.params:
                raise ParameterError(f"{where}: unknown key {key!r} for op {op_name!r} (allowed: {allowed})")
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ParameterError(f"{where}: {key} for op {op_name!r} must be a number, got {value!r}")
            lo, hi = (op.ranges or {}).get(key, (-math.inf, math.inf))
            if not lo <= value <= hi:
                raise ParameterError(
                    f"{where}: {key} for op {op_name!r} must be between {lo:g} and {hi:g}, got {value!r}"
                )
            clean[key] = float(value)
        missing = [key for key in op.required if key not in clean]
        if missing:
            raise ParameterError(f"{where}: op {op_name!r} needs {', '.join(repr(k) for k in missing)}")
        if "target_sr" in clean:
            if clean["target_sr"] != int(clean["target_sr"]):
                raise ParameterError(
                    f"{where}: target_sr for op {op_name!r} must be a whole number of Hz, "
                    f"got {step['target_sr']!r}"
                )
            clean["target_sr"] = int(clean["target_sr"])
        checked.append(clean)
    return checked


def apply_chain(
    y: np.ndarray,
    *,
    sr: int,
    steps: Sequence[Mapping[str, Any]],
    progress: Progress | None = None,
) -> tuple[np.ndarray, int]:
    """Run a chain of effects.

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples)
    sr : int
        Sample rate in Hz.
    steps : list of dict
        As accepted by :func:`validate_chain` (validated again here).
    progress : callable, optional
        Called as ``progress(done, total, op)`` after each step.

    Returns
    -------
    y : np.ndarray, shape (channels, samples'), float32
        With no steps, ``y`` itself (not a copy).
    sr : int
        The rate after the chain (a ``resample`` step changes it).

    Raises
    ------
    ParameterError
        A bad step, or a value the audio makes invalid (a cutoff above
        sr / 2, say), prefixed with ``post[i]``.
    """
    checked = validate_chain(steps)
    sr = check_sr(sr)
    if not checked:
        # nothing to do: the input itself (checked, in whatever memory order it has); effects
        # never write into their input, so no copy is needed to protect it
        return as_audio(y, contiguous=False), sr
    y = as_audio(y)
    _check_growth(checked, y.shape, sr)
    for i, step in enumerate(checked):
        op_name = step["op"]
        params = {k: v for k, v in step.items() if k != "op"}
        try:
            y = OPS[op_name].func(y, sr=sr, **params)
        except ParameterError as exc:
            raise ParameterError(f"post[{i}] ({op_name}): {exc}") from exc
        if op_name == "resample":
            sr = params["target_sr"]
        if progress is not None:
            progress(i + 1, len(checked), op_name)
    return y, sr


def _check_growth(steps: list[dict[str, Any]], shape: tuple[int, int], sr: int) -> None:
    """Refuse a chain whose steps would make the audio longer than the limits, before any step runs.

    Resampling 1 kHz to 384 kHz multiplies the samples by 384 and a stretch
    by up to 10; the projection follows each step's length change.
    """
    channels, frames = shape
    for i, step in enumerate(steps):
        op_name = step["op"]
        if op_name == "resample":
            frames = frames * step["target_sr"] / sr
            sr = step["target_sr"]
        elif op_name == "stretch":
            frames = frames / step["rate"]
        elif op_name == "tempo":
            frames = frames * step["tempo_from"] / step["tempo_to"]
        else:
            continue
        what = f"post[{i}] ({op_name}) would make"
        limits.check("audio_seconds", frames / sr, what=f"{what} {frames / sr:.0f} s of audio")
        limits.check("audio_samples", frames * channels, what=f"{what} {int(frames * channels):,} samples")
