"""Write a file so that it either appears complete or not at all."""

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


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only once fully written.

    The data goes to ``.<name>.<random>.part`` in the same directory, is
    flushed and fsync'ed, then renamed over ``path`` (atomic on POSIX and
    Windows).  On any failure the temporary file is removed and an
    :class:`~musegen.errors.OutputError` naming ``path`` and the reason is
    raised; ``KeyboardInterrupt`` and the like also clean up but propagate
    unchanged.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: it is a directory")
    tmp = None
    try:
        for _ in range(100):
            tmp = folder / f".{path.name}.{secrets.token_hex(4)}.part"
            try:
                # 'x' refuses to reuse a name and, unlike mkstemp, honours
                # the umask, so the final file gets the usual permissions.
                handle = open(tmp, "x+b")
                break
            except FileExistsError:
                tmp = None
        else:
            raise OutputError(f"cannot write {str(path)!r}: no free temporary name")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
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


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
