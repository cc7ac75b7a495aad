"""Write files so that they either appear complete or not at all.

Every writer in musegen (audio, MIDI, JSON sidecars, plots, batch manifests)
goes through :func:`atomic_path`: the data goes to a hidden
``.<name>.<random>.part`` file in the same folder, is fsync'ed and renamed
over the destination; on any failure the temporary file is removed and an
:class:`~musegen.errors.OutputError` names the path and the reason.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from musegen.errors import OutputError


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


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); harmless where folders cannot be opened."""
    with contextlib.suppress(OSError):
        _fsync_file(folder)


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
    tmp = None
    try:
        for _ in range(100):
            candidate = folder / f".{path.name}.{secrets.token_hex(4)}.part"
            try:
                # 'x' refuses to reuse a name and, unlike mkstemp, honours the umask
                with open(candidate, "x"):
                    pass
                tmp = candidate
                break
            except FileExistsError:
                continue
        else:
            raise OutputError(f"cannot write {str(path)!r}: no free temporary name")
        yield tmp
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
