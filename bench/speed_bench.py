"""Another --speed (10 unless told) against the default speed 4, measured as a user runs it.

    nice .venv/bin/python bench/speed_bench.py [--corpus ../shared/corpus/kodak] [-k 16,64,256]
                                               [--runs 5] [--mode api,process] [--speed 10]

Two ways of calling the encoder, each on every image at every k:

* ``api``: ``vqcodec.encode(path, k=K, speed=S)`` in this process: the PNG
  is read and decoded on every call, as an application that encodes files
  does (the library is imported and warm; the first call of each case is
  not timed).
* ``process``: the whole command ``vqcodec encode IN OUT -k K --speed S -f``
  from the shell, Python's start, the imports and the report line (MSE,
  PSNR, SSIM) included.

Before anything is timed, each case's file is decoded and compared pixel for
pixel with the encoder's own reconstruction, and the command line's file
with the API's bytes.  The machine may be shared and noisy: the two speeds
run in pairs, the order swapped from one pair to the next (4 10, 10 4, ...),
and each image's time at each speed is the median of ``--runs`` runs.
Per k the table gives the median over images of those times, the median of
the per-image time ratios (speed 4 / speed S), the byte ratio (total bytes
at speed S / at speed 4, and the largest per image), the mean PSNR
difference (speed S - speed 4, dB) and, in the api table, the median
per-image ratio of the decode times of the two files (speed S / speed 4,
``vqcodec.decode(data)``, alternated the same way): speeds 1-3 may choose
index coder 3, which decodes slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vqcodec
from vqcodec import metrics, pixels

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "kodak"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from user_process import VQCODEC, run, warm  # noqa: E402  (the console script, as a user runs it)


def decode_time(data: bytes) -> float:
    start = time.perf_counter()
    vqcodec.decode(data)
    return time.perf_counter() - start


def api_run(src: Path, k: int, speed: int, out: Path) -> tuple[float, bytes]:
    start = time.perf_counter()
    data = vqcodec.encode(str(src), k=k, speed=speed)
    return time.perf_counter() - start, data


def process_run(src: Path, k: int, speed: int, out: Path) -> tuple[float, bytes]:
    start = time.perf_counter()
    run([VQCODEC, "encode", str(src), str(out), "-k", str(k), "--speed", str(speed), "-f"])
    seconds = time.perf_counter() - start
    return seconds, out.read_bytes()


MODES = {"api": api_run, "process": process_run}


def checked(src: Path, k: int, speed: int) -> tuple[int, float, bytes]:
    """(bytes, PSNR, data) of one case, its round trip checked first."""
    original = pixels.load(str(src)).array
    enc = vqcodec.encode_pixels(str(src), k=k, speed=speed)
    decoded = vqcodec.decode(enc.data)
    if not np.array_equal(decoded, enc.reconstruct()):
        raise SystemExit(f"{src.name} k={k} speed {speed}: the decoded file differs from the encoder's pixels")
    return len(enc.data), metrics.psnr(original, decoded), enc.data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("-k", default="16,64,256", help="codebook sizes, comma-separated")
    ap.add_argument("--runs", type=int, default=5, help="timed pairs per image, k and mode")
    ap.add_argument("--mode", default="api,process", help="api, process or both (comma-separated)")
    ap.add_argument("--speed", type=int, default=10, choices=range(1, 11), metavar="S",
                    help="the speed measured against the default 4 (default 10)")
    args = ap.parse_args(argv)
    speeds = (4, args.speed)
    images = sorted(args.corpus.glob("*.png"))
    if not images:
        raise SystemExit(f"no PNG images in {args.corpus}")
    ks = [int(k) for k in args.k.split(",")]
    modes = [m for m in args.mode.split(",") if m]
    if unknown := set(modes) - set(MODES):
        raise SystemExit(f"unknown mode {sorted(unknown)}; choose from {sorted(MODES)}")
    print(f"{len(images)} images from {args.corpus}; speed {speeds[1]} against {speeds[0]}; "
          f"medians of {args.runs} alternated pairs; vqcodec {vqcodec.__version__}")
    quality = {(src, k, s): checked(src, k, s) for src in images for k in ks for s in speeds}
    warm()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.vqi"
        for mode in modes:
            print(f"\n{mode}: " + ("vqcodec.encode(path, k=K, speed=S), in-process, PNG read included"
                                   if mode == "api" else
                                   f"{Path(VQCODEC).name} encode IN OUT -k K --speed S -f, whole process"))
            print(f"{'k':>5} {'speed 4 ms':>11} {f'speed {speeds[1]} ms':>12} {'time ratio':>11} "
                  f"{'bytes ratio':>12} {'max':>6} {'PSNR diff':>10}"
                  + (f" {'decode ratio':>13}" if mode == "api" else ""))
            for k in ks:
                times = {s: [] for s in speeds}
                decode_ratios = []
                for src in images:
                    runs = {s: [] for s in speeds}
                    decodes = {s: [] for s in speeds}
                    for s in speeds:  # warm-up (not timed), and the file the user gets
                        data = MODES[mode](src, k, s, out)[1]
                        if data != quality[src, k, s][2]:
                            raise SystemExit(f"{src.name} k={k} speed {s}: {mode} wrote other bytes "
                                             "than encode_pixels")
                    for i in range(args.runs):
                        for s in speeds if i % 2 == 0 else speeds[::-1]:
                            runs[s].append(MODES[mode](src, k, s, out)[0])
                            if mode == "api":
                                decodes[s].append(min(decode_time(quality[src, k, s][2]) for _ in range(3)))
                    for s in speeds:
                        times[s].append(statistics.median(runs[s]))
                    if mode == "api":
                        decode_ratios.append(statistics.median(decodes[speeds[1]])
                                             / statistics.median(decodes[speeds[0]]))
                slow, fast = (np.array(times[s]) for s in speeds)
                size = {s: np.array([quality[src, k, s][0] for src in images]) for s in speeds}
                dpsnr = np.mean([quality[src, k, speeds[1]][1] - quality[src, k, speeds[0]][1] for src in images])
                print(f"{k:>5} {1e3 * np.median(slow):>11.1f} {1e3 * np.median(fast):>12.1f} "
                      f"{np.median(slow / fast):>10.2f}x {size[speeds[1]].sum() / size[speeds[0]].sum():>11.3f}x "
                      f"{(size[speeds[1]] / size[speeds[0]]).max():>5.3f} {dpsnr:>+10.3f}"
                      + (f" {statistics.median(decode_ratios):>12.2f}x" if mode == "api" else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
