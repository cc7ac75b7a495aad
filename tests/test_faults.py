"""Issue #7: every run can be interrupted, nothing is lost, nothing escapes its folder.

Real processes, real signals, real files: ``musegen generate`` and
``musegen batch`` are killed (``kill -9``) and interrupted (Ctrl-C to the
process group) at seeded random moments, run out of disk (a file-size limit;
a small tmpfs where mounting is permitted), and pointed at hostile names and
links.  The checks are what a user would check, shared with
``scripts/fault_campaign.py``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT / "scripts"))
import fault_campaign as fc  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="signals, process sessions and rlimits as on Linux")

FOUR_JOBS = fc.BATCH_PLAN


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(FOUR_JOBS, encoding="utf-8")
    return path


@pytest.fixture
def ids(plan: Path) -> list[str]:
    return fc.job_ids(plan)


@pytest.fixture
def small_plan(tmp_path: Path) -> tuple[Path, list[str]]:
    """Two jobs (and their ids), where more would only add time."""
    path = tmp_path / "small.toml"
    path.write_text(FOUR_JOBS.replace('["lofi-chill", "synthwave"]', '["lofi-chill"]'), encoding="utf-8")
    return path, fc.job_ids(path)


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- nothing lost, nothing partial ---------------------------------------------------------

def _timed_run(args) -> float:
    """Seconds one whole, undisturbed run takes here (faults are drawn inside that span)."""
    t0 = time.monotonic()
    rc, _, err = fc.finish(fc.start(args))
    assert rc == 0, err
    return time.monotonic() - t0


def _strikes(args, *, kills: int, seed: int, earliest: float, latest: float):
    """Start ``kills`` runs, alternately killed and interrupted at seeded random moments; yield
    ``(fault, proc, rc, err)`` of each after checking that it ended with a clean message."""
    rng = random.Random(seed)
    for i in range(kills):
        fault = "kill" if i % 2 == 0 else "interrupt"
        proc = fc.start(args)
        try:
            proc.wait(timeout=rng.uniform(earliest, latest))
        except subprocess.TimeoutExpired:
            fc.hit(proc, fault)
        rc, _, err = fc.finish(proc)
        assert fc.message_problems(fault, rc, err) == []
        yield fault, proc, rc, err


def _kill_generate_repeatedly(tmp_path: Path, *, kills: int, seed: int) -> None:
    out = tmp_path / "out"
    args = fc.musegen(*fc.GENERATE, "-o", out)
    length = _timed_run(args)
    reference = (out / f"{fc.PRESET}-s1.wav").read_bytes()
    hits = 0
    for fault, _, rc, _ in _strikes(args, kills=kills, seed=seed, earliest=0.0, latest=length):
        hits += rc != 0
        assert fc.generate_problems(out, complete=False) == [], (fault, rc)
        # the previous complete result is never damaged: replaced whole or not at all
        wav = out / f"{fc.PRESET}-s1.wav"
        assert not wav.exists() or wav.read_bytes() == reference
    assert hits >= kills // 2, "most faults struck a running process"
    rc, _, err = fc.finish(fc.start(args))
    assert rc == 0, err
    assert fc.generate_problems(out, complete=True) == []  # no .part left by the killed runs
    assert (out / f"{fc.PRESET}-s1.wav").read_bytes() == reference


def test_generate_killed_and_interrupted_at_random_moments(tmp_path):
    _kill_generate_repeatedly(tmp_path, kills=6, seed=7)


@pytest.mark.slow
def test_generate_killed_and_interrupted_many_times(tmp_path):
    _kill_generate_repeatedly(tmp_path, kills=30, seed=11)


def test_killed_generate_leaves_parts_that_the_next_run_removes(tmp_path):
    """A kill -9 can leave a hidden .part; the next write of that file removes it, a live one is kept."""
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".{fc.PRESET}-s1.wav.0123abcd.part"
    stale.write_bytes(b"RIFF half a file")
    live = out / f".{fc.PRESET}-s1.wav.89abcdef.part"
    live.write_bytes(b"RIFF being written")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running writer holds it
        r = run_cli(*fc.GENERATE, "-o", out)
        assert r.returncode == 0, r.stderr
        assert not stale.exists() and live.exists()
    assert fc.generate_problems(out, complete=False) == []


def _kill_batch_repeatedly(tmp_path: Path, plan: Path, ids: list[str], *, kills: int, seed: int) -> None:
    out = tmp_path / "run"
    args = fc.musegen("batch", plan, "-o", out, "--workers", "2", "--resume", "--no-images")
    length = _timed_run(args)  # so faults land in every phase of a run
    shutil.rmtree(out)
    hits = 0
    for fault, proc, rc, err in _strikes(args, kills=kills, seed=seed, earliest=0.2, latest=length):
        hits += rc != 0
        if fault == "interrupt" and rc == 130:  # the hint, unless no job had been started yet
            assert "--resume" in err or one_line(err) == "Error: interrupted"
        assert fc.wait_session_gone(proc.pid) == [], "a worker outlived its killed run"
        assert fc.batch_problems(out, ids, complete=False, torn_ok=fault == "kill") == [], (fault, rc)
        if fault == "interrupt" and out.exists():
            # Ctrl-C: the run tidies up itself
            assert not list(out.rglob("*.part")) and not (out / ".staging").exists()
        if rc == 0:  # it finished before the fault: start over, so later faults meet a running batch
            shutil.rmtree(out)
    assert hits >= max(1, kills // 4), "faults struck a running batch"  # a resumed run is shorter
    r = subprocess.run(args + ["--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] + doc["skipped"] == len(ids) and doc["failed"] == 0
    assert fc.batch_problems(out, ids, complete=True) == []


def test_batch_killed_and_interrupted_then_resumed(tmp_path, plan, ids):
    _kill_batch_repeatedly(tmp_path, plan, ids, kills=4, seed=3)


@pytest.mark.slow
def test_batch_killed_and_interrupted_many_times(tmp_path, plan, ids):
    _kill_batch_repeatedly(tmp_path, plan, ids, kills=16, seed=5)


def test_torn_manifest_line_is_repaired_on_resume(tmp_path, small_plan):
    plan, ids = small_plan
    out = tmp_path / "run"
    r = run_cli("batch", plan, "-o", out, "--workers", "2", "--no-images")
    assert r.returncode == 0, r.stderr
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    # as a kill -9 in the middle of an append leaves it: a last row cut short, no newline
    manifest.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    r = run_cli("batch", plan, "-o", out, "--workers", "2", "--no-images", "--resume", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] == 1  # the job whose row was torn runs again
    assert fc.batch_problems(out, ids, complete=True) == []
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert all(r["worker_rss_mb"] > 0 and r["worker_maxrss_mb"] >= r["worker_rss_mb"] * 0.5 for r in rows)


# -- a full disk -------------------------------------------------------------------------------

def test_generate_on_a_full_disk_fails_cleanly(tmp_path):
    out = tmp_path / "out"
    rc, _, err = fc.finish(fc.start(fc.musegen(*fc.GENERATE, "-o", out), file_limit=100_000))
    assert rc == 1
    line = one_line(err)
    assert line.startswith("Error: cannot write") and f"{fc.PRESET}-s1.wav" in line and "file-size limit" in line
    assert list(out.iterdir()) == [], "no partial result, no .part, not even the MIDI written before"


def test_batch_on_a_full_disk_fails_cleanly_and_resumes(tmp_path, small_plan):
    plan, ids = small_plan
    out = tmp_path / "run"
    args = fc.musegen("batch", plan, "-o", out, "--workers", "2", "--no-images")
    rc, _, err = fc.finish(fc.start(args, file_limit=100_000))
    assert rc == 1 and "Traceback" not in err
    failed = [ln for ln in err.splitlines() if ln.startswith("failed: ")]
    assert len(failed) == len(ids) and all("file-size limit" in ln for ln in failed)
    assert err.strip().splitlines()[-1].startswith(f"{len(ids)} jobs: 0 ok, {len(ids)} failed")
    assert fc.batch_problems(out, ids, complete=False) == []
    assert not [p for p in out.iterdir() if p.is_dir()] and not list(out.rglob("*.part"))
    rc, _, err = fc.finish(fc.start(args + ["--resume"]))
    assert rc == 0, err
    assert fc.batch_problems(out, ids, complete=True) == []


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs: a real ENOSPC (needs root and mount permission; skipped otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if not shutil.which("mount") or (hasattr(os, "geteuid") and os.geteuid() != 0):
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_generate_and_batch(small_disk, small_plan):
    plan, ids = small_plan
    out = small_disk / "gen"
    r = run_cli(*fc.GENERATE, "-o", out)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert f"{fc.PRESET}-s1.wav" in line and "not enough disk space" in line
    assert list(out.iterdir()) == []

    run = small_disk / "run"
    r = run_cli("batch", plan, "-o", run, "--workers", "2", "--no-images")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "not enough disk space" in r.stderr
    assert fc.batch_problems(run, ids, complete=False) == []
    assert not list(run.rglob("*.part")) and not (run / ".staging").exists()
    # more room: the same run resumes and finishes
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    r = run_cli("batch", plan, "-o", run, "--workers", "2", "--no-images", "--resume")
    assert r.returncode == 0, r.stderr
    assert fc.batch_problems(run, ids, complete=True) == []


# -- one run per folder ------------------------------------------------------------------------

def test_two_batch_runs_on_one_folder(tmp_path, plan, ids):
    out = tmp_path / "run"
    first = fc.start(fc.musegen("batch", plan, "-o", out, "--workers", "2", "--no-images"))
    end = time.monotonic() + 60
    while not ((out / ".lock").exists() and (out / ".lock").read_text().startswith("pid ")):
        assert first.poll() is None and time.monotonic() < end, first.stderr.read() if first.poll() else "slow"
        time.sleep(0.02)
    second = run_cli("batch", plan, "-o", out, "--workers", "2", "--no-images", "--resume")
    rc, _, err = fc.finish(first)
    assert second.returncode == 1
    line = one_line(second.stderr)
    assert line.startswith(f"Error: {out.resolve()} is in use by another batch run (pid {first.pid} ")
    assert rc == 0, err  # the first run never noticed
    assert fc.batch_problems(out, ids, complete=True) == []


# -- nothing escapes -----------------------------------------------------------------------------

@pytest.mark.parametrize("template", [
    "../../{preset}", "/etc/{preset}", "a/b/{seed}", "..", ".", "{preset}/..", "~/x", "\\..\\{seed}",
    "a\x00b", "con:{seed}", "-rf {seed}", ".hidden-{seed}", "{seed:>4}",
])
def test_name_templates_stay_in_the_folder(template):
    from musegen.outputs import format_stem

    stem = format_stem(template, preset="lofi-chill", seed=1, variation=1)
    assert re.fullmatch(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*", stem), stem
    assert stem not in (".", "..") and "/" not in stem and "\x00" not in stem


@pytest.mark.parametrize("template,words", [
    ("{seed:04d}", "is not a text spec"), ("{seed:>99999999}", "wider than 255"),
    ("{preset.__class__}", "unknown field"), ("{0}", "unknown field"), ("{seed:{nope}}", "field inside a field"),
    # a nested field once slipped past the width guard: {preset:{seed}} with seed 400000000 built 400 MB
    ("{preset:{seed}}", "field inside a field"), ("{preset:>{seed}}", "field inside a field"),
    ("{seed!r}", "is not allowed"), ("{seed!s:>9}", "is not allowed"), ("{seed:>256}", "wider than 255"),
    ("{seed:.9999}", "wider than 255"), ("{seed:,}", "is not a text spec"), ("{" * 600 + "}" * 600, "name template"),
    ("x" * 1001, "longer than 1000 bytes"),
])
def test_bad_name_templates_are_clean_errors(template, words):
    from musegen.errors import ParameterError
    from musegen.outputs import format_stem

    with pytest.raises(ParameterError, match=re.escape(words)) as info:
        format_stem(template, preset="lofi-chill", seed=400_000_000)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_name_template_fields_pad_and_cut():
    from musegen.outputs import format_stem

    assert format_stem("{preset:.4}-{seed:_>5}-{variation:<3}x", preset="lofi-chill", seed=7, variation=1) == \
        "lofi-____7-1_x"  # the padding spaces become one _
    assert len(format_stem("{preset:>255}{seed:>255}", preset="a", seed=1)) <= 255


def test_generate_name_cannot_leave_the_folder(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    r = run_cli(*fc.GENERATE, "-o", out, "--name", "../../../{preset}-escaped")
    assert r.returncode == 0, r.stderr
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [Path("a/b/out") / f"{fc.PRESET}-escaped{ext}" for ext in (".json", ".mid", ".wav")]
    r = run_cli(*fc.GENERATE, "-o", out, "--name", "{seed:04d}")
    assert r.returncode == 2 and one_line(r.stderr).startswith("Error: name template")


def test_links_at_the_destination_are_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.wav"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{fc.PRESET}-s1.wav").symlink_to(victim)
    (out / f"{fc.PRESET}-s1.json").symlink_to(outside / "new.json")  # dangling: must not be created
    r = run_cli(*fc.GENERATE, "-o", out)
    assert r.returncode == 0, r.stderr
    assert victim.read_bytes() == b"precious" and sorted(p.name for p in outside.iterdir()) == ["victim.wav"]
    for ext in (".wav", ".json"):
        assert not (out / f"{fc.PRESET}-s1{ext}").is_symlink()
    assert fc.generate_problems(out, complete=True) == []


def test_batch_links_in_the_run_folder_are_not_followed(tmp_path, small_plan):
    plan, ids = small_plan
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / ids[0]).symlink_to(outside, target_is_directory=True)  # a job folder
    (out / ".staging").symlink_to(outside, target_is_directory=True)  # the work area
    (out / "manifest.jsonl").symlink_to(victim)
    (out / "report.html").symlink_to(outside / "report.html")
    r = run_cli("batch", plan, "-o", out, "--workers", "2", "--no-images", "--resume")
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious\n" and sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert not any(p.is_symlink() for p in out.iterdir())
    assert fc.batch_problems(out, ids, complete=True) == []


def test_batch_lock_link_is_refused(tmp_path, small_plan):
    plan, _ = small_plan
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    r = run_cli("batch", plan, "-o", out, "--no-images")
    assert r.returncode == 1
    assert one_line(r.stderr) == f"Error: cannot lock {out.resolve() / '.lock'}: it is a symbolic link"
    assert victim.read_text() == "precious\n"


def test_plan_job_ids_are_safe_folder_names(tmp_path):
    from musegen.batch.plan import parse_plan

    (tmp_path / "a").mkdir()
    shutil.copy(ROOT / "src" / "musegen" / "presets" / "lofi-chill.toml", tmp_path / "..evil.toml")
    plan = parse_plan({"job": [
        {"preset": "../..evil.toml", "engine": "procedural"},
        {"command": "render", "midi": "/etc/../../x/\u0000/../y.mid"},
        {"command": "post", "audio": "../../../../..wav"},
    ]}, base=tmp_path / "a")
    for job in plan.jobs:
        assert re.fullmatch(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*-[0-9a-f]{10}", job.id), job.id


def test_user_preset_name_cannot_be_a_path(tmp_path):
    from musegen.errors import PresetError
    from musegen.presets import load_preset

    text = (ROOT / "src" / "musegen" / "presets" / "lofi-chill.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(re.sub(r'(?m)^name = ".*"$', 'name = "../../evil"', text))
    with pytest.raises(PresetError, match="name"):
        load_preset(bad)


# -- no code from data ---------------------------------------------------------------------------

def test_pickle_weights_are_refused(tmp_path):
    """Weights load from safetensors only: a folder holding only a pickle is a clean error."""
    from musegen.engines.musicgen.resolve import resolve_model
    from musegen.engines.symbolic.checkpoint import load_checkpoint
    from musegen.errors import InputError, MusegenError

    marker = tmp_path / "pwned"
    payload = (b"\x80\x04cposix\nsystem\n(X" + f"touch {marker}".encode() + b"\ntR.")  # os.system via pickle
    mg = tmp_path / "musicgen"
    mg.mkdir()
    (mg / "config.json").write_text('{"model_type": "musicgen"}')
    (mg / "tokenizer.json").write_text("{}")
    (mg / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(InputError, match="only pickle weights"):
        resolve_model(str(mg))
    sym = tmp_path / "symbolic"
    sym.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(ROOT / "src" / "musegen" / "engines" / "symbolic" / "weights" / name, sym / name)
    (sym / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(MusegenError, match="no model.safetensors"):
        load_checkpoint(sym)
    assert not marker.exists()
    r = run_cli("generate", "--engine", "musicgen", "--model", mg, "--bars", "1", "-o", tmp_path / "o")
    assert r.returncode == 2 and "only pickle weights" in one_line(r.stderr)
    assert not marker.exists()


_SOURCE_RULES = [
    (r"\bshell\s*=\s*True", "a shell with user text"),
    (r"\bos\s*\.\s*(system|popen|exec\w*|spawn\w*)\s*\(", "a shell or exec"),
    (r"\bsubprocess\s*\.\s*(getoutput|getstatusoutput)\b", "a shell"),
    (r"(?<![.\w])\s*(eval|exec)\s*\(", "eval/exec of text"),
    (r"\b(pickle|cPickle|dill|marshal|shelve)\s*\.\s*loads?\b|\bimport\s+(pickle|dill|marshal|shelve)\b",
     "unpickling"),
    (r"\ballow_pickle\s*=\s*True", "unpickling numpy data"),
    (r"\byaml\s*\.\s*load\s*\(", "yaml.load (can build objects)"),
]


def _code_only(text: str) -> str:
    """The source without comments and with every string literal emptied."""
    import io
    import tokenize

    tokens = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            continue
        tokens.append((tok.type, '""' if tok.type == tokenize.STRING else tok.string))
    return tokenize.untokenize(tokens)


def test_no_shell_no_eval_no_pickle_in_the_source():
    offences = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        text = _code_only(path.read_text(encoding="utf-8"))
        for pattern, what in _SOURCE_RULES:
            for m in re.finditer(pattern, text):
                offences.append(f"{path.relative_to(ROOT)}: {what}: {m.group(0).strip()}")
        for m in re.finditer(r"\btorch\s*\.\s*load\s*\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1).replace(" ", ""):
                offences.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
    assert offences == []


def test_presets_are_data_not_code(tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    text = (ROOT / "src" / "musegen" / "presets" / "lofi-chill.toml").read_text()
    text = re.sub(r'(?m)^description = .*$', f"description = {json.dumps(code)}", text)
    text = re.sub(r'(?m)^name = ".*"$', 'name = "data-only"', text)
    preset = tmp_path / "data-only.toml"
    preset.write_text(text + f'\n# {{{{ {code} }}}}\n')
    r = run_cli("presets", "show", preset, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["description"] == code
    r = run_cli("generate", "--preset", preset, "--engine", "procedural", "--bars", "1", "--seed", "1",
                "--prompt", "$(touch " + str(marker) + ")", "--name", "`touch x`{seed}", "-o", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    side = json.loads(next((tmp_path / "o").glob("*.json")).read_text())
    assert side["preset"]["description"] == code
    assert not marker.exists()


@pytest.mark.skipif(not shutil.which("fluidsynth"), reason="needs the FluidSynth program")
def test_file_names_are_never_options_to_fluidsynth(tmp_path, sketch):
    from musegen.render.synth import default_soundfont

    shutil.copy(default_soundfont(), tmp_path / "-d.sf2")
    r = run_cli("render", sketch, "-o", tmp_path / "o.wav", "--backend", "fluidsynth", "--soundfont=-d.sf2",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert fc.wav_problems(tmp_path / "o.wav") == []
