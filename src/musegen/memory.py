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

__all__ = ["address_space_left", "check_fits", "is_allocation_failure", "prepare_for_address_limit"]

_MIB = 1 << 20
#: address space numpy and OpenBLAS's work buffer take when loaded (measured: about 116 MB)
BLAS_WARMUP_BYTES = 124 * _MIB
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


#: address space scipy's compiled modules take on top of numpy (measured for scipy.signal: 158 MB,
#: of which 32 MB is its OpenBLAS's work buffer)
SCIPY_BYTES = 176 * _MIB


class _ScipyBudget:
    """An import hook: scipy's first compiled module is refused when it cannot fit.

    scipy's OpenBLAS maps its work buffer while it loads, and retries a failed
    ``mmap`` forever: under ``ulimit -v`` the import hung.  Checked once, at the
    first ``scipy.*`` module; after that, scipy is loaded or was refused.
    """

    def find_spec(self, name, path=None, target=None):
        if name.startswith("scipy."):
            import sys

            sys.meta_path.remove(self)
            check_fits(SCIPY_BYTES, what="loading scipy")
        return None


def prepare_for_address_limit() -> None:
    """Under an address-space limit, let OpenBLAS start one thread (unless the user chose otherwise)
    and take its work buffer at once.

    Each OpenBLAS thread maps a 32 MB buffer when the library loads, and when
    that ``mmap`` fails OpenBLAS retries it forever: under ``ulimit -v 400M``
    importing scipy hung.  One thread needs no such buffers at load, and
    musegen's BLAS work is small.  Must run before numpy is imported.
    """
    if _address_space_limit() is None:
        return
    if not any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    # numpy's OpenBLAS maps its work buffer at the first large product, and when that fails it
    # prints its own line and exits the process.  Taken now, while the process is small, the
    # buffer is kept and reused; where even that would not fit, nothing changes.
    left = address_space_left()
    if left is not None and left >= BLAS_WARMUP_BYTES:
        try:
            import numpy as np

            a = np.ones((256, 256))  # past OpenBLAS's small-matrix path, which needs no buffer
            a @ a
        except (ImportError, MemoryError):
            pass  # the command that needs numpy says "out of memory" when it runs
    import sys

    if "scipy" not in sys.modules:
        sys.meta_path.insert(0, _ScipyBudget())
