"""Shared codebooks (spec §11): encode with one, decode through the resolver (vqcodec.books)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import CodebookError, OptionError, books, container, vqb
from vqcodec.coders import ctx as ctxcoder
from vqcodec.quantize import Codebook, remap
from vqcodec.options import DEFAULT_RDO

from image_files import png_pixels

RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)
PALETTE = RNG.integers(0, 256, (16, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No search path of this machine, an empty registry."""
    monkeypatch.delenv(books.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for identity in books.registered():
        books.unregister_codebook(identity)
    yield
    for identity in books.registered():
        books.unregister_codebook(identity)


def nearest(pixels: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Each pixel's nearest entry by squared distance, ties to the lowest index (independent of vqcodec)."""
    d = ((pixels.reshape(-1, 1, pixels.shape[-1]).astype(np.int64) - entries[None].astype(np.int64)) ** 2).sum(-1)
    return d.argmin(1).reshape(pixels.shape[:2])


def write_vqb(path, entries: np.ndarray) -> bytes:
    book = books.load(entries)
    path.write_bytes(vqb.write(book))
    return book.identity


NEEDS_CTX = pytest.mark.skipif(not ctxcoder.available(), reason="coder 2 encodes with vqcodec._ctxcoder")


@pytest.mark.parametrize("coder", ["zstd", "bzip2", pytest.param("ctx", marks=NEEDS_CTX)])
def test_round_trip_names_the_codebook_and_holds_none(coder):
    data = vqcodec.encode(IMAGE, codebook=PALETTE, rdo=0, coder=coder)
    parsed = container.read(data, inflate=False)
    assert parsed.version == (1, 2) and parsed.header.codebook_source == 1
    assert [s.type for s in parsed.sections] == ["HEAD", "BREF", "INDX", "DONE"]
    assert parsed.codebook_ref == books.load(PALETTE).identity
    assert PALETTE.tobytes() not in data
    out = vqcodec.decode(data, codebook=PALETTE)
    np.testing.assert_array_equal(out, PALETTE[nearest(IMAGE, PALETTE)])


def test_files_without_a_shared_codebook_keep_their_version():
    assert container.read(vqcodec.encode(IMAGE, k=8, coder="zstd")).version == (1, 0)
    if ctxcoder.available():  # encoding coder 2 needs the C extension (CI also runs without it)
        assert container.read(vqcodec.encode(IMAGE, k=8, coder="ctx")).version == (1, 1)


def test_missing_codebook_is_one_error_naming_its_hash():
    data = vqcodec.encode(IMAGE, codebook=PALETTE)
    identity = books.load(PALETTE).identity.hex()
    with pytest.raises(CodebookError, match=f"shared codebook {identity} not found") as info:
        vqcodec.decode(data)
    assert "\n" not in str(info.value) and "VQCODEC_CODEBOOKS" in str(info.value)
    with pytest.raises(CodebookError, match="the codebook given is another one"):
        vqcodec.decode(data, codebook=PALETTE[:8])
    # describing the file needs no codebook
    assert vqcodec.read_info(data).header.k == 16


def test_resolver_order(tmp_path, monkeypatch):
    """given, then registered, then VQCODEC_CODEBOOKS in order, then the default folder."""
    identity = books.load(PALETTE).identity
    env_a, env_b, default = tmp_path / "a", tmp_path / "b", tmp_path / "xdg" / "vqcodec" / "codebooks"
    for folder in (env_a, env_b, default):
        folder.mkdir(parents=True)
    monkeypatch.setenv(books.ENV_VAR, os.pathsep.join([str(env_a), str(env_b)]))
    assert books.search_path() == [str(env_a), str(env_b), str(default)]
    assert books.default_folder() == str(default)
    data = vqcodec.encode(IMAGE, codebook=PALETTE)

    write_vqb(default / "mine.vqb", PALETTE)  # found by scanning the default folder
    assert (vqcodec.decode(data) == vqcodec.decode(data, codebook=PALETTE)).all()
    # a file in an earlier folder named after the identity wins; a damaged one there is an error
    (env_b / f"{identity.hex()}.vqb").write_bytes(b"\x89VQB\r\n\x1a\nbroken")
    with pytest.raises(CodebookError, match=f"codebook '.*{identity.hex()}.vqb'"):
        vqcodec.decode(data)
    # ... but a registered codebook is looked at before the search path, and a given one first
    books.register_codebook(PALETTE)
    assert books.registered() == (identity.hex(),)
    vqcodec.decode(data)
    books.unregister_codebook(identity.hex())
    (env_b / f"{identity.hex()}.vqb").unlink()
    # unrelated or broken *.vqb files in a folder are passed over while scanning
    (env_a / "other.vqb").write_bytes(vqb.write(books.load(PALETTE[:4])))
    (env_a / "junk.vqb").write_bytes(b"junk")
    assert books.find(identity).identity == identity
    # a folder given as the codebook is searched like the search path's
    monkeypatch.delenv(books.ENV_VAR)
    (default / "mine.vqb").unlink()
    write_vqb(env_a / "palette.vqb", PALETTE)
    assert vqcodec.decode(data, codebook=str(env_a)).shape == IMAGE.shape
    with pytest.raises(CodebookError, match="not found"):
        vqcodec.decode(data, codebook=str(env_b))


def test_registered_codebook_reaches_the_pillow_plugin(tmp_path):
    path = tmp_path / "x.vqi"
    path.write_bytes(vqcodec.encode(IMAGE, codebook=PALETTE, rdo=0))
    with Image.open(path) as im:  # opening needs no codebook: the header is enough
        assert im.size == (40, 24) and im.mode == "RGB"
        with pytest.raises(CodebookError, match="not found"):
            im.load()
    vqcodec.register_codebook(PALETTE)
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), PALETTE[nearest(IMAGE, PALETTE)])
    Image.fromarray(IMAGE).save(tmp_path / "y.vqi", codebook=PALETTE)  # a save parameter
    assert container.read((tmp_path / "y.vqi").read_bytes(), inflate=False).header.codebook_source == 1


def test_gimp_palette_and_palette_png_are_codebooks(tmp_path):
    gpl = tmp_path / "p.gpl"
    gpl.write_text("GIMP Palette\nName: test\nColumns: 4\n# comment\n\n"
                   "255   0   0 red\n  0 255   0\n  0   0 255 blue\n")
    book = books.load(str(gpl))
    assert (book.k, book.channels, book.entries) == (3, 3, bytes([255, 0, 0, 0, 255, 0, 0, 0, 255]))
    png = tmp_path / "p.png"
    im = Image.new("P", (2, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    im.save(png)
    # encode with one, decode with the other: the same codebook (same identity)
    data = vqcodec.encode(IMAGE, codebook=str(gpl), rdo=0)
    entries = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    expected = entries[nearest(IMAGE, entries)]
    assert books.load(str(png)).identity == book.identity
    np.testing.assert_array_equal(vqcodec.decode(data, codebook=str(png)), expected)
    np.testing.assert_array_equal(vqcodec.decode(data, codebook=str(gpl)), expected)


@pytest.mark.parametrize("text, message", [
    ("JASC-PAL\n", "not a GIMP palette"),
    ("GIMP Palette\n1 2\n", "line 2: expected 3 values 0-255"),
    ("GIMP Palette\n1 2 300 x\n", "line 2"),
    ("GIMP Palette\nName: empty\n", "no colours"),
    ("GIMP Palette\n" + "1 2 3\n" * 257, "more than 256 colours"),
    ("GIMP Palette\nChannels: CMYK\n", "Channels 'CMYK'"),
])
def test_bad_gimp_palettes(tmp_path, text, message):
    gpl = tmp_path / "bad.gpl"
    gpl.write_text(text)
    with pytest.raises(CodebookError, match=message):
        books.load(str(gpl))


def test_image_with_too_many_colours_is_no_palette(tmp_path):
    Image.fromarray(IMAGE).save(tmp_path / "photo.png")
    with pytest.raises(CodebookError, match="more than 256 colours"):
        books.load(str(tmp_path / "photo.png"))
    with pytest.raises(CodebookError, match="cannot read codebook"):
        books.load(str(tmp_path / "absent.vqb"))


def test_channels_are_widened_or_refused():
    grey = IMAGE[..., :1]
    data = vqcodec.encode(grey, codebook=PALETTE, rdo=0)  # L -> RGB: nothing lost
    assert container.read(data, inflate=False).header.channels == 3
    rgba = np.concatenate([IMAGE, np.full(IMAGE.shape[:2] + (1,), 255, np.uint8)], -1)
    rgba[0, 0, 3] = 0
    with pytest.raises(OptionError, match="transparent pixels"):
        vqcodec.encode(rgba, codebook=PALETTE)
    with pytest.raises(OptionError, match="in colour"):
        vqcodec.encode(IMAGE, codebook=PALETTE[:, :1])


def test_a_shared_block_codebook_gives_a_block_file_that_decodes_by_lookup():
    from vqcodec.quantize import rebuild

    blocks = Codebook(RNG.integers(0, 256, (8, 12), dtype=np.uint8), channels=3, block=(2, 2))
    data = vqcodec.encode(IMAGE, codebook=blocks, rdo=0)  # each block its nearest entry
    header = container.read(data, inflate=False, codebooks=lambda ref: books.from_codebook(blocks)).header
    assert (header.block, header.codebook_source, header.k) == ((2, 2), 1, 8)
    expected = rebuild(remap(IMAGE, blocks), blocks, *IMAGE.shape[:2])
    decoded = vqcodec.decode(data, codebook=blocks)
    np.testing.assert_array_equal(decoded.reshape(expected.shape), expected)
    # the default rate-aware choice works on blocks too (a block may take a neighbour's entry)
    smoothed = rebuild(remap(IMAGE, blocks, rdo_strength=DEFAULT_RDO), blocks, *IMAGE.shape[:2])
    decoded = vqcodec.decode(vqcodec.encode(IMAGE, codebook=blocks), codebook=blocks)
    np.testing.assert_array_equal(decoded.reshape(smoothed.shape), smoothed)
    with pytest.raises(OptionError, match="differs from the codebook's"):
        vqcodec.encode(IMAGE, codebook=blocks, block="4x4")


def test_the_encoded_codebook_is_the_given_one():
    enc = vqcodec.encode_pixels(IMAGE, codebook=PALETTE, rdo=0)
    np.testing.assert_array_equal(enc.codebook, PALETTE)
    np.testing.assert_array_equal(enc.indices, remap(IMAGE, PALETTE))
    assert enc.header.k == 16 and enc.header.codebook_source == 1


# ---------------------------------------------------------------- the command line


def cli(*args: object, env: dict | None = None):
    import subprocess
    import sys

    full = {**os.environ, **(env or {})}  # os.environ as the isolated fixture left it
    return subprocess.run([sys.executable, "-m", "vqcodec", *map(str, args)], capture_output=True,
                          timeout=120, env=full)


def one_error_line(proc, pattern: str) -> str:
    import re

    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqcodec: error: "), lines
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def test_cli_encode_and_decode_with_a_codebook(tmp_path):
    png, book, vqi, out = (tmp_path / n for n in ("in.png", "book.vqb", "x.vqi", "out.png"))
    Image.fromarray(IMAGE).save(png)
    identity = write_vqb(book, PALETTE).hex()
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert cli("encode", png, vqi, "--codebook", book, "--rdo", "0", env=env).returncode == 0
    assert container.read(vqi.read_bytes(), inflate=False).codebook_ref.hex() == identity
    one_error_line(cli("decode", vqi, out, env=env),
                   f"shared codebook {identity} not found; give its .vqb file with --codebook BOOK")
    assert cli("decode", vqi, out, "--codebook", book, env=env).returncode == 0
    expected = PALETTE[nearest(IMAGE, PALETTE)]
    np.testing.assert_array_equal(png_pixels(out), expected)
    one_error_line(cli("decode", vqi, "--output-dir", tmp_path / "nodir", "-j", "1", env=env),
                   f"cannot decode '.*x.vqi': shared codebook {identity} not found; give its .vqb file with "
                   "--codebook BOOK")
    # through the search path, as a batch too
    env[books.ENV_VAR] = str(tmp_path)
    assert cli("decode", vqi, out, "--force", env=env).returncode == 0
    assert cli("decode", vqi, "--output-dir", tmp_path / "dir", "-j", "1", env=env).returncode == 0
    np.testing.assert_array_equal(png_pixels(tmp_path / "dir" / "x.png"), expected)
    info = cli("info", vqi, "--json", env=env)
    assert json.loads(info.stdout)["codebook"] == identity
    info = json.loads(cli("info", book, "--json").stdout)
    assert (info["identity"], info["k"], info["mode"], info["block"]) == (identity, 16, "RGB", "1x1")


def test_cli_damaged_codebook_is_one_line(tmp_path):
    png, book, vqi = tmp_path / "in.png", tmp_path / "book.vqb", tmp_path / "x.vqi"
    Image.fromarray(IMAGE).save(png)
    write_vqb(book, PALETTE)
    assert cli("encode", png, vqi, "--codebook", book).returncode == 0
    data = bytearray(book.read_bytes())
    data[30] ^= 1
    book.write_bytes(bytes(data))
    one_error_line(cli("decode", vqi, tmp_path / "o.png", "--codebook", book), r"CRC mismatch")
    one_error_line(cli("encode", png, tmp_path / "y.vqi", "--codebook", book), r"book.vqb'.*CRC mismatch")
    one_error_line(cli("info", book), r"'.*book.vqb' is not a valid codebook file: .*CRC mismatch")
    book.write_bytes(bytes(data[:-7]))
    one_error_line(cli("decode", vqi, tmp_path / "o.png", "--codebook", book), r"truncated")
    book.write_bytes(vqb.MAGIC + bytes([1, 0, 3, 8, 1, 1, 0, 0]) + (2**32 - 1).to_bytes(4, "little"))
    one_error_line(cli("decode", vqi, tmp_path / "o.png", "--codebook", book), r"k = 4294967295")


def test_cli_train_then_batch_encode_and_decode_with_a_block_codebook(tmp_path):
    """train -> encode --output-dir DIR --codebook (processes) -> decode through the search path."""
    (tmp_path / "in").mkdir()
    for i in range(2):
        Image.fromarray(np.roll(IMAGE, 5 * i, axis=1)).save(tmp_path / "in" / f"im{i}.png")
    book = tmp_path / "books" / "b.vqb"
    book.parent.mkdir()
    assert cli("train", tmp_path / "in", "-o", book, "-k", "16", "--block", "2x2", "-j", "1",
               "-q").returncode == 0
    proc = cli("encode", tmp_path / "in", "--output-dir", tmp_path / "vqi", "--codebook", book, "--rdo", "0", "-j", "2",
               "-q")
    assert proc.returncode == 0, proc.stderr
    data = (tmp_path / "vqi" / "im1.vqi").read_bytes()
    parsed = container.read(data, inflate=False)
    assert parsed.header.block == (2, 2) and parsed.codebook_ref == vqb.read(book.read_bytes()).identity
    proc = cli("decode", tmp_path / "vqi", "--output-dir", tmp_path / "png", "-q",
               env={books.ENV_VAR: str(book.parent)})
    assert proc.returncode == 0, proc.stderr
    codebook = books.to_codebook(str(book))
    expected = vqcodec.detokenize(vqcodec.tokens(np.roll(IMAGE, 5, axis=1), codebook), codebook,
                                  height=24, width=40)
    np.testing.assert_array_equal(png_pixels(tmp_path / "png" / "im1.png"), expected)


def test_rd_measures_a_shared_codebook_variant():
    """rd's vqcodec entry decodes a variant's shared-codebook files with that codebook."""
    from vqcodec import pixels
    from vqcodec.options import EncodeOptions
    from vqcodec.rd.codecs import measure

    measured = measure(pixels.from_array(IMAGE), EncodeOptions(codebook=PALETTE, rdo=0, max_pixels=None))
    np.testing.assert_array_equal(measured.decoded.reshape(IMAGE.shape), PALETTE[nearest(IMAGE, PALETTE)])
    assert "codebook" in measured.row.settings


def test_palettes_with_alpha(tmp_path):
    gpl = tmp_path / "a.gpl"
    gpl.write_text("GIMP Palette\nChannels: RGBA\n10 20 30 255 opaque\n0 0 0 0 clear\n")
    book = books.load(str(gpl))
    assert (book.channels, book.entries) == (4, bytes([10, 20, 30, 255, 0, 0, 0, 0]))
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 0, 0, 255])
    im.info["transparency"] = 1  # palette index 1 is transparent
    im.save(tmp_path / "t.png", transparency=1)
    book = books.load(str(tmp_path / "t.png"))
    assert (book.channels, book.entries) == (4, bytes([255, 0, 0, 255, 0, 0, 255, 0]))
    # a small non-palette image: its distinct colours, sorted
    Image.fromarray(np.array([[[9, 9, 9], [1, 2, 3], [9, 9, 9]]], np.uint8)).save(tmp_path / "few.png")
    assert books.load(str(tmp_path / "few.png")).entries == bytes([1, 2, 3, 9, 9, 9])


def test_codebook_pickles_read_only():
    """EncodeOptions(codebook=...) travels to worker processes by pickle: the value stays immutable."""
    import pickle

    book = Codebook(RNG.integers(0, 256, (4, 12), dtype=np.uint8), channels=3, block=(2, 2))
    again = pickle.loads(pickle.dumps(book))
    assert again == book and again.block == (2, 2) and not again.entries.flags.writeable
