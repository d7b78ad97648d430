"""The parsers of encode, decode and info, and what their arguments mean.

The argument types (each checked by the encoder option of the same name),
the parser builders and :func:`encode_options` (the parsed arguments as an
:class:`~vqcodec.options.EncodeOptions`).  The handlers that act on the
parsed arguments are in :mod:`.commands`, which attaches them; this module
imports none of them.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from . import rd

_positive_int = rd.positive_int  # (batch mode, train and tokens take it from here)


def _k_value(text: str) -> int:
    from vqcodec.limits import MAX_K, MIN_K

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"k must be a whole number from {MIN_K} to {MAX_K}, got '{text}'") from None
    return _checked("k", value)


def _checked(name: str, value: object) -> Any:
    """*value* checked as the encoder option *name* (vqcodec.options: the one check)."""
    from vqcodec import OptionError, options

    try:
        return options.check(name, value)
    except OptionError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _whole(name: str) -> Any:
    """An argparse type: a whole number, then the encoder's check of option *name*."""
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got '{text}'") from None
        return _checked(name, value)

    return parse


def encode_options(args: argparse.Namespace) -> Any:
    """The EncodeOptions that the encode command's arguments name (checked there once)."""
    from vqcodec.options import EncodeOptions

    chosen = {name: getattr(args, name) for name in ("k", "seed", "rdo", "dither", "coder", "layout", "level",
                                                     "block", "strip", "codebook", "psnr", "quality",
                                                     "max_bytes", "bpp", "speed")
              if getattr(args, name, None) is not None}
    if getattr(args, "skip_if_larger", False):
        chosen["skip_if_larger"] = True
    return EncodeOptions(max_pixels=args.max_pixels, **chosen)


def _number(name: str) -> Any:
    """An argparse type: a number, then the encoder's check of option *name*."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got '{text}'") from None
        return _checked(name, value)

    return parse


def _quality_value(text: str) -> tuple[int, int]:
    return _checked("quality", text)


def _add_target_options(enc: argparse.ArgumentParser) -> None:
    """--psnr, --quality, --max-bytes, --bpp (one of them) and --skip-if-larger."""
    group = enc.add_argument_group(
        "targets", "say the result, not k: the encoder chooses the codebook size (at most -k, "
        "default 256) and reports it; exit 99 and nothing written when the target cannot be met")
    one = group.add_mutually_exclusive_group()
    one.add_argument("--psnr", type=_number("psnr"), default=None, metavar="DB",
                     help="the smallest file whose PSNR is at least DB")
    one.add_argument("--quality", type=_quality_value, default=None, metavar="MIN-MAX",
                     help="pngquant's quality 0-100: the fewest colours that meet MAX; "
                     "below MIN nothing is written (exit 99). Also N (= 0.9N-N), -N, N-")
    one.add_argument("--max-bytes", type=_whole("max_bytes"), default=None, metavar="N",
                     help="the best PSNR whose file fits in N bytes")
    one.add_argument("--bpp", type=_number("bpp"), default=None, metavar="B",
                     help="the best PSNR within B bits per pixel")
    group.add_argument("--skip-if-larger", action="store_true",
                       help="write nothing (exit 98) when the .vqi file would not be smaller "
                       "than the input file")


def _extension(text: str) -> str:
    """--ext: a file-name ending such as .vqi or -small.vqi (no folder)."""
    if not text or "/" in text or os.sep in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"expected a file-name ending such as .vqi, got '{text}'")
    return text


def _rdo_value(text: str) -> float:
    from vqcodec.options import RDO_RANGE

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"rdo must be a number from {RDO_RANGE[0]:g} to {RDO_RANGE[1]:g}, got '{text}'") from None
    return _checked("rdo", value)


def _quality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"quality must be a whole number from 1 to 100, got '{text}'")
    return value


def _dither_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        # the flag alone takes the next word: most often a path that followed it
        raise argparse.ArgumentTypeError(
            f"dither must be a number from 0 to 1, got '{text}'; before a path write the level "
            "(--dither 1 or --dither=1), or put --dither after the paths") from None
    return _checked("dither", value)


def add_encode(sub: Any) -> argparse.ArgumentParser:
    from vqcodec import DEFAULT_K, DEFAULT_MAX_PIXELS, coders

    enc = sub.add_parser(
        "encode",
        help="compress an image to .vqi",
        description="Compress an image (PNG, JPEG, BMP, TIFF, WebP, GIF, PPM, ...) to .vqi "
        "and print a report line: size, bits per pixel, compression ratios, MSE, PSNR, SSIM.",
    )
    enc.add_argument("paths", nargs="+", metavar="PATH",
                     help="INPUT OUTPUT (an image file and the .vqi to write; - for stdin/stdout), "
                     "or INPUT -o OUTPUT, or, with --output-dir DIR, any number of images and "
                     "folders to encode in a batch")
    enc.add_argument("-k", type=_k_value, default=DEFAULT_K, metavar="K",
                     help=f"codebook size (colours), 2 to 65536 (default {DEFAULT_K})")
    enc.add_argument("--seed", type=_whole("seed"), default=0,
                     help="seed of the k-means initialisation (default 0)")
    enc.add_argument("--layout", choices=["stripes", "bytes", "packed"], default=None,
                     help="index layout (default: the smaller of stripes and bytes; "
                     "packed = ⌈log2 k⌉ bits per index)")
    enc.add_argument("--coder", choices=["auto", *coders.names()], default=None,
                     help="entropy coder of the indices (default: auto = ctx, the context model, "
                     "for k <= 256 unless zstd or bzip2 gives a smaller file; zstd decodes "
                     "fastest; cand, format 1.3, makes photos 3-4 %% smaller than ctx and "
                     "decodes about 2x slower; --speed 1-3 try it)")
    enc.add_argument("--rdo", type=_rdo_value, default=None, metavar="S",
                     help="rate-aware index choice, 0 to 5: a pixel may take a neighbour's "
                     "colour when it is almost as close (default 0.6; 0 = always the nearest "
                     "colour; larger = smaller files and lower PSNR, up to 5, where files stop "
                     "getting smaller)")
    enc.add_argument("--block", type=rd.block_value, default=None, metavar="WxH",
                     help="vectors of WxH pixels, 1 to 8 each (such as 2x2): each codebook entry "
                     "is a block of pixels, one index per block; smaller files at low rates "
                     "(default 1x1, one colour per entry)")
    enc.add_argument("--dither", type=_dither_value, nargs="?", const=1.0, default=None, metavar="LEVEL",
                     help="Floyd-Steinberg dithering, 0 to 1 (the flag alone: 1), only in smooth "
                     "areas: gradients look smooth instead of banded. Off by default, because the "
                     "default optimises PSNR: dithering lowers PSNR and makes files larger (about "
                     "+20-35 %% at k = 16-64 on photos) while it looks better")
    enc.add_argument("--level", type=_whole("level"), default=None, metavar="N",
                     help="zstd level 1-22 (default: 19, or 12 above 4 megapixels)")
    enc.add_argument("--codebook", metavar="BOOK", default=None,
                     help="map the image to this shared codebook instead of learning one: a .vqb "
                     "file (vqcodec train), a GIMP palette (.gpl) or a palette image of at most 256 "
                     "colours; the .vqi names it by its SHA-256 and does not hold it (-k is not used)")
    enc.add_argument("--speed", type=_whole("speed"), default=None, metavar="N",
                     help="effort, 1 (slowest) to 10 (fastest), default 4: faster speeds run fewer "
                     "k-means iterations and rate-aware passes, for a little less PSNR; 1-3 also "
                     "try index coder 3 (cand): smaller files that decode more slowly")
    enc.add_argument("-v", "--verbose", action="store_true",
                     help="also say on stderr how the file was made: the coder and layout "
                     "chosen and, with a target, every candidate k looked at")
    enc.add_argument("--strip", action="store_true",
                     help="leave the input's ICC profile out of the file (the only metadata a "
                     ".vqi keeps; rd --strip measures the same bytes)")
    enc.add_argument("--ssim", action="store_true",
                     help="measure SSIM for the report whatever the size (by default only up to "
                     "4 megapixels: it costs more than the encode on large images)")
    _add_target_options(enc)
    _common_output_options(enc, DEFAULT_MAX_PIXELS)
    return enc


def add_decode(sub: Any) -> argparse.ArgumentParser:
    from vqcodec import DEFAULT_MAX_PIXELS

    dec = sub.add_parser(
        "decode",
        help="rebuild an image from .vqi",
        description="Decode a .vqi file and write the image in the format its extension names "
        "(.png, .tif, .bmp, .webp, ...; '-' writes PNG to stdout).",
    )
    dec.add_argument("paths", nargs="+", metavar="PATH",
                     help="INPUT OUTPUT (a .vqi file and the image to write; - for stdin/stdout), "
                     "or INPUT -o OUTPUT, or, with --output-dir DIR, any number of .vqi files "
                     "and folders to decode in a batch")
    dec.add_argument("--format", default=None, help="output format (default: from the extension)")
    dec.add_argument("--lossy-quality", type=_quality, default=None, metavar="Q",
                     help="write WebP, JPEG or AVIF lossy at quality Q, 1 to 100 (default: WebP "
                     "is lossless; JPEG and AVIF are always lossy, at Pillow's default quality)")
    dec.add_argument("--codebook", metavar="BOOK", action="append", default=None,
                     help="a shared codebook the files may name (.vqb, .gpl or palette image, or a folder "
                     "of .vqb files; may be repeated); also searched: the folders of $VQCODEC_CODEBOOKS, then "
                     "$XDG_DATA_HOME/vqcodec/codebooks (~/.local/share/vqcodec/codebooks)")
    _common_output_options(dec, DEFAULT_MAX_PIXELS, quiet="print nothing")
    return dec


def add_info(sub: Any) -> argparse.ArgumentParser:
    info = sub.add_parser("info", help="show a .vqi file's header and sections (or a .vqb codebook's)",
                          description="Check a .vqi file (all CRCs) and show its header fields and sections; "
                          "for a .vqb codebook file, its fields and identity.")
    info.add_argument("input", help=".vqi or .vqb file, or - for stdin")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    return info


def _common_output_options(p: argparse.ArgumentParser, default_max: int,
                           quiet: str = "print nothing (and skip the metrics)") -> None:
    p.add_argument("-o", "--output", metavar="FILE", default=None,
                   help="the output file of the one INPUT (as with pngquant and cwebp)")
    p.add_argument("--output-dir", metavar="DIR", default=None,
                   help="batch mode: write every output under DIR, mirroring the input folders")
    add_executor_options(p, prefix="batch mode: ")
    p.add_argument("-f", "--force", action="store_true", help="replace the output file if it exists")
    p.add_argument("--ext", type=_extension, default=None, metavar="EXT",
                   help="batch mode without --output-dir: write each output beside its input, named "
                   "with EXT in place of the input's extension (pngquant's --ext)")
    p.add_argument("--skip-existing", action="store_true",
                   help="batch mode: leave an input whose output exists (to re-run a batch "
                   "after adding files)")
    p.add_argument("--max-pixels", type=_positive_int, default=default_max, metavar="N",
                   help=f"refuse images above N pixels (default {default_max:,})")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help=quiet)


def add_executor_options(p: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """-j and --scheduler, as batch mode, train and tokens take them (*prefix* starts the help)."""
    p.add_argument("-j", "--jobs", type=_positive_int, default=None, metavar="N",
                   help=f"{prefix}worker processes (default: the number of cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help=f"{prefix}run on a Dask cluster (needs Dask: pip install -e '.[dask]')")
