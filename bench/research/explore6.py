"""Pixel scan orders (stripes scanned column-major) x back-end coders."""
import numpy as np, zstandard as zs, lzma, bz2, time
from prep import load, IMAGES, KS

def stripe(x, h):
    H, W = x.shape
    pad = (-H) % h
    xp = np.pad(x, ((0, pad), (0, 0)), mode="edge")
    return xp.reshape(-1, h, W).transpose(0, 2, 1)  # stripes, columns, rows-in-stripe

def serp(x, h):
    s = stripe(x, h).copy()
    s[:, 1::2, :] = s[:, 1::2, ::-1]
    return s

coders = {
    "zstd19": lambda b: zs.ZstdCompressor(level=19).compress(b),
    "zstd19L": lambda b: zs.ZstdCompressor(compression_params=zs.ZstdCompressionParameters.from_level(19, enable_ldm=True, window_log=23)).compress(b),
    "lzma": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
    "lzma_lc0": lambda b: lzma.compress(b, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 9, "lc": 0, "lp": 0, "pb": 0}]),
    "bz2": lambda b: bz2.compress(b, 9),
}
orders = {"row": lambda x: x, "st2": lambda x: stripe(x, 2), "st4": lambda x: stripe(x, 4),
          "st8": lambda x: stripe(x, 8), "serp2": lambda x: serp(x, 2), "serp4": lambda x: serp(x, 4),
          "col": lambda x: x.T}
for k in KS:
    res = {}
    for name in IMAGES:
        idx, pal, png, _ = load(name, k)
        for on, of in orders.items():
            b = np.ascontiguousarray(of(idx)).astype(np.uint8).tobytes()
            for cn, cf in coders.items():
                if on not in ("row", "st2", "st4") and cn in ("zstd19L", "lzma_lc0"):
                    continue
                res.setdefault(f"{on}/{cn}", []).append(len(cf(b)) / png)
    print(k, " ".join(f"{a}={np.mean(v):.3f}" for a, v in sorted(res.items(), key=lambda t: np.mean(t[1]))))
