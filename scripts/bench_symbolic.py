"""Speed of the embedded symbolic model (issue #3).

    python scripts/bench_symbolic.py [--model DIR] [--tokens 1500]

1. Sampling throughput with the KV cache and the grammar, one thread:
   tokens/s at batch 1 and at batch 8 (target >= 2,000 tokens/s at batch 1).
2. ``musegen extend`` of an 8-bar sketch by 16 bars, rendered, in a fresh
   process (model load included; target < 3 s), median of 3.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def throughput(model_dir, tokens: int, batch: int) -> float:
    import torch

    from musegen.engines.symbolic.checkpoint import load_checkpoint
    from musegen.engines.symbolic.sampler import ConstrainedSampler, SampleSettings
    from musegen.engines.symbolic.tokens import condition_tokens

    torch.set_num_threads(1)
    model, tok, _ = load_checkpoint(model_dir)
    sampler = ConstrainedSampler(model, tok)
    prompt = condition_tokens(tok, "pop", 0, "major")
    gen = torch.Generator().manual_seed(0)
    # bars chosen large; max_tokens bounds the run
    sampler.sample([prompt] * batch, bars=10_000, meter=(4, 4), settings=SampleSettings(), generator=gen,
                   max_tokens=64)
    t = time.perf_counter()
    rows = sampler.sample([prompt] * batch, bars=10_000, meter=(4, 4), settings=SampleSettings(),
                          generator=gen, max_tokens=tokens)
    dt = time.perf_counter() - t
    return sum(len(r) for r in rows) / dt


def extend_wall(repeats: int) -> list[float]:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_sketch

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        sketch = make_sketch(Path(tmp) / "sketch.mid", tempo=100, bars=8)
        for i in range(repeats):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "musegen", "extend", str(sketch), "--bars", "16",
                            "--seed", str(i), "-o", tmp], check=True, capture_output=True)
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=1500)
    args = ap.parse_args()
    b1 = throughput(args.model, args.tokens, 1)
    b8 = throughput(args.model, args.tokens, 8)
    print(f"sampling, 1 thread: batch 1 {b1:,.0f} tokens/s (target >= 2,000); batch 8 {b8:,.0f} tokens/s in total")
    ts = extend_wall(3)
    print(f"musegen extend 8-bar sketch by 16 bars, rendered, fresh process: median {statistics.median(ts):.2f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in ts)}; target < 3 s)")


if __name__ == "__main__":
    main()
