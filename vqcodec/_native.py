"""The one loader of vqcodec's compiled extensions.

Five small C extensions run the per-pixel loops, each beside the Python code
that is its reference and fallback: ``_quantize`` (the quantizer's kernels),
``_rdo`` (the rate-aware index choice), ``_ctxcoder`` (index coder 2),
``_candcoder`` (index coder 3) and ``_ssim`` (SSIM's filtering, the exact squared error).  A module asks for
its extension with :func:`load` and falls back to numpy/Python when it gets
None.  With the environment variable ``VQCODEC_PURE_PYTHON=1`` every
:func:`load` returns None, so the whole library runs on its Python
references (CI runs the suite once that way).

:func:`status` says which extensions are in use (``vqcodec --version``
shows it), and :func:`warn_if_missing` prints one warning per process on
stderr the first time slow work runs without them.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

__all__ = ["EXTENSIONS", "PURE_PYTHON_VARIABLE", "pure_python", "load", "status", "warn_if_missing"]

EXTENSIONS = ("_quantize", "_rdo", "_ctxcoder", "_candcoder", "_ssim")
PURE_PYTHON_VARIABLE = "VQCODEC_PURE_PYTHON"

_loaded: dict[str, ModuleType | None] = {}
_warned = False


def pure_python() -> bool:
    """True when ``VQCODEC_PURE_PYTHON=1`` asks for the Python references only."""
    return os.environ.get(PURE_PYTHON_VARIABLE) == "1"


def load(name: str) -> ModuleType | None:
    """The compiled extension ``vqcodec.<name>``, or None (not built, or pure Python asked for)."""
    if name not in EXTENSIONS:
        raise ValueError(f"unknown extension {name!r}; vqcodec has {', '.join(EXTENSIONS)}")
    if name not in _loaded:
        module = None
        if not pure_python():
            try:
                module = importlib.import_module(f"vqcodec.{name}")
            except ImportError:
                module = None
        _loaded[name] = module
    return _loaded[name]


def status() -> dict[str, str]:
    """Extension name -> "compiled", "missing" (not built) or "disabled" (pure Python asked for)."""
    if pure_python():
        return {name: "disabled" for name in EXTENSIONS}
    return {name: "compiled" if load(name) is not None else "missing" for name in EXTENSIONS}


def warn_if_missing() -> None:
    """Once per process: say on stderr that the compiled loops are missing, if they are.

    Called by the operations that become much slower without them (an
    encode's quantizer and index coder, a coder-2 decode).  Nothing is said
    when ``VQCODEC_PURE_PYTHON=1`` chose the Python references on purpose.
    """
    global _warned
    if _warned or pure_python():
        return
    missing = [name for name, state in status().items() if state == "missing"]
    _warned = True
    if missing:
        print(f"vqcodec: warning: the compiled extensions {', '.join(missing)} are not built, so "
              "vqcodec runs on its Python fallbacks: files are larger (no index coder 2) and "
              "much slower to make and read; reinstall with a C compiler (gcc and the Python "
              "headers) to build them", file=sys.stderr)
