"""What `musegen analyze` and a batch job's pictures cost, and whether the numbers stay right.

    python scripts/bench_analysis.py [--songs 24] [--seconds 60] [--cold 3] [--baseline OLD_CHECKOUT]

1. Renders the first ``--seconds`` of POP909 songs (their tempo from
   ``beat_midi.txt``, their key from ``key_audio.txt``) and measures tempo and
   key twice on the same audio: with librosa's beat tracker and chroma (the
   previous code, kept here as the reference) and with musegen's NumPy
   features (``musegen.audio._features``).  A tempo counts as right within 4 %
   of the truth, or of its double or half ("octave"); a key counts as right
   when it is the labelled key, or "related" when it is its relative
   major/minor or a fifth away.
2. Times ``analyze_audio`` warm (in this process) for both, and cold:
   ``musegen analyze`` of a 60 s WAV in a fresh process, against the same run
   through the reference, alternating, ``--cold`` times each.
3. Times a batch job's two pictures (spectrogram and piano roll), warm and cold.

Timings are ratios in one run (this machine's speed drifts day to day).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
POP909 = ROOT.parent / "shared" / "data" / "pop909"
NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E"}


def reference_tempo_key(y, sr):
    """Tempo and key as the previous `analyze_audio` measured them (librosa)."""
    import librosa
    import numpy as np

    from musegen.audio.analysis import _estimate_key
    from musegen.audio.io import resample

    mono = resample(y.mean(axis=0, keepdims=True), sr=sr, target_sr=22050)[0]
    onsets = librosa.onset.onset_strength(y=mono, sr=22050)
    bpm, _ = librosa.beat.beat_track(onset_envelope=onsets, sr=22050)
    magnitude = np.abs(librosa.stft(mono, n_fft=4096, hop_length=1024))
    chroma = librosa.feature.chroma_stft(S=magnitude ** 2, sr=22050, n_fft=4096, tuning=0.0)
    return float(np.atleast_1d(bpm)[0]), _estimate_key(chroma.sum(axis=1))


def truth(song: Path) -> tuple[float, str]:
    beats = [float(line.split()[0]) for line in (song / "beat_midi.txt").read_text().splitlines() if line.strip()]
    bpm = 60.0 / statistics.median(b - a for a, b in zip(beats, beats[1:]))
    label = (song / "key_audio.txt").read_text().split()[2]  # "Gb:maj"
    tonic, mode = label.split(":")
    tonic = FLAT.get(tonic, tonic)
    return bpm, f"{tonic} {'major' if mode.startswith('maj') else 'minor'}"


def tempo_ok(bpm, true_bpm) -> str:
    if bpm is None:
        return "none"
    if abs(bpm / true_bpm - 1) <= 0.04:
        return "right"
    return "octave" if any(abs(bpm / (true_bpm * k) - 1) <= 0.04 for k in (0.5, 2.0, 1 / 3, 3.0)) else "wrong"


def key_ok(key, true_key) -> str:
    if key is None:
        return "none"
    if key == true_key:
        return "right"
    (t, m), (tt, tm) = key.split(), true_key.split()
    d = (NAMES.index(t) - NAMES.index(tt)) % 12
    relative = m != tm and d == (9 if tm == "major" else 3)
    fifth = m == tm and d in (5, 7)
    return "related" if relative or fifth else "wrong"


def accuracy(songs: int, seconds: float) -> dict:
    from musegen.audio.analysis import analyze_audio, loudness_lufs
    from musegen.midi.io import load_midi
    from musegen.render.synth import render_score

    counts = {"reference": {"tempo": {}, "key": {}}, "numpy": {"tempo": {}, "key": {}}}
    warm = {"reference": [], "numpy": []}
    rows = []
    for song in sorted(p for p in POP909.iterdir() if p.is_dir())[:songs]:
        y = render_score(load_midi(song / f"{song.name}.mid"), sample_rate=44100)[:, :int(seconds * 44100)]
        true_bpm, true_key = truth(song)
        t = time.perf_counter()
        ref_bpm, ref_key = reference_tempo_key(y, 44100)
        loudness_lufs(y, sr=44100)  # the rest of the analysis costs the same in both
        warm["reference"].append(time.perf_counter() - t)
        t = time.perf_counter()
        res = analyze_audio(y, sr=44100)
        warm["numpy"].append(time.perf_counter() - t)
        for name, bpm, key in (("reference", ref_bpm, ref_key), ("numpy", res["tempo_bpm"], res["key"])):
            c = counts[name]
            c["tempo"][tempo_ok(bpm, true_bpm)] = c["tempo"].get(tempo_ok(bpm, true_bpm), 0) + 1
            c["key"][key_ok(key, true_key)] = c["key"].get(key_ok(key, true_key), 0) + 1
        rows.append({"song": song.name, "true": [round(true_bpm, 1), true_key], "reference": [round(ref_bpm, 1), ref_key],
                     "numpy": [res["tempo_bpm"], res["key"]]})
    # the first reference call pays for numba; report the median
    return {"counts": counts, "warm_s": {k: round(statistics.median(v), 3) for k, v in warm.items()},
            "rows": rows}


REF_CLI = """
import sys, time
t = time.perf_counter()
sys.path.insert(0, {src!r})
from musegen.audio.io import read_audio
sys.path.insert(0, {scripts!r})
from bench_analysis import reference_tempo_key
from musegen.audio.analysis import loudness_lufs
y, sr = read_audio({wav!r})
loudness_lufs(y, sr=sr)
print(reference_tempo_key(y, sr))
"""


def cold(wav: Path, runs: int) -> dict:
    """A fresh process each time: `musegen analyze` (numpy) against the reference path."""
    times = {"numpy": [], "reference": []}
    for _ in range(runs):
        for name in ("reference", "numpy"):
            cmd = ([sys.executable, "-m", "musegen", "analyze", str(wav), "--json"] if name == "numpy" else
                   [sys.executable, "-c", REF_CLI.format(src=str(ROOT / "src"), scripts=str(ROOT / "scripts"),
                                                         wav=str(wav))])
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t)
    return {k: round(statistics.median(v), 2) for k, v in times.items()}


def pictures(wav: Path, midi: Path, runs: int, src: Path) -> dict:
    code = ("import sys,time; sys.path.insert(0,{src!r}); t=time.perf_counter();"
            "from musegen.batch.job import _pictures; from pathlib import Path;"
            "_pictures(Path({wav!r}), {midi!r}, Path({out!r}), title='bench');"
            "w=time.perf_counter(); _pictures(Path({wav!r}), {midi!r}, Path({out!r}), title='bench');"
            "print(w-t, time.perf_counter()-w)")
    cold_s, warm_s = [], []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(runs):
            r = subprocess.run([sys.executable, "-c", code.format(src=str(src), wav=str(wav), midi=str(midi),
                                                                  out=d)], check=True, capture_output=True, text=True)
            a, b = map(float, r.stdout.split())
            cold_s.append(a)
            warm_s.append(b)
    return {"cold_s": round(statistics.median(cold_s), 2), "warm_s": round(statistics.median(warm_s), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another checkout (e.g. a git worktree of the previous "
                    "commit): its pictures are timed in the same run")
    args = ap.parse_args()

    from musegen.audio.io import write_audio
    from musegen.midi.io import load_midi
    from musegen.render.synth import render_score

    report = {"accuracy": accuracy(args.songs, args.seconds)}
    with tempfile.TemporaryDirectory() as d:
        song = POP909 / "001"
        y = render_score(load_midi(song / "001.mid"), sample_rate=44100)[:, :60 * 44100]
        wav = Path(d) / "song-60s.wav"
        write_audio(wav, y, sr=44100)
        report["cold_analyze_60s_s"] = cold(wav, args.cold)
        report["pictures_60s"] = pictures(wav, song / "001.mid", args.cold, ROOT / "src")
        if args.baseline:
            report["pictures_60s_baseline"] = pictures(wav, song / "001.mid", args.cold, args.baseline / "src")
    acc = report["accuracy"]
    print(json.dumps({k: v for k, v in report.items() if k != "accuracy"} |
                     {"counts": acc["counts"], "warm_analyze_s": acc["warm_s"]}, indent=1))
    for row in acc["rows"]:
        print(json.dumps(row), file=sys.stderr)


if __name__ == "__main__":
    main()
