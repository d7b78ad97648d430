"""Issue 14's speed targets: encode (whole process) and decode (in process), per index coder.

    python bench/index_speed.py [--corpus ../shared/corpus] [--images kodim02,kodim06,kodim08]
                                [--k 256] [--coders auto,cand] [--runs 21] [--encode-runs 7] [--json]

Decode, in process, from bytes already in memory, the way a program calls it:
``vqcodec.decode(data)`` for each coder's .vqi against Pillow decoding
pngquant's PNG8 of the same image to RGB,
``np.asarray(Image.open(BytesIO(png8)).convert("RGB"))``.  Encode, whole
process from the shell: ``vqcodec encode -k K IMAGE -o OUT -f [--coder C]``
against ``pngquant --nofs K IMAGE -o OUT --force``, with compiled bytecode as a
user's install has it (bench/user_process.py).  Each measurement
alternates the contenders run by run (the machine is shared and noisy) and
reports medians and the ratio to the peer measured in the same run.  Every
decode is first checked: the coders give the same pixels, and pngquant's
PNG8 decodes to an image of the same size.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import vqcodec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from user_process import VQCODEC, run as _run, warm  # noqa: E402



def _alternate(fns: dict, runs: int) -> dict[str, float]:
    """Median milliseconds of each function, called in turn run by run."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    ap.add_argument("--images", default="kodim02,kodim06,kodim08")
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--coders", default="auto,cand")
    ap.add_argument("--runs", type=int, default=21, help="decode runs per contender (default 21)")
    ap.add_argument("--encode-runs", type=int, default=7, help="encode runs per contender (default 7)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if shutil.which("pngquant") is None:
        print("pngquant is not on PATH (apt-get install pngquant)", file=sys.stderr)
        return 2
    coders = args.coders.split(",")
    warm()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for stem in args.images.split(","):
            src = args.corpus / "kodak" / f"{stem}.png"
            png8_path = work / f"{stem}-pq.png"
            _run(["pngquant", "--nofs", "--force", "-o", str(png8_path), str(args.k), str(src)])
            png8 = png8_path.read_bytes()
            files = {c: work / f"{stem}-{c}.vqi" for c in coders}
            for coder, out in files.items():
                _run([VQCODEC, "encode", "-k", str(args.k), "--coder", coder, str(src), "-o", str(out), "-f"])
            data = {c: f.read_bytes() for c, f in files.items()}
            pixels = [vqcodec.decode(d) for d in data.values()]
            if any(not np.array_equal(p, pixels[0]) for p in pixels):
                raise SystemExit(f"{stem}: the coders decode to different pixels")
            pillow = np.asarray(Image.open(io.BytesIO(png8)).convert("RGB"))
            if pillow.shape != pixels[0].shape:
                raise SystemExit(f"{stem}: pngquant's PNG8 is {pillow.shape}, vqcodec's {pixels[0].shape}")
            decode = _alternate({**{c: (lambda d=d: vqcodec.decode(d)) for c, d in data.items()},
                                 "pillow": lambda: np.asarray(Image.open(io.BytesIO(png8)).convert("RGB"))},
                                args.runs)
            encode = _alternate({**{c: (lambda c=c, out=out: _run([VQCODEC, "encode", "-k", str(args.k), "--coder",
                                                                     c, str(src), "-o", str(out), "-f"]))
                                    for c, out in files.items()},
                                 "pngquant": lambda: _run(["pngquant", "--nofs", "--force", "-o", str(png8_path),
                                                           str(args.k), str(src)])},
                                args.encode_runs)
            row = {"image": stem, "k": args.k, "png8_bytes": len(png8),
                   **{f"{c}_bytes": len(d) for c, d in data.items()},
                   "decode_ms": {n: round(v, 2) for n, v in decode.items()},
                   "encode_ms": {n: round(v, 1) for n, v in encode.items()}}
            rows.append(row)
            if not args.json:
                print(f"{stem} k={args.k}: bytes " + " ".join(f"{c}={len(d)}" for c, d in data.items())
                      + f" png8={len(png8)}")
                print("  decode ms  " + "  ".join(f"{n} {v:.2f}" for n, v in decode.items())
                      + "   " + "  ".join(f"{c}/pillow {decode[c] / decode['pillow']:.2f}" for c in coders))
                print("  encode ms  " + "  ".join(f"{n} {v:.0f}" for n, v in encode.items())
                      + "   " + "  ".join(f"{c}/pngquant {encode[c] / encode['pngquant']:.2f}" for c in coders),
                      flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
