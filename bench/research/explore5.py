import numpy as np
from prep import load, IMAGES, KS
from explore4 import near_table, symbolize
def H0(a):
    c = np.bincount(a.ravel()); c = c[c > 0]; return float(-(c * np.log2(c / c.sum())).sum() / 8)
def Hc(x, ctx):
    key = ctx.astype(np.int64) * 70000 + x
    _, c = np.unique(key, return_counts=True); _, cc = np.unique(ctx, return_counts=True)
    return float((-(c * np.log2(c)).sum() + (cc * np.log2(cc)).sum()) / 8)

for k in KS:
    res = {}
    for name in IMAGES:
        idx, pal, png, _ = load(name, k)
        x = idx.astype(np.int64); kk = len(pal)
        order = near_table(pal); rankof = np.empty_like(order); rankof[np.arange(kk)[:, None], order] = np.arange(kk)
        # E pass at s=1 sublattice rows odd, cols even (U,D,L,R)
        t = x[1:-1, 1:-1]; U = x[:-2, 1:-1]; D = x[2:, 1:-1]; L = x[1:-1, :-2]; R = x[1:-1, 2:]
        nb = np.stack([U, D, L, R], -1).reshape(-1, 4); t = t.ravel()
        m, cls, c0 = symbolize(t, nb)
        lit = m == 4
        p = pal.astype(np.float64)
        avg = p[nb[lit]].mean(1)
        d = ((avg[:, None, :] - p[None]) ** 2).sum(-1)
        mid = np.argmin(d, 1)
        tl = t[lit]
        dx = d[np.arange(len(tl)), tl]
        rank_avg = (d < dx[:, None]).sum(1)
        r = dict(frac_lit=lit.mean(), mode_H_cls=Hc(m, cls) / len(t) * 8, lit_raw=H0(tl) / lit.sum() * 8,
                 lit_rank_c0=H0(rankof[c0[lit], tl]) / lit.sum() * 8,
                 lit_rank_mid=H0(rankof[mid, tl]) / lit.sum() * 8,
                 lit_rank_avgexact=H0(rank_avg) / lit.sum() * 8,
                 lit_H_given_UD=Hc(tl, nb[lit, 0] * kk + nb[lit, 1]) / lit.sum() * 8)
        for a, v in r.items():
            res.setdefault(a, []).append(v)
    print(k, {a: round(float(np.mean(v)), 3) for a, v in res.items()})
