"""Speed figures for the backbone (issue #2), measured side by side.

    python scripts/bench_speed.py [--midi SONG.mid] [--repeats 3]

1. ``musegen --help`` wall time in a fresh process, and which heavy modules it imports.
2. generate + render + post for 60 s of pop-ballad (lead, harmony, pad, bass,
   drums), in process after a warm-up run (process start and imports
   excluded), as a real-time factor: with the procedural engine (the issue #2
   target) and with the embedded model.
3. Rendering one MIDI file with musegen (symusic backend, WAV written) versus
   the FluidSynth command line (``fluidsynth -ni -F out.wav``) on the same
   MIDI and SoundFont, alternating runs, as a ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MIDI = ROOT.parent / "shared" / "data" / "pop909" / "001" / "001.mid"


def bench_help(repeats: int) -> None:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "musegen", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    probe = ("import sys, musegen.cli.main; print(sorted(m for m in ('torch', 'transformers', 'librosa', "
             "'numba', 'scipy', 'matplotlib', 'numpy') if m in sys.modules))")
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    print(f"musegen --help: median {statistics.median(times) * 1000:.0f} ms over {repeats} runs "
          f"(target < 500 ms); heavy modules imported: {heavy.strip()}")


def bench_generate(repeats: int, engine: str) -> None:
    from musegen.pipeline import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate("pop-ballad", seconds=10, seed=0, out_dir=tmp, engine=engine)  # warm caches and imports
        times, stages = [], []
        for i in range(repeats):
            t = time.perf_counter()
            (res,) = generate("pop-ballad", seconds=60, seed=100 + i, out_dir=tmp, engine=engine)
            times.append(time.perf_counter() - t)
            stages.append(res.sidecar["timings"])
        music = res.sidecar["analysis"]["music_s"]
        parts = len(res.sidecar["analysis"]["tracks"])
    med = statistics.median(times)
    print(f"generate+render+post ({engine}), {music:.0f} s of music, {parts} parts: median {med:.2f} s "
          f"= {music / med:.0f}x real time (target >= 30x, < 2 s); stages of the last run: {stages[-1]}")


def bench_render(midi: Path, repeats: int) -> None:
    from musegen.api import render
    from musegen.render import default_soundfont

    exe = shutil.which("fluidsynth")
    sf = default_soundfont()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        render(midi, os.path.join(tmp, "warm.wav"))
        for _ in range(repeats):
            t = time.perf_counter()
            render(midi, os.path.join(tmp, "ours.wav"))
            ours.append(time.perf_counter() - t)
            if exe:
                t = time.perf_counter()
                subprocess.run([exe, "-ni", "-q", "-F", os.path.join(tmp, "fs.wav"), str(sf), str(midi)],
                               check=True, capture_output=True)
                theirs.append(time.perf_counter() - t)
    o = statistics.median(ours)
    line = f"render {midi.name}: musegen median {o:.2f} s"
    if theirs:
        f = statistics.median(theirs)
        line += f", fluidsynth CLI median {f:.2f} s, ratio {f / o:.1f}x (target >= 3x)"
    else:
        line += " (fluidsynth not installed: apt install fluidsynth for the comparison)"
    print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--midi", type=Path, default=DEFAULT_MIDI)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    bench_help(max(5, args.repeats))
    bench_generate(args.repeats, "procedural")
    bench_generate(args.repeats, "symbolic")
    if args.midi.is_file():
        bench_render(args.midi, args.repeats)
    else:
        print(f"skipping render comparison: {args.midi} not found")


if __name__ == "__main__":
    main()
