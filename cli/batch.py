"""``vqcodec encode|decode PATH... --output-dir DIR``: many files, on local processes or a Dask cluster.

The work is :mod:`vqcodec.batch`; this module picks the executor, draws the
progress bar, prints one line per failed file and the summary (or JSON).

Exit status: 0 when every file was converted; 2 when any failed (each
failure has its own ``vqcodec: error:`` line on stderr, the others are
still written); else 99 when a file's target could not be met and 98 when
a file was skipped by ``--skip-if-larger`` (each named on stderr, nothing
written for it; the others are written); 130 on Ctrl-C or SIGTERM (the files not started are
cancelled; the outputs are written atomically, so none is left half done).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, Iterator, TextIO

from . import io
from .errors import ExitStatus, UsageError
from .progress import ProgressLine

_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DASK_MISSING = "--scheduler needs Dask: pip install -e '.[dask]' (in vqcodec's folder)"


def check_executor_options(args: argparse.Namespace) -> None:
    """Refuse -j with --scheduler; one BLAS thread per worker process (as Dask's workers have)."""
    if args.jobs is not None and args.scheduler is not None:
        raise UsageError("-j and --scheduler do not go together; the cluster has its own workers")
    for name in _BLAS_THREADS:
        os.environ.setdefault(name, "1")


def run(args: argparse.Namespace, what: str) -> int:
    """Run the batch that *args* describes; *what* is "encode" or "decode"."""
    from vqcodec import batch

    plan, options = _plan(args, what)
    if not plan.total:
        kind = "images" if what == "encode" else ".vqi files"
        raise UsageError(f"no {kind} found in {', '.join(args.paths)}; give files or folders that hold some")
    quiet = args.quiet
    bar = _Progress(sys.stderr, plan.total, what, enabled=not quiet)
    results: list[batch.Result] = []
    start = time.perf_counter()
    new_folders = [] if args.output_dir is None else _folders_to_make(plan, args.output_dir)
    try:
        with _executor(args) as (executor, window):
            if args.output_dir is not None:  # None with --ext: beside the inputs
                _make_output_dir(args.output_dir, plan)
            with contextlib.closing(batch.run(plan, executor=executor, jobs=args.jobs,
                                              window=window, **options)) as stream:
                for result in stream:
                    results.append(result)
                    if result.error is not None:
                        bar.clear()
                        _error_line(what, result)
                    bar.update(result)
    finally:
        bar.clear()
        _remove_empty(new_folders)  # a failed or interrupted batch leaves no empty folder
    summary = batch.summarize(results, time.perf_counter() - start)
    if quiet:
        pass
    elif args.json:
        io.say(json.dumps({"command": what, "files": [r.as_dict() for r in results],
                           "summary": summary.as_dict()}))
    else:
        io.say(summary_table(summary, what))
    if summary.failed:
        return ExitStatus.USAGE
    if summary.unreachable:
        return ExitStatus.TARGET_UNREACHABLE
    return ExitStatus.NOT_SMALLER if summary.larger else ExitStatus.OK


def _plan(args: argparse.Namespace, what: str) -> tuple[Any, dict[str, Any]]:
    """The plan and the worker's options, after checking the options."""
    from vqcodec import OptionError, batch

    check_executor_options(args)
    out = args.output_dir  # None with --ext alone: each output beside its input
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--output-dir '{out}' is a file; give a folder")
    ext = getattr(args, "ext", None)
    if what == "encode":
        from .parsers import encode_options

        plan = batch.plan_encode(args.paths, out, overwrite=args.force,
                                 skip_existing=args.skip_existing, suffix=ext or batch.VQI_SUFFIX)
        options = dict(options=encode_options(args), measure=not args.quiet)
    else:
        fmt = args.format or (_format_of(ext) if ext else "PNG")
        try:
            plan = batch.plan_decode(args.paths, out, format=fmt, overwrite=args.force,
                                     skip_existing=args.skip_existing, suffix=ext)
        except OptionError as e:
            raise UsageError(f"--format {fmt}: {e}") from None
        from .commands import lossy_options

        options = dict(format=fmt, max_pixels=args.max_pixels, codebook=args.codebook,
                       quality=lossy_options(args, fmt).get("quality"))
    options["overwrite"] = args.force
    return plan, options


def _make_output_dir(output_dir: str | None, plan: Any) -> None:
    if plan.jobs and output_dir is not None:
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create --output-dir '{output_dir}': {e.strerror or e}") from None


def _folders_to_make(plan: Any, output_dir: str | None) -> list[str]:
    """The folders the plan's outputs need that do not exist yet, deepest first (none beside the
    inputs, --ext)."""
    if output_dir is None:
        return []
    top = os.path.abspath(output_dir)
    missing: set[str] = set()
    for job in plan.jobs:
        folder = os.path.dirname(os.path.abspath(job.target))
        while folder not in missing and not os.path.isdir(folder):
            missing.add(folder)
            if folder == top or os.path.dirname(folder) == folder:
                break
            folder = os.path.dirname(folder)
    return sorted(missing, key=lambda f: f.count(os.sep), reverse=True)


def _remove_empty(folders: list[str]) -> None:
    """Remove those of *folders* (made by this run, deepest first) that are empty."""
    for folder in folders:
        try:
            os.rmdir(folder)  # fails, as it should, when the folder holds anything
        except OSError:
            pass


def _format_of(ext: str) -> str:
    """The image format that an --ext names (decode)."""
    from vqcodec import OptionError, pixels

    try:
        return pixels.format_for_path("x" + ext)
    except OptionError as e:
        raise UsageError(f"--ext {ext}: {e}, or give --format") from None


@contextlib.contextmanager
def _executor(args: argparse.Namespace) -> Iterator[tuple[Any, int | None]]:
    """(executor, window): None for the library's own process pool, or a Dask cluster's."""
    if args.scheduler is None:
        yield None, None
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise UsageError(DASK_MISSING) from None
    try:
        client = Client(args.scheduler, timeout=15)
    except (OSError, TimeoutError, ValueError) as e:
        raise UsageError(f"cannot reach the Dask scheduler at '{args.scheduler}': {e}; "
                         "check the address (tcp://HOST:8786)") from None
    try:
        threads = sum(client.nthreads().values())
        yield client.get_executor(pure=False), max(4, 2 * threads)
    finally:
        client.close()


def _error_line(what: str, result: Any) -> None:
    from .commands import missing_codebook

    message = missing_codebook(result.error)  # a worker's missing codebook: name the flag
    if f"'{result.source}'" not in message:  # most errors name the file already
        message = f"cannot {what} '{result.source}': {message}"
    if message.endswith(f"'{result.target}' exists"):  # the library gives no CLI advice
        message += "; use --force to replace it"
    elif message.endswith("(max_pixels)"):
        message += "; raise the limit with --max-pixels if you trust this file"
    message = " ".join(message.split())
    print(f"vqcodec: error: {message}", file=sys.stderr, flush=True)


class _Progress(ProgressLine):
    """`encode 12/80 files, 3.4 files/s, 1.2 MB saved` on one \\r-redrawn stderr line."""

    def __init__(self, stream: TextIO, total: int, what: str, *, enabled: bool) -> None:
        super().__init__(stream, enabled=enabled)
        self.total, self.what = total, what
        self.done = self.bytes_in = self.bytes_out = 0

    def update(self, result: Any) -> None:
        self.done += 1
        if result.ok:
            self.bytes_in += result.bytes_in
            self.bytes_out += result.bytes_out
        if not self.due(self.done, self.total):
            return
        rate = self.done / max(time.monotonic() - self.start, 1e-9)
        if self.what == "encode":
            size = f"{_megabytes(self.bytes_in - self.bytes_out)} saved"
        else:
            size = f"{_megabytes(self.bytes_out)} written"
        self.show(f"{self.what} {self.done}/{self.total} files, {rate:.1f} files/s, {size}")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def summary_table(summary: Any, what: str) -> str:
    """The summary as aligned `name  value` rows."""
    def fmt(value: float | None, spec: str, unit: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{unit}"

    rows = [
        ("files", f"{summary.ok} ok, {summary.failed} failed"
                  + (f", {summary.unreachable} target not reached" if summary.unreachable else "")
                  + (f", {summary.larger} not smaller" if summary.larger else "")
                  + (f", {summary.existing} existing skipped" if summary.existing else "")),
        ("input", f"{summary.bytes_in:,} bytes"),
        ("output", f"{summary.bytes_out:,} bytes"),
    ]
    if what == "encode":  # a decode's ratio and bits per pixel would describe its inputs
        rows.append(("ratio", fmt(summary.ratio, ".2f", "×")
                     + (" (input / output)" if summary.ratio else "")))
        rows.append(("mean bpp", fmt(summary.mean_bpp, ".3f")))
        rows.append(("mean PSNR", _psnr_summary(summary)))
    time_text = f"{summary.seconds:.2f} s"
    if summary.ok and summary.seconds > 0:
        time_text += f" ({summary.ok / summary.seconds:.2f} files/s)"
    rows.append(("time", time_text))
    return "\n".join(f"{name:<10} {value}" for name, value in rows)


def _psnr_summary(summary: Any) -> str:
    """The mean PSNR, saying which files it covers (lossless ones have no finite PSNR)."""
    lossless = summary.lossless
    if summary.mean_psnr is None:
        return "-"
    if summary.mean_psnr == float("inf"):
        return f"inf (all {lossless} lossless)"
    if not lossless:
        return f"{summary.mean_psnr:.2f} dB"
    return f"{summary.mean_psnr:.2f} dB over the lossy files ({lossless} lossless left out)"
