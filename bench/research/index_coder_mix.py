"""Index coder 3 research: how much context *mixing* would add over the chain model's trees.

    nice .venv/bin/python bench/research/index_coder_mix.py [--images kodim01,kodim05] [--k 16]

An upper-bound probe (slow Python, per-bit loop): the chain model's binary
decisions (flags "X is W", "X is N", ... then the escape's index as binary
decisions down the palette order, MSB first), each predicted by several
adaptive bit models with different contexts, their stretched probabilities
mixed by an online logistic mixer (lpaq style, weights chosen by the
decision's kind), the code length being the sum of -log2 p of the bits.
Compared with the chain model's static and adaptive trees
(index_coder_probe.py) and cjxl -e 9.  A decoder would have to run the same
models and mixer per bit (several times coder 2's per-pixel work): this
measures what that cost would buy.  Needs the cache of index_coder_prep.py.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import index_coder_prep as prep  # noqa: E402
import index_coder_probe as probe  # noqa: E402


def stretch(p: float) -> float:
    return math.log(p / (1 - p))


def decisions(m: probe.Map):
    """(kind, [context ids...], bit) per binary decision, in decoding order, as arrays."""
    new_of = probe.palette_order(m, "chain")
    X = m.X
    n = len(X)
    nb = m.nb
    w = m.w
    sym, esc, r_all, r_excl, ndist, slot_of = probe.cand_streams(m)
    v = {key: new_of[val] for key, val in nb.items()}
    eq = ((nb["W"] == nb["N"]).astype(np.int64) | (nb["N"] == nb["NE"]) << 1 | (nb["W"] == nb["NW"]) << 2
          | (nb["NW"] == nb["N"]) << 3 | (nb["W"] == nb["WW"]) << 4 | (nb["N"] == nb["NN"]) << 5
          | (nb["W"] == nb["NE"]) << 6 | (nb["NW"] == nb["NE"]) << 7)
    mleft = np.roll(sym, 1)
    mleft[::w] = 6
    mup = np.roll(sym, w)
    mup[:w] = 6
    dwn = probe.log_bucket(m.dist[nb["W"], nb["N"]] // 4, 12)
    k = m.k
    # context ids (per pixel), made distinct per decision kind later
    c_eq = eq * 8 + mleft
    c_val = ((v["W"] * k + v["N"]) * k + v["NE"]) if k <= 64 else (v["W"] * k + v["N"]) * 16 + v["NE"] * 16 // k
    c_mix = (eq & 15) * 64 + mup * 8 + mleft
    c_d = dwn * 256 + (v["W"] * 16 // k) * 16 + (v["N"] * 16 // k)
    ctxs = (c_eq, c_val, c_mix, c_d)
    kinds, bits = [], []
    leafs = []  # the chain model's tree leaf of each decision (a fifth input)
    base = np.concatenate([probe.mode_props(m, sym, len(probe.CAND), slot_of, ndist, which="all"),
                           probe.value_props(m, new_of, levels=16)])
    alive = np.ones(n, dtype=bool)
    seen = []
    for j, name in enumerate(probe.CAND):
        val = nb[name]
        tested = alive.copy()
        for u in seen:
            tested &= val != u
        seen.append(val)
        idx = np.flatnonzero(tested)
        kinds.append((j, idx))
        bits.append((X[idx] == val[idx]).astype(np.int64))
        leafs.append(probe.learn_tree(base[:, idx], bits[-1], 2)[0])
        alive &= ~(tested & (X == val))
    # escape: the index in palette order, MSB first, with the prefix as part of the context
    nbits = max(1, (k - 1).bit_length())
    idx = np.flatnonzero(alive)
    xe = new_of[X[idx]]
    rp = np.concatenate([probe.rank_props(m, alive), probe.value_props(m, new_of, alive)])
    eleaf = probe.learn_tree(rp, xe, k)[0]
    for b in range(nbits - 1, -1, -1):
        kinds.append((len(probe.CAND) + (nbits - 1 - b), idx, xe >> (b + 1)))
        bits.append((xe >> b) & 1)
        leafs.append(eleaf)
    return ctxs, kinds, bits, leafs


def mixed_bits(m: probe.Map, lr: float = 0.02, limit: int = 1023) -> float:
    ctxs, kinds, bits, leafs = decisions(m)
    # interleave all decisions in pixel order (as a decoder would meet them)
    pix, kind, bit, extra, leaf = [], [], [], [], []
    for kd, b, lf in zip(kinds, bits, leafs):
        leaf.append(lf)
        if len(kd) == 2:
            j, idx = kd
            pre = np.zeros(len(idx), dtype=np.int64)
        else:
            j, idx, pre = kd
        pix.append(idx)
        kind.append(np.full(len(idx), j))
        bit.append(b)
        extra.append(pre)
    pix = np.concatenate(pix)
    kind = np.concatenate(kind)
    bit = np.concatenate(bit)
    extra = np.concatenate(extra)
    leaf = np.concatenate(leaf)
    order = np.lexsort((kind, pix))
    pix, kind, bit, extra, leaf = pix[order], kind[order], bit[order], extra[order], leaf[order]
    nk = int(kind.max()) + 1
    inputs = []
    for c in (*ctxs, None):
        c = leaf if c is None else c[pix]
        full = (c * nk + kind) * (int(extra.max()) + 1) + extra
        _, dense = np.unique(full, return_inverse=True)
        inputs.append(dense.tolist())
    ni = len(inputs)
    # adaptive bit models: 12-bit probability with state-count-dependent rate
    tables = [[2048] * (max(col) + 1) for col in inputs]
    counts = [[0] * (max(col) + 1) for col in inputs]
    weights = [[0.3] * (ni + 1) for _ in range(nk)]
    total = 0.0
    kind_l, bit_l = kind.tolist(), bit.tolist()
    for t in range(len(bit_l)):
        kd, y = kind_l[t], bit_l[t]
        st = []
        for i in range(ni):
            p = tables[i][inputs[i][t]] / 4096
            st.append(stretch(min(max(p, 1 / 4096), 4095 / 4096)))
        st.append(0.3)  # bias
        wts = weights[kd]
        dot = sum(a * b for a, b in zip(wts, st))
        dot = max(-20.0, min(20.0, dot))
        p = 1 / (1 + math.exp(-dot))
        p = min(max(p, 1 / 65536), 1 - 1 / 65536)
        total -= math.log2(p if y else 1 - p)
        err = y - p
        for i in range(ni + 1):
            wts[i] += lr * err * st[i]
        for i in range(ni):
            c = inputs[i][t]
            cnt = counts[i][c]
            rate = 1 / (cnt + 1.5)
            tables[i][c] += int(((4096 if y else 0) - tables[i][c]) * rate)
            tables[i][c] = min(4095, max(1, tables[i][c]))
            if cnt < limit:
                counts[i][c] = cnt + 1
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=prep.DEFAULT_CORPUS)
    ap.add_argument("--k", default="16")
    ap.add_argument("--images", default="kodim01")
    args = ap.parse_args(argv)
    for stem in args.images.split(","):
        for k in (int(x) for x in args.k.split(",")):
            z = np.load(prep.CACHE / f"{stem}-k{k}.npz")
            m = probe.Map(z["indices"], z["codebook"])
            over, jxl = int(z["overhead"]), int(z["jxl"])
            tree = probe.SPLIT_BITS * 0  # the trees' own bytes: a few hundred, as in the probe
            for lr in (0.002, 0.008):
                mix = mixed_bits(m, lr=lr) / 8 + tree
                print(f"{stem} k={k} lr={lr}: mixed {mix:.0f} B index data, .vqi/cjxl = {(over + mix) / jxl:.3f} "
                      f"(coder 2 today {(over + int(z['ctx'])) / jxl:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
