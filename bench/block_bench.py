"""Block vectors against the pixel palette and JPEG at equal PSNR (issue 13, format 1.2).

    nice python bench/block_bench.py /work/shared/corpus/kodak [--json OUT.json]
        [--palette 8,16,64,256] [--block 2x2:64,256,1024 ...] [--runs 5]

For every image, every vqcodec mode (the per-image palette, ``block=(1, 1)``,
and each ``--block WxH:K,...`` per-image block codebook) is encoded with the
default options; the decode is checked equal to ``Encoded.reconstruct()``
before anything is timed.  JPEG (Pillow, ``optimize=True``) is encoded at
every quality 1-100 with 4:2:0 and with 4:4:4 chroma: for each vqcodec
point, the JPEG of equal PSNR is the smallest of those files whose PSNR
reaches the vqcodec file's (the best of both subsamplings), and its decode
(Pillow, bytes in memory -> numpy) is timed in the same run.  Decode times
are the fastest of ``--runs`` (the machine is shared; the fastest run is the
least disturbed one).

Printed: one row per image and mode (bytes, bpp, PSNR, encode s, decode ms,
JPEG bytes at equal PSNR and the ratio), then per mode the means over the
images (bpp pooled, PSNR plain, the ratio to JPEG as a geometric mean), and
the Bjøntegaard delta rate of each block mode against the palette and
against JPEG (per image over the PSNR range both curves cover, then the
mean; vqcodec.rd.bd_rate).  PSNR is over RGB (the Kodak photos are opaque).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import vqcodec
from vqcodec import codec, metrics, rd


def timed(fn, runs: int) -> tuple[object, float]:
    """(result, the fastest of *runs* calls in seconds: on a shared machine the least disturbed)."""
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, min(times)


def jpeg_curve(image: np.ndarray) -> list[tuple[int, int, int, float, bytes]]:
    """(bytes, quality, subsampling, psnr, data) at every quality, 4:2:0 (2) and 4:4:4 (0)."""
    out = []
    pil = Image.fromarray(image)
    for subsampling in (2, 0):
        for quality in range(1, 101):
            buf = io.BytesIO()
            pil.save(buf, "JPEG", quality=quality, optimize=True, subsampling=subsampling)
            data = buf.getvalue()
            out.append((len(data), quality, subsampling, metrics.psnr(image, jpeg_decode(data)), data))
    return out


def jpeg_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def jpeg_at(curve, psnr: float):
    """The smallest JPEG whose PSNR reaches *psnr*, or None."""
    reaching = [c for c in curve if c[3] >= psnr]
    return min(reaching, key=lambda c: c[0]) if reaching else None


def parse_modes(palette: str, blocks: list[str]) -> list[tuple[str, tuple[int, int], int]]:
    modes = [("palette", (1, 1), int(k)) for k in palette.split(",") if k]
    for spec in blocks:
        shape, _, ks = spec.partition(":")
        block = vqcodec.options.check("block", shape)
        modes += [(f"{block[0]}x{block[1]}", block, int(k)) for k in ks.split(",")]
    return modes


def measure(path: Path, modes, runs: int) -> list[dict]:
    image = np.asarray(Image.open(path).convert("RGB"))
    h, w = image.shape[:2]
    curve = jpeg_curve(image)
    rows = []
    for name, block, k in modes:
        start = time.perf_counter()
        enc = codec.encode_pixels(image, k=k, block=block)
        encode_s = time.perf_counter() - start
        decoded = vqcodec.decode(enc.data)
        if not np.array_equal(decoded, enc.reconstruct()):
            sys.exit(f"{path.name} {name} k={k}: decode differs from the encoder's reconstruction")
        _, decode_s = timed(lambda: vqcodec.decode(enc.data), runs)
        psnr = metrics.psnr(image, decoded)
        row = dict(image=path.name, mode=name, k=k, k_stored=enc.header.k, bytes=len(enc.data),
                   bpp=8 * len(enc.data) / (w * h), psnr=psnr, encode_s=encode_s,
                   decode_ms=1e3 * decode_s, coder=vqcodec.coders.by_id(enc.header.index_coder).name)
        jpeg = jpeg_at(curve, psnr)
        if jpeg is not None:
            size, quality, subsampling, jpsnr, data = jpeg
            _, jdecode_s = timed(lambda: jpeg_decode(data), runs)
            row.update(jpeg_bytes=size, jpeg_quality=quality, jpeg_subsampling="4:4:4" if subsampling == 0
                       else "4:2:0", jpeg_psnr=jpsnr, jpeg_decode_ms=1e3 * jdecode_s,
                       ratio_jpeg=len(enc.data) / size)
        rows.append(row)
        print(f"  {path.name} {name:>7} k={k:<5} {len(enc.data):>8,} B {row['bpp']:.3f} bpp "
              f"{psnr:6.2f} dB  enc {encode_s:5.2f} s  dec {row['decode_ms']:6.2f} ms  "
              + (f"JPEG {row['jpeg_bytes']:>8,} B q{row['jpeg_quality']} {row['jpeg_subsampling']} "
                 f"dec {row['jpeg_decode_ms']:.2f} ms  x{row['ratio_jpeg']:.2f}" if jpeg else "JPEG n/a"),
              file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict], modes) -> tuple[list[dict], list[dict]]:
    by_mode = []
    for name, _, k in modes:
        sel = [r for r in rows if r["mode"] == name and r["k"] == k]
        pixels = sum(8 * r["bytes"] / r["bpp"] for r in sel)
        ratios = [r["ratio_jpeg"] for r in sel if "ratio_jpeg" in r]
        by_mode.append(dict(
            mode=name, k=k, bytes=statistics.mean(r["bytes"] for r in sel),
            bpp=8 * sum(r["bytes"] for r in sel) / pixels, psnr=statistics.mean(r["psnr"] for r in sel),
            encode_s=statistics.mean(r["encode_s"] for r in sel),
            decode_ms=statistics.mean(r["decode_ms"] for r in sel),
            jpeg_decode_ms=statistics.mean(r["jpeg_decode_ms"] for r in sel if "jpeg_decode_ms" in r),
            ratio_jpeg=math.exp(statistics.mean(math.log(x) for x in ratios)) if ratios else None))
    bd = []
    names = list(dict.fromkeys(name for name, _, _ in modes))
    for name in names[1:]:
        anchors = {"palette": [], "JPEG": []}
        for image in dict.fromkeys(r["image"] for r in rows):
            test = [r for r in rows if r["image"] == image and r["mode"] == name]
            pal = [r for r in rows if r["image"] == image and r["mode"] == "palette"]
            rate = [r["bytes"] for r in test]
            psnr = [r["psnr"] for r in test]
            anchors["palette"].append(rd.bd_rate([r["bytes"] for r in pal], [r["psnr"] for r in pal],
                                                 rate, psnr))
            jp = [r for r in test if "jpeg_bytes" in r]
            anchors["JPEG"].append(rd.bd_rate([r["jpeg_bytes"] for r in jp], [r["jpeg_psnr"] for r in jp],
                                              [r["bytes"] for r in jp], [r["psnr"] for r in jp]))
        for anchor, values in anchors.items():
            finite = [v for v in values if v is not None]
            bd.append(dict(mode=name, anchor=anchor, images=len(finite),
                           bd_rate=statistics.mean(finite) if finite else None))
    return by_mode, bd


def markdown(by_mode: list[dict], bd: list[dict]) -> str:
    lines = ["| mode | k | mean bytes | bpp | PSNR dB | bytes / JPEG at equal PSNR | encode s | "
             "decode ms | JPEG decode ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in by_mode:
        ratio = f"{m['ratio_jpeg']:.2f}×" if m["ratio_jpeg"] else "n/a"
        lines.append(f"| {m['mode']} | {m['k']} | {m['bytes']:,.0f} | {m['bpp']:.3f} | {m['psnr']:.2f} | "
                     f"{ratio} | {m['encode_s']:.2f} | {m['decode_ms']:.2f} | {m['jpeg_decode_ms']:.2f} |")
    lines += ["", "| mode | against | BD-rate (mean over images) | images |", "|---|---|---:|---:|"]
    for b in bd:
        value = f"{b['bd_rate']:+.1f} %" if b["bd_rate"] is not None else "n/a (no PSNR overlap)"
        lines.append(f"| {b['mode']} | {b['anchor']} | {value} | {b['images']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--palette", default="8,16,64,256", help="palette k values (default 8,16,64,256)")
    p.add_argument("--block", action="append", default=None, metavar="WxH:K,...",
                   help="a block mode and its k values (default 2x2:64,256,1024)")
    p.add_argument("--runs", type=int, default=7, help="decode timing runs (the fastest is kept)")
    p.add_argument("--json", default=None, help="also write every row and the summary here")
    args = p.parse_args(argv)
    modes = parse_modes(args.palette, args.block or ["2x2:64,256,1024"])
    paths = sorted(Path(args.folder).glob("*.png"))
    rows = [row for path in paths for row in measure(path, modes, args.runs)]
    by_mode, bd = summary(rows, modes)
    print(markdown(by_mode, bd))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows=rows, by_mode=by_mode, bd_rate=bd), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
