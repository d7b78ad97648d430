import numpy as np, zstandard as zs, lzma
from prep import load, IMAGES, KS
Z = zs.ZstdCompressor(level=19)
def zl(b): return len(Z.compress(b))

def neigh(x):
    pad = np.pad(x, ((1, 0), (1, 1)), mode="constant", constant_values=-1)
    return pad[1:, :-2], pad[:-1, 1:-1], pad[:-1, :-2], pad[:-1, 2:]

def modes(x, preds):
    """mode = index of first pred equal to x, else len(preds)."""
    m = np.full(x.shape, len(preds), np.uint8)
    for i in reversed(range(len(preds))):
        m[x == preds[i]] = i
    return m

def pack2(m):  # 4 modes per byte
    f = m.ravel(); f = np.pad(f, (0, (-len(f)) % 4))
    f = f.reshape(-1, 4)
    return (f[:, 0] | f[:, 1] << 2 | f[:, 2] << 4 | f[:, 3] << 6).astype(np.uint8).tobytes()

def pack_base(m, b, per):
    f = m.ravel().astype(np.int64); f = np.pad(f, (0, (-len(f)) % per)).reshape(-1, per)
    v = np.zeros(len(f), np.int64)
    for i in range(per): v = v * b + f[:, i]
    return v.astype(np.uint8).tobytes()

def variants(x, k):
    L, U, UL, UR = neigh(x)
    out = {}
    out["raw"] = zl(x.astype(np.uint8).tobytes())
    m = modes(x, [L, U])
    lit = x[m == 2]
    out["LU_tok1"] = zl(np.where(m == 2, x + 2, m).astype(np.uint8).tobytes()) if k <= 254 else np.nan
    out["LU_split_b"] = zl(m.tobytes()) + zl(lit.astype(np.uint8).tobytes())
    out["LU_split_p"] = zl(pack_base(m, 3, 5)) + zl(lit.astype(np.uint8).tobytes())
    m = modes(x, [U, L])
    out["UL_split_p"] = zl(pack_base(m, 3, 5)) + zl(x[m == 2].astype(np.uint8).tobytes())
    m = modes(x, [L, U, UR])
    out["LUUR_split_p"] = zl(pack2(m)) + zl(x[m == 3].astype(np.uint8).tobytes())
    m = modes(x, [L, U, UL])
    out["LUUL_split_p"] = zl(pack2(m)) + zl(x[m == 3].astype(np.uint8).tobytes())
    m = modes(x, [L, U, UR, UL])
    out["LUURUL_split_p"] = zl(pack_base(m, 5, 3)) + zl(x[m == 4].astype(np.uint8).tobytes())
    out["LUURUL_modes"] = zl(pack_base(m, 5, 3)); out["LUURUL_lits"] = zl(x[m == 4].astype(np.uint8).tobytes())
    out["LUURUL_nlit"] = (m == 4).sum()
    # combined one frame
    out["LUUR_1frame"] = zl(pack2(modes(x, [L, U, UR])) + x[modes(x, [L, U, UR]) == 3].astype(np.uint8).tobytes())
    out["upfilt"] = zl(((x - np.vstack([x[:1] * 0, x[:-1]])) % k).astype(np.uint8).tobytes())
    return out

for k in KS:
    res = {}
    for name in IMAGES:
        idx, pal, png, _ = load(name, k)
        r = variants(idx.astype(np.int64), k)
        for a, v in r.items():
            res.setdefault(a, []).append(v / png)
    print(k, {a: round(float(np.mean(v)), 3) for a, v in res.items()})
