"""spec/vectors: committed .vqi bytes must decode to the committed pixels (hex -> pixels),
and every file in spec/vectors/refuse/ must be refused with the error its .json names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import vqcodec

SPEC = Path(__file__).resolve().parents[1] / "spec"
VECTORS = sorted((SPEC / "vectors").glob("*.vqi"))
REFUSE = sorted((SPEC / "vectors" / "refuse").glob("*.vqi"))

# Rules of FORMAT.md that today's decoder does not follow yet.  Strict: once the
# code follows the rule the test passes, turns red, and its entry must go.
NOT_YET: dict[str, str] = {}  # refuse vectors today's decoder does not refuse yet (strict xfail)


@pytest.fixture(autouse=True)
def no_codebooks_but_beside(monkeypatch, tmp_path):
    """A shared codebook is found only beside its vector (NAME.vqb), never on this machine's path."""
    monkeypatch.delenv("VQCODEC_CODEBOOKS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))


def beside(path: Path) -> Path | None:
    """NAME.vqb beside NAME.vqi: the shared codebook a §11 vector names (README)."""
    book = path.with_suffix(".vqb")
    return book if book.exists() else None


def test_there_are_vectors():
    assert len(VECTORS) >= 12 and len(REFUSE) >= 16


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_decodes_to_its_pixels(path):
    meta = json.loads(path.with_suffix(".json").read_text())
    expected = np.array(meta["pixels"], dtype=np.uint8)
    px = vqcodec.decode_pixels(path.read_bytes(), codebook=beside(path))
    assert px.mode == meta["mode"]
    assert (px.width, px.height) == (meta["width"], meta["height"])
    np.testing.assert_array_equal(px.array, expected)
    icc = path.with_suffix(".icc")
    assert px.icc_profile == (icc.read_bytes() if icc.exists() else None)


def _refuse_params():
    for path in REFUSE:
        reason = NOT_YET.get(path.stem)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", list(_refuse_params()))
def test_refuse_vector_is_refused(path):
    meta = json.loads(path.with_suffix(".json").read_text())
    assert set(meta) == {"rule", "error"} and meta["rule"].startswith("§")
    error = getattr(vqcodec, meta["error"])
    assert issubclass(error, vqcodec.FormatError)
    with pytest.raises(error):
        vqcodec.decode_pixels(path.read_bytes(), codebook=beside(path))


def test_shared_vectors_need_their_codebook():
    """§11.4: without the codebook beside it a shared-codebook vector is refused, naming the hash."""
    shared = [p for p in VECTORS if beside(p)]
    assert len(shared) >= 2
    for path in shared:
        ref = vqcodec.read_info(path.read_bytes()).sections[1]
        assert ref.type == "BREF"
        with pytest.raises(vqcodec.CodebookError, match=r"shared codebook [0-9a-f]{64} not found"):
            vqcodec.decode_pixels(path.read_bytes())


def test_not_yet_names_refuse_vectors():
    assert set(NOT_YET) <= {p.stem for p in REFUSE}


def test_pixel_limit_allows_equal():
    """§7 step 3: refuse when width × height > limit; equal is allowed."""
    data = (SPEC / "vectors" / "rgb-4x3-ctx.vqi").read_bytes()
    assert vqcodec.decode_pixels(data, max_pixels=12).width == 4
    with pytest.raises(vqcodec.LimitError):
        vqcodec.decode_pixels(data, max_pixels=11)


def test_minor0_vector_differs_only_in_its_version_byte():
    """rgb-4x3-ctx-minor0 is rgb-4x3-ctx stamped 1.0 (§2.1): Appendix A shows only one."""
    a = (SPEC / "vectors" / "rgb-4x3-ctx.vqi").read_bytes()
    b = (SPEC / "vectors" / "rgb-4x3-ctx-minor0.vqi").read_bytes()
    assert len(a) == len(b) and [i for i in range(len(a)) if a[i] != b[i]] == [9]
    assert (a[9], b[9]) == (1, 0)


def test_every_vector_is_named_in_the_spec_and_the_readme():
    spec = (SPEC / "FORMAT.md").read_text()
    readme = (SPEC / "vectors" / "README.md").read_text()
    for path in VECTORS:
        assert f"`{path.name}`" in spec, path.name
        assert f"`{path.name}`" in readme, path.name
    for path in REFUSE:
        assert f"`{path.stem}`" in spec, path.stem
        assert f"`{path.stem}`" in readme, path.stem
    for path in (SPEC / "vectors").rglob("*.vqb"):
        assert path.with_suffix(".vqi").exists(), path.name  # a codebook beside its vector only


def appendix_dumps() -> dict[str, bytes]:
    """The hex dumps of FORMAT.md Appendix A, keyed by vector name."""
    text = (SPEC / "FORMAT.md").read_text()
    appendix = text[text.index("## Appendix A"):text.index("## Appendix B")]
    dumps = {}
    for name, block in re.findall(r"### `([\w-]+)\.vqi`[^\n]*\n(?:(?!###).)*?```\n(.*?)```", appendix, re.S):
        hexes = []
        for line in block.splitlines():
            line = line.split("#", 1)[0]
            hexes.extend(re.findall(r"\b[0-9a-f]{2}\b", line))
        dumps[name] = bytes.fromhex("".join(hexes))
    return dumps


def test_appendix_hex_dumps_equal_the_files():
    dumps = appendix_dumps()
    assert len(dumps) >= 10, "FORMAT.md Appendix A must show the small vectors"
    for name, data in dumps.items():
        assert (SPEC / "vectors" / f"{name}.vqi").read_bytes() == data, name


def test_appendix_shows_the_codebook_file_of_the_shared_vector():
    """FORMAT.md Appendix A: the dump of rgb-4x2-shared.vqb, and §11.2's identity of it."""
    text = (SPEC / "FORMAT.md").read_text()
    part = text[text.index("The codebook file `rgb-4x2-shared.vqb`"):]
    block = part[part.index("```\n") + 4 : part.index("```", part.index("```\n") + 4)]
    dump = bytes.fromhex("".join(h for line in block.splitlines()
                                 for h in re.findall(r"\b[0-9a-f]{2}\b", line.split("#", 1)[0])))
    data = (SPEC / "vectors" / "rgb-4x2-shared.vqb").read_bytes()
    assert dump == data
    import hashlib

    identity = hashlib.sha256(data[10:-4]).hexdigest()
    assert f"`{identity}`" in text
    assert vqcodec.read_info((SPEC / "vectors" / "rgb-4x2-shared.vqi").read_bytes()).version == (1, 2)


def test_coder_3_vectors_are_stamped_1_3_and_named_in_their_refusals():
    """§2.1: a file with index coder 3 says 1.3; its must-refuse files fail in coder 3 (or in
    HEAD's rule for it), not earlier in the container."""
    cand = [p for p in VECTORS if vqcodec.read_header(p.read_bytes()).index_coder == 3]
    assert {p.stem for p in cand} >= {"rgb-5x4-cand", "l-4x6-cand-bands"}
    for path in cand:
        assert path.read_bytes()[8:10] == b"\x01\x03"
    refused = [p for p in REFUSE if p.stem.startswith("cand-")]
    assert len(refused) >= 3
    for path in refused:
        with pytest.raises(vqcodec.FormatError, match=r"index coder 3|index_coder 3"):
            vqcodec.decode_pixels(path.read_bytes())
