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

from . import io
from .errors import ExitStatus, UsageError
from .progress import ProgressLine

STDIO = "-"


def _option_list(name: str, convert: type, what: str, example: str) -> Any:
    """An argparse type: comma-separated values, each converted and checked as the encoder option *name*."""
    def parse(text: str) -> list:
        from vqcodec import OptionError, options

        values = []
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            try:
                value = convert(part)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{name} must be a comma-separated list of {what} such as {example.split()[-1]}, "
                    f"got '{text}'") from None
            try:
                values.append(options.check(name, value))
            except OptionError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        if not values:
            raise argparse.ArgumentTypeError(f"{name} needs at least one value, e.g. {example}")
        return values

    return parse


_k_values = _option_list("k", int, "whole numbers", "-k 16,64,256")
_dither_values = _option_list("dither", float, "levels from 0 to 1", "--dither 0,1")


def _k_list(text: str) -> tuple[int, ...]:
    return tuple(sorted(set(_k_values(text))))


def _dither_list(text: str) -> tuple[float, ...]:
    return tuple(dict.fromkeys(_dither_values(text)))


def block_value(text: str) -> tuple[int, int]:
    """An argparse type: WxH checked as the encoder option ``block`` (encode and rd take it)."""
    from vqcodec import OptionError, options

    try:
        return options.check("block", text)
    except OptionError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (-j, --max-pixels; '_' allowed: 1_000_000)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


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
    from vqcodec.rd import BASELINES, DEFAULT_BASELINES, DEFAULT_KS

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
    p.add_argument("--dither", dest="dithers", type=_dither_list, default=(0.0,), metavar="D,D,...",
                   help="vqcodec's dither levels to sweep, 0 to 1 (default 0: off); the table shows "
                   "plain PSNR, blurred PSNR (sigma 1 px, what dithering is for) and SSIM for each")
    p.add_argument("--csv", metavar="FILE", default=None,
                   help="write every row (image × k × codec) as CSV ('-' for stdout)")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="write rows, per-k summary and BD-rates as JSON ('-' for stdout)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw PSNR against bits per pixel (needs matplotlib: pip install -e '.[plot]')")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace the --csv, --json and --plot files if they exist")
    p.add_argument("--baselines", type=_baseline_list, default=DEFAULT_BASELINES, metavar="LIST",
                   help=f"baselines to run, of {','.join(BASELINES)} (default {','.join(DEFAULT_BASELINES)}; "
                   "jxl-lossless, cjxl -e 9 on vqcodec's pixels, is slow and asked for by name)")
    p.add_argument("--no-baselines", action="store_true", help="measure vqcodec only")
    p.add_argument("--variant", dest="variants", type=_variant, action="append", default=[],
                   metavar="NAME=VALUE[,...]",
                   help="also measure vqcodec with these encoder options (e.g. rdo=0 or coder=zstd), "
                   "as a codec of its own with its own BD-rate against the defaults; repeatable")
    p.add_argument("--seed", type=int, default=0, help="seed of vqcodec's k-means (default 0)")
    p.add_argument("--block", type=block_value, default=(1, 1), metavar="WxH",
                   help="vqcodec's vectors: blocks of WxH pixels, 1 to 8 each, as encode --block "
                   "(default 1x1)")
    p.add_argument("-j", "--jobs", type=positive_int, default=None, metavar="N",
                   help="measure N images at once in worker processes (default: the number of "
                   "cores; the rows are the same as with -j 1, the timings share the cores)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not keep or use the lossy baselines' PSNR per quality across runs (kept by "
                   "default in $XDG_CACHE_HOME/vqcodec/rd, so a second run over the same images skips "
                   "their quality search)")
    p.add_argument("--strip", action="store_true",
                   help="leave ICC profiles out of every codec's file (as encode --strip does; "
                   "by default they are kept, as encode keeps them)")
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
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
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"--{opt} and --{seen[real]} name the same file '{path}'; give two names")
        seen[real] = opt
        for src in args.inputs:
            if os.path.isfile(src) and os.path.realpath(src) == real:
                raise UsageError(f"--{opt} '{path}' is an input image; choose another output path")
        # before the sweep (minutes on a corpus): no overwrite without --force, writable
        io.check_new_file(path, force=args.force, option=f"--{opt}")


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
        raise UsageError("--plot needs matplotlib: pip install -e '.[plot]' (in vqcodec's folder)")
    _check_outputs(args)

    from vqcodec import rd

    baselines = () if args.no_baselines else args.baselines
    bar = _ProgressBar(sys.stderr)

    def warn(message: str) -> None:
        bar.clear()
        print(f"vqcodec: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)

    interrupted = False
    try:
        result = rd.sweep(
            args.inputs, ks=args.ks, baselines=baselines, variants=args.variants, seed=args.seed,
            block=args.block, dithers=args.dithers, strip=args.strip, max_pixels=args.max_pixels,
            jobs=args.jobs or _cores(), cache=not args.no_cache, progress=bar,
            on_skip=lambda path, reason: warn(
                f"{reason}; skipped" if f"'{path}'" in reason else f"skipped '{path}': {reason}"),
            on_problem=warn,
        )
    except rd.SweepInterrupted as e:  # keep what is finished: write it, then exit 130
        result, interrupted = e.result, True
    finally:
        bar.clear()
    if interrupted:
        print(f"vqcodec: interrupted; the outputs hold the {len(result.images)} image(s) "
              "finished", file=sys.stderr, flush=True)
        if not result.images:
            return ExitStatus.INTERRUPTED
    if not result.images:
        n = len(result.skipped)
        raise UsageError(
            f"no image could be measured ({n} skipped); give PNG, JPEG, BMP, TIFF, WebP, GIF "
            "or PPM images or folders of them"
        )

    table_stream = sys.stderr if STDIO in (args.csv, args.json) else None
    io.say(rd.format_table(result), table_stream)
    for path, make in ((args.csv, rd.to_csv), (args.json, rd.to_json)):
        if path is None:
            continue
        text = make(result)
        if path == STDIO:
            io.write_stdout(text)
        else:
            io.write_file(path, text.encode(), force=args.force)
    if args.plot is not None:
        io.write_file(args.plot, rd.plot_png(result), force=args.force)
    return ExitStatus.INTERRUPTED if interrupted else ExitStatus.OK


def _cores() -> int:
    from vqcodec._threads import cores

    return cores()
