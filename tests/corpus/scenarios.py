"""Run one scenario of ``tests/corpus/scenario/``: files set up, one ``musegen`` command, checks.

A scenario is a JSON table (written by ``make_corpus.py``)::

    {"class": "data loss", "why": "...",
     "setup": [{"midi": "idea.mid"}, {"hardlink": ["idea.mid", "sub/same.mid"]}],
     "args": ["extend", "sub/same.mid", "--name", "idea", "-o", "."],
     "env": {"HOME": "/nonexistent"}, "unset": ["XDG_CACHE_HOME"],
     "expect": 2, "needle": "input",
     "unchanged": ["idea.mid"], "absent": ["idea-s1.wav"], "present": [],
     "lacks": {"run/report.html": ["\\" onmouseover=\\""]}, "stdout_has": [], "all_jobs_ok": "run"}

The command runs in a fresh folder (paths are relative to it).  ``setup``
steps: ``midi`` (a copy of ``samples/melody.mid``, or ``[name, sample]``),
``wav`` (one second of a stereo tone), ``text`` / ``json`` (``[path,
content]``), ``mkdir``, ``symlink`` / ``hardlink`` (``[target, link]``),
``model`` (a copy of the shipped model, ``config`` merged into its
``config.json`` ``model`` table, or set at the top when ``top`` is given),
``musegen`` (a command that must succeed), ``jsonl`` (``[path, row, {key:
value}]``: one row of a JSON-lines file edited) and ``drop_job`` (``[run,
row]``: the job folder of that manifest row removed).

Always checked, whatever the scenario says: exit code 0, 1 or 2 (never a
signal), no traceback, exactly one ``Error:`` line when it fails, no raw
terminal control in what it prints, and no ``.*.part`` left anywhere.
``strict=False`` (a mutated scenario) keeps only these and ``unchanged``:
the expected exit code and message belong to the case as written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"

#: what a terminal executes instead of showing
TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _musegen(args, *, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "musegen", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def _tone(path: Path) -> None:
    import numpy as np
    import soundfile as sf

    t = np.arange(22050) / 22050
    y = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], axis=1)
    sf.write(str(path), y.astype(np.float32), 22050, subtype="PCM_16")


def _model(path: Path, config: dict, top: bool) -> None:
    from musegen.engines.symbolic.checkpoint import shipped_checkpoint

    shutil.copytree(shipped_checkpoint(), path)
    data = json.loads((path / "config.json").read_text())
    (data if top else data["model"]).update(config)
    (path / "config.json").write_text(json.dumps(data))


def setup(steps: list[dict], folder: Path, env: dict, timeout: float) -> None:
    """Make what ``steps`` say in ``folder``; raises on a step that cannot be done (a broken case)."""
    for step in steps:
        (kind, value), = ((k, v) for k, v in step.items() if k not in ("config", "top"))
        if kind == "midi":
            name, sample = (value, "melody.mid") if isinstance(value, str) else value
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SAMPLES / sample, folder / name)
        elif kind == "wav":
            _tone(folder / value)
        elif kind in ("text", "json"):
            path = folder / value[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value[1] if kind == "text" else json.dumps(value[1]), encoding="utf-8")
        elif kind == "mkdir":
            (folder / value).mkdir(parents=True, exist_ok=True)
        elif kind in ("symlink", "hardlink"):
            link = folder / value[1]
            link.parent.mkdir(parents=True, exist_ok=True)
            if kind == "symlink":
                link.symlink_to(value[0])
            else:
                link.hardlink_to(folder / value[0])
        elif kind == "model":
            _model(folder / value, step.get("config", {}), bool(step.get("top")))
        elif kind == "musegen":
            r = _musegen(value, cwd=folder, env=env, timeout=timeout)
            if r.returncode != 0:
                raise RuntimeError(f"setup `musegen {' '.join(value)}` failed: {r.stderr[-300:]}")
        elif kind == "jsonl":
            path, row, changes = folder / value[0], value[1], value[2]
            rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
            rows[row].update(changes)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif kind == "drop_job":
            run, row = folder / value[0], value[1]
            rows = [json.loads(ln) for ln in (run / "manifest.jsonl").read_text().splitlines() if ln.strip()]
            shutil.rmtree(run / rows[row]["id"])
        else:
            raise ValueError(f"unknown setup step {kind!r}")


def run_scenario(spec: dict, folder: Path, *, strict: bool = True, timeout: float = 240) -> tuple[int, list[str]]:
    """Set up ``spec`` in the empty ``folder``, run its command, and return ``(exit code, problems)``."""
    env = {**os.environ, **{k: str(v) for k, v in spec.get("env", {}).items()}}
    for name in spec.get("unset", []):
        env.pop(name, None)
    env.setdefault("MUSEGEN_STYLE_DIR", str(folder / "styles"))  # never the user's own styles
    setup(spec.get("setup", []), folder, env, timeout)
    watched = {p: _sha(folder / p) for p in spec.get("unchanged", [])}
    try:
        r = _musegen(spec["args"], cwd=folder, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, [f"hung: no exit after {timeout} s"]
    problems = []
    said = r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if r.returncode not in (0, 1, 2):
        problems.append(f"exit code {r.returncode}: {r.stderr[-300:]!r}")
    if "Traceback" in r.stderr or "internal error" in r.stderr:
        problems.append(f"traceback or internal error: {r.stderr[-300:]!r}")
    if r.returncode != 0 and (len(lines) != 1 or not lines[0].startswith("Error: ")):
        problems.append(f"stderr is not one 'Error:' line: {r.stderr[-300:]!r}")
    raw = TERMINAL_CONTROLS.search(said)
    if raw:
        problems.append(f"printed a raw {raw.group()!r}: {said[-200:]!r}")
    for p, before in watched.items():
        if _sha(folder / p) != before:
            problems.append(f"{p} was changed or deleted (a file of the user's)")
    parts = [str(p.relative_to(folder)) for p in folder.rglob(".*.part")]
    if parts:
        problems.append(f"left temporary files {parts}")
    if strict:
        expect = spec.get("expect", "ok")
        if expect == "ok" and r.returncode != 0:
            problems.append(f"expected success, got exit {r.returncode}: {r.stderr[-300:]!r}")
        elif expect != "ok" and r.returncode != expect:
            problems.append(f"expected exit {expect}, got {r.returncode}: {r.stderr[-300:]!r}")
        needle = spec.get("needle")
        if needle and needle not in (lines[0] if r.returncode and lines else r.stdout):
            problems.append(f"{needle!r} is not in what it said: {(r.stderr if r.returncode else r.stdout)[-300:]!r}")
        for p in spec.get("absent", []):
            if os.path.lexists(folder / p):
                problems.append(f"{p} exists")
        for p in spec.get("present", []):
            if not (folder / p).exists():
                problems.append(f"{p} is missing")
        for p, words in spec.get("lacks", {}).items():
            text = (folder / p).read_text(encoding="utf-8", errors="replace") if (folder / p).is_file() else ""
            if not text:
                problems.append(f"{p} is missing or empty")
            problems += [f"{p} holds {w!r}" for w in words if w in text]
        problems += [f"stdout lacks {w!r}" for w in spec.get("stdout_has", []) if w not in r.stdout]
        if spec.get("all_jobs_ok"):
            run = folder / spec["all_jobs_ok"]
            rows = [json.loads(ln) for ln in (run / "manifest.jsonl").read_text().splitlines() if ln.strip()]
            for row in rows:
                wav = (row.get("outputs") or {}).get("wav") if isinstance(row.get("outputs"), dict) else None
                if row.get("status") != "ok" or not wav or not (run / wav).is_file():
                    problems.append(f"job {row.get('id')} is not finished with its WAV: {row.get('status')}")
    return r.returncode, problems
