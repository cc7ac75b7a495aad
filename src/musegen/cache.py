"""Where musegen keeps what it can rebuild: compiled kernels, repaired SoundFonts.

``$MUSEGEN_CACHE_DIR/<name>``, else ``$XDG_CACHE_HOME/musegen/<name>``, else
``~/.cache/musegen/<name>``, else a per-user folder under the temporary
directory: the first that can be written.  Nothing in it is precious; deleting
it costs only the time to rebuild.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def candidates(name: str, env: os._Environ[str] | dict[str, str] | None = None) -> list[Path]:
    """Folders to try for cache ``name``, best first (pure: reads ``env`` only)."""
    env = os.environ if env is None else env
    out: list[Path] = []
    if env.get("MUSEGEN_CACHE_DIR"):
        out.append(Path(env["MUSEGEN_CACHE_DIR"]) / name)
    if env.get("XDG_CACHE_HOME"):
        out.append(Path(env["XDG_CACHE_HOME"]) / "musegen" / name)
    home = env.get("HOME")
    if home:
        out.append(Path(home) / ".cache" / "musegen" / name)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    out.append(Path(tempfile.gettempdir()) / f"musegen-{uid}" / name)
    return out


def writable(folder: Path) -> bool:
    """Create ``folder`` if needed and check that a file can be made in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def folder(name: str) -> Path | None:
    """The first writable folder for cache ``name``, or None where none is."""
    return next((f for f in candidates(name) if writable(f)), None)
