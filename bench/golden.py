"""The SHA-256 of every file the encoder writes over the corpus: record once, check after a refactor.

    .venv/bin/python bench/golden.py --record bench/golden-sha256.json   # before a change
    .venv/bin/python bench/golden.py --check bench/golden-sha256.json    # after it: every file identical

The first 16 hex digits (64 bits) of each SHA-256.  Every image of ../shared/corpus (kodak, graphics, pngsuite; unreadable ones are
recorded as errors too) at k = 2, 16, 64, 256, 1000, with the default coder
and layout, each --coder alone, and each --layout with the default coder and
with bzip2 and zstd.  An image that cannot be read or an encode that is refused records the error's class
(not its message, worded for people).  zstd's output bytes are stable only for one library version,
so the file records zstandard's and libzstd's versions and --check refuses
to compare across versions.  Runs on all cores (about 3 minutes on 2).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "..", "shared", "corpus")
KS = (2, 16, 64, 256, 1000)
# (coder, layout): None is the default
SETTINGS = [(None, None), ("ctx", None), ("bzip2", None), ("zstd", None)] + [
    (coder, layout) for coder in (None, "bzip2", "zstd") for layout in ("stripes", "bytes", "packed")
]


def images() -> list[str]:
    out = []
    for folder in ("kodak", "graphics", "pngsuite"):
        base = os.path.join(CORPUS, folder)
        out += [os.path.join(folder, n) for n in sorted(os.listdir(base)) if n.endswith(".png")]
    return out


def key(image: str, k: int, coder: str | None, layout: str | None) -> str:
    return f"{image} {k} {coder or '-'} {layout or '-'}"


def encode_all(image: str) -> dict[str, str]:
    import vqcodec

    out = {}
    try:
        px = vqcodec.pixels.load(os.path.join(CORPUS, image))
    except vqcodec.VqiError as e:
        # the class only: messages are worded for people and name the absolute path
        return {key(image, 0, None, None): f"error {type(e).__name__}"}
    for k in KS:
        for coder, layout in SETTINGS:
            options = {"k": k}
            if coder:
                options["coder"] = coder
            if layout:
                options["layout"] = layout
            try:
                value = hashlib.sha256(vqcodec.encode(px, **options)).hexdigest()[:16]
            except vqcodec.VqiError as e:
                value = f"error {type(e).__name__}"
            out[key(image, k, coder, layout)] = value
    return out


def versions() -> dict[str, str]:
    import zstandard

    return {"zstandard": zstandard.__version__, "libzstd": ".".join(map(str, zstandard.ZSTD_VERSION))}


def run() -> dict[str, str]:
    out: dict[str, str] = {}
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        for part in pool.map(encode_all, images()):
            out.update(part)
    return dict(sorted(out.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", metavar="FILE")
    group.add_argument("--check", metavar="FILE")
    args = parser.parse_args()
    if not os.path.isdir(CORPUS):
        print(f"golden: corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    if args.record:
        with open(args.record, "w") as f:
            json.dump({"versions": versions(), "files": run()}, f, indent=0, sort_keys=True)
            f.write("\n")
        return 0
    with open(args.check) as f:
        recorded = json.load(f)
    if recorded["versions"] != versions():
        print(f"golden: recorded with {recorded['versions']}, this is {versions()}: "
              "zstd's bytes cannot be compared", file=sys.stderr)
        return 2
    now = run()
    differ = [name for name in recorded["files"] if now.get(name) != recorded["files"][name]]
    extra = sorted(set(now) - set(recorded["files"]))
    for name in differ[:20]:
        print(f"differs: {name}: {recorded['files'][name][:16]} -> {str(now.get(name))[:16]}")
    print(f"golden: {len(recorded['files']) - len(differ)} of {len(recorded['files'])} identical"
          + (f", {len(extra)} new" if extra else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
