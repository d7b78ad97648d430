"""Quantize the Kodak images with pngquant (--nofs) at k=16,64,256 and cache
index maps, palettes, PNG sizes and pngquant wall times in cache/."""
import os, subprocess, time, sys
import numpy as np
from PIL import Image

CORPUS = "/work/shared/corpus/kodak"
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache")
KS = (16, 64, 256)
IMAGES = [f"kodim{i:02d}.png" for i in range(1, 9)]


def prep():
    os.makedirs(CACHE, exist_ok=True)
    for name in IMAGES:
        for k in KS:
            out = os.path.join(CACHE, f"{name[:-4]}_k{k}.png")
            npz = out[:-4] + ".npz"
            if os.path.exists(npz):
                continue
            t = time.perf_counter()
            subprocess.run(["pngquant", "--nofs", str(k), "--force", "-o", out,
                            os.path.join(CORPUS, name)], check=True)
            dt = time.perf_counter() - t
            im = Image.open(out)
            idx = np.asarray(im)
            pal = np.array(im.getpalette()[: 3 * (int(idx.max()) + 1)], np.uint8).reshape(-1, 3)
            np.savez(npz, idx=idx, pal=pal, png_size=os.path.getsize(out), pq_time=dt)


def load(name, k):
    d = np.load(os.path.join(CACHE, f"{name[:-4]}_k{k}.npz"))
    return d["idx"], d["pal"], int(d["png_size"]), float(d["pq_time"])


if __name__ == "__main__":
    prep()
    for k in KS:
        for name in IMAGES:
            idx, pal, sz, t = load(name, k)
            print(k, name, idx.shape, idx.dtype, len(pal), sz, f"{t*1000:.0f}ms")
