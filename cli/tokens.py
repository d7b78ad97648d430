"""``vqcodec tokens PATH... --output-dir DIR --codebook BOOK``: a folder of images to ``.npy`` token grids.

The work is :func:`vqcodec.tokenizer.tokenize_file` on batch mode's
executors (local processes, or a Dask cluster with ``--scheduler``); this
module plans the outputs as batch encoding does (mirrored folders, ``.npy``
instead of ``.vqi``), prints one line per failed file and the summary: the
tokens' use of the codebook and their entropy, next to the mean PSNR and SSIM of the
detokenized images.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import Any

from .errors import ExitStatus, UsageError
from .progress import ProgressLine


def add_command(sub: Any) -> None:
    from .parsers import add_executor_options

    p = sub.add_parser(
        "tokens", help="turn images into .npy grids of codebook indices (tokens)",
        description="Map every image to a shared codebook and write its grid of indices (one per "
        "block of the codebook's shape) as a .npy file under --output-dir DIR, mirroring the input folders; "
        "report the codebook's usage, the tokens' entropy and the PSNR and SSIM of the rebuilt images.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images and folders (searched recursively)")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder of the .npy files")
    p.add_argument("--codebook", required=True, metavar="BOOK",
                   help="the codebook: a .vqb file (vqcodec train), a .gpl or a palette image")
    add_executor_options(p)
    p.add_argument("-f", "--force", action="store_true", help="replace existing .npy files")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing (and skip the PSNR)")
    p.set_defaults(handler=cmd_tokens)


def cmd_tokens(args: argparse.Namespace) -> int:
    import numpy as np

    from vqcodec import batch, books, tokenizer

    from .batch import _error_line, _executor, check_executor_options

    check_executor_options(args)
    book = books.to_codebook(args.codebook)  # a bad codebook: one line before any work
    plan = batch.plan_tokens(args.paths, args.output_dir, overwrite=args.force)
    if not plan.total:
        raise UsageError(f"no images found in {', '.join(args.paths)}; give files or folders that hold some")
    counts = np.zeros(len(book), np.int64)
    failed = ok = 0
    psnrs: list[float] = []
    ssims: list[float] = []
    for result in plan.failed:
        _error_line("tokenize", result)
        failed += 1
    bar = ProgressLine(sys.stderr, enabled=not args.quiet)
    start = time.perf_counter()
    calls = [(os.path.abspath(j.source), os.path.abspath(j.target)) for j in plan.jobs]
    if calls:
        os.makedirs(args.output_dir, exist_ok=True)
    with _executor(args) as (executor, window):
        with contextlib.closing(batch.imap_unordered(
                tokenizer.tokenize_file, calls, executor=executor, jobs=args.jobs, window=window,
                codebook=os.path.abspath(args.codebook), overwrite=args.force,
                measure=not args.quiet)) as stream:
            for i, future in stream:
                result, found, ssim = future.result()
                job = plan.jobs[i]
                if found is None:
                    bar.clear()
                    _error_line("tokenize", batch.Result(job.source, job.target, error=result.error))
                    failed += 1
                else:
                    ok += 1
                    counts += found
                    if result.psnr is not None:
                        psnrs.append(result.psnr)
                    if ssim is not None:
                        ssims.append(ssim)
                if bar.due(ok + failed, plan.total):
                    bar.show(f"tokens {ok + failed}/{plan.total} files")
    bar.clear()
    u = tokenizer.Usage.of_counts(counts, len(book))
    finite = [p for p in psnrs if p != float("inf")]
    summary = {"files": ok, "failed": failed, "tokens": int(counts.sum()), "k": len(book),
               "block": f"{book.block[0]}x{book.block[1]}", "used": u.used, "used_fraction": u.used_fraction,
               "entropy_bits": u.entropy, "mean_psnr": sum(finite) / len(finite) if finite else None,
               "mean_ssim": sum(ssims) / len(ssims) if ssims else None,
               "dtype": np.dtype(tokenizer.token_dtype(len(book))).name,
               "seconds": time.perf_counter() - start}
    if args.json:
        import json  # (only here: every encode and decode process imports this module)

        print(json.dumps(summary))
    elif not args.quiet:
        psnr = "-" if summary["mean_psnr"] is None else f"{summary['mean_psnr']:.2f} dB"
        print(f"files      {ok} ok, {failed} failed -> {args.output_dir} ({summary['dtype']} .npy)")
        print(f"tokens     {summary['tokens']:,} of {summary['block']} blocks")
        print(f"usage      {u.used}/{u.k} entries ({100 * u.used_fraction:.1f} %), entropy {u.entropy:.2f} bits")
        ssim = "-" if summary["mean_ssim"] is None else f"{summary['mean_ssim']:.4f}"
        print(f"mean PSNR  {psnr}, SSIM {ssim}")
    return ExitStatus.OK if failed == 0 else ExitStatus.USAGE
