"""Decode speed, in-process: vqcodec .vqi -> numpy vs Pillow PNG -> numpy.

    python bench/decode_bench.py FILE.vqi FILE.png [--source ORIGINAL] [--runs N] [--json]

Both files are first decoded once and checked to hold the same kind of image
(same height and width); with ``--source`` (the image both were made from)
each decode must also be close to it (PSNR >= 30 dB, printed), which a broken
decoder cannot be.  Then each is decoded N times (default 7) in alternation,
and the median seconds and megapixels per second are printed, one line per
file ("name median_s mp_per_s"), or one JSON object.

vqcodec:  ``vqcodec.decode(data)`` on bytes already in memory.
Pillow:   ``np.asarray(Image.open(BytesIO(data)))`` on bytes already in memory
          (a palette PNG stays palette indices, as Pillow returns it, plus
          a second figure with ``.convert("RGB")`` to get the pixels).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time

import numpy as np
from PIL import Image

import vqcodec


def _time(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vqi")
    parser.add_argument("png")
    parser.add_argument("--source", default=None, help="the original image, to check both decodes")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with open(args.vqi, "rb") as f:
        vqi = f.read()
    with open(args.png, "rb") as f:
        png = f.read()

    def decode_vqi():
        return vqcodec.decode(vqi, max_pixels=None)

    def decode_png():
        with Image.open(io.BytesIO(png)) as im:
            return np.asarray(im)

    def decode_png_rgb():
        with Image.open(io.BytesIO(png)) as im:
            return np.asarray(im.convert("RGB"))

    Image.MAX_IMAGE_PIXELS = None
    a, b = decode_vqi(), decode_png_rgb()
    if a.shape[:2] != b.shape[:2]:
        print(f"decode_bench: {args.vqi} is {a.shape} but {args.png} is {b.shape}", file=sys.stderr)
        return 2
    # The .vqi must decode to what its own header promises (round trip checked by the codec's tests).
    header = vqcodec.read_header(vqi)
    assert (header.height, header.width) == a.shape[:2]
    checks = {}
    if args.source is not None:
        from vqcodec import metrics, pixels

        original = pixels.load(args.source, max_pixels=None).array
        for name, decoded in (("vqcodec", a), ("pillow_rgb", b)):
            decoded = decoded.reshape(original.shape)
            checks[name] = metrics.psnr(original, decoded)
            if not checks[name] >= 30:
                print(f"decode_bench: {name} decodes to {checks[name]:.2f} dB from {args.source}; "
                      f"expected >= 30", file=sys.stderr)
                return 2
    del a, b

    results = {"vqcodec": [], "pillow": [], "pillow_rgb": []}
    for _ in range(args.runs):  # alternate, so drift affects both alike
        results["vqcodec"] += _time(decode_vqi, 1)
        results["pillow"] += _time(decode_png, 1)
        results["pillow_rgb"] += _time(decode_png_rgb, 1)
    mp = header.width * header.height / 1e6
    out = {name: {"median_s": statistics.median(t), "mp_per_s": mp / statistics.median(t)}
           for name, t in results.items()}
    for name, value in checks.items():
        out[name]["psnr_vs_source"] = value
    if args.json:
        print(json.dumps(out))
    else:
        for name, r in out.items():
            print(f"{name} {r['median_s']:.4f} {r['mp_per_s']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
