"""Does a learned style move the output toward the artist?  (issue #6)

    python scripts/prepare_data.py --out data/ --only monteverdi    # once: export the held-out madrigals
    python scripts/eval_style.py [--data data/] [--steps 200] [--minutes 5] [--methods full,lora]

Monteverdi's madrigals (music21's corpus) were kept out of the base model's
training data.  The pieces are split by a hash of their names: about four in
five teach the style (``musegen.style.learn.learn_style``: derived preset +
fine-tune), the rest are held out.  For each held-out piece the first
``--prompt-bars`` bars are the seed and each model writes the next
``--bars`` bars (``--seeds`` samples per piece); the continuations of the base
model and of the learned style are compared with the pieces' true bars:

- pitch-class histogram (relative to the piece's key), total variation distance
- melodic interval histogram of the top line (-12..12 semitones), distance
- note duration histogram (log2 bins, 1/16 note to 4 bars), distance
- onset position in the bar (16th-note grid), distance
- note density: |generated notes per bar / true notes per bar - 1|
- NLL per token of the held-out pieces under each model

The same preset and engine options (``--option KEY=VALUE``, e.g. ``candidates=1`` to
compare the models without bar ranking) drive both models (the learned style's), so the table
isolates what fine-tuning did.  The reprise is off unless an option turns it on: restating
the seed would make both models copy it.  Prints a Markdown table; ``--json`` saves it all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

DUR_EDGES = 2.0 ** np.arange(-2, 5)          # in beats: 1/16 note ... 4 bars of 4/4


def split(files: list[Path], held_share: float = 0.2) -> tuple[list[Path], list[Path]]:
    rank = sorted(files, key=lambda f: hashlib.sha256(f.name.encode()).hexdigest())
    n = max(2, round(len(files) * held_share))
    return sorted(rank[n:]), sorted(rank[:n])


# -- statistics of a set of notes --------------------------------------------------------

def notes_in(score, lo_tick: int, hi_tick: int) -> list[tuple[int, int, int]]:
    return [(n.time, n.pitch, n.duration) for t in score.tracks if not t.is_drum for n in t.notes
            if lo_tick <= n.time < hi_tick]


def histograms(notes, tonic: int, beat: int, bar: int) -> dict[str, np.ndarray]:
    pc = np.zeros(12)
    onset = np.zeros(16)
    dur = np.zeros(len(DUR_EDGES) + 1)
    for t, p, d in notes:
        pc[(p - tonic) % 12] += 1
        onset[min(15, int((t % bar) / bar * 16))] += 1
        dur[np.searchsorted(DUR_EDGES, d / beat)] += 1
    top: dict[int, int] = {}
    for t, p, _ in notes:
        top[t] = max(top.get(t, 0), p)
    line = [top[t] for t in sorted(top)]
    iv = np.zeros(25)
    for a, b in zip(line, line[1:]):
        iv[int(np.clip(b - a, -12, 12)) + 12] += 1
    return {"pitch_class": pc, "interval": iv, "duration": dur, "onset": onset}


def tv(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance of two count vectors (0 same shape .. 1 disjoint)."""
    if a.sum() == 0 or b.sum() == 0:
        return 1.0
    return 0.5 * float(np.abs(a / a.sum() - b / b.sum()).sum())


# -- models ----------------------------------------------------------------------------

def nll(model_dir, files: list[Path], model_style: str) -> float:
    import torch

    from eval_symbolic import model_nll
    from musegen.engines.symbolic.checkpoint import load_checkpoint
    from musegen.engines.symbolic.data import build_corpus

    model, tokenizer, _ = load_checkpoint(model_dir)
    corpus = build_corpus(tokenizer, [(f.stem, str(f), model_style) for f in files], log=None)
    with torch.inference_mode():
        total, count, _ = model_nll(model, tokenizer, corpus, model.cfg.context)
    return total / max(1, count)


def continuations(model_dir, preset, files: list[Path], args) -> tuple[dict, dict, list[float], list]:
    """Pooled histograms of generated and true continuations, density errors per sample, and
    ``(truth, generated)`` scores of the first sample of each piece (for pictures)."""
    from musegen.engines.base import Request
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.midi.analysis import analyze_score
    from musegen.midi.io import load_midi

    engine = SymbolicEngine(model=model_dir)
    gen_h: dict[str, np.ndarray] = {}
    true_h: dict[str, np.ndarray] = {}
    density_err, examples = [], []
    for i, f in enumerate(files):
        score = load_midi(f)
        a = analyze_score(score)
        bt, beat = a.bar_ticks, a.tpq * 4 // a.meter[1]
        lo, hi = args.prompt_bars * bt, (args.prompt_bars + args.bars) * bt
        truth = notes_in(score, lo, hi)
        if len(a.meter_map) > 1 or len(truth) < 8:
            continue
        seed = score.clip(0, lo, clip_end=True)
        sa = replace(analyze_score(seed), end_tick=lo - 1)
        for k, v in histograms(truth, a.key_tonic, beat, bt).items():
            true_h[k] = true_h.get(k, 0) + v * args.seeds
        for s in range(args.seeds):
            req = Request(preset=preset, bars=args.bars, tempo_bpm=a.tempo_bpm, meter=a.meter, tonic=a.key_tonic,
                          mode=a.key_mode, random_seed=1000 * i + s, variations=1, seed=seed, seed_analysis=sa,
                          continue_only=True, options={"accompany": False, "reprise": 0, **args.options},
                          temperature=1.0)
            (out,) = engine.generate(req)
            gen = notes_in(out.score, lo, hi)
            if s == 0:
                examples.append((score.clip(0, hi, clip_end=True), out.score))
            for k, v in histograms(gen, a.key_tonic, beat, bt).items():
                gen_h[k] = gen_h.get(k, 0) + v
            density_err.append(abs(len(gen) / len(truth) - 1.0))
    return gen_h, true_h, density_err, examples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--collection", default="monteverdi")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--methods", default="full,lora")
    ap.add_argument("--from-preset", default=None, help="base preset for the style (default: the nearest)")
    ap.add_argument("--prompt-bars", type=int, default=4)
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--learn-files", type=int, default=0, help="learn from only the first N files (0 = all)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="engine option for both models' continuations (e.g. candidates=1)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, help="folder for piano rolls: truth, base and style per held-out piece")
    args = ap.parse_args()
    args.options = {}
    for kv in args.option:
        k, _, v = kv.partition("=")
        args.options[k] = json.loads(v) if v[:1] in "0123456789-tf[{" else v

    import torch

    from musegen.presets import load_preset
    from musegen.style.learn import learn_style
    from musegen.style.store import MODEL_DIR

    torch.set_num_threads(2)
    folder = args.data / "midi" / args.collection
    files = sorted(folder.glob("*.mid"))
    if len(files) < 10:
        sys.exit(f"error: {folder} holds {len(files)} MIDI files; run "
                 f"`python scripts/prepare_data.py --out {args.data} --only {args.collection}` first")
    learn, held = split(files)
    if args.learn_files:
        learn = learn[: args.learn_files]
    print(f"{args.collection}: {len(learn)} pieces to learn from, {len(held)} held out", file=sys.stderr)
    os.environ["MUSEGEN_STYLE_DIR"] = tempfile.mkdtemp(prefix="musegen-eval-style-")
    report: dict = {"collection": args.collection, "learn_files": len(learn), "held_out": [f.name for f in held],
                    "args": {k: str(v) for k, v in vars(args).items()}, "models": {}}
    styles = {}
    for method in args.methods.split(","):
        t = time.time()
        info = learn_style([str(f) for f in learn], f"eval-{method}", steps=args.steps, minutes=args.minutes,
                           from_preset=args.from_preset, method=method, seed=0,
                           say=lambda m: print("  " + m, file=sys.stderr))
        styles[method] = info
        print(f"learned with {method} in {time.time() - t:.0f} s: validation loss "
              f"{info['training']['base_valid_loss']:.3f} -> {info['training']['best_valid_loss']:.3f}",
              file=sys.stderr)
    first = next(iter(styles.values()))
    preset = load_preset(first["name"])
    model_style = first["model_style"]
    runs = {"base": None, **{f"style ({m})": Path(info["folder"]) / MODEL_DIR for m, info in styles.items()}}
    truth = None
    pictures: dict[str, list] = {}
    for label, model_dir in runs.items():
        t = time.time()
        gen, true_h, dens, examples = continuations(model_dir, preset, held, args)
        pictures[label] = examples
        truth = true_h
        row = {k: tv(gen[k], true_h[k]) for k in true_h}
        row["density_error"] = float(np.mean(dens))
        row["nll"] = nll(model_dir, held, model_style)
        row["samples"] = len(dens)
        report["models"][label] = row
        print(f"{label}: {json.dumps({k: round(v, 4) for k, v in row.items()})} ({time.time() - t:.0f} s)",
              file=sys.stderr)
    report["training"] = {m: info["training"] for m, info in styles.items()}
    report["truth_notes"] = int(truth["pitch_class"].sum()) if truth else 0
    measures = ["pitch_class", "interval", "duration", "onset", "density_error", "nll"]
    lines = ["| model | " + " | ".join(measures) + " |", "|---" * (len(measures) + 1) + "|"]
    for label, row in report["models"].items():
        lines.append(f"| {label} | " + " | ".join(f"{row[m]:.4f}" for m in measures) + " |")
    base = report["models"]["base"]
    for label, row in report["models"].items():
        if label != "base":
            closer = all(row[m] < base[m] for m in measures)
            lines.append(f"\n{label} closer than base on every measure: {'yes' if closer else 'NO'}")
            report.setdefault("closer_on_every_measure", {})[label] = closer
    print("\n".join(lines))
    if args.plot:
        from musegen.midi.pianoroll import plot_pianorolls

        for j in range(len(pictures["base"])):
            items = [(f"held-out piece: bars 1-{args.prompt_bars} seed, then the true continuation",
                      pictures["base"][j][0])]
            items += [(f"{label}: generated from bar {args.prompt_bars + 1}", ex[j][1]) for label, ex in pictures.items()]
            plot_pianorolls(items, args.plot / f"style-eval-{j}.png")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
