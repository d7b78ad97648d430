"""Vector quantization: pixels -> (codebook, indices).

A leaf module: numpy, the standard library, :mod:`vqcodec.errors` and its
compiled search, ``vqcodec._quantize`` (no scipy -- the encoder's
whole-process time is measured).  It knows no
files and no bytes.

The pipeline, in the spirit of libimagequant::

    pixels ─► distinct colours with counts ─► learn_codebook ─► round ─► assign
                                      (weighted k-means)            (renumber)

Distinct colours
    Each pixel is packed into one integer key (first channel most
    significant).  The distinct keys are found by marking a table of
    ``256**C`` flags (O(pixels), no sort); RGBA goes through the RGB table
    and then a second table over (RGB id, alpha).  Colours come out in key
    order, i.e. sorted lexicographically.

Learning (:func:`learn_codebook`), weighted k-means where a colour's weight
is its pixel count, so the objective is exactly the image's squared error:

1. A *working set*: the distinct colours, or -- when there are more than
   ``_WORK_POINTS`` -- the weighted means of the colours in grid cells
   (the finest grid that gives few enough cells).  A smaller *seed set* is
   made the same way for the initialisation.
2. Initialisation: variance-minimising box splits of the seed set (median
   cut with the split placed where the two halves' squared error is
   smallest) into ``_OVERSPLIT * k`` boxes, then Ward's pairwise-nearest-
   neighbour merging back down to ``k`` (for ``k <= _PNN_MAX_K``; larger
   codebooks keep the boxes).  This beats k-means++ and plain median cut.
3. Lloyd iterations on the seed set, then on the working set, then (if the
   working set was reduced) a few on all distinct colours, each until the
   error improves by less than a relative tolerance.  Empty clusters are
   re-seeded with the worst-fitting colours (largest count x distance).
4. For small codebooks (``k <= _JUMP_MAX_K``) Lloyd's local optimum is
   improved by "jumps": move the centroid whose removal costs least to
   one half of the cluster whose split gains most, re-run Lloyd, keep the
   result if the error went down.

Finishing (:func:`quantize`): the centroids are rounded to ``uint8``;
assignment and rounded means alternate until stable (the rounded mean is the
best integer centroid for its cluster); every distinct colour gets its exact
nearest entry; unused (or duplicate) entries are dropped and the codebook is
sorted lexicographically.  Pixels are mapped through the distinct colours,
never by per-pixel distance computations.

Alpha (LA, RGBA): learning, assignment and the rounded-mean refinement all
work on premultiplied colours (colour × alpha / 255), the space in which
errors are seen and :mod:`vqcodec.metrics` measures them; the codebook is
stored straight.  All fully transparent colours are then one colour.

An image with at most ``k`` distinct colours comes back exactly: the
codebook is its distinct colours.

Nearest codeword (:func:`assign`)
    ``vqcodec._quantize`` (C) computes each colour's float32 ``(x - c)^2``
    summed over the channels against blocks of 8 entries at once, keeping
    the lowest index on a tie, without the colours x entries matrix (3x
    numpy's speed on a Kodak photo's colours at k = 256).  Without it (and
    for codebooks above 1024 entries), numpy:
    ``argmin_j ||x||^2 - 2 x.c_j + ||c_j||^2`` as one float32 matrix product
    per chunk of rows.  Both are exact for integer colours and codebooks
    (every partial sum is an integer below 2**24), so they agree there.
    numpy's chunks are small enough that OpenBLAS runs each
    single-threaded; either way the rows are split over two threads
    (results do not depend on the split).  For large codebooks the colours
    and the codebook are cut into Morton-ordered blocks, and a block of
    colours only looks at codebook blocks whose bounding box can hold a
    nearer entry (exact, bounded memory).

Compiled loops (``vqcodec._quantize``; numpy above is the reference and the
fallback)
    The distinct colours of an RGB image (a bitmap of the 2^24 keys: numpy's
    sparse tables cost page faults in a fresh process, 13 ms of a Kodak
    photo's encode against 4.6), the box splits (bit for bit numpy's: every
    sum is taken in numpy's order), Ward's merging (costs in float64 where
    numpy's matrix products give float32, so a near tie may go the other
    way), the nearest-codeword search, and Lloyd's iterations with
    Hamerly's bounds (a colour whose distance to its centroid is within the
    bounds is not searched again; the error is numpy's up to float32
    rounding).  On a Kodak photo at k = 256 they take the quantizer from
    ~60 ms to ~30 (mean PSNR of the 8 photos 40.637 -> 40.635 dB).

Everything is deterministic: the same input and ``seed`` give the same
output, whatever the thread count or timing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vqcodec._threads import cores, map_in_order
from vqcodec._native import load
from vqcodec import space
from vqcodec.errors import OptionError

_native = load("_quantize")  # the quantizer's loops in C (vqcodec/_quantize.c); numpy below is the reference

__all__ = ["MIN_K", "MAX_K", "Quantization", "quantize", "learn_codebook", "assign"]

MIN_K = 2
MAX_K = 65536

# Distinct colours: largest flag table of a level (else np.unique); pixels per pass.
_TABLE_MAX = 1 << 26
_CHUNK = 1 << 18
# Point sets k-means runs on.
_WORK_POINTS = 1 << 17  # more distinct colours than this (and than _WORK_PER_K * k):
_WORK_PER_K = 4  # Lloyd on grid cells first
_SEED_PER_K = 256  # initialisation (box splits, merging, first Lloyd runs) on at
_SEED_MIN = 1 << 12  # most clip(_SEED_PER_K * k, _SEED_MIN, _SEED_MAX) grid cells
_SEED_MAX = 1 << 14
# Initialisation.
_OVERSPLIT = 4  # boxes per codebook entry before Ward merging (k <= 64: twice that)
_PNN_MAX_K = 1024  # above this, the boxes are the initial codebook
# Lloyd: stop when the error no longer improves by more than a relative
# tolerance, or after this many iterations.  1e-4 cut the distance
# computations of k = 256 on Kodak by 23 % for -0.0006 dB; small codebooks
# (k <= _JUMP_MAX_K), whose PSNR margin over pngquant is thinner, run to
# a standstill.
_TOL = 1e-4
_TOL_SMALL_K = 0.0
_ITER_SEED = 60  # on the seed set
_ITER_WORK_SCALE = 80  # on the working set: _ITER_WORK_SCALE / sqrt(k)
_ITER_FULL = 2  # on all distinct colours, when the working set was reduced
_ITER_LARGE = 1  # k > _PNN_MAX_K, on the working set (finishing adds one on all)
_ITER_ROUND = 2  # rounded-centroid refinement passes
# Small codebooks: several starts and jumps out of local optima.
_JUMP_MAX_K = 64
_STARTS = 4  # k <= _STARTS_MAX_K: starts tried (Ward merging, then k-means++)
_STARTS_MAX_K = 32
_JUMP_TRIALS = 12
_JUMP_LLOYD = 8
_JUMP_FAILS = 3  # consecutive failed trials that end the search
_JUMP_CANDIDATES = 3  # victims and clusters to split considered per trial
# Nearest codeword.
_BLAS_SINGLE = 262144  # OpenBLAS runs a GEMM single-threaded when m*n*k <= this
_BRUTE_MAX_K = 1024  # larger codebooks: block-pruned search
_PRUNE_MIN_POINTS = 4096  # fewer colours than this: brute force anyway
_LEAF = 64  # codebook entries per block (pruned search)
_BLOCK = 128  # colours per block (pruned search)
_FIRST_LEAVES = 4  # codebook blocks searched first, to bound the rest
_PARALLEL_MIN = 1 << 21  # distance computations below which one thread is used


@dataclass(frozen=True)
class Quantization:
    """A codebook and the index of each pixel's entry.

    ``codebook`` is ``(n, C)`` ``uint8`` with ``1 <= n <= k``, rows distinct,
    sorted lexicographically, every entry used by at least one pixel.
    ``indices`` is ``(H, W)``, ``uint8`` if ``n <= 256`` else ``uint16``.
    """

    codebook: np.ndarray
    indices: np.ndarray


# --------------------------------------------------------------------------
# public API


def quantize(pixels: np.ndarray, /, *, k: int, seed: int = 0) -> Quantization:
    """Quantize ``(H, W, C)`` ``uint8`` pixels (``C`` in 1..4) to at most ``k`` colours.

    With alpha (C = 2 or 4) the codebook is learned and the colours
    assigned over premultiplied colours, where the error is seen (the
    colour of a transparent pixel is invisible; a half-transparent one's
    error counts half); the codebook is stored straight.  Lossless when the
    image has at most ``k`` distinct colours.  Raises :class:`OptionError` for a bad ``k``,
    ``seed`` or array.
    """
    k = _check_k(k)
    seed = _check_seed(seed)
    _check_pixels(pixels)
    h, w, c = pixels.shape
    colors, counts, inverse = _distinct(pixels)
    if len(colors) <= k:
        codebook, labels = colors, None
    elif c in (2, 4):  # alpha: learn and assign where the error is seen (premultiplied)
        codebook, labels = _quantize_alpha(colors, counts, k, seed)
    else:
        centroids = _learn(colors, counts, k, seed)
        codebook, labels = _finish(colors, counts, centroids)
    dtype = np.uint8 if len(codebook) <= 256 else np.uint16
    lut = np.arange(len(codebook), dtype=dtype) if labels is None else labels.astype(dtype)
    indices = np.empty(len(inverse), dtype)
    for s in range(0, len(inverse), _CHUNK):  # chunks: the intp copy of the ids stays small
        np.take(lut, inverse[s : s + _CHUNK], out=indices[s : s + _CHUNK])
    del inverse
    return Quantization(codebook=codebook, indices=indices.reshape(h, w))


def learn_codebook(colors: np.ndarray, counts: np.ndarray, /, *, k: int, seed: int = 0) -> np.ndarray:
    """Weighted k-means over distinct colours.

    ``colors`` is ``(n, C)`` ``uint8``, ``counts`` ``(n,)`` non-negative
    weights (pixel counts).  Returns ``(m, C)`` centroids, ``m <= k``: the
    colours themselves (``uint8``) when ``n <= k``, else ``float64``
    centroids (not rounded).
    """
    k = _check_k(k)
    seed = _check_seed(seed)
    colors, counts = _check_colors(colors, counts)
    if len(colors) <= k:
        return colors.copy()
    return _learn(colors, counts, k, seed)


def assign(colors: np.ndarray, codebook: np.ndarray, /) -> np.ndarray:
    """Index of the nearest ``codebook`` row (squared Euclidean) for each row of ``colors``.

    Ties go to the lowest index.  Exact for integer-valued inputs; float
    inputs are compared in float32 (ties closer than float32 rounding may go
    either way).  Returns an ``intp`` array of shape ``(n,)``.
    """
    x = _as_matrix("colors", colors)
    cb = _as_matrix("codebook", codebook)
    if len(cb) == 0:
        raise OptionError("codebook: expected at least one row, found 0")
    if x.shape[1] != cb.shape[1]:
        raise OptionError(
            f"colors and codebook: expected the same number of components, "
            f"found {x.shape[1]} and {cb.shape[1]}"
        )
    return _nearest(x.astype(np.float32), cb.astype(np.float64))[0]


# --------------------------------------------------------------------------
# argument checks


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not MIN_K <= k <= MAX_K:
        raise OptionError(f"k must be an integer from {MIN_K} to {MAX_K}, got {k!r}")
    return int(k)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _check_pixels(pixels: object) -> None:
    if not isinstance(pixels, np.ndarray):
        raise OptionError(f"pixels: expected a numpy array, found {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise OptionError(f"pixels: expected dtype uint8, found {pixels.dtype}")
    if pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
        raise OptionError(f"pixels: expected shape (H, W, C) with C in 1..4, found {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise OptionError(f"pixels: image is empty (shape {pixels.shape})")


def _check_colors(colors: object, counts: object) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(colors, np.ndarray) or colors.dtype != np.uint8:
        found = colors.dtype if isinstance(colors, np.ndarray) else type(colors).__name__
        raise OptionError(f"colors: expected a uint8 numpy array, found {found}")
    if colors.ndim != 2 or not 1 <= colors.shape[1] <= 4 or len(colors) == 0:
        raise OptionError(f"colors: expected shape (n, C) with n >= 1 and C in 1..4, found {colors.shape}")
    counts = np.asarray(counts)
    if counts.shape != (len(colors),) or not (
        np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)
    ):
        raise OptionError(
            f"counts: expected {len(colors)} numbers (one per colour), "
            f"found shape {counts.shape} dtype {counts.dtype}"
        )
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or not counts.sum() > 0:
        raise OptionError("counts: expected finite weights >= 0 with a positive sum")
    return colors, counts


def _as_matrix(name: str, a: object) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or not 1 <= a.shape[1] <= 4:
        raise OptionError(f"{name}: expected shape (n, C) with C in 1..4, found {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise OptionError(f"{name}: expected numbers, found dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise OptionError(f"{name}: expected finite values")
    return a


# --------------------------------------------------------------------------
# distinct colours


def _distinct(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct colours (key order), their pixel counts, each pixel's colour id (int32).

    Level by level: the first one or two channels are a key into a table of
    ``256**2`` flags; then each further channel extends the previous level's
    colour id: ``id * 256 + value``, a key into a table of ``ids * 256``
    flags.  Tables stay as small as the image's colours allow (a full
    ``256**3`` table of int32 ids costs more to page in than a 768x512 image
    takes to read), and every pass runs over chunks of pixels, so the index
    temporaries stay in cache and no full-image key array is made.
    """
    c = pixels.shape[2]
    flat = pixels.reshape(-1, c)
    if _native is not None and c == 3:  # a bitmap of the 2^24 keys, in C: the same result
        ids = np.empty(len(flat), np.int32)
        colours, counts = _native.distinct3(np.ascontiguousarray(flat), ids)
        return (np.frombuffer(colours, np.uint8).reshape(-1, 3).copy(),
                np.frombuffer(counts, np.int64).astype(np.intp), ids)
    first = min(c, 2)
    ids = np.empty(len(flat), np.int32)

    def key0(s: int, e: int) -> np.ndarray:
        key = flat[s:e, 0].astype(np.intp)
        if first == 2:
            key <<= 8
            key |= flat[s:e, 1]
        return key

    levels = [_ids_by_table(key0, len(flat), 1 << (8 * first), ids)]
    for j in range(first, c):
        size = len(levels[-1]) << 8

        def key(s: int, e: int, j: int = j) -> np.ndarray:
            k = ids[s:e].astype(np.intp)
            k <<= 8
            k |= flat[s:e, j]
            return k

        if size <= _TABLE_MAX:
            levels.append(_ids_by_table(key, len(flat), size, ids))
        else:  # too many colours for a table: sort
            values, inverse = np.unique(key(0, len(flat)), return_inverse=True)
            ids[:] = inverse.reshape(-1)
            levels.append(values)
    colors = np.empty((len(levels[-1]), c), np.uint8)
    v = levels[-1]
    for j in range(c - 1, first - 1, -1):  # walk the levels back to the first
        colors[:, j] = v & 255
        v = levels[j - first][v >> 8]
    if first == 2:
        colors[:, 1] = v & 255
        v = v >> 8
    colors[:, 0] = v
    counts = np.zeros(len(colors), np.intp)
    step = _CHUNK * 8  # bincount copies its input to intp: 16 MB at a time, not 8 bytes a pixel
    for s in range(0, len(ids), step):
        counts += np.bincount(ids[s : s + step], minlength=len(colors))
    return colors, counts, ids


def _ids_by_table(key, n: int, size: int, ids: np.ndarray) -> np.ndarray:
    """Distinct values of ``key(s, e)`` over ``[0, n)`` (all below ``size``), sorted.

    Two passes over chunks, without sorting: mark a table of ``size`` flags,
    then write each position's rank among the distinct values to ``ids``.
    """
    mark = np.zeros(size, bool)
    for s in range(0, n, _CHUNK):
        mark[key(s, min(s + _CHUNK, n))] = True
    values = np.flatnonzero(mark)
    del mark
    lut = np.empty(size, np.int32)
    lut[values] = np.arange(len(values), dtype=np.int32)
    for s in range(0, n, _CHUNK):
        e = min(s + _CHUNK, n)
        np.take(lut, key(s, e), out=ids[s:e])
    return values


def _unique_small(key: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(key, return_inverse=True) for keys < size, without sorting: O(len + size)."""
    inverse = np.empty(len(key), np.int32)
    values = _ids_by_table(lambda s, e: key[s:e], len(key), size, inverse)
    return values, inverse


# --------------------------------------------------------------------------
# learning


def _learn(colors: np.ndarray, counts: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Weighted k-means centroids (float64, at most k rows) for more than k colours."""
    tol = _TOL if k > _JUMP_MAX_K else _TOL_SMALL_K
    x_all = colors.astype(np.float64)
    w_all = counts.astype(np.float64)
    work = _cells(colors, w_all, max(_WORK_POINTS, _WORK_PER_K * k))
    xw, ww = work if work is not None else (x_all, w_all)
    if k > _PNN_MAX_K:
        # large codebooks: the boxes of the working set, then a little Lloyd
        labels, m = _split(xw, ww, k)
        c = _cluster_means(xw, ww, labels, m)[0]
        c = _lloyd(xw, ww, c, iters=_ITER_LARGE, tol=tol)
    else:
        seed_set = _cells(colors, w_all, min(max(_SEED_PER_K * k, _SEED_MIN), _SEED_MAX))
        xs, ws = seed_set if seed_set is not None and len(seed_set[0]) < len(xw) else (xw, ww)
        c = _initial(xs, ws, k)
        if k <= _JUMP_MAX_K:  # numpy.random is imported only here: it costs ~8 ms
            c = _best_start(xs, ws, c, k, np.random.default_rng(seed))
        else:
            c = _lloyd(xs, ws, c, iters=_ITER_SEED, tol=tol)
        if xs is not xw:
            iters = max(1, round(_ITER_WORK_SCALE / math.sqrt(k)))
            c = _lloyd(xw, ww, c, iters=iters, tol=tol)
    if work is not None and k <= _PNN_MAX_K:
        c = _lloyd(x_all, w_all, c, iters=_ITER_FULL, tol=tol)
    return c


def _best_start(x: np.ndarray, w: np.ndarray, first: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Small codebooks: Lloyd + jumps from several starts, keep the lowest error."""
    best, best_sse = None, math.inf
    x32 = x.astype(np.float32)
    for i in range(_STARTS if k <= _STARTS_MAX_K else 1):
        c = first if i == 0 else _kmeanspp(x, w, k, rng)
        c = _lloyd(x, w, c, iters=_ITER_SEED, tol=_TOL_SMALL_K)
        c = _jumps(x, w, c, rng)
        _, d = _nearest(x32, c, want_dist=True)
        sse = float(w @ d)
        if sse < best_sse:
            best, best_sse = c, sse
    return best


def _kmeanspp(x: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy weighted k-means++: of a few candidates drawn by count x distance^2, the best."""
    n = len(x)
    tries = 2 + int(math.log(k))
    c = np.empty((k, x.shape[1]))
    c[0] = x[min(int(np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right")), n - 1)]
    d = np.einsum("ij,ij->i", x - c[0], x - c[0])
    for j in range(1, k):
        cum = np.cumsum(w * d)
        if cum[-1] <= 0:
            return c[:j]
        pick = np.minimum(np.searchsorted(cum, rng.random(tries) * cum[-1], side="right"), n - 1)
        diff = x[None, :, :] - x[pick][:, None, :]
        dd = np.minimum(np.einsum("tij,tij->ti", diff, diff), d)
        b = int((dd @ w).argmin())
        c[j] = x[pick[b]]
        d = dd[b]
    return c


def _cells(colors: np.ndarray, w: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted means of the colours in the finest grid with at most ``limit`` occupied cells.

    None when the colours themselves are few enough.
    """
    n, c = colors.shape
    if n <= limit:
        return None
    for shift in range(1, 8):
        bits = 8 - shift
        key = (colors[:, 0] >> shift).astype(np.int64)
        for j in range(1, c):
            key <<= bits
            key |= colors[:, j] >> shift
        if c * bits <= 24:
            values, inverse = _unique_small(key, 1 << (c * bits))
        else:
            values, inverse = np.unique(key, return_inverse=True)
            inverse = inverse.reshape(-1)
        if len(values) <= limit:
            break
    m = len(values)
    weight = np.bincount(inverse, weights=w, minlength=m)
    keep = weight > 0
    means = np.empty((m, c))
    for j in range(c):
        means[:, j] = np.bincount(inverse, weights=w * colors[:, j], minlength=m)
    means = means[keep] / weight[keep, None]
    return means, weight[keep]


def _initial(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Box splits into several boxes per entry, then Ward merging down to k."""
    if k > _PNN_MAX_K:
        labels, m = _split(x, w, k)
        return _cluster_means(x, w, labels, m)[0]
    over = _OVERSPLIT if k > 64 else 2 * _OVERSPLIT
    labels, m = _split(x, w, over * k)
    means, weight = _cluster_means(x, w, labels, m)
    if len(means) <= k:
        return means
    return _ward_merge(means, weight, k)


def _cluster_means(x, w, labels, m):
    weight = np.bincount(labels, weights=w, minlength=m)
    sums = np.stack([np.bincount(labels, weights=w * x[:, j], minlength=m) for j in range(x.shape[1])], 1)
    keep = weight > 0
    return sums[keep] / weight[keep, None], weight[keep]


def _split(x: np.ndarray, w: np.ndarray, target: int) -> tuple[np.ndarray, int]:
    """Split the set into up to ``target`` boxes; returns each point's box and the box count.

    Rounds: every box with positive error is cut (the boxes with the
    largest error first when fewer cuts remain) across its axis of largest
    variance, at the position that minimises the two halves' total squared
    error.  Positions are ordered by the integer part of the coordinate
    (two stable radix sorts per round).
    """
    n, c = x.shape
    if _native is not None and 1 <= c <= 4:  # the same arithmetic in C, bit for bit
        labels = np.empty(n, np.int64)
        m = _native.split(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(w, np.float64),
                          c, target, labels)
        return labels.astype(np.intp, copy=False), m
    xi = np.clip(x, 0, 255).astype(np.uint8)
    wx = [w * x[:, j] for j in range(c)]
    wq = [wx[j] * x[:, j] for j in range(c)]
    wqt = np.sum(wq, axis=0)
    labels = np.zeros(n, np.intp)
    m = 1
    frozen = np.zeros(1, bool)
    while m < target:
        weight = np.bincount(labels, weights=w, minlength=m)
        var = np.empty((m, c))
        for j in range(c):
            s1 = np.bincount(labels, weights=wx[j], minlength=m)
            s2 = np.bincount(labels, weights=wq[j], minlength=m)
            var[:, j] = s2 - s1 * s1 / np.maximum(weight, 1e-300)
        sse = var.sum(1)
        cand = np.flatnonzero((sse > 1e-9 * max(sse.max(), 1.0)) & ~frozen)
        if len(cand) == 0:
            break
        cand = cand[np.argsort(-sse[cand], kind="stable")][: target - m]
        rank = np.full(m, -1, np.intp)
        rank[cand] = np.arange(len(cand))
        axis = var.argmax(1)
        sel = np.flatnonzero(rank[labels] >= 0)
        lab_sel = labels[sel]
        v = xi[sel, axis[lab_sel]]
        order = np.argsort(v, kind="stable")
        box = rank[lab_sel[order]]
        order = order[np.argsort(box.astype(np.uint16 if len(cand) <= 65536 else np.int64), kind="stable")]
        sel, v = sel[order], v[order]
        box = rank[labels[sel]]
        starts = np.flatnonzero(np.r_[True, box[1:] != box[:-1]])
        ends = np.r_[starts[1:], len(sel)]
        seg = np.repeat(np.arange(len(starts)), ends - starts)
        base = starts[seg] - 1  # prefix sums before the segment (-1: none)
        has = base >= 0
        last = ends[seg] - 1

        def left_right(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            cum = np.cumsum(values[sel])
            left = cum - np.where(has, cum[base], 0.0)
            return left, cum[last] - cum

        lw, rw = left_right(w)
        lq, rq = left_right(wqt)
        cost = lq + rq
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in range(c):
                lx, rx = left_right(wx[j])
                cost -= lx * lx / lw + rx * rx / rw
        pos = np.arange(len(sel))
        nxt = np.r_[v[1:], 0]
        valid = (pos < last) & (v < nxt) & (lw > 0) & (rw > 0)
        cost = np.where(valid, cost, np.inf)
        best = np.minimum.reduceat(cost, starts)
        hit = valid & (cost == best[seg])
        cut = np.full(len(starts), len(sel))
        np.minimum.at(cut, seg[hit], pos[hit])
        ok = np.isfinite(best)
        new_id = np.full(len(starts), -1, np.intp)
        new_id[ok] = m + np.arange(int(ok.sum()))
        right = (pos > cut[seg]) & ok[seg]
        labels[sel[right]] = new_id[seg[right]]
        frozen = np.concatenate([frozen, np.zeros(int(ok.sum()), bool)])
        frozen[cand[~ok]] = True
        m += int(ok.sum())
    return labels, m


def _ward_merge(means: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
    """Ward's pairwise-nearest-neighbour merging of weighted clusters down to k.

    Reciprocal nearest pairs are merged in rounds (the cheaper half of them
    per round).  Ward's cost is reducible -- a merged cluster is never nearer
    to a third one than the nearer of its parts -- so a cluster whose nearest
    neighbour was not merged keeps it; only the others are recomputed.
    """
    if _native is not None and 1 <= means.shape[1] <= 4:
        out = _native.ward(np.ascontiguousarray(means, np.float64), np.ascontiguousarray(weight, np.float64),
                           means.shape[1], k)
        return np.frombuffer(out, np.float64).reshape(-1, means.shape[1]).copy()
    c = means.copy()
    wt = weight.copy()
    count = len(c)
    nbr = np.zeros(count, np.intp)
    cost = np.zeros(count)
    todo = np.arange(count)
    while count > k:
        if len(todo):
            nbr[todo], cost[todo] = _ward_neighbours(c, wt, todo)
        idx = np.arange(count)
        mutual = idx[(nbr[nbr] == idx) & (idx < nbr)]
        if len(mutual) == 0:  # possible only through rounding: merge the cheapest pair
            mutual = np.array([int(cost.argmin())])
        mutual = mutual[np.argsort(cost[mutual], kind="stable")]
        take = mutual[: max(1, min(count - k, (len(mutual) + 1) // 2))]
        a, b = take, nbr[take]
        total = wt[a] + wt[b]
        c[a] = (c[a] * wt[a, None] + c[b] * wt[b, None]) / total[:, None]
        wt[a] = total
        touched = np.zeros(count, bool)
        touched[a] = True
        touched[b] = True
        affected = touched | touched[nbr]
        keep = np.ones(count, bool)
        keep[b] = False
        newpos = np.cumsum(keep) - 1
        c, wt, cost = c[keep], wt[keep], cost[keep]
        nbr = newpos[nbr[keep]]
        todo = np.flatnonzero(affected[keep])
        count = len(c)
    return c


def _ward_neighbours(c: np.ndarray, wt: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest other cluster of each cluster in ``rows`` under Ward's merge cost.

    cost(i, j) = ||c_i - c_j||^2 / (1/w_i + 1/w_j)
    """
    m, dim = c.shape
    a = _augment(c)
    sq = a[-1]
    inv = (1.0 / wt).astype(np.float32)
    xa = np.ones((len(rows), dim + 1), np.float32)
    xa[:, :dim] = c[rows]
    out_n = np.empty(len(rows), np.intp)
    out_c = np.empty(len(rows))
    step = max(8, _BLAS_SINGLE // ((dim + 1) * m))
    for s in range(0, len(rows), step):
        r = rows[s : s + step]
        d = xa[s : s + step] @ a
        d += sq[r, None]
        d /= inv[r, None] + inv[None, :]
        span = np.arange(len(r))
        d[span, r] = np.inf
        j = d.argmin(1)
        out_n[s : s + step] = j
        out_c[s : s + step] = d[span, j]
    return out_n, out_c


def _lloyd(x: np.ndarray, w: np.ndarray, centroids: np.ndarray, *, iters: int, tol: float) -> np.ndarray:
    """Weighted Lloyd iterations until the error improves by less than ``tol`` (relative).

    Empty clusters are re-seeded with the worst-fitting colours (largest
    count x squared distance).
    """
    n, dim = x.shape
    c = np.array(centroids, np.float64)
    if _native is not None and 1 <= dim <= 4 and len(c) <= _BRUTE_MAX_K:
        out = _native.lloyd(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(w, np.float64),
                            np.ascontiguousarray(c), dim, iters, tol)
        return np.frombuffer(out, np.float64).reshape(-1, dim).copy()
    k = len(c)
    x32 = x.astype(np.float32)
    wx = [w * x[:, j] for j in range(dim)]
    xq = float(w @ np.einsum("ij,ij->i", x, x))
    prev = math.inf
    for _ in range(iters):
        labels = _nearest(x32, c)[0]
        weight = np.bincount(labels, weights=w, minlength=k)
        sums = np.empty((k, dim))
        for j in range(dim):
            sums[:, j] = np.bincount(labels, weights=wx[j], minlength=k)
        full = weight > 0
        c[full] = sums[full] / weight[full, None]
        sse = xq - float(np.einsum("ij,ij->", sums[full], c[full]))
        empty = np.flatnonzero(~full)
        if len(empty):
            diff = x - c[labels]
            err = w * np.einsum("ij,ij->i", diff, diff)
            worst = np.argsort(-err, kind="stable")[: len(empty)]
            worst = worst[err[worst] > 0]
            c[empty[: len(worst)]] = x[worst]
            if len(worst) < len(empty):  # every colour sits on a centroid: drop the rest
                c = np.delete(c, empty[len(worst) :], axis=0)
                break
        elif prev - sse <= tol * sse:
            break
        prev = sse
    return c


def _jumps(x: np.ndarray, w: np.ndarray, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Escape Lloyd's local optimum: move a cheap-to-remove centroid into a costly cluster.

    Candidates: the centroids whose removal costs least (the sum of
    count x (second-nearest - nearest distance) of their colours) and the
    clusters whose best split along their principal axis gains most.  A
    trial re-runs Lloyd and is kept only if the total error went down.
    """
    k = len(c)
    x32 = x.astype(np.float32)
    labels, d1, d2 = _nearest2(x32, c)
    sse = float(w @ d1)
    fails = 0
    for _ in range(_JUMP_TRIALS):
        removal = np.bincount(labels, weights=w * (d2 - d1), minlength=k)
        cluster_sse = np.bincount(labels, weights=w * d1, minlength=k)
        victims = np.argsort(removal, kind="stable")[:_JUMP_CANDIDATES]
        splits = []
        for m in np.argsort(-cluster_sse, kind="stable")[:_JUMP_CANDIDATES]:
            s = _best_split(x, w, np.flatnonzero(labels == m))
            if s is not None:
                splits.append((s[0], int(m), s[1], s[2]))
        splits.sort(key=lambda t: -t[0])
        pairs = [(int(j), s) for s in splits for j in victims if j != s[1]]
        if not pairs:
            break
        # deterministic best guess first; the seed picks among the others after a failure
        j, (gain, m, left, right) = pairs[0] if fails == 0 else pairs[int(rng.integers(len(pairs)))]
        trial = c.copy()
        trial[j] = left
        trial[m] = right
        trial = _lloyd(x, w, trial, iters=_JUMP_LLOYD, tol=_TOL_SMALL_K)
        t_labels, t_d1, t_d2 = _nearest2(x32, trial)
        t_sse = float(w @ t_d1)
        if t_sse < sse * (1 - 1e-7):
            c, labels, d1, d2, sse, k = trial, t_labels, t_d1, t_d2, t_sse, len(trial)
            fails = 0
        else:
            fails += 1
            if fails >= _JUMP_FAILS:
                break
    return c


def _best_split(x, w, idx):
    """(gain, left mean, right mean) of the best cut of a cluster across its principal axis."""
    if len(idx) < 2:
        return None
    xs = x[idx]
    ws = w[idx]
    total = ws.sum()
    mean = ws @ xs / total
    dev = xs - mean
    cov = (dev * ws[:, None]).T @ dev
    axis = np.linalg.eigh(cov)[1][:, -1]
    order = np.argsort(dev @ axis, kind="stable")
    xs, ws = xs[order], ws[order]
    cw = np.cumsum(ws)[:-1]
    cx = np.cumsum(ws[:, None] * xs, 0)
    lx, rx = cx[:-1], cx[-1] - cx[:-1]
    rw = total - cw
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.einsum("ij,ij->i", lx, lx) / cw + np.einsum("ij,ij->i", rx, rx) / rw
    between = np.where((cw > 0) & (rw > 0), between, -np.inf)
    i = int(between.argmax())
    if not np.isfinite(between[i]):
        return None
    gain = between[i] - total * float(mean @ mean)
    return gain, lx[i] / cw[i], rx[i] / rw[i]


# --------------------------------------------------------------------------
# finishing


def _finish(colors: np.ndarray, counts: np.ndarray, centroids: np.ndarray, *,
            premultiplied: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Round the centroids, refine the rounded codebook, assign, drop unused.

    Returns the uint8 codebook (lexicographic order, like the distinct colours
    of a lossless codebook) and the codebook index of every distinct colour:
    its nearest entry, ties to the lowest index.  With *premultiplied* (the
    last channel is alpha) the centroids are premultiplied, distances and
    means are taken over premultiplied colours, and the codebook is stored
    straight (un-premultiplied, rounded).
    """
    space = _premultiply if premultiplied else (lambda a: a)
    x = space(colors).astype(np.float32)
    w = counts.astype(np.float64)
    straight = _unpremultiply if premultiplied else (lambda a: a)
    cb = np.clip(np.rint(straight(centroids)), 0, 255).astype(np.uint8)
    labels = None
    for _ in range(_ITER_ROUND if len(cb) <= _PNN_MAX_K else 1):
        cb = _sorted_rows(cb)
        labels = _nearest(x, space(cb))[0]
        k = len(cb)
        weight = np.bincount(labels, weights=w, minlength=k)
        full = weight > 0
        means = np.stack([np.bincount(labels, weights=w * x[:, j], minlength=k)
                          for j in range(x.shape[1])], 1)[full] / weight[full, None]
        new = cb.copy()
        new[full] = np.clip(np.rint(straight(means)), 0, 255)
        if np.array_equal(new, cb):
            break
        cb = new
        labels = None
    if labels is None:
        cb = _sorted_rows(cb)
        labels = _nearest(x, space(cb))[0]
    return _drop_unused(cb, labels)


def _drop_unused(book: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entries some colour uses, and the labels renumbered to them (order kept)."""
    used = np.bincount(labels, minlength=len(book)) > 0
    remap = np.cumsum(used) - 1
    return book[used], remap[labels]


def _quantize_alpha(colors: np.ndarray, counts: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Codebook and labels for more than k colours with alpha, over premultiplied colours.

    Fully transparent colours (alpha 0) all get one entry of zeros, kept out
    of the learning so that a cluster mean can never give them a visible
    alpha; the other k - 1 entries are learned on the other colours.  At
    k = 2 that would leave one entry for everything visible, so there all
    colours are learned together.
    """
    clear = colors[:, -1] == 0
    if not clear.any() or k <= 2:
        return _finish(colors, counts, _learn_premultiplied(colors, counts, k, seed), premultiplied=True)
    rest, rest_counts = colors[~clear], counts[~clear]
    if len(rest) <= k - 1:
        book = rest
    else:
        book = _finish(rest, rest_counts, _learn_premultiplied(rest, rest_counts, k - 1, seed),
                       premultiplied=True)[0]
    zero = np.zeros((1, colors.shape[1]), np.uint8)
    book = _sorted_rows(np.concatenate([zero, book]))  # the zero row sorts first
    labels = np.zeros(len(colors), np.intp)
    if len(rest):
        labels[~clear] = _nearest(_premultiply(rest).astype(np.float32), _premultiply(book))[0]
    return _drop_unused(book, labels)


def _premultiply(colors: np.ndarray) -> np.ndarray:
    return space.premultiply(colors)


def _unpremultiply(p: np.ndarray) -> np.ndarray:
    return space.unpremultiply(p)


def _learn_premultiplied(colors: np.ndarray, counts: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Premultiplied centroids for colours with alpha (the last channel).

    The squared error of premultiplied colours is what the eye (and
    :func:`vqcodec.metrics.psnr`) sees: a colour's error counts in
    proportion to its opacity, and all fully transparent colours are one.
    k-means runs on the distinct premultiplied colours rounded to integers
    (weights summed), as :func:`_learn` does on straight colours.
    """
    pre = np.rint(_premultiply(colors)).astype(np.uint8)
    key = np.zeros(len(pre), np.int64)
    for j in range(pre.shape[1]):
        key = (key << 8) | pre[:, j]
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    weights = np.bincount(inverse.reshape(-1), weights=counts.astype(np.float64), minlength=len(first))
    pre = pre[first]
    if len(pre) <= k:
        return pre.astype(np.float64)
    return _learn(pre, weights, k, seed)


def _sorted_rows(cb: np.ndarray) -> np.ndarray:
    """The distinct rows of a uint8 matrix in lexicographic order."""
    key = np.zeros(len(cb), np.int64)
    for j in range(cb.shape[1]):
        key = (key << 8) | cb[:, j]
    _, first = np.unique(key, return_index=True)
    return cb[first]


# --------------------------------------------------------------------------
# nearest codeword


def _nearest(x: np.ndarray, centers: np.ndarray, want_dist: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Nearest center of each row of x (float32); optionally the squared distance (float64)."""
    n, c = x.shape
    k = len(centers)
    if _native is not None and k <= _BRUTE_MAX_K:
        labels = _nearest_native(x, centers)
    else:
        labels = _nearest_numpy(x, centers)
    if not want_dist:
        return labels, None
    diff = x - np.asarray(centers, np.float64)[labels]
    return labels, np.einsum("ij,ij->i", diff, diff)


def _nearest_native(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """_nearest's labels from vqcodec._quantize: float32 (x - c)^2 summed over the
    channels in order (exact for integer colours and codebooks, as the matrix
    products are), ties to the lowest index; rows split over two threads."""
    n, c = x.shape
    points = np.ascontiguousarray(x, dtype=np.float32)
    book = np.ascontiguousarray(centers, dtype=np.float64).tobytes()  # searched as float32
    labels = np.empty(n, np.int64)

    def run(lo: int, hi: int) -> None:
        _native.nearest(points[lo:hi], book, c, labels[lo:hi])

    _in_parallel(run, n, 256, n * len(centers))
    return labels.astype(np.intp, copy=False)


def _nearest_numpy(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """_nearest's labels by matrix products (and block pruning for large codebooks)."""
    n, c = x.shape
    k = len(centers)
    xa = np.ones((n, c + 1), np.float32)
    xa[:, :c] = x
    a = _augment(centers)
    labels = np.empty(n, np.intp)
    if k > _BRUTE_MAX_K and n >= _PRUNE_MIN_POINTS:
        _nearest_pruned(xa, a, centers, labels)
    else:
        rows = max(16, _BLAS_SINGLE // ((c + 1) * k))

        def run(lo: int, hi: int) -> None:
            buf = np.empty((rows, k), np.float32)
            for s in range(lo, hi, rows):
                e = min(s + rows, hi)
                d = buf[: e - s]
                np.matmul(xa[s:e], a, out=d)
                d.argmin(1, out=labels[s:e])

        _in_parallel(run, n, rows, n * k)
    return labels


def _nearest2(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest center, its squared distance and the second-nearest squared distance.

    Brute force (small codebooks); distances are exact float64 differences.
    """
    n, c = x.shape
    k = len(centers)
    cen = np.asarray(centers, np.float64)
    if k == 1:
        diff = x - cen[0]
        return np.zeros(n, np.intp), np.einsum("ij,ij->i", diff, diff), np.full(n, np.inf)
    xa = np.ones((n, c + 1), np.float32)
    xa[:, :c] = x
    a = _augment(cen)
    labels = np.empty(n, np.intp)
    second = np.empty(n, np.intp)
    rows = max(16, _BLAS_SINGLE // ((c + 1) * k))
    flat_rows = np.arange(rows) * k

    def run(lo: int, hi: int) -> None:
        buf = np.empty((rows, k), np.float32)
        flat = buf.reshape(-1)
        for s in range(lo, hi, rows):
            e = min(s + rows, hi)
            d = buf[: e - s]
            np.matmul(xa[s:e], a, out=d)
            lab = labels[s:e]
            d.argmin(1, out=lab)
            flat[flat_rows[: e - s] + lab] = np.inf
            d.argmin(1, out=second[s:e])  # numpy's argmin is faster than its min

    _in_parallel(run, n, rows, n * k)
    diff = x - cen[labels]
    d1 = np.einsum("ij,ij->i", diff, diff)
    diff = x - cen[second]
    d2 = np.einsum("ij,ij->i", diff, diff)
    return labels, d1, np.maximum(d2, d1)


def _augment(centers: np.ndarray) -> np.ndarray:
    """(C+1, k) float32: -2 c^T over ||c||^2, so that [x, 1] @ A = ||x - c||^2 - ||x||^2."""
    c64 = np.asarray(centers, np.float64)
    a = np.empty((c64.shape[1] + 1, len(c64)), np.float32)
    a[:-1] = -2.0 * c64.T
    a[-1] = np.einsum("ij,ij->i", c64, c64)
    return a


def _in_parallel(run, n: int, step: int, work: int) -> None:
    """run(lo, hi) over [0, n), split in two threads when the work is large."""
    if work < _PARALLEL_MIN or n < 2 * step:
        run(0, n)
        return
    half = (n // 2 // step) * step
    map_in_order(lambda span: run(*span), [(half, n), (0, half)], min(2, cores()))


def _kd_blocks(points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut points into compact blocks of at most ``size``: (order, block starts).

    A balanced k-d partition built in rounds: every block larger than
    ``size`` is halved at the median of its widest axis (positions ordered
    by the rounded coordinate, two stable radix sorts per round).  Blocks
    are contiguous runs of ``order``.
    """
    n, c = points.shape
    q = np.clip(np.rint(points), 0, 255).astype(np.uint8)
    order = np.arange(n)
    starts = np.zeros(1, np.intp)
    while True:
        ends = np.r_[starts[1:], n]
        big = np.flatnonzero(ends - starts > size)
        if len(big) == 0:
            return order, starts
        qo = q[order]
        lo = np.minimum.reduceat(qo, starts, axis=0)
        hi = np.maximum.reduceat(qo, starts, axis=0)
        axis = (hi.astype(np.int16) - lo).argmax(1)
        seg = np.repeat(np.arange(len(starts)), ends - starts)
        v = qo[np.arange(n), axis[seg]]
        o = np.argsort(v, kind="stable")
        seg_dtype = np.uint16 if len(starts) <= 65536 else np.int64
        o = o[np.argsort(seg[o].astype(seg_dtype), kind="stable")]
        order = order[o]
        mids = (starts[big] + ends[big]) // 2
        starts = np.sort(np.concatenate([starts, mids]))


def _nearest_pruned(xa: np.ndarray, a: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> None:
    """Exact nearest center for large codebooks, block by block.

    Centers and points are sorted in Morton order and cut into blocks with
    bounding boxes.  For a block of points, the center blocks nearest to its
    box give every point an upper bound on its nearest distance; only the
    center blocks whose box is within the largest of these bounds are
    searched.  Within a search the centers are in ascending index order, so
    ties go to the lowest index.
    """
    n, c1 = xa.shape
    c = c1 - 1
    k = len(centers)
    cen = np.asarray(centers, np.float64)
    order_c, starts_c = _kd_blocks(cen, _LEAF)
    leaves = [np.sort(ix) for ix in np.split(order_c, starts_c[1:])]
    leaf_lo = np.array([cen[ix].min(0) for ix in leaves])
    leaf_hi = np.array([cen[ix].max(0) for ix in leaves])
    leaf_mid = 0.5 * (leaf_lo + leaf_hi)
    pts = xa[:, :c].astype(np.float64)
    order_p, starts_p = _kd_blocks(pts, _BLOCK)
    ends_p = np.r_[starts_p[1:], n]
    x2 = np.einsum("ij,ij->i", pts, pts)

    def search(rows: np.ndarray, leaf_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.sort(np.concatenate([leaves[i] for i in leaf_ids]))
        d = xa[rows] @ a[:, idx]
        j = d.argmin(1)
        return idx[j], d[np.arange(len(rows)), j]

    def run(lo: int, hi: int) -> None:
        for b in range(lo, hi):
            rows = order_p[starts_p[b] : ends_p[b]]
            p = pts[rows]
            lo_b, hi_b = p.min(0), p.max(0)
            gap = np.maximum(0.0, np.maximum(leaf_lo - hi_b, lo_b - leaf_hi))
            lower = np.einsum("ij,ij->i", gap, gap)
            mid = (leaf_mid - 0.5 * (lo_b + hi_b)) ** 2
            first = np.lexsort((mid.sum(1), lower))[:_FIRST_LEAVES]
            lab1, d1 = search(rows, first)
            bound = float((d1 + x2[rows]).max())
            bound = bound * (1 + 1e-5) + 1e-3
            rest = np.flatnonzero(lower <= bound)
            rest = rest[~np.isin(rest, first)]
            if len(rest):
                lab2, d2 = search(rows, rest)
                better = (d2 < d1) | ((d2 == d1) & (lab2 < lab1))
                lab1 = np.where(better, lab2, lab1)
                d1 = np.where(better, d2, d1)
            labels[rows] = lab1

    _in_parallel(run, len(starts_p), 1, n * k)
