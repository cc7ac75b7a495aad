"""Speed of the embedded symbolic model (issue #3).

    python scripts/bench_symbolic.py [--model DIR] [--compare DIR2] [--tokens 1500] [--repeats 3]

1. Sampling throughput with the KV cache and the grammar, one thread:
   tokens/s at batch 1 and at batch 8 (target >= 2,000 tokens/s at batch 1),
   and the time of one decode step in the NumPy runtime the engine samples
   with.
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
    """Tokens per second of the sampler the engine uses (NumPy runtime, grammar, one BLAS thread)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from musegen.engines.symbolic.checkpoint import load_runtime
    from musegen.engines.symbolic.sampler import ConstrainedSampler, SampleSettings
    from musegen.engines.symbolic.tokens import condition_tokens

    model, tok, _ = load_runtime(model_dir)
    sampler = ConstrainedSampler(model, tok)
    prompt = condition_tokens(tok, "pop", 0, "major")
    with threadpool_limits(limits=1, user_api="blas"):
        # bars chosen large; max_tokens bounds the run
        sampler.sample([prompt] * batch, bars=10_000, meter=(4, 4), settings=SampleSettings(),
                       generator=np.random.default_rng(0), max_tokens=64)
        t = time.perf_counter()
        rows = sampler.sample([prompt] * batch, bars=10_000, meter=(4, 4), settings=SampleSettings(),
                              generator=np.random.default_rng(0), max_tokens=tokens)
        dt = time.perf_counter() - t
    if batch == 1:
        st = sampler.last_stats
        print(f"  batch 1 drew {st['tokens']} tokens in {st['calls']} model calls "
              f"({st['tokens'] / st['calls']:.2f} per call with drafts of {sampler.draft_len})")
    return sum(len(r) for r in rows) / dt


def step_ms(model_dir, steps: int = 500) -> float:
    """Milliseconds per batch-1 decode step of the NumPy runtime with 300 tokens cached."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from musegen.engines.symbolic.checkpoint import load_runtime

    lm, _, _ = load_runtime(model_dir)
    with threadpool_limits(limits=1, user_api="blas"):
        cache = lm.new_cache(1)
        lm.step(np.zeros((1, 300), dtype=np.int64), cache)
        one = np.full((1, 1), 5, dtype=np.int64)
        t = time.perf_counter()
        for _ in range(steps):
            lm.step(one, cache)
            cache.length, cache.pos = 300, 300
        return 1000 * (time.perf_counter() - t) / steps


def extend_wall(repeats: int, models=(None,)) -> dict:
    """Seconds of ``musegen extend`` (8-bar sketch, +16 bars, rendered, fresh process) per model;
    the models take turns, so a drift in the machine's speed falls on each alike."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_sketch

    times: dict = {m: [] for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        sketch = make_sketch(Path(tmp) / "sketch.mid", tempo=100, bars=8)
        for i in range(repeats):
            for m in models:
                extra = ["--option", f"model={m}"] if m else []
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "musegen", "extend", str(sketch), "--bars", "16",
                                "--seed", str(i), "-o", tmp, *extra], check=True, capture_output=True)
                times[m].append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=1500)
    ap.add_argument("--compare", default=None, metavar="DIR",
                    help="a second checkpoint measured side by side with --model (default the shipped one)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    models = [args.model] + ([args.compare] if args.compare else [])
    for m in models:
        name = m or "shipped"
        print(f"[{name}] decode step at batch 1, 1 thread, 300 tokens cached: {step_ms(m):.2f} ms")
        b1 = throughput(m, args.tokens, 1)
        b8 = throughput(m, args.tokens, 8)
        print(f"[{name}] sampling, 1 thread: batch 1 {b1:,.0f} tokens/s; batch 8 {b8:,.0f} tokens/s in total")
    times = extend_wall(args.repeats, tuple(models))
    for m, ts in times.items():
        print(f"[{m or 'shipped'}] musegen extend 8-bar sketch by 16 bars, rendered, fresh process: median "
              f"{statistics.median(ts):.2f} s (runs {', '.join(f'{t:.2f}' for t in ts)})")
    if args.compare:
        a, b = (statistics.median(times[m]) for m in models)
        print(f"extend time ratio {args.compare} / {args.model or 'shipped'}: {b / a:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
