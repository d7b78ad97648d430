"""The nearest codeword: each vector's nearest codebook entry (squared Euclidean, ties to the lowest index).

``vqcodec._quantize`` (C) computes each vector's float32 ``(x - c)^2``
summed over the components against blocks of 8 entries at once, without
the vectors x entries matrix.  Without it (and for codebooks above
:data:`BRUTE_MAX_K` entries), numpy:
``argmin_j ||x||^2 - 2 x.c_j + ||c_j||^2`` as one float32 matrix product
per chunk of rows.  Both are exact for integer vectors and codebooks
(every partial sum is an integer below 2**24), so they agree there.
numpy's chunks are small enough that OpenBLAS runs each single-threaded;
either way the rows are split over two threads (results do not depend on
the split).  For large codebooks the vectors and the codebook are cut into
Morton-ordered blocks, and a block of vectors only looks at codebook blocks
whose bounding box can hold a nearer entry (exact, bounded memory).
"""

from __future__ import annotations

import numpy as np

from vqcodec._native import load
from vqcodec._threads import cores, map_in_order

_native = load("_quantize")  # the loops in C (vqcodec/_quantize.c); numpy below is the reference

__all__ = ["BRUTE_MAX_K", "BLAS_SINGLE", "nearest", "nearest2", "in_parallel", "augment"]

# Nearest codeword.
BLAS_SINGLE = 262144  # OpenBLAS runs a GEMM single-threaded when m*n*k <= this
BRUTE_MAX_K = 1024  # larger codebooks: block-pruned search
_PRUNE_MIN_POINTS = 4096  # fewer colours than this: brute force anyway
_LEAF = 64  # codebook entries per block (pruned search)
_BLOCK = 128  # colours per block (pruned search)
_FIRST_LEAVES = 4  # codebook blocks searched first, to bound the rest
_PARALLEL_MIN = 1 << 21  # distance computations below which one thread is used

def nearest(x: np.ndarray, centers: np.ndarray, want_dist: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Nearest center of each row of x (float32); optionally the squared distance (float64)."""
    n, c = x.shape
    k = len(centers)
    if _native is not None and k <= BRUTE_MAX_K and 1 <= c <= 4:  # the C loops know 1 to 4 components
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

    in_parallel(run, n, 256, n * len(centers))
    return labels.astype(np.intp, copy=False)


def _nearest_numpy(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """_nearest's labels by matrix products (and block pruning for large codebooks)."""
    n, c = x.shape
    k = len(centers)
    xa = np.ones((n, c + 1), np.float32)
    xa[:, :c] = x
    a = augment(centers)
    labels = np.empty(n, np.intp)
    if k > BRUTE_MAX_K and n >= _PRUNE_MIN_POINTS:
        _nearest_pruned(xa, a, centers, labels)
    else:
        rows = max(16, BLAS_SINGLE // ((c + 1) * k))

        def run(lo: int, hi: int) -> None:
            buf = np.empty((rows, k), np.float32)
            for s in range(lo, hi, rows):
                e = min(s + rows, hi)
                d = buf[: e - s]
                np.matmul(xa[s:e], a, out=d)
                d.argmin(1, out=labels[s:e])

        in_parallel(run, n, rows, n * k)
    return labels


def nearest2(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    a = augment(cen)
    labels = np.empty(n, np.intp)
    second = np.empty(n, np.intp)
    rows = max(16, BLAS_SINGLE // ((c + 1) * k))
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

    in_parallel(run, n, rows, n * k)
    diff = x - cen[labels]
    d1 = np.einsum("ij,ij->i", diff, diff)
    diff = x - cen[second]
    d2 = np.einsum("ij,ij->i", diff, diff)
    return labels, d1, np.maximum(d2, d1)


def augment(centers: np.ndarray) -> np.ndarray:
    """(C+1, k) float32: -2 c^T over ||c||^2, so that [x, 1] @ A = ||x - c||^2 - ||x||^2."""
    c64 = np.asarray(centers, np.float64)
    a = np.empty((c64.shape[1] + 1, len(c64)), np.float32)
    a[:-1] = -2.0 * c64.T
    a[-1] = np.einsum("ij,ij->i", c64, c64)
    return a


def in_parallel(run, n: int, step: int, work: int) -> None:
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

    in_parallel(run, len(starts_p), 1, n * k)
