"""Inputs an engine cannot use: the run goes on, stderr says so once per input, the sidecar records it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture
def clip(tmp_path):
    t = np.arange(22050) / 22050
    path = tmp_path / "clip.wav"
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    return path


@pytest.mark.parametrize("engine", ["procedural", "symbolic"])
def test_audio_prompt_and_words_an_engine_cannot_use_are_said_and_recorded(cli, tmp_path, clip, engine):
    proc = cli("generate", "--engine", engine, "--bars", "2", "--seed", "1", "--no-post", "--json",
               "--audio-prompt", clip, "--prompt", "sunny", "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    for flag in ("--audio-prompt", "--prompt"):
        notice = f"musegen: note: engine '{engine}' does not use {flag}; ignored"
        assert lines.count(notice) == 1, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    with open(result["json"], encoding="utf-8") as f:
        info = json.load(f)["engine"]["info"]
    assert info["ignored_inputs"] == ["--prompt", "--audio-prompt"]
    assert "audio_prompt" not in info.get("ignored_options", [])


def test_nothing_is_said_when_nothing_is_ignored(cli, tmp_path):
    proc = cli("generate", "--engine", "procedural", "--bars", "2", "--seed", "1", "--no-post", "--json",
               "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "does not use" not in proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    with open(result["json"], encoding="utf-8") as f:
        assert "ignored_inputs" not in json.load(f)["engine"]["info"]
