"""Memory the process may still take, and allocation failures told apart from bugs.

A machine with little memory, or an address-space limit (``ulimit -v``, a
batch scheduler's memory limit), makes allocations fail in many shapes: a
``MemoryError`` (numpy's ``_ArrayMemoryError`` is one), an ``ImportError``
"failed to map segment from shared object" when a library cannot be mapped,
an ``OSError`` ``ENOMEM``.  Some native code cannot fail cleanly at all:
symusic's synthesizer aborts the process on ``std::bad_alloc``, and
OpenBLAS retries a failed ``mmap`` forever.  So big native allocations are
checked before they are made (:func:`check_fits`), and every allocation
failure becomes one :class:`~musegen.errors.OutOfMemoryError`.
"""

from __future__ import annotations

import errno
import os

from musegen.errors import OutOfMemoryError

__all__ = ["address_space_left", "check_fits", "is_allocation_failure", "single_blas_thread_if_limited"]

_MIB = 1 << 20
#: what an allocation failure says when it is not a MemoryError
_SIGNS = ("cannot allocate memory", "can't allocate memory", "failed to map segment", "out of memory", "std::bad_alloc")


def _address_space_limit() -> int | None:
    """The soft ``RLIMIT_AS`` in bytes, or ``None`` when there is none (or no way to know)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def address_space_left() -> int | None:
    """Bytes of address space the process may still map under ``RLIMIT_AS``; ``None`` if unbounded.

    Mapped, not resident: the limit counts every mapping, so this is what an
    allocation is compared with.  Needs ``/proc/self/statm`` (Linux); elsewhere
    ``None``.
    """
    limit = _address_space_limit()
    if limit is None:
        return None
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, limit - pages * os.sysconf("SC_PAGE_SIZE"))


def check_fits(nbytes: float, *, what: str) -> None:
    """Refuse an allocation of ``nbytes`` that the address-space limit leaves no room for.

    Raises
    ------
    OutOfMemoryError
        Naming ``what`` (e.g. ``"synthesizing 214 s at 44100 Hz"``), what it
        needs and what is left, in MB.
    """
    left = address_space_left()
    if left is not None and nbytes > left:
        raise OutOfMemoryError(f"out of memory: {what} needs about {nbytes / _MIB:,.0f} MB, "
                               f"the address-space limit (ulimit -v) leaves {left / _MIB:,.0f} MB")


def is_allocation_failure(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a failed allocation rather than a bug or bad input."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, MemoryError):
            return True
        if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
            return True
        if isinstance(exc, (ImportError, OSError, RuntimeError)) and any(s in str(exc).lower() for s in _SIGNS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def single_blas_thread_if_limited() -> None:
    """Under an address-space limit, let OpenBLAS start one thread unless the user chose otherwise.

    Each OpenBLAS thread maps a 32 MB buffer when the library loads, and when
    that ``mmap`` fails OpenBLAS retries it forever: under ``ulimit -v 400M``
    importing scipy hung.  One thread needs no such buffers at load, and
    musegen's BLAS work is small.  Must run before numpy is imported.
    """
    if _address_space_limit() is None:
        return
    if not any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
