"""vqcodec's index coding against the best lossless stores of the same pixels (issue 14's table).

    python bench/lossless_bench.py [--corpus ../shared/corpus] [--k 16,64,256]
                                   [--coders auto,cand] [--no-cache] [--json]

For each image of the corpus's kodak/ and graphics/ folders and each k:
vqcodec encodes it (default options, once per index coder of ``--coders``:
``auto`` is the default choice, ``cand`` index coder 3; the coder does not
change the pixels, which is checked), decodes it, and the decoded pixels are
stored losslessly by ``cjxl -d 0 -e 9`` (JPEG XL) and ``cwebp -lossless -z 9``
(WebP), when those tools are on PATH.  Every lossless file is decoded back
and checked pixel for pixel against vqcodec's output (a store that loses a
pixel is not counted).  Printed: bytes per image, and per group and k the
mean of .vqi bytes / peer bytes (below 1: vqcodec is smaller).  The ICC
profile is not carried: vqcodec's files are written without one here.
Sizes only; no timing (issue 14's speed targets are measured with
bench/index_speed.py).

cjxl at effort 9 takes about a minute an image, so the peers' sizes are
kept in ``$XDG_CACHE_HOME/vqcodec/lossless-bench.json`` (``~/.cache`` by
default), keyed by the SHA-256 of the decoded pixels and the peer's command
line; ``--no-cache`` stores every image again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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


def _cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "vqcodec" / "lossless-bench.json"


def _key(peer: str, pixels: np.ndarray) -> str:
    digest = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
    return f"{' '.join(PEERS[peer][0])} {digest}"


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
    ap.add_argument("--coders", default="auto,cand", help="index coders to encode with (default auto,cand)")
    ap.add_argument("--no-cache", action="store_true", help="store every image with the peers again")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    coders = args.coders.split(",")
    cache_path = _cache_file()
    cache = {} if args.no_cache or not cache_path.exists() else json.loads(cache_path.read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for group in ("kodak", "graphics"):
            for path in sorted((args.corpus / group).glob("*.png")):
                image = np.asarray(Image.open(path))
                for k in ks:
                    row = {"group": group, "image": path.name, "k": k}
                    pixels = None
                    for coder in coders:
                        data = vqcodec.encode(image, k=k, coder=coder)
                        decoded = vqcodec.decode(data)
                        if pixels is not None and not np.array_equal(decoded, pixels):
                            raise SystemExit(f"{path.name} k={k}: coder {coder} changed the pixels")
                        pixels = decoded
                        row[f"vqi:{coder}"] = len(data)
                    png = work / f"{path.stem}-k{k}.png"
                    Image.fromarray(pixels).save(png)
                    for peer in PEERS:
                        key = _key(peer, pixels)
                        if key not in cache:
                            cache[key] = _store(peer, png, work)
                            if cache[key] is not None:
                                cache_path.parent.mkdir(parents=True, exist_ok=True)
                                cache_path.write_text(json.dumps(cache, indent=0))
                        row[peer] = cache[key]
                    rows.append(row)
                    if not args.json:
                        print(f"{group:9} {path.name:24} k={k:<4} "
                              + " ".join(f"{c}={row[f'vqi:{c}']:>8}" for c in coders) + " "
                              + " ".join(f"{p}={row[p]}" for p in PEERS), flush=True)
    summary = []
    for group in ("kodak", "graphics"):
        for k in ks:
            sel = [r for r in rows if r["group"] == group and r["k"] == k]
            entry = {"group": group, "k": k}
            for coder in coders:
                for peer in PEERS:
                    ratios = [r[f"vqi:{coder}"] / r[peer] for r in sel if r[peer]]
                    entry[f"{coder}/{peer}"] = round(statistics.mean(ratios), 3) if ratios else None
                if coder != coders[0]:
                    ratios = [r[f"vqi:{coder}"] / r[f"vqi:{coders[0]}"] for r in sel]
                    entry[f"{coder}/{coders[0]}"] = round(statistics.mean(ratios), 3)
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
