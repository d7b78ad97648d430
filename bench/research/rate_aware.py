"""Rate-aware index choice: replace a pixel's index by its left/up neighbour's index when the
neighbour's codeword is at most lam (squared-error units, sum over RGB) worse than the nearest codeword.
Reports zstd-19 raw-byte size relative to pngquant PNG and PSNR change vs the nearest-codeword map."""
import numpy as np, zstandard as zs
from PIL import Image
from prep import load, IMAGES, KS, CORPUS
import os

def psnr(img, pal, idx):
    e = (img.astype(np.float64) - pal[idx].astype(np.float64)) ** 2
    return 10 * np.log10(255 ** 2 / e.mean())

def smooth(img, pal, idx0, lam, iters=3):
    p = pal.astype(np.int32); im = img.astype(np.int32)
    def cost(i): return ((im - p[i]) ** 2).sum(-1)
    c0 = cost(idx0); idx = idx0.copy()
    for _ in range(iters):
        for ax in (1, 0):
            nb = np.roll(idx, 1, axis=ax)
            if ax == 1: nb[:, 0] = idx[:, 0]
            else: nb[0] = idx[0]
            ok = (nb != idx) & (cost(nb) <= c0 + lam)
            idx = np.where(ok, nb, idx)
    return idx

Z = zs.ZstdCompressor(level=19)
for k in KS:
    res = {}
    for name in IMAGES:
        idx, pal, png, _ = load(name, k)
        img = np.asarray(Image.open(os.path.join(CORPUS, name)).convert("RGB"))
        base = psnr(img, pal, idx)
        for lam in (0, 12, 27, 48, 75, 108):
            j = smooth(img, pal, idx, lam) if lam else idx
            b = len(Z.compress(j.astype(np.uint8).tobytes()))
            res.setdefault(lam, []).append((b / png, psnr(img, pal, j) - base))
    print(k, " ".join(f"lam={l}: size={np.mean([a for a,_ in v]):.3f} dPSNR={np.mean([d for _,d in v]):+.2f}" for l, v in res.items()))
