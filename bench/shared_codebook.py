"""Issue 13: a codebook shared by a data set against a codebook per image, at equal k.

    .venv/bin/python bench/shared_codebook.py [-k 16,64,256] [--blocks 4x4:64,4x4:256,4x4:1024,2x2:256] [--json FILE]

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
* Block codebooks, for each WxH:k: the shared block file
  (``encode_pixels(codebook=...)``: one index per block, coder auto, the
  ``.vqb`` apart; decoded and checked as above), the per-image block file
  at the same k (``encode_pixels(block=..., k=k)``, codebook in the file),
  and Pillow JPEG at the shared file's PSNR (the smallest quality that
  reaches it, as ``vqcodec rd`` searches it); the tokens' usage and
  entropy; training time and training PSNR.  Then, per block shape, the
  BD-rate of the shared files against JPEG over their k points (PCHIP, per
  image, then the mean; negative = smaller than JPEG).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from vqcodec import codec, metrics, pixels, tokenizer, training
from vqcodec.rd.bdrate import bd_rate
from vqcodec.rd.codecs import QualitySearch

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


def block_rows(specs: list[tuple[int, int, int]], jobs: int | None, per_image: bool) -> list[dict]:
    rows = []
    images = [pixels.load(p) for p in TEST]
    jpeg = {path: QualitySearch(px, "jpeg") for path, px in zip(TEST, images)}
    for bw, bh, k in specs:
        trained = training.train(TRAIN, k=k, block=(bw, bh), jobs=jobs)
        book = trained.codebook
        for path, px in zip(TEST, images):
            enc = codec.encode_pixels(px, codebook=book)
            decoded = codec.decode_pixels(enc.data, codebook=book).array
            if not np.array_equal(decoded, enc.reconstruct()):
                raise SystemExit(f"round trip failed: {path} shared {bw}x{bh} k={k}")
            psnr = metrics.psnr(px.array, decoded)
            t = tokenizer.tokens(px.array, book)
            u = tokenizer.usage(t, len(book))
            quality, reached = jpeg[path].smallest(psnr)
            row = {"image": os.path.basename(path), "block": f"{bw}x{bh}", "k": k,
                   "pixels": px.width * px.height, "shared_bytes": len(enc.data), "shared_psnr": psnr,
                   "jpeg_bytes": len(jpeg[path].trials[quality].data), "jpeg_quality": quality,
                   "jpeg_psnr": jpeg[path].trials[quality].psnr, "jpeg_reached": reached,
                   "entropy_bits": u.entropy, "used_fraction": u.used_fraction,
                   "train_seconds": trained.seconds, "train_psnr": trained.psnr,
                   "vqb_bytes": 24 + book.entries.size}
            if per_image:
                own = codec.encode_pixels(px, block=(bw, bh), k=k)
                row["per_image_bytes"] = len(own.data)
                row["per_image_psnr"] = metrics.psnr(px.array, own.reconstruct())
            rows.append(row)
    return rows


def bd_against_jpeg(rows: list[dict], block: str) -> float | None:
    """Mean over the test images of the shared files' BD-rate against JPEG (percent)."""
    values = []
    for image in sorted({r["image"] for r in rows}):
        rs = [r for r in rows if (r["image"], r["block"]) == (image, block)]
        value = bd_rate([r["jpeg_bytes"] for r in rs], [r["jpeg_psnr"] for r in rs],
                        [r["shared_bytes"] for r in rs], [r["shared_psnr"] for r in rs])
        if value is not None:
            values.append(value)
    return sum(values) / len(values) if values else None


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="16,64,256", help="colour codebook sizes")
    ap.add_argument("--no-per-image-blocks", action="store_true",
                    help="skip the per-image block files (slow at large k)")
    ap.add_argument("--blocks", default="4x4:64,4x4:256,4x4:1024,2x2:256",
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
    blocks = block_rows(specs, args.jobs, not args.no_per_image_blocks)
    if blocks:
        print("\n| block | k | shared bpp | shared PSNR | JPEG bpp at that PSNR | shared / JPEG bytes "
              "| per-image bpp | per-image PSNR | token entropy | entries used | train s | train PSNR |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for bw, bh, k in specs:
            rs = [r for r in blocks if (r["block"], r["k"]) == (f"{bw}x{bh}", k)]
            px = _mean(rs, "pixels")
            own = (f"{8 * _mean(rs, 'per_image_bytes') / px:.3f} | {_mean(rs, 'per_image_psnr'):.2f}"
                   if "per_image_bytes" in rs[0] else "- | -")
            print(f"| {bw}x{bh} | {k} | {8 * _mean(rs, 'shared_bytes') / px:.3f} | {_mean(rs, 'shared_psnr'):.2f} | "
                  f"{8 * _mean(rs, 'jpeg_bytes') / px:.3f} | "
                  f"{_mean(rs, 'shared_bytes') / _mean(rs, 'jpeg_bytes'):.2f} | {own} | "
                  f"{_mean(rs, 'entropy_bits'):.2f} bits | {100 * _mean(rs, 'used_fraction'):.0f} % | "
                  f"{rs[0]['train_seconds']:.1f} | {rs[0]['train_psnr']:.2f} |")
        for block in dict.fromkeys(r["block"] for r in blocks):
            if len({r["k"] for r in blocks if r["block"] == block}) >= 2:
                value = bd_against_jpeg(blocks, block)
                text = "n/a" if value is None else f"{value:+.1f} %"
                print(f"\nBD-rate of the shared {block} files against JPEG: {text}")
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"colour": colours, "blocks": blocks}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
