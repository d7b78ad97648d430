"""Targets against pngquant, side by side in one run (issue 12): quality, PSNR, byte budgets, time.

    nice .venv/bin/python bench/quality_bench.py [--corpus ../shared/corpus/kodak] [--runs 5]

Every number comes from whole processes (``vqcodec encode`` and
``pngquant``, as a user runs them) and from the files they wrote, decoded
and measured here (PSNR over RGB, as ``rd``):

1. ``vqcodec encode --quality 65-80`` against ``pngquant --quality 65-80 --nofs``:
   PSNR difference and bytes ratio per image and their means
   (targets: PSNR >= pngquant's - 0.1 dB, bytes <= 0.75 x);
2. ``vqcodec encode --psnr 35`` against pngquant ``--nofs`` at the smallest
   k whose PSNR reaches 35 dB (found by bisection over k)
   (targets: every image >= 35 dB, bytes <= 0.75 x);
3. exit codes on a noise image at ``--quality 65-80`` (pngquant: 99);
4. ``--max-bytes`` at 1, 2 and 3 bits per pixel: the share of the budget used
   (target: within 2 % under it on every image);
5. whole-process time of ``--quality 65-80`` and ``--psnr 35`` against a
   single-k encode (default k = 256) of the same image: runs alternated
   (single, quality, psnr, single, ...), medians (target: <= 2x).

``--speed 10`` against the default is bench/speed_bench.py's.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
VQCODEC = [sys.executable, "-m", "vqcodec"]
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def vq(src: Path, out: Path, *args: str) -> tuple[int, float]:
    """(exit code, seconds) of one whole vqcodec process."""
    start = time.perf_counter()
    proc = subprocess.run([*VQCODEC, "encode", str(src), str(out), "-f", "-q", *args],
                          capture_output=True, env=ENV)
    return proc.returncode, time.perf_counter() - start


def vq_result(src: Path, out: Path, *args: str) -> tuple[int, float, int, int]:
    """(exit code, PSNR, bytes, k) of a vqcodec encode, measured on its decoded file."""
    import vqcodec

    code, _ = vq(src, out, *args)
    if code != 0:
        return code, math.nan, 0, 0
    data = out.read_bytes()
    decoded = vqcodec.decode(data)
    return code, psnr(rgb(src), decoded), len(data), vqcodec.read_header(data).k


def pq(src: Path, out: Path, *args: str) -> tuple[int, float, int, int]:
    """(exit code, PSNR, bytes, colours) of a pngquant --nofs run."""
    proc = subprocess.run(["pngquant", "--nofs", "-f", "-o", str(out), *args, str(src)],
                          capture_output=True)
    if proc.returncode != 0:
        return proc.returncode, math.nan, 0, 0
    im = Image.open(out)
    return 0, psnr(rgb(src), rgb(out)), out.stat().st_size, len(im.getpalette() or []) // 3


def pq_smallest_k(src: Path, out: Path, db: float) -> tuple[int, float, int]:
    """pngquant's smallest k (2..256) whose PSNR reaches *db*: (k, PSNR, bytes)."""
    lo, hi = 1, 256
    best = pq(src, out, "256")
    if best[1] < db:
        return 256, best[1], best[2]
    found = (256, best[1], best[2])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        _, p, size, _ = pq(src, out, str(max(2, mid)))
        if p >= db:
            hi, found = mid, (max(2, mid), p, size)
        else:
            lo = mid
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus" / "kodak"))
    ap.add_argument("--runs", type=int, default=5, help="timing runs per command and image")
    ap.add_argument("--psnr", type=float, default=35.0)
    ap.add_argument("--quality", default="65-80")
    args = ap.parse_args()
    images = sorted(Path(args.corpus).glob("*.png"))
    tmp = Path(tempfile.mkdtemp(prefix="quality_bench_"))
    vqi, png = tmp / "o.vqi", tmp / "o.png"

    print(f"1. vqcodec encode --quality {args.quality} vs pngquant --quality {args.quality} --nofs")
    print(f"{'image':<10} {'vq k':>5} {'vq dB':>7} {'vq bytes':>9}   {'pq k':>5} {'pq dB':>7} "
          f"{'pq bytes':>9}   {'dB diff':>7} {'ratio':>6}")
    rows = []
    for src in images:
        _, vp, vb, vk = vq_result(src, vqi, "--quality", args.quality)
        _, pp, pb, pk = pq(src, png, "--quality", args.quality)
        rows.append((vp, vb, pp, pb))
        print(f"{src.stem:<10} {vk:>5} {vp:>7.2f} {vb:>9,}   {pk:>5} {pp:>7.2f} {pb:>9,}   "
              f"{vp - pp:>+7.2f} {vb / pb:>6.3f}")
    vp, vb, pp, pb = (np.array(c, float) for c in zip(*rows))
    print(f"{'mean':<10} {'':>5} {vp.mean():>7.2f} {vb.mean():>9,.0f}   {'':>5} {pp.mean():>7.2f} "
          f"{pb.mean():>9,.0f}   {vp.mean() - pp.mean():>+7.2f} {np.mean(vb / pb):>6.3f}"
          f"   (ratio of means {vb.sum() / pb.sum():.3f}; targets: >= -0.10 dB, <= 0.75)")

    print(f"\n2. vqcodec encode --psnr {args.psnr:g} vs pngquant --nofs at its smallest k reaching "
          f"{args.psnr:g} dB")
    print(f"{'image':<10} {'vq k':>5} {'vq dB':>7} {'vq bytes':>9}   {'pq k':>5} {'pq dB':>7} "
          f"{'pq bytes':>9}   {'ratio':>6}")
    rows = []
    for src in images:
        _, vp2, vb2, vk2 = vq_result(src, vqi, "--psnr", f"{args.psnr:g}")
        pk2, pp2, pb2 = pq_smallest_k(src, png, args.psnr)
        rows.append((vp2, vb2, pb2))
        print(f"{src.stem:<10} {vk2:>5} {vp2:>7.2f} {vb2:>9,}   {pk2:>5} {pp2:>7.2f} {pb2:>9,}   "
              f"{vb2 / pb2:>6.3f}")
    vp2, vb2, pb2 = (np.array(c, float) for c in zip(*rows))
    print(f"{'mean':<10} {'':>5} {vp2.mean():>7.2f} {vb2.mean():>9,.0f}   {'':>5} {'':>7} "
          f"{pb2.mean():>9,.0f}   {np.mean(vb2 / pb2):>6.3f}   (min vq dB {vp2.min():.2f}; "
          f"ratio of means {vb2.sum() / pb2.sum():.3f}; max {np.max(vb2 / pb2):.3f}; targets: "
          f">= {args.psnr:g} dB each, <= 0.75)")

    noise = tmp / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(noise)
    vq_code, _ = vq(noise, tmp / "noise.vqi", "--quality", args.quality)
    pq_code = pq(noise, tmp / "noise-pq.png", "--quality", args.quality)[0]
    print(f"\n3. noise 256x256 at --quality {args.quality}: vqcodec exit {vq_code} "
          f"(file written: {(tmp / 'noise.vqi').exists()}), pngquant exit {pq_code} "
          f"(file written: {(tmp / 'noise-pq.png').exists()})")

    print("\n4. vqcodec encode --max-bytes (bpp x pixels / 8): share of the budget used "
          "(capped: k = 256 with rdo 0 is smaller than the budget)")
    import vqcodec

    for bpp in (1.0, 2.0, 3.0):
        shares, capped = [], 0
        for src in images:
            h, w = rgb(src).shape[:2]
            budget = int(bpp * w * h / 8)
            code, _ = vq(src, vqi, "--max-bytes", str(budget))
            share = vqi.stat().st_size / budget if code == 0 else math.nan
            if code == 0 and share < 0.98 and vqcodec.read_header(vqi.read_bytes()).k == 256:
                capped += 1
                continue
            shares.append(share)
        print(f"   {bpp:g} bpp: min {np.nanmin(shares):.4f}, mean {np.nanmean(shares):.4f}, "
              f"max {np.nanmax(shares):.4f}; over budget {sum(s > 1 for s in shares)}, "
              f"within 2 % under it {sum(0.98 <= s <= 1 for s in shares)} of {len(shares)}"
              + (f" (+ {capped} capped at k = 256)" if capped else ""))

    print(f"\n5. whole-process time (s), medians of {args.runs} alternated runs; ratio to the single-k encode")
    print(f"{'image':<10} {'-k 256':>7} {'quality':>8} {'ratio':>6} {'psnr':>7} {'ratio':>6}")
    ratios_q, ratios_p = [], []
    for src in images:
        times: dict[str, list[float]] = {"k": [], "q": [], "p": []}
        for _ in range(args.runs):
            times["k"].append(vq(src, vqi)[1])
            times["q"].append(vq(src, vqi, "--quality", args.quality)[1])
            times["p"].append(vq(src, vqi, "--psnr", f"{args.psnr:g}")[1])
        tk, tq, tp = (statistics.median(times[c]) for c in "kqp")
        ratios_q.append(tq / tk)
        ratios_p.append(tp / tk)
        print(f"{src.stem:<10} {tk:>7.3f} {tq:>8.3f} {tq / tk:>6.2f} {tp:>7.3f} {tp / tk:>6.2f}")
    print(f"{'median':<10} {'':>7} {'':>8} {statistics.median(ratios_q):>6.2f} {'':>7} "
          f"{statistics.median(ratios_p):>6.2f}   (max {max(ratios_q):.2f} / {max(ratios_p):.2f}; "
          "target: <= 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
