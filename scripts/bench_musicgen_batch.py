"""MusicGen requests batched (``musegen.engines.batching``, as batch runs call it) against one at a time.

    python scripts/bench_musicgen_batch.py [--model DIR | --arch tiny|small] [--requests 4]
                                           [--seconds 10] [--threads 1] [--repeats 2]

``--requests`` requests that differ only in their seed (a seed sweep), each
of ``--seconds`` seconds, on a MusicGen folder or a random-weight model of
``--arch`` built in a temporary folder (nothing is downloaded).  Prints the
wall time of ``generate()`` one request after another and of one
batched call, and whether every request's audio is identical.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a MusicGen folder (default: a random-weight --arch model)")
    ap.add_argument("--arch", default="tiny", choices=("tiny", "small"))
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np

    from musegen.engines.musicgen.engine import MusicGenEngine
    from musegen.pipeline import plan_request
    from musegen.presets import load_preset

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from musegen.engines.musicgen.testing import make_model_dir

            model = str(make_model_dir(Path(tmp) / args.arch, args.arch))
        from musegen.engines.batching import generate_batched

        eng = MusicGenEngine()
        reqs = [plan_request(load_preset("lofi-chill"), random_seed=s, tempo=100, key="C", seconds=args.seconds,
                             engine_options={"model": model, "threads": args.threads, "batch_size": args.requests})
                for s in range(1, args.requests + 1)]
        eng.generate(reqs[0])  # load the model, warm up
        for _ in range(args.repeats):
            t = time.perf_counter()
            solo = [eng.generate(r) for r in reqs]
            t_solo = time.perf_counter() - t
            t = time.perf_counter()
            many = generate_batched(eng, reqs)
            t_many = time.perf_counter() - t
            same = all(np.array_equal(a.audio, b.audio) for x, y in zip(solo, many) for a, b in zip(x, y))
            print(f"{args.requests} requests x {args.seconds:g} s: one at a time {t_solo:.2f} s, "
                  f"batched {t_many:.2f} s (batch {many[0][0].info['batch']}), {t_solo / t_many:.2f}x; "
                  f"identical audio: {same}", flush=True)


if __name__ == "__main__":
    main()
