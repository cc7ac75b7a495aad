"""Ends a local Ray instance's processes when the runner that started them dies.

Ray's own services die with the runner (Ray starts them with
``PR_SET_PDEATHSIG``), but the agents the raylet starts do not: when the
raylet is killed they try to report its death to a GCS that is gone, for
60 s.  The runner starts this process before ``ray.init`` and tells it, on
its stdin, the processes below the runner once Ray is up (``PID START``
lines, ``START`` being the start time ``/proc`` gives, so that a reused pid
is never hit).  End-of-file comes when the runner exits however it exits
(``kill -9`` included); this process then kills those still running.

Run as ``python -m musegen.batch._reaper``; it imports nothing heavy, so it
starts in milliseconds.  Linux only (``/proc``).
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["descendants", "start_time"]


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if fields[0] != b"Z" else None


def descendants(pid: int) -> list[int]:
    """Pids of the processes below ``pid`` (children, theirs, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C to the group is the runner's to handle
    told: dict[int, int] = {}
    buf = b""
    try:
        while chunk := os.read(0, 4096):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                parts = line.split()
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    told[int(parts[0])] = int(parts[1])
    except OSError:
        pass
    me = os.getpid()
    for pid, started in told.items():
        if pid != me and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
