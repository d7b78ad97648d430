"""Size targets of issue 3: vqcodec .vqi bytes against pngquant --nofs at equal k, in one run.

    .venv/bin/python bench/rdo_bench.py [IMAGES...] [-k 16,64,256] [--rdo 0,0.75] [--runs 5] [--coder auto]

Defaults: kodim01..08 of ../shared/corpus/kodak (relative to the repository).
For every image and k: pngquant --nofs k (timed as a process), then
``vqcodec.encode_pixels`` at each ``rdo`` strength (timed in-process, the
quantizer included), each file decoded and checked against
``Encoded.reconstruct()`` before anything is timed.  Printed per k and rdo:
the mean of .vqi bytes / pngquant bytes, the mean PSNR difference (dB,
vqcodec − pngquant), encode seconds, and the median decode time of
``vqcodec.decode`` against Pillow decoding pngquant's PNG to a palette array
and to RGB; then the BD-rate against pngquant over the k points (vqcodec.rd's
bd_rate, per image, then the mean).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import vqcodec
from vqcodec import codec, metrics, pixels, rd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "..", "shared", "corpus", "kodak")


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("-k", default="16,64,256")
    ap.add_argument("--rdo", default="0,0.75")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--coder", default=None, help="passed to encode_pixels (default: the library's)")
    args = ap.parse_args(argv)
    images = args.images or [os.path.join(CORPUS, f"kodim{i:02d}.png") for i in range(1, 9)]
    ks = [int(k) for k in args.k.split(",")]
    strengths = [float(s) for s in args.rdo.split(",")]
    rows = {}  # (image, k, label) -> (bytes, psnr, encode_s, decode_ms)
    pil_ms, pil_rgb_ms = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in images:
            name = os.path.basename(path)
            px = pixels.load(path)
            for k in ks:
                out = os.path.join(tmp, "pq.png")
                t = time.perf_counter()
                subprocess.run(["pngquant", "--nofs", str(k), "--force", "-o", out, path], check=True)
                pq_s = time.perf_counter() - t
                with open(out, "rb") as f:
                    png = f.read()
                dec = np.asarray(Image.open(io.BytesIO(png)).convert(px.mode))
                rows[name, k, "pngquant"] = (len(png), metrics.psnr(px.array.reshape(dec.shape), dec), pq_s, None)
                pil_ms[name, k] = _median_ms(lambda: np.asarray(Image.open(io.BytesIO(png))), args.runs)
                pil_rgb_ms[name, k] = _median_ms(
                    lambda: np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), args.runs)
                for s in strengths:
                    t = time.perf_counter()
                    enc = codec.encode_pixels(px, k=k, rdo=s, coder=args.coder)
                    enc_s = time.perf_counter() - t
                    got = vqcodec.decode(enc.data)
                    want = enc.reconstruct()
                    assert np.array_equal(got.reshape(want.shape), want), (name, k, s)
                    ms = _median_ms(lambda: vqcodec.decode(enc.data), args.runs)
                    rows[name, k, f"rdo={s:g}"] = (len(enc.data), metrics.psnr(px.array, want), enc_s, ms)
                print(f"{name} k={k} done", file=sys.stderr, flush=True)
    names = [os.path.basename(p) for p in images]
    labels = [f"rdo={s:g}" for s in strengths]
    print(f"{'coder':10s} {'k':>4s} {'bytes/pq':>9s} {'dPSNR':>7s} {'enc s':>6s} {'pq enc s':>8s} "
          f"{'dec ms':>7s} {'PIL ms':>7s} {'PIL rgb':>7s}")
    for label in labels:
        for k in ks:
            ratio = np.mean([rows[n, k, label][0] / rows[n, k, "pngquant"][0] for n in names])
            dps = np.mean([rows[n, k, label][1] - rows[n, k, "pngquant"][1] for n in names])
            enc_s = np.mean([rows[n, k, label][2] for n in names])
            pq_s = np.mean([rows[n, k, "pngquant"][2] for n in names])
            dec = statistics.median(rows[n, k, label][3] for n in names)
            pil = statistics.median(pil_ms[n, k] for n in names)
            pil_rgb = statistics.median(pil_rgb_ms[n, k] for n in names)
            print(f"{label:10s} {k:4d} {ratio:9.3f} {dps:+7.2f} {enc_s:6.2f} {pq_s:8.2f} "
                  f"{dec:7.2f} {pil:7.2f} {pil_rgb:7.2f}")
        bds = [rd.bd_rate([rows[n, k, "pngquant"][0] for k in ks], [rows[n, k, "pngquant"][1] for k in ks],
                          [rows[n, k, label][0] for k in ks], [rows[n, k, label][1] for k in ks])
               for n in names]
        ok = [b for b in bds if b is not None]
        print(f"{label:10s} BD-rate vs pngquant: {np.mean(ok):+.1f} % (mean of {len(ok)} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
