"""Speed of musegen's MusicGen decoding loop against transformers' stock ``generate()`` (issue #4).

    python scripts/bench_musicgen.py [--arch small] [--seconds 5] [--batches 1 4] [--guidance 3]
                                     [--device cpu] [--repeat 1] [--json out.json]

Builds a random-weight model with facebook/musicgen-small's exact
architecture (24-layer 1024-wide decoder, T5-base text encoder, 32 kHz EnCodec;
nothing is downloaded) and, for each batch size, generates the same text
prompts with the same seed twice:

- stock: ``MusicgenForConditionalGeneration.generate(**inputs, do_sample=True,
  guidance_scale=3, top_k=250, max_new_tokens=...)`` seeded with ``torch.manual_seed``;
- musegen: :class:`musegen.engines.musicgen.fast.FastDecoder` with a
  ``torch.Generator`` seeded alike, with the ``exact`` kernels
  (transformers' own matrix products: bit-identical logits), ``fused`` and
  ``native`` (what the engine's default, ``kernels=auto``, runs on a CPU), as
  ``--kernels exact fused native`` asks; with ``--bf16`` also
  with the language model in bfloat16 (faster on CPUs with AMX, but other
  arithmetic, so other tokens: reported as the share of tokens that agree).

Both timings cover the whole job (text encoding, token sampling, EnCodec
decoding).  It reports seconds of audio produced per second of compute
(``audio_s * batch / wall_s``), the sampling time per decoding step (until
EnCodec starts), the speed-ups, and whether the two produced identical tokens
and identical audio.  Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = ["lo-fi hip hop beat with mellow rhodes chords and dusty drums",
           "epic cinematic strings and brass, slow and dark",
           "upbeat synthwave with retro 80s drums and bass",
           "acoustic jazz piano trio, warm and calm"]


def stock_run(mg, texts, frames, sampling, seed):
    """transformers' generate(): (codes, audio, total seconds, seconds until EnCodec decoding began)."""
    import torch

    from musegen.engines.musicgen.model import quiet_transformers

    m = mg.model
    captured = []
    original = m.audio_encoder.decode

    marks = []

    def spy(audio_codes, *args, **kw):
        marks.append(time.perf_counter())
        captured.append(audio_codes)
        return original(audio_codes, *args, **kw)

    m.audio_encoder.decode = spy
    try:
        t0 = time.perf_counter()
        inputs = mg.tokenizer(texts, padding=True, return_tensors="pt").to(mg.device)
        torch.manual_seed(seed)
        with quiet_transformers():
            audio = m.generate(**inputs, max_new_tokens=frames + mg.K - 1, **sampling.generate_kwargs())
        if mg.device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    finally:
        del m.audio_encoder.decode
    return captured[0][0].cpu(), audio.float().cpu().numpy(), wall, marks[0] - t0


def fast_run(mg, texts, frames, sampling, seed, kernels="exact"):
    """musegen's loop, same work (text encoding, sampling, EnCodec): like :func:`stock_run`."""
    import torch

    mg.fast.kernels = kernels
    gen_device = mg.device if mg.device != "mps" else "cpu"
    t0 = time.perf_counter()
    generator = torch.Generator(device=gen_device).manual_seed(seed)
    cond = mg.conditioning(texts, guided=sampling.guided)
    codes = mg.fast.generate(cond, batch=len(texts), new_frames=frames, sampling=sampling, generator=generator)
    sampled = time.perf_counter() - t0
    audio = mg.decode(codes)
    if mg.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    mg.fast.release()
    return codes.cpu(), audio, wall, sampled


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="small", choices=["small", "tiny"])
    ap.add_argument("--seconds", type=float, default=5.0, help="audio per item")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--top-k", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per path (the fastest is kept)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--kernels", nargs="+", default=["exact", "fused", "native"], choices=["exact", "fused", "native"])
    ap.add_argument("--bf16", action="store_true",
                    help="also time musegen's loop with the language model in bfloat16 (not identical tokens)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from musegen.engines.musicgen.fast import Sampling
    from musegen.engines.musicgen.model import MusicGenModel, pick_dtype
    from musegen.engines.musicgen.testing import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, tokenizer = build_model(args.arch, seed=args.seed)
    dtype = pick_dtype(args.dtype, args.device)
    if dtype != torch.float32:
        model.to(dtype)  # stock generate() needs one dtype throughout
    mg = MusicGenModel(model, tokenizer, name=f"random-{args.arch}", device=args.device, dtype=dtype)
    n_params = {k: sum(p.numel() for p in getattr(model, k).parameters()) / 1e6
                for k in ("decoder", "text_encoder", "audio_encoder")}
    print(f"# {args.arch} architecture, random weights, built in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k} {v:.0f} M" for k, v in n_params.items()), file=sys.stderr)
    print(f"# device {args.device}, {dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads",
          file=sys.stderr)
    sampling = Sampling(guidance_scale=args.guidance, top_k=args.top_k)
    frames = mg.frames_for(args.seconds)
    steps = frames + mg.K - 1
    audio_s = frames * mg.hop / mg.sample_rate

    rows = []
    ref_codes = {}
    for batch in args.batches:
        texts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        # warm-up at this batch size: first calls pay for allocations and kernel selection, and
        # `fused` packs its weights for oneDNN once per number of rows (a one-time cost per loaded
        # model and batch size, reported here, not in the timings)
        stock_run(mg, texts, 8, sampling, args.seed)
        for kernels in args.kernels:
            warm = fast_run(mg, texts, 8, sampling, args.seed, kernels)[2]
            print(f"batch {batch}: musegen ({kernels}) first call, 8 frames: {warm:.2f} s", file=sys.stderr)
        s_codes, s_audio, s_wall, s_tok = stock_run(mg, texts, frames, sampling, args.seed)
        for _ in range(args.repeat - 1):
            other = stock_run(mg, texts, frames, sampling, args.seed)
            s_wall, s_tok = min(s_wall, other[2]), min(s_tok, other[3])
        ref_codes[batch] = s_codes
        stock = {"stock_s": round(s_wall, 3), "stock_audio_s_per_s": round(audio_s * batch / s_wall, 4),
                 "stock_sampling_ms_per_step": round(1000 * s_tok / steps, 1)}
        print(f"batch {batch}: stock generate() {s_wall:.1f} s = {stock['stock_audio_s_per_s']:.3f} audio s/s "
              f"(sampling {stock['stock_sampling_ms_per_step']} ms/step)", flush=True)
        for kernels in args.kernels:
            f_wall = f_tok = float("inf")
            for _ in range(args.repeat):
                f_codes, f_audio, wall, tok = fast_run(mg, texts, frames, sampling, args.seed, kernels)
                f_wall, f_tok = min(f_wall, wall), min(f_tok, tok)
            same_tokens = bool(torch.equal(s_codes, f_codes))
            diff = float(np.abs(s_audio - f_audio).max()) if s_audio.shape == f_audio.shape else float("inf")
            row = {
                "batch": batch, "guidance": args.guidance, "seconds": round(audio_s, 3), "steps": steps,
                "kernels": kernels, **stock, "fast_s": round(f_wall, 3),
                "fast_audio_s_per_s": round(audio_s * batch / f_wall, 4),
                "fast_sampling_ms_per_step": round(1000 * f_tok / steps, 1),
                "speedup": round(s_wall / f_wall, 2), "sampling_speedup": round(s_tok / f_tok, 2),
                "identical_tokens": same_tokens, "max_audio_diff": diff,
            }
            rows.append(row)
            print(f"batch {batch}: musegen ({kernels}) {f_wall:.1f} s = {row['fast_audio_s_per_s']:.3f} audio s/s "
                  f"(sampling {row['fast_sampling_ms_per_step']} ms/step) | x{row['speedup']:.2f} end to end, "
                  f"x{row['sampling_speedup']:.2f} sampling | identical tokens: {same_tokens}, "
                  f"max audio diff {diff:.2g}", flush=True)
    if args.bf16:  # after the float32 runs: the same weights rounded to bfloat16
        mg.lm.to(torch.bfloat16)
        mg.dtype = torch.bfloat16
        mg.fast.kernels = "exact"
        fast_run(mg, PROMPTS[:1], 8, sampling, args.seed)
        for batch in args.batches:
            ref = next(r for r in rows if r["batch"] == batch)
            texts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
            codes, _, wall, tok = fast_run(mg, texts, frames, sampling, args.seed)
            agree = float((codes == ref_codes[batch]).float().mean())
            row = {"batch": batch, "guidance": args.guidance, "seconds": round(audio_s, 3), "steps": steps,
                   "kernels": "exact, bfloat16 LM", "stock_s": ref["stock_s"], "fast_s": round(wall, 3),
                   "fast_audio_s_per_s": round(audio_s * batch / wall, 4),
                   "fast_sampling_ms_per_step": round(1000 * tok / steps, 1),
                   "speedup": round(ref["stock_s"] / wall, 2), "identical_tokens": False,
                   "tokens_agreeing": round(agree, 4)}
            rows.append(row)
            print(f"batch {batch}: musegen (bfloat16 LM) {wall:.1f} s = {row['fast_audio_s_per_s']:.3f} audio s/s "
                  f"(sampling {row['fast_sampling_ms_per_step']} ms/step) | x{row['speedup']:.2f} end to end | "
                  f"{100 * agree:.1f}% of tokens as stock", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"# peak RSS {peak:.1f} GB", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"arch": args.arch, "device": args.device, "dtype": str(dtype),
                                               "threads": torch.get_num_threads(), "rows": rows,
                                               "peak_rss_gb": round(peak, 2)}, indent=2) + "\n")
    return 0 if all(r["identical_tokens"] for r in rows if r["kernels"] == "exact") else 1


if __name__ == "__main__":
    sys.exit(main())
