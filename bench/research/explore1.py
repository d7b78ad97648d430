import numpy as np, zstandard as zs, lzma, bz2, time
from prep import load, IMAGES, KS

def H(counts):
    p = counts[counts > 0] / counts.sum()
    return -(counts[counts > 0] * np.log2(p)).sum()

def condH(x, *ctx, k):
    # static conditional entropy in bits (no model cost)
    key = np.zeros(x.shape, np.int64)
    for c in ctx:
        key = key * k + c
    key = key * k + x
    _, cnt = np.unique(key.ravel(), return_counts=True)
    keyc = key // k
    _, cntc = np.unique(keyc.ravel(), return_counts=True)
    return (-(cnt * np.log2(cnt)).sum() + (cntc * np.log2(cntc)).sum())

for k in KS:
    res = {}
    for name in IMAGES:
        idx, pal, png, _ = load(name, k)
        x = idx.astype(np.int64)
        pad = np.pad(x, ((1, 0), (1, 1)), mode="edge")
        L = pad[1:, :-2]; U = pad[:-1, 1:-1]; UL = pad[:-1, :-2]; UR = pad[:-1, 2:]
        r = dict(
            png=png,
            zstd19=len(zs.ZstdCompressor(level=19).compress(idx.tobytes())),
            zstd22=len(zs.ZstdCompressor(level=22).compress(idx.tobytes())),
            lzma=len(lzma.compress(idx.tobytes(), preset=9 | lzma.PRESET_EXTREME)),
            bz2=len(bz2.compress(idx.tobytes(), 9)),
            H0=H(np.bincount(x.ravel())) / 8,
            H_L=condH(x, L, k=k) / 8,
            H_LU=condH(x, L, U, k=k) / 8,
            H_LUUL=condH(x, L, U, UL, k=k) / 8 if k <= 64 else np.nan,
            H_LUURUL=condH(x, L, U, UR, UL, k=k) / 8 if k <= 16 else np.nan,
        )
        for a, v in r.items():
            res.setdefault(a, []).append(v / png)
    print(k, {a: round(float(np.mean(v)), 3) for a, v in res.items()})
