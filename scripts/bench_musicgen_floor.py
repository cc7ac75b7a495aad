"""How fast can a MusicGen decoding step be on this machine?  (issue #4's batch-1 bound)

    python scripts/bench_musicgen_floor.py [--arch small] [--rows 2 8] [--repeat 5]

Builds the random-weight model of ``bench_musicgen.py`` and times, on their own,
the matrix products one decoding step must do with transformers' own
``F.linear`` (the products the ``exact`` kernels keep, for identical tokens):
each layer's self-attention q, k, v, out, the cross-attention q and out (its
keys and values are computed once per job), fc1, fc2, then the codebook heads.
``rows`` are the batch rows of a step (2 for one item with guidance).  It also
times a plain torch sum over the same bytes, for scale (it is not the ceiling:
``kernels=native``'s streamed products read faster).  Divide ``generate()``'s
ms/step (``bench_musicgen.py``) by the product time to get the most any loop
with MKL's products can gain.  Run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def step_weights(model):
    """(weight, bias) of every product one decoding step runs, in the order the loop runs them."""
    out = []
    for layer in model.decoder.model.decoder.layers:
        sa, ca = layer.self_attn, layer.encoder_attn
        for m in (sa.q_proj, sa.k_proj, sa.v_proj, sa.out_proj, ca.q_proj, ca.out_proj, layer.fc1, layer.fc2):
            out.append((m.weight.detach(), None if m.bias is None else m.bias.detach()))
    out += [(h.weight.detach(), None) for h in model.decoder.lm_heads]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="small", choices=["small", "tiny"])
    ap.add_argument("--rows", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--repeat", type=int, default=5, help="passes per measurement (the fastest is kept)")
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from musegen.engines.musicgen.testing import build_model

    model, _ = build_model(args.arch, seed=0)
    weights = step_weights(model)
    gb = sum(w.numel() * w.element_size() for w, _ in weights) / 1e9
    print(f"# {args.arch}: {len(weights)} products, {gb:.2f} GB of float32 weights per step, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with torch.inference_mode():
        for rows in args.rows:
            xs = {n: torch.randn(rows, 1, n) for n in {w.shape[1] for w, _ in weights}}
            best = float("inf")
            for _ in range(args.repeat + 1):  # the first pass warms up
                t = time.perf_counter()
                for w, b in weights:
                    F.linear(xs[w.shape[1]], w, b)
                best = min(best, time.perf_counter() - t)
            print(f"{rows} rows: the step's products alone take {1000 * best:.1f} ms "
                  f"({gb / best:.1f} GB/s of weights)")
        flat = torch.cat([w.flatten() for w, _ in weights])
        best = float("inf")
        for _ in range(args.repeat + 1):
            t = time.perf_counter()
            flat.sum()
            best = min(best, time.perf_counter() - t)
        print(f"a plain sum over the same {gb:.2f} GB: {1000 * best:.1f} ms ({gb / best:.1f} GB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
