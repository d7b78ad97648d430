"""Learn a codebook by weighted k-means and map pixels to it.

A leaf: numpy only, no files, no bytes.  The steps, as in libimagequant:
distinct colours with counts -> (for large sets) a reduced set of colour
cells -> weighted k-means++ initialisation -> Lloyd iterations to a
tolerance, empty clusters re-seeded with the worst-fitting colours -> a
final refinement on the full distinct set -> rounding to uint8 -> indices
re-assigned after rounding -> unused and duplicate entries dropped.

Learning the codebook (:func:`learn_codebook`) is separate from mapping
pixels to it (:func:`assign`), so block vectors or dithering can come later
without touching k-means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import OptionError

__all__ = ["Quantization", "quantize", "learn_codebook", "assign", "distinct_colors"]

MIN_K = 2
MAX_K = 65536
# Lloyd runs on at most this many points; larger colour sets are first merged
# into cells (the weighted mean of the colours in a cell stands for them).
REDUCED_POINTS = 16000
# Above this k, the points x k distance matrices cost too much: nearest
# codewords come from a k-d tree (scipy, imported only then), and the seeds
# are the heaviest cells of a fine colour grid instead of k-means++.
LARGE_K = 512
LARGE_K_ITERATIONS = 6
SEED_POINTS = 4000
SEED_TRIALS = 2
LLOYD_ITERATIONS = 20
TOLERANCE = 1e-4
# rows of (points x codewords) float32 distances computed at once
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Quantization:
    """A codebook and, for every pixel, the index of its codebook entry."""

    codebook: np.ndarray  # (n, C) uint8, n <= k, rows distinct, all used
    indices: np.ndarray  # (H, W) uint8 if n <= 256 else uint16


def _check(pixels: np.ndarray, k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not MIN_K <= k <= MAX_K:
        raise OptionError(f"k must be an integer from {MIN_K} to {MAX_K}, got {k!r}")
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise OptionError("pixels must be a (H, W, C) uint8 array")
    if not 1 <= pixels.shape[2] <= 4 or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise OptionError(f"pixels must be (H, W, C) with H, W >= 1 and C in 1..4, got {pixels.shape}")


def distinct_colors(pixels: np.ndarray, /) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colours (n, C) uint8, counts (n,), inverse (H*W,)) of an (H, W, C) image."""
    h, w, c = pixels.shape
    flat = np.ascontiguousarray(pixels).reshape(-1, c)
    key = np.zeros(h * w, dtype=np.uint32)
    for j in range(c):
        key |= flat[:, j].astype(np.uint32) << np.uint32(8 * (c - 1 - j))
    if c <= 3 and h * w > (1 << (8 * c)) // 4:
        # a dense histogram is O(n) and beats sorting for large images
        counts_all = np.bincount(key, minlength=1 << (8 * c))
        keys = np.flatnonzero(counts_all).astype(np.uint32)
        counts = counts_all[keys]
        lut = np.zeros(1 << (8 * c), dtype=np.int64)
        lut[keys] = np.arange(len(keys))
        inverse = lut[key]
        del counts_all, lut
    else:
        keys, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
    colors = np.empty((len(keys), c), dtype=np.uint8)
    for j in range(c):
        colors[:, j] = (keys >> np.uint32(8 * (c - 1 - j))) & np.uint32(0xFF)
    return colors, counts, inverse


def assign(colors: np.ndarray, codebook: np.ndarray, /) -> np.ndarray:
    """Index of the nearest codebook row (squared Euclidean) for each colour; ties -> lowest.

    Computed as ||c||^2 - 2 x.c in float32, which is exact for uint8 colours
    and codebooks: every term is an integer below 2^24.
    """
    x = np.asarray(colors, dtype=np.float32)
    book = np.asarray(codebook, dtype=np.float32)
    if len(book) > LARGE_K:  # nearest by k-d tree (ties broken by the tree, not by index)
        from scipy.spatial import cKDTree

        return cKDTree(book).query(x.astype(np.float64), workers=-1)[1].astype(np.int64)
    out = np.empty(len(x), dtype=np.int64)
    b2 = (book * book).sum(1)
    step = max(1, _CHUNK_ELEMENTS // max(1, len(book)))
    for start in range(0, len(x), step):
        part = x[start : start + step]
        d = b2[None, :] - 2.0 * (part @ book.T)
        out[start : start + step] = d.argmin(1)
    return out


def _weighted_kmeanspp(x: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with weights, greedy: best of a few candidates per step."""
    n = len(x)
    centers = np.empty((k, x.shape[1]), dtype=np.float64)
    first = rng.choice(n, p=w / w.sum())
    centers[0] = x[first]
    d2 = ((x - centers[0]) ** 2).sum(1)
    trials = SEED_TRIALS
    for i in range(1, k):
        pot = w * d2
        total = pot.sum()
        if total <= 0:
            return centers[:i]
        cand = np.searchsorted(np.cumsum(pot), rng.random(trials) * total)
        cand = np.minimum(cand, n - 1)
        cd = ((x[None, :, :] - x[cand][:, None, :]) ** 2).sum(2)  # (trials, n)
        nd = np.minimum(cd, d2[None, :])
        best = int(np.argmin(nd @ w))
        centers[i] = x[cand[best]]
        d2 = nd[best]
    return centers


def _lloyd(x, w, centers, iterations, tol):
    """Weighted Lloyd iterations; empty clusters take the worst-fitting points."""
    k = len(centers)
    prev = None
    x32 = x.astype(np.float32)
    x2 = (x * x).sum(1)
    for _ in range(iterations):
        labels, dist = _nearest(x32, x2, centers)
        sse = float(w @ dist)
        weight = np.bincount(labels, weights=w, minlength=k)
        sums = np.stack([np.bincount(labels, weights=w * x[:, j], minlength=k)
                         for j in range(x.shape[1])], 1)
        empty = weight <= 0
        centers = centers.copy()
        centers[~empty] = sums[~empty] / weight[~empty, None]
        if empty.any():
            worst = np.argsort(-(w * dist), kind="stable")[: int(empty.sum())]
            centers[np.flatnonzero(empty)[: len(worst)]] = x[worst]
        if prev is not None and prev - sse <= tol * prev:
            break
        prev = sse
    return centers


def _nearest(x32, x2, centers):
    if len(centers) > LARGE_K:
        from scipy.spatial import cKDTree

        dist, labels = cKDTree(centers).query(x32.astype(np.float64), workers=-1)
        return labels.astype(np.int64), dist * dist
    c = centers.astype(np.float32)
    c2 = (c * c).sum(1)
    n = len(x32)
    labels = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(1, len(c)))
    for start in range(0, n, step):
        d = c2[None, :] - 2.0 * (x32[start : start + step] @ c.T)
        lab = d.argmin(1)
        labels[start : start + step] = lab
        dist[start : start + step] = np.maximum(d[np.arange(len(lab)), lab] + x2[start : start + step], 0)
    return labels, dist


def _reduce(colors: np.ndarray, counts: np.ndarray, target: int, with_inverse: bool = False):
    """Merge colours into cells of a coarser grid until at most *target* remain.

    Returns (cell means, cell weights) and, if asked, each colour's cell.
    """
    x = colors.astype(np.float64)
    w = counts.astype(np.float64)
    if len(colors) <= target:
        return (x, w, np.arange(len(x))) if with_inverse else (x, w)
    c = colors.shape[1]
    for shift in range(1, 8):
        coarse = (colors >> shift).astype(np.int64)
        bits = 8 - shift
        key = np.zeros(len(colors), dtype=np.int64)
        for j in range(c):
            key = (key << bits) | coarse[:, j]
        cells, inverse = np.unique(key, return_inverse=True)
        if len(cells) <= target:
            break
    weight = np.bincount(inverse, weights=w)
    sums = np.stack([np.bincount(inverse, weights=w * x[:, j]) for j in range(c)], 1)
    if with_inverse:
        return sums / weight[:, None], weight, inverse.reshape(-1)
    return sums / weight[:, None], weight


def learn_codebook(colors: np.ndarray, counts: np.ndarray, /, *, k: int, seed: int = 0) -> np.ndarray:
    """Weighted k-means over distinct colours; returns (m, C) float64 centroids, m <= k."""
    rng = np.random.default_rng(seed)
    x, w = _reduce(colors, counts, max(REDUCED_POINTS, 8 * k))
    if len(x) <= k:
        return x
    if k > LARGE_K:
        return _learn_large(colors, counts, x, w, k, rng)
    seed_target = max(SEED_POINTS, 32 * k)
    sx, sw = _reduce(colors, counts, seed_target) if len(x) > seed_target else (x, w)
    centers = _weighted_kmeanspp(sx, sw, k, rng)
    centers = _lloyd(x, w, centers, LLOYD_ITERATIONS, TOLERANCE)
    if len(x) < len(colors):  # refine on the full set of distinct colours
        centers = _lloyd(colors.astype(np.float64), counts.astype(np.float64), centers, 3, TOLERANCE)
    return centers


def _learn_large(colors, counts, x, w, k, rng):
    """Large codebooks: seeds from a colour grid, topped up with the worst-fitting
    points (one batch k-means++ step), then Lloyd with a k-d tree."""
    from scipy.spatial import cKDTree

    grid, _ = _reduce(colors, counts, k)
    missing = k - len(grid)
    if missing > 0:
        dist, _ = cKDTree(grid).query(x, workers=-1)
        worst = np.argsort(-(w * dist * dist), kind="stable")[:missing]
        grid = np.concatenate([grid, x[worst]])
    return _lloyd(x, w, grid, LARGE_K_ITERATIONS, TOLERANCE)


def quantize(pixels: np.ndarray, /, *, k: int, seed: int = 0) -> Quantization:
    """Quantize an (H, W, C) uint8 image to at most k colours."""
    _check(pixels, k)
    h, w, _ = pixels.shape
    colors, counts, inverse = distinct_colors(pixels)
    if len(colors) <= k:
        book = colors
        color_index = np.arange(len(colors))
    else:
        centers = learn_codebook(colors, counts, k=k, seed=seed)
        rounded = np.clip(np.rint(centers), 0, 255).astype(np.uint8)
        rounded = np.unique(rounded, axis=0)
        color_index = assign(colors, rounded)
        used = np.bincount(color_index, minlength=len(rounded)) > 0
        book = rounded[used]
        renumber = np.cumsum(used) - 1
        color_index = renumber[color_index]
    dtype = np.uint8 if len(book) <= 256 else np.uint16
    indices = color_index.astype(dtype)[inverse].reshape(h, w)
    return Quantization(np.ascontiguousarray(book, dtype=np.uint8), indices)
