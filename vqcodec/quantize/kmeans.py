"""Weighted k-means over distinct vectors: the codebook's learning.

A vector's weight is its pixel count, so the objective is exactly the
image's squared error.

1. A *working set*: the distinct vectors, or -- when there are more than
   ``_WORK_POINTS`` -- the weighted means of the vectors in grid cells
   (the finest grid that gives few enough cells).  A smaller *seed set* is
   made the same way for the initialisation.
2. Initialisation: variance-minimising box splits of the seed set (median
   cut with the split placed where the two halves' squared error is
   smallest) into ``_OVERSPLIT * k`` boxes, then Ward's pairwise-nearest-
   neighbour merging back down to ``k`` (for ``k <= PNN_MAX_K``; larger
   codebooks keep the boxes).
3. Lloyd iterations on the seed set, then on the working set, then (if the
   working set was reduced) a few on all distinct vectors, each until the
   error improves by less than a relative tolerance.  Empty clusters are
   re-seeded with the worst-fitting vectors (largest count x distance).
4. For small codebooks (``k <= _JUMP_MAX_K``) Lloyd's local optimum is
   improved by "jumps": move the centroid whose removal costs least to
   one half of the cluster whose split gains most, re-run Lloyd, keep the
   result if the error went down.

The compiled loops of ``vqcodec._quantize`` run the box splits (bit for bit
numpy's: every sum is taken in numpy's order), Ward's merging (costs in
float64 where numpy's matrix products give float32, so a near tie may go
the other way) and Lloyd's iterations with Hamerly's bounds (the error is
numpy's up to float32 rounding); numpy here is the reference and the
fallback.  Deterministic: the same input and seed give the same centroids.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from vqcodec._native import load
from vqcodec.quantize.histogram import unique_small
from vqcodec.quantize.nearest import BLAS_SINGLE, BRUTE_MAX_K, augment, nearest, nearest2

_native = load("_quantize")

__all__ = ["PNN_MAX_K", "DEFAULT_SPEED", "SEED_ONLY_SPEED", "kmeans", "minibatch_kmeans", "ward_merge"]

# Point sets k-means runs on.
_WORK_POINTS = 1 << 17  # more distinct colours than this (and than _WORK_PER_K * k):
_WORK_PER_K = 4  # Lloyd on grid cells first
_SEED_PER_K = 256  # initialisation (box splits, merging, first Lloyd runs) on at
_SEED_MIN = 1 << 12  # most clip(_SEED_PER_K * k, _SEED_MIN, _SEED_MAX) grid cells
_SEED_MAX = 1 << 14
_GRID_MAX_DIM = 8  # longer vectors (blocks of pixels) are not reduced to grid cells
# Initialisation.
_OVERSPLIT = 4  # boxes per codebook entry before Ward merging (k <= 64: twice that)
PNN_MAX_K = 1024  # above this, the boxes are the initial codebook
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
_ITER_LARGE = 1  # k > PNN_MAX_K, on the working set (finishing adds one on all)
# Small codebooks: several starts and jumps out of local optima.
_JUMP_MAX_K = 64
_STARTS = 4  # k <= _STARTS_MAX_K: starts tried (Ward merging, then k-means++)
_STARTS_MAX_K = 32
_JUMP_TRIALS = 12
_JUMP_LLOYD = 8
_JUMP_FAILS = 3  # consecutive failed trials that end the search
_JUMP_CANDIDATES = 3  # victims and clusters to split considered per trial


DEFAULT_SPEED = 4
"""The encoder's default effort (``speed`` 1-10): 1-4 are the full search below."""
SEED_ONLY_SPEED = 9
"""From this speed k-means stops at the seed set (see :func:`_effort`)."""
_SEED_PER_K_FAST = 128  # the seed set's size from SEED_ONLY_SPEED: clip(_SEED_PER_K_FAST * k,
_SEED_MIN_FAST = 1 << 11  # _SEED_MIN_FAST, _SEED_MAX) grid cells


class Effort(NamedTuple):
    """How much of the search :func:`kmeans` runs (:func:`_effort`)."""

    seed_iters: int  # Lloyd iterations on the seed set
    work_scale: float  # on the working set: work_scale / sqrt(k)
    full_iters: int  # on all distinct colours, when the working set was reduced
    starts: int  # small codebooks: starts tried
    jumps: bool  # small codebooks: jumps out of local optima
    seed_points: tuple[int, int]  # the seed set: per entry, at least (at most _SEED_MAX)
    beyond_seed: bool  # Lloyd on the working set after the seed set


def _effort(speed: int) -> Effort:
    """What :func:`kmeans` runs at *speed*.

    Speeds 1-4 are the full search; 5-10 move linearly to 6 Lloyd
    iterations on the seed set and a working-set scale of 10, one start
    from speed 6, and from speed 8 no jumps and no final iterations on all
    colours (the finishing still assigns every colour).  From speed 9
    (:data:`SEED_ONLY_SPEED`) Lloyd runs on the seed set only, a seed set
    of half the cells for small codebooks (the same 16,384 from k = 128):
    the finishing's rounded-mean pass over every colour
    (:func:`.learn.rounds_for`) stands in for the working set's iteration.
    What it buys is README's (*Speed*, from bench/speed_bench.py).
    """
    fast = max(0, speed - DEFAULT_SPEED) / (10 - DEFAULT_SPEED)
    seed_only = speed >= SEED_ONLY_SPEED
    return Effort(
        seed_iters=round(_ITER_SEED + (6 - _ITER_SEED) * fast),
        work_scale=_ITER_WORK_SCALE + (10 - _ITER_WORK_SCALE) * fast,
        full_iters=_ITER_FULL if speed <= 6 else (1 if speed <= 7 else 0),
        starts=_STARTS if speed <= 5 else 1,
        jumps=speed <= 7,
        seed_points=(_SEED_PER_K_FAST, _SEED_MIN_FAST) if seed_only else (_SEED_PER_K, _SEED_MIN),
        beyond_seed=not seed_only,
    )


def kmeans(colors: np.ndarray, counts: np.ndarray, k: int, seed: int, *,
           speed: int = DEFAULT_SPEED) -> np.ndarray:
    """Weighted k-means centroids (float64, at most k rows) for more than k colours.

    *speed* (1-10) trades the search's effort for time (:func:`_effort`).
    """
    effort = _effort(speed)
    tol = _TOL if k > _JUMP_MAX_K else _TOL_SMALL_K
    x_all = colors.astype(np.float64)
    w_all = counts.astype(np.float64)
    work = _cells(colors, w_all, max(_WORK_POINTS, _WORK_PER_K * k))
    xw, ww = work if work is not None else (x_all, w_all)
    if k > PNN_MAX_K:
        # large codebooks: the boxes of the working set, then a little Lloyd
        labels, m = _split(xw, ww, k)
        c = _cluster_means(xw, ww, labels, m)[0]
        c = _lloyd(xw, ww, c, iters=_ITER_LARGE, tol=tol)
    else:
        per_k, least = effort.seed_points
        seed_set = _cells(colors, w_all, min(max(per_k * k, least), _SEED_MAX),
                          skip_finest=not effort.beyond_seed)
        xs, ws = seed_set if seed_set is not None and len(seed_set[0]) < len(xw) else (xw, ww)
        c = _initial(xs, ws, k)
        if k <= _JUMP_MAX_K:  # numpy.random is imported only here: it costs ~8 ms
            c = _best_start(xs, ws, c, k, np.random.default_rng(seed), starts=effort.starts,
                            iters=effort.seed_iters, jumps=effort.jumps)
        else:
            c = _lloyd(xs, ws, c, iters=effort.seed_iters, tol=tol)
        if xs is not xw and effort.beyond_seed:
            iters = max(1, round(effort.work_scale / math.sqrt(k)))
            c = _lloyd(xw, ww, c, iters=iters, tol=tol)
    if work is not None and k <= PNN_MAX_K and effort.full_iters:
        c = _lloyd(x_all, w_all, c, iters=effort.full_iters, tol=tol)
    return c


def _best_start(x: np.ndarray, w: np.ndarray, first: np.ndarray, k: int, rng: np.random.Generator, *,
                starts: int = _STARTS, iters: int = _ITER_SEED, jumps: bool = True) -> np.ndarray:
    """Small codebooks: Lloyd + jumps from several starts, keep the lowest error."""
    best, best_sse = None, math.inf
    x32 = x.astype(np.float32)
    for i in range(starts if k <= _STARTS_MAX_K else 1):
        c = first if i == 0 else _kmeanspp(x, w, k, rng)
        c = _lloyd(x, w, c, iters=iters, tol=_TOL_SMALL_K)
        if jumps:
            c = _jumps(x, w, c, rng)
        _, d = nearest(x32, c, want_dist=True)
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


def _cells(colors: np.ndarray, w: np.ndarray, limit: int, *,
           skip_finest: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted means of the colours in the finest grid with at most ``limit`` occupied cells.

    None when the colours themselves are few enough.  With *skip_finest*
    the grid of 7 bits per component is not tried (its table of 2^21 cells
    costs more than the rest of a fast seed set, and 7 bits fits in
    few images' limit).
    """
    n, c = colors.shape
    if n <= limit or c > _GRID_MAX_DIM:  # long vectors: a grid fine enough to help has no fewer cells
        return None
    for shift in range(max(2 if skip_finest else 1, 8 - 62 // c), 8):  # the key stays within 62 bits
        bits = 8 - shift
        key = (colors[:, 0] >> shift).astype(np.int64)
        for j in range(1, c):
            key <<= bits
            key |= colors[:, j] >> shift
        if c * bits <= 24:
            values, inverse = unique_small(key, 1 << (c * bits))
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
    if k > PNN_MAX_K:
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


def ward_merge(centroids: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """*centroids* (float, with their pixel *weights*) merged by Ward's rule down to *k* rows.

    The encoder's target search (:mod:`vqcodec.target`) cuts one learned
    codebook down to every smaller k this way instead of learning each anew.
    """
    return _ward_merge(np.asarray(centroids, np.float64), np.asarray(weights, np.float64), k)


def _ward_neighbours(c: np.ndarray, wt: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest other cluster of each cluster in ``rows`` under Ward's merge cost.

    cost(i, j) = ||c_i - c_j||^2 / (1/w_i + 1/w_j)
    """
    m, dim = c.shape
    a = augment(c)
    sq = a[-1]
    inv = (1.0 / wt).astype(np.float32)
    xa = np.ones((len(rows), dim + 1), np.float32)
    xa[:, :dim] = c[rows]
    out_n = np.empty(len(rows), np.intp)
    out_c = np.empty(len(rows))
    step = max(8, BLAS_SINGLE // ((dim + 1) * m))
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
    if _native is not None and 1 <= dim <= 4 and len(c) <= BRUTE_MAX_K:
        out = _native.lloyd(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(w, np.float64),
                            np.ascontiguousarray(c), dim, iters, tol)
        return np.frombuffer(out, np.float64).reshape(-1, dim).copy()
    k = len(c)
    x32 = x.astype(np.float32)
    wx = [w * x[:, j] for j in range(dim)]
    xq = float(w @ np.einsum("ij,ij->i", x, x))
    prev = math.inf
    for _ in range(iters):
        labels = nearest(x32, c)[0]
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
    labels, d1, d2 = nearest2(x32, c)
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
        t_labels, t_d1, t_d2 = nearest2(x32, trial)
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


MINIBATCH_SIZE = 4096
MINIBATCH_STEPS = 300
DEAD_AFTER = 20  # an entry that no row of this many batches in a row chose is dead


def minibatch_kmeans(x: np.ndarray, w: np.ndarray, k: int, seed: int, *, batch: int = MINIBATCH_SIZE,
                     steps: int = MINIBATCH_STEPS) -> tuple[np.ndarray, int]:
    """Mini-batch k-means (Sculley 2010) with dead entries re-seeded, as VQ-VAE codebooks are trained.

    *x* ``(n, D)`` float rows (the error space), *w* their weights (counts),
    n > k.  Each of *steps* batches draws *batch* rows by weight, assigns
    each to its nearest centre and moves every centre towards the mean of
    its rows by 1 / (rows it has seen), so early batches move it far and
    later ones little.  An entry that no row chose in :data:`DEAD_AFTER`
    batches in a row is dead: it is moved onto the row of the batch the
    codebook serves worst and starts again, so no entry stays unused (the
    "dead code" problem of VQ-VAE training).  Returns the centres and the number of re-seedings.
    Memory is one batch at a time, whatever the corpus; the result depends
    only on the inputs and *seed*.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float32)
    p = np.asarray(w, dtype=np.float64)
    p = p / p.sum()
    # the start: greedy k-means++ over a sample drawn by weight (a few rows per entry)
    first = x[rng.choice(len(x), size=min(len(x), max(batch, 8 * k)), p=p)].astype(np.float64)
    centres = _kmeanspp(first, np.ones(len(first)), k, rng)
    if len(centres) < k:  # fewer distinct rows in the sample than entries: fill from the rows
        centres = np.concatenate([centres, x[rng.choice(len(x), size=k - len(centres), replace=False)]])
    seen = np.zeros(k)
    idle = np.zeros(k, dtype=np.int64)
    reseeded = 0
    for step in range(steps):
        rows = x[rng.choice(len(x), size=batch, p=p)]
        labels, dist = nearest(rows, centres.astype(np.float32), want_dist=True)
        m = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.stack([np.bincount(labels, weights=rows[:, j], minlength=k) for j in range(x.shape[1])], 1)
        hit = m > 0
        seen += m
        rate = np.zeros(k)
        rate[hit] = m[hit] / seen[hit]
        centres[hit] += rate[hit, None] * (sums[hit] / m[hit, None] - centres[hit])
        idle = np.where(hit, 0, idle + 1)
        dead = np.flatnonzero(idle >= DEAD_AFTER)
        if len(dead) and step < steps - DEAD_AFTER:  # leave the last batches to settle
            worst = np.argsort(dist)[::-1][:len(dead)]  # the rows the codebook serves worst
            centres[dead] = rows[worst]
            seen[dead] = 0.0
            idle[dead] = 0
            reseeded += len(dead)
    return centres, reseeded
