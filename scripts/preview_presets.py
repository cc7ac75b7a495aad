#!/usr/bin/env python
"""Generate, render and plot every built-in preset (and continue the sample seeds) for listening and looking.

Usage::

    python scripts/preview_presets.py [OUT_DIR] [--bars 16] [--seed 1] [--no-audio] [--spectrogram]
                                      [--only NAME ...] [--no-seeds] [--reference]

For each preset it writes ``NAME.mid``, ``NAME.wav`` (bundled SoundFont) and
``NAME.png`` (piano roll, one colour per track, drums below); for each MIDI
file in ``samples/`` a continuation ``seed-NAME.*`` with the seed's end
marked.  ``--reference`` adds piano rolls of a POP909 song and (when music21
is installed) a Bach chorale for comparison.  Progress goes to stderr; the
output folder is printed on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOUNDFONT = ROOT / "src" / "musegen" / "render" / "soundfonts" / "TimGM6mb.sf2"
COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plot_roll(score, path: Path, title: str, *, mark: int | None = None, bars: int | None = None) -> None:
    """Piano roll of ``score`` (ticks): pitched tracks above, drum hits below, bar lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tpq = score.ticks_per_quarter
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    bar = tpq * 4 * (ts.numerator if ts else 4) // (ts.denominator if ts else 4)
    end = score.end() if bars is None else bars * bar
    pitched = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    pitched = pitched[1:] + pitched[:1]   # the first track (the lead) is drawn last, on top
    drums = [t for t in score.tracks if t.is_drum and len(t.notes)]
    fig, axes = plt.subplots(2 if drums else 1, 1, figsize=(max(12, end / bar * 0.9), 7 if drums else 5.5),
                             sharex=True, gridspec_kw={"height_ratios": [4, 1.2]} if drums else None,
                             squeeze=False)
    ax = axes[0][0]
    lo, hi = 127, 0
    for i, t in enumerate(pitched):
        c = COLOURS[(i + 1) % len(pitched) % len(COLOURS)]
        top = i == len(pitched) - 1
        for n in t.notes:
            if n.start >= end:
                continue
            ax.add_patch(plt.Rectangle((n.start / bar, n.pitch - 0.4), n.duration / bar, 0.8, facecolor=c,
                                       alpha=0.35 + 0.6 * n.velocity / 127, zorder=3 if top else 2,
                                       edgecolor="k" if top else "none", linewidth=0.6 if top else 0))
            lo, hi = min(lo, n.pitch), max(hi, n.pitch)
        ax.plot([], [], color=c, lw=6, label=f"{t.name} ({t.program})")
    ax.set_ylim(lo - 2, hi + 2)
    ax.set_xlim(0, end / bar)
    ax.set_ylabel("MIDI pitch")
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax.set_title(title)
    for a in [row[0] for row in axes]:
        for b in range(int(end // bar) + 1):
            a.axvline(b, color="0.85", lw=0.6, zorder=0)
        if mark is not None:
            a.axvline(mark / bar, color="k", lw=1.5)
    if drums:
        dax = axes[1][0]
        for t in drums:
            xs = [n.start / bar for n in t.notes if n.start < end]
            ys = [n.pitch for n in t.notes if n.start < end]
            ss = [4 + 20 * n.velocity / 127 for n in t.notes if n.start < end]
            dax.scatter(xs, ys, s=ss, c="k", marker="|")
        dax.set_ylabel("drum key")
    axes[-1][0].set_xlabel("bar")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def render(score, path: Path, spectrogram: Path | None = None) -> None:
    """Render with the bundled SoundFont to a WAV (peak -6 dBFS), optionally plotting a spectrogram."""
    import numpy as np
    import soundfile as sf
    from symusic import Synthesizer

    audio = Synthesizer(str(SOUNDFONT), sample_rate=44100).render(score, stereo=True)
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) or 1.0
    audio = audio / peak * 0.5
    sf.write(str(path), audio.T, 44100)
    if spectrogram is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(12, 4))
        ax.specgram(audio.mean(axis=0), NFFT=2048, Fs=44100, noverlap=1536, cmap="magma", vmin=-120)
        ax.set_ylim(0, 8000)
        ax.set_xlabel("s")
        ax.set_ylabel("Hz")
        ax.set_title(path.stem)
        fig.tight_layout()
        fig.savefig(spectrogram, dpi=80)
        plt.close(fig)


def request_for(preset, bars: int, random_seed: int, **kw):
    import random

    from musegen.engines.base import Request

    rng = random.Random(random_seed)
    tonic = preset.pick_key(rng)
    return Request(preset=preset, bars=bars, tempo_bpm=preset.pick_tempo(rng), meter=preset.meter,
                   tonic=0 if tonic is None else tonic, mode=preset.mode, random_seed=random_seed, **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(ROOT / "bench-out" / "preview"))
    ap.add_argument("--bars", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-audio", action="store_true")
    ap.add_argument("--spectrogram", action="store_true", help="also plot each rendering's spectrogram")
    ap.add_argument("--only", nargs="*", default=None, help="preset names (default: all)")
    ap.add_argument("--no-seeds", action="store_true", help="skip the sample-seed continuations")
    ap.add_argument("--reference", action="store_true", help="also plot POP909 001 and a Bach chorale")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from musegen.engines.procedural import ProceduralEngine
    from musegen.presets import list_names, load_preset

    engine = ProceduralEngine()
    names = args.only or list_names()
    for name in names:
        preset = load_preset(name)
        req = request_for(preset, args.bars, args.seed)
        t0 = time.perf_counter()
        res = engine.generate(req)[0]
        dt = time.perf_counter() - t0
        score = res.score
        score.dump_midi(str(out / f"{name}.mid"))
        chords = " ".join(c["chord"] for c in res.info.get("chords", [])[:16])
        plot_roll(score, out / f"{name}.png",
                  f"{name}: {res.info['key']}, {req.tempo_bpm:g} bpm, {res.info['meter']}, form {res.info.get('form')}"
                  f" | {chords}")
        if not args.no_audio:
            render(score, out / f"{name}.wav", out / f"{name}-spec.png" if args.spectrogram else None)
        log(f"{name}: {dt * 1000:.1f} ms, {sum(len(t.notes) for t in score.tracks)} notes")

    samples = ROOT / "samples"
    if not args.no_seeds and samples.is_dir():
        from musegen.midi.analysis import analyze_score
        from musegen.midi.io import load_midi

        for path in sorted(samples.glob("*.mid")):
            seed_score = load_midi(path)
            analysis = analyze_score(seed_score)
            preset = load_preset("pop-ballad")
            for continue_only in (True, False):
                tag = "extend" if continue_only else "generate"
                req = request_for(preset, 8, args.seed, seed=seed_score, seed_analysis=analysis,
                                  continue_only=continue_only)
                req.tempo_bpm, req.meter = analysis.tempo_bpm, analysis.meter
                req.tonic, req.mode = analysis.key_tonic, analysis.key_mode
                t0 = time.perf_counter()
                res = engine.generate(req)[0]
                dt = time.perf_counter() - t0
                stem = f"seed-{path.stem}-{tag}"
                res.score.dump_midi(str(out / f"{stem}.mid"))
                plot_roll(res.score, out / f"{stem}.png", f"{path.name} + 8 bars ({tag}): {analysis.key_name}",
                          mark=res.info.get("start_tick"))
                if not args.no_audio:
                    render(res.score, out / f"{stem}.wav", out / f"{stem}-spec.png" if args.spectrogram else None)
                log(f"{stem}: {dt * 1000:.1f} ms")

    if args.reference:
        from symusic import Score

        pop = ROOT.parent / "shared" / "data" / "pop909" / "001" / "001.mid"
        if pop.is_file():
            s = Score(str(pop))
            plot_roll(s, out / "ref-pop909-001.png", "POP909 001 (first 16 bars)", bars=16 + 1)
        try:
            import music21
        except ImportError:
            log("music21 not installed: no Bach reference")
        else:
            midi = out / "ref-bwv66.6.mid"
            music21.corpus.parse("bach/bwv66.6").write("midi", fp=str(midi))
            plot_roll(Score(str(midi)), out / "ref-bwv66.6.png", "Bach BWV 66.6")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
