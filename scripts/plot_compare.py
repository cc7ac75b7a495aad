"""Piano rolls to judge models by eye: real music beside what each model makes of it.

    python scripts/plot_compare.py --data data/ --out plots/ [--model DIR ...] [--pieces 3] [--source pop909]

For each of ``--pieces`` test pieces of ``--source`` (never trained on), one
PNG stacks: the real bars 1-16, then each model's ``extend`` of bars 1-8 by 8
bars (the shipped model is ``shipped``).  Also, per model: ``generate
--preset techno`` (drums from the model where it learned them) and
``accompany`` of the piece's melody (bass and piano).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", action="append", default=[], help="a checkpoint folder (repeat; 'shipped' = the shipped one)")
    ap.add_argument("--pieces", type=int, default=3)
    ap.add_argument("--source", default="pop909")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from train_symbolic import load_split_items

    from musegen.engines.base import Request
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.midi.analysis import analyze_score
    from musegen.midi.io import load_midi
    from musegen.midi.pianoroll import plot_pianorolls
    from musegen.pipeline import plan_request
    from musegen.presets import load_preset

    models = args.model or ["shipped"]
    engines = {m: SymbolicEngine(model=None if m == "shipped" else m) for m in models}
    preset = load_preset("pop-ballad")
    args.out.mkdir(parents=True, exist_ok=True)
    items = [it for it in load_split_items(args.data, "test") if it[0].startswith(args.source + "/")]
    done = 0
    for name, path, style in items:
        if done >= args.pieces:
            break
        score = load_midi(path)
        a = analyze_score(score)
        if len(a.meter_map) > 1 or a.n_bars < 16:
            continue
        bt = a.bar_ticks
        seed = score.clip(0, 8 * bt, clip_end=True)
        sa = replace(analyze_score(seed), end_tick=8 * bt - 1)
        rows = [("real bars 1-16", score.clip(0, 16 * bt, clip_end=True))]
        for m, eng in engines.items():
            req = Request(preset=replace(preset, style=style), bars=8, tempo_bpm=a.tempo_bpm, meter=a.meter,
                          tonic=a.key_tonic, mode=a.key_mode, random_seed=args.seed, variations=1, seed=seed,
                          seed_analysis=sa, continue_only=True)
            (out,) = eng.generate(req)
            rows.append((f"{Path(m).name}: extend bars 1-8 by 8", out.score))
        png = plot_pianorolls(rows, args.out / f"extend-{name.replace('/', '_')}.png")
        print(png)
        done += 1
    for m, eng in engines.items():
        req = plan_request(load_preset("techno"), bars=8, random_seed=args.seed)
        (out,) = eng.generate(req)
        print(plot_pianorolls([(f"{Path(m).name}: generate --preset techno", out.score)],
                              args.out / f"techno-{Path(m).name}.png"))


if __name__ == "__main__":
    main()
