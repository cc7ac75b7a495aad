"""The compiled decoding step of ``kernels=native`` (``step.cpp``), built on first use.

At batch 1 a MusicGen step on a CPU is bound by reading the decoder's weights
from memory; what runs between the products (layer norms, attention, GELU,
some 700 small torch calls dispatched from Python) adds a fifth to the step.
``step.cpp`` runs a whole step in one call.  It is compiled here, on the
user's machine, for the user's CPU (``-march=native``) with torch's extension
builder: that needs a C++ compiler and ninja (the ``musicgen`` extra installs
ninja's PyPI package, used when no ``ninja`` is on the PATH), takes about half
a minute the first time and is cached on disk (under ``TORCH_EXTENSIONS_DIR``,
by default ``~/.cache/torch_extensions``, in a folder per Python, torch, kind
of CPU and digest of the source and build flags, so installs sharing a cache
never rebuild each other's step).  Every build says so in a log line.  ``kernels=auto``, the engine's default, uses it on x86 CPUs in
float32 and falls back to ``fused`` where it cannot be built.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from musegen.errors import EngineError

log = logging.getLogger(__name__)
_NAME = "musegen_native_step"
_CFLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno")
_LDFLAGS = ("-fopenmp",)
_SOURCE = Path(__file__).with_name("step.cpp")
_lock = threading.Lock()
_module = None
_reason: str | None = None  # why the build failed, once it has
#: a build lock older than this is a leftover of a killed build (a build takes about 30 s)
STALE_LOCK_S = 600.0


def loaded() -> bool:
    """Whether this process has the compiled module already."""
    return _module is not None


def load():
    """The compiled module (built once per process; the build is cached on disk).

    Raises
    ------
    EngineError
        When it cannot be built here, with the reason and what to install
        (remembered: a failed build is not retried in the same process).
    """
    global _module, _reason
    with _lock:
        if _module is not None:
            return _module
        if _reason is not None:
            raise EngineError(_failure_message())
        try:
            _module = _build()
        except (OSError, RuntimeError, ImportError, ValueError, subprocess.SubprocessError) as exc:
            _reason = _short(exc)
            raise EngineError(_failure_message()) from exc
        return _module


def _failure_message() -> str:
    return (f"kernels=native could not build its compiled step ({_reason}); it needs a C++ compiler "
            "(g++ or clang++) and ninja (pip install ninja); use kernels=fused instead")


def _build():
    from torch.utils.cpp_extension import get_cxx_compiler
    from torch.utils.cpp_extension import load as build

    where = _build_directory()
    if not (where / f"{_NAME}.so").is_file():  # said before anything can fail, and every time
        log.info("musicgen: building the compiled decoding step (kernels=native) in %s, "
                 "once per source and build flags, about 30 s", where)
    compiler = get_cxx_compiler()
    if not shutil.which(compiler.split()[0] if compiler.strip() else "c++"):
        raise OSError(f"no C++ compiler: {compiler!r} is not on the PATH")
    _ninja_on_path()
    where.mkdir(parents=True, exist_ok=True)
    _clear_stale_lock(where / "lock")
    source = _source_copy(where)
    torch_log = logging.getLogger("torch.utils.cpp_extension")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)  # its compiler warnings are banners many lines long
    try:
        return build(name=_NAME, sources=[str(source)], build_directory=str(where),
                     extra_cflags=list(_CFLAGS), extra_ldflags=list(_LDFLAGS), verbose=False)
    finally:
        torch_log.setLevel(level)


def cached() -> bool:
    """Whether a build of the current ``step.cpp`` is on disk (loading it then takes about a second)."""
    try:
        return (_build_directory() / f"{_NAME}.so").is_file()
    except (OSError, ImportError):
        return False


def _source_copy(where: Path) -> Path:
    """``step.cpp`` copied into its build folder, which its digest names.

    ninja rebuilds when a source's path changes, and every install has its
    own path; built from one path per digest, installs with the same source
    share one build.  Written once (a new mtime would rebuild too), atomically.
    """
    copy = where / _SOURCE.name
    if not copy.is_file():
        partial = where / f".{_SOURCE.name}.{os.getpid()}.tmp"
        partial.write_bytes(_SOURCE.read_bytes())
        os.replace(partial, copy)
    return copy


def _short(exc: BaseException) -> str:
    """The gist of a build failure: the compiler's first error line where there is one."""
    text = str(exc)
    errors = [line.strip() for line in text.splitlines() if "error" in line.lower() and ": " in line]
    gist = errors[1] if len(errors) > 1 and errors[0].startswith("Error building extension") else \
        (errors[0] if errors else text)
    return " ".join(gist.split())[:300] or type(exc).__name__


def failure_reason() -> str | None:
    """Why the build failed in this process (None if it did not, or was not tried)."""
    return _reason


def _build_directory() -> Path:
    """The build folder for this Python, torch, kind of CPU, source and build flags."""
    import torch
    from torch.utils.cpp_extension import get_default_build_root

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}-cpu{_cpu_tag()}".replace("+", "-")
    return root / "musegen" / f"{tag}-src{_build_digest()}"


def _build_digest() -> str:
    """A short digest of what goes into the build: the source, the flags, the compiler, the headers' paths.

    Anything here that differs between two installs sharing one cache (an
    edited ``step.cpp``, another venv's torch headers) would make ninja rebuild
    the other's step on every alternate run; each gets its own folder instead.
    """
    import hashlib
    import sysconfig

    from torch.utils.cpp_extension import get_cxx_compiler, include_paths

    digest = hashlib.sha256(_SOURCE.read_bytes())
    for part in (*_CFLAGS, "|", *_LDFLAGS, "|", get_cxx_compiler(), *include_paths(),
                 sysconfig.get_paths().get("include", "")):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:10]


def _clear_stale_lock(lock: Path) -> None:
    """Remove a build lock left by a killed build.

    torch's builder waits, without end, for the ``lock`` file of a build in
    progress; a build killed hard (SIGKILL, a power cut) leaves that file
    behind, and every later run would hang.  A lock older than
    :data:`STALE_LOCK_S` is such a leftover.
    """
    try:
        if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
            lock.unlink()
    except FileNotFoundError:
        pass


def _cpu_tag() -> str:
    """A short digest of this CPU's instruction sets.

    The step is built with ``-march=native``; a build made on one machine of a
    cluster sharing a home folder would stop another, older one with an illegal
    instruction, so each kind of CPU gets its own build.
    """
    import hashlib
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    text = " ".join(sorted(flags.split(":", 1)[-1].split())) or f"{platform.machine()} {platform.processor()}"
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _ninja_on_path() -> None:
    """Put the ``ninja`` PyPI package's binary on the PATH when no other ninja is there."""
    if shutil.which("ninja"):
        return
    try:
        import ninja
    except ImportError:
        return
    os.environ["PATH"] = str(ninja.BIN_DIR) + os.pathsep + os.environ.get("PATH", "")
