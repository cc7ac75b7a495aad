"""Constrained machines: a read-only install without a home, low memory, an unreachable Ray cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli


def _tone_wav(path: Path, seconds: float = 3.0, sr: int = 22050) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440.0 * t) * (1 + np.sign(np.sin(2 * np.pi * 2 * t))) / 2
    sf.write(str(path), np.stack([y, y], axis=1).astype(np.float32), sr)
    return path


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "mount", "--bind", "-o", "ro", "/", "/"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def _venv_root() -> Path:
    return Path(sys.prefix)


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs root and mount namespaces (unshare -m)")
@pytest.mark.parametrize("args", [["post", "{wav}", "-o", "{out}", "--pitch-shift", "2"],
                                  ["analyze", "{wav}", "--plot", "{png}"],
                                  ["render", "{mid}", "-o", "{out}"]])
def test_read_only_install_without_home_still_works(tmp_path, args):
    # A service user: the install (venv and sources) read-only, HOME pointing nowhere
    # musegen could create a cache in (numba used to fail with "cannot cache function";
    # the repaired SoundFont then goes to the temporary folder).
    wav = _tone_wav(tmp_path / "in.wav")
    out = tmp_path / "out.wav"
    argv = [a.format(wav=wav, out=out, png=tmp_path / "a.png", mid=ROOT / "samples" / "melody.mid") for a in args]
    ro = [str(_venv_root()), str(ROOT / "src")]
    script = " && ".join(f"mount --bind -o ro '{p}' '{p}'" for p in ro)
    script += " && exec \"$@\""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "MUSEGEN_CACHE_DIR")}
    env["HOME"] = "/proc/nonexistent-home"  # nothing can be created under /proc
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "musegen", *argv],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "cannot cache" not in proc.stderr
    import soundfile as sf

    if args[0] == "analyze":
        assert (tmp_path / "a.png").stat().st_size > 10_000
        return
    y, _ = sf.read(str(out))
    assert np.abs(y).max() > 0.01  # audio, not silence


def test_cache_folders_follow_the_environment():
    from musegen.cache import candidates

    got = candidates("soundfonts", {"MUSEGEN_CACHE_DIR": "/a", "XDG_CACHE_HOME": "/x", "HOME": "/h"})
    assert got[:3] == [Path("/a/soundfonts"), Path("/x/musegen/soundfonts"), Path("/h/.cache/musegen/soundfonts")]
    assert candidates("soundfonts", {})[0].parent.name.startswith("musegen-")  # the temp fallback


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_unreachable_ray_address_fails_at_once_and_makes_no_run_folder(tmp_path, address):
    pytest.importorskip("ray")
    out = tmp_path / "run"
    proc = run_cli("batch", ROOT / "samples" / "plan.toml", "--executor", "ray", "--ray-address", address,
                   "-o", out, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and address in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_ray_address_of_no_known_shape_is_refused_by_name():
    pytest.importorskip("ray")
    from musegen.batch.ray_exec import probe_address
    from musegen.errors import MusegenError

    with pytest.raises(MusegenError, match="'nohost'"):
        probe_address("nohost")
