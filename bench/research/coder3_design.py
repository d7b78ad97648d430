"""Coder 3 design probe: fixed raw contexts + per-image clustering (a context map), static rANS.

    nice .venv/bin/python bench/research/coder3_design.py [--images kodim01,kodim05] [--k 16,64,256]

Uses index_coder_probe's symbols (7-ary candidate symbol over the distinct colours of
W, N, NE, NW, WW, NN; escape = rank in order[W] with the candidates excluded, as a
hybrid-integer token plus raw bits) and replaces its per-image tree by what a fast
decoder can evaluate: a raw context from fixed properties, mapped to one of C
clusters by a per-image map (sent as a zstd frame).  Sizes are ideal code lengths with
12-bit quantised frequencies, tables estimated as in the probe.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
import index_coder_prep as prep  # noqa: E402
import index_coder_probe as P  # noqa: E402

SCALE = 4096


def quant_cost(counts: np.ndarray) -> float:
    return P.static_bits(counts)


def cluster(raw: np.ndarray, sym: np.ndarray, a: int, C: int, iters: int = 8):
    """k-means over the histograms of the raw contexts (cross-entropy), C clusters.
    Returns (cluster of each raw context id present, cost bits incl. tables)."""
    ids, inv = np.unique(raw, return_inverse=True)
    H = np.bincount(inv * a + sym, minlength=len(ids) * a).reshape(len(ids), a).astype(np.float64)
    n = H.sum(1)
    C = min(C, len(ids))
    seeds = np.argsort(-n)[:C]
    cent = H[seeds] + 0.5
    for _ in range(iters):
        P_ = cent / cent.sum(1, keepdims=True)
        cost = -H @ np.log2(P_).T  # (ids, C)
        lab = cost.argmin(1)
        cent = np.zeros((C, a))
        np.add.at(cent, lab, H)
        cent += 0.02
    counts = np.zeros((C, a), dtype=np.int64)
    np.add.at(counts, lab, H.astype(np.int64))
    bits = P.static_bits(counts)
    return ids, lab, bits


def map_bytes(ids: np.ndarray, lab: np.ndarray, size: int) -> int:
    m = np.zeros(size, dtype=np.uint8)
    m[ids] = lab
    return len(zstandard.ZstdCompressor(level=19).compress(m.tobytes()))


def best_clustered(raw, sym, a, size):
    best = None
    for C in (4, 8, 16, 32, 64, 128):
        ids, lab, bits = cluster(raw, sym, a, C)
        total = bits / 8 + map_bytes(ids, lab, size)
        if best is None or total < best[0]:
            best = (total, C)
    return best


def design(m: P.Map):
    sym, esc, r_all, r_excl, ndist, slot_of = P.cand_streams(m)
    nb = m.nb
    w = m.w
    eqpairs = [("W", "N"), ("N", "NE"), ("W", "NW"), ("NW", "N"), ("W", "WW"), ("N", "NN"),
               ("W", "NE"), ("NW", "NE"), ("WW", "NW"), ("NN", "NE")]
    eq = np.zeros(len(sym), dtype=np.int64)
    for i, (a_, b_) in enumerate(eqpairs):
        eq |= (nb[a_] == nb[b_]).astype(np.int64) << i
    mleft = np.roll(sym, 1)
    mleft[::w] = 6
    mup = np.roll(sym, w)
    mup[:w] = 6
    dwn = np.minimum(P.log_bucket(m.dist[nb["W"], nb["N"]] // 4, 12) // 3, 3)
    out = {}
    out["eq10*mleft"] = best_clustered(eq * 7 + mleft, sym, 7, 1024 * 7)
    out["eq10*mleft*mup"] = best_clustered((eq * 7 + mleft) * 7 + mup, sym, 7, 1024 * 49)
    out["eq10*mleft*dWN4"] = best_clustered((eq * 7 + mleft) * 4 + dwn, sym, 7, 1024 * 28)
    out["eq10*mleft*mup*dWN4"] = best_clustered(((eq * 7 + mleft) * 7 + mup) * 4 + dwn, sym, 7, 1024 * 196)
    # escapes
    tok, raw = P.hybrid_uint(r_excl)
    a = int(tok.max()) + 1 if len(tok) else 1
    E = {}
    E["one"] = P.static_bits(np.bincount(tok, minlength=a)[None]) / 8 + raw.sum() / 8
    nd = ndist[esc]
    E["ndist"] = P.static_bits(P.counts_of(nd - 1, tok, 6, a)) / 8 + raw.sum() / 8
    dq = P.log_bucket(m.dist[nb["W"][esc], nb["N"][esc]] // 4, 12)
    E["dWN"] = P.static_bits(P.counts_of(dq, tok, 16, a)) / 8 + raw.sum() / 8
    E["ndist*dWN4"] = P.static_bits(P.counts_of((nd - 1) * 4 + np.minimum(dq // 3, 3), tok, 24, a)) / 8 + raw.sum() / 8
    # rank excluded, full alphabet, one table (no token)
    return out, E, int(esc.sum())


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default="kodim01,kodim05,testcard")
    ap.add_argument("--k", default="16,64,256")
    args = ap.parse_args(argv)
    wanted = set(args.images.split(","))
    import vqcodec
    from vqcodec.coders import ctx
    from PIL import Image
    for group, path in prep.images(prep.DEFAULT_CORPUS):
        if path.stem not in wanted:
            continue
        image = np.asarray(Image.open(path))
        for k in map(int, args.k.split(",")):
            cp = prep.cache_path(path, k)
            if cp.exists():
                z = np.load(cp)
                idx, book = z["indices"], z["codebook"]
            else:
                enc = vqcodec.codec.encode_pixels(image, k=k)
                idx = np.ascontiguousarray(enc.indices, dtype=np.uint8)
                book = np.ascontiguousarray(enc.codebook, dtype=np.uint8)
            c2 = len(ctx.encode(idx, book))
            m = P.Map(idx, book)
            out, E, nesc = design(m)
            line = f"{path.stem:9} k={k:<4} ctx2={c2:>7} esc={nesc:>6}"
            bestE = min(E.values())
            for name, (b, C) in out.items():
                line += f" | {name} {(b + bestE) / c2:.3f} (C={C})"
            line += " | esc " + " ".join(f"{n}={v:.0f}" for n, v in E.items())
            print(line, flush=True)


if __name__ == "__main__":
    main()
