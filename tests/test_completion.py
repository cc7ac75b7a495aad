"""Shell completion through click's protocol, as bash runs it: preset, style and engine names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT


def complete(words: str, env: dict | None = None, shell: str = "bash") -> list[tuple[str, str]]:
    """``(type, value)`` pairs that ``musegen`` offers for the last word of ``words``."""
    parts = words.split(" ")
    proc = subprocess.run(
        [sys.executable, "-m", "musegen"], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, **(env or {}), "_MUSEGEN_COMPLETE": f"{shell}_complete",
             "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)})
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return [tuple(line.split(",", 1)) for line in proc.stdout.splitlines()]


@pytest.fixture
def places(tmp_path):
    """A user preset folder with ``my-lofi`` and a styles folder with the learned style ``my-band``."""
    presets, styles = tmp_path / "presets", tmp_path / "styles"
    presets.mkdir()
    (presets / "my-lofi.toml").write_text('name = "my-lofi"\nextends = "lofi-chill"\n', encoding="utf-8")
    (styles / "my-band").mkdir(parents=True)
    (styles / "my-band" / "preset.toml").write_text('name = "my-band"\nextends = "pop-ballad"\n', encoding="utf-8")
    return {"MUSEGEN_PRESET_PATH": str(presets), "MUSEGEN_STYLE_DIR": str(styles)}


@pytest.mark.parametrize("command", ["generate --preset", "extend samples/melody.mid -p", "post in.wav --preset",
                                     "presets show"])
def test_preset_names_complete_built_in_user_and_learned(places, command):
    assert complete(f"musegen {command} lo", places) == [("plain", "lofi-chill")]
    names = [v for _, v in complete(f"musegen {command} my", places)]
    assert names == ["my-band", "my-lofi"]  # a learned style, a user preset
    everything = [v for _, v in complete(f"musegen {command} ", places)]
    assert {"pop-ballad", "synthwave", "my-band", "my-lofi"} <= set(everything)


def test_a_preset_path_completes_as_a_file_and_engines_by_name():
    assert complete("musegen generate --preset ./mine") == [("file", "./mine")]
    assert complete("musegen generate --engine s") == [("plain", "symbolic")]
    assert [v for _, v in complete("musegen engines show ")] == ["musicgen", "procedural", "symbolic"]


def test_the_enable_lines_of_the_readme_print_a_script_for_each_shell():
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "#compdef musegen"), ("fish", "complete")):
        proc = subprocess.run([sys.executable, "-m", "musegen"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "_MUSEGEN_COMPLETE": f"{shell}_source"})
        assert proc.returncode == 0 and marker in proc.stdout, (shell, proc.stdout[:200], proc.stderr)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for shell in ("bash", "zsh", "fish"):
        assert f"_MUSEGEN_COMPLETE={shell}_source musegen" in readme


def test_help_names_the_optional_system_tools():
    proc = subprocess.run([sys.executable, "-m", "musegen", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "g++" in proc.stdout and "Chromium" in proc.stdout and "_MUSEGEN_COMPLETE=bash_source" in proc.stdout
