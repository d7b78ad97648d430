"""vqcodec._native: the one loader of the compiled extensions, and VQCODEC_PURE_PYTHON."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vqcodec import _native


def test_the_extensions_are_built():
    """optional = true in pyproject.toml lets vqcodec install without a compiler;
    CI must still notice a build that silently failed (VQCODEC_PURE_PYTHON=1 runs
    the suite on the Python references on purpose)."""
    if _native.pure_python():
        pytest.skip("VQCODEC_PURE_PYTHON=1: testing the Python fallbacks")
    assert _native.status() == {name: "compiled" for name in _native.EXTENSIONS}, \
        "an extension did not build: is a C compiler installed?"


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != _native.PURE_PYTHON_VARIABLE}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          check=True)


def test_pure_python_switches_every_extension_off():
    code = ("from vqcodec import _native, metrics\nfrom vqcodec.quantize import histogram, kmeans, nearest, rdo\n"
            "from vqcodec.coders import ctx as ctxcoder\n"
            "print(_native.status())\n"
            "print([m._native for m in (metrics, histogram, kmeans, nearest, rdo, ctxcoder)])\n")
    out = run(code, VQCODEC_PURE_PYTHON="1").stdout.splitlines()
    assert out[0] == str({name: "disabled" for name in _native.EXTENSIONS})
    assert out[1] == str([None] * 6)


def test_the_warning_is_said_once_and_only_for_missing_extensions(monkeypatch, capsys):
    monkeypatch.setattr(_native, "_warned", False)
    monkeypatch.setattr(_native, "_loaded", {**{n: object() for n in _native.EXTENSIONS}, "_rdo": None})
    monkeypatch.delenv(_native.PURE_PYTHON_VARIABLE, raising=False)
    _native.warn_if_missing()
    _native.warn_if_missing()
    err = capsys.readouterr().err
    assert err.count("vqcodec: warning:") == 1 and "_rdo are not built" in err
    assert err.count("\n") == 1


def test_no_warning_when_pure_python_is_asked_for(monkeypatch, capsys):
    monkeypatch.setattr(_native, "_warned", False)
    monkeypatch.setenv(_native.PURE_PYTHON_VARIABLE, "1")
    _native.warn_if_missing()
    assert capsys.readouterr().err == ""


def test_unknown_extension_is_refused():
    with pytest.raises(ValueError, match="unknown extension '_nope'"):
        _native.load("_nope")
