"""``vqcodec rd``: the rate–distortion sweep from the command line.

The work is :func:`vqcodec.rd.sweep`; this module parses the options, checks
the outputs before the sweep starts, draws the progress bar, prints the
table and writes the CSV, JSON and plot files.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .errors import UsageError
from .progress import ProgressLine

STDIO = "-"


def _k_list(text: str) -> tuple[int, ...]:
    from vqcodec import OptionError, options

    values = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"k must be a comma-separated list of whole numbers such as 16,64,256, got '{text}'"
            ) from None
        try:
            values.append(options.check("k", value))
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    if not values:
        raise argparse.ArgumentTypeError("k needs at least one value, e.g. -k 16,64,256")
    return tuple(sorted(set(values)))


def block_value(text: str) -> tuple[int, int]:
    """An argparse type: WxH checked as the encoder option ``block`` (encode and rd take it)."""
    from vqcodec import OptionError, options

    try:
        return options.check("block", text)
    except OptionError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _baseline_list(text: str) -> tuple[str, ...]:
    from vqcodec.rd import BASELINES

    names = tuple(p for p in text.replace(" ", "").lower().split(",") if p)
    for name in names:
        if name not in BASELINES:
            raise argparse.ArgumentTypeError(
                f"unknown baseline '{name}'; choose from {','.join(BASELINES)}"
            )
    return names


def _variant(text: str) -> dict[str, Any]:
    """'rdo=0,coder=zstd' -> {"rdo": 0, "coder": "zstd"}, each value checked as that option."""
    from vqcodec import OptionError, options

    changes: dict[str, Any] = {}
    for part in (p for p in text.replace(" ", "").split(",") if p):
        name, equals, raw = part.partition("=")
        if not equals or not name or not raw:
            raise argparse.ArgumentTypeError(f"a variant is NAME=VALUE[,NAME=VALUE...] such as rdo=0, got '{text}'")
        if name not in options.NAMES or name in ("k", "max_pixels"):
            settable = ", ".join(n for n in options.NAMES if n not in ("k", "max_pixels"))
            raise argparse.ArgumentTypeError(f"a variant sets one of {settable}; got '{name}'")
        value: Any = raw
        for convert in (int, float):
            try:
                value = convert(raw)
                break
            except ValueError:
                pass
        try:
            options.check(name, value)
            changes[name] = value  # as typed, so the variant is named as the user wrote it
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    if not changes:
        raise argparse.ArgumentTypeError("a variant needs at least one NAME=VALUE, e.g. --variant rdo=0")
    return changes


def add_command(sub: Any) -> None:
    from vqcodec import DEFAULT_MAX_PIXELS
    from vqcodec.rd import BASELINES, DEFAULT_KS

    p = sub.add_parser(
        "rd",
        help="rate–distortion sweep over k, against pngquant, PNG, WebP, AVIF, JPEG and lossless JPEG XL",
        description="Encode every image (folders are searched recursively) at every k and "
        "print per-k means across images: vqcodec's bits per pixel, PSNR, SSIM and speed; "
        "pngquant --nofs at the same k; lossless PNG; WebP, AVIF and JPEG at the smallest "
        "quality that reaches vqcodec's PSNR; JPEG XL and WebP lossless storing vqcodec's own "
        "decoded pixels; then the BD-rate of vqcodec against each baseline (needs at least 2 "
        "values of k). --variant adds vqcodec with other encoder options as a codec of its own. Images with alpha are measured over "
        "premultiplied RGBA. A file that cannot be read is reported and skipped.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="images and folders of images")
    p.add_argument("-k", dest="ks", type=_k_list, default=DEFAULT_KS, metavar="K,K,...",
                   help=f"codebook sizes to sweep (default {','.join(map(str, DEFAULT_KS))})")
    p.add_argument("--csv", metavar="FILE", default=None,
                   help="write every row (image × k × codec) as CSV ('-' for stdout)")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="write rows, per-k summary and BD-rates as JSON ('-' for stdout)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw PSNR against bits per pixel (needs: pip install 'vqcodec[plot]')")
    p.add_argument("--baselines", type=_baseline_list, default=BASELINES, metavar="LIST",
                   help=f"baselines to run (default {','.join(BASELINES)})")
    p.add_argument("--no-baselines", action="store_true", help="measure vqcodec only")
    p.add_argument("--variant", dest="variants", type=_variant, action="append", default=[],
                   metavar="NAME=VALUE[,...]",
                   help="also measure vqcodec with these encoder options (e.g. rdo=0 or coder=zstd), "
                   "as a codec of its own with its own BD-rate against the defaults; repeatable")
    p.add_argument("--seed", type=int, default=0, help="seed of vqcodec's k-means (default 0)")
    p.add_argument("--block", type=block_value, default=(1, 1), metavar="WxH",
                   help="vqcodec's vectors: blocks of WxH pixels, 1 to 8 each, as encode --block "
                   "(default 1x1)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"skip images above N pixels (default {DEFAULT_MAX_PIXELS:,})")
    p.set_defaults(handler=cmd_rd)


def _check_outputs(args: argparse.Namespace) -> None:
    outputs = [(opt, getattr(args, opt)) for opt in ("csv", "json", "plot")]
    stdio = [opt for opt, path in outputs if path == STDIO]
    if "plot" in stdio:
        raise UsageError("--plot needs a file name; give e.g. --plot rd.png")
    if len(stdio) > 1:
        raise UsageError("only one of --csv and --json can be '-' (stdout); give the other a file name")
    seen: dict[str, str] = {}
    for opt, path in outputs:
        if path is None or path == STDIO:
            continue
        if os.path.isdir(path):
            raise UsageError(f"--{opt} '{path}' is a folder; give a file name")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write --{opt} '{path}': folder '{folder}' does not exist; create it first")
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"--{opt} and --{seen[real]} name the same file '{path}'; give two names")
        seen[real] = opt
        for src in args.inputs:
            if os.path.isfile(src) and os.path.realpath(src) == real:
                raise UsageError(f"--{opt} '{path}' is an input image; choose another output path")


class _ProgressBar(ProgressLine):
    """``rd [####....] 12/48 kodim03.png k=64``."""

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.due(done, total):
            filled = 24 * done // total
            self.show(f"rd [{'#' * filled}{'.' * (24 - filled)}] {done}/{total} {what}")


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def cmd_rd(args: argparse.Namespace) -> int:
    if args.plot is not None and not _have_matplotlib():
        raise UsageError("--plot needs matplotlib; pip install 'vqcodec[plot]'")
    if args.max_pixels < 1:
        raise UsageError(f"--max-pixels must be a positive number, got {args.max_pixels}")
    _check_outputs(args)

    from vqcodec import fileio, rd

    baselines = () if args.no_baselines else args.baselines
    bar = _ProgressBar(sys.stderr)

    def warn(message: str) -> None:
        bar.clear()
        print(f"vqcodec: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)

    try:
        result = rd.sweep(
            args.inputs, ks=args.ks, baselines=baselines, variants=args.variants, seed=args.seed,
            block=args.block,
            max_pixels=args.max_pixels, progress=bar,
            on_skip=lambda path, reason: warn(f"skipped '{path}': {reason}"),
            on_problem=warn,
        )
    finally:
        bar.clear()
    if not result.images:
        n = len(result.skipped)
        raise UsageError(
            f"no image could be measured ({n} skipped); give PNG, JPEG, BMP, TIFF, WebP, GIF "
            "or PPM images or folders of them"
        )

    table_stream = sys.stderr if STDIO in (args.csv, args.json) else sys.stdout
    print(rd.format_table(result), file=table_stream, flush=True)
    for path, make in ((args.csv, rd.to_csv), (args.json, rd.to_json)):
        if path is None:
            continue
        text = make(result)
        if path == STDIO:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            _write(fileio, path, text.encode())
    if args.plot is not None:
        _write(fileio, args.plot, rd.plot_png(result))
    return 0


def _write(fileio: Any, path: str, data: bytes) -> None:
    try:
        fileio.atomic_write(path, data, overwrite=True)
    except OSError as e:
        raise UsageError(f"cannot write '{path}': {e.strerror or e}") from None
