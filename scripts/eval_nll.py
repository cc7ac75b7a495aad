"""NLL per REMI token on the test split: two checkpoints on the same tokens (issue 15).

    python scripts/eval_nll.py --new runs/compact-best [--old DIR] [--data data/]
        [--corpus data/tokens_v2_test.npz] [--windows 2000] [--max-body 480] [--json out.json]

Each test piece is cut into consecutive bar-aligned bodies of at most
``--max-body`` REMI tokens (a bar longer than that is cut, and the rest of it
left unscored by both).  ``--windows N`` scores a fixed-seed sample of N of
them (0: every one).  Each model sees its own conditioning prefix before the
same body:

- a checkpoint without ``extra_tokens`` (tokenizer versions 1 and 2):
  ``BOS STYLE KEY`` (a style it has no token for becomes its nearest one, as
  :func:`~musegen.engines.symbolic.tokens.condition_tokens` does);
- a tokenizer-version-3 checkpoint: ``BOS STYLE KEY`` and the controls of
  the body (:meth:`~musegen.engines.symbolic.layout.Layout.controls_of`).

Only body tokens are scored.  The controls are a function of the music, so
``p(music) = p(controls, music)``: "with controls" adds the controls' own
NLL to the body's, divided by the same REMI token count -- the number to set
against a model without controls.  The corpus's ids are mapped to each
model's ids by token string, so models of different tokenizer versions score
the same tokens.

The report (stdout, and ``--json PATH`` with one row per window) gives each
model's NLL in nats and bits per REMI token, overall and per source (the
piece id's first part), and the paired difference ``new - old`` with its
standard error over windows (and over pieces, windows of one piece being
alike).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LN2 = math.log(2.0)


@dataclass
class Scorer:
    """One checkpoint ready to score windows whose bodies are ids of the corpus's tokenizer."""

    name: str
    folder: str
    model: object                 # MusicTransformer, eval mode
    tokenizer: object             # the checkpoint's REMI tokenizer (without version 3's own tokens)
    remap: np.ndarray             # corpus id -> this model's id (-1: the model has no such token)
    layout: object | None         # a Layout for tokenizer-version-3 checkpoints, else None
    config: dict = field(default_factory=dict)

    @property
    def context(self) -> int:
        return int(self.model.cfg.context)

    def prefix(self, style: str, tonic: int, minor: bool) -> list[int]:
        from musegen.engines.symbolic.tokens import condition_tokens

        return condition_tokens(self.tokenizer, style, tonic, "minor" if minor else "major")

    def controls(self, body: np.ndarray) -> list[int]:
        if self.layout is None:
            return []
        density, polyphony, parts = self.layout.controls_of(body)
        return self.layout.controls(density, polyphony, parts or None)


def load_scorer(folder: str | Path | None, corpus_vocab: dict[str, int], *, name: str) -> Scorer:
    """A checkpoint folder (``None``: the shipped model) as a :class:`Scorer` over the corpus's ids.

    Raises
    ------
    ParameterError
        The folder is not a checkpoint.
    EngineError
        The weights do not fit the config, or the extra tokens are not version 3's
        (:func:`~musegen.engines.symbolic.checkpoint.load_checkpoint`).
    """
    from musegen.engines.symbolic.checkpoint import TOKENIZER, load_checkpoint, shipped_checkpoint
    from musegen.engines.symbolic.layout import Layout
    from musegen.engines.symbolic.tokens import build_tokenizer
    from musegen.errors import EngineError

    path = (Path(folder) if folder is not None else shipped_checkpoint()).resolve()
    model, _, config = load_checkpoint(path)  # checks a version-3 checkpoint's extra tokens
    model.eval()
    # the REMI tokenizer as saved, so its ids are the REMI ids whatever load_checkpoint returns
    tokenizer = build_tokenizer(path / TOKENIZER)
    extra = config.get("extra_tokens") or []
    layout = Layout(tokenizer).plain() if extra else None
    vocab = tokenizer.vocab
    want = len(vocab) + len(extra)
    if want != model.cfg.vocab_size:
        raise EngineError(f"{str(path)!r}: tokenizer has {want} ids with its extra tokens, "
                          f"the model {model.cfg.vocab_size}")
    remap = np.full(max(corpus_vocab.values()) + 1, -1, np.int64)
    for tok, i in corpus_vocab.items():
        remap[i] = vocab.get(tok, -1)
    return Scorer(name, str(path), model, tokenizer, remap, layout, config)


# -- windows ------------------------------------------------------------------------------

@dataclass
class Windows:
    piece: np.ndarray     # (W,) piece index
    start: np.ndarray     # (W,) first body token in the piece
    end: np.ndarray       # (W,) one past the last
    skipped: int          # REMI tokens no window holds (before the first bar line, or of a cut bar)
    total: int            # REMI tokens of the pieces


def bar_windows(corpus, bar_id: int, max_body: int) -> Windows:
    """Every piece in consecutive bodies that start at a bar line and hold at most ``max_body`` tokens."""
    pieces, starts, ends, skipped = [], [], [], 0
    for p in range(len(corpus)):
        ids = corpus.piece(p)
        bars = np.flatnonzero(ids == bar_id)
        if not len(bars):
            skipped += len(ids)
            continue
        skipped += int(bars[0])
        edges = np.append(bars, len(ids))
        a = int(edges[0])
        k = 1
        while k < len(edges):
            b = a
            while k < len(edges) and edges[k] - a <= max_body:
                b = int(edges[k])
                k += 1
            if b == a:  # one bar longer than a body: its first max_body tokens
                pieces.append(p), starts.append(a), ends.append(a + max_body)
                skipped += int(edges[k]) - a - max_body
                a = int(edges[k])
                k += 1
                continue
            pieces.append(p), starts.append(a), ends.append(b)
            a = b
    return Windows(np.asarray(pieces, np.int64), np.asarray(starts, np.int64), np.asarray(ends, np.int64),
                   skipped, len(corpus.ids))


def sample_windows(w: Windows, n: int, seed: int) -> Windows:
    """A fixed-seed sample of ``n`` windows (all of them for ``n`` 0 or at least their number), in corpus order."""
    if n <= 0 or n >= len(w.piece):
        return w
    pick = np.sort(np.random.default_rng(seed).choice(len(w.piece), size=n, replace=False))
    return Windows(w.piece[pick], w.start[pick], w.end[pick], w.skipped, w.total)


# -- scoring ------------------------------------------------------------------------------

def score_windows(scorer: Scorer, corpus, styles: tuple[str, ...], w: Windows, *, batch: int = 16,
                  progress=None) -> dict[str, np.ndarray]:
    """Per window: ``remi`` (summed NLL of the body, nats), ``n_remi`` (body tokens scored), ``controls``
    (summed NLL of the controls), ``n_controls``.

    Windows run in batches of similar length, right-padded (the model is causal, so
    padding after a window changes nothing in it).
    """
    import torch

    from musegen.errors import ParameterError

    pad = scorer.tokenizer.vocab["PAD_None"]
    seqs, heads, n_ctrl = [], [], []
    for p, a, b in zip(w.piece, w.start, w.end):
        body = scorer.remap[corpus.piece(int(p))[a:b].astype(np.int64)]
        if (body < 0).any():
            bad = int(corpus.piece(int(p))[a:b][np.argmax(body < 0)])
            raise ParameterError(f"model {scorer.folder!r} has no token for corpus id {bad} "
                                 f"(piece {corpus.names[int(p)]!r})")
        prefix = scorer.prefix(styles[int(corpus.style[p])], int(corpus.tonic[p]), bool(corpus.minor[p]))
        ctrl = scorer.controls(body)
        seq = np.concatenate([prefix, ctrl, body]).astype(np.int64)
        if len(seq) - 1 > scorer.context:
            raise ParameterError(f"--max-body: a window of {len(seq)} tokens (prefix {len(prefix)}, controls "
                                 f"{len(ctrl)}, body {len(body)}) does not fit {scorer.name}'s context of "
                                 f"{scorer.context}")
        seqs.append(seq)
        heads.append(len(prefix))
        n_ctrl.append(len(ctrl))
    remi, n_remi = np.zeros(len(seqs)), np.zeros(len(seqs), np.int64)
    controls = np.zeros(len(seqs))
    order = np.argsort([len(s) for s in seqs], kind="stable")
    t0 = time.time()
    with torch.inference_mode():
        for done, i0 in enumerate(range(0, len(order), batch)):
            idx = order[i0:i0 + batch]
            T = max(len(seqs[i]) for i in idx) - 1
            x = np.full((len(idx), T + 1), pad, np.int64)
            for r, i in enumerate(idx):
                x[r, :len(seqs[i])] = seqs[i]
            xt = torch.from_numpy(x)
            logp = torch.log_softmax(scorer.model(xt[:, :-1]).float(), dim=-1)
            lp = logp.gather(-1, xt[:, 1:].unsqueeze(-1)).squeeze(-1).double().numpy()
            for r, i in enumerate(idx):
                # target t is token t + 1: the controls are targets head-1 .. head+c-2, the body the rest
                h, c, n = heads[i], n_ctrl[i], len(seqs[i])
                controls[i] = -lp[r, h - 1:h - 1 + c].sum()
                scored = lp[r, h - 1 + c:n - 1]
                remi[i], n_remi[i] = -scored.sum(), scored.size
            if progress is not None:
                progress(scorer.name, min(i0 + batch, len(order)), len(order), time.time() - t0)
    return {"remi": remi, "n_remi": n_remi, "controls": controls, "n_controls": np.asarray(n_ctrl, np.int64)}


def _ratio_se(diff: np.ndarray, tokens: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Standard error of ``sum(diff) / sum(tokens)`` over independent groups (linearised ratio)."""
    if groups is not None:
        _, inv = np.unique(groups, return_inverse=True)
        diff = np.bincount(inv, weights=diff)
        tokens = np.bincount(inv, weights=tokens)
    g = len(diff)
    if g < 2 or tokens.sum() <= 0:
        return float("nan")
    r = diff - diff.sum() / tokens.sum() * tokens
    return float(math.sqrt(g / (g - 1) * (r ** 2).sum()) / tokens.sum())


def _round(x: float, nd: int = 5) -> float | None:
    """Rounded for the report; ``None`` where undefined (one window: no standard error), as JSON has no NaN."""
    return round(float(x), nd) if math.isfinite(x) else None


def _nll(total: float, n: float) -> dict:
    v = total / n if n else float("nan")
    return {"nats": _round(v), "bits": _round(v / LN2)}


def summarize(scores: dict[str, dict[str, np.ndarray]], tokens: np.ndarray, pieces: np.ndarray,
              old: str, new: str) -> dict:
    """Per-token NLL of each model over the windows given, and the paired difference ``new - old``."""
    n = float(tokens.sum())
    out: dict = {"windows": len(tokens), "pieces": len(np.unique(pieces)), "remi_tokens": int(n)}
    for name, s in scores.items():
        out[name] = {"remi_tokens_scored": int(s["n_remi"].sum()), "remi_only": _nll(s["remi"].sum(), n),
                     "with_controls": _nll(s["remi"].sum() + s["controls"].sum(), n),
                     "controls_per_window": round(float(s["n_controls"].mean()), 3) if len(tokens) else 0.0}
    diff = {}
    for kind, get in (("remi_only", lambda s: s["remi"]), ("with_controls", lambda s: s["remi"] + s["controls"])):
        d = get(scores[new]) - get(scores[old])
        mean = d.sum() / n if n else float("nan")
        diff[kind] = {"nats": _round(mean), "bits": _round(mean / LN2), "se_nats": _round(_ratio_se(d, tokens)),
                      "se_nats_by_piece": _round(_ratio_se(d, tokens, pieces))}
    out[f"{new}_minus_{old}"] = diff
    return out


def evaluate(scorers: dict[str, Scorer], corpus, corpus_tokenizer, *, max_body: int = 480, windows: int = 0,
             seed: int = 0, batch: int = 16, progress=None) -> dict:
    """The report: both models on the same windows of ``corpus``, overall and per source.

    Parameters
    ----------
    scorers : {"old": Scorer, "new": Scorer}
        The difference reported is ``new - old``.
    corpus : TokenCorpus
        Ids of ``corpus_tokenizer`` (REMI, no special tokens), with each piece's style, tonic and mode.
    max_body : int
        REMI tokens a window's body holds at most.
    windows : int
        A fixed-seed sample of that many windows (0: all).
    """
    from musegen.engines.symbolic.tokens import model_styles
    from musegen.errors import ParameterError

    if set(scorers) != {"old", "new"}:
        raise ParameterError(f"scorers must be 'old' and 'new', got {sorted(scorers)}")
    if max_body < 2:
        raise ParameterError(f"--max-body must be at least 2, got {max_body}")
    styles = model_styles(corpus_tokenizer)
    w = sample_windows(bar_windows(corpus, corpus_tokenizer.vocab["Bar_None"], max_body), windows, seed)
    scores = {name: score_windows(s, corpus, styles, w, batch=batch, progress=progress) for name, s in scorers.items()}
    tokens = (w.end - w.start).astype(np.float64)
    sources = np.array([corpus.names[int(p)].split("/")[0] for p in w.piece])
    report = {
        "max_body": max_body, "seed": seed, "windows_asked": windows,
        "corpus_tokens": w.total, "tokens_in_no_window": w.skipped,
        "models": {name: {"folder": s.folder, "step": s.config.get("step"),
                          "tokenizer_version": s.config.get("tokenizer_version", 1),
                          "vocab_size": s.model.cfg.vocab_size, "context": s.context,
                          "valid_loss": s.config.get("valid_loss")} for name, s in scorers.items()},
        "overall": summarize(scores, tokens, w.piece, "old", "new"),
        "by_source": {},
    }
    # without the drum performances: a model that never saw drums scores them at about 9 nats a
    # token, which alone would decide the overall figure
    melodic = sources != "groove"
    if melodic.any() and not melodic.all():
        report["overall_without_groove"] = summarize(
            {k: {kk: vv[melodic] for kk, vv in v.items()} for k, v in scores.items()},
            tokens[melodic], w.piece[melodic], "old", "new")
    for src in sorted(set(sources.tolist())):
        m = sources == src
        report["by_source"][src] = summarize({k: {kk: vv[m] for kk, vv in v.items()} for k, v in scores.items()},
                                             tokens[m], w.piece[m], "old", "new")
    report["rows"] = [
        {"piece": corpus.names[int(p)], "start": int(a), "end": int(b),
         **{f"{name}_remi": round(float(s["remi"][i]), 4) for name, s in scores.items()},
         **{f"{name}_controls": round(float(s["controls"][i]), 4) for name, s in scores.items()}}
        for i, (p, a, b) in enumerate(zip(w.piece, w.start, w.end))]
    return report


def _table(report: dict) -> str:
    def f(x, width):
        return f"{x:>{width}.4f}" if x is not None else f"{'-':>{width}}"

    head = (f"{'source':<16}{'windows':>8}{'tokens':>9}{'old':>9}{'new':>9}{'new+ctrl':>10}"
            f"{'diff':>9}{'±se':>8}{'diff+ctrl':>11}{'±se':>8}   (nats per REMI token; diff = new - old)")
    lines = [head]
    rows = [("overall", report["overall"])]
    if "overall_without_groove" in report:
        rows.append(("all but groove", report["overall_without_groove"]))
    for name, r in [*rows, *report["by_source"].items()]:
        d = r["new_minus_old"]
        lines.append(f"{name:<16}{r['windows']:>8}{r['remi_tokens']:>9}" + f(r["old"]["with_controls"]["nats"], 9)
                     + f(r["new"]["remi_only"]["nats"], 9) + f(r["new"]["with_controls"]["nats"], 10)
                     + f(d["remi_only"]["nats"], 9) + f(d["remi_only"]["se_nats"], 8)
                     + f(d["with_controls"]["nats"], 11) + f(d["with_controls"]["se_nats"], 8))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new", type=Path, required=True, help="checkpoint folder of the new model")
    ap.add_argument("--old", type=Path, default=None, help="checkpoint folder to compare with (default: the shipped one)")
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--corpus", type=Path, default=None,
                    help="tokenized split (default DATA/tokens_v2_test.npz, written by train_symbolic.py)")
    ap.add_argument("--corpus-version", type=int, default=2, choices=(1, 2),
                    help="the tokenizer version the corpus was tokenized with")
    ap.add_argument("--windows", type=int, default=2000, help="score a fixed-seed sample of N windows (0: all)")
    ap.add_argument("--max-body", type=int, default=480, help="REMI tokens per window at most")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the report (with one row per window) here")
    args = ap.parse_args()

    from musegen.errors import MusegenError, ParameterError

    try:
        import torch

        from musegen.engines.symbolic.data import TokenCorpus
        from musegen.engines.symbolic.tokens import build_tokenizer

        torch.set_num_threads(args.threads)
        path = args.corpus or args.data / ("tokens_test.npz" if args.corpus_version == 1 else
                                           f"tokens_v{args.corpus_version}_test.npz")
        if not path.is_file():
            raise ParameterError(f"no tokenized split at {str(path)!r} (scripts/train_symbolic.py "
                                 "--tokenize-only writes it; or give --corpus)")
        corpus = TokenCorpus.load(path)
        corpus_tok = build_tokenizer(version=args.corpus_version)
        scorers = {"old": load_scorer(args.old, corpus_tok.vocab, name="old"),
                   "new": load_scorer(args.new, corpus_tok.vocab, name="new")}
        t = time.time()

        def progress(name, done, total, elapsed):
            if done == total or done % (20 * args.batch) == 0:
                print(f"  {name}: {done}/{total} windows, {elapsed:.0f} s", file=sys.stderr, flush=True)

        report = evaluate(scorers, corpus, corpus_tok, max_body=args.max_body, windows=args.windows,
                          seed=args.seed, batch=args.batch, progress=progress)
    except MusegenError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    report["corpus"] = str(path)
    report["seconds"] = round(time.time() - t, 1)
    rows = report.pop("rows")
    print(_table(report), file=sys.stderr)
    if args.json:
        from musegen.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps({**report, "rows": rows}, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
