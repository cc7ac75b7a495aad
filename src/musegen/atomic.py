"""Write files so that they either appear complete or not at all.

Every writer in musegen (audio, MIDI, JSON sidecars, plots, batch manifests)
goes through :func:`atomic_path`: the data goes to a hidden
``.<name>.<random>.part`` file in the same folder, is fsync'ed and renamed
over the destination; on any failure the temporary file is removed and an
:class:`~musegen.errors.OutputError` names the path and the reason.

A process killed mid-write (``kill -9``, power loss) cannot remove its
temporary file, so each one is held under an advisory lock while it is
written: the next write of the same destination removes the temporaries
nobody holds any more.  Renaming replaces a symbolic link at the
destination rather than writing through it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from musegen.errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: stale temporaries are left alone
    fcntl = None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_live(fd: int) -> None:
    """Mark a temporary file as being written (released when the writer exits, however it exits)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def remove_stale_parts(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries of ``path`` left by writers that died; returns what was removed.

    A temporary still locked by a live writer is kept.  Does nothing where
    advisory locks are not available.
    """
    path = Path(path)
    if fcntl is None:
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.part")
    removed = []
    try:
        names = [e.name for e in os.scandir(path.parent) if e.name.endswith(".part")]
    except OSError:
        return []
    for name in names:
        if not pattern.fullmatch(name):
            continue
        stale = path.parent / name
        try:
            fd = os.open(stale, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue  # gone already, or a symbolic link: not ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(stale)
            removed.append(stale)
        except OSError:
            pass  # a live writer holds it
        finally:
            os.close(fd)
    return removed


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); harmless where folders cannot be opened."""
    with contextlib.suppress(OSError):
        _fsync_file(folder)


def _keep_mode(tmp: Path, mode: int) -> None:
    """Give the finished file the umask's mode again.

    Some writers (safetensors) replace the file they are handed with one of
    mode 600, which other users of a shared install then cannot read.
    """
    st = os.stat(tmp, follow_symlinks=False)
    if not os.path.islink(tmp) and st.st_mode & 0o7777 != mode:
        os.chmod(tmp, mode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, create_parent: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` once the block succeeds.

    Writers that take a file name (soundfile, matplotlib, ``open``) write to
    the yielded path by name, so a failing library never writes through a
    half-closed handle.  ``KeyboardInterrupt`` and the like also clean up but
    propagate unchanged.
    """
    path = Path(path)
    folder = path.parent
    if create_parent:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write {str(path)!r}: {_reason(exc)}") from None
    if not folder.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: it is a directory")
    remove_stale_parts(path)
    tmp = None
    live = None
    try:
        for _ in range(100):
            candidate = folder / f".{path.name}.{secrets.token_hex(4)}.part"
            try:
                # O_EXCL refuses to reuse a name or follow a link and, unlike mkstemp, honours the umask
                live = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                               0o666)
                tmp = candidate
                break
            except FileExistsError:
                continue
        else:
            raise OutputError(f"cannot write {str(path)!r}: no free temporary name")
        _lock_live(live)
        mode = os.fstat(live).st_mode & 0o7777  # what the umask allows an ordinary file
        yield tmp
        _keep_mode(tmp, mode)
        _fsync_file(tmp)
        os.replace(tmp, path)
        tmp = None
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"cannot write {str(path)!r}: {_reason(exc)}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if live is not None:
            os.close(live)
    _sync_folder(folder)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, create_parent: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file handle that replaces ``path`` only once fully written."""
    with atomic_path(path, create_parent=create_parent) as tmp:
        with open(tmp, "wb") as handle:
            yield handle


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, create_parent: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; missing parent folders are created by default."""
    with atomic_output(path, create_parent=create_parent) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, create_parent: bool = False) -> Path:
    """Write UTF-8 text to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), create_parent=create_parent)
