"""Files written by every released format version decode to the same pixels.

tests/data/reference/ holds .vqi files frozen when their format version was
released (make_reference.py there never rewrites one), each beside a lossless
PNG of the pixels it decoded to then.  A later decoder must give exactly
those pixels, the recorded header fields and the ICC profile.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec

REF = Path(__file__).resolve().parent / "data" / "reference"
MANIFEST = json.loads((REF / "manifest.json").read_text())


def test_every_released_version_is_covered():
    versions = {entry["format"] for entry in MANIFEST.values()}
    assert {"1.0", "1.1", "1.2", "1.3"} <= versions
    assert sorted(p.stem for p in REF.glob("*.vqi")) == sorted(MANIFEST)
    # every index layout and coder of 1.0 is represented
    v10 = [e for e in MANIFEST.values() if e["format"] == "1.0"]
    assert {e["index_layout"] for e in v10} == {0, 1, 2}
    assert {e["index_coder"] for e in v10} == {0, 1}
    assert {len(e["shape"]) == 2 or e["shape"][2] for e in v10} == {True, 2, 3, 4}
    # 1.1 adds index coder 2 (layout 1 only), in every channel layout
    v11 = [e for e in MANIFEST.values() if e["format"] == "1.1"]
    assert {(e["index_layout"], e["index_coder"]) for e in v11} == {(1, 2)}
    assert {len(e["shape"]) == 2 or e["shape"][2] for e in v11} == {True, 2, 3, 4}
    # 1.2 adds block vectors, in every channel layout, with every coder
    v12 = [e for e in MANIFEST.values() if e["format"] == "1.2"]
    assert all(e["block"] != [1, 1] for e in v12)
    assert {e["index_coder"] for e in v12} == {0, 1, 2}
    assert {len(e["shape"]) == 2 or e["shape"][2] for e in v12} == {True, 2, 3, 4}
    # 1.3 adds index coder 3 (layout 1 only), in every channel layout, and over blocks
    v13 = [e for e in MANIFEST.values() if e["format"] == "1.3"]
    assert {(e["index_layout"], e["index_coder"]) for e in v13} == {(1, 3)}
    assert {len(e["shape"]) == 2 or e["shape"][2] for e in v13} == {True, 2, 3, 4}
    assert any(e.get("block", [1, 1]) != [1, 1] for e in v13)


@pytest.mark.parametrize("stem", sorted(MANIFEST))
def test_reference_file_decodes_to_its_pixels(stem):
    entry = MANIFEST[stem]
    data = (REF / f"{stem}.vqi").read_bytes()
    expected = Image.open(REF / f"{stem}.png")
    want = np.asarray(expected)

    got = vqcodec.decode(data)
    assert got.shape == tuple(entry["shape"]) == want.shape
    assert got.dtype == np.uint8
    assert np.array_equal(got, want)

    header = vqcodec.read_header(data)
    assert (header.k, header.index_layout, header.index_coder) == (
        entry["k"], entry["index_layout"], entry["index_coder"])
    assert list(header.block) == entry.get("block", [1, 1])
    image = vqcodec.decode_image(data)
    assert ("icc_profile" in image.info) == entry["icc_profile"]
    if entry["icc_profile"]:
        assert image.info["icc_profile"] == expected.info["icc_profile"]
