"""musegen studio: the HTTP API end to end with the procedural engine, and the page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import INTERRUPTIBLE, SAMPLES

pytest.importorskip("starlette", reason="the studio needs its extra: pip install 'musegen[studio]'")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx: pip install httpx")

from starlette.testclient import TestClient

from musegen.studio.app import create_app

BASE = "http://127.0.0.1:8765"
FAST = {"preset": "lofi-chill", "engine": "procedural", "bars": 2}


def wait_job(client, job_id: str, *, until=("done", "failed", "cancelled"), limit: float = 240) -> dict:
    """Poll a job until its status is one of ``until`` (``limit`` only guards a hung worker)."""
    end = time.monotonic() + limit
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in until or time.monotonic() > end:
            return job
        time.sleep(0.1)


def wait_pictures(client, job_id: str, limit: float = 240) -> dict:
    """Poll a done job until its spectrograms, drawn after its sound, are in."""
    end = time.monotonic() + limit
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job.get("pictures") != "pending" or time.monotonic() > end:
            return job
        time.sleep(0.1)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studio")
    with TestClient(create_app(folder), base_url=BASE) as client:
        client.folder = folder
        yield client


@pytest.fixture(scope="module")
def sketch_id(studio):
    r = studio.post("/api/upload?name=melody.mid", content=(SAMPLES / "melody.mid").read_bytes())
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_presets_and_engines_describe_what_the_page_offers(studio):
    presets = studio.get("/api/presets").json()
    lofi = next(p for p in presets["presets"] if p["name"] == "lofi-chill")
    assert lofi["tempo"] == [70.0, 84.0] and lofi["key"] == "F" and lofi["meter"] == "4/4" and lofi["description"]
    engines = {e["name"]: e for e in studio.get("/api/engines").json()["engines"]}
    assert {"procedural", "symbolic"} <= set(engines)
    names = {o["name"] for o in engines["procedural"]["options"]}
    assert "swing_unit" in names, "the page builds its option inputs from the engine's declared options"
    assert all({"type", "default", "help", "allowed"} <= set(o) for o in engines["procedural"]["options"])


def test_upload_checks_the_midi(studio, sketch_id):
    sketches = studio.get("/api/sketches").json()["sketches"]
    melody = next(s for s in sketches if s["id"] == sketch_id)
    assert melody["name"] == "melody.mid" and melody["notes"] > 0
    r = studio.post("/api/upload?name=broken.mid", content=b"MThd\x00\x00\x00\x06\x00\x01")
    assert r.status_code == 400
    assert r.json()["error"].startswith("broken.mid: ") and "header" in r.json()["error"]
    r = studio.post("/api/upload?name=empty.mid", content=b"")
    assert r.status_code == 400 and "empty" in r.json()["error"]


def test_upload_over_the_midi_bytes_limit_is_refused(studio, monkeypatch):
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_BYTES", "100")
    r = studio.post("/api/upload?name=melody.mid", content=(SAMPLES / "melody.mid").read_bytes())
    assert r.status_code == 413
    assert "midi_bytes limit of 100 bytes" in r.json()["error"] and "MUSEGEN_MAX_MIDI_BYTES" in r.json()["error"]


def test_a_generate_job_makes_wav_midi_json_and_pictures(studio):
    r = studio.post("/api/jobs", json={**FAST, "seed": 11})
    assert r.status_code == 201, r.text
    job = wait_job(studio, r.json()["id"])
    assert job["status"] == "done", job
    assert studio.get("/files/" + job["takes"][0]["wav"]).status_code == 200, "playable before its picture"
    job = wait_pictures(studio, job["id"])
    assert job["pictures"] == "ready"
    (take,) = job["takes"]
    assert take["seed"] == 11 and take["summary"]["key"] and take["summary"]["lufs"] < -5
    wav = studio.get("/files/" + take["wav"])
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav" and wav.content[:4] == b"RIFF"
    import io

    import numpy as np
    import soundfile as sf

    y, sr = sf.read(io.BytesIO(wav.content))
    assert np.abs(y).max() > 0.05, "the take is not silent"
    assert studio.get("/files/" + take["mid"]).content[:4] == b"MThd"
    sidecar = studio.get("/files/" + take["json"]).json()
    assert sidecar["parameters"]["seed"] == 11 and sidecar["parameters"]["bars"] == 2
    assert studio.get("/files/" + take["png"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    notes = studio.get("/files/" + take["notes"]).json()
    assert notes and all(len(n) == 6 for n in notes)
    assert max(n[0] + n[1] for n in notes) <= y.shape[0] / sr + 0.01, "the piano roll's notes lie inside the audio"
    dl = studio.get("/files/" + take["wav"] + "?download=1")
    assert dl.headers["content-disposition"].startswith("attachment")
    history = studio.get("/api/takes").json()["jobs"]
    assert any(j["id"] == job["id"] for j in history)


def test_a_job_with_stems_offers_a_wav_and_midi_per_part(studio):
    import io

    import numpy as np
    import soundfile as sf

    job = wait_job(studio, studio.post("/api/jobs", json={**FAST, "seed": 3, "stems": True}).json()["id"])
    assert job["status"] == "done", job
    (take,) = job["takes"]
    names = [s["name"] for s in take["stems"]]
    assert len(names) >= 3 and any(n.startswith("bass-") for n in names) and any(n.startswith("drums-") for n in names)
    loud = 0
    for stem in take["stems"]:
        assert stem["wav"].startswith(f"takes/{job['id']}/{take['stem']}.stems/")
        wav = studio.get("/files/" + stem["wav"] + "?download=1")
        assert wav.status_code == 200 and wav.headers["content-disposition"].startswith("attachment")
        y, _ = sf.read(io.BytesIO(wav.content))
        loud += np.abs(y).max() > 0.01
        assert studio.get("/files/" + stem["mid"]).content[:4] == b"MThd"
    assert loud == len(names), "every part's stem holds sound"
    plain = wait_job(studio, studio.post("/api/jobs", json={**FAST, "seed": 3}).json()["id"])
    assert plain["takes"][0]["stems"] == [], "no stems unless asked (lofi-chill's [render] does not)"
    r = studio.post("/api/jobs", json={**FAST, "stems": "yes"})
    assert r.status_code == 400 and "stems must be true or false, got 'yes'" in r.json()["error"]


def test_an_extend_job_continues_the_uploaded_sketch(studio, sketch_id):
    r = studio.post("/api/jobs", json={**FAST, "kind": "extend", "sketch": sketch_id, "seed": 2})
    job = wait_job(studio, r.json()["id"])
    assert job["status"] == "done", job
    sidecar = studio.get("/files/" + job["takes"][0]["json"]).json()
    assert sidecar["command"] == "extend" and sidecar["parameters"]["midi_sha256"]


def test_a_failing_job_shows_its_error_and_the_studio_keeps_working(studio, sketch_id, tmp_path):
    # the sketch passed the upload check; spoiling it on disk makes the job fail in the worker
    folder = Path(studio.folder)
    spoiled = folder / "sketches" / f"{sketch_id}.mid"
    good = spoiled.read_bytes()
    spoiled.write_bytes(b"MThd\x00\x00\x00\x06not midi")
    try:
        job = wait_job(studio, studio.post("/api/jobs", json={**FAST, "sketch": sketch_id}).json()["id"])
    finally:
        spoiled.write_bytes(good)
    assert job["status"] == "failed"
    assert f"{sketch_id}.mid" in job["error"] and job["error_type"] == "MidiError"
    assert not (folder / "takes" / job["id"]).exists(), "a failed job leaves no files"
    assert studio.get("/api/presets").status_code == 200
    after = wait_job(studio, studio.post("/api/jobs", json={**FAST, "seed": 1}).json()["id"])
    assert after["status"] == "done", after


@pytest.mark.parametrize("field, value, words", [
    ("options", {"no_such_option": 1}, "no_such_option"),
    ("engine", "nope", "unknown engine 'nope'"),
    ("preset", "no-such-preset", "unknown preset 'no-such-preset'"),
    ("preset", "../../etc/passwd", "not a path"),
    ("bars", 0, "bars must be between 1"),
    ("sketch", "../../../etc/passwd", "sketch must be the id"),
    ("variations", 99, "variations must be between 1 and 8"),
    ("colour", "blue", "unknown job field 'colour'"),
])
def test_bad_job_fields_are_answered_with_a_400_naming_them(studio, field, value, words):
    r = studio.post("/api/jobs", json={**FAST, field: value})
    assert r.status_code == 400 and words in r.json()["error"], r.text


def test_extend_without_a_sketch_is_refused(studio):
    r = studio.post("/api/jobs", json={**FAST, "kind": "extend"})
    assert r.status_code == 400 and "needs a sketch" in r.json()["error"]


@pytest.mark.parametrize("path", [
    "..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "takes%2F..%2F..%2F..%2Fetc%2Fhosts",
    "..%2Foutside.json", "jobs/..%2F..%2Foutside.json", "%2e%2e/outside.json",
])
def test_files_outside_the_studio_folder_are_refused(studio, path):
    outside = Path(studio.folder).parent / "outside.json"
    outside.write_text('{"secret": 1}')
    r = studio.get("/files/" + path)
    assert r.status_code in (403, 404) and "secret" not in r.text and "root:" not in r.text


def test_a_link_out_of_the_folder_and_other_file_types_are_refused(studio):
    folder = Path(studio.folder)
    secret = folder.parent / "secret.json"
    secret.write_text('{"secret": 1}')
    (folder / "link.json").symlink_to(secret)
    r = studio.get("/files/link.json")
    assert r.status_code == 403 and "secret" not in r.text
    (folder / "notes.txt").write_text("x")
    assert studio.get("/files/notes.txt").status_code == 403


def test_requests_from_other_origins_and_hosts_are_refused(studio):
    r = studio.post("/api/jobs", json=FAST, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "other origins" in r.json()["error"]
    r = studio.get("/api/takes", headers={"Host": "evil.example"})
    assert r.status_code == 403
    assert studio.post("/api/jobs/000000000000/cancel", headers={"Origin": BASE}).status_code == 404


def test_cancel_stops_a_running_job_and_removes_its_files(studio):
    # 300 bars take the worker far longer than the poll that sees it running
    job_id = studio.post("/api/jobs", json={**FAST, "bars": 300}).json()["id"]
    assert wait_job(studio, job_id, until=("running", "done", "failed"))["status"] == "running"
    queued = studio.post("/api/jobs", json=FAST).json()["id"]
    assert studio.get(f"/api/jobs/{queued}").json()["status"] == "queued", "one job at a time"
    assert studio.post(f"/api/jobs/{queued}/cancel").json()["status"] == "cancelled"
    assert studio.get(f"/api/jobs/{job_id}").json()["status"] == "running", "the running one goes on"
    r = studio.post(f"/api/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert not (Path(studio.folder) / "takes" / job_id).exists()
    after = wait_job(studio, studio.post("/api/jobs", json=FAST).json()["id"])
    assert after["status"] == "done", "a fresh worker takes the next job"


def test_a_worker_that_dies_fails_its_job_and_a_new_one_takes_the_next(studio):
    job_id = studio.post("/api/jobs", json={**FAST, "bars": 300}).json()["id"]
    assert wait_job(studio, job_id, until=("running", "done", "failed"))["status"] == "running"
    os.kill(studio.app.state.jobs._proc.pid, signal.SIGKILL)  # as the kernel's OOM killer would
    job = wait_job(studio, job_id)
    assert job["status"] == "failed" and "its worker process died" in job["error"], job
    assert not (Path(studio.folder) / "takes" / job_id).exists()
    assert wait_job(studio, studio.post("/api/jobs", json=FAST).json()["id"])["status"] == "done"


def test_removing_a_job_deletes_its_takes_and_only_once_it_is_finished(studio):
    running = studio.post("/api/jobs", json={**FAST, "bars": 300}).json()["id"]
    assert wait_job(studio, running, until=("running",))["status"] == "running"
    r = studio.delete(f"/api/jobs/{running}")
    assert r.status_code == 409 and "cancel it before removing it" in r.json()["error"]
    studio.post(f"/api/jobs/{running}/cancel")
    done = wait_job(studio, studio.post("/api/jobs", json=FAST).json()["id"])
    folder = Path(studio.folder)
    assert (folder / "takes" / done["id"]).is_dir()
    for job_id in (done["id"], running):
        assert studio.delete(f"/api/jobs/{job_id}").json() == {"id": job_id, "deleted": True}
        assert studio.get(f"/api/jobs/{job_id}").status_code == 404
        assert not (folder / "takes" / job_id).exists() and not (folder / "jobs" / f"{job_id}.json").exists()
    assert studio.delete("/api/jobs/..%2F..%2Fetc").status_code == 404


# -- learning a style and running a sweep from the studio ------------------------------------

STYLE_SAMPLES = ("melody-and-chords.mid", "piano-piece.mid", "chord-loop.mid")


def upload_samples(client, names) -> list[str]:
    ids = []
    for name in names:
        r = client.post(f"/api/upload?name={name}", content=(SAMPLES / name).read_bytes())
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


@pytest.fixture
def style_studio(tmp_path, monkeypatch):
    """A studio whose worker learns styles into a style store of its own."""
    monkeypatch.setenv("MUSEGEN_STYLE_DIR", str(tmp_path / "styles"))
    with TestClient(create_app(tmp_path / "studio"), base_url=BASE) as client:
        client.folder = tmp_path / "studio"
        client.styles = tmp_path / "styles"
        yield client


def test_a_style_learned_from_uploaded_sketches_is_a_preset_at_once(style_studio):
    ids = upload_samples(style_studio, STYLE_SAMPLES)
    r = style_studio.post("/api/jobs", json={"kind": "style", "name": "my-sketches", "sketches": ids, "steps": 3,
                                                    "from_preset": "pop-ballad"})
    assert r.status_code == 201, r.text
    job = wait_job(style_studio, r.json()["id"])
    assert job["status"] == "done", job
    assert job["style"]["name"] == "my-sketches" and job["style"]["files"] == 3 and job["style"]["steps"] <= 3
    assert job["style"]["base_preset"] == "pop-ballad"
    listed = {p["name"]: p for p in style_studio.get("/api/presets").json()["presets"]}
    assert listed["my-sketches"]["origin"] == "style" and listed["my-sketches"]["engine"] == "symbolic"
    assert sorted(p.name for p in style_studio.styles.iterdir()) == ["my-sketches"], "no hidden work folder left"
    # the same name again is refused before anything runs, naming it
    r = style_studio.post("/api/jobs", json={"kind": "style", "name": "my-sketches", "sketches": ids})
    assert r.status_code == 400 and "'my-sketches' is already a learned style" in r.json()["error"]


def test_cancelling_a_style_leaves_no_half_made_style(style_studio):
    ids = upload_samples(style_studio, STYLE_SAMPLES)
    job_id = style_studio.post("/api/jobs", json={"kind": "style", "name": "cut", "sketches": ids,
                                                 "steps": 5000, "from_preset": "pop-ballad"}).json()["id"]
    end = time.monotonic() + 240  # until it fine-tunes (its hidden work folder exists then)
    job = style_studio.get(f"/api/jobs/{job_id}").json()
    while not (job["message"] or "").startswith("fine-tuning") and job["status"] in ("queued", "running") \
            and time.monotonic() < end:
        time.sleep(0.1)
        job = style_studio.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "running" and job["message"].startswith("fine-tuning"), job
    assert 0.1 <= job["progress"] < 1
    assert next(p.name for p in style_studio.styles.iterdir()).startswith(".cut."), "building in a hidden folder"
    assert style_studio.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert list(style_studio.styles.iterdir()) == []
    assert "cut" not in {p["name"] for p in style_studio.get("/api/presets").json()["presets"]}
    assert wait_job(style_studio, style_studio.post("/api/jobs", json=FAST).json()["id"])["status"] == "done"


def test_a_style_from_too_few_usable_files_fails_on_its_job(style_studio):
    ids = upload_samples(style_studio, STYLE_SAMPLES)
    # the sketches passed the upload check; one spoiled on disk leaves two usable files in the worker
    (Path(style_studio.folder) / "sketches" / f"{ids[1]}.mid").write_bytes(b"MThd\x00\x00\x00\x06not midi")
    job = wait_job(style_studio, style_studio.post("/api/jobs", json={"kind": "style", "name": "two",
                                                                      "sketches": ids}).json()["id"])
    assert job["status"] == "failed" and job["error_type"] == "InputError", job
    assert "needs at least 3 MIDI files with notes; only 2 of 3 are usable" in job["error"], job["error"]
    assert f"piano-piece.mid ({ids[1]}): " in job["error"], "the unusable file is named as it was dropped"
    assert not style_studio.styles.exists() or list(style_studio.styles.iterdir()) == []


@pytest.mark.parametrize("field, value, words", [
    ("name", "Bad Name!", "style name 'Bad Name!' must be"),
    ("name", "lofi-chill", "'lofi-chill' is already a built-in preset"),
    ("sketches", "two", "sketches must be a list"),
    ("sketches", ["../../etc/passwd"], "sketches must be ids of uploaded sketches"),
    ("sketches", ["0123456789abcdef"], "no uploaded sketch '0123456789abcdef'"),
    ("sketches", "first-two", "learning a style needs 3 to 64 different MIDI files, got 2"),
    ("steps", 0, "steps must be between 1"),
    ("from_preset", "no-such", "unknown preset 'no-such'"),
    ("from_preset", "../x.toml", "from_preset must be a preset name, not a path"),
    ("colour", "blue", "unknown style job field 'colour'"),
])
def test_bad_style_jobs_are_refused_naming_the_field(studio, sketch_id, field, value, words):
    ids = upload_samples(studio, STYLE_SAMPLES)
    if value == "first-two":
        value = ids[:2]
    job = {"kind": "style", "name": "fine-name", "sketches": ids, field: value}
    r = studio.post("/api/jobs", json=job)
    assert r.status_code == 400 and words in r.json()["error"], r.text


SWEEP = {"kind": "sweep", "preset": "lofi-chill", "engine": "procedural", "bars": 1,
         "grid": {"seed": [1, 2], "tempo": [72, 90]}}


def test_a_sweep_runs_as_a_batch_and_opens_its_report(studio):
    r = studio.post("/api/jobs", json=SWEEP)
    assert r.status_code == 201, r.text
    assert r.json()["params"]["jobs"] == 4
    job = wait_job(studio, r.json()["id"])
    assert job["status"] == "done", job
    assert job["sweep"]["ok"] == 4 and job["sweep"]["failed"] == 0
    assert sorted((row["params"]["seed"], row["params"]["tempo"]) for row in job["rows"]) == [
        (1, 72), (1, 90), (2, 72), (2, 90)]
    assert all(row["status"] == "ok" for row in job["rows"])
    assert job["report"] == f"sweeps/{job['id']}/report.html"
    page = studio.get("/files/" + job["report"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("<audio") == 4 and "studio sweep: lofi-chill x seed x tempo" in page.text
    # what the report links to is served from the sweep's folder
    wav = re.search(r'<audio[^>]*src="([^"]+)"', page.text).group(1)
    assert studio.get(f"/files/sweeps/{job['id']}/{wav}").content[:4] == b"RIFF"
    rows = studio.get(f"/files/sweeps/{job['id']}/manifest.jsonl").text.splitlines()
    assert len(rows) == 4 and all(json.loads(row)["status"] == "ok" for row in rows)
    # only a sweep's report is a page the studio serves
    (Path(studio.folder) / "evil.html").write_text("<script>alert(1)</script>")
    assert studio.get("/files/evil.html").status_code == 403
    assert studio.get(f"/files/sweeps/{job['id']}/..%2F..%2Fevil.html").status_code == 403
    # removing the job removes its run folder
    assert studio.delete(f"/api/jobs/{job['id']}").json()["deleted"] is True
    assert not (Path(studio.folder) / "sweeps" / job["id"]).exists()


@pytest.mark.parametrize("change, words", [
    ({"grid": {"seed": list(range(9)), "tempo": list(range(60, 68))}}, "the sweep makes 72 jobs, more than the studio's 64"),
    ({"grid": {"colour": [1, 2]}}, "grid: 'colour' cannot be swept here"),
    ({"grid": {"seed": []}}, "grid.seed must be a non-empty list"),
    ({"grid": {"seed": [1], "tempo": [80], "lufs": [-14]}}, "at most 2 parameters"),
    ({"grid": {}}, "grid must map 1 to 2 of"),
    ({"grid": {"tempo": ["fast"]}}, "tempo"),
    ({"engine": "nope"}, "unknown engine 'nope'"),
    ({"preset": "../x.toml"}, "not a path"),
    ({"bars": 0}, "bars must be between 1"),
    ({"workers": 4}, "unknown sweep field 'workers'"),
])
def test_bad_sweeps_are_refused_naming_the_field(studio, change, words):
    r = studio.post("/api/jobs", json={**SWEEP, **change})
    assert r.status_code == 400 and words in r.json()["error"], r.text
    assert not (Path(studio.folder) / "sweeps").exists() or not any(
        p.name.startswith(".") for p in (Path(studio.folder) / "sweeps").iterdir())


def test_jobs_survive_a_restart(tmp_path):
    with TestClient(create_app(tmp_path), base_url=BASE) as client:
        done = wait_job(client, client.post("/api/jobs", json=FAST).json()["id"])
    with TestClient(create_app(tmp_path), base_url=BASE) as client:
        again = client.get(f"/api/jobs/{done['id']}").json()
        assert again["status"] == "done" and again["takes"] == done["takes"]
        assert client.get("/files/" + again["takes"][0]["wav"]).status_code == 200


def test_without_starlette_the_command_says_how_to_install_it():
    code = ("import sys; sys.modules['starlette'] = None; sys.argv = ['musegen', 'studio', '--no-browser']; "
            "from musegen.cli.main import run; run()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "Error: the studio needs starlette, which is not installed; install it with: pip install 'musegen[studio]'"]


def test_help_does_not_import_the_web_server():
    code = ("import sys, musegen.cli.main; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn')))")
    r = subprocess.run([sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.stdout.strip() == "[]", r.stdout


# -- the real server and a real browser --------------------------------------------------------

def _musegen() -> list[str]:
    exe = Path(sys.executable).with_name("musegen")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "musegen"]


def start_studio(folder: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*_musegen(), "studio", "--no-browser", "--port", "0", "--folder", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **INTERRUPTIBLE)
    url = proc.stdout.readline().strip()  # the payload: printed once the server answers
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"no address from musegen studio: {url!r} {proc.stderr.read()[-2000:]}")
    return proc, url


def stop_studio(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def test_ctrl_c_stops_the_server_and_its_worker_and_leaves_no_partial_take(tmp_path):
    import httpx

    proc, url = start_studio(tmp_path)
    try:
        job = httpx.post(url + "api/jobs", json={**FAST, "bars": 300}).json()
        while httpx.get(url + f"api/jobs/{job['id']}").json()["status"] != "running":
            time.sleep(0.1)
    finally:
        code, err = stop_studio(proc)
    assert code == 0 and err.strip().endswith("studio stopped"), err
    assert list((tmp_path / "takes").iterdir()) == [], "the unfinished take's files are gone"
    saved = json.loads((tmp_path / "jobs" / f"{job['id']}.json").read_text())
    assert saved["status"] == "cancelled" and saved["message"] == "stopped with the studio"


def descendants(pid: int) -> set[int]:
    """The processes under ``pid`` (Linux: from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_ctrl_c_during_a_sweep_stops_the_batch_pool_and_leaves_no_run_folder(tmp_path):
    import httpx

    proc, url = start_studio(tmp_path)
    try:
        job = httpx.post(url + "api/jobs", json={**SWEEP, "bars": 300}).json()
        while not httpx.get(url + f"api/jobs/{job['id']}").json()["message"].startswith("0 of 4 jobs done"):
            time.sleep(0.1)  # the batch runner has started its pool
        tree = descendants(proc.pid)
        assert len(tree) >= 2, "the studio's worker and the batch pool's workers under it"
        assert (tmp_path / "sweeps" / job["id"]).is_dir()
    finally:
        code, err = stop_studio(proc)
    # nothing after the last line: a pool killed with its runner would leave a warning about its semaphores
    assert code == 0 and err.strip().endswith("studio stopped"), err
    assert not (tmp_path / "sweeps" / job["id"]).exists(), "the unfinished run's folder is gone"
    end = time.monotonic() + 30  # a killed process is gone once the kernel has reaped it
    while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
              for pid in tree) and time.monotonic() < end:
        time.sleep(0.1)
    alive = [pid for pid in tree if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
    assert alive == [], f"processes left running: {alive}"
    saved = json.loads((tmp_path / "jobs" / f"{job['id']}.json").read_text())
    assert saved["status"] == "cancelled"


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


class Page:
    """The smallest Chrome DevTools Protocol client: evaluate JavaScript, set the viewport, screenshot."""

    def __init__(self, ws):
        self.ws = ws
        self.n = 0

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expression: str, limit: float = 240):
        end = time.monotonic() + limit
        while not self.js(expression):
            if time.monotonic() > end:
                raise AssertionError(f"the page never reached: {expression}")
            time.sleep(0.2)

    def screenshot(self, path: Path, width: int, height: int, mobile: bool = False) -> Path:
        import base64

        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=mobile)
        time.sleep(0.3)  # a frame for the layout and the canvases to redraw at the new size
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("MUSEGEN_TEST_ARTIFACTS", tmp_path)) / "studio"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)")
def test_the_page_in_headless_chromium_makes_and_plays_a_take(tmp_path):
    pytest.importorskip("websockets", reason="the browser test talks to Chromium with websockets: pip install websockets")
    import urllib.request

    shots = _artifacts(tmp_path)
    studio_folder = tmp_path / "studio"
    t0 = time.monotonic()
    proc, url = start_studio(studio_folder, env={"MUSEGEN_STYLE_DIR": str(tmp_path / "styles")})
    profile = tempfile.mkdtemp(prefix="chromium-")
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--mute-audio", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "--window-size=1400,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in browser.stderr:
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                break
        else:
            raise AssertionError("Chromium printed no DevTools address")
        port = re.search(r":(\d+)/", m.group(1)).group(1)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        from websockets.sync.client import connect

        with connect(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"], max_size=64 << 20) as ws:
            drive_the_page(Page(ws), url, shots)
        took = time.monotonic() - t0
    finally:
        browser.kill()
        browser.wait(timeout=30)
        browser.stderr.close()
        shutil.rmtree(profile, ignore_errors=True)
        stop_studio(proc)
    for name in ("studio-empty-1400.png", "studio-take-1400.png", "studio-take-phone.png", "studio-running-1400.png",
                 "studio-sweep-1400.png", "studio-sweep-phone.png", "studio-sweep-report-1400.png",
                 "studio-style-running-1400.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"studio, browser, a take, a reload: {took:.1f} s; screenshots in {shots}")


def drive_the_page(page: Page, url: str, shots: Path) -> None:
    """Load the page, make a take with the procedural engine, play it, look at it, re-run, reload."""
    page.call("Page.enable")
    page.call("Page.navigate", url=url)
    page.wait("document.body && document.body.dataset.ready === '1'", limit=60)
    page.screenshot(shots / "studio-empty-1400.png", 1400, 900)
    assert page.js("document.querySelectorAll('#preset option').length") >= 10
    assert page.js("[...document.querySelectorAll('#engine option')].map(o => o.value).includes('procedural')")

    # a sketch chosen with the file input is uploaded and listed; a broken one is answered on the page
    doc = page.call("DOM.getDocument")["root"]["nodeId"]
    file_input = page.call("DOM.querySelector", nodeId=doc, selector="#file")["nodeId"]
    page.call("DOM.setFileInputFiles", nodeId=file_input, files=[str(SAMPLES / "melody.mid")])
    page.wait("document.querySelector('#sketch-info').textContent.includes('notes')")
    assert page.js("document.querySelector('#sketch option:checked').textContent").startswith("melody.mid")
    broken = shots / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00")
    page.call("DOM.setFileInputFiles", nodeId=file_input, files=[str(broken)])
    page.wait("document.querySelector('#sketch-info').classList.contains('error')")
    assert page.js("document.querySelector('#sketch-info').textContent").startswith("broken.mid: ")

    # what the MIDI-keyboard recorder writes is a MIDI file the studio accepts: four notes at 100 BPM
    rec = page.js("""(async () => {
        const ev = [[0, 60], [600, 64], [1200, 67], [1800, 72]].flatMap(([t, p]) =>
            [{t, on: true, pitch: p, vel: 90}, {t: t + 500, on: false, pitch: p, vel: 0}]);
        const r = await fetch('/api/upload?name=rec.mid', {method: 'POST', body: window.musegenStudio.smf(ev, 100)});
        return [r.status, await r.json()]; })()""")
    assert rec[0] == 201 and rec[1]["notes"] == 4 and abs(rec[1]["duration_s"] - 2.3) < 0.01, rec

    # pick a preset by searching, the procedural engine, 2 bars, seed 4, two variations, no sketch
    page.js("""(() => {
        const q = document.querySelector('#preset-search'); q.value = 'lofi'; q.dispatchEvent(new Event('input'));
        const e = document.querySelector('#engine'); e.value = 'procedural'; e.dispatchEvent(new Event('change'));
        document.querySelector('#length').value = '2'; document.querySelector('#seed').value = '4';
        document.querySelector('#variations').value = '2'; document.querySelector('#sketch').value = '';
        document.querySelector('#stems').checked = true;
    })()""")
    assert page.js("document.querySelector('#preset').value") == "lofi-chill"
    assert page.js("document.querySelector('#options [data-option=swing_unit]') !== null")
    page.js("document.querySelector('#go').click()")
    page.wait("document.querySelector('.job .take audio') !== null")
    page.wait("document.querySelector('.take audio').readyState >= 1")
    duration = page.js("document.querySelector('.take audio').duration")
    assert duration > 5, "a 2-bar lo-fi take at 70-84 BPM lasts about 6-8 s"
    page.js("(() => { const a = document.querySelector('.take audio'); a.currentTime = 1.5; return a.play(); })()")
    page.wait("document.querySelector('.take audio').currentTime > 2")
    page.js("document.querySelector('.take audio').pause()")
    page.wait("document.querySelector('img.spec').complete && document.querySelector('img.spec').naturalWidth > 0")
    # the piano roll drew notes: count lit pixels that are neither background nor playhead
    lit = page.js("""(() => {
        const c = document.querySelector('canvas.roll'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] > 60 || d[i + 1] > 60 || d[i + 2] > 60) && !(d[i] === 255 && d[i + 1] === 74)) n++;
        return n; })()""")
    assert lit > 500, f"the piano roll drew {lit} lit pixels"
    assert page.js("document.querySelector('.take').querySelectorAll('.dl-stems a.dl-stem').length") >= 3, "stems to download"
    stats = page.js("document.querySelector('.take .stats').textContent")
    assert "LUFS" in stats and "BPM" in stats and "seed 4" in stats
    # A/B: two takes of the job, one heard at a time
    assert page.js("document.querySelectorAll('.job .take').length") == 2
    page.js("document.querySelectorAll('.pick-a')[0].click(); document.querySelectorAll('.pick-b')[1].click()")
    assert page.js("!document.querySelector('#ab').hidden")
    assert page.js("[document.querySelector('#ab-a').muted, document.querySelector('#ab-b').muted]") == [False, True]
    page.js("document.querySelector('#ab-toggle').click()")
    assert page.js("[document.querySelector('#ab-a').muted, document.querySelector('#ab-b').muted]") == [True, False]
    assert page.js("document.querySelector('#ab-toggle').textContent") == "Hearing B"
    page.screenshot(shots / "studio-take-1400.png", 1400, 1100)
    page.screenshot(shots / "studio-take-phone.png", 390, 844, mobile=True)

    # re-run fills the form from the take: same seed, same preset
    page.js("document.querySelector('.rerun').click()")
    assert page.js("document.querySelector('#seed').value") == "4"
    assert page.js("document.querySelector('#form-note').textContent").startswith("Filled from lofi-chill-s4-v1 of job")
    # a long job shows its progress and is cancelled with its button
    page.js("document.querySelector('#length').value = '300'; document.querySelector('#go').click()")
    page.wait("document.querySelector('.job .status').textContent === 'running'")
    page.screenshot(shots / "studio-running-1400.png", 1400, 900)
    page.js("document.querySelector('.job .progress-row button').click()")
    page.wait("document.querySelector('.job .status').textContent === 'cancelled'")
    # a reload finds the takes again, and the cancelled job
    page.call("Page.reload")
    page.wait("document.body && document.body.dataset.ready === '1'", limit=60)
    assert page.js("document.querySelectorAll('.job .take').length") == 2
    assert page.js("[...document.querySelectorAll('.job .status')].map(e => e.textContent)") == ["cancelled", "done"]
    drive_style_and_sweep(page, shots, broken)


def drive_style_and_sweep(page: Page, shots: Path, broken: Path) -> None:
    """Drop files for a style (too few: answered on the page), then build and run a 2x2 sweep and open its report."""
    doc = page.call("DOM.getDocument")["root"]["nodeId"]
    style_input = page.call("DOM.querySelector", nodeId=doc, selector="#style-files")["nodeId"]
    page.call("DOM.setFileInputFiles", nodeId=style_input,
              files=[str(SAMPLES / "chord-loop.mid"), str(SAMPLES / "piano-piece.mid"), str(broken)])
    page.wait("document.querySelectorAll('#style-list li').length === 3")
    assert page.js("document.querySelector('#style-list li.error').textContent").startswith("broken.mid: ")
    assert page.js("document.querySelector('#style-go').textContent") == "Learn from 2 files"
    page.js("document.querySelector('#style-name').value = 'my-band'; document.querySelector('#style-go').click()")
    page.wait("document.querySelector('#style-error').textContent !== ''")
    assert "learning a style needs 3 to 64 different MIDI files, got 2" in page.js(
        "document.querySelector('#style-error').textContent")
    # a third file, and a short fine-tune: progress on its card, then the style is in the preset list
    page.call("DOM.setFileInputFiles", nodeId=style_input, files=[str(SAMPLES / "melody-and-chords.mid")])
    page.wait("document.querySelectorAll('#style-list li').length === 4")
    page.js("""(() => { document.querySelector('#style-steps').value = '2'; document.querySelector('#style-base').value = 'pop-ballad';
        document.querySelector('#style-go').click(); })()""")
    page.wait("document.querySelector('.job[data-kind=style]') !== null")
    assert page.js("document.querySelectorAll('#style-list li').length") == 0, "the panel is cleared for the next style"
    page.wait("""(() => { const j = document.querySelector('.job[data-kind=style]'), bar = j.querySelector('progress');
        return j.querySelector('.outcome') !== null || (bar !== null && bar.value > 0); })()""")
    page.screenshot(shots / "studio-style-running-1400.png", 1400, 900)
    page.wait("document.querySelector('.job[data-kind=style] .status').textContent === 'done'")
    assert page.js("document.querySelector('.job[data-kind=style] .outcome').textContent").startswith(
        "Learned my-band from 3 files (base preset pop-ballad")
    page.js("document.querySelector('.job[data-kind=style] .use-style').click()")
    assert page.js("document.querySelector('#preset').value") == "my-band", "the new style is in the list at once"
    assert "(learned)" in page.js("document.querySelector('#preset option:checked').textContent")

    # a sweep of the preset, engine and length chosen above: seeds 1..2 x tempo 72, 90
    page.js("""(() => {
        const set = (sel, v, ev) => { const e = document.querySelector(sel); e.value = v; e.dispatchEvent(new Event(ev)); };
        set('#preset-search', 'lofi', 'input'); set('#engine', 'procedural', 'change');
        set('#length-unit', 'bars', 'change'); set('#length', '1', 'input');
        set('#axis1', 'seed', 'change'); set('#axis1-values', '1..40', 'input');
        set('#axis2', 'tempo', 'change'); set('#axis2-values', '72, 90', 'input');
    })()""")
    assert page.js("document.querySelector('#sweep-count').textContent").endswith("(at most 64)")
    assert page.js("document.querySelector('#sweep-go').disabled"), "80 jobs cannot be started"
    page.js("(() => { const v = document.querySelector('#axis1-values'); v.value = '1..2'; v.dispatchEvent(new Event('input')); })()")
    assert page.js("document.querySelector('#sweep-count').textContent") == "4 jobs: lofi-chill · procedural · 1 bar"
    page.js("document.querySelector('#sweep-go').click()")
    page.wait("document.querySelector('.job[data-kind=sweep] a.report') !== null")
    assert page.js("document.querySelectorAll('.job[data-kind=sweep] .sweep-rows span.ok').length") == 4
    assert page.js("document.querySelector('.job[data-kind=sweep] .outcome').textContent").startswith("4 of 4 jobs ok")
    page.js("document.querySelector('.job[data-kind=sweep]').scrollIntoView()")
    page.screenshot(shots / "studio-sweep-1400.png", 1400, 1000)
    page.screenshot(shots / "studio-sweep-phone.png", 390, 844, mobile=True)
    # the link opens the batch report, served from the studio folder, whose players play
    report = page.js("document.querySelector('.job[data-kind=sweep] a.report').href")
    assert re.search(r"/files/sweeps/[0-9a-f]{12}/report\.html$", report), report
    page.call("Page.navigate", url=report)
    page.wait("document.readyState === 'complete' && document.querySelectorAll('audio').length === 4")
    page.js("(() => { const a = document.querySelector('audio'); a.preload = 'metadata'; a.load(); })()")
    page.wait("document.querySelector('audio').duration > 0")
    # the first card's pictures (the others load lazily, when scrolled to)
    page.wait("document.images.length >= 8 && [0, 1].every(i => document.images[i].complete && document.images[i].naturalWidth > 0)", limit=60)
    page.screenshot(shots / "studio-sweep-report-1400.png", 1400, 1000)


def test_the_command_refuses_a_busy_port_a_busy_folder_and_warns_off_loopback(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([*_musegen(), "studio", "--no-browser", "--port", str(port), "--folder", str(tmp_path)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"Error: cannot serve on 127.0.0.1:{port}: Address already in use"], r.stderr
    proc, _ = start_studio(tmp_path)
    try:
        r = subprocess.run([*_musegen(), "studio", "--no-browser", "--port", "0", "--folder", str(tmp_path)],
                           capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode == 1
        assert re.fullmatch(rf"Error: studio folder {re.escape(str(tmp_path))} is in use by another musegen "
                            r"studio \(pid \d+ on .+\); stop it or choose another --folder\n", r.stderr), r.stderr
    finally:
        assert stop_studio(proc)[0] == 0
    other = subprocess.Popen([*_musegen(), "studio", "--no-browser", "--host", "0.0.0.0", "--port", "0",
                              "--folder", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, **INTERRUPTIBLE)
    assert other.stdout.readline().startswith("http://0.0.0.0:")
    code, err = stop_studio(other)
    other.stdout.close()
    assert code == 0 and err.startswith("Warning: serving on 0.0.0.0: anyone who can reach this machine")


def test_an_upload_name_cannot_place_the_file(studio):
    r = studio.post("/api/upload?name=..%2F..%2F..%2Fevil.mid", content=(SAMPLES / "melody.mid").read_bytes())
    assert r.status_code == 201 and r.json()["name"] == "evil.mid"
    assert not (Path(studio.folder).parent / "evil.mid").exists()
    assert sorted(p.suffix for p in (Path(studio.folder) / "sketches").glob(r.json()["id"] + ".*")) == [".json", ".mid"]


def test_the_default_studio_folder_follows_xdg_data_home(tmp_path, monkeypatch):
    from musegen.studio.jobs import default_folder

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_folder() == tmp_path / "musegen" / "studio"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_folder() == tmp_path / "home" / ".local" / "share" / "musegen" / "studio"
