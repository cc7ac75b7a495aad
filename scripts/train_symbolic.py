"""Train the embedded symbolic model -- the only way its shipped weights are made.

    python scripts/prepare_data.py --out data/          # once: export the corpus, write the split
    python scripts/train_symbolic.py --data data/ [--minutes 60] [--out src/musegen/engines/symbolic/weights]

Seeded and rerunnable: tokenized splits are cached in ``data/tokens_*.npz``;
the loss curve goes to ``<out>/train_log.jsonl`` and ``<out>/loss.png``; the
best checkpoint by validation loss is saved as fp16 safetensors with its
model and tokenizer config.
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


def load_split_items(data: Path, split_name: str) -> list[tuple[str, str, str]]:
    """``(id, path, style)`` of every piece in one split."""
    split = json.loads(SPLIT_FILE.read_text())["pieces"]
    items = []
    for line in (data / "pieces.jsonl").read_text().splitlines():
        row = json.loads(line)
        if split.get(row["id"]) == split_name:
            path = Path(row["path"])
            items.append((row["id"], str(path if path.is_absolute() else data / path), row["style"]))
    return items


def corpus_for(tokenizer, data: Path, split_name: str):
    from musegen.engines.symbolic.data import TokenCorpus, build_corpus

    cache = data / f"tokens_{split_name}.npz"
    if cache.exists():
        return TokenCorpus.load(cache)
    t = time.time()
    corpus = build_corpus(tokenizer, load_split_items(data, split_name))
    corpus.save(cache)
    print(f"{split_name}: {len(corpus)} pieces, {len(corpus.ids):,} tokens ({time.time() - t:.0f} s)",
          file=sys.stderr)
    return corpus


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
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget for training")
    ap.add_argument("--steps", type=int, default=100_000, help="upper bound on steps (cosine schedule length)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenize-only", action="store_true")
    ap.add_argument("--no-bf16", action="store_true", help="train in float32 (bf16 autocast is the default)")
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU")
    ap.add_argument("--eval-every", type=int, default=250, help="steps between validation runs")
    args = ap.parse_args()

    import torch

    from musegen.engines.symbolic.model import ModelConfig
    from musegen.engines.symbolic.tokens import build_tokenizer
    from musegen.engines.symbolic.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer()
    train_c = corpus_for(tokenizer, args.data, "train")
    valid_c = corpus_for(tokenizer, args.data, "valid")
    corpus_for(tokenizer, args.data, "test")
    if args.tokenize_only:
        return
    mc = ModelConfig(vocab_size=len(tokenizer), n_layer=args.layers, n_head=args.heads, d_model=args.d_model,
                     context=args.context, dropout=args.dropout)
    tc = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads,
                     time_limit_s=args.minutes * 60, eval_every=args.eval_every, eval_batches=16,
                     bf16=not args.no_bf16, device=args.device)
    # the schedule should end when the time does: estimate steps from a short timing run
    summary = train(tokenizer, train_c, valid_c, args.out, model_cfg=mc, train_cfg=tc,
                    meta={"data": {"train_pieces": len(train_c), "train_tokens": int(len(train_c.ids)),
                                   "valid_pieces": len(valid_c), "held_out": ["monteverdi"]}},
                    log=lambda row: print(json.dumps(row), file=sys.stderr, flush=True))
    plot_losses(summary.pop("history"), args.out / "loss.png")
    print(json.dumps(summary, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
