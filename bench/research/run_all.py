"""One command: reproduce the index-coding table.
    /work/main/.venv/bin/python bench/research/run_all.py [--quick]
Prints mean over kodim01..08 per k: size relative to pngquant's PNG (index payload only, and
payload + 3*ncolours codebook bytes), encode ms, decode ms (best of 3), plus Pillow's PNG decode time."""
import sys, os, time, bz2, lzma, io
import numpy as np, zstandard as zs
from PIL import Image
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from prep import prep, load, IMAGES, KS, CACHE
from vqcodec import packing

def best_ms(f, n=3):
    b = 1e9
    for _ in range(n):
        t = time.perf_counter(); r = f(); b = min(b, time.perf_counter() - t)
    return r, b * 1000

def zstd_c(level, ldm=False):
    p = zs.ZstdCompressionParameters.from_level(level, enable_ldm=ldm, window_log=23) if ldm else None
    c = zs.ZstdCompressor(level=level) if p is None else zs.ZstdCompressor(compression_params=p)
    d = zs.ZstdDecompressor()
    return (lambda x: c.compress(x.tobytes())), (lambda b, s: np.frombuffer(d.decompress(b), np.uint8).reshape(s))

def st2(x):
    return packing.to_stripes(x)

LZF = [{"id": lzma.FILTER_LZMA2, "preset": 6, "lc": 0, "lp": 0, "pb": 0}]
CANDS = {
    "zstd3 raw": zstd_c(3), "zstd9 raw": zstd_c(9), "zstd15 raw": zstd_c(15), "zstd19 raw": zstd_c(19),
    "zstd22 raw": zstd_c(22), "zstd19+ldm raw": zstd_c(19, True),
    "zstd19 stripe2": (lambda x: zs.ZstdCompressor(level=19).compress(np.ascontiguousarray(st2(x)).tobytes()),
                       lambda b, s: packing.from_stripes(np.frombuffer(zs.ZstdDecompressor().decompress(b), np.uint8), *s)),
    "lzma6 lc0 raw": (lambda x: lzma.compress(x.tobytes(), format=lzma.FORMAT_RAW, filters=LZF),
                      lambda b, s: np.frombuffer(lzma.decompress(b, format=lzma.FORMAT_RAW, filters=LZF), np.uint8).reshape(s)),
    "lzma6 lc0 stripe2": (lambda x: lzma.compress(np.ascontiguousarray(st2(x)).tobytes(), format=lzma.FORMAT_RAW, filters=LZF),
                          lambda b, s: packing.from_stripes(np.frombuffer(lzma.decompress(b, format=lzma.FORMAT_RAW, filters=LZF), np.uint8), *s)),
    "bz2 raw (layout 1)": (lambda x: bz2.compress(x.tobytes(), 9),
                           lambda b, s: np.frombuffer(bz2.decompress(b), np.uint8).reshape(s)),
    "bz2 stripe2 (layout 2)": (lambda x: bz2.compress(np.ascontiguousarray(st2(x)).tobytes(), 9),
                               lambda b, s: packing.from_stripes(np.frombuffer(bz2.decompress(b), np.uint8), *s)),
}

def main():
    prep()
    quick = "--quick" in sys.argv
    names = IMAGES[:3] if quick else IMAGES
    for k in KS:
        rows = {}
        pil = []
        for name in names:
            idx, pal, png, _ = load(name, k)
            path = os.path.join(CACHE, f"{name[:-4]}_k{k}.png")
            _, t = best_ms(lambda: np.asarray(Image.open(path)))
            pil.append(t)
            for cn, (enc, dec) in CANDS.items():
                p, te = best_ms(lambda: enc(idx), 1 if "22" in cn else 3)
                y, td = best_ms(lambda: dec(p, idx.shape))
                assert np.array_equal(y, idx), cn
                n = len(p[1]) if isinstance(p, tuple) else len(p)
                rows.setdefault(cn, []).append((n / png, (n + 3 * len(pal)) / png, te, td))
        print(f"\n=== k={k}  (pngquant PNG = 1.000; Pillow PNG->numpy decode {np.mean(pil):.1f} ms)")
        print(f"{'method':38s} {'payload':>8s} {'+cb':>7s} {'enc ms':>8s} {'dec ms':>8s}")
        for cn, v in sorted(rows.items(), key=lambda t: np.mean([a[0] for a in t[1]])):
            a = np.array(v).mean(0)
            print(f"{cn:38s} {a[0]:8.3f} {a[1]:7.3f} {a[2]:8.1f} {a[3]:8.2f}")

if __name__ == "__main__":
    main()
