"""What a process loads: an encode, decode or info process imports only what it uses.

Every command is a fresh Python process, and on a small machine the imports
are most of a one-image run (bench/startup_bench.py): numpy and Pillow are
needed, but the tokenizer and batch machinery, the target search, OpenSSL
(hashlib), Pillow's ImageOps and Pillow's thirty-odd other format plugins
are not.  These tests run a fresh interpreter and read its ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import vqcodec
from vqcodec import pixels

SAMPLE = str(Path(__file__).resolve().parent / "data" / "sample.png")

# loaded on first use only
NOT_AT_START = {"vqcodec.tokenizer", "vqcodec.batch", "vqcodec.target", "vqcodec.training",
                "hashlib", "concurrent.futures", "json", "PIL.ImageOps", "PIL.TiffImagePlugin"}


def _modules_after(code: str) -> set[str]:
    """sys.modules of a fresh interpreter after running *code*."""
    # (the modules are listed before json, which prints them, is imported)
    script = f"{code}\nimport sys\nmods = sorted(sys.modules)\nimport json\nprint(json.dumps(mods))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_loads_none_of_the_optional_parts() -> None:
    loaded = _modules_after("import vqcodec")
    assert "vqcodec.codec" in loaded and "numpy" in loaded
    assert not loaded & NOT_AT_START, sorted(loaded & NOT_AT_START)


def test_an_encode_process_loads_none_of_them(tmp_path: Path) -> None:
    out = tmp_path / "s.vqi"
    loaded = _modules_after(
        f"from vqcodec.cli import main\nassert main(['encode', {SAMPLE!r}, {str(out)!r}, '-k', '16']) == 0")
    assert out.stat().st_size > 0
    assert "vqcodec.quantize.kmeans" in loaded
    unused = NOT_AT_START - {"hashlib"}  # numpy.random's seeding imports it (secrets, hmac)
    assert not loaded & unused, sorted(loaded & unused)


def test_a_decode_to_png_loads_only_the_common_plugins(tmp_path: Path) -> None:
    src, out = tmp_path / "s.vqi", tmp_path / "s.png"
    src.write_bytes(vqcodec.encode(SAMPLE, k=16))
    loaded = _modules_after(
        f"from vqcodec.cli import main\nassert main(['decode', {str(src)!r}, {str(out)!r}]) == 0")
    assert out.stat().st_size > 0
    plugins = {m for m in loaded if m.startswith("PIL.") and m.endswith("ImagePlugin")}
    # Image.preinit's five; Image.init would have loaded some forty
    assert plugins <= {"PIL.BmpImagePlugin", "PIL.GifImagePlugin", "PIL.JpegImagePlugin",
                       "PIL.PpmImagePlugin", "PIL.PngImagePlugin"}, sorted(plugins)
    assert not loaded & NOT_AT_START, sorted(loaded & NOT_AT_START)


def test_the_lazy_names_are_the_modules_own() -> None:
    from vqcodec import target, tokenizer

    assert vqcodec.tokens is tokenizer.tokens
    assert vqcodec.detokenize is tokenizer.detokenize
    assert vqcodec.TargetResult is target.TargetResult
    assert {"tokens", "detokenize", "TargetResult"} <= set(dir(vqcodec))
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        vqcodec.no_such_name  # noqa: B018


def test_star_import_binds_every_public_name() -> None:
    namespace: dict = {}
    exec("from vqcodec import *", namespace)
    assert set(vqcodec.__all__) <= set(namespace)
    assert namespace["tokens"] is vqcodec.tokens


@pytest.mark.parametrize("ext, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".vqi", "VQI"),
                                      (".tif", "TIFF"), (".webp", "WEBP"), (".xyz", None)])
def test_extension_format(ext: str, fmt: str | None) -> None:
    assert pixels.extension_format(ext) == fmt


def test_extension_format_loads_the_other_plugins_only_when_needed() -> None:
    common = _modules_after("from vqcodec import pixels\nassert pixels.extension_format('.png') == 'PNG'")
    assert "PIL.TiffImagePlugin" not in common
    other = _modules_after("from vqcodec import pixels\nassert pixels.extension_format('.tiff') == 'TIFF'")
    assert "PIL.TiffImagePlugin" in other
