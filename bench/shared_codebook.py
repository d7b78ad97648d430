"""Issue 13: a codebook shared by a data set against a codebook per image, at equal k.

    .venv/bin/python bench/shared_codebook.py [-k 16,64,256] [--blocks 4x4:256,4x4:1024] [--json FILE]

Training and measuring never see the same photo: the shared codebooks are
trained (``vqcodec.training.train``, the library behind ``vqcodec train``)
on kodim01-04 of ../shared/corpus/kodak, and every number below is measured
on kodim05-08.

* Colour codebooks (1x1), for each k: every test image encoded per image
  (``encode_pixels(k=k)``, the codebook in the file) and with the shared
  codebook (``encode_pixels(codebook=...)``, the file names it by its
  SHA-256; the ``.vqb`` is counted once, apart).  Each file is decoded
  (with the codebook for the shared one) and checked against
  ``Encoded.reconstruct()`` before anything is reported.  Printed: mean
  bytes, bits per pixel and PSNR (RGB) of both, and the shared/per-image
  byte ratio.
* Block codebooks (tokens only: this build writes no block .vqi files),
  for each WxH:k: PSNR of ``detokenize(tokens(image))`` and the entropy of
  the tokens, an estimate of the bits per pixel an ideal order-0 coder
  would need (entropy / (W x H)); training time and training PSNR.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from vqcodec import codec, metrics, pixels, tokenizer, training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KODAK = os.path.join(ROOT, "..", "shared", "corpus", "kodak")
TRAIN = [os.path.join(KODAK, f"kodim0{i}.png") for i in (1, 2, 3, 4)]
TEST = [os.path.join(KODAK, f"kodim0{i}.png") for i in (5, 6, 7, 8)]


def colour_rows(ks: list[int], jobs: int | None) -> list[dict]:
    rows = []
    images = [pixels.load(p) for p in TEST]
    for k in ks:
        trained = training.train(TRAIN, k=k, jobs=jobs)
        book = trained.codebook
        for path, px in zip(TEST, images):
            row = {"image": os.path.basename(path), "k": k}
            for label, options in (("per_image", {"k": k}), ("shared", {"codebook": book})):
                enc = codec.encode_pixels(px, **options)
                decoded = codec.decode_pixels(enc.data, codebook=book).array
                if not np.array_equal(decoded, enc.reconstruct()):
                    raise SystemExit(f"round trip failed: {path} {label} k={k}")
                row[f"{label}_bytes"] = len(enc.data)
                row[f"{label}_psnr"] = metrics.psnr(px.array, decoded)
                row[f"{label}_k"] = enc.header.k
            row["bpp_denominator"] = px.width * px.height
            row["vqb_bytes"] = 24 + len(book) * 3
            rows.append(row)
    return rows


def block_rows(specs: list[tuple[int, int, int]], jobs: int | None) -> list[dict]:
    rows = []
    images = [pixels.load(p) for p in TEST]
    for bw, bh, k in specs:
        trained = training.train(TRAIN, k=k, block=(bw, bh), jobs=jobs)
        for path, px in zip(TEST, images):
            t = tokenizer.tokens(px.array, trained.codebook)
            out = tokenizer.detokenize(t, trained.codebook, height=px.height, width=px.width)
            u = tokenizer.usage(t, len(trained.codebook))
            rows.append({"image": os.path.basename(path), "block": f"{bw}x{bh}", "k": k,
                         "psnr": metrics.psnr(px.array, out), "entropy_bits": u.entropy,
                         "used_fraction": u.used_fraction,
                         "bpp_order0": u.entropy * t.size / (px.width * px.height),
                         "train_seconds": trained.seconds, "train_psnr": trained.psnr})
    return rows


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="16,64,256", help="colour codebook sizes")
    ap.add_argument("--blocks", default="4x4:256,4x4:1024,2x2:256",
                    help="block codebooks as WxH:k, comma-separated ('' for none)")
    ap.add_argument("-j", "--jobs", type=int, default=None, help="training processes (default: cores)")
    ap.add_argument("--json", default=None, help="also write every row to this JSON file")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",") if k]
    specs = []
    for spec in filter(None, args.blocks.split(",")):
        shape, k = spec.split(":")
        w, h = shape.lower().split("x")
        specs.append((int(w), int(h), int(k)))
    start = time.perf_counter()
    colours = colour_rows(ks, args.jobs)
    print("trained on kodim01-04, measured on kodim05-08 (means of 4 images)\n")
    print("| k | per-image bytes | per-image bpp | per-image PSNR | shared bytes | shared bpp | shared PSNR "
          "| bytes shared/per-image | .vqb bytes |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in ks:
        rs = [r for r in colours if r["k"] == k]
        px = _mean(rs, "bpp_denominator")
        pb, sb = _mean(rs, "per_image_bytes"), _mean(rs, "shared_bytes")
        print(f"| {k} | {pb:,.0f} | {8 * pb / px:.3f} | {_mean(rs, 'per_image_psnr'):.2f} | {sb:,.0f} | "
              f"{8 * sb / px:.3f} | {_mean(rs, 'shared_psnr'):.2f} | {sb / pb:.3f} | {rs[0]['vqb_bytes']:,} |")
    blocks = block_rows(specs, args.jobs)
    if blocks:
        print("\n| block | k | tokens PSNR | token entropy (bits) | order-0 bpp | used | train s | train PSNR |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for bw, bh, k in specs:
            rs = [r for r in blocks if (r["block"], r["k"]) == (f"{bw}x{bh}", k)]
            print(f"| {bw}x{bh} | {k} | {_mean(rs, 'psnr'):.2f} | {_mean(rs, 'entropy_bits'):.2f} | "
                  f"{_mean(rs, 'bpp_order0'):.3f} | {100 * _mean(rs, 'used_fraction'):.0f} % | "
                  f"{rs[0]['train_seconds']:.1f} | {rs[0]['train_psnr']:.2f} |")
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"colour": colours, "blocks": blocks}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
