"""Sweep of rate-aware index choice (vqcodec.rdo's rule) on our quantizer's Kodak maps.

    .venv/bin/python bench/research/rdo_sweep.py [main1|main2|main3|main4]

Caches quantizations and pngquant --nofs results in /tmp/rdo_cache.  Prints,
per variant, bzip2 stripe-2 bytes (+ codebook + 70 bytes of framing) over
pngquant's PNG bytes at k = 16/64/256, the PSNR difference to pngquant and
the mean per-image BD-rate against pngquant.  main1: absolute threshold
(rate_aware.py's rule); main2: relative slack or a threshold scaled by the
image's mean error; main3/main4: both together and the iteration count.
Chosen: alpha 0.75, rel 0.25, 4 iterations (main4's first row).  main5: the
same maps under zstd-19; main6: right/lower neighbours as candidates too;
main7: diagonal neighbours; main8: refitting the codebook to the smoothed
map.  main6-8 gain at most 1 % or 0.005 dB for 1.5-3x the time: not taken.
"""
import bz2, os, pickle, subprocess, sys, time
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from vqcodec import packing, rd
from vqcodec.quantize import quantize

CORPUS = "/work/shared/corpus/kodak"
IMAGES = [f"kodim{i:02d}.png" for i in range(1, 9)]
KS = (16, 64, 256)
CACHE = "/tmp/rdo_cache"


def psnr(img, rec):
    mse = np.mean((img.astype(np.float64) - rec.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / mse)


def load_all():
    os.makedirs(CACHE, exist_ok=True)
    out = {}
    for name in IMAGES:
        img = np.asarray(Image.open(os.path.join(CORPUS, name)).convert("RGB"))
        for k in KS:
            f = os.path.join(CACHE, f"{name}_{k}.pkl")
            if not os.path.exists(f):
                t = time.perf_counter(); q = quantize(img, k=k); tq = time.perf_counter() - t
                pq = os.path.join(CACHE, f"{name}_{k}_pq.png")
                subprocess.run(["pngquant", "--nofs", str(k), "--force", "-o", pq, os.path.join(CORPUS, name)], check=True)
                dec = np.asarray(Image.open(pq).convert("RGB"))
                with open(f, "wb") as fh:
                    pickle.dump(dict(cb=q.codebook, idx=q.indices, tq=tq, pq_bytes=os.path.getsize(pq),
                                     pq_psnr=psnr(img, dec)), fh)
            with open(f, "rb") as fh:
                out[name, k] = pickle.load(fh)
        out[name] = img
    return out


def bz_size(idx):
    b = packing.pack(idx, bits=8 if idx.max() < 256 else 16, layout=packing.STRIPES)
    return len(bz2.compress(b, 9))


def report(data, variant, label):
    rows = {}
    for name in IMAGES:
        img = data[name]
        for k in KS:
            d = data[name, k]
            idx = variant(img, d["cb"], d["idx"], k)
            size = bz_size(idx) + d["cb"].size + 70
            rows[name, k] = (size, psnr(img, d["cb"][idx]), d["pq_bytes"], d["pq_psnr"])
    ratios = {k: np.mean([rows[n, k][0] / rows[n, k][2] for n in IMAGES]) for k in KS}
    dps = {k: np.mean([rows[n, k][1] - rows[n, k][3] for n in IMAGES]) for k in KS}
    bds = [rd.bd_rate([rows[n, k][2] for k in KS], [rows[n, k][3] for k in KS],
                      [rows[n, k][0] for k in KS], [rows[n, k][1] for k in KS]) for n in IMAGES]
    bds = [b for b in bds if b is not None]
    print(f"{label:28s} " + " ".join(f"k{k}:{ratios[k]:.3f}({dps[k]:+.2f}dB)" for k in KS)
          + f"  BD {np.mean(bds):+.1f}% (n={len(bds)})", flush=True)
    return rows


def identity(img, cb, idx, k):
    return idx


def smooth(lam, iters=3, rel=0.0):
    def f(img, cb, idx0, k):
        p = cb.astype(np.int32); im = img.astype(np.int32)
        def cost(i): return ((im - p[i]) ** 2).sum(-1)
        c0 = cost(idx0); idx = idx0.copy(); thr = c0 * (1 + rel) + lam
        for _ in range(iters):
            for ax in (1, 0):
                nb = np.roll(idx, 1, axis=ax)
                if ax == 1: nb[:, 0] = idx[:, 0]
                else: nb[0] = idx[0]
                ok = (nb != idx) & (cost(nb) <= thr)
                idx = np.where(ok, nb, idx)
        return idx
    return f


def main1():
    data = load_all()
    report(data, identity, "nearest (today)")
    for lam in (12, 27, 48, 75, 108, 150):
        report(data, smooth(lam), f"lam={lam}")


def smooth_scaled(alpha, rel=0.0, iters=3):
    def f(img, cb, idx0, k):
        p = cb.astype(np.int32); im = img.astype(np.int32)
        lam = alpha * float(((im - p[idx0]) ** 2).sum(-1).mean())
        return smooth(lam, iters, rel)(img, cb, idx0, k)
    return f


def main2():
    data = load_all()
    report(data, identity, "nearest (today)")
    for rel in (0.25, 0.5, 1.0):
        report(data, smooth(0, rel=rel), f"rel={rel}")
    for a in (0.1, 0.25, 0.5, 1.0, 2.0):
        report(data, smooth_scaled(a), f"alpha={a}")
def main3():
    data = load_all()
    for a, rel, it in ((1.0, 0, 1), (1.0, 0, 2), (0.75, 0.25, 3), (1.0, 0.25, 3), (1.25, 0, 3), (1.5, 0, 3)):
        report(data, smooth_scaled(a, rel, it), f"alpha={a} rel={rel} it={it}")


def main4():
    data = load_all()
    for a, rel, it in ((0.75, 0.25, 4), (0.75, 0.25, 6), (0.5, 0.5, 4)):
        report(data, smooth_scaled(a, rel, it), f"alpha={a} rel={rel} it={it}")


def zstd_size(idx, level=19):
    import zstandard
    c = zstandard.ZstdCompressor(level=level)
    bits = 8 if idx.max() < 256 else 16
    sizes = [len(c.compress(packing.pack(idx, bits=bits, layout=lay))) for lay in (packing.STRIPES, packing.BYTES)]
    if int(idx.max()) < 16:
        sizes.append(len(c.compress(packing.pack(idx, bits=4, layout=packing.PACKED))))
    return min(sizes)


def main5():
    """zstd-19 (smallest of stripes, bytes and, for k <= 16, packed) on smoothed maps."""
    global bz_size
    data = load_all()
    bz_size = zstd_size
    report(data, identity, "zstd nearest")
    for a, rel, it in ((0.75, 0.25, 4), (1.0, 0.33, 4), (1.25, 0.42, 4), (1.5, 0.5, 4), (2.0, 0.67, 4)):
        report(data, smooth_scaled(a, rel, it), f"zstd alpha={a} rel={rel} it={it}")


def smooth4(alpha, rel, iters=4, dirs="LURD"):
    """As smooth_scaled, with right (R) and lower (D) neighbours as candidates too."""
    def f(img, cb, idx0, k):
        p = cb.astype(np.int32); im = img.astype(np.int32)
        def cost(i): return ((im - p[i]) ** 2).sum(-1)
        c0 = cost(idx0); idx = idx0.copy(); thr = c0 * (1 + rel) + alpha * c0.mean()
        for _ in range(iters):
            for d in dirs:
                nb = idx.copy()
                if d == "L": nb[:, 1:] = idx[:, :-1]
                if d == "R": nb[:, :-1] = idx[:, 1:]
                if d == "U": nb[1:] = idx[:-1]
                if d == "D": nb[:-1] = idx[1:]
                if d == "A": nb[1:, 1:] = idx[:-1, :-1]  # up-left
                if d == "B": nb[1:, :-1] = idx[:-1, 1:]  # up-right
                ok = (nb != idx) & (cost(nb) <= thr)
                idx = np.where(ok, nb, idx)
        return idx
    return f


def main6():
    global bz_size
    data = load_all()
    for coder in ("bz2", "zstd"):
        if coder == "zstd":
            bz_size = zstd_size
        for dirs in ("LURD", "LULURD"):
            report(data, smooth4(0.75, 0.25, 4, dirs), f"{coder} {dirs}")


def main7():
    """Diagonal neighbours as candidates too (A up-left, B up-right), bzip2."""
    data = load_all()
    for dirs in ("LU", "LUAB", "ABLU"):
        report(data, smooth4(0.75, 0.25, 4, dirs), f"bz2 {dirs}")


def refit(img, idx, cb):
    """Each entry := the rounded mean of the pixels mapped to it (unused entries kept)."""
    n, c = cb.shape
    flat = idx.ravel()
    cnt = np.bincount(flat, minlength=n)
    out = cb.copy()
    used = cnt > 0
    for ch in range(c):
        s = np.bincount(flat, weights=img[..., ch].ravel().astype(np.float64), minlength=n)
        out[used, ch] = np.clip(np.floor(s[used] / cnt[used] + 0.5), 0, 255)
    return out


def main8():
    """smooth, then refit the codebook to the smoothed map (same bytes but the BOOK)."""
    data = load_all()
    for label, post in (("smooth", False), ("smooth+refit", True)):
        rows = {}
        for name in IMAGES:
            img = data[name]
            for k in KS:
                d = data[name, k]
                idx = smooth_scaled(0.75, 0.25, 4)(img, d["cb"], d["idx"], k)
                cb = refit(img, idx, d["cb"]) if post else d["cb"]
                rows[name, k] = (bz_size(idx) + cb.size + 70, psnr(img, cb[idx]), d["pq_bytes"], d["pq_psnr"])
        dps = {k: np.mean([rows[n, k][1] - rows[n, k][3] for n in IMAGES]) for k in KS}
        bds = [rd.bd_rate([rows[n, k][2] for k in KS], [rows[n, k][3] for k in KS],
                          [rows[n, k][0] for k in KS], [rows[n, k][1] for k in KS]) for n in IMAGES]
        print(label, " ".join(f"k{k}:{dps[k]:+.3f}dB" for k in KS), f"BD {np.mean(bds):+.2f}%")


if __name__ == "__main__":
    globals()[sys.argv[1] if len(sys.argv) > 1 else "main2"]()
