"""What a fresh synthesizer per render costs (issue 19, item 2), measured side by side.

    python scripts/bench_render_synth.py [MIDI ...] [--repeats 5] [--sample-rate 44100]

Renders each MIDI file (default: ``samples/*.mid``) with ``render_score`` as
it is, and with the previous behaviour, one cached symusic ``Synthesizer``
reused by every render in the process, alternating the two in every
repeat.  Prints, summed over the files, each file's least CPU time
(``time.process_time``, which other load on the machine barely moves) of each kind,
their ratio, and how many of the cached renders differ from the fresh ones
(the defect the fresh synthesizers remove).
"""

from __future__ import annotations

import argparse
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("midi", nargs="*", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sample-rate", type=int, default=44100)
    args = ap.parse_args()

    from symusic import Score

    from musegen.render import synth

    files = args.midi or sorted((ROOT / "samples").glob("*.mid"))
    scores = [Score(str(f)) for f in files]
    fresh_factory = synth._symusic_synth
    cached_factory = lru_cache(maxsize=4)(fresh_factory)

    def render(factory, score):
        synth._symusic_synth = factory
        try:
            t = time.process_time()
            y = synth.render_score(score, sample_rate=args.sample_rate)
            return time.process_time() - t, y
        finally:
            synth._symusic_synth = fresh_factory

    for s in scores:
        render(fresh_factory, s)  # imports and first loads
    best = {"fresh": [float("inf")] * len(scores), "cached": [float("inf")] * len(scores)}
    differ = 0
    for _ in range(args.repeats):
        for i, s in enumerate(scores):
            dt, fresh = render(fresh_factory, s)
            best["fresh"][i] = min(best["fresh"][i], dt)
            dt, cached = render(cached_factory, s)
            best["cached"][i] = min(best["cached"][i], dt)
            differ += not np.array_equal(fresh, cached)
    ms = {k: sum(v) / len(scores) * 1000 for k, v in best.items()}
    print(f"{len(scores)} files x {args.repeats} repeats at {args.sample_rate} Hz, least CPU time of each: "
          f"fresh synthesizer per render {ms['fresh']:.1f} ms/render, cached {ms['cached']:.1f} ms/render, "
          f"ratio x{ms['fresh'] / ms['cached']:.2f}; cached renders that differ from fresh ones: "
          f"{differ} of {args.repeats * len(scores)}")

if __name__ == "__main__":
    main()
