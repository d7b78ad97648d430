"""The quantizer's public stages: Histogram -> learn -> Codebook -> remap, checked against quantize()
and against independent computations (numpy's unique, hashlib, brute-force nearest entries)."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from vqcodec import space
from vqcodec.errors import OptionError
from vqcodec.quantize import Codebook, Histogram, assign, learn, quantize, rebuild, remap
from vqcodec.quantize.blocks import gather, grid_shape, scatter


def photo_like(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 3 + y) % 256, (y * 5) % 256, (x * y) % 256, 64 + (x % 192)], -1)[..., :c]
    noise = rng.integers(-6, 7, (h, w, c))
    img = np.clip(base + noise, 0, 255).astype(np.uint8)
    if c in (2, 4):
        img[: h // 4, :, -1] = 0  # a transparent band
    return img


@pytest.mark.parametrize("c", [1, 2, 3, 4])
def test_histogram_matches_numpy_unique(c):
    img = photo_like(40, 50, c)
    hist = Histogram.of(img)
    rows, counts = np.unique(img.reshape(-1, c), axis=0, return_counts=True)
    np.testing.assert_array_equal(hist.colors, rows)  # lexicographic order, like np.unique's
    np.testing.assert_array_equal(hist.counts, counts)
    assert hist.pixels == 40 * 50 and len(hist) == len(rows) and hist.channels == c


def test_histograms_merge_as_one_image():
    a, b = photo_like(30, 40, 3, seed=1), photo_like(20, 40, 3, seed=2)
    merged = Histogram(3).add(a).add(b)
    whole = Histogram.of(np.concatenate([a, b]))
    np.testing.assert_array_equal(merged.colors, whole.colors)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    again = Histogram.of(a).merge(Histogram.of(b))
    np.testing.assert_array_equal(again.counts, whole.counts)


def test_histogram_errors_name_the_problem():
    with pytest.raises(OptionError, match="cannot merge 4-channel colour vectors into a 3-channel colour"):
        Histogram(3).add(photo_like(4, 4, 4))
    with pytest.raises(OptionError, match="channels must be 1 to 4"):
        Histogram(5)
    with pytest.raises(OptionError, match="expected dtype uint8"):
        Histogram.of(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(OptionError, match="histogram is empty"):
        learn(Histogram(3), 4)


@pytest.mark.parametrize("c,k", [(3, 16), (3, 256), (4, 16), (4, 64), (1, 8)])
def test_learn_then_remap_is_quantize(c, k):
    img = photo_like(48, 64, c, seed=c + k)
    q = quantize(img, k=k, seed=3)
    book = learn(Histogram.of(img), k, seed=3)
    np.testing.assert_array_equal(book.entries, q.codebook)
    np.testing.assert_array_equal(remap(img, book), q.indices)


@pytest.mark.parametrize("c", [3, 4])
def test_remap_picks_the_nearest_entry_in_the_error_space(c):
    img = photo_like(30, 30, c, seed=9)
    rng = np.random.default_rng(5)
    entries = np.unique(rng.integers(0, 256, (20, c), dtype=np.uint8), axis=0)
    idx = remap(img, Codebook(entries))
    to = space.premultiply if space.has_alpha(c) else (lambda a: a.astype(np.float64))
    d = ((to(img.reshape(-1, c))[:, None, :] - to(entries)[None]) ** 2).sum(-1)
    best = d.min(1)
    got = d[np.arange(len(d)), idx.reshape(-1).astype(np.intp)]
    np.testing.assert_allclose(got, best, rtol=1e-6, atol=1e-3)
    assert idx.dtype == np.uint8 and idx.shape == img.shape[:2]


def test_remap_keeps_exact_matches():
    entries = np.array([[0, 0, 0], [10, 10, 10], [12, 12, 12], [255, 0, 0]], np.uint8)
    img = entries[np.array([[3, 2, 1, 0], [0, 1, 2, 3]])]
    np.testing.assert_array_equal(remap(img, Codebook(entries)), [[3, 2, 1, 0], [0, 1, 2, 3]])


def test_remap_rate_aware_choice_only_changes_near_ties():
    img = photo_like(64, 64, 3, seed=4)
    q = quantize(img, k=32)
    plain = remap(img, q.codebook)
    smooth = remap(img, q.codebook, rdo_strength=0.6)
    assert (smooth != plain).any()  # it does change something...
    d = lambda idx: ((img.astype(np.int64) - q.codebook[idx].astype(np.int64)) ** 2).sum()
    assert d(plain) <= d(smooth) <= 1.5 * d(plain)  # ...and never picks a far entry


def test_remap_rejects_a_codebook_that_does_not_fit():
    img = photo_like(8, 8, 3)
    with pytest.raises(OptionError, match="do not match 3-channel pixels"):
        remap(img, np.zeros((4, 4), np.uint8))
    with pytest.raises(OptionError, match="do not match 3-channel pixels"):
        remap(img, Codebook(np.zeros((4, 16), np.uint8), channels=4, block=(2, 2)))


def test_codebook_hash_is_its_documented_bytes_and_value_equality():
    entries = np.arange(24, dtype=np.uint8).reshape(8, 3)
    book = Codebook(entries)
    # spec §11.2: channels, sample_depth 8, block 1x1, colour_space 0, a zero byte, k (u32), entries
    want = hashlib.sha256(struct.pack("<BBBBBBI", 3, 8, 1, 1, 0, 0, 8) + entries.tobytes()).hexdigest()
    assert book.sha256 == want
    assert book == Codebook(entries.copy()) and hash(book) == hash(Codebook(entries.copy()))
    assert book != Codebook(entries[:7])
    with pytest.raises(ValueError):
        book.entries[0, 0] = 1  # read-only: the hash stays true
    entries[0, 0] = 99  # and the caller's array is copied
    assert book.sha256 == want
    blocks = Codebook(np.zeros((2, 16), np.uint8), channels=4, block=(2, 2))
    assert blocks.block == (2, 2) and blocks.sha256 != Codebook(np.zeros((2, 16), np.uint8), channels=1,
                                                                 block=(4, 4)).sha256


def test_codebook_errors():
    with pytest.raises(OptionError, match="expected \\(n, D\\) uint8"):
        Codebook(np.zeros((0, 3), np.uint8))
    with pytest.raises(OptionError, match="7 components do not fill 2x2 blocks"):
        Codebook(np.zeros((2, 7), np.uint8), block=(2, 2))
    with pytest.raises(OptionError, match="is not 3 channels x 1x1"):
        Codebook(np.zeros((2, 4), np.uint8), channels=3)


# --------------------------------------------------------------------------
# vectors of several pixels


def gather_by_loops(img: np.ndarray, bw: int, bh: int) -> np.ndarray:
    """The spec's rule written plainly: pad by repeating the last row/column, blocks in raster order."""
    h, w, c = img.shape
    rows, cols = -(-h // bh), -(-w // bw)
    out = np.empty((rows * cols, bh * bw * c), np.uint8)
    for r in range(rows):
        for q in range(cols):
            parts = [img[min(r * bh + y, h - 1), min(q * bw + x, w - 1)] for y in range(bh) for x in range(bw)]
            out[r * cols + q] = np.concatenate(parts)
    return out


@pytest.mark.parametrize("shape,block", [((7, 9, 3), (2, 2)), ((8, 8, 4), (4, 4)), ((5, 3, 1), (2, 3)),
                                         ((6, 6, 2), (1, 1)), ((1, 1, 3), (4, 4))])
def test_gather_pads_by_edge_replication_and_scatter_crops(shape, block):
    img = photo_like(*shape, seed=sum(shape))
    v = gather(img, block)
    np.testing.assert_array_equal(v, gather_by_loops(img, *block))
    assert grid_shape(shape[0], shape[1], block)[0] * grid_shape(shape[0], shape[1], block)[1] == len(v)
    np.testing.assert_array_equal(scatter(v, shape[0], shape[1], shape[2], block), img)


def test_block_histogram_counts_blocks():
    img = photo_like(9, 10, 3, seed=2)
    hist = Histogram.of(img, block=(2, 2))
    rows, counts = np.unique(gather_by_loops(img, 2, 2), axis=0, return_counts=True)
    np.testing.assert_array_equal(hist.vectors, rows)
    np.testing.assert_array_equal(hist.counts, counts)
    assert hist.dim == 12 and hist.pixels == 5 * 5 * 4
    with pytest.raises(OptionError, match="cannot merge 3-channel colour vectors into a 3-channel 2x2-block"):
        hist.merge(Histogram.of(img))


@pytest.mark.parametrize("c", [3, 4])
def test_block_codebook_learns_and_maps_to_the_nearest_block(c):
    img = photo_like(32, 40, c, seed=7)
    hist = Histogram.of(img[:16], block=(2, 2)).add(img[16:])
    book = learn(hist, 24, seed=1)
    assert book.block == (2, 2) and book.channels == c and book.entries.shape[1] == 4 * c and len(book) <= 24
    grid = remap(img, book)
    assert grid.shape == (16, 20)
    vectors = gather_by_loops(img, 2, 2).astype(np.float64)
    entries = book.entries.astype(np.float64)
    if c == 4:  # the error space: each pixel of a block premultiplied by its own alpha
        def pre(a):
            return space.premultiply(a.reshape(len(a), 4, 4)).reshape(len(a), 16)
        vectors, entries = pre(vectors), pre(entries)
    d = ((vectors[:, None, :] - entries[None]) ** 2).sum(-1)
    got = d[np.arange(len(d)), grid.reshape(-1).astype(np.intp)]
    np.testing.assert_allclose(got, d.min(1), rtol=1e-6, atol=1e-3)
    back = rebuild(grid, book, 32, 40)
    assert back.shape == img.shape
    # more entries, less error: the learning does its job on 12- and 16-component vectors
    small = rebuild(remap(img, learn(hist, 4, seed=1)), learn(hist, 4, seed=1), 32, 40)
    err = lambda a: float(((a.astype(np.float64) - img) ** 2).mean())
    assert err(back) < err(small)


def test_a_transparent_block_gets_the_zero_entry():
    img = photo_like(16, 16, 4, seed=3)  # its top quarter is transparent
    book = learn(Histogram.of(img, block=(2, 2)), 8)
    grid = remap(img, book)
    np.testing.assert_array_equal(book.entries[grid[:2]], 0)


def test_block_remap_and_rebuild_errors():
    img = photo_like(8, 8, 3)
    book = Codebook(np.zeros((2, 12), np.uint8), channels=3, block=(2, 2))
    assert remap(img, book, rdo_strength=0.5).shape == (4, 4)  # blocks take the rate-aware choice too
    with pytest.raises(OptionError, match="every index must be below the codebook's 2 entries"):
        rebuild(np.full((4, 4), 2), book)
    with pytest.raises(OptionError, match="a 4x4 grid of 2x2 blocks cannot be a 9x8 image"):
        rebuild(np.zeros((4, 4), np.uint8), book, 8, 9)


def test_assign_takes_vectors_of_any_length():
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (300, 12)).astype(np.float64)
    c = rng.integers(0, 256, (17, 12)).astype(np.float64)
    d = ((x[:, None] - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(assign(x, c), d.argmin(1))
