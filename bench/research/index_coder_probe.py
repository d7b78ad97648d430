"""Index coder 3 research: ideal code lengths of candidate index models against coder 2 and cjxl.

    nice .venv/bin/python bench/research/index_coder_probe.py [--k 16,64,256] [--images kodim01,...] [--json out.json]

(First run: it calls index_coder_prep.py, which encodes the 8 Kodak photos and
3 graphics of ../shared/corpus with vqcodec's defaults and stores the decoded
pixels with ``cjxl -d 0 -e 9``, ~1 min per image and k on a shared box.)

For every cached index map (vqcodec's own, default settings) it measures the
size of the index data under several models, each an *ideal* code length
(what rANS gets within ~0.1 %) with every table or tree paid for:

* ``static``: two-pass, as coder 2 and JPEG XL: the encoder counts, sends the
  frequency tables (12-bit, as coder 2; the cost of a table is estimated as
  the bits of an Elias-gamma code of every non-zero frequency plus a presence
  map), and the stream costs ``-log2(freq/4096)`` per symbol;
* ``adaptive``: one-pass frequency counting per context, as an adaptive
  arithmetic coder does: the exact code length of a Krichevsky-Trofimov style
  estimator ``(n_s + a) / (N + A a)`` (order-independent, so computed from the
  final counts), no tables.

Printed: per model, per group (kodak, graphics) and k, the mean of
(estimated .vqi bytes) / (cjxl -e 9 bytes), where the estimated .vqi is the
file's bytes outside INDX.data (header, codebook, framing) plus the model's
bytes; the first rows are today's real coder-2 file and its estimate (a check
on the method).  See index-coder-3.md for what the rows mean and what they say.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import gammaln

sys.path.insert(0, str(Path(__file__).resolve().parent))
import index_coder_prep as prep  # noqa: E402

from vqcodec.coders import ctx, rans  # noqa: E402

LN2 = math.log(2)
SCALE = 4096
SPLIT_BITS = 12.0  # a tree node: property id and threshold, coded


# --------------------------------------------------------------------------
# Costs of count tables (rows = contexts, columns = symbols), in bits


def static_bits(counts: np.ndarray) -> float:
    """Two-pass cost of the rows of *counts*: 12-bit quantised frequencies
    (coder 2's rounding) and the tables' estimated size."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.int64))
    total = 0.0
    for row in counts:
        if not row.any():
            continue
        freq = ctx.quantize_frequencies(row) if np.count_nonzero(row) <= SCALE else row
        nz = row > 0
        total += float(-(row[nz] * np.log2(freq[nz] / SCALE)).sum())
        total += table_bits(freq)
    return total


def table_bits(freq: np.ndarray) -> float:
    """Estimated bits of one frequency table: presence map (or list) + Elias-gamma frequencies."""
    nz = freq[freq > 0]
    a = len(freq)
    presence = min(a, len(nz) * max(1.0, math.log2(a))) if len(nz) < a else 1
    return float(presence + (1 + 2 * np.floor(np.log2(nz))).sum())


def approx_static_rows(counts: np.ndarray) -> np.ndarray:
    """Fast per-row estimate of static_bits (empirical entropy + table estimate), vectorised."""
    counts = counts.astype(np.float64)
    n = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(counts > 0, counts * np.log2(np.where(counts > 0, n / counts, 1)), 0).sum(axis=-1)
        q = np.where(counts > 0, np.maximum(1, counts * SCALE / np.maximum(n, 1)), 0)
        tab = np.where(q > 0, 1 + 2 * np.floor(np.log2(np.maximum(q, 1))), 0).sum(axis=-1)
    nz = (counts > 0).sum(axis=-1)
    a = counts.shape[-1]
    presence = np.minimum(a, nz * max(1.0, math.log2(a)))
    return np.where(nz > 0, ent + tab + presence, 0.0)


def adaptive_rows(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Exact code length (bits) of adaptive KT-like counting per row."""
    counts = counts.astype(np.float64)
    a = counts.shape[-1]
    n = counts.sum(axis=-1)
    bits = gammaln(n + a * alpha) - gammaln(a * alpha) - (gammaln(counts + alpha) - gammaln(alpha)).sum(axis=-1)
    return bits / LN2


ALPHAS = (1 / 32, 1 / 8, 1 / 2)


def adaptive_bits(counts: np.ndarray, alpha: float | None = None) -> float:
    """Adaptive cost; alpha None: the best of ALPHAS (a fixed design choice per stream; the
    few bits naming it are ignored)."""
    counts = np.atleast_2d(counts)
    if alpha is not None:
        return float(adaptive_rows(counts, alpha).sum())
    return min(float(adaptive_rows(counts, al).sum()) for al in ALPHAS)


def counts_of(ctx_ids: np.ndarray, sym: np.ndarray, n_ctx: int, a: int) -> np.ndarray:
    return np.bincount(ctx_ids.astype(np.int64) * a + sym, minlength=n_ctx * a).reshape(n_ctx, a)


# --------------------------------------------------------------------------
# Context tree (JPEG XL's MA tree, without predictors): greedy splits on properties


LEARN_SAMPLES = 100_000  # the tree is learnt on about this many samples (every s-th), applied to all


def learn_tree(props: np.ndarray, sym: np.ndarray, a: int, *, adaptive: bool = False,
               alpha: float = 1 / 8, split_bits: float = SPLIT_BITS, max_leaves: int = 512,
               min_leaf: int = 64) -> tuple[np.ndarray, int]:
    """Leaf id per sample and the number of leaves.  *props* (P, n) small non-negative ints.

    A leaf is split on the property and threshold (``v <= t`` / ``v > t``) that
    saves most bits, while the saving is above *split_bits*; the cost of a leaf
    is its static (approximate) or adaptive code length.
    """
    n = len(sym)
    leaf = np.zeros(n, dtype=np.int32)
    if n == 0:
        return leaf, 1
    ranges = [int(p.max()) + 1 for p in props]

    def cost(rows: np.ndarray) -> np.ndarray:
        return adaptive_rows(rows, alpha) if adaptive else approx_static_rows(rows)

    stride = max(1, n // LEARN_SAMPLES)

    def best_split(idx: np.ndarray):
        if stride > 1:
            idx = idx[idx % stride == 0]
        s = sym[idx]
        base = cost(stride * np.bincount(s, minlength=a)[None, :])[0]
        best = (0.0, None, None)
        if len(idx) * stride < 2 * min_leaf:
            return best
        for p, r in enumerate(ranges):
            if r < 2:
                continue
            v = props[p, idx]
            c2 = np.bincount(v.astype(np.int64) * a + s, minlength=r * a).reshape(r, a)
            cum = np.cumsum(c2, axis=0)[:-1]
            tot = cum[-1] + c2[-1]
            right = tot[None, :] - cum
            nl = cum.sum(axis=1)
            ok = (nl * stride >= min_leaf) & ((len(idx) - nl) * stride >= min_leaf)
            if not ok.any():
                continue
            gain = base - cost(stride * cum) - cost(stride * right) - split_bits
            gain = np.where(ok, gain, -np.inf)
            t = int(np.argmax(gain))
            if gain[t] > best[0]:
                best = (float(gain[t]), p, t)
        return best

    import heapq
    heap = []
    all_idx = np.arange(n)
    g, p, t = best_split(all_idx)
    members = {0: all_idx}
    if p is not None:
        heapq.heappush(heap, (-g, 0, p, t))
    leaves = 1
    while heap and leaves < max_leaves:
        _, lid, p, t = heapq.heappop(heap)
        idx = members.pop(lid)
        go_right = props[p, idx] > t
        new = leaves
        leaves += 1
        leaf[idx[go_right]] = new
        members[lid] = idx[~go_right]
        members[new] = idx[go_right]
        for child in (lid, new):
            g, p2, t2 = best_split(members[child])
            if p2 is not None:
                heapq.heappush(heap, (-g, child, p2, t2))
    return leaf, leaves


def learn_flat(props: np.ndarray, sym: np.ndarray, a: int, *, max_tests: int = 12,
               adaptive: bool = False, alpha: float = 1 / 8,
               init: np.ndarray | None = None) -> tuple[np.ndarray, list]:
    """A context as a packed word of binary tests ``prop > threshold`` (an oblivious tree: the
    decoder computes the bits and looks the word up in a table), the tests chosen greedily,
    each the one that saves most (static or adaptive cost, tables counted) while it saves
    more than a test costs.  Returns (context per sample, tests)."""
    n = len(sym)
    stride = max(1, n // LEARN_SAMPLES)
    sel = np.arange(0, n, stride)
    ctxw = np.zeros(n, dtype=np.int64) if init is None else init.astype(np.int64)
    tests: list = []

    def cost(c: np.ndarray) -> float:
        rows = np.bincount(c[sel] * a + sym[sel], minlength=(int(c[sel].max()) + 1) * a).reshape(-1, a)
        rows = rows[rows.any(axis=1)] * stride
        return float((adaptive_rows(rows, alpha) if adaptive else approx_static_rows(rows)).sum())

    current = cost(ctxw)
    for _ in range(max_tests):
        best = (SPLIT_BITS, None)
        for p in range(len(props)):
            values = np.unique(props[p, sel])
            if len(values) < 2:
                continue
            if len(values) > 17:
                values = np.unique(np.quantile(props[p, sel], np.linspace(0, 1, 17)[1:-1]).astype(np.int64))
            for t in values[:-1]:
                c = ctxw * 2 + (props[p] > t)
                gain = current - cost(c)
                if gain > best[0]:
                    best = (gain, (p, int(t)))
        if best[1] is None:
            break
        p, t = best[1]
        ctxw = ctxw * 2 + (props[p] > t)
        tests.append((p, t))
        current -= best[0]
    _, dense = np.unique(ctxw, return_inverse=True)
    return dense, tests


def flat_bits(props, sym, a, *, adaptive=False, max_tests=12, init=None) -> tuple[float, int]:
    """(bits, contexts) of a stream with a packed-test context (see learn_flat): the tests
    (SPLIT_BITS each) and the contexts' tables (or learning)."""
    ctxw, tests = learn_flat(props, sym, a, max_tests=max_tests, adaptive=adaptive, init=init)
    n_ctx = int(ctxw.max()) + 1
    counts = counts_of(ctxw, sym, n_ctx, a)
    body = adaptive_bits(counts) if adaptive else static_bits(counts)
    return body + SPLIT_BITS * len(tests) + n_ctx, n_ctx


def tree_bits(props, sym, a, *, adaptive=False, max_leaves=512, split_bits=SPLIT_BITS) -> tuple[float, int]:
    """(bits, leaves) of a stream coded with a per-image context tree (tree + tables/learning)."""
    leaf, leaves = learn_tree(props, sym, a, adaptive=adaptive, max_leaves=max_leaves,
                              split_bits=split_bits)
    counts = counts_of(leaf, sym, leaves, a)
    body = adaptive_bits(counts) if adaptive else static_bits(counts)
    return body + split_bits * (leaves - 1) + 1 * leaves, leaves


# --------------------------------------------------------------------------
# Features of an index map


def log_bucket(d: np.ndarray, top: int = 15) -> np.ndarray:
    """0 for 0, else 1 + floor(log2(d)) / 1 capped (distance and rank buckets)."""
    out = np.zeros(d.shape, dtype=np.int16)
    nz = d > 0
    out[nz] = np.minimum(top, 1 + np.floor(np.log2(d[nz].astype(np.float64))).astype(np.int16))
    return out


class Map:
    """An index map, its palette and the neighbour arrays (0 outside the image, as coder 2)."""

    def __init__(self, grid: np.ndarray, book: np.ndarray):
        self.grid = grid
        self.book = book.astype(np.int64)
        self.k = len(book)
        h, w = grid.shape
        self.h, self.w = h, w
        pad = np.zeros((h + 2, w + 4), dtype=np.int64)
        pad[2:, 2:-2] = grid
        x = pad[2:, 2:-2]
        self.X = x.ravel()
        self.nb = {
            "W": pad[2:, 1:-3].ravel(), "N": pad[1:-1, 2:-2].ravel(), "NE": pad[1:-1, 3:-1].ravel(),
            "NW": pad[1:-1, 1:-3].ravel(), "WW": pad[2:, :-4].ravel(), "NN": pad[:-2, 2:-2].ravel(),
        }
        self.order = ctx.rank_order(book).astype(np.int64)  # order[a, r]
        rank = np.zeros((self.k, self.k), dtype=np.int64)
        rank[np.arange(self.k)[:, None], self.order] = np.arange(self.k)[None, :]
        self.rank = rank  # rank[a, b]: position of b in order[a]
        diff = self.book[:, None, :] - self.book[None, :, :]
        self.dist = (diff ** 2).sum(-1)  # (k, k) squared distance
        lum = self.book[:, :3] @ np.array([299, 587, 114]) if self.book.shape[1] >= 3 else self.book[:, 0] * 1000
        self.lum = lum // 1000

    def dbucket(self, a: str, b: str) -> np.ndarray:
        return log_bucket(self.dist[self.nb[a], self.nb[b]] // 4, 12)


# ---- coder 2's symbols (modes L, U, UR, UL, literal; rank from L)


def ctx2_streams(m: Map):
    L, U, UR, UL = (m.nb[n] for n in ("W", "N", "NE", "NW"))
    X = m.X
    mode = np.full(len(X), 4, dtype=np.int64)
    for value, nbv in ((3, UL), (2, UR), (1, U), (0, L)):
        mode[X == nbv] = value
    w = m.w
    mleft = np.roll(mode, 1)
    mleft[::w] = 4
    eq = (L == U).astype(np.int64) | (U == UR) << 1 | (L == UL) << 2 | (UL == U) << 3
    c = eq * 5 + mleft
    lit = mode == 4
    rank = m.rank[L[lit], X[lit]]
    return c, mode, lit, rank


# ---- candidate-list symbols: distinct colours among W, N, NE, NW, WW, NN; escape = rank


CAND = ("W", "N", "NE", "NW", "WW", "NN")


def cand_streams(m: Map, names=CAND):
    X = m.X
    nbs = [m.nb[nm] for nm in names]
    nc = len(nbs)
    n = len(X)
    slot_of = []  # slot index of neighbour j in the dedup list (or of its first equal)
    new_count = np.zeros(n, dtype=np.int64)
    firsteq = []
    for j, v in enumerate(nbs):
        s = new_count.copy()
        isnew = np.ones(n, dtype=bool)
        for i in range(j - 1, -1, -1):  # equal to an earlier one: take its slot (earliest wins)
            e = v == nbs[i]
            s = np.where(e, slot_of[i], s)
            isnew &= ~e
        slot_of.append(s)
        firsteq.append(isnew)
        new_count = new_count + isnew
    sym = np.full(n, nc, dtype=np.int64)  # escape
    for j in range(nc - 1, -1, -1):
        sym = np.where(X == nbs[j], slot_of[j], sym)
    esc = sym == nc
    ndist = new_count  # number of distinct candidates
    # escape: rank from W among all entries, excluding the candidates' colours
    W = m.nb["W"]
    r = m.rank[W[esc], X[esc]]
    excl = np.zeros(int(esc.sum()), dtype=np.int64)
    for j, v in enumerate(nbs):
        # count distinct candidates ranked before X (only each distinct one once)
        excl += (firsteq[j][esc] & (m.rank[W[esc], v[esc]] < r))
    return sym, esc, r, r - excl, ndist, slot_of


def mode_props(m: Map, sym: np.ndarray, esc_sym: int, slot_of, ndist, *, which: str = "all") -> np.ndarray:
    """Properties of each pixel for the mode/candidate tree."""
    nb = m.nb
    w = m.w
    eqpairs = [("W", "N"), ("N", "NE"), ("W", "NW"), ("NW", "N"), ("W", "WW"), ("N", "NN"),
               ("W", "NE"), ("NW", "NE"), ("WW", "NW"), ("NN", "NE")]
    props = []
    for a_, b_ in eqpairs[:4]:
        props.append(nb[a_] == nb[b_])
    if which in ("all", "eq6", "eq6+m"):
        for a_, b_ in eqpairs[4:]:
            props.append(nb[a_] == nb[b_])
    mleft = np.roll(sym, 1)
    mleft[::w] = esc_sym
    mup = np.roll(sym, w)
    mup[:w] = esc_sym
    props.append(mleft)
    if which in ("all", "eq6+m"):
        props.append(mup)
        props.append(ndist)
    if which == "all":
        props.append(m.dbucket("W", "N"))
        props.append(m.dbucket("N", "NE"))
        props.append(m.dbucket("W", "NW"))
        props.append(m.dbucket("N", "NW"))
        # escapes seen around (activity): left and up were escapes
        props.append(m.lum[nb["W"]] // 16)
    return np.array([np.asarray(p, dtype=np.int64) for p in props])


def rank_props(m: Map, esc: np.ndarray, mode_ctx: np.ndarray | None = None) -> np.ndarray:
    nb = m.nb
    W, N, NE, NW = nb["W"][esc], nb["N"][esc], nb["NE"][esc], nb["NW"][esc]
    props = [
        log_bucket(m.rank[W, N], 8),
        log_bucket(m.rank[W, NE], 8),
        log_bucket(m.rank[W, NW], 8),
        log_bucket(m.dist[W, N] // 4, 12),
        log_bucket(m.dist[W, NW] // 4, 12),
        log_bucket(m.dist[N, NE] // 4, 12),
        (W == N).astype(np.int64) | (N == NE) << 1 | (W == NW) << 2 | (NW == N) << 3,
        m.lum[W] // 16,
    ]
    if mode_ctx is not None:
        props.append(mode_ctx[esc])
    return np.array([np.asarray(p, dtype=np.int64) for p in props])


# ---- literal reference: the palette entry nearest to a predicted colour


def nearest_entry(book: np.ndarray, colours: np.ndarray) -> np.ndarray:
    out = np.empty(len(colours), dtype=np.int64)
    b = book.astype(np.int64)
    for s in range(0, len(colours), 16384):
        c = colours[s : s + 16384].astype(np.int64)
        d = ((c[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        out[s : s + 16384] = np.argmin(d, axis=1)
    return out


def predicted_reference(m: Map, esc: np.ndarray, how: str) -> np.ndarray:
    b = m.book
    W, N, NW = m.nb["W"][esc], m.nb["N"][esc], m.nb["NW"][esc]
    if how == "N":
        return N
    if how == "avg":
        col = (b[W] + b[N] + 1) // 2
    else:  # clamped gradient per channel
        g = b[W] + b[N] - b[NW]
        lo = np.minimum(b[W], b[N])
        hi = np.maximum(b[W], b[N])
        col = np.clip(g, lo, hi)
    return nearest_entry(m.book, col)


# ---- JPEG XL-like: palette sorted by luminance, residual from a predictor


def jxl_like_bits(m: Map, adaptive: bool) -> float:
    order = np.argsort(m.lum * 4096 + np.arange(m.k), kind="stable")  # entries by luminance
    new_of = np.empty(m.k, dtype=np.int64)
    new_of[order] = np.arange(m.k)
    nb = {key: new_of[v] for key, v in m.nb.items()}
    X = new_of[m.X]
    W, N, NW, NE = nb["W"], nb["N"], nb["NW"], nb["NE"]
    best = None
    for pred_name, pred in (("W", W), ("N", N), ("grad", np.clip(W + N - NW, np.minimum(W, N), np.maximum(W, N)))):
        res = (X - pred) % m.k
        props = np.array([
            W * 16 // m.k, N * 16 // m.k, np.clip(W - NW + 16, 0, 32), np.clip(NW - N + 16, 0, 32),
            np.clip(N - NE + 16, 0, 32), (W == N).astype(np.int64), (N == NE).astype(np.int64),
            (W == NW).astype(np.int64), np.clip(nb["W"] - nb["WW"] + 16, 0, 32),
        ])
        bits, _ = tree_bits(props, res, m.k, adaptive=adaptive)
        if best is None or bits < best:
            best = bits
    return best


# ---- direct index coding with a tree over neighbour values (JPEG XL's "Zero" predictor)


def palette_order(m: Map, how: str) -> np.ndarray:
    """new_of[old]: the entries' positions in a new palette order."""
    if how == "as is":
        order = np.arange(m.k)
    elif how == "luma":
        order = np.argsort(m.lum * 4096 + np.arange(m.k), kind="stable")
    else:  # "chain": greedy nearest-neighbour path from the darkest entry
        left = set(range(m.k))
        cur = int(np.argmin(m.lum))
        order = [cur]
        left.discard(cur)
        while left:
            rest = np.fromiter(left, dtype=np.int64)
            cur = int(rest[np.argmin(m.dist[cur, rest])])
            order.append(cur)
            left.discard(cur)
        order = np.array(order)
    new_of = np.empty(m.k, dtype=np.int64)
    new_of[order] = np.arange(m.k)
    return new_of


def value_props(m: Map, new_of: np.ndarray, sel: np.ndarray | None = None, levels: int = 32) -> np.ndarray:
    nb = {key: new_of[v] if sel is None else new_of[v[sel]] for key, v in m.nb.items()}
    raw = {key: m.nb[key] if sel is None else m.nb[key][sel] for key in m.nb}
    q = lambda v: v * min(levels, m.k) // m.k  # noqa: E731
    W, N, NW, NE = nb["W"], nb["N"], nb["NW"], nb["NE"]
    props = [q(W), q(N), q(NW), q(NE), q(nb["WW"]), q(nb["NN"]),
             (W == N).astype(np.int64) | (N == NE) << 1 | (W == NW) << 2 | (NW == N) << 3,
             (W == nb["WW"]).astype(np.int64) | (N == nb["NN"]) << 1,
             log_bucket(m.dist[raw["W"], raw["N"]] // 4, 12), log_bucket(m.dist[raw["N"], raw["NE"]] // 4, 12)]
    return np.array([np.asarray(p, dtype=np.int64) for p in props])


def direct_bits(m: Map, how: str, adaptive: bool = False) -> float:
    new_of = palette_order(m, how)
    return tree_bits(value_props(m, new_of), new_of[m.X], m.k, adaptive=adaptive)[0]


def cand_value_bits(m: Map, how: str = "luma", adaptive: bool = False) -> float:
    """Candidate symbol with a tree over equality + value properties; an escape codes the
    index itself (palette order *how*) with a tree over the neighbours' values."""
    sym, esc, r_all, r_excl, ndist, slot_of = cand_streams(m)
    a = len(CAND) + 1
    new_of = palette_order(m, how)
    props = np.concatenate([mode_props(m, sym, a - 1, slot_of, ndist, which="all"), value_props(m, new_of, levels=16)])
    mb, _ = tree_bits(props, sym, a, adaptive=adaptive)
    rp = np.concatenate([rank_props(m, esc), value_props(m, new_of, esc)])
    eb_x, _ = tree_bits(rp, new_of[m.X[esc]], m.k, adaptive=adaptive)
    eb_r, _ = tree_bits(rp, r_excl, m.k, adaptive=adaptive)
    return mb + min(eb_x, eb_r)


# ---- LZ77-style matches on top of a model (graphics)


def match_saving(X: np.ndarray, pixel_bits: np.ndarray, min_len: int = 4, max_chain: int = 16) -> float:
    """Bits saved by greedy LZ77 matches over the raster index sequence, each match replacing
    its pixels' model cost by a match cost (a flag, length and distance, Elias-gamma-like),
    taken only where it saves bits.  The flag costs every other pixel a little too
    (``-log2(1 - p_match)``), counted."""
    n = len(X)
    data = X.astype(np.int64)
    key = data[:-3] * 16777216 + data[1:-2] * 65536 + data[2:-1] * 256 + data[3:]
    heads: dict[int, list[int]] = {}
    i = 0
    saved = 0.0
    matches = 0
    cum = np.concatenate([[0.0], np.cumsum(pixel_bits)])
    xl = data.tolist()
    while i < n - 4:
        kk = int(key[i])
        cands = heads.get(kk)
        best_len, best_d = 0, 0
        if cands:
            for j in reversed(cands[-max_chain:]):
                ln = 0
                while i + ln < n and xl[j + ln] == xl[i + ln] and ln < 65535:
                    ln += 1
                if ln > best_len:
                    best_len, best_d = ln, i - j
        heads.setdefault(kk, []).append(i)
        if best_len >= min_len:
            cost = 2 + 2 * math.log2(best_len) + 2 * math.log2(best_d) + 2
            model = cum[i + best_len] - cum[i]
            if model > cost:
                saved += model - cost
                matches += 1
                for t in range(i + 1, min(i + best_len, n - 4)):
                    heads.setdefault(int(key[t]), []).append(t)
                i += best_len
                continue
        i += 1
    if matches:
        p = matches / n
        saved -= n * -math.log2(1 - p) + matches * -math.log2(p)
    return max(0.0, saved)


def per_pixel_static_bits(ctx_ids: np.ndarray, sym: np.ndarray, n_ctx: int, a: int) -> np.ndarray:
    counts = counts_of(ctx_ids, sym, n_ctx, a).astype(np.float64)
    tot = counts.sum(axis=1)
    return -np.log2(counts[ctx_ids, sym] / tot[ctx_ids])


# --------------------------------------------------------------------------
# The models


def leaf_pixel_bits(leaf: np.ndarray, sym: np.ndarray, a: int) -> np.ndarray:
    """Each sample's static cost -log2(n_s / N) in its leaf (tables not included)."""
    return per_pixel_static_bits(leaf, sym, int(leaf.max()) + 1, a)


def chain_bits(m: Map, *, adaptive: bool = False, names=CAND, how: str = "chain",
               want_pixels: bool = False):
    """The recommended model ("escape chain"): for each of the neighbours W, N, NE, NW, WW, NN
    whose colour has not been tested yet, a binary flag "X is this neighbour", each flag with
    its own per-image context tree over equality, value and distance properties; a pixel
    that matches none (an escape) codes its index itself (palette order *how*) or its rank
    from W's colour with the neighbours excluded, whichever is smaller for the image, with a
    tree over the neighbours' values and ranks.  Returns (bits, parts[, per-pixel bits])."""
    new_of = palette_order(m, how)
    X = m.X
    n = len(X)
    sym, esc, r_all, r_excl, ndist, slot_of = cand_streams(m)
    base = np.concatenate([mode_props(m, sym, len(CAND), slot_of, ndist, which="all"),
                           value_props(m, new_of, levels=16)])
    alive = np.ones(n, dtype=bool)
    seen: list[np.ndarray] = []
    total = 0.0
    parts = {}
    pixel = np.zeros(n) if want_pixels else None
    for nm in names:
        v = m.nb[nm]
        tested = alive.copy()
        for u in seen:
            tested &= v != u
        seen.append(v)
        flag = (X[tested] == v[tested]).astype(np.int64)
        parts["symbols"] = parts.get("symbols", 0) + len(flag)
        leaf, leaves = learn_tree(base[:, tested], flag, 2, adaptive=adaptive)
        counts = counts_of(leaf, flag, leaves, 2)
        b = (adaptive_bits(counts) if adaptive else static_bits(counts)) + (SPLIT_BITS + 1) * leaves
        total += b
        parts[nm] = b / 8
        if want_pixels:
            pixel[tested] += leaf_pixel_bits(leaf, flag, 2)
        alive &= ~(tested & (X == v))
    best = escape_bits(m, alive, new_of, adaptive=adaptive, names=names)
    total += best[0]
    parts["escape " + best[1]] = best[0] / 8
    parts["symbols"] += int(alive.sum())
    parts["symbols/pixel"] = parts.pop("symbols") / n
    if want_pixels:
        pixel[alive] += leaf_pixel_bits(best[2], best[3], int(best[3].max()) + 1) + best[4]
        return total, parts, pixel
    return total, parts


def hybrid_uint(v: np.ndarray, msb: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(token, raw bit count) per value, as JPEG XL's hybrid integers: values below
    2^(msb+1) are their own token; a larger value's token is its exponent and its *msb*
    bits below the leading one, the rest of its bits are sent raw."""
    v = np.asarray(v, dtype=np.int64)
    tok = v.copy()
    raw = np.zeros(len(v), dtype=np.int64)
    big = v >= 1 << (msb + 1)
    e = np.floor(np.log2(np.maximum(v, 1))).astype(np.int64)
    top = (v >> np.maximum(e - msb, 0)) & ((1 << msb) - 1)
    tok[big] = (1 << (msb + 1)) + (e[big] - (msb + 1)) * (1 << msb) + top[big]
    raw[big] = e[big] - msb
    return tok, raw


def excluded_rank(m: Map, sel: np.ndarray, names=CAND) -> np.ndarray:
    """For the pixels *sel* (none of whose neighbours has their colour): the rank of X in
    order[W] counting only the entries that are no neighbour's colour."""
    W = m.nb["W"][sel]
    r = m.rank[W, m.X[sel]]
    ex = np.zeros(len(r), dtype=np.int64)
    firsts: list[np.ndarray] = []
    for nm in names:
        v = m.nb[nm][sel]
        isnew = np.ones(len(r), dtype=bool)
        for u in firsts:
            isnew &= v != u
        firsts.append(v)
        ex += isnew & (m.rank[W, v] < r)
    return r - ex


def escape_bits(m: Map, alive: np.ndarray, new_of: np.ndarray, *, adaptive: bool = False, names=CAND):
    """The escapes (pixels that are none of the neighbours' colours): the smallest of
    (a) the index itself (palette order *new_of*), (b) its rank in order[W] with the
    neighbours' colours excluded, (c) that rank as a hybrid-integer token + raw bits,
    each with a tree over the neighbours' values, ranks and distances.
    Returns (bits, label, leaf, symbols, raw bits per sample)."""
    X = m.X
    rp = np.concatenate([rank_props(m, alive), value_props(m, new_of, alive)])
    excl = excluded_rank(m, alive, names)
    tok, raw = hybrid_uint(excl)
    best = None
    none = np.zeros(len(excl), dtype=np.int64)
    for label, esym, extra in (("index", new_of[X[alive]], none), ("rank", excl, none),
                               ("rank token", tok, raw)):
        if len(esym) == 0:
            return (0.0, "none", esym, esym, none)
        a = int(esym.max()) + 1
        leaf, leaves = learn_tree(rp, esym, a, adaptive=adaptive)
        counts = counts_of(leaf, esym, leaves, a)
        b = (adaptive_bits(counts) if adaptive else static_bits(counts)) + (SPLIT_BITS + 1) * leaves
        b += float(extra.sum())
        if best is None or b < best[0]:
            best = (b, label, leaf, esym, extra)
    return best


def cand_tree_bits(m: Map, *, adaptive: bool = False, how: str = "chain"):
    """The recommended model: one 7-ary symbol per pixel, "X is the 1st / 2nd / ... distinct
    colour among W, N, NE, NW, WW, NN" or escape, with a per-image tree over equality,
    mode, distance and value properties; escapes as in :func:`escape_bits`.
    Returns (bits, parts)."""
    new_of = palette_order(m, how)
    sym, esc, r_all, r_excl, ndist, slot_of = cand_streams(m)
    base = np.concatenate([mode_props(m, sym, len(CAND), slot_of, ndist, which="all"),
                           value_props(m, new_of, levels=16)])
    leaf, leaves = learn_tree(base, sym, len(CAND) + 1, adaptive=adaptive)
    counts = counts_of(leaf, sym, leaves, len(CAND) + 1)
    mb = (adaptive_bits(counts) if adaptive else static_bits(counts)) + (SPLIT_BITS + 1) * leaves
    eb = escape_bits(m, esc, new_of, adaptive=adaptive)
    parts = {"candidate": mb / 8, "leaves": leaves, "escape " + eb[1]: eb[0] / 8,
             "symbols/pixel": 1 + float(esc.mean())}
    return mb + eb[0], parts


def coded_book_saving(m: Map) -> float:
    """Bytes saved by storing the palette sorted (the "chain" order the chain model uses) as
    per-channel differences from the previous entry, each an Elias-gamma code of its
    zigzag value, instead of raw (k x channels bytes)."""
    order = np.argsort(palette_order(m, "chain"))
    book = m.book[order]
    delta = np.diff(np.vstack([np.zeros((1, book.shape[1]), dtype=np.int64), book]), axis=0)
    zig = np.where(delta >= 0, 2 * delta, -2 * delta - 1) + 1
    bits = float((1 + 2 * np.floor(np.log2(zig))).sum())
    return m.book.size - bits / 8


# mode_props(which="all") + value_props(levels=16): the properties that do not depend on the
# pixel to the left (W, WW) or the left pixel's symbol -- a decoder computes them for a whole
# row before decoding it
ROW_ONLY = (1, 3, 5, 7, 9, 11, 14, 16, 19, 20, 21, 23, 27)


def fast_bits(m: Map, *, row_tests: int = 6, esc_tests: int = 6, adaptive: bool = False):
    """Model K with a decoder-friendly context ("K fast"): the candidate symbol's context is a
    fixed 7-bit part on the left pixel (W = N, W = NW, W = NE, W = WW, the left pixel's
    symbol) packed with <= *row_tests* per-image tests on properties of the row above only;
    the escape's context <= *esc_tests* tests on row-only properties and the 4 equalities."""
    new_of = palette_order(m, "chain")
    sym, esc, r_all, r_excl, ndist, slot_of = cand_streams(m)
    props = np.concatenate([mode_props(m, sym, len(CAND), slot_of, ndist, which="all"),
                            value_props(m, new_of, levels=16)])
    nb = m.nb
    mleft = props[10]
    wpart = ((nb["W"] == nb["N"]).astype(np.int64) | (nb["W"] == nb["NW"]) << 1 | (nb["W"] == nb["NE"]) << 2
             | (nb["W"] == nb["WW"]) << 3 | mleft << 4)
    rows = props[list(ROW_ONLY)]
    mb, n1 = flat_bits(rows, sym, len(CAND) + 1, max_tests=row_tests, init=wpart, adaptive=adaptive)
    # escapes: the best form as in escape_bits, but with a packed-test context
    eprops = np.concatenate([rows[:, esc], props[24:25, esc]])
    excl = excluded_rank(m, esc)
    tok, raw = hybrid_uint(excl)
    best = None
    for esym, extra in ((new_of[m.X[esc]], 0), (excl, 0), (tok, int(raw.sum()))):
        if len(esym) == 0:
            best = 0.0
            break
        b = flat_bits(eprops, esym, int(esym.max()) + 1, max_tests=esc_tests, adaptive=adaptive)[0] + extra
        best = b if best is None else min(best, b)
    return mb + best


def evaluate(m: Map, *, lz: bool, full: bool = True) -> tuple[dict[str, float], dict]:
    """Bytes of the index data under each model (the file's other bytes are added by the
    caller), and the recommended model's parts."""
    out: dict[str, float] = {}
    # coder 2 (check): its 80 contexts, static, its table format
    c, mode, lit, rank = ctx2_streams(m)
    mc = counts_of(c, mode, 80, 5)
    rc = np.bincount(rank, minlength=m.k)[None, :]
    freq = np.zeros((80, 5), dtype=np.int64)
    bits = 0.0
    for i in np.flatnonzero(mc.any(axis=1)):
        freq[i] = ctx.quantize_frequencies(mc[i])
        nz = mc[i] > 0
        bits += float(-(mc[i][nz] * np.log2(freq[i][nz] / SCALE)).sum())
    lf = ctx.quantize_frequencies(rc[0])
    nz = rc[0] > 0
    bits += float(-(rc[0][nz] * np.log2(lf[nz] / SCALE)).sum())
    tables = len(ctx.write_tables(freq.astype(np.uint16), np.pad(lf, (0, 256 - m.k)).astype(np.uint16)))
    nbands = len(rans.bands(m.h, rans.band_rows_for(m.h, m.w)))
    out["A ctx2 static (estimate of today)"] = bits / 8 + tables + 4 + 8 * nbands
    out["B ctx2 contexts, adaptive"] = (adaptive_bits(mc) + adaptive_bits(rc)) / 8
    if full:
        out["C ctx2 + rank tree, static"] = (static_bits(mc) + tree_bits(rank_props(m, lit), rank, m.k)[0]) / 8
    sym, esc, r_all, r_excl, ndist, slot_of = cand_streams(m)
    a = len(CAND) + 1
    if full:
        for label, which in (("eq4+mleft", "eq4"), ("eq6+mleft", "eq6"), ("eq6+mleft+mup+ndist", "eq6+m"),
                             ("+dist,luma", "all")):
            props = mode_props(m, sym, a - 1, slot_of, ndist, which=which)
            mb, _ = tree_bits(props, sym, a)
            out[f"D cand6 7-ary tree[{label}] + rank table"] = (
                mb + static_bits(np.bincount(r_excl, minlength=m.k))) / 8
    props = mode_props(m, sym, a - 1, slot_of, ndist, which="all")
    mb, _ = tree_bits(props, sym, a)
    rp = rank_props(m, esc)
    if full:
        out["E cand6 7-ary tree + rank tree (no excl)"] = (mb + tree_bits(rp, r_all, m.k)[0]) / 8
    out["E cand6 7-ary tree + rank tree (excl)"] = (mb + tree_bits(rp, r_excl, m.k)[0]) / 8
    sym4, esc4, _, r4_excl, ndist4, slot4 = cand_streams(m, CAND[:4])
    if full:
        mb4, _ = tree_bits(mode_props(m, sym4, 4, slot4, ndist4, which="all"), sym4, 5)
        out["E cand4 5-ary tree + rank tree (excl)"] = (mb4 + tree_bits(rank_props(m, esc4), r4_excl, m.k)[0]) / 8
    symbols = {"ctx2": float(1 + lit.mean()), "cand6": float(1 + esc.mean()), "cand4": float(1 + esc4.mean())}
    if full:
        ref = predicted_reference(m, esc, "grad")
        out["E cand6 7-ary tree + rank tree (ref grad colour)"] = (
            mb + tree_bits(rp, m.rank[ref, m.X[esc]], m.k)[0]) / 8
    for how in (("as is", "luma", "chain") if full else ("chain",)):
        out[f"F direct index, palette {how}, value tree"] = direct_bits(m, how) / 8
    if full:
        out["G JXL-like: luma palette, residual, tree"] = jxl_like_bits(m, False) / 8
    if lz:
        bits, parts, pixel = chain_bits(m, want_pixels=True)
        out["H chain (binary flags) + escape tree, static"] = bits / 8
        out["H chain + LZ77 matches, static"] = (bits - match_saving(m.X, pixel)) / 8
    else:
        bits, parts = chain_bits(m)
        out["H chain (binary flags) + escape tree, static"] = bits / 8
    if full:
        out["H chain, palette as is"] = chain_bits(m, how="as is")[0] / 8
    if full:
        out["I chain, adaptive"] = chain_bits(m, adaptive=True)[0] / 8
    kb, kparts = cand_tree_bits(m)
    if full:
        out["K fast: fixed W-part + 6 row tests; escape 6 tests, static"] = fast_bits(m) / 8
    if full:  # the candidate stream's context from <= 12 packed tests (a table look-up) instead of a tree
        new_of = palette_order(m, "chain")
        base = np.concatenate([mode_props(m, sym, len(CAND), slot_of, ndist, which="all"),
                               value_props(m, new_of, levels=16)])
        fb, _ = flat_bits(base, sym, len(CAND) + 1)
        out["K flat: candidate context = 12 packed tests, static"] = (
            kb - kparts["candidate"] * 8 + fb - 0) / 8
    out["K cand6 7-ary + value props + escape tree, static"] = kb / 8
    out["K same, adaptive"] = ka = cand_tree_bits(m, adaptive=True)[0] / 8
    out["L K static + coded palette"] = kb / 8 - coded_book_saving(m)
    out["L K adaptive + coded palette"] = ka - coded_book_saving(m)
    parts.update({"K " + key: v for key, v in kparts.items()})
    parts.update({f"symbols/pixel {key}": v for key, v in symbols.items()})
    return out, parts


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=prep.DEFAULT_CORPUS)
    ap.add_argument("--k", default="16,64,256")
    ap.add_argument("--images", default="", help="comma-separated stems (default: all)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="only the main models (A, B, E, F chain, H, K, L)")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    wanted = set(filter(None, args.images.split(",")))
    prep.prep(args.corpus, ks, only=wanted)
    rows = []
    for group, path in prep.images(args.corpus):
        if wanted and path.stem not in wanted:
            continue
        for k in ks:
            z = np.load(prep.cache_path(path, k))
            t0 = time.perf_counter()
            m = Map(z["indices"], z["codebook"])
            res, parts = evaluate(m, lz=group == "graphics", full=not args.quick)
            over = int(z["overhead"])
            row = {"group": group, "image": path.stem, "k": k, "jxl": int(z["jxl"]), "webp": int(z["webp"]),
                   "vqi": int(z["vqi"]), "coder": int(z["coder"]), "ctx2": int(z["ctx"]), "overhead": over,
                   "chain_parts": {key: round(v, 2) for key, v in parts.items()},
                   "models": {"today: .vqi as encoded (auto coder)": int(z["vqi"]),
                              "today: coder 2 real": over + int(z["ctx"]),
                              **{name: over + v for name, v in res.items()}}}
            rows.append(row)
            print(f"{group:9} {path.stem:9} k={k:<4} jxl={row['jxl']:>7} ctx2={row['ctx2']:>7} "
                  f"est={res['A ctx2 static (estimate of today)']:>9.0f} "
                  f"chain={res['H chain (binary flags) + escape tree, static']:>9.0f} "
                  f"({time.perf_counter() - t0:.0f} s) chain parts {row['chain_parts']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print_table(rows, ks)
    return 0


def print_table(rows, ks) -> None:
    names = list(dict.fromkeys(name for r in rows for name in r["models"]))
    groups = [g for g in prep.GROUPS if any(r["group"] == g for r in rows)]
    cols = [(g, k) for g in groups for k in ks if any(r["group"] == g and r["k"] == k for r in rows)]
    head = f"{'mean .vqi bytes / cjxl -d 0 -e 9 bytes (same pixels)':56}" + "".join(
        f"{g[:5]} k={k:<4}"[:12].rjust(12) for g, k in cols)
    print("\n" + head)
    for name in names:
        cells = []
        for g, k in cols:
            sel = [r for r in rows if r["group"] == g and r["k"] == k and r["jxl"] > 0 and name in r["models"]]
            cells.append(f"{np.mean([r['models'][name] / r['jxl'] for r in sel]):12.3f}" if sel else " " * 12)
        print(f"{name[:56]:56}" + "".join(cells))
    cells = []
    for g, k in cols:
        sel = [r for r in rows if r["group"] == g and r["k"] == k and r["webp"] > 0]
        cells.append(f"{np.mean([r['webp'] / r['jxl'] for r in sel]):12.3f}")
    print(f"{'(cwebp -lossless -z 9, for reference)':56}" + "".join(cells))


if __name__ == "__main__":
    sys.exit(main())
