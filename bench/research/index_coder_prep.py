"""Cache vqcodec's index maps and the lossless peers' sizes for index_coder_probe.py.

    nice .venv/bin/python bench/research/index_coder_prep.py [--corpus ../shared/corpus] [--k 16,64,256]

For each image of kodak/ and graphics/ and each k: vqcodec encodes it with
the default settings (``encode_pixels``), and the cache
(bench/research/cache/index_coder/<image>-k<k>.npz) keeps the index map, the
codebook, the .vqi size, the size of its INDX data under coder 2 (ctx,
whatever "auto" chose), the chosen coder, and the sizes of ``cjxl -d 0 -e 9``
and ``cwebp -lossless -z 9`` of the decoded pixels (checked lossless, as
bench/lossless_bench.py does).  Existing cache files are kept (delete the
folder to redo).  index_coder_probe.py runs this first when files are missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/
import lossless_bench  # noqa: E402  (its _store: the peers, checked lossless)

import vqcodec  # noqa: E402
from vqcodec import container  # noqa: E402
from vqcodec.coders import ctx  # noqa: E402

CACHE = Path(__file__).resolve().parent / "cache" / "index_coder"
DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
GROUPS = ("kodak", "graphics")


def images(corpus: Path) -> list[tuple[str, Path]]:
    return [(g, p) for g in GROUPS for p in sorted((corpus / g).glob("*.png"))]


def cache_path(path: Path, k: int) -> Path:
    return CACHE / f"{path.stem}-k{k}.npz"


def prep(corpus: Path, ks: list[int], verbose: bool = True, only: set[str] | None = None) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for group, path in images(corpus):
            if only and path.stem not in only:
                continue
            image = None
            for k in ks:
                out = cache_path(path, k)
                if out.exists():
                    continue
                if image is None:
                    image = np.asarray(Image.open(path))
                enc = vqcodec.codec.encode_pixels(image, k=k)
                indices = np.ascontiguousarray(enc.indices, dtype=np.uint8)
                codebook = np.ascontiguousarray(enc.codebook, dtype=np.uint8)
                ctx_data = ctx.encode(indices, codebook)
                ctx_bytes = len(ctx_data)
                # the file's bytes besides INDX.data (signature, HEAD, BOOK, section framing) under coder 2
                header = container.Header(width=enc.header.width, height=enc.header.height,
                                          channels=enc.header.channels, k=enc.header.k,
                                          index_layout=1, index_coder=2)
                ctx_file = container.write(header, codebook.tobytes(), indices.tobytes(),
                                           coded_index=ctx_data)
                overhead = len(ctx_file) - ctx_bytes
                pixels = vqcodec.decode(enc.data)
                png = work / f"{path.stem}-k{k}.png"
                Image.fromarray(pixels).save(png)
                jxl = lossless_bench._store("jxl", png, work)
                webp = lossless_bench._store("webp", png, work)
                np.savez_compressed(
                    out, indices=indices, codebook=codebook, vqi=len(enc.data), ctx=ctx_bytes, overhead=overhead,
                    coder=enc.header.index_coder, jxl=-1 if jxl is None else jxl,
                    webp=-1 if webp is None else webp, group=group)
                if verbose:
                    print(f"{group:9} {path.name:14} k={k:<4} vqi={len(enc.data):>7} ctx={ctx_bytes:>7} "
                          f"coder={enc.header.index_coder} jxl={jxl} webp={webp}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--k", default="16,64,256")
    args = ap.parse_args(argv)
    prep(args.corpus, [int(k) for k in args.k.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
