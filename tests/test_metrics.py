"""Metrics: MSE / PSNR / SSIM against independent computations, alpha rules,
strip and tile processing, small images, sizes and the report."""

from __future__ import annotations

import dataclasses
import json
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from vqcodec import metrics
from vqcodec.errors import OptionError

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


# --------------------------------------------------------------------------
# Independent references


def ref_mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def ref_premultiply64(a: np.ndarray) -> np.ndarray:
    out = a.astype(np.float64)
    out[..., :-1] *= out[..., -1:] / 255.0
    return out


def _ssim_channel_map(x, y, smooth):
    mu_x, mu_y = smooth(x), smooth(y)
    var_x = smooth(x * x) - mu_x * mu_x
    var_y = smooth(y * y) - mu_y * mu_y
    cov = smooth(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / (
        (mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2)
    )


def ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's recipe (gaussian_weights, sigma 1.5, population
    covariance) with scipy's Gaussian filter: truncate=3.5 -> an 11-tap
    window; 5 pixels cropped at every border."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]

    def smooth(z):
        return ndimage.gaussian_filter(z, sigma=1.5, truncate=3.5, mode="reflect")

    values = [
        _ssim_channel_map(a[..., c], b[..., c], smooth)[5:-5, 5:-5].mean()
        for c in range(a.shape[2])
    ]
    return float(np.mean(values))


def ref_ssim_small(a: np.ndarray, b: np.ndarray) -> float:
    """The documented rule for axes under 11 pixels: the sigma-1.5 Gaussian
    truncated to the largest odd length that fits, renormalised, and that
    radius cropped."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    radii = [min(5, (n - 1) // 2) for n in a.shape[:2]]
    weights = []
    for r in radii:
        x = np.arange(-r, r + 1, dtype=np.float64)
        w = np.exp(-(x**2) / (2 * 1.5**2))
        weights.append(w / w.sum())

    def smooth(z):
        z = ndimage.correlate1d(z, weights[0], axis=0, mode="reflect")
        return ndimage.correlate1d(z, weights[1], axis=1, mode="reflect")

    rv, rh = radii
    values = []
    for c in range(a.shape[2]):
        s = _ssim_channel_map(a[..., c], b[..., c], smooth)
        values.append(s[rv : s.shape[0] - rv, rh : s.shape[1] - rh].mean())
    return float(np.mean(values))


# --------------------------------------------------------------------------
# Test images


def noisy_pair(shape, seed, noise=20):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-noise, noise + 1, shape), 0, 255)
    return a, b.astype(np.uint8)


def smooth_pair(shape, seed):
    """Low-frequency images (large structure, small local variance) and a
    slightly quantised, shifted copy: the regime where SSIM's constants matter."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(6, 6, 0)[: len(shape)])
    field = (field - field.min()) / (field.max() - field.min())
    a = np.round(field * 230 + 10).astype(np.uint8)
    b = np.clip((a.astype(np.int16) // 8) * 8 + 3, 0, 255).astype(np.uint8)
    return a, b


# --------------------------------------------------------------------------
# MSE and PSNR


@pytest.mark.parametrize("shape", [(17, 23), (17, 23, 1), (17, 23, 3)])
def test_mse_and_psnr_match_direct_computation(shape):
    a, b = noisy_pair(shape, seed=1)
    expected = ref_mse(a, b)
    assert metrics.mse(a, b) == pytest.approx(expected, rel=1e-12)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / expected), rel=1e-12)


@pytest.mark.parametrize("channels", [2, 4])
def test_mse_with_alpha_straight_and_premultiplied(channels):
    a, b = noisy_pair((19, 21, channels), seed=2, noise=60)
    assert metrics.mse(a, b, alpha="straight") == pytest.approx(ref_mse(a, b), rel=1e-12)
    expected = ref_mse(ref_premultiply64(a), ref_premultiply64(b))
    assert metrics.mse(a, b) == pytest.approx(expected, rel=1e-6)


def test_mse_many_strips(monkeypatch):
    monkeypatch.setattr(metrics, "_STRIP_BUDGET_BYTES", 1)  # one row per strip
    a, b = noisy_pair((9, 11, 4), seed=3)
    assert metrics.mse(a, b, alpha="straight") == pytest.approx(ref_mse(a, b), rel=1e-12)


@pytest.mark.parametrize("offset", [1, 7, 55])
def test_constant_offset_gives_exact_mse(offset):
    rng = np.random.default_rng(offset)
    a = rng.integers(0, 256 - offset, (31, 45, 3), dtype=np.uint8)
    b = a + np.uint8(offset)
    assert metrics.mse(a, b) == offset**2
    assert metrics.mse(b, a) == offset**2
    assert metrics.psnr(a, b) == 10 * math.log10(255**2 / offset**2)
    assert metrics.psnr(a, b, peak=1.0) == 10 * math.log10(1 / offset**2)


def test_peak_argument_shifts_psnr_by_20_log10():
    a, b = noisy_pair((8, 8, 3), seed=4)
    p255 = metrics.psnr(a, b)
    p1 = metrics.psnr(a, b, peak=1.0)
    assert p255 - p1 == pytest.approx(20 * math.log10(255), abs=1e-9)


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (5, 7, 2), (13, 12, 3), (30, 40, 4)])
def test_identical_images(shape):
    a, _ = noisy_pair(shape, seed=5)
    b = a.copy()
    assert metrics.mse(a, b) == 0.0
    assert metrics.psnr(a, b) == math.inf
    assert metrics.ssim(a, b) == 1.0
    assert metrics.ssim(a, b, alpha="straight") == 1.0


# --------------------------------------------------------------------------
# Argument checks


@pytest.mark.parametrize("function", [metrics.mse, metrics.psnr, metrics.ssim])
def test_shape_mismatch(function):
    a = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(OptionError, match=r"shape mismatch: reference is \(4, 5, 3\), test is"):
        function(a, np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(OptionError, match="shape mismatch"):
        function(a, np.zeros((4, 5, 4), np.uint8))
    with pytest.raises(OptionError, match="shape mismatch"):
        function(np.zeros((4, 5), np.uint8), np.zeros((4, 5, 1), np.uint8))


@pytest.mark.parametrize("function", [metrics.mse, metrics.psnr, metrics.ssim])
def test_dtype_mismatch_and_non_uint8(function):
    a = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(OptionError, match="dtype mismatch: reference is uint8, test is uint16"):
        function(a, a.astype(np.uint16))
    with pytest.raises(OptionError, match="reference: expected dtype uint8, found float32"):
        function(a.astype(np.float32), a.astype(np.float32))


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 5, 5), np.uint8), "expected 1 to 4 channels, found 5"),
        (np.zeros((4, 5, 0), np.uint8), "expected 1 to 4 channels, found 0"),
        (np.zeros((2, 4, 5, 3), np.uint8), r"expected shape \(H, W\) or \(H, W, C\), found 4"),
        (np.zeros(7, np.uint8), "found 1 dimensions"),
        (np.zeros((0, 5, 3), np.uint8), "image is empty"),
        (np.zeros((5, 0), np.uint8), "image is empty"),
    ],
)
def test_bad_image_shapes(array, message):
    with pytest.raises(OptionError, match=message):
        metrics.mse(array, array.copy())
    with pytest.raises(OptionError, match=message):
        metrics.ssim(array, array.copy())


def test_not_an_array():
    a = np.zeros((2, 2), np.uint8)
    with pytest.raises(OptionError, match="test: expected a numpy array, found list"):
        metrics.mse(a, [[0, 0], [0, 0]])


def test_bad_alpha_and_peak():
    a = np.zeros((3, 3, 4), np.uint8)
    for function in (metrics.mse, metrics.psnr, metrics.ssim):
        with pytest.raises(OptionError, match="alpha: expected one of 'premultiplied', 'st"):
            function(a, a, alpha="linear")
    # checked for images without alpha too
    with pytest.raises(OptionError, match="alpha: expected"):
        metrics.mse(a[..., :3], a[..., :3], alpha="Premultiplied")
    for peak in (0, -1.0, math.nan, math.inf):
        with pytest.raises(OptionError, match="peak: expected a positive"):
            metrics.psnr(a, a, peak=peak)
    with pytest.raises(OptionError, match="peak: expected a positive number, found 'x'"):
        metrics.psnr(a, a, peak="x")
    assert issubclass(OptionError, ValueError)


# --------------------------------------------------------------------------
# Alpha


def transparent_colour_pair(channels: int):
    """Two images that differ only in the colour of fully transparent pixels."""
    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (24, 26, channels), dtype=np.uint8)
    a[::3, :, -1] = 0
    a[:, ::5, -1] = 0
    b = a.copy()
    hidden = a[..., -1] == 0
    b[..., :-1][hidden] = rng.integers(0, 256, (int(hidden.sum()), channels - 1), dtype=np.uint8)
    assert (a != b).any()
    return a, b


@pytest.mark.parametrize("channels", [2, 4])
def test_premultiplied_ignores_colour_of_transparent_pixels(channels):
    a, b = transparent_colour_pair(channels)
    assert metrics.mse(a, b) == 0.0
    assert metrics.psnr(a, b) == math.inf
    assert metrics.ssim(a, b) == 1.0
    assert metrics.mse(a, b, alpha="straight") == pytest.approx(ref_mse(a, b), rel=1e-12)
    assert metrics.mse(a, b, alpha="straight") > 0
    assert metrics.psnr(a, b, alpha="straight") < math.inf
    assert metrics.ssim(a, b, alpha="straight") < 1.0


def test_alpha_option_has_no_effect_without_alpha():
    a, b = noisy_pair((16, 18, 3), seed=7)
    assert metrics.mse(a, b, alpha="straight") == metrics.mse(a, b)
    assert metrics.ssim(a, b, alpha="straight") == metrics.ssim(a, b)


def test_premultiply():
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (7, 9, 4), dtype=np.uint8)
    a[0, 0] = (200, 100, 50, 0)
    a[0, 1] = (200, 100, 50, 255)
    p = metrics.premultiply(a)
    assert p.dtype == np.float32 and p.shape == a.shape
    np.testing.assert_array_equal(p[..., 3], a[..., 3])
    np.testing.assert_allclose(p, ref_premultiply64(a), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(p[0, 0], [0, 0, 0, 0])
    np.testing.assert_array_equal(p[0, 1], [200, 100, 50, 255])
    la = metrics.premultiply(a[..., 2:])
    np.testing.assert_array_equal(la, p[..., 2:])
    np.testing.assert_array_equal(a[0, 0], (200, 100, 50, 0))  # input untouched


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 1), (4, 4, 3)])
def test_premultiply_needs_alpha(shape):
    with pytest.raises(OptionError, match=r"premultiply: expected an \(H, W, 2\) or"):
        metrics.premultiply(np.zeros(shape, np.uint8))


# --------------------------------------------------------------------------
# SSIM


@pytest.mark.parametrize("shape", [(48, 64), (37, 53, 3), (11, 11, 3), (12, 70)])
@pytest.mark.parametrize("maker", [noisy_pair, smooth_pair])
def test_ssim_matches_scipy_reference(shape, maker):
    a, b = maker(shape, seed=sum(shape))
    expected = ref_ssim(a, b)
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-6)
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-12)  # float64 throughout


def test_ssim_with_alpha_matches_reference():
    a, b = noisy_pair((30, 34, 4), seed=9, noise=40)
    assert metrics.ssim(a, b, alpha="straight") == pytest.approx(ref_ssim(a, b), abs=1e-12)
    expected = ref_ssim(metrics.premultiply(a), metrics.premultiply(b))
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert metrics.ssim(a, b) != pytest.approx(ref_ssim(a, b), abs=1e-3)


def test_ssim_known_values():
    flat = np.full((20, 20), 100, np.uint8)
    other = np.full((20, 20), 50, np.uint8)
    # no variance anywhere: SSIM is the luminance term alone
    expected = (2 * 100 * 50 + C1) / (100**2 + 50**2 + C1)
    assert metrics.ssim(flat, other) == pytest.approx(expected, rel=1e-12)
    rng = np.random.default_rng(10)
    noise = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    assert metrics.ssim(noise, 255 - noise) < 0  # anticorrelated structure


def test_ssim_symmetric_and_bounded():
    a, b = noisy_pair((25, 31, 3), seed=11, noise=100)
    s = metrics.ssim(a, b)
    assert s == pytest.approx(metrics.ssim(b, a), abs=1e-14)
    assert -1.0 <= s < 1.0


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 3), (3, 5), (7, 13), (1000, 4096)])
def test_ssim_tiles_equal_whole_image(monkeypatch, rows, cols):
    monkeypatch.setattr(metrics, "_native", None)  # the numpy tiles
    a, b = noisy_pair((41, 52, 3), seed=12)
    b[:15] = a[:15]  # some tiles identical (the shortcut), others not
    whole = ref_ssim(a, b)
    monkeypatch.setattr(metrics, "_SSIM_STRIP_ROWS", rows)
    monkeypatch.setattr(metrics, "_SSIM_TILE_COLS", cols)
    assert metrics.ssim(a, b) == pytest.approx(whole, abs=1e-12)


def test_ssim_column_blocks_and_gemm_chunks(monkeypatch):
    monkeypatch.setattr(metrics, "_native", None)  # the numpy tiles
    a, b = smooth_pair((40, 90, 3), seed=13)
    expected = ref_ssim(a, b)
    for block, gemm in [(1, 1), (5, 100), (200, 1 << 30)]:
        monkeypatch.setattr(metrics, "_SSIM_COLUMN_BLOCK", block)
        monkeypatch.setattr(metrics, "_GEMM_SIZE", gemm)
        assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (1, 2), (2, 2), (3, 20), (20, 3), (3, 20, 3), (1, 100), (10, 10, 4), (10, 12)],
)
def test_ssim_small_images(shape):
    a, b = noisy_pair(shape, seed=14, noise=50)
    s = metrics.ssim(a, b, alpha="straight")
    assert math.isfinite(s) and -1.0 <= s <= 1.0
    assert s == pytest.approx(ref_ssim_small(a, b), abs=1e-12)
    assert metrics.ssim(a, a.copy()) == 1.0
    if len(shape) == 3 and shape[2] == 4:
        expected = ref_ssim_small(metrics.premultiply(a), metrics.premultiply(b))
        assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-12)


def test_ssim_one_pixel_formula():
    x, y = 200.0, 120.0
    a = np.array([[200]], np.uint8)
    b = np.array([[120]], np.uint8)
    assert metrics.ssim(a, b) == pytest.approx((2 * x * y + C1) / (x * x + y * y + C1))


def test_ssim_small_rule_agrees_with_reference_at_11():
    # at 11 pixels the reduced rule and the standard one are the same window
    a, b = noisy_pair((11, 15, 3), seed=15)
    assert ref_ssim_small(a, b) == pytest.approx(ref_ssim(a, b), abs=1e-12)
    assert metrics.ssim(a, b) == pytest.approx(ref_ssim(a, b), abs=1e-12)


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_ssim_working_memory_does_not_grow_with_the_image(monkeypatch, threads, native):
    """Strips and tiles bound the float64 temporaries: the peak for a large
    image is far below one float64 copy of it and about that of a small one
    (each thread has its own tile buffers; both images use every thread).
    The compiled loops keep a window's height of filtered rows per thread:
    memory that grows with the width only."""
    if native and metrics._native is None:
        pytest.skip("vqcodec._ssim was not built")
    if not native:
        monkeypatch.setattr(metrics, "_native", None)
    monkeypatch.setattr(metrics, "_SSIM_TILE_COLS", 512)

    def peak_bytes(shape, workers):
        monkeypatch.setattr(metrics, "_SSIM_THREADS", workers)
        a, b = noisy_pair(shape, seed=16)
        tracemalloc.start()
        try:
            metrics.ssim(a, b)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # The reference is one thread's working set on a small image, measured on one
    # thread: deterministic (D14: with two threads the small image's peak depended
    # on whether the threads' tile buffers happened to overlap in time).  With N
    # threads at most N such working sets are alive at once, whatever the timing.
    one_thread_small = peak_bytes((8 * 24 + 10, 600), 1)  # 8 strips x 2 tiles
    large = peak_bytes((1400, 2100), threads)  # 24x the pixels
    assert large < 1400 * 2100 * 8 / 4
    if native:  # (11 + 1) rows of 4 float64 per output column, per thread
        assert large < threads * 12 * 4 * 8 * 2100 * 1.1 + 50_000
    else:
        assert large < threads * one_thread_small * 1.25


def test_ssim_is_the_same_number_on_one_thread_and_on_two(monkeypatch):
    # tiles are added up in one fixed order, whichever thread computed them
    a, b = noisy_pair((300, 200, 3), seed=17)
    monkeypatch.setattr(metrics, "_SSIM_STRIP_ROWS", 8)
    values = []
    for threads in (1, 2):
        monkeypatch.setattr(metrics, "_SSIM_THREADS", threads)
        values.append(metrics.ssim(a, b))
    assert values[0] == values[1]
    assert values[0] == pytest.approx(ref_ssim(a, b), abs=1e-9)


# --------------------------------------------------------------------------
# Property checks (bounded budget)


images = st.tuples(
    st.integers(1, 24),
    st.integers(1, 24),
    st.sampled_from([None, 1, 2, 3, 4]),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=40, deadline=None)
@given(images)
def test_properties(spec):
    height, width, channels, seed = spec
    shape = (height, width) if channels is None else (height, width, channels)
    a, b = noisy_pair(shape, seed=seed, noise=80)
    for alpha in ("premultiplied", "straight"):
        e = metrics.mse(a, b, alpha=alpha)
        assert e >= 0 and e == pytest.approx(metrics.mse(b, a, alpha=alpha), rel=1e-12)
        s = metrics.ssim(a, b, alpha=alpha)
        assert -1.0 <= s <= 1.0
        assert s == pytest.approx(metrics.ssim(b, a, alpha=alpha), abs=1e-12)
    if channels not in (2, 4):
        assert metrics.mse(a, b) == pytest.approx(ref_mse(a, b), rel=1e-12)
        if height >= 11 and width >= 11:
            assert metrics.ssim(a, b) == pytest.approx(ref_ssim(a, b), abs=1e-9)
        else:
            assert metrics.ssim(a, b) == pytest.approx(ref_ssim_small(a, b), abs=1e-9)


# --------------------------------------------------------------------------
# Sizes and the report


def test_bits_per_pixel_and_ratio():
    assert metrics.bits_per_pixel(1000, 100, 10) == 8.0
    assert metrics.bits_per_pixel(0, 3, 3) == 0.0
    assert metrics.bits_per_pixel(3, 2, 3) == 4.0
    assert metrics.compression_ratio(3000, 1000) == 3.0
    assert metrics.compression_ratio(10, 40) == 0.25
    with pytest.raises(OptionError, match="image size: expected width and height >= 1, found 0x5"):
        metrics.bits_per_pixel(10, 0, 5)
    with pytest.raises(OptionError, match="nbytes: expected a size >= 0, found -1"):
        metrics.bits_per_pixel(-1, 2, 2)
    with pytest.raises(OptionError, match="compressed_bytes: expected a size >= 1, found 0"):
        metrics.compression_ratio(10, 0)
    with pytest.raises(OptionError, match="original_bytes: expected a size >= 0"):
        metrics.compression_ratio(-5, 10)


def test_measure_report():
    a, b = noisy_pair((32, 48, 3), seed=17)
    report = metrics.measure(
        a, b, nbytes=576, k=16, bits_per_index=4, mode="RGB", input_bytes=4608, seconds=0.25
    )
    assert (report.width, report.height, report.mode) == (48, 32, "RGB")
    assert (report.k, report.bits_per_index, report.nbytes) == (16, 4, 576)
    assert report.raw_bytes == 48 * 32 * 3
    assert report.bpp == 576 * 8 / (48 * 32) == 3.0
    assert report.ratio_raw == 8.0
    assert report.ratio_input == 8.0
    assert report.mse == metrics.mse(a, b)
    assert report.psnr == metrics.psnr(a, b)
    assert report.ssim == metrics.ssim(a, b)
    assert report.seconds == 0.25
    data = report.as_dict()
    assert list(data) == [f.name for f in dataclasses.fields(metrics.Report)]
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.k = 3  # type: ignore[misc]


def test_measure_lossless_grey_without_input_size():
    a, _ = noisy_pair((9, 10), seed=18)
    report = metrics.measure(a, a.copy(), nbytes=45, k=256, bits_per_index=8, mode="L")
    assert report.raw_bytes == 90 and report.ratio_raw == 2.0
    assert report.input_bytes is None and report.ratio_input is None
    assert report.mse == 0.0 and report.psnr == math.inf and report.ssim == 1.0
    data = report.as_dict()
    assert data["psnr"] is None  # strict JSON has no infinity
    text = json.dumps(data, allow_nan=False)
    assert '"psnr": null' in text and '"ratio_input": null' in text


def test_measure_uses_premultiplied_alpha():
    a, b = transparent_colour_pair(4)
    report = metrics.measure(a, b, nbytes=100, k=8, bits_per_index=3, mode="RGBA")
    assert report.mse == 0.0 and report.ssim == 1.0


def test_measure_checks():
    a = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(OptionError, match="shape mismatch"):
        metrics.measure(a, a[:2], nbytes=10, k=2, bits_per_index=1, mode="RGB")
    with pytest.raises(OptionError, match="nbytes: expected an encoded size >= 1, found 0"):
        metrics.measure(a, a, nbytes=0, k=2, bits_per_index=1, mode="RGB")


def test_mse_exact_at_the_extremes():
    """The integer path: 0 against 255 everywhere, and sizes whose float32 sums would round."""
    a = np.zeros((513, 1031, 3), np.uint8)
    b = np.full_like(a, 255)
    assert metrics.mse(a, b) == 65025.0
    assert metrics.mse(a, b, alpha="straight") == 65025.0
    c = b.copy()
    c[0, 0, 0] = 254
    assert metrics._sum_squared_error(a, c, "straight") == 65025 * a.size - 65025 + 254 * 254


def _indexed_pair(shape, n, seed):
    rng = np.random.default_rng(seed)
    book = rng.integers(0, 256, (n, shape[2]), dtype=np.uint8)
    idx = rng.integers(0, n, shape[:2]).astype(np.uint8 if n <= 256 else np.uint16)
    original = np.clip(book[idx].astype(int) + rng.integers(-6, 7, shape), 0, 255).astype(np.uint8)
    return original, book, idx


@pytest.mark.parametrize("shape, n", [((37, 53, 3), 16), ((20, 30, 4), 300), ((9, 7, 1), 5), ((40, 41, 2), 7)])
def test_measure_indexed_equals_measure(monkeypatch, shape, n):
    original, book, idx = _indexed_pair(shape, n, seed=shape[0])
    options = dict(nbytes=123, k=n, bits_per_index=8, mode="RGB", input_bytes=999, seconds=0.5)
    expected = metrics.measure(original, book[idx], **options)
    assert metrics.measure_indexed(original, book, idx, **options) == expected
    monkeypatch.setattr(metrics, "_STRIP_BUDGET_BYTES", 1)  # one row per strip
    got = metrics.measure_indexed(original, book, idx, **options)
    assert got.mse == pytest.approx(expected.mse, rel=1e-12) and got.ssim == expected.ssim
    if shape[2] in (1, 3):
        assert got.mse == expected.mse  # integer sums: exact whatever the strips


def test_report_skips_ssim_above_the_limit():
    original, book, idx = _indexed_pair((30, 40, 3), 8, seed=3)
    decoded = book[idx]
    options = dict(nbytes=100, k=8, bits_per_index=3, mode="RGB")
    for limit in (1200, None):  # at the limit, and no limit: measured
        for report in (metrics.measure(original, decoded, ssim_max_pixels=limit, **options),
                       metrics.measure_indexed(original, book, idx, ssim_max_pixels=limit, **options)):
            assert report.ssim == metrics.ssim(original, decoded)
    for report in (metrics.measure(original, decoded, ssim_max_pixels=1199, **options),
                   metrics.measure_indexed(original, book, idx, ssim_max_pixels=1199, **options)):
        assert report.ssim is None
        assert report.mse == metrics.mse(original, decoded)
        data = report.as_dict()
        assert data["ssim"] is None and '"ssim": null' in json.dumps(data, allow_nan=False)
    assert metrics.REPORT_SSIM_MAX_PIXELS == 4_000_000
    big = metrics.measure_indexed(
        np.zeros((2001, 2000, 1), np.uint8), np.zeros((1, 1), np.uint8), np.zeros((2001, 2000), np.uint8),
        nbytes=10, k=2, bits_per_index=1, mode="L",
    )
    assert big.ssim is None and big.mse == 0.0 and big.psnr == math.inf


def test_measure_indexed_checks():
    original, book, idx = _indexed_pair((6, 5, 3), 4, seed=4)
    options = dict(nbytes=10, k=4, bits_per_index=2, mode="RGB")
    cases = [
        ((original, book.astype(np.int16), idx), "codebook: expected an \\(n, C\\) uint8 numpy array, found int16"),
        ((original, book[:, :2], idx), "codebook: expected shape \\(n, 3\\) with n >= 1, found \\(4, 2\\)"),
        ((original, book[:0], idx), "codebook: expected shape \\(n, 3\\) with n >= 1, found \\(0, 3\\)"),
        ((original, book, idx.astype(float)), "indices: expected an integer numpy array, found float64"),
        ((original, book, [[0]]), "indices: expected an integer numpy array, found list"),
        ((original, book, idx[:5]), "indices: expected shape \\(6, 5\\), found \\(5, 5\\)"),
        ((original, book, idx + 1), "indices: expected values from 0 to 3, found 1 to 4"),
        ((original, book, idx.astype(np.int8) - 1), "indices: expected values from 0 to 3, found -1 to 2"),
        ((original.astype(np.uint16), book, idx), "original: expected dtype uint8, found uint16"),
    ]
    for args, pattern in cases:
        with pytest.raises(OptionError, match=pattern):
            metrics.measure_indexed(*args, **options)
    with pytest.raises(OptionError, match="nbytes: expected an encoded size >= 1, found 0"):
        metrics.measure_indexed(original, book, idx, **{**options, "nbytes": 0})
    for bad in (-1, 1.5, True, "4"):
        with pytest.raises(OptionError, match="ssim_max_pixels: expected a pixel count >= 0 or None"):
            metrics.measure_indexed(original, book, idx, ssim_max_pixels=bad, **options)
        with pytest.raises(OptionError, match="ssim_max_pixels: expected a pixel count >= 0 or None"):
            metrics.measure(original, book[idx], ssim_max_pixels=bad, **options)


@pytest.mark.skipif(metrics._native is None, reason="vqcodec._ssim was not built")
@pytest.mark.parametrize("shape", [(1, 1), (3, 20), (11, 11), (40, 33, 2), (64, 130, 3), (150, 97, 4)])
@pytest.mark.parametrize("alpha", ["premultiplied", "straight"])
def test_ssim_compiled_loops_equal_numpys(monkeypatch, shape, alpha):
    """vqcodec._ssim filters rows in a ring; numpy, tiles with matrix products: the
    same SSIM up to rounding, identical windows included, on 1 or 2 threads and
    with chunks of any size."""
    a, b = noisy_pair(shape, seed=sum(shape), noise=30)
    b[: shape[0] // 3] = a[: shape[0] // 3]
    native = metrics.ssim(a, b, alpha=alpha)
    with monkeypatch.context() as m:
        m.setattr(metrics, "_native", None)
        reference = metrics.ssim(a, b, alpha=alpha)
    assert native == pytest.approx(reference, abs=1e-12)
    for rows, threads in ((1, 2), (7, 1), (1000, 2)):
        monkeypatch.setattr(metrics, "_SSIM_NATIVE_ROWS", rows)
        monkeypatch.setattr(metrics, "_SSIM_THREADS", threads)
        assert metrics.ssim(a, b, alpha=alpha) == pytest.approx(reference, abs=1e-12)


@pytest.mark.skipif(metrics._native is None, reason="vqcodec._ssim was not built")
@pytest.mark.parametrize("shape", [(1, 1), (7, 9, 3), (300, 400, 3), (181, 181, 2)])
def test_compiled_sse_equals_the_integer_sum(monkeypatch, shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = rng.integers(0, 256, shape, dtype=np.uint8)
    b[: shape[0] // 2] = 255 - a[: shape[0] // 2]  # large differences: 255^2 in every lane
    want = int(((a.astype(np.int64) - b) ** 2).sum())
    assert metrics._integer_sse(a, b) == want
    monkeypatch.setattr(metrics, "_native", None)
    assert metrics._integer_sse(a, b) == want


def test_psnr_from_mse_is_the_one_formula():
    rng = np.random.default_rng(11)
    a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    err = float(((a.astype(np.float64) - b) ** 2).mean())
    assert metrics.psnr_from_mse(err) == pytest.approx(20 * np.log10(255) - 10 * np.log10(err), abs=1e-9)
    assert metrics.psnr_from_mse(metrics.mse(a, b)) == metrics.psnr(a, b)
    assert metrics.psnr_from_mse(0.0) == float("inf")
    assert metrics.psnr_from_mse(1.0, peak=1.0) == 0.0


def test_json_ready_turns_every_non_finite_float_into_null_and_nothing_else():
    import json
    import math

    value = {"psnr": math.inf, "rows": [{"psnr": -math.inf, "n": 3}, (1.5, math.nan)], "name": "inf", "ok": True}
    ready = metrics.json_ready(value)
    assert ready == {"psnr": None, "rows": [{"psnr": None, "n": 3}, [1.5, None]], "name": "inf", "ok": True}
    json.dumps(ready, allow_nan=False)  # strict JSON accepts it
    assert value["psnr"] == math.inf  # the input is not changed


# --------------------------------------------------------------------------
# Blurred PSNR


def _blurred_psnr_scipy(a: np.ndarray, b: np.ndarray, sigma: float) -> float:
    """The definition, computed independently: scipy.ndimage on premultiplied float64 images."""
    from scipy import ndimage

    def space(x):
        x = x.reshape(x.shape[0], x.shape[1], -1).astype(np.float64)
        if x.shape[2] in (2, 4):
            x[..., :-1] *= x[..., -1:] / 255.0
        return x

    fa = ndimage.gaussian_filter(space(a), sigma=(sigma, sigma, 0), mode="reflect", truncate=4.0)
    fb = ndimage.gaussian_filter(space(b), sigma=(sigma, sigma, 0), mode="reflect", truncate=4.0)
    mse_value = float(np.mean((fa - fb) ** 2))
    return math.inf if mse_value == 0 else 10 * math.log10(255.0**2 / mse_value)


@pytest.mark.parametrize("shape", [(1, 1), (3, 2, 4), (7, 9, 2), (30, 20), (40, 50, 3), (64, 48, 4)])
@pytest.mark.parametrize("sigma", [1.0, 0.6, 2.5])
def test_blurred_psnr_matches_scipy_ndimage(shape, sigma):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8)
    assert metrics.blurred_psnr(a, b, sigma=sigma) == pytest.approx(_blurred_psnr_scipy(a, b, sigma), rel=1e-7)


def test_blurred_psnr_sees_what_plain_psnr_does_not():
    flat = np.full((32, 32, 3), 100, np.uint8)
    checker = flat + np.where((np.indices((32, 32)).sum(0) % 2)[..., None] == 1, 3, -3).astype(np.uint8)
    offset = flat + np.uint8(3)
    # the same plain PSNR; a fine pattern around the right colour is nearly invisible after the blur
    assert metrics.psnr(flat, checker) == pytest.approx(metrics.psnr(flat, offset))
    assert metrics.blurred_psnr(flat, checker) > metrics.blurred_psnr(flat, offset) + 10
    assert metrics.blurred_psnr(flat, flat) == math.inf


@pytest.mark.parametrize("sigma", [0, -1.0, float("nan"), True, "1"])
def test_blurred_psnr_refuses_a_bad_sigma(sigma):
    img = np.zeros((4, 4), np.uint8)
    with pytest.raises(OptionError, match="sigma: expected a positive number"):
        metrics.blurred_psnr(img, img, sigma=sigma)
