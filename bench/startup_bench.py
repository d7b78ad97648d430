"""What a vqcodec process costs before and beyond its work: start-up against the floor.

    python bench/startup_bench.py [--image ../shared/corpus/kodak/kodim02.png] [--k 256] [--runs 15]

Every command a user types is a fresh Python process.  Timed whole from the
shell, with compiled bytecode as an installed vqcodec has it
(bench/user_process.py), alternated run by run, medians:

* ``python -c pass``: the interpreter alone;
* ``python -c "import numpy, PIL.Image"``: the floor, what any numpy and
  Pillow program pays before it does anything;
* ``python -c "import vqcodec"``, ``vqcodec info``, ``vqcodec decode`` (to
  PNG) and ``vqcodec encode -k K`` of one image;
* ``pngquant --nofs K`` of the same image, the peer issue 14 measures the
  encode against.

Printed: each median, what it adds above the floor, and its ratio to
pngquant's time.  tests/test_startup.py keeps the imports this bench
measured as avoidable out of those processes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from user_process import VQCODEC, env, warm  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared" / "corpus" / "kodak" / "kodim02.png")
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args(argv)
    if not args.image.is_file():
        print(f"no image at {args.image} (--image PATH)", file=sys.stderr)
        return 2
    warm()
    python, image, k = sys.executable, str(args.image), str(args.k)
    with tempfile.TemporaryDirectory() as tmp:
        vqi, png, png8 = (str(Path(tmp) / name) for name in ("a.vqi", "a.png", "a-pq.png"))
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "import numpy, PIL.Image": [python, "-c", "import numpy, PIL.Image"],
            "import vqcodec": [python, "-c", "import vqcodec"],
            "vqcodec encode": [VQCODEC, "encode", image, vqi, "-k", k, "-f"],
            "vqcodec info": [VQCODEC, "info", vqi],
            "vqcodec decode": [VQCODEC, "decode", vqi, png, "-f"],
        }
        if shutil.which("pngquant"):
            commands["pngquant"] = ["pngquant", "--nofs", "--force", "-o", png8, k, image]
        e = env()
        times: dict[str, list[float]] = {name: [] for name in commands}
        for run in range(args.runs + 1):  # the first round only warms the caches
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=e)
                if run:
                    times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    floor = median["import numpy, PIL.Image"]
    print(f"{args.image.name}, k = {args.k}, medians of {args.runs} alternated runs")
    print(f"{'':26s} {'ms':>7s} {'above floor':>12s} {'/ pngquant':>11s}")
    for name, ms in median.items():
        ratio = f"{ms / median['pngquant']:11.2f}" if "pngquant" in median else ""
        print(f"{name:26s} {ms:7.1f} {ms - floor:+12.1f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
