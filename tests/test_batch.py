"""Batch plans, job ids, and ``musegen batch`` end to end (real subprocesses)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import INTERRUPTIBLE, ROOT, SAMPLES, make_sketch, run_cli
from musegen.batch.manifest import Manifest
from musegen.batch.params import ALL_PARAMS, CHECKS, build_chain
from musegen.batch.plan import job_id, load_plan, parse_plan
from musegen.errors import ParameterError, PlanError

ID_RE = r"^[A-Za-z0-9_.+-]+-[0-9a-f]{10}$"


def write_plan(folder: Path, text: str, name: str = "plan.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def no_partials(folder: Path) -> None:
    assert not list(folder.rglob("*.part")), "partial files left"
    assert not (folder / ".staging").exists(), "staging folder left"


def rows_of(folder: Path) -> list[dict]:
    lines = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# -- plans ------------------------------------------------------------------------

def test_plan_expands_defaults_jobs_sweeps_and_globs(tmp_path):
    for name in ("a.mid", "b.mid"):
        make_sketch(tmp_path / name)
    plan = parse_plan({
        "title": "t",
        "defaults": {"engine": "procedural", "bars": 4, "lufs": -14},
        "job": [{"preset": "synthwave", "seed": 7, "label": "one"},
                {"command": "render", "midi": "a.mid"}],
        "sweep": [{"label": "grid", "preset": "lofi-chill", "grid": {"seed": [1, 2, 3], "tempo": [80, 100]}},
                  {"command": "extend", "midi": "*.mid", "grid": {"seed": [1, 2]}}],
    }, base=tmp_path)
    assert len(plan.jobs) == 2 + 6 + 4
    first, render = plan.jobs[0], plan.jobs[1]
    assert first.params == {"engine": "procedural", "bars": 4, "lufs": -14.0, "preset": "synthwave", "seed": 7}
    assert first.label == "one" and first.engine == "procedural" and first.source == "[[job]] #1"
    # defaults that do not apply to a command (engine, bars for render) are left out
    assert render.command == "render" and render.params == {"lufs": -14.0, "midi": "a.mid"}
    assert render.engine is None
    grid = [j for j in plan.jobs if j.label == "grid"]
    assert sorted((j.params["seed"], j.params["tempo"]) for j in grid) == [
        (s, t) for s in (1, 2, 3) for t in (80.0, 100.0)]
    ext = [j for j in plan.jobs if j.command == "extend"]
    assert sorted((j.params["midi"], j.params["seed"]) for j in ext) == [
        ("a.mid", 1), ("a.mid", 2), ("b.mid", 1), ("b.mid", 2)]
    assert [j.index for j in plan.jobs] == list(range(len(plan.jobs)))
    assert len({j.id for j in plan.jobs}) == len(plan.jobs)


def test_a_path_that_exists_is_a_path_not_a_glob(tmp_path):
    # take[1].mid used to be read as the glob "take" + one of "1" + ".mid" and rendered take1.mid
    for name in ("take[1].mid", "take1.mid", "what?.mid", "whatX.mid", "a*b.mid", "axxb.mid"):
        make_sketch(tmp_path / name)
    plan = parse_plan({"job": [{"command": "render", "midi": m} for m in ("take[1].mid", "what?.mid", "a*b.mid")]
                       + [{"command": "render", "midi": "take[0-9].mid"}]}, base=tmp_path)
    assert [j.params["midi"] for j in plan.jobs] == ["take[1].mid", "what?.mid", "a*b.mid", "take1.mid"]


def test_sample_plan_loads():
    plan = load_plan(SAMPLES / "plan.toml")
    assert 10 <= len(plan.jobs) <= 40
    assert {j.command for j in plan.jobs} == {"generate", "extend", "render"}
    assert all(j.engine in (None, "procedural") for j in plan.jobs)


def test_job_ids_are_stable():
    a = job_id("generate", {"preset": "lofi-chill", "seed": 1, "tempo": 80.0, "bars": 4})
    b = job_id("generate", {"bars": 4, "tempo": 80.0, "seed": 1, "preset": "lofi-chill"})
    assert a == b
    # the format and the hash itself are part of resume's contract across versions
    assert a == "lofi-chill-s1-6fa98fabb2"
    assert job_id("generate", {"preset": "lofi-chill", "seed": 1, "tempo": 81.0, "bars": 4}) != a
    assert job_id("extend", {"preset": "lofi-chill", "seed": 1, "tempo": 80.0, "bars": 4}) != a

    text = """
[defaults]
engine = "procedural"
[[job]]
preset = "lofi-chill"
tempo = 80
seed = 1
label = "x"
[[sweep]]
label = "y"
preset = "lofi-chill"
grid.tempo = [80.0, 90]
"""
    import tomllib

    plan = parse_plan(tomllib.loads(text))
    ids = [j.id for j in plan.jobs]
    assert len(ids) == 3 and all(re.match(ID_RE, i) for i in ids)
    again = parse_plan(tomllib.loads(text))
    assert [j.id for j in again.jobs] == ids
    merged = parse_plan({"job": [{"preset": "lofi-chill", "tempo": 80, "seed": 0, "engine": "procedural"}],
                         "sweep": [{"preset": "lofi-chill", "engine": "procedural", "grid": {"tempo": [80.0]}}]})
    assert len(merged.jobs) == 1 and merged.duplicates == 1, "int/float and a default seed give the same id"


@pytest.mark.parametrize("data, words", [
    ({"defaults": {"tempi": 90}, "job": [{}]}, ["unknown key 'tempi' in [defaults]", "allowed:", "tempo"]),
    ({"job": [{"seed": 1}], "sweep": [{}, {"grid": {"sed": [1]}}]}, ["unknown key 'sed'", "[[sweep]] #2 grid"]),
    ({"jobs": [{}]}, ["unknown key 'jobs' in the plan"]),
    ({"job": [{"command": "render", "midi": "a.mid", "tempo": 90}]},
     ["[[job]] #1", "'tempo' does not apply to render"]),
    ({"job": [{"tempo": 500}]}, ["[[job]] #1", "tempo", "500"]),
    ({"job": [{"bars": 2.5}]}, ["bars must be an integer", "2.5"]),
    ({"job": [{"preset": "no-such-preset"}]}, ["unknown preset 'no-such-preset'"]),
    ({"job": [{"engine": "nope"}]}, ["unknown engine 'nope'"]),
    ({"job": [{"key": "H minor"}]}, ["key must look like"]),
    ({"job": [{"bars": 4, "seconds": 10}]}, ["either bars or seconds"]),
    ({"job": [{"post": [{"op": "loudness", "lufz": -14}]}]}, ["post[0]", "lufz"]),
    ({"job": [{"lufs": 5}]}, ["lufs", "5"]),
    ({"job": [{"command": "extend"}]}, ["extend jobs need a midi file"]),
    ({"job": [{"command": "remix"}]}, ["command must be one of"]),
    ({"sweep": [{"grid": {"seed": []}}]}, ["grid.seed must be a non-empty list"]),
    ({"sweep": [{"seed": 1, "grid": {"seed": [1, 2]}}]}, ["'seed' is both a fixed value and a grid axis"]),
    ({"job": [{"midi": "nothing/*.mid"}]}, ["matches no file"]),
    ({}, ["no jobs"]),
])
def test_plan_errors_name_the_key_and_value(tmp_path, data, words):
    with pytest.raises(PlanError) as info:
        parse_plan(data, where="p.toml", base=tmp_path)
    msg = str(info.value)
    assert msg.startswith("plan p.toml: ")
    for w in words:
        assert w in msg, msg


def test_plan_file_errors(tmp_path):
    with pytest.raises(PlanError, match="cannot read plan"):
        load_plan(tmp_path / "missing.toml")
    bad = write_plan(tmp_path, "[[job]\nseed = 1\n")
    with pytest.raises(PlanError, match="not valid TOML"):
        load_plan(bad)
    # a missing literal MIDI file is not a plan error: that job fails when it runs
    plan = load_plan(write_plan(tmp_path, '[[job]]\ncommand = "extend"\nmidi = "gone.mid"\n'))
    assert plan.jobs[0].params["midi"] == "gone.mid"


def test_every_parameter_has_a_check():
    assert set(CHECKS) == set(ALL_PARAMS)


def test_post_chain_shortcuts():
    preset_chain = [{"op": "trim"}, {"op": "fade_out", "seconds": 2.0},
                    {"op": "loudness", "lufs": -14.0, "peak_db": -1.0}]
    chain = build_chain({"lufs": -20.0, "pitch_shift": 2.0, "resample": 22050}, preset_chain)
    assert [s["op"] for s in chain] == ["trim", "fade_out", "pitch_shift", "loudness", "resample"]
    assert chain[3]["lufs"] == -20.0 and chain[3]["peak_db"] == -1.0
    assert build_chain({"lufs": -9.0}, [])[-1] == {"op": "loudness", "lufs": -9.0, "peak_db": -1.0}
    assert build_chain({"post": [], "lufs": -9.0}, preset_chain) == [
        {"op": "loudness", "lufs": -9.0, "peak_db": -1.0}]
    assert build_chain({}, preset_chain) == preset_chain
    with pytest.raises(ParameterError, match="peak_db needs lufs"):
        build_chain({"peak_db": -2.0}, [])


def test_manifest_last_row_wins_and_torn_lines_are_ignored(tmp_path):
    m = Manifest(tmp_path)
    m.write([{"id": "a", "status": "pending", "params": {"seed": 1}},
             {"id": "b", "status": "pending", "params": {"seed": 2, "post": [{"op": "trim"}]}}])
    m.append({"id": "a", "status": "ok", "params": {"seed": 1}, "analysis": {"lufs": -14.0}})
    with open(m.path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "b", "status": "o')  # a kill in the middle of an append
    rows = m.load()
    assert list(rows) == ["b", "a"] and rows["a"]["status"] == "ok" and rows["b"]["status"] == "pending"
    csv_lines = m.csv_path.read_text().splitlines()
    assert csv_lines[0].startswith("id,label,status,command,engine,param.seed,param.post")
    assert '"[{""op"": ""trim""}]"' in csv_lines[2]


def test_progress_line(capsys):
    from musegen.batch.runner import Counts
    from musegen.cli.batch_cmd import BatchBar

    bar = BatchBar(enabled=True)
    counts = Counts(total=10, ok=3, failed=1, skipped=2)
    counts.finished_here = 4
    bar(counts, {"id": "j1", "status": "failed", "error": "boom"})
    bar.close()
    err = capsys.readouterr().err
    assert "failed: j1: boom" in err
    assert "6/10" in err and "done 5" in err and "failed 1" in err and "left 4" in err and "ETA " in err
    quiet = BatchBar(enabled=False)
    quiet(counts, None)
    assert capsys.readouterr().err == ""


# -- the command ----------------------------------------------------------------

SMALL = """
title = "small"
[defaults]
engine = "procedural"
bars = 2

[[sweep]]
label = "seeds"
preset = "synthwave"
grid.seed = [1, 2]

[[sweep]]
label = "sketches"
command = "extend"
grid.midi = ["sketch.mid", "missing.mid"]

[[job]]
command = "render"
midi = "sketch.mid"
"""


def test_dry_run_lists_jobs(tmp_path):
    make_sketch(tmp_path / "sketch.mid")
    plan = write_plan(tmp_path, SMALL)
    r = run_cli("batch", plan, "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 5 and "5 jobs" in r.stderr
    assert any(" render " in ln and "midi=sketch.mid" in ln for ln in lines)
    r = run_cli("batch", plan, "--dry-run", "--json")
    doc = json.loads(r.stdout)
    assert [j["id"] for j in doc["jobs"]] == [ln.split()[0] for ln in lines]
    assert not (tmp_path / "runs").exists()


def test_bad_plan_is_one_error_line(tmp_path):
    plan = write_plan(tmp_path, "[[job]]\ntempi = 90\n")
    r = run_cli("batch", plan, "-o", tmp_path / "out")
    assert r.returncode == 2
    assert r.stderr.startswith("Error: plan ") and "unknown key 'tempi'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    r = run_cli("batch", plan)  # no -o: a usage error
    assert r.returncode == 2


def test_batch_runs_records_fails_and_resumes(tmp_path):
    make_sketch(tmp_path / "sketch.mid")
    plan = write_plan(tmp_path, SMALL)
    out = tmp_path / "runs" / "exp1"
    r = run_cli("batch", plan, "-o", out, "--workers", "2", "--json")
    assert r.returncode == 1, r.stderr  # one job failed
    assert "Traceback" not in r.stderr and "failed: extend-missing" in r.stderr
    doc = json.loads(r.stdout)
    assert (doc["jobs"], doc["ok"], doc["failed"]) == (5, 4, 1)

    rows = rows_of(out)
    assert len(rows) == 5 and len({r["id"] for r in rows}) == 5
    by_status = {r["id"]: r["status"] for r in rows}
    (failed,) = [r for r in rows if r["status"] == "failed"]
    assert failed["params"]["midi"] == "missing.mid" and "missing.mid" in failed["error"]
    assert not (out / failed["id"]).exists()
    workers = set()
    for row in rows:
        if row["status"] != "ok":
            continue
        folder = out / row["id"]
        for kind in ("wav", "json", "spectrogram"):
            assert (out / row["outputs"][kind]).is_file(), (row["id"], kind)
        assert row["outputs"]["wav"].startswith(row["id"] + "/")
        if row["command"] != "render":
            assert (out / row["outputs"]["mid"]).is_file()
        assert (out / row["outputs"]["pianoroll"]).is_file()
        side = json.loads((out / row["outputs"]["json"]).read_text())
        assert side["parameters"]
        assert row["analysis"]["duration_s"] > 1 and "peak_dbfs" in row["analysis"]
        assert "lufs" in row["analysis"] or row["command"] == "render"  # render measures LUFS only when mastering
        assert row["timings"]["total_s"] > 0 and row["wall_s"] > 0
        assert sorted(p.name for p in folder.iterdir()) == sorted(Path(v).name for v in row["outputs"].values())
        workers.add(row["worker"])
    assert len(workers) == 2, "two worker processes shared the jobs"
    header = (out / "manifest.csv").read_text().splitlines()[0].split(",")
    for col in ("id", "status", "param.seed", "param.midi", "analysis.lufs", "timings.total_s", "outputs.wav"):
        assert col in header
    assert len((out / "manifest.csv").read_text().splitlines()) == 6
    html = (out / "report.html").read_text()
    assert html.count("<audio ") == 4 and "missing.mid" in html
    no_partials(out)

    # a second run without --resume is refused
    r = run_cli("batch", plan, "-o", out)
    assert r.returncode == 2 and "--resume" in r.stderr

    # --resume: finished jobs are skipped (files untouched), the failed one runs again
    ok_rows = {r["id"]: r for r in rows if r["status"] == "ok"}
    mtimes = {i: (out / r["outputs"]["wav"]).stat().st_mtime_ns for i, r in ok_rows.items()}
    gone = sorted(ok_rows)[0]
    shutil.rmtree(out / gone)  # a finished job whose folder was deleted is run again
    r = run_cli("batch", plan, "-o", out, "--resume", "--workers", "2", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert (doc["skipped"], doc["ok"], doc["failed"]) == (3, 1, 1)
    rows2 = {r["id"]: r for r in rows_of(out)}
    assert len(rows2) == 5 and {i: r["status"] for i, r in rows2.items()} == by_status
    for i, row in ok_rows.items():
        if i == gone:
            assert rows2[i]["started_at"] != row["started_at"]
        else:
            assert rows2[i] == row, "skipped rows are kept as they were"
            assert (out / row["outputs"]["wav"]).stat().st_mtime_ns == mtimes[i]
    assert rows2[failed["id"]]["started_at"] != failed["started_at"]
    no_partials(out)


def test_second_run_on_a_locked_folder_is_refused(tmp_path):
    from musegen.batch.lock import RunLock

    plan = write_plan(tmp_path, '[[job]]\nengine = "procedural"\nbars = 1\n')
    out = tmp_path / "out"
    out.mkdir()
    with RunLock(out):
        r = run_cli("batch", plan, "-o", out)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and "in use by another batch run" in r.stderr
    assert f"pid {os.getpid()}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (out / "manifest.jsonl").exists()


def _wait_for(predicate, timeout: float, proc=None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"batch ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def _ok_rows(out: Path) -> int:
    try:
        return sum(1 for r in Manifest(out).load().values() if r.get("status") == "ok")
    except Exception:
        return 0


INTERRUPT_PLAN = """
[defaults]
engine = "procedural"
preset = "lofi-chill"
bars = 8
[[sweep]]
grid.seed = [1, 2, 3, 4, 5, 6, 7, 8]
"""


def _batch_with_one_job_done(plan: Path, out: Path) -> subprocess.Popen:
    """A 2-worker batch in a subprocess, returned once its first job has finished."""
    proc = subprocess.Popen([sys.executable, "-m", "musegen", "batch", str(plan), "-o", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **INTERRUPTIBLE)
    try:
        _wait_for(lambda: _ok_rows(out) >= 1, 120, proc)
    except BaseException:
        proc.kill()
        raise
    return proc


def test_interrupt_leaves_no_partials_and_resume_finishes(tmp_path):
    plan = write_plan(tmp_path, INTERRUPT_PLAN)
    out = tmp_path / "run"
    proc = _batch_with_one_job_done(plan, out)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Error: interrupted" in err and "--resume" in err and "Traceback" not in err
    no_partials(out)
    rows = rows_of(out)  # compacted: one parseable row per job
    assert len(rows) == 8 and len({r["id"] for r in rows}) == 8
    statuses = [r["status"] for r in rows]
    assert set(statuses) <= {"ok", "interrupted", "pending"}
    done = {r["id"]: r for r in rows if r["status"] == "ok"}
    assert 1 <= len(done) < 8
    for r in rows:
        assert (out / r["id"]).is_dir() == (r["status"] == "ok"), "a job folder exists only complete"
    mtimes = {i: (out / r["outputs"]["wav"]).stat().st_mtime_ns for i, r in done.items()}
    assert (out / "report.html").is_file()

    r = run_cli("batch", plan, "-o", out, "--resume", "--workers", "2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["skipped"] == len(done) and doc["ok"] == 8 - len(done)
    assert all(r["status"] == "ok" for r in rows_of(out))
    for i, r in done.items():
        assert (out / r["outputs"]["wav"]).stat().st_mtime_ns == mtimes[i]
    no_partials(out)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find worker processes")
def test_killed_worker_job_is_retried(tmp_path):
    plan = write_plan(tmp_path, INTERRUPT_PLAN)
    out = tmp_path / "run"
    proc = _batch_with_one_job_done(plan, out)
    try:
        workers = [p for p in _children(proc.pid)
                   if b"multiprocessing" in Path(f"/proc/{p}/cmdline").read_bytes()
                   and b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert workers
        # workers run chunks of jobs; each job is recorded as it finishes, not with its chunk
        done_before = {r["id"]: r for r in rows_of(out) if r["status"] == "ok"}
        os.kill(workers[0], signal.SIGKILL)
        out_text, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    rows = {r["id"]: r for r in rows_of(out)}
    assert all(r["status"] == "ok" for r in rows.values())
    assert done_before and all(rows[i]["finished_at"] == r["finished_at"] for i, r in done_before.items()), \
        "jobs recorded before the kill are not run again"
    no_partials(out)


def test_ray_executor(tmp_path):  # about 20 s with a local Ray instance; skipped without Ray
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'musegen[ray]'")
    make_sketch(tmp_path / "sketch.mid")
    plan = write_plan(tmp_path, """
[defaults]
engine = "procedural"
bars = 2
[[sweep]]
preset = "synthwave"
grid.seed = [1, 2, 3]
[[job]]
command = "extend"
midi = "missing.mid"
""")
    out = tmp_path / "ray"
    r = run_cli("batch", plan, "-o", out, "--executor", "ray", "--workers", "2", "--json", timeout=600)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["ok"], doc["failed"]) == (3, 1)
    rows = rows_of(out)
    assert {r["status"] for r in rows} == {"ok", "failed"}
    for row in rows:
        if row["status"] == "ok":
            assert (out / row["outputs"]["wav"]).is_file() and (out / row["outputs"]["json"]).is_file()
    assert len({r["worker"] for r in rows if r["status"] == "ok"}) <= 2, "jobs ran on two long-lived actors"
    no_partials(out)


def test_ray_missing_is_a_clean_error(tmp_path):
    plan = str(write_plan(tmp_path, "[[job]]\nbars = 1\n"))
    code = ("import sys; sys.modules['ray'] = None\n"
            "from musegen.cli.main import run\n"
            f"run(['batch', {plan!r}, '-o', {str(tmp_path / 'out')!r}, '--executor', 'ray'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1
    assert "Error: the ray executor needs Ray" in r.stderr and "musegen[ray]" in r.stderr
    assert "Traceback" not in r.stderr
