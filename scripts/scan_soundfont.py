"""Find the notes that hang symusic's synthesizer with a SoundFont (renders never return).

    python scripts/scan_soundfont.py [FONT.sf2] [--out FILE.json] [--timeout 2]

symusic's synthesizer spins forever on some (program, key) pairs of some fonts
(the bundled TimGM6mb.sf2 hangs on program 81, key 102, for one), and while it
spins it holds the GIL, so nothing in the process can stop it.  This renders
every melodic program (bank 0) and every drum key (bank 128) at every key,
one short note each, in a child process watched from here: a note that does
not return within ``--timeout`` seconds is recorded and the child restarted
past it.  The JSON it writes (``{"melodic": {program: [keys]}, "drums": [keys]}``)
is what :mod:`musegen.render.synth` reads beside a font to keep such notes out
of the synthesizer.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _child(font: str, todo: list[tuple[int, int]], start: int, progress) -> None:
    from symusic import Note, Score, Synthesizer, Tempo, Track

    synth = Synthesizer(font, sample_rate=44100)
    for i in range(start, len(todo)):
        program, key = todo[i]
        s = Score(480)
        s.tempos.append(Tempo(0, 120.0))
        t = Track(program=max(program, 0), is_drum=program < 0)
        t.notes.append(Note(0, 240, key, 100))
        s.tracks.append(t)
        synth.render(s, stereo=True)
        progress.value = i + 1


def scan(font: str, timeout: float) -> dict:
    todo = [(p, k) for p in list(range(128)) + [-1] for k in range(128)]
    progress = mp.Value("i", 0)
    bad: list[tuple[int, int]] = []
    start = 0
    while start < len(todo):
        progress.value = start
        proc = mp.Process(target=_child, args=(font, todo, start, progress), daemon=True)
        proc.start()
        last, seen, hung = time.time(), start, False
        while proc.is_alive():
            proc.join(0.2)
            if progress.value != seen:
                last, seen = time.time(), progress.value
            elif time.time() - last > timeout:
                proc.kill()
                proc.join()
                hung = True
                bad.append(todo[seen])
                print(f"hangs: program {todo[seen][0]}, key {todo[seen][1]}", file=sys.stderr, flush=True)
        if not hung and proc.exitcode != 0:
            raise SystemExit(f"the renderer crashed at {todo[progress.value]} (exit code {proc.exitcode})")
        start = seen + 1 if hung else len(todo)
    melodic: dict[str, list[int]] = {}
    drums: list[int] = []
    for program, key in bad:
        if program < 0:
            drums.append(key)
        else:
            melodic.setdefault(str(program), []).append(key)
    return {"melodic": melodic, "drums": drums}


def main() -> None:
    from musegen.render.synth import default_soundfont

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("font", nargs="?", default=None)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args()
    font = Path(args.font) if args.font else default_soundfont()
    t = time.time()
    result = scan(str(font), args.timeout)
    result["font"] = font.name
    out = args.out or font.with_suffix(".hangs.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{sum(len(v) for v in result['melodic'].values()) + len(result['drums'])} hanging notes "
          f"in {time.time() - t:.0f} s -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
