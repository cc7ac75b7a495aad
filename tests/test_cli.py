"""The CLI end to end, through real subprocesses, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from symusic import Score

from conftest import SAMPLES, make_sketch


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines


def test_help_is_light_and_version(cli):
    code = (
        "import sys, musegen.cli.main as m\n"
        "heavy = [x for x in ('torch', 'transformers', 'librosa', 'numba', 'scipy', 'matplotlib', 'miditok') "
        "if x in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    r = cli("--help")
    assert r.returncode == 0 and "generate" in r.stdout and "extend" in r.stdout
    r = cli("--version")
    assert r.returncode == 0 and "musegen" in r.stdout


def test_presets_list_and_show(cli):
    r = cli("presets", "list")
    assert r.returncode == 0
    for name in ("lofi-chill", "synthwave", "bach-chorale", "irish-reel"):
        assert name in r.stdout
    assert r.stdout.splitlines()[0].split()[:3] == ["NAME", "TEMPO", "KEY"]
    r = cli("presets", "show", "lofi-chill")
    assert r.returncode == 0 and 'name = "lofi-chill"' in r.stdout and "[instruments]" in r.stdout
    r = cli("presets", "show", "lofi-chill", "--json")
    assert json.loads(r.stdout)["name"] == "lofi-chill"


def _check_result(wav, mid, js, *, min_seconds):
    y, sr = sf.read(wav, always_2d=True)
    assert y.shape[1] == 2, "stereo"
    assert y.shape[0] / sr >= min_seconds
    assert np.sqrt(np.mean(y**2)) > 0.01, "not silent"
    score = Score(str(mid))
    assert sum(len(t.notes) for t in score.tracks) > 0
    side = json.loads(js.read_text())
    for key in ("preset", "parameters", "analysis", "versions", "engine"):
        assert key in side
    return y, sr, score, side


def test_generate_writes_wav_mid_json(cli, tmp_path):
    out = tmp_path / "out"
    r = cli("generate", "--preset", "lofi-chill", "--bars", "4", "--seed", "3", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    (res,) = doc["results"]
    stem = res["stem"]
    wav, mid, js = out / f"{stem}.wav", out / f"{stem}.mid", out / f"{stem}.json"
    y, sr, score, side = _check_result(wav, mid, js, min_seconds=1)
    p = side["parameters"]
    bar_s = 60.0 / p["tempo_bpm"] * p["meter"][0] * 4 / p["meter"][1]
    music = y.shape[0] / sr
    # trimmed and faded by the preset chain, so up to the tail past 4 bars, not much less
    assert 4 * bar_s - 1.0 <= music <= 4 * bar_s + 1.5
    assert side["parameters"]["seed"] == 3 and side["preset"]["name"] == "lofi-chill"
    assert abs(side["analysis"]["lufs"] - (-14)) < 1.0
    assert not list(out.glob(".*part"))


def test_same_seed_same_bytes(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        r = cli("generate", "--preset", "synthwave", "--bars", "2", "--seed", "11", "-o", d)
        assert r.returncode == 0, r.stderr
    (ma,), (mb,) = list(a.glob("*.mid")), list(b.glob("*.mid"))
    assert ma.read_bytes() == mb.read_bytes()
    (wa,), (wb,) = list(a.glob("*.wav")), list(b.glob("*.wav"))
    assert wa.read_bytes() == wb.read_bytes()
    r = cli("generate", "--preset", "synthwave", "--bars", "2", "--seed", "12", "-o", tmp_path / "c")
    (mc,) = list((tmp_path / "c").glob("*.mid"))
    assert mc.read_bytes() != ma.read_bytes()


def _notes(track):
    return [(n.time, n.duration, n.pitch, n.velocity) for n in track.notes]


def test_generate_from_sketch_keeps_seed_and_variations(cli, tmp_path):
    seed = make_sketch(tmp_path / "sketch.mid", tempo=90, bars=2)
    out = tmp_path / "out"
    r = cli("generate", "--preset", "synthwave", "--midi", seed, "--bars", "4", "--seed", "7",
            "--variations", "3", "-o", out)
    assert r.returncode == 0, r.stderr
    mids = sorted(out.glob("*.mid"))
    assert len(mids) == 3 and len(list(out.glob("*.wav"))) == 3 and len(list(out.glob("*.json"))) == 3
    src = Score(str(seed))
    seed_end = src.end()
    digests = set()
    for m in mids:
        s = Score(str(m))
        assert s.tempos[0].qpm == pytest.approx(90, abs=0.01)
        for st, gt in zip(src.tracks, s.tracks):
            gen = _notes(gt)
            assert gen[: len(st.notes)] == _notes(st), "the sketch is an exact prefix"
        assert s.end() > seed_end + 3 * 1920
        digests.add(m.read_bytes())
    assert len(digests) == 3, "variations differ"


def test_extend_continues_only_the_sketch_parts(cli, tmp_path):
    seed = make_sketch(tmp_path / "sketch.mid", tempo=120, meter=(3, 4), bars=2, tonic=2)
    out = tmp_path / "ext"
    r = cli("extend", seed, "--bars", "4", "--seed", "1", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)["results"]
    s = Score(res["mid"])
    src = Score(str(seed))
    assert len(s.tracks) == len(src.tracks)
    bar = 480 * 3
    for st, gt in zip(src.tracks, s.tracks):
        assert gt.program == st.program
        assert _notes(gt)[: len(st.notes)] == _notes(st)
        assert max(n.time for n in gt.notes) >= 2 * bar, "each part continues"
    assert s.time_signatures[0].numerator == 3
    assert res["analysis"]["key"].startswith("D")


def test_render_post_analyze(cli, tmp_path):
    mid = SAMPLES / "chord-loop.mid"
    wav = tmp_path / "song.wav"
    r = cli("render", mid, "-o", wav, "--sample-rate", "48000")
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(wav, always_2d=True)
    assert sr == 48000 and y.shape[1] == 2 and np.abs(y).max() > 0.01
    dur = Score(str(mid)).to("second").end()
    assert abs(y.shape[0] / sr - dur) < 0.1

    master = tmp_path / "master.wav"
    r = cli("post", wav, "-o", master, "--lufs", "-14", "--trim", "--fade-out", "2",
            "--tempo-from", "90", "--tempo-to", "100", "--pitch-shift", "2", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert abs(info["lufs"] + 14) < 0.5 and info["peak_dbfs"] <= -0.9
    z, zsr = sf.read(master, always_2d=True)
    assert z.shape[0] / zsr < y.shape[0] / sr  # faster tempo, shorter

    r = cli("analyze", master, "--json", "--plot", tmp_path / "a.png")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert abs(a["lufs"] + 14) < 0.5 and (tmp_path / "a.png").stat().st_size > 1000
    r = cli("analyze", mid, "--json", "--plot", tmp_path / "roll.png")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["key_name"] == "A minor" and (tmp_path / "roll.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["generate", "--bars", "0"], 2, "bars"),
        (["generate", "--bars", "100000000"], 2, "bars"),
        (["generate", "--temperature", "-1"], 2, "temperature"),
        (["generate", "--preset", "no-such-preset"], 2, "no-such-preset"),
        (["generate", "--bars", "2", "--soundfont", "missing.sf2"], 2, "missing.sf2"),
        (["generate", "--bars", "2", "--key", "H#"], 2, "H#"),
        (["generate", "--variations", "0"], 2, "variations"),
        (["generate", "--bars", "2", "--engine", "nope"], 2, "nope"),
        (["generate", "--bars", "x"], 2, "x"),
        (["render", "nothere.mid", "-o", "x.wav"], 2, "nothere.mid"),
        (["post", "nothere.wav", "-o", "x.wav", "--lufs", "-14"], 2, "nothere.wav"),
        (["post", "nothere.wav", "-o", "x.wav", "--lufs", "5"], 2, "lufs"),
    ],
)
def test_bad_input_is_one_line(cli, tmp_path, args, code, needle):
    extra = ["-o", tmp_path / "o"] if args[0] == "generate" else []
    r = cli(*args, *extra, cwd=tmp_path)
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = _no_traceback(r)
    assert len(lines) <= 3 and needle in r.stderr, r.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("content", [b"", b"hello world, not midi", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x10\x00\x90"])
def test_corrupt_midi_is_a_clean_error(cli, tmp_path, content):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    for args in (["generate", "--midi", bad, "-o", tmp_path / "o"], ["extend", bad, "-o", tmp_path / "o"],
                 ["render", bad, "-o", tmp_path / "x.wav"], ["analyze", bad]):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = _no_traceback(r)
        assert lines[-1].startswith("Error:") and "bad.mid" in lines[-1]
    assert not (tmp_path / "x.wav").exists()
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_debug_shows_traceback(cli, tmp_path):
    r = cli("--debug", "generate", "--preset", "no-such", "-o", tmp_path)
    assert r.returncode != 0 and "Traceback" in r.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_ends_generate_with_one_line_and_no_files(tmp_path):
    """`kill` (a job scheduler) unwinds like Ctrl-C: exit 143, one line, nothing half-written."""
    import signal
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "musegen", "generate", "--preset", "pop-ballad", "--bars", "200",
                             "--seed", "1", "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "Error: terminated" and "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []


def test_default_mastering_chain_imports_no_scipy(tmp_path):
    """Reverb, loudness and the limiter are numpy: scipy.signal alone would add ~0.75 s to every run."""
    code = ("import sys; from musegen.pipeline import generate; "
            f"generate('pop-ballad', bars=2, seed=1, out_dir={str(tmp_path)!r}, engine='procedural'); "
            "print(sorted(m for m in ('scipy', 'scipy.signal', 'scipy.ndimage', 'pyloudnorm', 'librosa') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert list(tmp_path.glob("*.wav"))
