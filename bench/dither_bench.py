"""The dithering target of issue 12: vqcodec --dither against pngquant's default dithering, in one run.

    nice .venv/bin/python bench/dither_bench.py [IMAGES...] [-k 16,64] [--dither 0,1]

Defaults: kodim01..08 of ../shared/corpus/kodak (relative to the repository).
For every image and k: ``pngquant --force K --output OUT IN`` (its default
Floyd–Steinberg dithering, level 1), then ``vqcodec.encode_pixels`` with
``dither`` at each level (other options at their defaults), each .vqi decoded
and checked against ``Encoded.reconstruct()``.  Printed per k and codec, means
over the images: blurred PSNR (``metrics.blurred_psnr``, a Gaussian of
sigma 1 pixel on both images), plain PSNR, SSIM, bytes, and the mean of the
per-image ratios .vqi bytes / pngquant bytes.  The targets: blurred PSNR at
least pngquant's, bytes at most 0.80 x pngquant's, at ``dither`` 1.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from vqcodec import codec, metrics, pixels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "..", "shared", "corpus", "kodak")


def _pngquant(exe: str, path: str, k: int, folder: str) -> bytes:
    out = os.path.join(folder, f"pq-{k}.png")
    subprocess.run([exe, "--force", str(k), "--output", out, "--", path], check=True, capture_output=True)
    with open(out, "rb") as f:
        return f.read()


def _decode_png(data: bytes, mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        array = np.asarray(im.convert(mode))
    return array.reshape(array.shape[0], array.shape[1], -1)


def _measure(ref: np.ndarray, out: np.ndarray, nbytes: int) -> dict:
    return {"blurred": metrics.blurred_psnr(ref, out), "psnr": metrics.psnr(ref, out),
            "ssim": metrics.ssim(ref, out), "bytes": nbytes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("-k", default="16,64")
    ap.add_argument("--dither", default="0,1", help="vqcodec dither levels to run (default 0,1)")
    args = ap.parse_args(argv)
    exe = shutil.which("pngquant")
    if exe is None:
        print("dither_bench: pngquant is not on PATH", file=sys.stderr)
        return 2
    images = args.images or [os.path.join(CORPUS, f"kodim{i:02d}.png") for i in range(1, 9)]
    ks = [int(k) for k in args.k.split(",")]
    levels = [float(x) for x in args.dither.split(",")]
    rows: dict[tuple[int, str], list[dict]] = {}
    seconds: dict[tuple[int, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in images:
            px = pixels.load(path)
            ref = px.array
            for k in ks:
                pq = _pngquant(exe, path, k, tmp)
                base = _measure(ref, _decode_png(pq, px.mode), len(pq))
                rows.setdefault((k, "pngquant"), []).append(base)
                for level in levels:
                    start = time.perf_counter()
                    enc = codec.encode_pixels(px, k=k, dither=level)
                    label = f"vqcodec --dither {level:g}"
                    seconds[(k, label)] = seconds.get((k, label), 0.0) + time.perf_counter() - start
                    decoded = codec.decode(enc.data).reshape(ref.shape)
                    if not np.array_equal(decoded, enc.reconstruct()):
                        raise SystemExit(f"{path} k={k} dither={level}: decode differs from the encoder's image")
                    row = _measure(ref, decoded, len(enc.data))
                    row["ratio"] = len(enc.data) / len(pq)
                    rows.setdefault((k, label), []).append(row)
    n = len(images)
    print(f"dither_bench: {n} images, means; pngquant 'pngquant --force K' (default dithering)")
    print(f"{'k':>4}  {'codec':<22} {'blurPSNR':>8} {'PSNR':>7} {'SSIM':>7} {'bytes':>9} {'/pq':>6} {'enc s':>6}")
    for k in ks:
        for (kk, label), items in rows.items():
            if kk != k:
                continue
            mean = {key: statistics.fmean(r[key] for r in items) for key in ("blurred", "psnr", "ssim", "bytes")}
            ratio = statistics.fmean(r["ratio"] for r in items) if "ratio" in items[0] else 1.0
            secs = seconds.get((k, label), 0.0) / n
            print(f"{k:>4}  {label:<22} {mean['blurred']:8.2f} {mean['psnr']:7.2f} {mean['ssim']:7.4f} "
                  f"{mean['bytes']:9.0f} {ratio:6.3f} {secs if secs else float('nan'):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
