"""Optional: MIDI from generated audio with Spotify's basic-pitch (ONNX model, shipped in its wheel).

basic-pitch is not a musegen extra: on Linux with Python >= 3.11 its package
metadata requires TensorFlow, which it does not need when onnxruntime is
present.  The README ('MusicGen') gives the install commands; without them
``--option transcribe=true`` fails with that hint.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile

import numpy as np

from musegen.errors import EngineError

INSTALL_HINT = ("pip install onnxruntime pretty_midi mir_eval 'resampy<0.4.3' scikit-learn 'setuptools<81' "
                "&& pip install --no-deps basic-pitch==0.4.0")


def _load():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # basic-pitch warns at import about every backend it lacks
    try:
        import basic_pitch
        from basic_pitch import inference
    except ImportError as exc:
        raise EngineError(f"transcription needs basic-pitch with onnxruntime ({exc.name or exc} is missing); "
                          f"install with: {INSTALL_HINT}") from None
    finally:
        root.setLevel(level)
    if not getattr(basic_pitch, "ONNX_PRESENT", False):
        raise EngineError(f"transcription needs onnxruntime; install with: {INSTALL_HINT}")
    model_path = basic_pitch.build_icassp_2022_model_path(basic_pitch.FilenameSuffix.onnx)
    return inference, model_path


def check_available() -> None:
    """Raise :class:`EngineError` with the install commands unless basic-pitch can run."""
    _load()


def transcribe(y: np.ndarray, *, sr: int, tempo_bpm: float = 120.0, program: int = 0, tpq: int = 480):
    """Notes of audio ``y`` (channels, samples) as a one-track symusic ``Score`` in ticks.

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples)
    sr : int
        Rate of ``y`` in Hz.
    tempo_bpm : float
        Tempo written into the score (times are converted from seconds with it).
    program : int
        General MIDI program of the track.
    """
    import soundfile as sf
    from symusic import Note, Score, Tempo, Track

    inference, model_path = _load()
    fd, path = tempfile.mkstemp(suffix=".wav", prefix="musegen-transcribe-")
    os.close(fd)
    try:
        sf.write(path, np.asarray(y, dtype=np.float32).T, sr, subtype="FLOAT")
        with contextlib.redirect_stdout(io.StringIO()):  # it prints progress; stdout is our payload
            _, _, events = inference.predict(path, model_or_model_path=model_path)
    except Exception as exc:  # third-party model code: keep its failure to one line
        raise EngineError(f"basic-pitch transcription failed: {exc}") from None
    finally:
        os.unlink(path)
    ticks_per_s = tpq * tempo_bpm / 60.0
    score = Score(tpq)
    score.tempos.append(Tempo(0, float(tempo_bpm)))
    track = Track(name="transcription", program=int(program))
    for start, end, pitch, amplitude, *_ in events:
        t0 = int(round(start * ticks_per_s))
        dur = max(1, int(round((end - start) * ticks_per_s)))
        track.notes.append(Note(t0, dur, int(pitch), int(np.clip(round(amplitude * 127), 1, 127))))
    track.notes.sort(key=lambda n: (n.time, n.pitch))
    score.tracks.append(track)
    return score
