"""Evaluate ``accompany``: bass and chords under held-out melodies, against the songs' labelled chords.

    python scripts/eval_accompany.py [--data ../shared/data/pop909] [--songs 20] [--bars 32]
        [--seeds 1] [--json out.json] [--midi-dir DIR] [--model DIR] [--split valid]

For each POP909 song of the test split (``scripts/data_split.json``, never
trained on), its MELODY track alone (the first ``--bars`` bars, meter set to
4/4: POP909's declared meters are unreliable) is accompanied with
``--parts bass,piano`` by each engine.  The measure is **chord-tone
agreement**: the share of the generated bass and harmony note-time (seconds)
that falls on a chord tone of the chord labelled in the song's
``chord_midi.txt`` at that moment (time under an ``N`` label is left out).
Rows:

- ``procedural`` and ``symbolic``: the engines' accompaniments;
- ``piano (ceiling)``: the song's own PIANO track, measured the same way;
- ``tonic triad (floor)``: the key's tonic triad held under the whole melody.

POP909's files do not put the songs' downbeats on their bar lines, so the
melody is shifted to put them there (by ``beat_midi.txt``), as a user's
file would have them; what the engines make is shifted back to be measured.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ENGINES = ("procedural", "symbolic")
PARTS = ("bass", "piano")
NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
QUALITIES = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8), "sus2": (0, 2, 7),
    "sus4": (0, 5, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "maj6": (0, 4, 7, 9),
    "min6": (0, 3, 7, 9), "hdim7": (0, 3, 6, 10), "dim7": (0, 3, 6, 9), "minmaj7": (0, 3, 7, 11),
    "9": (0, 4, 7, 10, 2), "maj9": (0, 4, 7, 11, 2), "min9": (0, 3, 7, 10, 2), "11": (0, 4, 7, 10, 5),
    "min11": (0, 3, 7, 10, 5), "13": (0, 4, 7, 10, 9),
}
DEGREES = {"1": 0, "2": 2, "3": 4, "4": 5, "5": 7, "6": 9, "7": 11, "9": 2, "11": 5, "13": 9}


def _pc(name: str) -> int:
    pc = NAMES[name[0]]
    for ch in name[1:]:
        pc += {"b": -1, "#": 1}[ch]
    return pc % 12


def _degree(text: str) -> int | None:
    text = text.strip().lstrip("*")
    shift = 0
    while text and text[0] in "b#":
        shift += -1 if text[0] == "b" else 1
        text = text[1:]
    return None if text not in DEGREES else (DEGREES[text] + shift) % 12


def parse_label(label: str) -> frozenset[int] | None:
    """The pitch classes of a Harte-style label (``A:min7``, ``C:maj/3``, ``G:sus4(b7)``); None for ``N``."""
    if label in ("N", "X") or ":" not in label:
        return None
    root_s, rest = label.split(":", 1)
    root = _pc(root_s)
    rest, _, bass = rest.partition("/")
    quality, _, added = rest.partition("(")
    ivs = set(QUALITIES.get(quality, QUALITIES["min" if quality.startswith("min") else "maj"]))
    for d in added.rstrip(")").split(","):
        x = _degree(d) if d.strip() else None
        if x is not None:
            ivs.add(x)
    if bass:
        x = _degree(bass)
        if x is not None:
            ivs.add(x)
    return frozenset((root + i) % 12 for i in ivs)


def read_chords(path: Path) -> list[tuple[float, float, frozenset[int] | None]]:
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) >= 3:
            out.append((float(f[0]), float(f[1]), parse_label(f[2])))
    return sorted(out)


def agreement(notes, chords) -> tuple[float, float]:
    """(chord-tone seconds, labelled seconds) of ``notes`` = ``(start_s, end_s, pitch)``."""
    starts = [c[0] for c in chords]
    on = total = 0.0
    for a, b, p in notes:
        i = max(0, bisect.bisect_right(starts, a) - 1)
        while i < len(chords) and chords[i][0] < b:
            ca, cb, pcs = chords[i]
            ov = min(b, cb) - max(a, ca)
            if ov > 0 and pcs is not None:
                total += ov
                on += ov if p % 12 in pcs else 0.0
            i += 1
    return on, total


def seconds_notes(score, tracks, shift: float = 0.0) -> list[tuple[float, float, int]]:
    """``(start_s, end_s, pitch)`` of the notes of ``tracks``, ``shift`` seconds earlier."""
    sec = score.to("second")
    return [(float(n.time) - shift, float(n.time + n.duration) - shift, int(n.pitch))
            for i in tracks for n in sec.tracks[i].notes]


def melody_file(song: Path, bars: int, out: Path):
    """The song's MELODY track in 4/4, shifted so the song's downbeats (``beat_midi.txt``) fall on
    bar lines, its first ``bars`` bars from the first downbeat, written to ``out``.

    Returns the full score, the last tick measured (the song's ticks) and the shift in seconds
    (added to the melody: subtract it from what is made over it).  A song with tempo changes
    is not used (None).
    """
    from symusic import Score, TimeSignature, Track

    full = Score(str(song))
    mel = next(t for t in full.tracks if t.name.strip().upper() == "MELODY")
    if len({round(t.qpm, 3) for t in full.tempos}) > 1:
        return None
    qpm = float(full.tempos[0].qpm) if len(full.tempos) else 120.0
    tpq = full.ticks_per_quarter
    bar = 4 * tpq
    beats = [line.split() for line in (song.parent / "beat_midi.txt").read_text().splitlines() if line.strip()]
    down_s = next(float(b[0]) for b in beats if len(b) >= 3 and float(b[2]) == 1.0)
    down = int(round(down_s * qpm / 60.0 * tpq))
    shift = (-down) % bar
    end = down + bars * bar
    s = Score(tpq)
    for t in full.tempos:
        s.tempos.append(t)
    s.time_signatures.append(TimeSignature(0, 4, 4))
    trk = Track(name="MELODY", program=int(mel.program))
    for n in mel.notes:
        if n.time < end:
            n2 = n.copy()
            n2.time = int(n.time) + shift
            n2.duration = min(int(n.duration), end - int(n.time))
            trk.notes.append(n2)
    s.tracks.append(trk)
    s.dump_midi(str(out))
    return full, end, shift / tpq * 60.0 / qpm


def accompany(engine, path: Path, seed: int):
    from musegen.pipeline import load_seed, plan_request
    from musegen.pipeline.accompaniment import accompany_preset, roles_of
    from musegen.presets import load_preset

    score, analysis, _ = load_seed(path)
    preset = accompany_preset(load_preset("pop-ballad"), PARTS)
    req = plan_request(preset, seed_score=score, seed_analysis=analysis, random_seed=seed,
                       add_roles=roles_of(PARTS))
    (out,) = engine.generate(req)
    return req, out.score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "pop909")
    ap.add_argument("--songs", type=int, default=20)
    ap.add_argument("--bars", type=int, default=32, help="bars of each melody (from its start)")
    ap.add_argument("--seeds", type=int, default=1, help="random seeds per song and engine")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--midi-dir", type=Path, help="write each accompaniment's MIDI here")
    ap.add_argument("--model", type=Path, help="the symbolic engine's checkpoint folder (default: the shipped one)")
    ap.add_argument("--split", choices=("test", "valid"), default="test",
                    help="the songs: test (report) or valid (tune settings on)")
    args = ap.parse_args()

    from musegen.engines.procedural.engine import ProceduralEngine
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.theory import MINOR_MODES

    engines = {"procedural": ProceduralEngine(), "symbolic": SymbolicEngine(model=args.model)}
    split = json.loads((ROOT / "scripts" / "data_split.json").read_text())["pieces"]
    songs = sorted(k.split("/")[1] for k, v in split.items() if k.startswith("pop909/") and v == args.split)
    rows: dict[str, list[float]] = {}
    per_part: dict[str, list[float]] = {}
    per_song = []
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="eval-accompany-"))
    if args.midi_dir:
        args.midi_dir.mkdir(parents=True, exist_ok=True)
    done = 0
    for sid in songs:
        if done >= args.songs:
            break
        song = args.data / sid / f"{sid}.mid"
        chords = read_chords(args.data / sid / "chord_midi.txt")
        try:
            made = melody_file(song, args.bars, tmp / f"{sid}.mid")
        except StopIteration:   # no MELODY track, or no downbeat
            made = None
        if made is None:
            print(f"{sid}: skipped (no melody, downbeat or single tempo)", file=sys.stderr)
            continue
        full, end_tick, shift = made
        rec = {"song": sid}
        # the ceiling: the song's own piano, over the same bars
        piano = [i for i, t in enumerate(full.tracks) if t.name.strip().upper() == "PIANO"]
        cut = full.copy()
        for i in piano:
            cut.tracks[i].notes = [n for n in cut.tracks[i].notes if n.time < end_tick]
        on, tot = agreement(seconds_notes(cut, piano), chords)
        rec["piano (ceiling)"] = on / tot if tot else math.nan
        for name, eng in engines.items():
            vals, parts = [], {"bass": [], "harmony": []}
            for s in range(args.seeds):
                req, score = accompany(eng, tmp / f"{sid}.mid", seed=s + 1)
                added = list(range(len(req.seed.tracks), len(score.tracks)))
                on, tot = agreement(seconds_notes(score, added, shift), chords)
                vals.append(on / tot if tot else math.nan)
                for i in added:
                    role = "bass" if score.tracks[i].name.lower().startswith("bass") else "harmony"
                    a, b = agreement(seconds_notes(score, [i], shift), chords)
                    parts[role].append(a / b if b else math.nan)
                if args.midi_dir and s == 0:
                    score.dump_midi(str(args.midi_dir / f"{sid}-{name}.mid"))
            rec[name] = statistics.fmean(vals)
            for role, xs in parts.items():
                if xs:
                    per_part.setdefault(f"{name} {role}", []).append(statistics.fmean(xs))
            if name == "procedural":
                tonic, mode = req.tonic, req.mode
                triad = [(tonic + i) % 12 for i in ((0, 3, 7) if mode in MINOR_MODES else (0, 4, 7))]
                mel = seconds_notes(req.seed, range(len(req.seed.tracks)), shift)
                a, b = min(n[0] for n in mel), max(n[1] for n in mel)
                on, tot = agreement([(a, b, 48 + p) for p in triad], chords)
                rec["tonic triad (floor)"] = on / tot if tot else math.nan
                rec["key"] = f"{tonic} {mode}"
        for k, v in rec.items():
            if isinstance(v, float):
                rows.setdefault(k, []).append(v)
        per_song.append(rec)
        done += 1
        print(f"{sid}: " + ", ".join(f"{k} {v:.3f}" for k, v in rec.items() if isinstance(v, float))
              + f"  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    def summary(xs: list[float]) -> dict:
        xs = [x for x in xs if not math.isnan(x)]
        se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else math.nan
        return {"mean": round(statistics.fmean(xs), 4), "se": round(se, 4), "n": len(xs)}

    report = {"songs": done, "bars": args.bars, "seeds": args.seeds, "parts": list(PARTS), "preset": "pop-ballad",
              "chord_tone_agreement": {k: summary(v) for k, v in rows.items()},
              "by_part": {k: summary(v) for k, v in per_part.items()},
              "paired_symbolic_minus_procedural": summary(
                  [r["symbolic"] - r["procedural"] for r in per_song]),
              "per_song": per_song, "seconds": round(time.perf_counter() - t0, 1)}
    print(f"{'':24s} {'agreement':>9s} {'se':>7s}")
    for k, v in {**report["chord_tone_agreement"], **report["by_part"]}.items():
        print(f"{k:24s} {v['mean']:9.3f} {v['se']:7.3f}   (n={v['n']})")
    d = report["paired_symbolic_minus_procedural"]
    print(f"{'symbolic - procedural':24s} {d['mean']:9.3f} {d['se']:7.3f}   (paired)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
