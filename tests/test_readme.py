"""The README's examples run as written from a fresh clone (its python blocks and its musegen commands).

Commands are taken from the README's shell blocks, one per line (``a ; b`` is
two), without their comments and their optional ``[...]`` parts, and run in
README order in a temporary folder holding a copy of ``samples/``.  The quick
ones (presets, engines, generate/extend/render/post/analyze of a few bars, a
batch dry run) run in the default suite; training, learning a style and batch
runs are marked slow; MusicGen's need weights from the hub and are not run.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES

README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
#: commands that fetch or need MusicGen weights from the hub (the README says so): never run offline
NEEDS_HUB = ("--engine musicgen",)
#: what the slow part runs: minutes of training or a whole batch
SLOW = ("musegen train", "musegen style", "musegen batch", "--model my-model/")


def blocks(*langs: str) -> list[str]:
    """The bodies of the README's code blocks of these languages (``""``: none given), in order."""
    return [body for kind, body in BLOCK.findall(README.read_text(encoding="utf-8")) if kind in langs]


def commands() -> list[str]:
    """Every ``musegen ...`` command of the README's shell blocks, in order, as it is run."""
    out = []
    for body in blocks("", "bash"):  # in README order: later commands read what earlier ones wrote
        for line in body.splitlines():
            line = re.split(r"\s+#\s", line.strip(), maxsplit=1)[0]  # a trailing comment
            for part in re.split(r" ; | && ", line):
                part = part.strip()
                for prefix in ("python -m musegen ", ".venv/bin/musegen "):
                    if part.startswith(prefix):
                        part = "musegen " + part[len(prefix):]
                if not part.startswith("musegen "):
                    continue  # installs, pytest, scripts, transcripts ("$ musegen ...") of errors
                out.append(re.sub(r"\s*\[[^\]]*\]", "", part).strip())  # optional parts left out
    return out


def quick(cmd: str) -> bool:
    return not any(s in cmd for s in NEEDS_HUB + SLOW) or cmd.startswith("musegen batch") and "--dry-run" in cmd


@pytest.fixture
def clone(tmp_path) -> Path:
    """A folder like a fresh clone's: the samples, nothing written yet; styles go to a folder of its own."""
    shutil.copytree(SAMPLES, tmp_path / "samples")
    return tmp_path


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "MUSEGEN_STYLE_DIR": str(folder / "styles"), "OMP_NUM_THREADS": "1"}


def _run(cmds: list[str], folder: Path) -> None:
    for cmd in cmds:
        args = []
        for word in shlex.split(cmd)[1:]:  # a glob is the shell's: expanded here as a shell would
            found = sorted(glob.glob(word, root_dir=folder)) if "*" in word else []
            args += found or [word]
        proc = subprocess.run([sys.executable, "-m", "musegen", *args], cwd=folder, env=_env(folder),
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"README command failed: {cmd}\n{proc.stderr}"


def test_the_readme_has_the_examples_this_file_runs():
    cmds = commands()
    assert len([c for c in cmds if quick(c)]) >= 10 and len([c for c in cmds if not quick(c)]) >= 5
    assert any(c.startswith("musegen generate") for c in cmds) and any("musegen analyze" in c for c in cmds)
    assert blocks("python")
    assert not [c for c in cmds if re.search(r"\b(sketch|song|in|my-band/\*)\.(mid|wav)\b", c)], \
        "a README command names a file a fresh clone does not have"


def test_the_readme_quick_commands_run_from_a_fresh_clone(clone):
    cmds = [c for c in commands() if quick(c)]
    _run(cmds, clone)
    assert (clone / "out" / "master.wav").is_file()  # render -> post -> analyze ran in order


def test_the_readme_python_examples_run_from_a_fresh_clone(clone):
    for code in blocks("python"):
        proc = subprocess.run([sys.executable, "-c", code], cwd=clone, env=_env(clone), capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"README python block failed:\n{code}\n{proc.stderr}"
    assert (clone / "out" / "master.png").is_file()


def test_the_readme_toml_examples_are_a_valid_preset_and_plan(clone):
    from musegen.batch.plan import parse_plan
    from musegen.presets import preset_from_dict

    preset, plan = blocks("toml")[:2]
    assert preset_from_dict(tomllib.loads(preset), where="README").name == "lofi-chill"
    jobs = parse_plan(tomllib.loads(plan), where="README", base=clone).jobs
    assert len(jobs) == 1 + 12 + len(list(SAMPLES.glob("*.mid")))


@pytest.mark.slow
def test_the_readme_slow_commands_run_from_a_fresh_clone(clone):
    cmds = [c for c in commands() if not quick(c) and not any(s in c for s in NEEDS_HUB)]
    cmds = [c for c in cmds if "--executor ray" not in c or importlib.util.find_spec("ray") is not None]
    _run([c for c in commands() if quick(c)] + cmds, clone)
