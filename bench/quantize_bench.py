"""Benchmark vqcodec.quantize against pngquant --nofs (measured in the same run).

    .venv/bin/python bench/quantize_bench.py                 # Kodak 01..08, k = 16 64 256
    .venv/bin/python bench/quantize_bench.py --big --large-k # + 24 MP and k = 65536 cases

For every image and k: our PSNR and pngquant's (MSE over all pixels and
channels), and the median wall time of ``quantize()`` over ``--repeat`` runs
(after one warm-up run that is also checked: indices in range, every entry
used, at most k entries).  ``--big`` quantizes kodim03 resized to 6000x4000
(time, and peak traced memory in a separate run under tracemalloc).
``--large-k`` runs k = 65536 on a Kodak image (lossless: it has fewer
colours) and on 768x512 uniform noise (the worst case for the search).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vqcodec.quantize import quantize  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "kodak"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = 0.0
    for s in range(0, a.shape[0], 256):  # row strips: bounded memory for big images
        d = a[s : s + 256].astype(np.float64) - b[s : s + 256]
        err += float(np.dot(d.ravel(), d.ravel()))
    mse = err / a.size
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def checked(img: np.ndarray, k: int):
    q = quantize(img, k=k)
    n = len(q.codebook)
    assert q.codebook.dtype == np.uint8 and 1 <= n <= k, (q.codebook.dtype, n, k)
    assert q.indices.shape == img.shape[:2]
    assert int(q.indices.max()) < n
    assert (np.bincount(q.indices.ravel(), minlength=n) > 0).all(), "unused codebook entry"
    return q


def timed(img: np.ndarray, k: int, repeat: int) -> tuple[object, float]:
    q = checked(img, k)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        quantize(img, k=k)
        times.append(time.perf_counter() - t)
    return q, statistics.median(times)


def pngquant(path: Path, k: int, tmp: Path) -> tuple[np.ndarray, float]:
    out = tmp / f"{path.stem}_k{k}.png"
    t = time.perf_counter()
    subprocess.run(["pngquant", "--nofs", str(k), "--force", "-o", str(out), str(path)], check=True)
    dt = time.perf_counter() - t
    return np.asarray(Image.open(out).convert("RGB")), dt


def kodak_table(images: list[Path], ks: list[int], repeat: int) -> None:
    have_pq = shutil.which("pngquant") is not None
    print(f"{'image':10} {'k':>5} {'ours dB':>8} {'pq dB':>8} {'diff':>7} {'ours s':>7} {'pq s':>6} {'n':>5}")
    summary: dict[int, list[tuple[float, float, float]]] = {k: [] for k in ks}
    with tempfile.TemporaryDirectory() as td:
        for path in images:
            img = np.asarray(Image.open(path).convert("RGB"))
            for k in ks:
                q, sec = timed(img, k, repeat)
                ours = psnr(img, q.codebook[q.indices])
                if have_pq:
                    pq_img, pq_sec = pngquant(path, k, Path(td))
                    theirs = psnr(img, pq_img)
                else:
                    theirs, pq_sec = float("nan"), float("nan")
                summary[k].append((ours, theirs, sec))
                print(
                    f"{path.stem:10} {k:5d} {ours:8.3f} {theirs:8.3f} {ours - theirs:+7.3f} "
                    f"{sec:7.3f} {pq_sec:6.3f} {len(q.codebook):5d}",
                    flush=True,
                )
    print()
    print(f"{'k':>5} {'mean ours':>10} {'mean pq':>10} {'diff':>7} {'median s':>9} {'max s':>6}")
    for k, rows in summary.items():
        o, p, s = (np.array(v) for v in zip(*rows))
        print(f"{k:5d} {o.mean():10.3f} {p.mean():10.3f} {o.mean() - p.mean():+7.3f} {np.median(s):9.3f} {s.max():6.3f}")


def big_case(path: Path, k: int, repeat: int) -> None:
    img = np.asarray(Image.open(path).convert("RGB").resize((6000, 4000), Image.LANCZOS))
    q, sec = timed(img, k, repeat)
    tracemalloc.start()
    quantize(img, k=k)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"24 MP ({path.stem} 6000x4000) k={k}: median {sec:.2f} s, peak traced memory "
        f"{peak / 2**20:.0f} MiB, PSNR {psnr(img, q.codebook[q.indices]):.2f} dB, {len(q.codebook)} entries"
    )


def large_k_cases(path: Path) -> None:
    img = np.asarray(Image.open(path).convert("RGB"))
    t = time.perf_counter()
    q = checked(img, 65536)
    dt = time.perf_counter() - t
    lossless = np.array_equal(q.codebook[q.indices], img)
    print(f"k=65536 {path.stem} 768x512: {dt:.2f} s, {len(q.codebook)} entries, lossless={lossless}")
    noise = np.random.default_rng(0).integers(0, 256, (512, 768, 3), dtype=np.uint8)
    t = time.perf_counter()
    q = checked(noise, 65536)
    dt = time.perf_counter() - t
    print(
        f"k=65536 uniform noise 768x512: {dt:.2f} s, {len(q.codebook)} entries, "
        f"PSNR {psnr(noise, q.codebook[q.indices]):.2f} dB"
    )
    small = noise[:64, :64]
    t = time.perf_counter()
    q = checked(small, 65536)
    print(f"k=65536 noise 64x64: {time.perf_counter() - t:.3f} s, lossless={np.array_equal(q.codebook[q.indices], small)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--images", nargs="*", default=[f"kodim{i:02d}" for i in range(1, 9)])
    ap.add_argument("--k", type=int, nargs="*", default=[16, 64, 256])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per case (median reported)")
    ap.add_argument("--big", action="store_true", help="also the 24-megapixel case")
    ap.add_argument("--large-k", action="store_true", help="also k = 65536 cases")
    args = ap.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"corpus {args.corpus} not found")
    print(f"cpus {os.cpu_count()}, numpy {np.__version__}")
    images = [args.corpus / f"{name}.png" for name in args.images]
    if args.k:
        kodak_table(images, args.k, args.repeat)
    if args.big:
        big_case(args.corpus / "kodim03.png", 256, max(1, args.repeat // 2))
    if args.large_k:
        large_k_cases(args.corpus / "kodim01.png")


if __name__ == "__main__":
    main()
