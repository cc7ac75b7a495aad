"""The compiled decoding step of ``kernels=native`` (``step.cpp``), built on first use.

At batch 1 a MusicGen step on a CPU is bound by reading the decoder's weights
from memory; what runs between the products (layer norms, attention, GELU,
some 700 small torch calls dispatched from Python) adds a fifth to the step.
``step.cpp`` runs a whole step in one call.  It is compiled here, on the
user's machine, for the user's CPU (``-march=native``) with torch's extension
builder: that needs a C++ compiler and ninja (the ``musicgen`` extra installs
ninja's PyPI package, used when no ``ninja`` is on the PATH), takes about half
a minute the first time and is cached by torch (``TORCH_EXTENSIONS_DIR``, by
default ``~/.cache/torch_extensions``).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from musegen.errors import EngineError

_SOURCE = Path(__file__).with_name("step.cpp")
_lock = threading.Lock()
_module = None
_failure: str | None = None


def loaded() -> bool:
    """Whether this process has the compiled module already."""
    return _module is not None


def load():
    """The compiled module (built once per process, cached on disk by torch).

    Raises
    ------
    EngineError
        When it cannot be built here, with the reason and what to install.
    """
    global _module, _failure
    with _lock:
        if _module is not None:
            return _module
        if _failure is not None:
            raise EngineError(_failure)
        try:
            from torch.utils.cpp_extension import load as build

            _ninja_on_path()

            _module = build(name="musegen_native_step", sources=[str(_SOURCE)],
                            extra_cflags=["-O3", "-march=native", "-fopenmp", "-fno-math-errno"], extra_ldflags=["-fopenmp"],
                            verbose=False)
        except (OSError, RuntimeError, ImportError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            _failure = (f"kernels=native could not build its compiled step ({reason}); it needs a C++ "
                        "compiler (g++ or clang++) and ninja (pip install ninja); use kernels=fused instead")
            raise EngineError(_failure) from exc
        return _module


def _ninja_on_path() -> None:
    """Put the ``ninja`` PyPI package's binary on the PATH when no other ninja is there."""
    if shutil.which("ninja"):
        return
    try:
        import ninja
    except ImportError:
        return
    os.environ["PATH"] = str(ninja.BIN_DIR) + os.pathsep + os.environ.get("PATH", "")
