import numpy as np, zstandard as zs, lzma, bz2, time
from prep import load, IMAGES, KS
from explore6 import stripe
def t(f, n=3):
    best = 1e9
    for _ in range(n):
        a = time.perf_counter(); r = f(); best = min(best, time.perf_counter() - a)
    return r, best * 1000
F = [{"id": lzma.FILTER_LZMA2, "preset": 9, "lc": 0, "lp": 0, "pb": 0}]
for k in KS:
    res = {}
    for name in IMAGES[:4]:
        idx, pal, png, _ = load(name, k)
        for on, b in (("row", idx.tobytes()), ("st2", np.ascontiguousarray(stripe(idx, 2)).tobytes())):
            for cn, c, d in (("zstd19", lambda b: zs.ZstdCompressor(level=19).compress(b), lambda z: zs.ZstdDecompressor().decompress(z)),
                             ("zstd9", lambda b: zs.ZstdCompressor(level=9).compress(b), lambda z: zs.ZstdDecompressor().decompress(z)),
                             ("lzma6raw", lambda b: lzma.compress(b, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 6, "lc": 0, "lp": 0, "pb": 0}]), lambda z: lzma.decompress(z, format=lzma.FORMAT_RAW, filters=F)),
                             ("lzma9raw", lambda b: lzma.compress(b, format=lzma.FORMAT_RAW, filters=F), lambda z: lzma.decompress(z, format=lzma.FORMAT_RAW, filters=F)),
                             ("bz2", lambda b: bz2.compress(b, 9), bz2.decompress)):
                z, te = t(lambda: c(b)); _, td = t(lambda: d(z))
                res.setdefault(f"{on}/{cn}", []).append((len(z) / png, te, td))
    for a, v in res.items():
        v = np.array(v); print(k, a, "size %.3f enc %.1f ms dec %.1f ms" % tuple(v.mean(0)))
