"""Train the embedded symbolic model -- the only way its shipped weights are made.

    python scripts/prepare_data.py --out data/          # once: export the corpus, write the split
    python scripts/train_symbolic.py --data data/ [--minutes 60] [--out src/musegen/engines/symbolic/weights]
    python scripts/train_symbolic.py --data data/ --preset small --state runs/small [--resume] --out runs/small/best

Seeded and rerunnable: tokenized splits are cached in ``data/tokens_*.npz``
(``tokens_v2_*.npz`` for tokenizer version 2); the loss curve goes to
``<out>/train_log.jsonl`` and ``<out>/loss.png``; the best checkpoint by
validation loss is saved as fp16 safetensors with its model and tokenizer
config.

Resumable: with ``--state DIR`` the full training state is saved there every
``--save-every`` steps, when ``--minutes`` run out, on SIGTERM/SIGINT and at
the end; ``--resume`` continues it exactly (same weights as an uninterrupted
run).  With ``--state`` the cosine schedule is ``--steps`` long and
``--minutes`` only bounds this invocation; without it the schedule is fitted
to ``--minutes`` as before.

Going on from a checkpoint: ``--init DIR`` (for instance the shipped
``src/musegen/engines/symbolic/weights``) starts from its weights, shape and
tokenizer with a fresh optimizer and a new schedule (``--steps``, ``--lr``,
``--warmup``).  A build machine that keeps no ``--state`` between sessions
trains on this way, from whatever weights last shipped::

    python scripts/train_symbolic.py --data data/ --init src/musegen/engines/symbolic/weights \
        --batch 8 --steps 1000 --warmup 50 --lr 5e-4 --state runs/more --out runs/more/best
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SPLIT_FILE = ROOT / "scripts" / "data_split.json"
DEFAULT_OUT = ROOT / "src" / "musegen" / "engines" / "symbolic" / "weights"


#: model shapes for the stronger model of issue 15 (5-30 M parameters, context >= 1024)
PRESETS = {
    "compact": {"n_layer": 6, "n_head": 6, "d_model": 288, "context": 1024},  # about 6.1 M parameters
    "small": {"n_layer": 6, "n_head": 6, "d_model": 384, "context": 1024},   # about 10.8 M parameters
    "base": {"n_layer": 8, "n_head": 8, "d_model": 512, "context": 1024},    # about 25.4 M parameters
}


def load_split_items(data: Path, split_name: str, split_file: Path = SPLIT_FILE) -> list[tuple[str, str, str]]:
    """``(id, path, style)`` of every piece in one split (never one of an excluded collection)."""
    table = json.loads(split_file.read_text())
    split, excluded = table["pieces"], set(table.get("excluded_collections", {}))
    items = []
    for line in (data / "pieces.jsonl").read_text().splitlines():
        row = json.loads(line)
        if split.get(row["id"]) == split_name and row.get("collection") not in excluded:
            path = Path(row["path"])
            items.append((row["id"], str(path if path.is_absolute() else data / path), row["style"]))
    return items


def corpus_for(tokenizer, data: Path, split_name: str, *, version: int = 1, split_file: Path = SPLIT_FILE):
    import os

    from musegen.engines.symbolic.data import TokenCorpus, build_corpus

    cache = data / (f"tokens_{split_name}.npz" if version == 1 else f"tokens_v{version}_{split_name}.npz")
    if cache.exists():
        return TokenCorpus.load(cache)
    t = time.time()
    corpus = build_corpus(tokenizer, load_split_items(data, split_name, split_file))
    tmp = cache.with_name(cache.stem + ".part.npz")
    corpus.save(tmp)
    os.replace(tmp, cache)
    print(f"{split_name}: {len(corpus)} pieces, {len(corpus.ids):,} tokens ({time.time() - t:.0f} s)",
          file=sys.stderr)
    print(json.dumps({"split": split_name, "by_source": source_counts(corpus)}), file=sys.stderr)
    return corpus


def source_counts(corpus) -> dict[str, dict[str, int]]:
    """``{source: {"pieces", "tokens"}}`` of a corpus (the source is the piece id's first part)."""
    import numpy as np

    lengths = np.diff(corpus.offsets)
    out: dict[str, dict[str, int]] = {}
    for name, n in zip(corpus.names, lengths):
        row = out.setdefault(name.split("/")[0], {"pieces": 0, "tokens": 0})
        row["pieces"] += 1
        row["tokens"] += int(n)
    return dict(sorted(out.items()))


def plot_losses(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [(r["step"], r["train_loss"]) for r in history if "train_loss" in r]
    va = [(r["step"], r["valid_loss"]) for r in history if "valid_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if tr:
        ax.plot(*zip(*tr), label="train", alpha=0.6)
    if va:
        ax.plot(*zip(*va), label="valid", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--split", type=Path, default=SPLIT_FILE, help="the split file (default scripts/data_split.json)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget for training (0 = none)")
    ap.add_argument("--steps", type=int, default=100_000, help="upper bound on steps (cosine schedule length)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--preset", choices=sorted(PRESETS),
                    help="a model shape of issue 15 (small: 6x384, base: 8x512, context 1024); "
                         "--layers/--d-model/--heads/--context override it; implies --tokenizer-version 2")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--context", type=int)
    ap.add_argument("--tokenizer-version", type=int, choices=(1, 2, 3),
                    help="1: the shipped model's vocabulary (default without --preset); 2: the sources' styles; "
                         "3 (default with --preset): version 2 plus controls and infilling (layout.py)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenize-only", action="store_true")
    ap.add_argument("--no-bf16", action="store_true", help="train in float32 (bf16 autocast is the default)")
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU")
    ap.add_argument("--eval-every", type=int, default=250, help="steps between validation runs")
    ap.add_argument("--state", type=Path, help="folder for the full training state (resumable runs)")
    ap.add_argument("--resume", action="store_true", help="continue the run saved in --state")
    ap.add_argument("--init", type=Path, metavar="DIR",
                    help="start from the weights of this checkpoint (e.g. the shipped one) with a fresh optimizer "
                         "and schedule: how training goes on across machines that keep no --state")
    ap.add_argument("--save-every", type=int, default=500, help="steps between state saves (with --state)")
    ap.add_argument("--until", type=int, default=0, help="stop (saving the state) after this many steps in all")
    ap.add_argument("--reschedule", action="store_true",
                    help="with --resume: the cosine schedule is --steps long from now on (the saved run's "
                         "steps otherwise); to end a run sooner or let it go on longer")
    ap.add_argument("--fit-schedule", action="store_true",
                    help="with --state too, fit the cosine schedule to --minutes (a one-shot run, e.g. on a GPU)")
    args = ap.parse_args()
    if args.resume and args.state is None:
        ap.error("--resume needs --state DIR")
    if args.init is not None and (args.resume or args.preset or args.layers or args.d_model or args.heads
                                  or args.context or args.tokenizer_version):
        ap.error("--init takes the model's shape and tokenizer from its checkpoint; "
                 "leave out --resume, --preset, --layers, --d-model, --heads, --context and --tokenizer-version")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ap.error(f"--device {args.device}: no CUDA device here")
    shape = {"n_layer": 4, "n_head": 4, "d_model": 256, "context": 512, **PRESETS.get(args.preset, {})}
    for key, value in (("n_layer", args.layers), ("n_head", args.heads), ("d_model", args.d_model),
                       ("context", args.context)):
        if value is not None:
            shape[key] = value
    version = args.tokenizer_version or (3 if args.preset else 1)
    init_cfg = None
    if args.init is not None:
        try:
            init_cfg = json.loads((args.init / "config.json").read_text())
        except (OSError, ValueError) as exc:
            ap.error(f"--init {str(args.init)!r}: no readable config.json ({exc})")
        version = int(init_cfg.get("tokenizer_version", 1))
        shape = {k: init_cfg["model"][k] for k in ("n_layer", "n_head", "d_model", "context")}

    import torch

    from musegen.engines.symbolic.model import ModelConfig
    from musegen.engines.symbolic.tokens import build_tokenizer
    from musegen.engines.symbolic.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # version 3 is version 2's REMI vocabulary (and corpus) with musegen's own tokens after it
    remi_version = min(version, 2)
    tokenizer = build_tokenizer(version=remi_version)
    train_c = corpus_for(tokenizer, args.data, "train", version=remi_version, split_file=args.split)
    valid_c = corpus_for(tokenizer, args.data, "valid", version=remi_version, split_file=args.split)
    corpus_for(tokenizer, args.data, "test", version=remi_version, split_file=args.split)
    if args.tokenize_only:
        return
    layout = None
    if version >= 3:
        from musegen.engines.symbolic.layout import Layout

        layout = Layout(tokenizer)
    mc = ModelConfig(vocab_size=layout.vocab_size if layout else len(tokenizer), n_layer=shape["n_layer"],
                     n_head=shape["n_head"],
                     d_model=shape["d_model"], context=shape["context"], dropout=args.dropout)
    init = None
    if args.init is not None:
        from musegen.engines.symbolic.checkpoint import load_checkpoint
        from musegen.errors import MusegenError

        try:
            init, init_tok, _ = load_checkpoint(args.init)
        except MusegenError as exc:
            print(f"Error: --init: {exc}", file=sys.stderr)
            sys.exit(2)
        if init_tok.vocab != tokenizer.vocab or init.cfg.vocab_size != mc.vocab_size:
            print(f"Error: --init {str(args.init)!r}: its vocabulary is not tokenizer version {version}'s",
                  file=sys.stderr)
            sys.exit(2)
        init = init.float()  # shipped weights are fp16; train in float32 (bf16 autocast on top)
        for m in init.modules():  # this run's dropout, not the saved one
            if isinstance(m, torch.nn.Dropout):
                m.p = args.dropout
        init.cfg = mc
    tc = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, warmup=args.warmup, seed=args.seed,
                     threads=args.threads, time_limit_s=args.minutes * 60, eval_every=args.eval_every,
                     eval_batches=16, bf16=not args.no_bf16, device=args.device,
                     fit_to_time=args.state is None or args.fit_schedule, save_every=args.save_every if args.state else 0,
                     until=args.until, reschedule=args.reschedule)
    split = json.loads(args.split.read_text())
    sources = sorted({name.split("/")[0] for name in train_c.names})
    meta = {"data": {"train_pieces": len(train_c), "train_tokens": int(len(train_c.ids)),
                     "valid_pieces": len(valid_c), "sources": sources,
                     "held_out": sorted(split.get("held_out_collections", ["monteverdi"]))
                     + list(split.get("held_out_prefixes", []))},
            "tokenizer_version": version, "preset": args.preset or (init_cfg or {}).get("preset")}
    if init_cfg is not None:  # what this run went on from
        meta["init"] = {"from": str(args.init), "train": init_cfg.get("train"), "data": init_cfg.get("data", {}).get("sources")}
    from musegen.errors import MusegenError

    try:
        summary = train(tokenizer, train_c, valid_c, args.out, model_cfg=mc, train_cfg=tc, meta=meta,
                        log=lambda row: print(json.dumps(row), file=sys.stderr, flush=True),
                        state_dir=args.state, resume=args.resume, layout=layout, init=init)
    except MusegenError as exc:  # a state that does not fit, or none to resume: one line, exit 2
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    plot_losses(summary.pop("history"), args.out / "loss.png")
    print(json.dumps(summary, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
