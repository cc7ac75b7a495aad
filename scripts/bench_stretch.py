"""Tempo change and pitch shift: the shared-phase vocoder against the previous librosa code (issue 19, item 3).

    python scripts/bench_stretch.py [WAV] [--rate 1.1] [--semitones 3] [--repeats 3]

Without WAV, renders ``samples/chord-loop.mid`` and adds the default
reverb, which gives a stereo mix like a generated song's.  For a time
stretch by ``--rate`` and a pitch shift by ``--semitones`` it prints, for the
input, the previous code (``librosa.effects.time_stretch`` / ``pitch_shift``
on all channels, each with its own phase) and the current
:mod:`musegen.audio.effects`:

* left/right correlation, mono fold-down RMS (dBFS), integrated loudness (LUFS), peak;
* length error against ``samples / rate`` (ms);
* spectral convergence of the stretch, ``||S(out)| - T|| / ||T||``, where
  ``T`` is the input's magnitude spectrogram read at the stretched times:
  how far each channel is from a consistent stretched signal (lower is
  better), averaged over the channels;
* the least CPU time (``time.process_time``: other load on the machine
  barely moves it) of ``--repeats`` runs of each, in the same process after
  a warm-up, and their ratio.  librosa's import and numba compilation are
  left out, so the ratio understates what a ``musegen post`` run saves.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _input(path):
    from musegen.audio import effects

    if path:
        import soundfile as sf

        y, sr = sf.read(path, dtype="float32", always_2d=True)
        return np.ascontiguousarray(y.T), sr
    from symusic import Score

    from musegen.render import render_score

    y = render_score(Score(str(ROOT / "samples" / "chord-loop.mid")), sample_rate=44100)
    return effects.reverb(y, sr=44100), 44100


def _mag(x, n_fft=2048, hop=512):
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    x = np.pad(x, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * win, axis=-1))


def _convergence(y, out, rate):
    """Mean over the channels, each measured on its own."""
    scores = []
    for c in range(y.shape[0]):
        src, got = _mag(y[c]), _mag(out[c])
        pos = np.arange(got.shape[0]) * rate
        k = np.minimum(np.floor(pos).astype(int), src.shape[0] - 2)
        a = np.clip(pos - k, 0, 1)[:, None]
        target = (1 - a) * src[k] + a * src[k + 1]
        scores.append(np.linalg.norm(got - target) / np.linalg.norm(target))
    return float(np.mean(scores))


def _stats(y, sr):
    from musegen.audio._loudness import integrated_loudness

    mono = y.mean(axis=0, dtype=np.float64)
    return (f"corr L/R {np.corrcoef(y[0], y[1])[0, 1]:.3f}, mono {10 * math.log10(np.mean(mono**2)):.2f} dBFS, "
            f"{integrated_loudness(y, sr=sr):.2f} LUFS, peak {20 * math.log10(np.abs(y).max()):.2f} dBFS")


def _timed(func, repeats):
    best, out = math.inf, None
    for _ in range(repeats):
        t = time.process_time()
        out = func()
        best = min(best, time.process_time() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wav", nargs="?")
    ap.add_argument("--rate", type=float, default=1.1)
    ap.add_argument("--semitones", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from musegen.audio import effects
    import librosa

    y, sr = _input(args.wav)
    print(f"input: {y.shape[1] / sr:.1f} s, {sr} Hz: {_stats(y, sr)}")
    rate, steps = args.rate, args.semitones

    def old_stretch():
        return librosa.effects.time_stretch(y, rate=rate).astype(np.float32)

    def old_shift():
        return librosa.effects.pitch_shift(y, sr=sr, n_steps=steps, res_type="soxr_hq").astype(np.float32)

    cases = [
        (f"stretch x{rate:g}", old_stretch, lambda: effects.time_stretch(y, sr=sr, rate=rate), rate),
        (f"pitch {steps:+g} st", old_shift, lambda: effects.pitch_shift(y, sr=sr, semitones=steps), None),
    ]
    for name, old, new, r in cases:
        old(), new()  # warm-up: numba compilation, first allocations
        t_old, y_old = _timed(old, args.repeats)
        t_new, y_new = _timed(new, args.repeats)
        want = round(y.shape[1] / r) if r else y.shape[1]
        for label, out, dt in (("previous", y_old, t_old), ("current ", y_new, t_new)):
            extra = f", spectral convergence {_convergence(y, out, r):.3f}" if r else ""
            print(f"{name} {label}: {dt:.2f} s CPU; {_stats(out, sr)}; length error "
                  f"{(out.shape[1] - want) / sr * 1000:+.1f} ms{extra}")
        print(f"{name}: current / previous time x{t_new / t_old:.2f}")


if __name__ == "__main__":
    main()
