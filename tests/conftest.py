"""Shared fixtures: seeded synthetic MIDI sketches and paths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
POP909 = ROOT.parent / "shared" / "data" / "pop909"


def make_sketch(path: Path, *, tempo: float = 100.0, meter=(4, 4), bars: int = 2, tonic: int = 0,
                minor: bool = False, with_bass: bool = True) -> Path:
    """A small melody (+ bass) sketch written with symusic; returns the path."""
    from symusic import Note, Score, Tempo, TimeSignature, Track

    tpq = 480
    s = Score(tpq)
    s.tempos.append(Tempo(0, tempo))
    s.time_signatures.append(TimeSignature(0, meter[0], meter[1]))
    bar = tpq * 4 * meter[0] // meter[1]
    scale = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    mel = Track(name="melody", program=73)
    degrees = [0, 2, 4, 2, 3, 1, 0, 4, 5, 4, 2, 0]
    step = bar // 4 if meter[0] % 3 else bar // meter[0]
    t, i = 0, 0
    while t < bars * bar:
        d = degrees[i % len(degrees)]
        mel.notes.append(Note(t, step, 72 + tonic + scale[d % 7], 90))
        t += step
        i += 1
    s.tracks.append(mel)
    if with_bass:
        bass = Track(name="bass", program=33)
        for b in range(bars):
            bass.notes.append(Note(b * bar, bar // 2, 36 + tonic, 90))
            bass.notes.append(Note(b * bar + bar // 2, bar // 2, 43 + tonic, 85))
        s.tracks.append(bass)
    s.dump_midi(str(path))
    return path


@pytest.fixture
def sketch(tmp_path: Path) -> Path:
    return make_sketch(tmp_path / "sketch.mid")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: Popen keywords for a child that a test interrupts with SIGINT: a shell starts background jobs
#: with SIGINT ignored, children inherit that, and Python then never raises KeyboardInterrupt
INTERRUPTIBLE = {"preexec_fn": _default_sigint}


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run ``python -m musegen ARGS`` in a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "musegen", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
