import numpy as np, zstandard as zs
from prep import load, IMAGES, KS
Z = zs.ZstdCompressor(level=19)
def zl(b): return len(Z.compress(b))
def H0(a):
    c = np.bincount(a.ravel()); c = c[c > 0]; return float(-(c * np.log2(c / c.sum())).sum() / 8)

def neigh(x):
    pad = np.pad(x, ((1, 0), (1, 1)), mode="edge")
    return pad[1:, :-2], pad[:-1, 1:-1], pad[:-1, :-2], pad[:-1, 2:]

def near_table(pal):
    p = pal.astype(np.float64)
    d = ((p[:, None, :] - p[None, :, :]) ** 2 * np.array([0.299, 0.587, 0.114])).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")           # order[u, r] = r-th nearest colour to u
    rank = np.empty_like(order); rank[np.arange(len(p))[:, None], order] = np.arange(len(p))
    return order, rank

def pack_base(m, b, per):
    f = m.ravel().astype(np.int64); f = np.pad(f, (0, (-len(f)) % per)).reshape(-1, per)
    v = np.zeros(len(f), np.int64)
    for i in range(per): v = v * b + f[:, i]
    return v.astype(np.uint8).tobytes()

for k in KS:
    res = {}
    for name in IMAGES:
        idx, pal, png, _ = load(name, k)
        x = idx.astype(np.int64); kk = len(pal)
        L, U, UL, UR = neigh(x)
        order, rank = near_table(pal)
        r = {}
        m = np.full(x.shape, 3, np.int64)
        for i, p in reversed(list(enumerate([L, U, UR]))):
            m[x == p] = i
        lit = x[m == 3]; litU = U[m == 3]
        rk = rank[litU, lit]
        r["modes_zstd"] = zl(pack_base(m, 4, 4)); r["modes_H0"] = H0(m) 
        r["lit_raw_zstd"] = zl(lit.astype(np.uint8).tobytes()); r["lit_raw_H0"] = H0(lit)
        r["lit_rankU_zstd"] = zl(rk.astype(np.uint8).tobytes()); r["lit_rankU_H0"] = H0(rk)
        # conditional entropy of mode given (L==U, U==UR, L==UL)
        c = (L == U) * 1 + (U == UR) * 2 + (L == UL) * 4 + (UL == U) * 8
        key = c * 4 + m
        cnt = np.bincount(key.ravel()); cc = np.bincount(c.ravel())
        r["modes_Hctx"] = float((-(cnt[cnt>0]*np.log2(cnt[cnt>0])).sum() + (cc[cc>0]*np.log2(cc[cc>0])).sum())/8)
        # single-stream rank token: pos in [L,U,UR] else 3+rank
        tok = np.where(m < 3, m, 3 + rank[U, x])
        if kk <= 253:
            r["tok_zstd"] = zl(tok.astype(np.uint8).tobytes())
        r["tok_H0"] = H0(tok)
        for a, v in r.items():
            res.setdefault(a, []).append(v / png)
    print(k, {a: round(float(np.mean(v)), 3) for a, v in res.items()})
