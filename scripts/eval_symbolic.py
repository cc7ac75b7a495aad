"""Evaluate the embedded symbolic model on the test split (never seen in training).

    python scripts/eval_symbolic.py --data data/ [--model DIR] [--pieces 60] [--json out.json]
        [--split valid] [--option KEY=VALUE ...] [--temperature T]

1. NLL per token of the model vs an interpolated absolute-discounting n-gram
   (n=4) trained on the same training tokens, on the same test tokens.
2. Continuations: bars 1-8 of each test piece as the seed, the engine writes
   bars 9-16 (``extend``, seed parts only); compared with the true bars 9-16:
   in-key note ratio (generated vs true), pitch-class histogram overlap with
   the truth (vs a baseline that repeats the seed), note density ratio,
   repeated-bar rate, and the share of outputs that decode and render.

3. Infilling (``--task infill``, nothing else runs): bars 9-12 of the first 16 of each
   test piece are hidden and rewritten (``musegen infill --bars 9-12``); the rewrite's
   pitch-class overlap with the hidden bars, paired against copying bars 5-8 and copying
   bars 13-16 into the gap (mean difference and its standard error), the seams (gap notes
   sounding past the gap, notes per bar against the neighbouring bars'), the bars outside
   the gap left as they were, and the seconds per piece.

The continuations run the engine with its own defaults; ``--option`` and
``--temperature`` override them.  Tune settings with ``--split valid`` (the
validation pieces, also never trained on) and report the test split, so the
test numbers are not chosen by looking at the test bars.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))


# -- n-gram baseline --------------------------------------------------------------

class NGram:
    """Interpolated absolute-discounting n-gram over integer tokens (vectorised with numpy)."""

    def __init__(self, pieces: list[np.ndarray], vocab: int, n: int = 4, d: float = 0.75):
        self.V, self.n, self.d = vocab, n, d
        self.bits = int(math.ceil(math.log2(vocab + 1)))
        self.tables = []  # per order k (1..n): (keys of k-grams sorted, counts), (context keys, totals, distinct followers)
        for k in range(1, n + 1):
            grams = [self._keys(p, k) for p in pieces if len(p) >= k]
            keys, counts = np.unique(np.concatenate(grams), return_counts=True)
            ctx = keys >> self.bits
            ckeys, first = np.unique(ctx, return_index=True)
            totals = np.add.reduceat(counts, first)
            distinct = np.diff(np.append(first, len(keys)))
            self.tables.append((keys, counts, ckeys, totals, distinct))

    def _keys(self, seq: np.ndarray, k: int) -> np.ndarray:
        seq = seq.astype(np.int64)
        key = np.zeros(len(seq) - k + 1, np.int64)
        for j in range(k):
            key = (key << self.bits) | seq[j:len(seq) - k + 1 + j]
        return key

    @staticmethod
    def _lookup(sorted_keys, values, query):
        idx = np.searchsorted(sorted_keys, query)
        idx = np.clip(idx, 0, len(sorted_keys) - 1)
        hit = sorted_keys[idx] == query
        return np.where(hit, values[idx], 0), hit

    def nll(self, seq: np.ndarray) -> tuple[float, int]:
        """Summed negative log-likelihood (nats) of seq[1:] given up to n-1 previous tokens."""
        seq = seq.astype(np.int64)
        T = len(seq)
        p = np.full(T, 1.0 / self.V)
        for k in range(1, self.n + 1):
            keys, counts, ckeys, totals, distinct = self.tables[k - 1]
            pos = np.arange(k - 1, T)
            gram = np.zeros(len(pos), np.int64)
            for j in range(k):
                gram = (gram << self.bits) | seq[pos - (k - 1) + j]
            c, _ = self._lookup(keys, counts, gram)
            ctx = gram >> self.bits
            tot, hit = self._lookup(ckeys, totals, ctx)
            dis, _ = self._lookup(ckeys, distinct, ctx)
            lower = p[pos]
            with np.errstate(divide="ignore", invalid="ignore"):
                interp = np.where(hit, (np.maximum(c - self.d, 0) + self.d * dis * lower) / np.maximum(tot, 1), lower)
            p[pos] = interp
        p = np.clip(p[1:], 1e-12, 1)
        return float(-np.log(p).sum()), T - 1


# -- model NLL ---------------------------------------------------------------------

def model_nll(model, tokenizer, corpus, context: int, max_pieces: int | None = None
              ) -> tuple[float, int, list[np.ndarray]]:
    """NLL of the model on non-overlapping windows (prefix + body), and the scored bodies."""
    import torch

    from musegen.engines.symbolic.data import WindowSampler

    ws = WindowSampler(tokenizer, corpus, context, transpose=False)
    total, count, bodies = 0.0, 0, []
    span = context - 3
    with torch.inference_mode():
        for p in range(len(corpus) if max_pieces is None else min(max_pieces, len(corpus))):
            piece = corpus.piece(p).astype(np.int64)
            key = ws.key_ids[int(corpus.minor[p]), int(corpus.tonic[p])]
            prefix = [ws.bos, int(ws.style_ids[corpus.style[p]]), int(key)]
            for s in range(0, len(piece) - 1, span):
                body = piece[s:s + span]
                if len(body) < 2:
                    continue
                x = torch.tensor([prefix + body.tolist()])
                logits = model(x[:, :-1])
                logp = torch.log_softmax(logits.float(), -1)
                tgt = x[:, 1:]
                lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)[0, 3:]  # score body tokens after the first
                total += float(-lp.sum())
                count += lp.numel()
                bodies.append(body)
    return total, count, bodies


# -- continuation metrics ----------------------------------------------------------------

def bar_notes(score, bar_ticks: int, lo_bar: int, hi_bar: int):
    out = []
    for t in score.tracks:
        if t.is_drum:
            continue
        for n in t.notes:
            b = n.time // bar_ticks
            if lo_bar <= b < hi_bar:
                out.append((n.time, n.pitch, n.duration))
    return out


def pc_hist(notes) -> np.ndarray:
    h = np.zeros(12)
    for _, p, d in notes:
        h[p % 12] += d
    return h / h.sum() if h.sum() else h


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum())


def repeated_bar_rate(notes, bar_ticks: int, lo_bar: int, hi_bar: int) -> float:
    bars = {}
    for t, p, d in notes:
        bars.setdefault(t // bar_ticks, []).append((t % bar_ticks, p))
    seen, rep, total = set(), 0, 0
    for b in range(lo_bar, hi_bar):
        sig = tuple(sorted(bars.get(b, [])))
        if not sig:
            continue
        total += 1
        rep += sig in seen
        seen.add(sig)
    return rep / total if total else 0.0


def copied_in_place(notes, sketch_notes, bar_ticks: int, shift_bars: int = 8) -> float:
    """Share of ``notes`` that restate a sketch note ``shift_bars`` bars earlier: same pitch,
    same position in the bar (the issue's "notes copied in place from the sketch")."""
    if not notes:
        return 0.0
    have = {(t // bar_ticks, t % bar_ticks, p) for t, p, _ in sketch_notes}
    same = sum((t // bar_ticks - shift_bars, t % bar_ticks, p) in have for t, p, _ in notes)
    return same / len(notes)


def continuation_eval(items, model_dir, n_pieces: int, seed: int, options: dict | None = None,
                      temperature: float = 1.0) -> dict:

    from musegen.engines.base import Request
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.midi.analysis import analyze_score, scale_pitch_classes
    from musegen.midi.io import load_midi
    from musegen.presets import load_preset
    from musegen.render import render_score

    engine = SymbolicEngine(model=model_dir)
    preset = load_preset("pop-ballad")
    rows, valid, tried = [], 0, 0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    for idx in order:
        if tried >= n_pieces:
            break
        name, path, style = items[idx]
        try:
            score = load_midi(path)
            a = analyze_score(score)
        except Exception:  # noqa: BLE001 - unusable test file: skip, not counted
            continue
        if len(a.meter_map) > 1 or a.n_bars < 16:
            continue
        bt = a.bar_ticks
        seed_score = score.clip(0, 8 * bt, clip_end=True)
        if sum(len(t.notes) for t in seed_score.tracks) < 8:
            continue
        true_notes = bar_notes(score, bt, 8, 16)
        if len(true_notes) < 8:
            continue
        tried += 1
        sa = analyze_score(seed_score)
        # force the seed to end on bar 8 so the continuation starts at bar 9
        from dataclasses import replace

        sa = replace(sa, end_tick=max(sa.end_tick, 8 * bt - 1))
        req = Request(preset=replace(preset, style=style), bars=8, tempo_bpm=a.tempo_bpm, meter=a.meter,
                      tonic=a.key_tonic, mode=a.key_mode, random_seed=int(idx), variations=1,
                      seed=seed_score, seed_analysis=sa, continue_only=True, options=dict(options or {}),
                      temperature=temperature)
        try:
            (out,) = engine.generate(req)
            render_score(out.score, sample_rate=22050)
            valid += 1
        except Exception as exc:  # noqa: BLE001 - counted as invalid
            print(f"  invalid output for {name}: {exc}", file=sys.stderr)
            continue
        gen_notes = bar_notes(out.score, bt, 8, 16)
        seed_notes = bar_notes(seed_score, bt, 0, 8)
        scale = scale_pitch_classes(a.key_tonic, a.key_mode)
        inkey = lambda ns: sum(p % 12 in scale for _, p, _ in ns) / max(1, len(ns))
        th = pc_hist(true_notes)
        rows.append({
            "piece": name, "style": style,
            "inkey_gen": inkey(gen_notes), "inkey_true": inkey(true_notes),
            "pc_overlap_gen": overlap(pc_hist(gen_notes), th),
            "pc_overlap_repeat_seed": overlap(pc_hist(seed_notes), th),
            "density_ratio": len(gen_notes) / max(1, len(true_notes)),
            "repeated_bars_gen": repeated_bar_rate(gen_notes, bt, 8, 16),
            "repeated_bars_true": repeated_bar_rate(true_notes, bt, 8, 16),
            "copied_gen": copied_in_place(gen_notes, seed_notes, bt),
            "copied_true": copied_in_place(true_notes, seed_notes, bt),
            "valid": True,
        })
    summary = {"pieces": tried, "valid_share": valid / max(1, tried)}
    for key in ("inkey_gen", "inkey_true", "pc_overlap_gen", "pc_overlap_repeat_seed", "density_ratio",
                "repeated_bars_gen", "repeated_bars_true", "copied_gen", "copied_true"):
        vals = [r[key] for r in rows]
        summary[key] = float(np.mean(vals)) if vals else float("nan")
    summary["density_ratio_median"] = float(np.median([r["density_ratio"] for r in rows])) if rows else float("nan")
    summary["copied_true_median"] = float(np.median([r["copied_true"] for r in rows])) if rows else float("nan")
    if rows:
        summary["gen_minus_repeat"] = paired([r["pc_overlap_gen"] for r in rows],
                                             [r["pc_overlap_repeat_seed"] for r in rows])
        summary["inkey_gen_minus_true"] = paired([r["inkey_gen"] for r in rows], [r["inkey_true"] for r in rows])
        by_style: dict[str, list] = {}
        for r in rows:
            by_style.setdefault(r["style"], []).append(r)
        summary["by_style"] = {k: {"pieces": len(v), "pc_overlap_gen": float(np.mean([r["pc_overlap_gen"] for r in v])),
                                   "pc_overlap_repeat_seed": float(np.mean([r["pc_overlap_repeat_seed"] for r in v])),
                                   "copied_gen": float(np.mean([r["copied_gen"] for r in v]))}
                               for k, v in sorted(by_style.items())}
    return {"summary": summary, "rows": rows}


def one_meter(score):
    """``score`` with the first time signature of each tick, as the tokenizer read the training data
    (POP909 files say 4/4 and then 1/4 at tick 0; musegen's analysis reads the last, 1/4 bars)."""
    from symusic import TimeSignature

    first = {}
    for t in score.time_signatures:
        first.setdefault(int(t.time), (int(t.numerator), int(t.denominator)))
    out = score.copy()
    out.time_signatures.clear()
    for tick, (num, den) in sorted(first.items()):
        out.time_signatures.append(TimeSignature(tick, num, den))
    return out


def paired(a, b) -> dict:
    """Mean of ``a - b`` over pieces and its standard error."""
    d = np.asarray(a, float) - np.asarray(b, float)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"mean_diff": float(d.mean()) if len(d) else float("nan"), "se": se}


def infill_eval(items, model_dir, n_pieces: int, seed: int, options: dict | None = None,
                temperature: float = 1.0, gap=(9, 12)) -> dict:
    """Hide bars ``gap`` of the first 16 of each piece, rewrite them, compare with the hidden bars."""
    from dataclasses import replace

    from musegen.engines.base import Request
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.midi.analysis import analyze_score
    from musegen.midi.io import load_midi
    from musegen.presets import load_preset

    engine = SymbolicEngine(model=model_dir)
    preset = load_preset("pop-ballad")
    k, m = gap
    lo, hi = k - 1, m  # 0-based bar indices [lo, hi)
    rows, tried = [], 0
    order = np.random.default_rng(seed).permutation(len(items))
    for idx in order:
        if tried >= n_pieces:
            break
        name, path, style = items[idx]
        try:
            full = one_meter(load_midi(path))
            a = analyze_score(full)
        except Exception as exc:  # noqa: BLE001 - unusable test file: skip, not counted
            print(f"  skipped {name}: {exc}", file=sys.stderr)
            continue
        if len(a.meter_map) > 1 or a.n_bars < 16:
            continue
        bt = a.bar_ticks
        score = full.clip(0, 16 * bt, clip_end=False)
        truth = bar_notes(score, bt, lo, hi)
        if len(truth) < 4 or len(bar_notes(score, bt, 0, lo)) < 8:
            continue
        tried += 1
        sa = analyze_score(score)
        req = Request(preset=replace(preset, style=style), bars=m - k + 1, tempo_bpm=a.tempo_bpm, meter=a.meter,
                      tonic=a.key_tonic, mode=a.key_mode, random_seed=int(idx), seed=score, seed_analysis=sa,
                      continue_only=True, infill=(k, m), options=dict(options or {}), temperature=temperature)
        t0 = time.perf_counter()
        try:
            (out,) = engine.generate(req)
        except Exception as exc:  # noqa: BLE001 - counted as invalid
            print(f"  invalid output for {name}: {exc}", file=sys.stderr)
            rows.append({"piece": name, "valid": False})
            continue
        secs = time.perf_counter() - t0
        start, end = lo * bt, hi * bt
        gen = bar_notes(out.score, bt, lo, hi)
        def outside(s, start=start, end=end):
            return sorted((n.time, n.duration, n.pitch, n.velocity, i) for i, t in enumerate(s.tracks)
                          for n in t.notes if not start <= n.time < end)

        hanging = sum(1 for t in out.score.tracks for n in t.notes
                      if start <= n.time < end and n.time + n.duration > end)
        neigh = len(bar_notes(score, bt, lo - 2, lo)) + len(bar_notes(score, bt, hi, hi + 2))
        th = pc_hist(truth)
        info = out.info["infill"]
        rows.append({
            "piece": name, "style": style, "valid": True, "meter": list(a.meter), "seconds": round(secs, 2),
            "pc_overlap_gen": overlap(pc_hist(gen), th),
            "pc_overlap_copy_5_8": overlap(pc_hist(bar_notes(score, bt, lo - 4, lo)), th),
            "pc_overlap_copy_13_16": overlap(pc_hist(bar_notes(score, bt, hi, hi + 4)), th),
            "notes_gen": len(gen), "notes_true": len(truth),
            "density_vs_neighbours_gen": (len(gen) / (m - k + 1)) / max(1e-9, neigh / 4),
            "density_vs_neighbours_true": (len(truth) / (m - k + 1)) / max(1e-9, neigh / 4),
            "hanging_notes": hanging, "outside_changed": outside(out.score) != outside(score),
            "chosen": info["chosen"], "after_tokens": info["after_tokens"],
        })
    ok = [r for r in rows if r.get("valid")]
    def col(key):
        return [r[key] for r in ok]

    summary = {"pieces": tried, "valid_share": len(ok) / max(1, tried), "gap": list(gap),
               "meters": sorted({"/".join(map(str, r["meter"])) for r in ok})}
    if ok:
        for key in ("pc_overlap_gen", "pc_overlap_copy_5_8", "pc_overlap_copy_13_16", "seconds"):
            summary[key] = float(np.mean(col(key)))
        summary["gen_minus_copy_5_8"] = paired(col("pc_overlap_gen"), col("pc_overlap_copy_5_8"))
        summary["gen_minus_copy_13_16"] = paired(col("pc_overlap_gen"), col("pc_overlap_copy_13_16"))
        summary["density_ratio_gen_to_true_median"] = float(np.median(
            [r["notes_gen"] / max(1, r["notes_true"]) for r in ok]))
        summary["density_vs_neighbours_gen_median"] = float(np.median(col("density_vs_neighbours_gen")))
        summary["density_vs_neighbours_true_median"] = float(np.median(col("density_vs_neighbours_true")))
        summary["hanging_notes_total"] = int(sum(col("hanging_notes")))
        summary["pieces_with_outside_changed"] = int(sum(col("outside_changed")))
    return {"summary": summary, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: the shipped one)")
    ap.add_argument("--pieces", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--nll-pieces", type=int, default=None, help="score only the first N test pieces (smoke runs)")
    ap.add_argument("--skip-nll", action="store_true", help="only the continuation statistics")
    ap.add_argument("--split", choices=("test", "valid"), default="test",
                    help="pieces for the continuations (tune on valid, report test)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="engine option for the continuations (e.g. tonal_prior=0)")
    ap.add_argument("--task", choices=("continue", "infill"), default="continue",
                    help="continue: NLL and continuations; infill: hide bars 9-12 of 16 and rewrite them")
    ap.add_argument("--infill-pc-weight", type=float, default=None,
                    help="infill: the ranking's pitch-class weight (tuning; default the engine's PC_WEIGHT)")
    args = ap.parse_args()

    if args.task == "infill":
        from train_symbolic import load_split_items

        from musegen.engines.symbolic import infill as infill_mod

        if args.infill_pc_weight is not None:
            infill_mod.PC_WEIGHT = args.infill_pc_weight

        options = {k: json.loads(v) if v[:1] in "0123456789-tf[{" else v
                   for k, _, v in (kv.partition("=") for kv in args.option)}
        res = infill_eval(load_split_items(args.data, args.split), args.model, args.pieces, args.seed, options,
                          args.temperature)
        report = {"task": "infill", "infill": res["summary"], "split": args.split, "options": options,
                  "temperature": args.temperature, "pc_weight": infill_mod.PC_WEIGHT}
        if args.json:
            args.json.write_text(json.dumps({**report, "rows": res["rows"]}, indent=1))
        print(json.dumps(report, indent=1))
        return

    import torch
    from train_symbolic import load_split_items

    from musegen.engines.symbolic.checkpoint import load_checkpoint
    from musegen.engines.symbolic.data import TokenCorpus

    torch.set_num_threads(2)
    model, tokenizer, cfg = load_checkpoint(args.model)
    t = time.time()
    nll = {}
    if not args.skip_nll:  # version-1 tokens (scripts/eval_nll.py compares models of any version)
        test = TokenCorpus.load(args.data / "tokens_test.npz")
        train = TokenCorpus.load(args.data / "tokens_train.npz")
        nll = nll_table(model, tokenizer, test, train, args, t)
    options = {}
    for kv in args.option:
        k, _, v = kv.partition("=")
        options[k] = json.loads(v) if v[:1] in "0123456789-tf[{" else v
    cont = continuation_eval(load_split_items(args.data, args.split), args.model, args.pieces, args.seed, options,
                             args.temperature)
    print(json.dumps(cont["summary"], indent=1), file=sys.stderr)
    report = {"nll": nll, "continuation": cont["summary"], "split": args.split, "options": options,
              "temperature": args.temperature,
              "model": cfg.get("model"),
              "step": cfg.get("step")}
    if args.json:
        args.json.write_text(json.dumps({**report, "rows": cont["rows"]}, indent=1))
    print(json.dumps(report, indent=1))


def nll_table(model, tokenizer, test, train, args, t) -> dict:
    m_nll, m_n, bodies = model_nll(model, tokenizer, test, model.cfg.context, args.nll_pieces)
    ng = NGram([train.piece(i) for i in range(len(train))], len(tokenizer), n=4)
    g_nll, g_n = 0.0, 0
    for b in bodies:
        s, n = ng.nll(b)
        g_nll += s
        g_n += n
    nll = {"model_nll_per_token": m_nll / m_n, "ngram4_nll_per_token": g_nll / g_n, "test_tokens": m_n,
           "test_pieces": len(test), "seconds": round(time.time() - t, 1)}
    print(json.dumps(nll, indent=1), file=sys.stderr)
    return nll


if __name__ == "__main__":
    main()
