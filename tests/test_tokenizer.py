"""vqcodec.tokenizer: tokens / detokenize / usage against an independent numpy nearest neighbour."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import OptionError, books, tokenizer, vqb
from vqcodec.tokenizer import detokenize, tokens, usage

RNG = np.random.default_rng(11)


def blocks_of(image: np.ndarray, bw: int, bh: int) -> np.ndarray:
    """(rows, cols, bh*bw*C) blocks, the image padded by repeating its last row and column."""
    h, w, c = image.shape
    rows, cols = -(-h // bh), -(-w // bw)
    ys = np.minimum(np.arange(rows * bh), h - 1)
    xs = np.minimum(np.arange(cols * bw), w - 1)
    padded = image[ys][:, xs]
    return padded.reshape(rows, bh, cols, bw, c).swapaxes(1, 2).reshape(rows, cols, bh * bw * c)


def brute_nearest(vectors: np.ndarray, entries: np.ndarray) -> np.ndarray:
    d = ((vectors[..., None, :].astype(np.int64) - entries.astype(np.int64)) ** 2).sum(-1)
    return d.argmin(-1)


@pytest.mark.parametrize("bw, bh", [(1, 1), (2, 2), (4, 4), (3, 2)])
def test_tokens_are_the_nearest_entries_and_detokenize_rebuilds(bw, bh):
    image = RNG.integers(0, 256, (13, 18, 3), dtype=np.uint8)
    entries = RNG.integers(0, 256, (40, 3 * bw * bh), dtype=np.uint8)
    t = tokens(image, entries, block=(bw, bh))
    assert t.shape == (-(-13 // bh), -(-18 // bw)) and t.dtype == np.int64
    np.testing.assert_array_equal(t, brute_nearest(blocks_of(image, bw, bh), entries))
    rebuilt = detokenize(t, entries, block=(bw, bh), height=13, width=18)
    assert rebuilt.shape == image.shape
    # every block of the rebuilt image is its token's entry (cropped at the edges)
    full = detokenize(t, entries, block=(bw, bh))
    np.testing.assert_array_equal(blocks_of(full, bw, bh), entries[t])
    np.testing.assert_array_equal(rebuilt, full[:13, :18])


def test_a_codebook_that_holds_the_image_gives_it_back():
    entries = RNG.integers(0, 256, (6, 12), dtype=np.uint8)  # 2x2 RGB blocks
    grid = RNG.integers(0, 6, (3, 5))
    assert len(np.unique(entries, axis=0)) == 6
    image = detokenize(grid, entries, block=(2, 2))
    np.testing.assert_array_equal(tokens(image, entries, block=(2, 2)), grid)


def test_codebook_as_vqb_file_codebook_or_palette(tmp_path):
    image = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    entries = RNG.integers(0, 256, (16, 12), dtype=np.uint8)
    path = tmp_path / "b.vqb"
    book = vqb.Book(channels=3, block_width=2, block_height=2, k=16, entries=entries.tobytes())
    path.write_bytes(vqb.write(book))
    from_file = tokens(image, str(path))
    np.testing.assert_array_equal(from_file, tokens(image, entries, block=(2, 2)))
    np.testing.assert_array_equal(from_file, tokens(image, books.to_codebook(book)))
    assert detokenize(from_file, path).shape == (8, 8, 3)
    colours = RNG.integers(0, 256, (5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tokens(image, colours), brute_nearest(image, colours))


def test_grey_and_alpha():
    grey = RNG.integers(0, 256, (4, 5), dtype=np.uint8)
    book = np.array([[0], [128], [255]], np.uint8)
    t = tokens(grey, book)
    np.testing.assert_array_equal(t, brute_nearest(grey[..., None], book))
    assert detokenize(t, book).shape == (4, 5)  # L comes back as (H, W), as vqcodec.decode does
    rgb_book = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    assert tokens(grey, rgb_book).shape == (4, 5)  # grey widened to RGB
    with pytest.raises(OptionError, match="in colour"):
        tokens(RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8), book)


def test_usage():
    u = usage(np.array([[0, 0, 1, 1]]), 4)
    assert (u.k, u.used, u.used_fraction, u.entropy) == (4, 2, 0.5, 1.0)
    assert usage(np.zeros((3, 3), int), 2).entropy == 0
    with pytest.raises(OptionError, match="tokens must be 0 to k - 1 = 1"):
        usage(np.array([[2]]), 2)


def test_errors():
    with pytest.raises(OptionError, match="multiple of 2x2"):
        tokens(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 10), np.uint8), block=(2, 2))
    with pytest.raises(OptionError, match="every index must be below"):
        detokenize(np.array([[5]]), np.zeros((2, 3), np.uint8))
    with pytest.raises(vqcodec.CodebookError, match="cannot read codebook"):
        tokens(np.zeros((4, 4, 3), np.uint8), "/nonexistent/book.vqb")


def test_doctest():
    assert doctest.testmod(tokenizer).failed == 0


def test_tokenize_file_writes_the_grid_and_counts(tmp_path):
    image = RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    entries = RNG.integers(0, 256, (20, 12), dtype=np.uint8)
    book = vqb.Book(channels=3, block_width=2, block_height=2, k=20, entries=entries.tobytes())
    (tmp_path / "b.vqb").write_bytes(vqb.write(book))
    result, counts, ssim = tokenizer.tokenize_file(str(tmp_path / "a.png"), str(tmp_path / "out" / "a.npy"),
                                                   codebook=str(tmp_path / "b.vqb"))
    assert result.ok and result.psnr is not None and 0 < ssim < 1
    grid = np.load(tmp_path / "out" / "a.npy")
    assert grid.dtype == np.uint8
    np.testing.assert_array_equal(grid, tokens(image, entries, block=(2, 2)))
    np.testing.assert_array_equal(counts, np.bincount(grid.reshape(-1), minlength=20))
    again, none, no_ssim = tokenizer.tokenize_file(str(tmp_path / "a.png"), str(tmp_path / "out" / "a.npy"),
                                                   codebook=str(tmp_path / "b.vqb"))
    assert not again.ok and "exists" in again.error and none is None and no_ssim is None
    assert tokenizer.token_dtype(257) == np.uint16


def test_cli_tokens_folder(tmp_path):
    import json
    import subprocess
    import sys

    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("a", "sub/b"):
        Image.fromarray(RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(tmp_path / "in" / f"{name}.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    colours = RNG.integers(0, 256, (8, 3), dtype=np.uint8)
    book = tmp_path / "p.vqb"
    book.write_bytes(vqb.write(books.load(colours)))
    proc = subprocess.run([sys.executable, "-m", "vqcodec", "tokens", tmp_path / "in", "--output-dir", tmp_path / "out",
                           "--codebook", book, "-j", "1", "--json"], capture_output=True, timeout=120)
    assert proc.returncode == 2  # one image is broken: its line, the others written
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqcodec: error: ") and "bad.png" in lines[0]
    summary = json.loads(proc.stdout)
    assert (summary["files"], summary["failed"], summary["tokens"], summary["k"]) == (2, 1, 2 * 99, 8)
    b = np.asarray(Image.open(tmp_path / "in" / "sub" / "b.png"))
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "sub" / "b.npy"), tokens(b, colours))
    from vqcodec import metrics

    images = [np.asarray(Image.open(tmp_path / "in" / f"{n}.png")) for n in ("a", "sub/b")]
    rebuilt = [detokenize(tokens(im, colours), colours, height=9, width=11).reshape(im.shape) for im in images]
    assert summary["mean_ssim"] == pytest.approx(np.mean([metrics.ssim(i, r) for i, r in zip(images, rebuilt)]))
    assert summary["mean_psnr"] == pytest.approx(np.mean([metrics.psnr(i, r) for i, r in zip(images, rebuilt)]))
    proc = subprocess.run([sys.executable, "-m", "vqcodec", "tokens", tmp_path / "in", "--output-dir", tmp_path / "o2",
                           "--codebook", tmp_path / "missing.vqb"], capture_output=True, timeout=120)
    assert proc.returncode == 2 and b"cannot read codebook" in proc.stderr
