"""vqcodec.rdo: the rate-aware index choice keeps its error bound and changes nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from vqcodec import codec
from vqcodec.quantize import rdo
from vqcodec.errors import OptionError


def nearest(img: np.ndarray, book: np.ndarray) -> np.ndarray:
    d = ((img[:, :, None, :].astype(np.int64) - book[None, None].astype(np.int64)) ** 2).sum(-1)
    return d.argmin(-1)


def visible(a):
    """Colours as rdo compares them: premultiplied (rounded) when the last channel is alpha."""
    a = a.astype(np.int64)
    if a.shape[-1] in (2, 4):
        a[..., :-1] = (a[..., :-1] * a[..., -1:] + 127) // 255
    return a


def cost(img, book, idx):
    return ((visible(img) - visible(book)[idx]) ** 2).sum(-1)


def photo_like(h, w, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = [x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256, (x * y) % 256]
    base = np.stack(planes[:c], -1)
    noise = rng.integers(-6, 7, size=(h, w, c))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def case(h, w, c=3, n=16, seed=0, dtype=np.uint8):
    img = photo_like(h, w, c, seed)
    rng = np.random.default_rng(seed + 1)
    book = rng.integers(0, 256, size=(n, c), dtype=np.uint8)
    return img, book, nearest(img, book).astype(dtype)


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (13, 31), (40, 64)])
@pytest.mark.parametrize("strength", [0.25, 0.75, 3.0])
def test_every_change_is_a_neighbours_index_within_the_bound(shape, strength):
    img, book, idx = case(*shape)
    out = rdo.smooth(img, book, idx, strength=strength)
    assert out.shape == idx.shape and out.dtype == idx.dtype
    c0, c1 = cost(img, book, idx), cost(img, book, out)
    lam = strength * c0.mean()
    assert np.all(c1 <= c0 * (1 + strength / 3) + lam + 1e-9)
    assert np.all(np.isin(out, idx))  # only entries some pixel already used
    np.testing.assert_array_equal(idx, case(*shape)[2])  # input untouched


def test_strength_zero_is_the_nearest_map():
    img, book, idx = case(20, 30)
    np.testing.assert_array_equal(rdo.smooth(img, book, idx, strength=0), idx)


def test_smoothing_makes_runs():
    img, book, idx = case(64, 64, n=64)
    out = rdo.smooth(img, book, idx)
    def changes(a):
        return int((a[:, 1:] != a[:, :-1]).sum() + (a[1:] != a[:-1]).sum())
    assert changes(out) < changes(idx)


def test_lossless_maps_stay_lossless():
    rng = np.random.default_rng(3)
    book = rng.permutation(256)[:10].astype(np.uint8)[:, None].repeat(3, 1)
    idx = rng.integers(0, 10, size=(25, 25))
    img = book[idx]
    np.testing.assert_array_equal(rdo.smooth(img, book, idx, strength=5), idx)


@pytest.mark.parametrize("band_pixels", [1, 7, 64, 10**9])
def test_bands_keep_the_bound_and_are_deterministic(band_pixels):
    img, book, idx = case(23, 9, c=4, n=300, dtype=np.uint16)
    a = rdo.smooth(img, book, idx, band_pixels=band_pixels, threads=1)
    for threads in (2, 3, None):  # bands are independent: any number of threads, one result
        b = rdo.smooth(img, book, idx, band_pixels=band_pixels, threads=threads)
        np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint16
    c0 = cost(img, book, idx)
    assert np.all(cost(img, book, a) <= c0 * 1.25 + 0.75 * c0.mean() + 1e-9)


@pytest.mark.parametrize("bad", [-0.1, 101, float("nan"), "1"])
def test_bad_strength_is_refused(bad):
    img, book, idx = case(4, 4)
    with pytest.raises(OptionError, match="rdo strength"):
        rdo.smooth(img, book, idx, strength=bad)


def test_mismatched_shapes_are_refused():
    img, book, idx = case(4, 4)
    with pytest.raises(OptionError, match="shapes do not match"):
        rdo.smooth(img, book, idx[:3])


def test_codec_rdo_option():
    img = photo_like(48, 40)
    plain = codec.encode_pixels(img, k=16, rdo=0)
    smoothed = codec.encode_pixels(img, k=16)
    np.testing.assert_array_equal(plain.codebook, smoothed.codebook)
    np.testing.assert_array_equal(plain.indices, nearest(img, plain.codebook))
    np.testing.assert_array_equal(codec.decode(smoothed.data), smoothed.reconstruct())
    for bad in (-1, True, "0.5", 101):
        with pytest.raises(OptionError, match="rdo must be"):
            codec.encode_pixels(img, k=16, rdo=bad)


def test_hidden_colours_of_transparent_pixels_cost_nothing():
    # a transparent left half with random hidden colours: in straight RGBA its "error"
    # would dominate the image mean and let rdo wreck the visible right half
    rng = np.random.default_rng(7)
    img = np.zeros((16, 32, 4), np.uint8)
    img[:, :16, :3] = rng.integers(0, 256, (16, 16, 3))
    img[:, 16:] = photo_like(16, 16, c=4)
    img[:, 16:, 3] = 255
    book = np.concatenate([np.zeros((1, 4), np.uint8), img[:, 16:].reshape(-1, 4)[::7]])
    idx = np.argmin(np.stack([((visible(img) - visible(book)[j]) ** 2).sum(-1)
                              for j in range(len(book))], -1), -1)
    out = rdo.smooth(img, book, idx.astype(np.uint16), strength=0.75)
    c0, c1 = cost(img, book, idx), cost(img, book, out)
    assert c0[:, :16].sum() == 0  # transparent pixels on the zero entry cost nothing
    assert np.all(c1 <= c0 * 1.25 + 0.75 * c0.mean() + 1e-9)


needs_native = pytest.mark.skipif(rdo._native is None, reason="vqcodec._rdo was not built")


@needs_native
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (23, 37), (64, 50)])
@pytest.mark.parametrize("n", [2, 40, 300])
def test_compiled_loops_give_numpys_indices(monkeypatch, channels, shape, n):
    """vqcodec._rdo runs the rule pixel by pixel in place; numpy, every pixel of a pass at
    once: the same indices, bands and alpha included (uint16 indices when n > 256)."""
    img, book, idx = case(*shape, c=channels, n=n, dtype=np.uint8 if n <= 256 else np.uint16)
    if channels in (2, 4):
        img[..., -1][::3] = 0  # some transparent rows, whose colour costs nothing
    for strength in (0.3, 0.6, 2.0):
        native = rdo.smooth(img, book, idx, strength=strength, band_pixels=97)
        with monkeypatch.context() as m:
            m.setattr(rdo, "_native", None)
            reference = rdo.smooth(img, book, idx, strength=strength, band_pixels=97)
        np.testing.assert_array_equal(native, reference)


@needs_native
def test_compiled_loops_refuse_an_index_outside_the_codebook():
    img, book, idx = case(8, 8, n=4)
    idx[3, 3] = 7
    with pytest.raises(OptionError, match="an index is 7, the codebook has 4 entries"):
        rdo.smooth(img, book, idx, strength=0.6)
