"""One-file actions: render a MIDI file to audio, post-process an audio file, analyse a file.

The code behind ``musegen render``, ``post`` and ``analyze`` and their batch jobs;
:mod:`musegen.api` offers them to Python users as ``render``, ``post`` and
``analyze``.  Every output is checked against the inputs first and written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from musegen.errors import ParameterError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3")
MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")


def render_file(
    midi: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    soundfont: str | None = None,
    sample_rate: int = 44100,
    backend: str = "symusic",
    steps: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Render a MIDI file to a WAV file (atomically); returns its analysis."""
    from musegen.audio.analysis import loudness_lufs, peak_dbfs
    from musegen.audio.chain import apply_chain, validate_chain
    from musegen.audio.io import write_audio
    from musegen.midi.io import load_midi
    from musegen.errors import check_range
    from musegen.render.synth import MAX_SR, MIN_SR, render_score

    _check_out(out, AUDIO_SUFFIXES[:3], midi, soundfont)
    check_range("sample rate", sample_rate, MIN_SR, MAX_SR, integer=True)
    chain = validate_chain(list(steps))
    score = load_midi(midi)
    y = render_score(score, sample_rate=sample_rate, soundfont=soundfont, backend=backend)
    y, sr = apply_chain(y, sr=sample_rate, steps=chain)
    from musegen.provenance import render_metadata

    write_audio(out, y, sr=sr, metadata=render_metadata(score, midi, soundfont=soundfont, title=Path(out).stem,
                                                       steps=chain))
    info = {"path": str(out), "duration_s": round(y.shape[1] / sr, 3), "sample_rate": sr,
            "channels": int(y.shape[0]), "peak_dbfs": round(max(-120.0, peak_dbfs(y)), 2)}
    if chain:  # measuring loudness costs more than synthesis; only when mastering was asked for
        info["lufs"] = round(loudness_lufs(y, sr=sr), 2)
    return info


def post_file(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    steps: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Run a post-processing chain over an audio file; returns the result's analysis."""
    from musegen.audio.analysis import loudness_lufs, peak_dbfs
    from musegen.audio.chain import apply_chain, validate_chain
    from musegen.audio.io import read_audio, write_audio

    _check_out(out, AUDIO_SUFFIXES[:3], src)
    chain = validate_chain(list(steps))
    y, sr = read_audio(src)
    y, sr = apply_chain(y, sr=sr, steps=chain)
    from musegen.provenance import post_metadata

    write_audio(out, y, sr=sr, metadata=post_metadata(src, title=Path(out).stem, steps=chain))
    return {"path": str(out), "duration_s": round(y.shape[1] / sr, 3), "sample_rate": sr,
            "channels": int(y.shape[0]), "lufs": round(loudness_lufs(y, sr=sr), 2),
            "peak_dbfs": round(max(-120.0, peak_dbfs(y)), 2), "steps": chain}


def analyze_file(path: str | os.PathLike[str], *, plot: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Analyse an audio or MIDI file; optionally save a PNG (spectrogram or piano roll)."""
    if plot is not None:
        from musegen.outputs import check_outputs

        check_outputs([plot], [path])
    suffix = Path(path).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        from musegen.midi.analysis import analyze_score
        from musegen.midi.io import load_midi

        score = load_midi(path)
        result = {"path": str(path), "kind": "midi", **analyze_score(score).to_dict()}
        result.pop("melody", None)  # long; the piano roll shows it
        if plot is not None:
            from musegen.midi.pianoroll import plot_pianoroll

            plot_pianoroll(score, plot, title=Path(path).name)
    else:
        from musegen.audio.analysis import analyze_audio, plot_audio
        from musegen.audio.io import read_audio

        y, sr = read_audio(path)
        result = {"path": str(path), "kind": "audio", **analyze_audio(y, sr=sr)}
        if plot is not None:
            plot_audio(y, sr=sr, path=plot, title=Path(path).name)
    if plot is not None:
        result["plot"] = str(plot)
    return result


def _check_out(out: str | os.PathLike[str], allowed: tuple[str, ...], *inputs) -> None:
    from musegen.outputs import check_outputs

    check_outputs([out], list(inputs))
    suffix = Path(out).suffix.lower()
    if suffix not in allowed:
        raise ParameterError(f"output {str(out)!r} must end in one of {', '.join(allowed)}")
    parent = Path(out).parent
    if not parent.is_dir():
        raise ParameterError(f"output folder {str(parent)!r} does not exist")
