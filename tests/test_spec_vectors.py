"""spec/vectors: committed .vqi bytes must decode to the committed pixels (hex -> pixels)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import vqcodec

SPEC = Path(__file__).resolve().parents[1] / "spec"
VECTORS = sorted((SPEC / "vectors").glob("*.vqi"))


def test_there_are_vectors():
    assert len(VECTORS) >= 2


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_decodes_to_its_pixels(path):
    meta = json.loads(path.with_suffix(".json").read_text())
    expected = np.array(meta["pixels"], dtype=np.uint8)
    px = vqcodec.decode_pixels(path.read_bytes())
    assert px.mode == meta["mode"]
    assert (px.width, px.height) == (meta["width"], meta["height"])
    np.testing.assert_array_equal(px.array, expected)


def appendix_dumps() -> dict[str, bytes]:
    """The hex dumps of FORMAT.md Appendix A, keyed by vector name."""
    text = (SPEC / "FORMAT.md").read_text()
    appendix = text[text.index("## Appendix A"):]
    dumps = {}
    for name, block in re.findall(r"### `([\w-]+)\.vqi`.*?```\n(.*?)```", appendix, re.S):
        hexes = []
        for line in block.splitlines():
            line = line.split("#", 1)[0]
            hexes.extend(re.findall(r"\b[0-9a-f]{2}\b", line))
        dumps[name] = bytes.fromhex("".join(hexes))
    return dumps


def test_appendix_hex_dumps_equal_the_files():
    dumps = appendix_dumps()
    assert len(dumps) >= 2, "FORMAT.md Appendix A must show at least two vectors"
    for name, data in dumps.items():
        assert (SPEC / "vectors" / f"{name}.vqi").read_bytes() == data, name
