"""Fault campaign (issue #7): interrupt real runs at random moments, then check nothing is lost.

    python scripts/fault_campaign.py [--seconds 60] [--seed 0] [--json]

Each trial starts a real ``musegen generate`` or ``musegen batch`` process
(short procedural jobs) and hits it with one fault at a random moment:
``kill -9``, Ctrl-C (SIGINT to its process group, as a terminal sends it),
or a full disk (a file-size limit, ``ulimit -f``, set before it starts).
Then it checks what a user would:

* every output present is complete: WAVs read back with the length their
  sidecar states, MIDI files parse, JSON parses; a batch job folder exists
  only complete and every ``ok`` row of the manifest points at such files;
* the manifest parses (only a run killed with ``kill -9`` may leave a torn
  last line) and no process of the run outlives it;
* Ctrl-C and a full disk end with one clean error line, never a traceback;
* running the same command again (``--resume`` for a batch) finishes with
  everything ok, no temporary ``.part`` file and no ``.staging`` folder left.

:func:`run` is the API (``scripts/robustness.py`` prints its "faults" row);
the check functions are shared with ``tests/test_faults.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRESET = "lofi-chill"
GENERATE = ("generate", "--preset", PRESET, "--engine", "procedural", "--bars", "2", "--seed", "1")
BATCH_PLAN = """title = "faults"
[defaults]
engine = "procedural"
bars = 2
[[sweep]]
grid.preset = ["lofi-chill", "synthwave"]
grid.seed = [1, 2]
"""
FAULTS = ("kill", "interrupt", "disk-full")


# -- processes ----------------------------------------------------------------------

def musegen(*args: Any) -> list[str]:
    return [sys.executable, "-m", "musegen", *map(str, args)]


def _file_limit(limit: int):
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return setup


def start(args: list[str], *, file_limit: int | None = None) -> subprocess.Popen:
    """Start ``args`` in its own session (so Ctrl-C can go to its whole process group)."""
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True,
                            preexec_fn=_file_limit(file_limit) if file_limit is not None else None)


TIMED_OUT = "[still running: killed by the campaign]"


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    """Wait for the end of ``proc`` and of everything holding its output open (its workers)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n{TIMED_OUT}"
    return proc.returncode, out, err


def hit(proc: subprocess.Popen, fault: str) -> None:
    """``kill -9`` the main process only (its workers must notice), or Ctrl-C its process group."""
    try:
        if fault == "kill":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        pass  # it finished first


def session_left(sid: int) -> list[int]:
    """Processes still running in session ``sid`` (Linux; ``[]`` elsewhere)."""
    left = []
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return left
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            left.append(int(entry.name))
    return left


def wait_session_gone(sid: int, timeout: float = 20) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = session_left(sid)
        if not left:
            return []
        time.sleep(0.05)
    return session_left(sid)


# -- what a user checks -------------------------------------------------------------

def wav_problems(path: Path, *, seconds: float | None = None) -> list[str]:
    import soundfile

    try:
        data, sr = soundfile.read(str(path), always_2d=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return [f"{path.name}: unreadable WAV ({exc})"]
    if len(data) == 0:
        return [f"{path.name}: no audio"]
    if seconds is not None and abs(len(data) - seconds * sr) > sr * 0.002 + 1:
        return [f"{path.name}: {len(data) / sr:.3f} s of audio, its sidecar says {seconds} s"]
    return []


def midi_problems(path: Path) -> list[str]:
    from symusic import Score

    try:
        score = Score(str(path))
    except Exception as exc:  # noqa: BLE001
        return [f"{path.name}: unreadable MIDI ({exc})"]
    if sum(len(t.notes) for t in score.tracks) == 0:
        return [f"{path.name}: MIDI without notes"]
    return []


def json_of(path: Path) -> tuple[dict | None, list[str]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, [f"{path.name}: unreadable JSON ({exc})"]
    if not isinstance(doc, dict):
        return None, [f"{path.name}: JSON is not an object"]
    return doc, []


def result_problems(sidecar: Path) -> list[str]:
    """A result (sidecar + the files it names) is whole: the WAV has the length the sidecar says."""
    doc, problems = json_of(sidecar)
    if doc is None:
        return problems
    files = doc.get("files") or {}
    analysis = doc.get("analysis") or {}
    folder = sidecar.parent
    wav = folder / str(files.get("wav") or analysis.get("path") or "")
    if not wav.is_file():
        return [f"{sidecar.name}: its WAV {wav.name!r} is missing"]
    problems += wav_problems(wav, seconds=analysis.get("duration_s"))
    if files.get("mid"):
        mid = folder / files["mid"]
        problems += midi_problems(mid) if mid.is_file() else [f"{sidecar.name}: its MIDI is missing"]
    return problems


def generate_problems(out: Path, *, complete: bool) -> list[str]:
    """Whatever ``musegen generate`` left in ``out`` is valid; with ``complete``, the result is there
    and no temporary file is."""
    problems: list[str] = []
    if not out.is_dir():
        return [f"{out} missing"] if complete else []
    for p in sorted(out.iterdir()):
        if p.name.endswith(".part"):
            if complete:
                problems.append(f"temporary file left: {p.name}")
        elif p.suffix == ".json":
            problems += result_problems(p)
        elif p.suffix == ".wav":
            problems += wav_problems(p)
        elif p.suffix == ".mid":
            problems += midi_problems(p)
        else:
            problems.append(f"unexpected file {p.name}")
    if complete:
        stem = f"{PRESET}-s1"
        for ext in (".wav", ".mid", ".json"):
            if not (out / (stem + ext)).is_file():
                problems.append(f"{stem}{ext} missing after a complete run")
    return problems


def manifest_rows(out: Path, *, torn_ok: bool) -> tuple[dict[str, dict], list[str]]:
    """Rows by id (the last row of an id wins), and problems: only a killed run may leave a torn
    last line."""
    path = out / "manifest.jsonl"
    if not path.exists():
        return {}, []
    lines = path.read_text(encoding="utf-8").split("\n")
    rows: dict[str, dict] = {}
    problems = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            last = i == len(lines) - 1  # no newline after it: an append cut short
            if not (torn_ok and last):
                problems.append(f"manifest line {i + 1} does not parse: {line[:60]!r}")
            continue
        rows[row["id"]] = row
    return rows, problems


def batch_problems(out: Path, job_ids: list[str], *, complete: bool, torn_ok: bool = False) -> list[str]:
    """A run folder after a (possibly interrupted) batch: job folders exist only complete, every
    ``ok`` row points at whole files; with ``complete``, every job is ok and nothing temporary is left."""
    problems: list[str] = []
    if not out.is_dir():
        return [f"{out} missing"] if complete else []
    rows, problems = manifest_rows(out, torn_ok=torn_ok)
    for job_id, row in rows.items():
        if row.get("status") != "ok":
            continue
        outputs = row.get("outputs") or {}
        for kind in ("wav", "json", "mid"):
            if not (out / str(outputs.get(kind))).is_file():
                problems.append(f"{job_id}: manifest says ok but its {kind} is missing")
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in job_ids:
            problems.append(f"unexpected folder {folder.name}")
            continue
        sidecars = list(folder.glob("*.json"))
        if len(sidecars) != 1:
            problems.append(f"{folder.name}: {len(sidecars)} sidecars in a job folder")
            continue
        problems += [f"{folder.name}/{p}" for p in result_problems(sidecars[0])]
        for png in folder.glob("*.png"):
            if not png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"):
                problems.append(f"{folder.name}/{png.name}: not a PNG")
    if complete:
        missing = [i for i in job_ids if rows.get(i, {}).get("status") != "ok"]
        if missing:
            problems.append(f"not ok after a complete run: {', '.join(missing)}")
        lines = [ln for ln in (out / "manifest.jsonl").read_text().splitlines() if ln.strip()] \
            if (out / "manifest.jsonl").exists() else []
        if len(lines) != len(job_ids):
            problems.append(f"manifest has {len(lines)} lines for {len(job_ids)} jobs")
        try:
            with open(out / "manifest.csv", newline="", encoding="utf-8") as fh:
                n_csv = len(list(csv.reader(fh))) - 1
            if n_csv != len(job_ids):
                problems.append(f"manifest.csv has {n_csv} rows for {len(job_ids)} jobs")
        except OSError as exc:
            problems.append(f"manifest.csv: {exc}")
        if not (out / "report.html").is_file():
            problems.append("report.html missing")
        parts = [str(p.relative_to(out)) for p in out.rglob("*.part")]
        if parts:
            problems.append(f"temporary files left: {', '.join(parts)}")
        if (out / ".staging").exists():
            problems.append(".staging left")
    return problems


def message_problems(fault: str, rc: int, err: str) -> list[str]:
    """How a faulted run ended: Ctrl-C and a full disk give clean messages, never a traceback."""
    if TIMED_OUT in err:
        return [f"{fault}: the run or one of its workers was still going after two minutes"]
    if "Traceback" in err:
        # Ctrl-C in the first milliseconds, while the interpreter itself starts (site, runpy),
        # ends in a traceback from CPython before any musegen code runs: not ours to catch
        ours = re.search(r'File "[^"]*[/\\]musegen[/\\]', err)
        startup = err.strip().endswith("KeyboardInterrupt") and not ours
        if not (fault == "interrupt" and startup):
            return [f"traceback after {fault}: {err.strip().splitlines()[-1]}"]
        return []
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if fault == "interrupt":
        if rc == 0:
            return []  # it finished before the signal
        # 130 after one "Error: interrupted" line (what the run printed before stays).  A process
        # also ends by SIGINT itself (-2): before Python's handler exists, once its shutdown has
        # begun, or when CPython re-raises a Ctrl-C that landed in a library's exec() of a string.
        if rc not in (130, -signal.SIGINT):
            return [f"Ctrl-C: exit code {rc}"]
        errors = [ln for ln in lines if ln.startswith("Error: ")]
        if rc == 130 and not (lines and lines[-1].startswith("Error: interrupted")):
            return [f"Ctrl-C: exit 130 without 'Error: interrupted' last ({lines[-2:]!r})"]
        if len(errors) > 1 or any(not e.startswith("Error: interrupted") for e in errors):
            return [f"Ctrl-C: expected one 'Error: interrupted' line, got {errors!r}"]
    if fault == "disk-full":
        if rc != 1:
            return [f"full disk: exit code {rc}"]
        # one error line (generate), or a batch's "failed: ..." lines and summary (and a warning
        # when even its report did not fit)
        if not any(ln.startswith("Error: ") or " jobs: " in ln for ln in lines[-2:]):
            return [f"full disk: no error message ({lines[-2:]!r})"]
    return []


# -- trials ---------------------------------------------------------------------------

def job_ids(plan: Path) -> list[str]:
    from musegen.batch.plan import load_plan

    return [job.id for job in load_plan(plan).jobs]


def trial(kind: str, fault: str, *, folder: Path, rng: random.Random, expected_s: float,
          ids: list[str] | None = None, plan: Path | None = None, images: bool = False) -> dict[str, Any]:
    """One faulted run then one clean run of the same command in ``folder``.

    Returns ``{"kind", "fault", "delay", "hit", "clean", "problems", "elapsed"}``: ``hit`` is
    False when the run finished before the fault, ``clean`` whether the faulted run ended cleanly.
    """
    out = folder / "out"
    if kind == "generate":
        args = musegen(*GENERATE, "-o", out)
    else:
        args = musegen("batch", plan, "-o", out, "--workers", "2", "--resume",
                       *(() if images else ("--no-images",)))
    delay = round(rng.uniform(0.0, expected_s * 1.1), 3)
    limit = rng.choice([400, 4_000, 200_000]) if fault == "disk-full" else None
    t0 = time.monotonic()
    proc = start(args, file_limit=limit)
    if fault != "disk-full":
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            hit(proc, fault)
    rc, _, err = finish(proc)
    run_s = time.monotonic() - t0
    was_hit = rc != 0
    problems = message_problems(fault, rc, err) if was_hit else []
    clean = not problems
    left = wait_session_gone(proc.pid)
    if left:
        problems.append(f"processes of the faulted run still running: {left}")
    check = (generate_problems(out, complete=False) if kind == "generate"
             else batch_problems(out, ids or [], complete=False, torn_ok=fault == "kill"))
    problems += [f"after {fault}: {p}" for p in check]
    # the same command again, without the fault, finishes the work
    rc2, _, err2 = finish(start(args))
    if rc2 != 0:
        tail = err2.strip().splitlines()[-1:] or [""]
        problems.append(f"rerun exit code {rc2}: {tail[0]}")
    check = (generate_problems(out, complete=True) if kind == "generate"
             else batch_problems(out, ids or [], complete=True))
    problems += [f"after the rerun: {p}" for p in check]
    return {"kind": kind, "fault": fault, "delay": delay, "limit": limit, "hit": was_hit, "clean": clean,
            "problems": problems, "run_s": round(run_s, 2), "elapsed": round(time.monotonic() - t0, 2)}


def run(seconds: float, seed: int, *, log=None) -> dict[str, Any]:
    """A time-boxed randomized campaign over generate and batch; ``log(trial)`` after each trial.

    Returns
    -------
    dict
        ``tried`` (trials run), ``clean_errors`` (faulted runs that ended cleanly: Ctrl-C and a
        full disk with one error line and no traceback, ``kill -9`` without orphans), ``correct``
        (trials where every check held, including the rerun finishing everything), ``failures``
        (the others), ``missed`` (runs that finished before their fault struck) and ``details``
        (one line per failure).
    """
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    counts = {"tried": 0, "clean_errors": 0, "correct": 0, "failures": 0, "missed": 0}
    details: list[str] = []
    # a first guess of each command's length, corrected by the runs that finished before their fault
    expected = {"generate": 1.5, "batch": 4.0}
    with tempfile.TemporaryDirectory(prefix="musegen-faults-") as tmp:
        base = Path(tmp)
        plan = base / "plan.toml"
        plan.write_text(BATCH_PLAN, encoding="utf-8")
        ids = job_ids(plan)
        n = 0
        while time.monotonic() + expected["batch"] * 1.5 < deadline or counts["tried"] == 0:
            n += 1
            kind = rng.choice(["generate", "batch"])
            fault = rng.choice(FAULTS)
            folder = base / f"t{n}"
            folder.mkdir()
            t = trial(kind, fault, folder=folder, rng=rng, expected_s=expected[kind], ids=ids, plan=plan,
                      images=rng.random() < 0.5)
            counts["tried"] += 1
            counts["clean_errors"] += t["clean"]
            counts["missed"] += not t["hit"]
            if t["problems"]:
                counts["failures"] += 1
                details.append(f"{kind} {fault} at {t['delay']} s: " + "; ".join(t["problems"]))
            else:
                counts["correct"] += 1
            if log is not None:
                log(t)
            if not t["hit"]:  # a whole run: the length faults should be spread over
                expected[kind] = 0.5 * expected[kind] + 0.5 * t["run_s"]
            shutil.rmtree(folder, ignore_errors=True)
    return {**counts, "details": details}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per trial on stderr")
    args = ap.parse_args(argv)
    t0 = time.monotonic()

    def log(t: dict[str, Any]) -> None:
        limit = f" (limit {t['limit']} B)" if t["limit"] else f" at {t['delay']} s"
        state = "ok" if not t["problems"] else "FAILED: " + "; ".join(t["problems"])
        print(f"{t['kind']:8s} {t['fault']:9s}{limit}: {'struck' if t['hit'] else 'missed'}, "
              f"{'clean' if t['clean'] else 'unclean'}, {state} ({t['elapsed']} s)", file=sys.stderr)

    result = run(args.seconds, args.seed, log=log if args.verbose else None)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"faults: {result['tried']} tried, {result['clean_errors']} clean errors, "
              f"{result['correct']} correct, {result['failures']} failures "
              f"({result['missed']} runs finished before their fault) in {time.monotonic() - t0:.0f} s")
        for line in result["details"]:
            print(f"  {line}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
