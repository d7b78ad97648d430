"""vqcodec.quantize: lossless small palettes, invariants, determinism, exact
nearest-codeword search, quality against independent bounds, option errors."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vqcodec import space
from vqcodec.quantize import histogram, kmeans, nearest as nearest_mod
from vqcodec.errors import OptionError, VqiError
from vqcodec.quantize import Quantization, assign, learn_codebook, quantize

# the package's learn() function shadows its learn module as an attribute
learn_mod = importlib.import_module("vqcodec.quantize.learn")


# --------------------------------------------------------------------------
# helpers


def distinct_rows(a: np.ndarray) -> np.ndarray:
    return np.unique(a.reshape(-1, a.shape[-1]), axis=0)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def reconstruct(q: Quantization) -> np.ndarray:
    return q.codebook[q.indices]


def check_invariants(img: np.ndarray, q: Quantization, k: int) -> None:
    h, w, c = img.shape
    n = len(q.codebook)
    assert q.codebook.dtype == np.uint8
    assert q.codebook.ndim == 2 and q.codebook.shape[1] == c
    assert 1 <= n <= k
    assert q.indices.shape == (h, w)
    assert q.indices.dtype == (np.uint8 if n <= 256 else np.uint16)
    assert int(q.indices.max()) < n
    assert len(distinct_rows(q.codebook[:, None, :])) == n, "codebook rows must be distinct"
    used = np.bincount(q.indices.ravel(), minlength=n)
    assert (used > 0).all(), "every codebook entry must be used"


def brute_assign(colors: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Reference nearest codeword: float64 squared distances, np.argmin (first minimum)."""
    x = np.asarray(colors, np.float64)
    cb = np.asarray(codebook, np.float64)
    out = np.empty(len(x), np.intp)
    for s in range(0, len(x), 256):
        d = ((x[s : s + 256, None, :] - cb[None, :, :]) ** 2).sum(2)
        out[s : s + 256] = d.argmin(1)
    return out


def smooth_image(h: int = 96, w: int = 128, c: int = 3) -> np.ndarray:
    """A smooth synthetic image: gradients and a few soft blobs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [
        255 * xx / (w - 1),
        255 * yy / (h - 1),
        127.5 + 127.5 * np.sin(xx / 17.0) * np.cos(yy / 13.0),
        255 * (xx + yy) / (w + h - 2),
    ]
    return np.clip(np.rint(np.stack(chans[:c], -1)), 0, 255).astype(np.uint8)


def grid_quantize(img: np.ndarray, levels: int) -> np.ndarray:
    """Uniform quantization of every channel to `levels` bins, each bin -> its centre."""
    step = 256 / levels
    bins = np.minimum((img / step).astype(np.int64), levels - 1)
    return np.clip(np.rint((bins + 0.5) * step - 0.5), 0, 255).astype(np.uint8)


def random_colors(rng: np.random.Generator, count: int, c: int) -> np.ndarray:
    """`count` distinct random colours with c components."""
    keys = rng.choice(256**c, size=count, replace=False)
    return np.stack([(keys >> (8 * (c - 1 - j))) & 255 for j in range(c)], 1).astype(np.uint8)


# --------------------------------------------------------------------------
# lossless when the image has at most k colours


@pytest.mark.parametrize("c", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (1, 23), (29, 1), (7, 13), (31, 17)])
def test_lossless_when_few_colours(c, shape):
    rng = np.random.default_rng(c * 100 + shape[0])
    palette = random_colors(rng, 11, c)
    img = palette[rng.integers(0, len(palette), shape)]
    for k in (len(distinct_rows(img)), 16, 256):
        if k < 2:
            continue
        q = quantize(img, k=k)
        check_invariants(img, q, k)
        np.testing.assert_array_equal(reconstruct(q), img)
        # the codebook is exactly the image's colours, in lexicographic order
        np.testing.assert_array_equal(q.codebook, distinct_rows(img))


@pytest.mark.parametrize("c", [1, 3, 4])
def test_lossless_exactly_k_colours_and_uint16_indices(c):
    rng = np.random.default_rng(5)
    n = 200 if c == 1 else 300
    palette = random_colors(rng, n, c)
    img = palette[rng.permutation(np.arange(37 * 23) % n).reshape(37, 23)]
    q = quantize(img, k=n)
    check_invariants(img, q, n)
    np.testing.assert_array_equal(reconstruct(q), img)
    assert q.indices.dtype == (np.uint16 if n > 256 else np.uint8)


def test_single_colour_image():
    img = np.full((5, 9, 3), (10, 200, 30), np.uint8)
    q = quantize(img, k=2)
    assert q.codebook.tolist() == [[10, 200, 30]]
    assert q.indices.dtype == np.uint8 and not q.indices.any()


def test_lossless_rgba_table_fallback(monkeypatch):
    # RGBA's second pass falls back to np.unique when its flag table would be too big
    monkeypatch.setattr(histogram, "_TABLE_MAX", 0)
    rng = np.random.default_rng(9)
    img = random_colors(rng, 40, 4)[rng.integers(0, 40, (16, 16))]
    q = quantize(img, k=64)
    np.testing.assert_array_equal(reconstruct(q), img)
    np.testing.assert_array_equal(q.codebook, distinct_rows(img))


# --------------------------------------------------------------------------
# invariants with more colours than k


@pytest.mark.parametrize("c", [1, 2, 3, 4])
@pytest.mark.parametrize("k", [2, 7, 64, 256, 300])
def test_invariants_lossy(c, k):
    rng = np.random.default_rng(c * 1000 + k)
    img = rng.integers(0, 256, (41, 37, c), dtype=np.uint8)
    if c == 1 and k >= 256:
        k = 200  # a grey image has at most 256 colours
    q = quantize(img, k=k)
    check_invariants(img, q, k)
    assert len(q.codebook) == k  # plenty of colours: every entry is worth keeping


def test_indices_point_to_nearest_entry():
    img = smooth_image()
    q = quantize(img, k=32)
    flat = img.reshape(-1, 3)
    np.testing.assert_array_equal(q.indices.ravel(), brute_assign(flat, q.codebook))


@settings(max_examples=60, deadline=None)
@given(
    c=st.integers(1, 4),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    k=st.integers(2, 24),
    levels=st.integers(1, 256),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz_invariants(c, h, w, k, levels, seed):
    rng = np.random.default_rng(seed)
    img = (rng.integers(0, levels, (h, w, c)) * (255 // max(levels - 1, 1))).astype(np.uint8)
    q = quantize(img, k=k, seed=seed % 1000)
    check_invariants(img, q, k)
    if len(distinct_rows(img)) <= k:
        np.testing.assert_array_equal(reconstruct(q), img)


# --------------------------------------------------------------------------
# determinism


@pytest.mark.parametrize("k", [4, 16, 256, 1500])
def test_deterministic(k):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    img[:32] = smooth_image(32, 48)
    a = quantize(img, k=k, seed=11)
    b = quantize(img.copy(), k=k, seed=11)
    np.testing.assert_array_equal(a.codebook, b.codebook)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.indices.dtype == b.indices.dtype


def test_deterministic_whatever_the_threads(monkeypatch):
    img = smooth_image(64, 64)
    img[::3, ::5] = 17
    monkeypatch.setattr(nearest_mod, "_PARALLEL_MIN", 0)
    threaded = quantize(img, k=48)
    monkeypatch.setattr(nearest_mod, "cores", lambda: 1)
    single = quantize(img, k=48)
    np.testing.assert_array_equal(threaded.codebook, single.codebook)
    np.testing.assert_array_equal(threaded.indices, single.indices)


def test_seed_changes_nothing_structural():
    img = smooth_image()
    for seed in (0, 1, 12345):
        check_invariants(img, quantize(img, k=8, seed=seed), 8)


# --------------------------------------------------------------------------
# assign


@pytest.mark.parametrize("c", [1, 2, 3, 4])
@pytest.mark.parametrize("k", [1, 2, 5, 64, 700])
def test_assign_matches_brute_force(c, k):
    rng = np.random.default_rng(c * 31 + k)
    colors = rng.integers(0, 256, (3000, c), dtype=np.uint8)
    codebook = rng.integers(0, 256, (k, c), dtype=np.uint8)
    got = assign(colors, codebook)
    assert got.shape == (3000,)
    np.testing.assert_array_equal(got, brute_assign(colors, codebook))


@pytest.mark.parametrize("c", [1, 3, 4])
def test_assign_pruned_search_matches_brute_force(monkeypatch, c):
    # the block-pruned search for large codebooks, made to run on a small case
    monkeypatch.setattr(nearest_mod, "BRUTE_MAX_K", 8)
    monkeypatch.setattr(nearest_mod, "_PRUNE_MIN_POINTS", 16)
    monkeypatch.setattr(nearest_mod, "_LEAF", 8)
    monkeypatch.setattr(nearest_mod, "_BLOCK", 16)
    rng = np.random.default_rng(c)
    colors = rng.integers(0, 256, (2000, c), dtype=np.uint8)
    colors[:500] = rng.integers(100, 120, (500, c))  # a dense cluster
    codebook = rng.integers(0, 256, (300, c), dtype=np.uint8)
    codebook[150:200] = codebook[:50]  # duplicate rows: ties must go to the lower index
    np.testing.assert_array_equal(assign(colors, codebook), brute_assign(colors, codebook))


def test_assign_large_codebook_real_path():
    rng = np.random.default_rng(4)
    colors = rng.integers(0, 256, (6000, 3), dtype=np.uint8)
    codebook = rng.integers(0, 256, (1500, 3), dtype=np.uint8)
    np.testing.assert_array_equal(assign(colors, codebook), brute_assign(colors, codebook))


def test_assign_ties_go_to_lowest_index():
    codebook = np.array([[10, 10, 10], [30, 10, 10], [20, 10, 10], [20, 10, 10]], np.uint8)
    colors = np.array([[20, 10, 10], [25, 10, 10], [15, 10, 10], [0, 0, 0]], np.uint8)
    # 20 is exactly entry 2 (and its duplicate 3); 25 is equidistant from 2 and 1
    # (-> 1); 15 is equidistant from 0 and 2 (-> 0)
    assert assign(colors, codebook).tolist() == [2, 1, 0, 0]


def test_assign_float_inputs():
    rng = np.random.default_rng(8)
    colors = rng.uniform(0, 255, (500, 3))
    codebook = rng.uniform(0, 255, (40, 3))
    got = assign(colors, codebook)
    want = brute_assign(colors, codebook)
    d = lambda idx: ((colors - codebook[idx]) ** 2).sum(1)  # noqa: E731
    np.testing.assert_allclose(d(got), d(want), rtol=0, atol=0.1)


@pytest.mark.skipif(nearest_mod._native is None, reason="vqcodec._quantize was not built")
@pytest.mark.parametrize("c", [1, 2, 3, 4])
@pytest.mark.parametrize("k", [1, 7, 8, 9, 300, 1024])
@pytest.mark.parametrize("n", [1, 5, 3000])
def test_compiled_search_equals_the_matrix_products(monkeypatch, c, k, n):
    """vqcodec._quantize against numpy's matrix products: the same labels on
    integer colours (both exact), duplicate entries going to the lower index,
    and as near on float centroids."""
    rng = np.random.default_rng(c * 1000 + k + n)
    colors = rng.integers(0, 256, (n, c)).astype(np.float32)
    codebook = rng.integers(0, 256, (k, c)).astype(np.float64)
    codebook[k // 2 :: 3] = codebook[: len(codebook[k // 2 :: 3])]
    np.testing.assert_array_equal(nearest_mod._nearest_native(colors, codebook),
                                  nearest_mod._nearest_numpy(colors, codebook))
    floats = codebook + rng.uniform(-0.5, 0.5, codebook.shape)
    d = lambda idx: ((colors.astype(np.float64) - floats[idx]) ** 2).sum(1)  # noqa: E731
    np.testing.assert_allclose(d(nearest_mod._nearest_native(colors, floats)),
                               d(nearest_mod._nearest_numpy(colors, floats)), rtol=1e-5, atol=0.05)
    monkeypatch.setattr(nearest_mod, "_native", None)  # and the fallback is the numpy path
    np.testing.assert_array_equal(nearest_mod.nearest(colors, codebook)[0],
                                  nearest_mod._nearest_numpy(colors, codebook))


@pytest.mark.skipif(nearest_mod._native is None, reason="vqcodec._quantize was not built")
@pytest.mark.parametrize("trial", range(24))
def test_compiled_box_splits_are_numpys_bit_for_bit(monkeypatch, trial):
    """The C box splitting takes every sum in numpy's order: the same boxes."""
    rng = np.random.default_rng(trial)
    n, c, target = int(rng.integers(1, 2500)), int(rng.integers(1, 5)), int(rng.integers(1, 400))
    x = rng.integers(0, 256, (n, c)).astype(np.float64)
    if trial % 3 == 0:
        x += rng.random((n, c))  # cell means: not integers
    if trial % 4 == 0:
        x = np.round(x / 32) * 32  # few distinct values: ties and unsplittable boxes
    w = rng.integers(1, 50, n).astype(np.float64)
    labels, m = kmeans._split(x, w, target)
    monkeypatch.setattr(kmeans, "_native", None)
    want_labels, want_m = kmeans._split(x, w, target)
    assert m == want_m
    np.testing.assert_array_equal(labels, want_labels)


@pytest.mark.skipif(nearest_mod._native is None, reason="vqcodec._quantize was not built")
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (64, 80), (300, 400)])
@pytest.mark.parametrize("levels", [2, 17, 256])
def test_compiled_distinct_rgb_equals_numpys(monkeypatch, shape, levels):
    rng = np.random.default_rng(levels + shape[0])
    img = (rng.integers(0, levels, (*shape, 3)) * (255 // max(levels - 1, 1))).astype(np.uint8)
    img[:, 1::2] = img[:, ::2][:, : img[:, 1::2].shape[1]]  # runs of one colour
    got = histogram.distinct(img)
    monkeypatch.setattr(histogram, "_native", None)
    want = histogram.distinct(img)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def weighted_sse(x, w, centroids):
    d = ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
    return float(w @ d.min(1))


@pytest.mark.skipif(nearest_mod._native is None, reason="vqcodec._quantize was not built")
@pytest.mark.parametrize("trial", range(10))
def test_compiled_ward_merging_matches_numpys(monkeypatch, trial):
    """C merging (float64 costs) against numpy's (float32 matrix products): k
    clusters, each the weighted mean of the means merged into it, and the same
    error up to a near tie going the other way."""
    rng = np.random.default_rng(200 + trial)
    m, c = int(rng.integers(20, 1200)), int(rng.integers(1, 5))
    k = int(rng.integers(1, m))
    means = rng.uniform(0, 255, (m, c))
    weight = rng.integers(1, 100, m).astype(np.float64)
    got = kmeans._ward_merge(means, weight, k)
    monkeypatch.setattr(kmeans, "_native", None)
    want = kmeans._ward_merge(means, weight, k)
    assert got.shape == want.shape == (k, c)
    assert weighted_sse(means, weight, got) == pytest.approx(weighted_sse(means, weight, want), rel=0.02)


@pytest.mark.skipif(nearest_mod._native is None, reason="vqcodec._quantize was not built")
@pytest.mark.parametrize("trial", range(12))
def test_compiled_lloyd_reaches_numpys_error(monkeypatch, trial):
    """C Lloyd (Hamerly's bounds) against numpy's Lloyd from the same start: the
    same error up to float32 rounding, empty clusters re-seeded, and centroids
    dropped when every colour sits on one."""
    rng = np.random.default_rng(100 + trial)
    n, c = int(rng.integers(300, 3000)), int(rng.integers(2, 5))
    k = int(rng.integers(2, 80))
    x = rng.integers(0, 256, (n, c)).astype(np.float64)
    w = rng.integers(1, 30, n).astype(np.float64)
    start = x[rng.choice(n, k, replace=False)] + rng.normal(0, 3, (k, c))
    if trial % 3 == 0:
        start[: k // 2] = 1000.0  # far away: empty clusters on the first pass
    got = kmeans._lloyd(x, w, start, iters=60, tol=1e-4)
    monkeypatch.setattr(kmeans, "_native", None)
    want = kmeans._lloyd(x, w, start, iters=60, tol=1e-4)
    assert got.shape == want.shape
    assert weighted_sse(x, w, got) == pytest.approx(weighted_sse(x, w, want), rel=2e-3)
    # 5 colours, 8 equal centroids: one takes every colour, 5 empty ones get the
    # colours, and once every colour sits on a centroid the last 2 are dropped
    few = x[:5]
    start = np.vstack([few[:1] + 0.5] * 8)
    want = kmeans._lloyd(few, np.ones(5), start, iters=10, tol=0)
    monkeypatch.undo()
    got = kmeans._lloyd(few, np.ones(5), start, iters=10, tol=0)
    assert len(got) == 6 and weighted_sse(few, np.ones(5), got) == 0
    np.testing.assert_array_equal(got, want)


# run in a child (a fault must fail the test, not end pytest): the searches of
# the -O0 build against brute force, and Lloyd's and Ward's against the installed build
_UNOPTIMISED_CHECK = """
import importlib.util, sys
import numpy as np
import vqcodec._quantize as built
spec = importlib.util.spec_from_file_location("_quantize", sys.argv[1])
q = importlib.util.module_from_spec(spec)
spec.loader.exec_module(q)
rng = np.random.default_rng(0)
for dim in (1, 2, 3, 4):
    for k in (*range(1, 40), 64, 100, 300):
        pts = rng.integers(0, 256, (200, dim)).astype(np.float32)
        c = rng.integers(0, 256, (k, dim)).astype(np.float64)
        labels = np.empty(200, np.int64)
        q.nearest(pts, c.tobytes(), dim, labels)
        d = ((pts[:, None, :].astype(np.float64) - c[None]) ** 2).sum(2)
        np.testing.assert_array_equal(labels, d.argmin(1))
        x, w = pts.astype(np.float64).tobytes(), np.ones(200).tobytes()
        a = np.frombuffer(q.lloyd(x, w, c.tobytes(), dim, 5, 1e-4))
        np.testing.assert_allclose(a, np.frombuffer(built.lloyd(x, w, c.tobytes(), dim, 5, 1e-4)), atol=1e-3)
        if k > 1:
            a = np.frombuffer(q.ward(c.tobytes(), np.ones(k).tobytes(), dim, k // 2))
            assert a.shape == np.frombuffer(built.ward(c.tobytes(), np.ones(k).tobytes(), dim, k // 2)).shape
print("ok")
"""


@pytest.mark.skipif(nearest_mod._native is None, reason="vqcodec._quantize was not built")
def test_compiled_loops_built_unoptimised(tmp_path):
    """vqcodec/_quantize.c built at -O0 (as for a debugger, or ASan builds that
    take -O0) gives the same results: its 32-byte vectors are then loaded with
    vmovaps in the AVX2 clones, which faults unless the address is a multiple
    of 32, and the blocks of centres once came from PyMem_Malloc (16).  The
    optimised build folds those loads into arithmetic, which needs no
    alignment, so only such a build shows it."""
    import shlex
    import shutil
    import subprocess
    import sys
    import sysconfig
    from pathlib import Path

    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    if not shutil.which(cc[0]):
        pytest.skip("no C compiler")
    source = Path(__file__).resolve().parents[1] / "vqcodec" / "_quantize.c"
    target = tmp_path / ("_quantize" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run([*cc, "-O0", "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"], str(source),
                    "-o", str(target), "-lm"], check=True, capture_output=True)
    run = subprocess.run([sys.executable, "-c", _UNOPTIMISED_CHECK, str(target)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0 and run.stdout == "ok\n", (run.returncode, run.stderr[-2000:])


@pytest.mark.parametrize(
    "colors, codebook, match",
    [
        (np.zeros((3, 3)), np.zeros((0, 3)), "codebook: expected at least one row"),
        (np.zeros((3, 3)), np.zeros((2, 4)), "same number of components"),
        (np.zeros(3), np.zeros((2, 3)), r"colors: expected shape \(n, D\)"),
        (np.zeros((3, 0)), np.zeros((2, 0)), r"colors: expected shape \(n, D\) with D >= 1"),
        (np.zeros((3, 3)), np.array([["a", "b", "c"]]), "codebook: expected numbers"),
        (np.full((3, 3), np.nan), np.zeros((2, 3)), "colors: expected finite values"),
    ],
)
def test_assign_errors(colors, codebook, match):
    with pytest.raises(OptionError, match=match):
        assign(colors, codebook)


# --------------------------------------------------------------------------
# learn_codebook


def test_learn_codebook_few_colours_returns_them():
    colors = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.uint8)
    out = learn_codebook(colors, np.array([5, 1, 2]), k=3)
    np.testing.assert_array_equal(out, colors)


def test_learn_codebook_weights_matter():
    # two tight groups; the heavy one must get more centroids
    rng = np.random.default_rng(2)
    heavy = rng.integers(0, 40, (200, 3)).astype(np.uint8)
    light = rng.integers(200, 240, (200, 3)).astype(np.uint8)
    colors = np.concatenate([heavy, light])
    counts = np.concatenate([np.full(200, 1000), np.full(200, 1)])
    cb = learn_codebook(colors, counts, k=8)
    assert cb.shape[1] == 3 and 1 <= len(cb) <= 8
    assert (cb.mean(1) < 120).sum() >= 6


def test_learn_codebook_is_the_centroid_of_its_cells():
    # k-means fixed point: each centroid is the weighted mean of its colours
    img = smooth_image()
    colors, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
    cb = learn_codebook(colors, counts, k=16)
    labels = brute_assign(colors, cb)
    for j in range(len(cb)):
        sel = labels == j
        if sel.any():
            mean = (colors[sel] * counts[sel, None]).sum(0) / counts[sel].sum()
            np.testing.assert_allclose(cb[j], mean, atol=1.0)


@pytest.mark.parametrize(
    "colors, counts, match",
    [
        (np.zeros((3, 3), np.float32), np.ones(3), "colors: expected a uint8 numpy array"),
        (np.zeros((0, 3), np.uint8), np.ones(0), r"colors: expected shape \(n, D\)"),
        (np.zeros((3, 0), np.uint8), np.ones(3), r"colors: expected shape \(n, D\)"),
        (np.zeros((3, 3), np.uint8), np.ones(4), "counts: expected 3 numbers"),
        (np.zeros((3, 3), np.uint8), -np.ones(3), "counts: expected finite weights"),
        (np.zeros((3, 3), np.uint8), np.zeros(3), "positive sum"),
    ],
)
def test_learn_codebook_errors(colors, counts, match):
    with pytest.raises(OptionError, match=match):
        learn_codebook(colors, counts, k=4)


# --------------------------------------------------------------------------
# quality


def test_error_does_not_grow_with_k():
    img = smooth_image()
    errors = [mse(img, reconstruct(quantize(img, k=k))) for k in (2, 4, 8, 16, 32, 64, 128, 256)]
    assert all(b <= a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < errors[0] / 20


@pytest.mark.parametrize("levels", [3, 4, 5, 6])
def test_better_than_a_uniform_grid(levels):
    # independent bound: the uniform grid with the same number of colours
    img = smooth_image()
    k = levels**3
    q = quantize(img, k=k)
    grid = grid_quantize(img, levels)
    assert len(distinct_rows(grid)) <= k
    assert mse(img, reconstruct(q)) <= mse(img, grid)


def test_better_than_a_uniform_grid_grey():
    img = smooth_image(c=1)
    q = quantize(img, k=16)
    assert mse(img, reconstruct(q)) <= mse(img, grid_quantize(img, 16))


def test_grid_cell_reduction_keeps_quality(monkeypatch):
    # the path for images with very many colours (Lloyd on grid cells first)
    rng = np.random.default_rng(6)
    img = np.clip(smooth_image(128, 128).astype(np.int64) + rng.integers(-6, 7, (128, 128, 3)), 0, 255)
    img = img.astype(np.uint8)
    full = mse(img, reconstruct(quantize(img, k=32)))
    monkeypatch.setattr(kmeans, "_WORK_POINTS", 1024)
    monkeypatch.setattr(kmeans, "_SEED_MAX", 1024)
    q = quantize(img, k=32)
    check_invariants(img, q, 32)
    assert mse(img, reconstruct(q)) <= 1.05 * full


def test_large_codebook():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    k = 2000  # more than _PNN_MAX_K: box splits, pruned search
    q = quantize(img, k=k)
    check_invariants(img, q, k)
    assert q.indices.dtype == np.uint16
    flat = img.reshape(-1, 3)
    np.testing.assert_array_equal(q.indices.ravel(), brute_assign(flat, q.codebook))
    assert mse(img, reconstruct(q)) < mse(img, grid_quantize(img, 12))  # 12**3 = 1728 colours


def test_kodak_lossless_with_k_65536(kodak):
    img = np.asarray(Image.open(kodak / "kodim02.png").convert("RGB"))
    q = quantize(img, k=65536)  # kodim02 has about 13,000 colours
    check_invariants(img, q, 65536)
    assert q.indices.dtype == np.uint16
    np.testing.assert_array_equal(reconstruct(q), img)


def test_kodak_quality(kodak):
    # regression floor: pngquant 2.17 --nofs 64 reaches 38.03 dB on kodim01
    img = np.asarray(Image.open(kodak / "kodim01.png").convert("RGB"))
    q = quantize(img, k=64)
    check_invariants(img, q, 64)
    psnr = 10 * np.log10(255**2 / mse(img, reconstruct(q)))
    assert psnr > 38.03 + 0.1


# --------------------------------------------------------------------------
# option errors


@pytest.mark.parametrize("k", [1, 0, -5, 65537, 2.5, True, "16", None])
def test_bad_k(k):
    img = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(OptionError, match=r"k must be an integer from 2 to 65536"):
        quantize(img, k=k)
    with pytest.raises(OptionError, match=r"k must be an integer from 2 to 65536"):
        learn_codebook(np.zeros((2, 3), np.uint8), np.ones(2), k=k)


def test_k_accepts_numpy_integers():
    img = smooth_image(8, 8)
    assert len(quantize(img, k=np.int64(4)).codebook) <= 4


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed(seed):
    with pytest.raises(OptionError, match="seed must be an integer >= 0"):
        quantize(np.zeros((2, 2, 3), np.uint8), k=4, seed=seed)


@pytest.mark.parametrize(
    "pixels, match",
    [
        (np.zeros((4, 4, 3), np.float32), "expected dtype uint8, found float32"),
        (np.zeros((4, 4, 3), np.uint16), "expected dtype uint8, found uint16"),
        (np.zeros((4, 4), np.uint8), r"expected shape \(H, W, C\)"),
        (np.zeros((1, 4, 4, 3), np.uint8), r"expected shape \(H, W, C\)"),
        (np.zeros((4, 4, 5), np.uint8), r"expected shape \(H, W, C\) with C in 1..4"),
        (np.zeros((4, 4, 0), np.uint8), r"expected shape \(H, W, C\) with C in 1..4"),
        (np.zeros((0, 4, 3), np.uint8), "image is empty"),
        ([[[1, 2, 3]]], "expected a numpy array, found list"),
    ],
)
def test_bad_pixels(pixels, match):
    with pytest.raises(OptionError, match=match):
        quantize(pixels, k=16)


def test_errors_are_value_errors_of_the_family():
    with pytest.raises(ValueError):
        quantize(np.zeros((2, 2, 3), np.uint8), k=1)
    with pytest.raises(VqiError):
        quantize(np.zeros((2, 2, 3), np.uint8), k=1)


def _weighted_sse(x, w, c):
    d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(2).min(1)
    return float(w @ d)


def test_lloyd_tolerance_stops_late_not_at_the_first_iteration():
    """A positive tolerance used to stop Lloyd after one iteration (the first
    gain, from an infinite error, compared against tol * inf)."""
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (3000, 3)).astype(np.float64)
    w = rng.integers(1, 20, 3000).astype(np.float64)
    start = x[:40].copy()
    one = kmeans._lloyd(x, w, start, iters=1, tol=0.0)
    tolerant = kmeans._lloyd(x, w, start, iters=60, tol=1e-4)
    full = kmeans._lloyd(x, w, start, iters=60, tol=0.0)
    assert _weighted_sse(x, w, tolerant) < _weighted_sse(x, w, one)
    assert _weighted_sse(x, w, tolerant) <= _weighted_sse(x, w, full) * 1.01  # uniform noise: slow


def test_distinct_matches_numpy_unique():
    rng = np.random.default_rng(12)
    for c in (1, 2, 3, 4):
        palette = rng.integers(0, 256, (500, c), dtype=np.uint8)
        img = palette[rng.integers(0, 500, (97, 61))]
        colors, counts, ids = histogram.distinct(img)
        values, inverse, expected = np.unique(img.reshape(-1, c), axis=0, return_inverse=True,
                                              return_counts=True)
        np.testing.assert_array_equal(colors, values)
        np.testing.assert_array_equal(counts, expected)
        np.testing.assert_array_equal(ids, inverse.reshape(-1))
        assert ids.dtype == np.int32


def test_distinct_chunks_and_the_sorting_fallback(monkeypatch):
    rng = np.random.default_rng(13)
    img = rng.integers(0, 256, (53, 47, 4), dtype=np.uint8)
    expected = histogram.distinct(img)
    monkeypatch.setattr(histogram, "CHUNK", 100)  # many chunks, a last partial one
    monkeypatch.setattr(histogram, "_TABLE_MAX", 1 << 10)  # RGBA level too big: np.unique
    for got, want in zip(histogram.distinct(img), expected):
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------
# Alpha: premultiplied error


def premultiplied(a: np.ndarray) -> np.ndarray:
    x = a.astype(np.float64)
    x[..., :-1] *= x[..., -1:] / 255.0
    return x


def alpha_image(seed: int = 0, channels: int = 4) -> np.ndarray:
    """A logo-like image: colours under a soft alpha ramp, transparent pixels with random hidden colours."""
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    y, x = np.mgrid[:h, :w]
    colour = np.stack([(x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256], -1)[..., : channels - 1]
    alpha = np.clip((x - 8) * 6, 0, 255)[..., None]
    hidden = rng.integers(0, 256, colour.shape)
    colour = np.where(alpha == 0, hidden, colour)
    return np.concatenate([colour, alpha], -1).astype(np.uint8)


@pytest.mark.parametrize("channels", [2, 4])
@pytest.mark.parametrize("k", [2, 4, 16, 64])
def test_alpha_is_quantized_for_premultiplied_error(channels, k):
    img = alpha_image(channels=channels)
    q = quantize(img, k=k)
    check_invariants(img, q, k)
    ours = np.mean((premultiplied(img) - premultiplied(reconstruct(q))) ** 2)
    # the straight-space pipeline (what quantize did before), built from the same parts
    colors, counts, inverse = histogram.distinct(img)
    cb, labels = learn_mod.finish(colors, counts, kmeans.kmeans(colors, counts, k, 0))
    straight = cb[labels[inverse]].reshape(img.shape)
    theirs = np.mean((premultiplied(img) - premultiplied(straight)) ** 2)
    assert ours < theirs
    if k == 2:
        return  # two entries: no entry is set aside for transparency
    # every fully transparent pixel maps to one fully transparent entry
    transparent = img[..., -1] == 0
    entries = np.unique(q.indices[transparent])
    assert len(entries) == 1 and q.codebook[entries[0], -1] == 0


def test_opaque_alpha_changes_nothing():
    rgb = alpha_image()[..., :3]
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)
    q3, q4 = quantize(rgb, k=16), quantize(rgba, k=16)
    np.testing.assert_array_equal(q4.codebook[:, :3], q3.codebook)
    np.testing.assert_array_equal(q4.indices, q3.indices)


def test_unpremultiply_inverts_premultiply():
    colors = np.array([[10, 200, 30, 255], [255, 0, 128, 64], [77, 77, 77, 0], [5, 6, 7, 1]], np.uint8)
    back = space.unpremultiply(space.premultiply(colors))
    np.testing.assert_allclose(back[:2], colors[:2], atol=1e-9)
    assert back[2].tolist() == [0, 0, 0, 0]  # transparent: the colour is gone
    np.testing.assert_allclose(back[3], colors[3], atol=1e-9)


def test_an_invisible_image_is_one_transparent_entry():
    img = np.zeros((5, 5, 4), np.uint8)
    img[..., :3] = np.arange(25).reshape(5, 5, 1)  # 25 hidden colours, all alpha 0
    q = quantize(img, k=2)
    assert q.codebook.tolist() == [[0, 0, 0, 0]] and not q.indices.any()


def test_alpha_with_a_large_codebook():
    """k > 512 takes the pruned nearest-entry search, here over premultiplied float centres."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (60, 80, 4), dtype=np.uint8)
    img[:10, :, 3] = 0
    q = quantize(img, k=700)
    check_invariants(img, q, 700)
    pre, rec = premultiplied(img), premultiplied(reconstruct(q))
    # every pixel's entry is its nearest in premultiplied space (up to float32 ties)
    book = premultiplied(q.codebook)
    flat = pre.reshape(-1, 4)
    best = ((flat[:, None, :] - book[None]) ** 2).sum(-1).min(1)
    got = ((flat - rec.reshape(-1, 4)) ** 2).sum(-1)
    assert np.all(got <= best + 1e-3)
    assert (q.codebook[q.indices[:10], -1] == 0).all()
