"""Exit-99 parity with pngquant over a whole corpus: which images each refuses at a quality range.

    nice .venv/bin/python bench/quality_parity.py [--corpus ../shared/corpus] [--quality 65-80]

For every PNG under the corpus that Pillow reads: ``pngquant --nofs --quality
Q`` (exit 99 or a file) against ``vqcodec.encode_target(..., quality=Q)``
(reached or not), and the images where they disagree, with vqcodec's best
k, PSNR and quality.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    ap.add_argument("--quality", default="65-80")
    args = ap.parse_args()
    import vqcodec
    from vqcodec import pixels

    out = Path(tempfile.mkdtemp(prefix="quality_parity_")) / "pq.png"
    agree, total, differ = 0, 0, []
    for path in sorted(Path(args.corpus).rglob("*.png")):
        try:
            px = pixels.load(str(path))
        except vqcodec.VqiError:
            continue  # a deliberately broken file
        result = vqcodec.encode_target(px, quality=args.quality)
        pq = subprocess.run(["pngquant", "--nofs", "--quality", args.quality, "-f", "-o", str(out),
                             str(path)], capture_output=True).returncode
        total += 1
        if (pq == 99) == (not result.reached):
            agree += 1
        else:
            differ.append((path.relative_to(args.corpus), pq, 0 if result.reached else 99, result))
    print(f"--quality {args.quality}: {agree} of {total} images get the same outcome (exit 99 or a file)")
    for name, pq, vq, r in differ:
        print(f"  {str(name):<28} pngquant exit {pq:>2}, vqcodec exit {vq:>2}: k={r.k}, "
              f"PSNR {r.psnr:.2f} dB, quality {r.quality}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
