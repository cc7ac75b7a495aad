"""One batch run per run folder, enforced with an OS file lock.

The lock is an advisory lock on ``<out>/.lock`` held by the running process
(``flock`` on POSIX, ``msvcrt.locking`` on Windows); the operating system
releases it when the process ends however it ends, so a killed run never
leaves a stale lock behind.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from musegen.errors import MusegenError

LOCK_NAME = ".lock"


class RunLock:
    """Hold ``<folder>/.lock`` for the life of a ``with`` block.

    Raises
    ------
    MusegenError
        If another process holds it (the message names its pid and host).
    """

    def __init__(self, folder: str | os.PathLike[str]):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            # O_NOFOLLOW: a link planted at .lock must not get some other file truncated
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            reason = "it is a symbolic link" if os.path.islink(self.path) else (exc.strerror or str(exc))
            raise MusegenError(f"cannot lock {self.path}: {reason}") from None
        try:
            _lock(fd)
        except OSError:
            holder = _read(fd)
            os.close(fd)
            raise MusegenError(
                f"{self.path.parent} is in use by another batch run ({holder or 'unknown process'}); "
                "wait for it to finish or choose another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                 .encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None


def _read(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        return ""


try:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
