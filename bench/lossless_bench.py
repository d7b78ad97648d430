"""vqcodec's index coding against the best lossless stores of the same pixels (issue 14's table).

    python bench/lossless_bench.py [--corpus ../shared/corpus] [--k 16,64,256] [--json]

For each image of the corpus's kodak/ and graphics/ folders and each k:
vqcodec encodes it (default options), decodes it, and the decoded pixels are
stored losslessly by ``cjxl -d 0 -e 9`` (JPEG XL) and ``cwebp -lossless -z 9``
(WebP), when those tools are on PATH.  Every lossless file is decoded back
and checked pixel for pixel against vqcodec's output (a store that loses a
pixel is not counted).  Printed: bytes per image, and per group and k the
mean of .vqi bytes / peer bytes (below 1: vqcodec is smaller).  The ICC
profile is not carried: vqcodec's files are written without one here.
Sizes only; no timing (issue 14's speed targets are measured with
bench/decode_bench.py and hyperfine, whole process).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import vqcodec

PEERS = {
    "jxl": (["cjxl", "-d", "0", "-e", "9", "--quiet"], ".jxl", ["djxl", "--quiet"]),
    "webp": (["cwebp", "-quiet", "-lossless", "-z", "9"], ".webp", None),
}


def _store(peer: str, png: Path, work: Path) -> int | None:
    enc, ext, dec = PEERS[peer]
    if shutil.which(enc[0]) is None:
        return None
    out = work / (png.stem + ext)
    args = [*enc, str(png), str(out)] if peer == "jxl" else [*enc, str(png), "-o", str(out)]
    subprocess.run(args, check=True, capture_output=True)
    if dec is not None:
        if shutil.which(dec[0]) is None:
            return None
        back = work / (png.stem + ".back.png")
        subprocess.run([*dec, str(out), str(back)], check=True, capture_output=True)
        got = np.asarray(Image.open(back))
    else:
        got = np.asarray(Image.open(out))
    want = np.asarray(Image.open(png))
    if got.shape != want.shape and got.ndim == 3 and want.ndim == 3 and got.shape[2] == 4 and want.shape[2] == 3:
        got = got[..., :3]  # an opaque image returned with alpha
    if got.shape != want.shape or not np.array_equal(got, want):
        print(f"  {peer} did not store {png.name} losslessly: not counted", file=sys.stderr)
        return None
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    ap.add_argument("--k", default="16,64,256")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for group in ("kodak", "graphics"):
            for path in sorted((args.corpus / group).glob("*.png")):
                image = np.asarray(Image.open(path))
                for k in ks:
                    data = vqcodec.encode(image, k=k)
                    pixels = vqcodec.decode(data)
                    png = work / f"{path.stem}-k{k}.png"
                    Image.fromarray(pixels).save(png)
                    row = {"group": group, "image": path.name, "k": k, "vqi": len(data)}
                    for peer in PEERS:
                        row[peer] = _store(peer, png, work)
                    rows.append(row)
                    if not args.json:
                        print(f"{group:9} {path.name:24} k={k:<4} vqi={len(data):>8} "
                              + " ".join(f"{p}={row[p]}" for p in PEERS), flush=True)
    summary = []
    for group in ("kodak", "graphics"):
        for k in ks:
            sel = [r for r in rows if r["group"] == group and r["k"] == k]
            entry = {"group": group, "k": k}
            for peer in PEERS:
                ratios = [r["vqi"] / r[peer] for r in sel if r[peer]]
                entry[f"vqi/{peer}"] = round(statistics.mean(ratios), 3) if ratios else None
            summary.append(entry)
    if args.json:
        json.dump({"rows": rows, "summary": summary}, sys.stdout, indent=1)
        print()
    else:
        print("\nmean .vqi bytes / peer bytes of the same pixels (below 1: vqcodec smaller)")
        for e in summary:
            print(f"{e['group']:9} k={e['k']:<4} " + "  ".join(f"{key}={e[key]}" for key in e if "/" in key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
