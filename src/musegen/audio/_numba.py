"""A numba cache folder musegen controls, set before librosa (and numba) load.

librosa compiles its kernels with numba and caches them.  numba looks for a
writable folder beside librosa's source, then under ``~/.cache``; in a
read-only install run by a user without a home (a service account) it finds
neither and every cached function fails with "cannot cache function".  So,
unless the user has set ``NUMBA_CACHE_DIR`` already, musegen points it at its
own cache: ``$MUSEGEN_CACHE_DIR/numba``, else ``$XDG_CACHE_HOME/musegen/numba``,
else ``~/.cache/musegen/numba``, else a folder under the temporary directory.
Where nothing is writable, caching is turned off (:func:`_no_cache`) and
librosa's functions are compiled on each run instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["configure_numba_cache", "numba_cache_candidates"]


def numba_cache_candidates(env: os._Environ[str] | dict[str, str] | None = None) -> list[Path]:
    """Folders to try for numba's cache, best first (pure: reads ``env`` only)."""
    from musegen.cache import candidates

    return candidates("numba", env)


def _writable(folder: Path) -> bool:
    from musegen.cache import writable

    return writable(folder)


def configure_numba_cache() -> str | None:
    """Set ``NUMBA_CACHE_DIR`` to a writable folder unless the user has set it.

    Call before the first ``import librosa`` (numba reads the variable when it
    loads).  Returns the folder in use, or ``None`` where none is writable;
    then :func:`_no_cache` keeps librosa's cached functions from failing.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    for folder in numba_cache_candidates():
        if _writable(folder):
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
            return str(folder)
    _no_cache()
    return None


def _no_cache() -> None:
    # Nothing writable anywhere: compile each run rather than fail.  numba has no
    # switch for this, so its decorators are told to ignore ``cache=True``.
    import numba

    if getattr(numba, "_musegen_no_cache", False):
        return
    for name in ("jit", "njit", "vectorize", "guvectorize", "stencil"):
        original = getattr(numba, name, None)
        if original is None:
            continue

        def without_cache(*args, _original=original, **kwargs):
            kwargs.pop("cache", None)
            return _original(*args, **kwargs)

        setattr(numba, name, without_cache)
    numba._musegen_no_cache = True
