"""``vqcodec train IMAGES/FOLDERS -o book.vqb -k K [--block WxH]``: learn one shared codebook.

The work is :mod:`vqcodec.training` (map: sample each image; reduce: merge
the histograms; learn); this module finds the images, picks the executor
(as batch mode does: local processes, or a Dask cluster with
``--scheduler``), draws the progress bar and prints the report: the
codebook's identity, its usage by the training vectors and the entropy of
their indices.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from .errors import ExitStatus, UsageError
from .progress import ProgressLine


def _block(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or not all(1 <= int(v) <= 16 for v in match.groups()):
        raise argparse.ArgumentTypeError(f"expected WxH with each side 1 to 16 (2x2, 4x4), got '{text}'")
    return int(match.group(1)), int(match.group(2))


def add_command(sub: Any) -> None:
    from .parsers import add_executor_options
    from .parsers import _k_value, _positive_int, _whole

    p = sub.add_parser(
        "train", help="learn a shared codebook (.vqb) from many images",
        description="Learn one codebook from images and folders of images (map: sample each image's "
        "vectors; reduce: merge; learn: weighted k-means with re-seeding of dead entries) and write "
        "it as a .vqb file, for 'vqcodec encode --codebook'.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images and folders (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="BOOK", help="the .vqb file to write")
    p.add_argument("-k", type=_k_value, required=True, metavar="K", help="codebook size, 2 to 65536")
    p.add_argument("--block", type=_block, default=(1, 1), metavar="WxH",
                   help="vector shape in pixels (default 1x1: colours; 2x2, 4x4: blocks)")
    p.add_argument("--mode", choices=["L", "LA", "RGB", "RGBA"], default="RGB",
                   help="channel layout the images are converted to (default RGB)")
    p.add_argument("--samples", type=_positive_int, default=None, metavar="N",
                   help="vectors sampled per image at most (default 262,144; fewer per image "
                   "above 16 images, 4,194,304 in all)")
    p.add_argument("--seed", type=_whole("seed"), default=0, help="seed of sampling and k-means (default 0)")
    p.add_argument("--method", choices=["full", "minibatch"], default="full",
                   help="full: weighted k-means over every sampled vector (default); minibatch: "
                   "mini-batch k-means with dead entries re-seeded, one batch in memory at a time")
    add_executor_options(p)
    p.add_argument("-f", "--force", action="store_true", help="replace the output file if it exists")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    p.set_defaults(handler=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from vqcodec import batch, books, training, vqb
    from .batch import _executor, check_executor_options
    from .io import check_output, write_output

    check_executor_options(args)
    check_output(args.output, [], force=args.force)
    files, missing = batch.image_files(args.paths)
    if missing:
        raise UsageError(f"'{missing[0]}' does not exist; give images or folders that hold some")
    if not files:
        raise UsageError(f"no images found in {', '.join(args.paths)}; give files or folders that hold some")
    bar = _Progress(sys.stderr, enabled=not args.quiet)
    with _executor(args) as (executor, _window):
        result = training.train(files, k=args.k, block=args.block, mode=args.mode, seed=args.seed,
                                samples=args.samples, method=args.method, executor=executor,
                                jobs=args.jobs, progress=bar.update)
    bar.clear()
    for path, error in result.failed:
        print(f"vqcodec: error: cannot train on '{path}': {error}", file=sys.stderr)
    book = books.from_codebook(result.codebook)
    data = vqb.write(book)
    write_output(args.output, data, force=args.force)
    u = result.usage
    fields = {
        "output": args.output, "identity": book.identity.hex(), "bytes": len(data),
        "k": book.k, "k_requested": args.k, "block": f"{book.block_width}x{book.block_height}",
        "mode": args.mode, "images": result.images, "failed": len(result.failed),
        "vectors": result.vectors, "distinct_vectors": result.distinct, "used": u.used,
        "used_fraction": u.used_fraction, "index_entropy_bits": u.entropy, "mse": result.mse,
        "psnr": result.psnr if result.mse else None, "seconds": result.seconds,
    }
    if args.json:
        import json  # (only here: every encode and decode process imports this module)

        print(json.dumps(fields))
    elif not args.quiet:
        print(f"{args.output}: k = {book.k} {fields['block']} {args.mode} entries from {result.images} "
              f"images ({result.vectors:,} vectors, {result.distinct:,} distinct), {result.seconds:.1f} s")
        print(f"  identity  {fields['identity']}")
        print(f"  usage     {u.used}/{u.k} entries used ({100 * u.used_fraction:.1f} %), index entropy "
              f"{u.entropy:.2f} bits, training PSNR {result.psnr:.2f} dB")
    return ExitStatus.OK if not result.failed else ExitStatus.USAGE


class _Progress(ProgressLine):
    """`train: sampled 3/8 images` on one \\r-redrawn stderr line."""

    def __init__(self, stream: Any, *, enabled: bool) -> None:
        super().__init__(stream, enabled=enabled)

    def update(self, done: int, total: int) -> None:
        if self.due(done, total):
            self.show(f"train: sampled {done}/{total} images, {time.monotonic() - self.start:.1f} s")
