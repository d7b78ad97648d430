"""The sub-commands' handlers: encode, decode, info (rd, train, tokens and batch live in their own modules).

The parsers and the argument types are in :mod:`.parsers`; :func:`add_commands`
attaches each handler to its parser.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from . import io, parsers, rd, report, tokens, train
from .errors import UsageError
from .parsers import encode_options
from .progress import Ticker


def add_commands(sub: Any, *, only: str | None = None) -> None:
    """Add the sub-commands' parsers (*only*: that one alone), each with its handler."""
    for name, add in COMMANDS.items():
        if only in (None, name):
            add(sub)


def _with_handler(build: Any, handler: Any) -> Any:
    return lambda sub: build(sub).set_defaults(handler=handler)


def _say(args: argparse.Namespace, text: str) -> None:
    io.say(text, sys.stderr if args.output == io.STDIO else None)


def _single_or_batch(args: argparse.Namespace, what: str) -> bool:
    """Set args.input/args.output for the single-file form; True when it is a batch."""
    batch_only = [opt for opt, value in (("-j", args.jobs), ("--scheduler", args.scheduler),
                                         ("--skip-existing", args.skip_existing or None))
                  if value is not None]
    if args.output_dir is not None or args.ext is not None:
        if args.output is not None:
            raise UsageError("-o names the output file of one input; with --output-dir or --ext "
                             "the outputs are named after the inputs: drop one of them")
        return True
    if batch_only:
        raise UsageError(f"{batch_only[0]} needs batch mode; add --output-dir DIR")
    if args.output is not None:
        if len(args.paths) != 1:
            raise UsageError(
                f"-o names the output file of one input, got {len(args.paths)} inputs; "
                f"to {what} many files use --output-dir DIR"
            )
        args.input = args.paths[0]
        return False
    if len(args.paths) != 2:
        raise UsageError(
            f"{what} takes INPUT OUTPUT (or INPUT -o OUTPUT), got {len(args.paths)} path(s); "
            f"to {what} many files use --output-dir DIR"
        )
    args.input, args.output = args.paths
    return False


def _check_encode_output(output: str) -> None:
    """Refuse an output named as an image file: encode writes VQI (the mirror of
    decode's refusal to write .vqi)."""
    import os

    if output == io.STDIO:
        return
    ext = os.path.splitext(output)[1].lower()
    if not ext or ext == ".vqi":
        return
    from vqcodec.pixels import extension_format

    fmt = extension_format(ext)
    if fmt is not None and fmt != "VQI":
        raise UsageError(f"'{output}' is named as a {fmt} file, but encode writes VQI; "
                         f"name the output .vqi (decode writes {ext} files)")


# what a user can do when the input is not an image at all
_IMAGE_HINT = "give a PNG, JPEG, BMP, TIFF, WebP, GIF or PPM image"


def _image_hint(e: Exception, name: str) -> str:
    """The hint for an unrecognised input, unless its name already says it is an
    image (a damaged .png needs no advice to give a PNG)."""
    import os

    from PIL import Image

    if not str(e).endswith("not an image Pillow recognises"):
        return ""
    if os.path.splitext(name)[1].lower() in Image.registered_extensions():
        return ""
    return f"; {_IMAGE_HINT}"


def _max_pixels_hint(e: object) -> str:
    """The library's size-limit message with the CLI's way to raise the limit."""
    return f"{e}; raise the limit with --max-pixels if you trust this file"


def cmd_encode(args: argparse.Namespace) -> int:
    import vqcodec
    from vqcodec import metrics, pixels

    if _single_or_batch(args, "encode"):
        from . import batch

        return batch.run(args, "encode")

    options = encode_options(args)
    _check_coder_options(args)
    io.check_input(args.input)
    io.check_not_input(args.output, [args.input])
    _check_encode_output(args.output)
    io.check_output(args.output, [args.input], force=args.force)
    start = time.perf_counter()
    source = io.read_input(args.input)
    name = "<stdin>" if args.input == io.STDIO else args.input
    result = None
    try:
        with Ticker(sys.stderr, f"encode {name}", enabled=not args.quiet) as ticker:
            if options.target is not None:
                ticker.stage("choosing k")
                result = vqcodec.encode_target(pixels.NamedBytes(source, name), options)
            else:
                enc = vqcodec.encode_pixels(pixels.NamedBytes(source, name), options,
                                            on_stage=ticker.stage)
        if result is not None:
            if not result.ok:
                return _not_written(args, name, result)
            enc = result.encoded
    except vqcodec.ImageInputError as e:
        raise UsageError(f"{e}{_image_hint(e, name)}") from None
    except vqcodec.LimitError as e:
        raise UsageError(_max_pixels_hint(e)) from None
    except vqcodec.NotSmallerError as e:
        return _skipped(args, name, e.encoded_bytes, e.input_bytes)
    io.write_output(args.output, enc.data, force=args.force)
    seconds = time.perf_counter() - start
    if args.verbose:
        _explain(enc, result)
    if args.quiet:
        return 0
    _warn_unused_options(args, enc.header)
    h = enc.header
    measure = dict(nbytes=len(enc.data), k=h.k, bits_per_index=h.index_bits, mode=h.mode,
                   input_bytes=len(source), seconds=seconds,
                   ssim_max_pixels=None if args.ssim else metrics.REPORT_SSIM_MAX_PIXELS)
    if h.block == (1, 1):  # the error summed strip by strip, without the decoded image
        rep = metrics.measure_indexed(enc.source.array, enc.codebook, enc.indices, **measure)
    else:
        rep = metrics.measure(enc.source.array, enc.reconstruct(), **measure)
    fields = _report_fields(rep)
    fields.update(input=name, output="<stdout>" if args.output == io.STDIO else args.output,
                  k_requested=args.k, block=f"{h.block_width}x{h.block_height}")
    if result is not None:
        fields.update(target=result.target, rdo=result.rdo, quality=result.quality,
                      probes=result.probes)
    if args.json:
        _say(args, report.to_json(fields))
    else:
        line = report.encode_line(fields["input"], fields["output"], fields)
        if result is not None:
            line += (f"; target {result.target}: met with k={h.k}, rdo {result.rdo:g}, "
                     f"quality {result.quality}")
        _say(args, line)
    return 0


def _check_coder_options(args: argparse.Namespace) -> None:
    """Refuse an option that the named coder would ignore (D16: nothing silently ignored)."""
    if args.level is not None and args.coder in ("ctx", "bzip2"):
        raise UsageError(f"--level sets zstd's level; it does nothing with --coder {args.coder} "
                         "(drop --level, or use --coder zstd)")


def _warn_unused_options(args: argparse.Namespace, header: Any) -> None:
    """Say on stderr when the encoder's own choice made an option do nothing."""
    from vqcodec import coders

    chosen = coders.by_id(header.index_coder).name
    notes = []
    if args.level is not None and chosen != "zstd":
        notes.append(f"--level had no effect: the encoder chose the {chosen} coder "
                     "(--level is zstd's; add --coder zstd to use it)")
    if args.layout is not None and args.coder in (None, "auto") and header.k <= 256:
        notes.append(f"--layout {args.layout} leaves the ctx coder out (it codes the index map, "
                     "not a layout), which is usually the smallest; drop --layout to let the "
                     "encoder choose")
    for note in notes:
        print(f"vqcodec: warning: {note}", file=sys.stderr, flush=True)


def _explain(enc: Any, result: Any) -> None:
    """-v: how the file was made (*enc*: None when none was), on stderr."""
    from vqcodec import coders
    from vqcodec.packing import LAYOUTS

    if result is not None:
        for k, rdo, mse, measured, nbytes in result.trail:
            what = "MSE" if measured else "colour error (before rdo)"
            size = f", {nbytes:,} bytes" if nbytes else ""
            print(f"vqcodec: candidate k={k} rdo {rdo:g}: {what} {mse:.3f}{size}", file=sys.stderr)
        print(f"vqcodec: target {result.target}: {'chose' if result.reached else 'best'} "
              f"k={result.k}, rdo {result.rdo:g} ({result.probes} candidates)", file=sys.stderr)
    if enc is None:
        return
    h = enc.header
    print(f"vqcodec: index coder {coders.by_id(h.index_coder).name}, layout "
          f"{LAYOUTS.get(h.index_layout, '?')}, {len(enc.data):,} bytes", file=sys.stderr)


def _not_written(args: argparse.Namespace, name: str, result: Any) -> int:
    """A target that cannot be met (exit 99) or a file that would not be smaller (98)."""
    from .errors import ExitStatus

    if args.verbose:
        _explain(None, result)
    if result.skipped:
        return _skipped(args, name, result.bytes, result.input_bytes)
    if args.json and not args.quiet:
        _say(args, report.to_json({"input": name, "written": False, **result.as_dict()}))
    if result.target.startswith("<="):
        best = f"the smallest file is {result.bytes:,} bytes at k={result.k}"
        hint = "raise --max-bytes/--bpp"
    else:
        best = f"the best is PSNR {result.psnr:.2f} dB, quality {result.quality}, at k={result.k}"
        hint = "raise -k or lower the target"
    print(f"vqcodec: error: '{name}': target {result.target} not reached ({best}); "
          f"nothing written; {hint}", file=sys.stderr)
    return ExitStatus.TARGET_UNREACHABLE


def _skipped(args: argparse.Namespace, name: str, nbytes: int, input_bytes: int | None) -> int:
    from .errors import ExitStatus

    if args.json and not args.quiet:
        _say(args, report.to_json({"input": name, "written": False, "skipped": True,
                                   "bytes": nbytes, "input_bytes": input_bytes}))
    print(f"vqcodec: error: '{name}': the .vqi file would be {nbytes:,} bytes, not smaller than "
          f"the input's {input_bytes:,}; nothing written (--skip-if-larger)", file=sys.stderr)
    return ExitStatus.NOT_SMALLER


def _report_fields(rep: Any) -> dict[str, Any]:
    return {
        "width": rep.width, "height": rep.height, "mode": rep.mode, "k": rep.k,
        "bits_per_index": rep.bits_per_index, "bytes": rep.nbytes, "raw_bytes": rep.raw_bytes,
        "input_bytes": rep.input_bytes, "bpp": rep.bpp, "ratio_raw": rep.ratio_raw,
        "ratio_input": rep.ratio_input, "mse": rep.mse, "psnr": rep.psnr, "ssim": rep.ssim,
        "seconds": rep.seconds,
    }


def cmd_decode(args: argparse.Namespace) -> int:
    import vqcodec
    from vqcodec import pixels

    if _single_or_batch(args, "decode"):
        from . import batch

        return batch.run(args, "decode")

    io.check_input(args.input)
    fmt = args.format
    if fmt is not None:
        try:
            fmt = pixels.format_name(fmt)  # "jpg" -> "JPEG": the report names it as Pillow does
        except vqcodec.OptionError as e:
            raise UsageError(f"--format {args.format}: {e}") from None
    else:
        if args.output == io.STDIO:
            fmt = "PNG"
        else:
            try:
                fmt = pixels.format_for_path(args.output)
            except vqcodec.OptionError as e:
                raise UsageError(f"{e} (or give --format)") from None
    save = lossy_options(args, fmt)
    io.check_output(args.output, [args.input], force=args.force)
    start = time.perf_counter()
    data = io.read_input(args.input)
    name = "<stdin>" if args.input == io.STDIO else args.input
    with Ticker(sys.stderr, f"decode {name}", enabled=not args.quiet) as ticker:
        ticker.stage("decoding")
        try:
            px = vqcodec.decode_pixels(data, max_pixels=args.max_pixels, codebook=args.codebook)
        except vqcodec.CodebookError as e:
            raise UsageError(f"cannot decode '{name}': {missing_codebook(e)}") from None
        except vqcodec.LimitError as e:
            raise UsageError(_max_pixels_hint(f"cannot decode '{name}': {e}")) from None
        except vqcodec.VqiError as e:
            raise UsageError(f"cannot decode '{name}': {e}") from None
        ticker.stage(f"writing {fmt.upper()}")
        try:
            out = pixels.to_bytes(px, fmt.upper(), **save)
        except vqcodec.VqiError as e:
            raise UsageError(str(e)) from None
    lossy = pixels.is_lossy(fmt, **save)
    io.write_output(args.output, out, force=args.force)
    seconds = time.perf_counter() - start
    if args.quiet:
        return 0
    fields = {
        "input": name, "output": "<stdout>" if args.output == io.STDIO else args.output,
        "width": px.width, "height": px.height, "mode": px.mode, "format": fmt.upper(),
        "bytes": len(out), "icc_profile": px.icc_profile is not None, "seconds": seconds,
        "lossy": lossy,
    }
    if args.json:
        _say(args, report.dumps(fields))
    else:
        _say(args, f"{name} -> {fields['output']}: {px.width}×{px.height} {px.mode}, "
                   f"{fmt.upper()} {len(out):,} bytes{_lossy_words(lossy, save)}, {seconds:.2f} s")
    return 0


def lossy_options(args: argparse.Namespace, fmt: str) -> dict[str, int]:
    """Pillow's save options that --lossy-quality names for *fmt* (refused where it means nothing)."""
    from vqcodec import pixels

    if args.lossy_quality is None:
        return {}
    name = pixels.format_name(fmt)
    if name not in ("WEBP", "JPEG", "AVIF", "MPO"):
        raise UsageError(f"--lossy-quality applies to WebP, JPEG and AVIF, not {name}; drop it")
    return {"quality": args.lossy_quality}


def _lossy_words(lossy: bool, save: dict) -> str:
    """What the decode report says of a format that changes the pixels."""
    if not lossy:
        return ""
    quality = f"quality {save['quality']}" if "quality" in save else "Pillow's default quality"
    return f" (lossy, {quality}: not the decoded pixels exactly)"


def missing_codebook(e: Exception | str) -> str:
    """A CodebookError's message (or a batch worker's error text), with the flag that gives a
    codebook when it says one was not found."""
    import re

    identity = getattr(e, "missing", None)
    found = None if identity else re.search(r"shared codebook ([0-9a-f]{64}) not found", str(e))
    identity = identity or (found.group(1) if found else None)
    if identity is None:
        return str(e)
    from vqcodec import books

    return (f"shared codebook {identity} not found; give its .vqb file with --codebook BOOK, or put it "
            f"in a folder of ${books.ENV_VAR} or in {books.default_folder()}")


def _codebook_info(args: argparse.Namespace, data: bytes, name: str) -> int:
    """``vqcodec info book.vqb``: the codebook file's fields (spec §11.1) and identity (§11.2)."""
    from vqcodec import CodebookError, vqb

    try:
        book = vqb.read(data)
    except CodebookError as e:
        raise UsageError(f"'{name}' is not a valid codebook file: {e}") from None
    fields = {"file": name, "bytes": len(data), "version": f"{data[8]}.{data[9]}",
              "identity": book.identity.hex(), "k": book.k, "channels": book.channels,
              "mode": {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[book.channels],
              "sample_depth": book.sample_depth, "block": f"{book.block_width}x{book.block_height}",
              "colour_space": book.colour_space}
    if args.json:
        io.say(report.dumps(fields))
        return 0
    lines = [f"{name}: VQB {fields['version']} codebook, {len(data):,} bytes"]
    for key in ("identity", "k", "mode", "block", "sample_depth", "colour_space"):
        lines.append(f"  {key:<16} {fields[key]}")
    io.say("\n".join(lines))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import vqcodec
    from vqcodec import coders, vqb
    from vqcodec.packing import LAYOUTS

    data = io.read_input(args.input)
    name = "<stdin>" if args.input == io.STDIO else args.input
    if data.startswith(vqb.MAGIC) or name.lower().endswith(".vqb"):
        return _codebook_info(args, data, name)
    try:
        info = vqcodec.read_info(data)
    except vqcodec.VqiError as e:
        raise UsageError(f"'{name}' is not a valid VQI file: {e}") from None
    h = info.header
    layout = LAYOUTS.get(h.index_layout, "?")
    coder = coders.by_id(h.index_coder).name
    fields = {  # numbers as numbers; each name beside its number
        "file": name, "bytes": info.file_bytes, "version": f"{info.version[0]}.{info.version[1]}",
        "width": h.width, "height": h.height, "channels": h.channels, "mode": h.mode,
        "k": h.k, "index_bits": h.index_bits,
        "codebook": info.codebook_ref.hex() if info.codebook_ref else None,
        "bpp": 8 * info.file_bytes / (h.width * h.height),
        "icc_profile_bytes": info.icc_profile_bytes,
        "index_coder": h.index_coder, "index_coder_name": coder,
        "index_layout": h.index_layout, "index_layout_name": layout,
        "sample_depth": h.sample_depth, "block_width": h.block_width,
        "block_height": h.block_height, "stages": h.stages, "codebook_source": h.codebook_source,
        "sections": [{"type": s.type, "offset": s.offset, "length": s.length, "crc": f"0x{s.crc:08x}"}
                     for s in info.sections],
    }
    if args.json:
        io.say(report.dumps(fields))
        return 0
    icc = f"{info.icc_profile_bytes:,} bytes" if info.icc_profile_bytes else "none"
    bits = f"{h.index_bits} bit{'s' if h.index_bits != 1 else ''}/index"
    lines = [
        f"{name}: VQI {fields['version']}, {info.file_bytes:,} bytes, {fields['bpp']:.3f} bpp",
        f"  {'size':<16} {h.width}×{h.height} {h.mode}",
        f"  {'k':<16} {h.k} ({bits})",
        f"  {'index coder':<16} {coder} (coder {h.index_coder}, {layout} layout {h.index_layout})",
        f"  {'ICC profile':<16} {icc}",
    ]
    block = f"{h.block_width}x{h.block_height}"
    if block != "1x1":  # vectors of blocks of pixels: a user's choice worth seeing
        lines.insert(3, f"  {'block':<16} {block}")
    lines.append(f"  {'header':<16} sample_depth {h.sample_depth}, block {block}, "
                 f"stages {h.stages}, codebook_source {h.codebook_source}")
    if fields["codebook"] is not None:
        lines.append(f"  {'shared codebook':<16} {fields['codebook']}")
    lines.append("  sections:")
    for s in info.sections:
        lines.append(f"    {s.type}  offset {s.offset:>9,}  length {s.length:>11,}  crc 0x{s.crc:08x}")
    io.say("\n".join(lines))
    return 0



# the sub-commands, in the order --help lists them
COMMANDS = {"encode": _with_handler(parsers.add_encode, cmd_encode),
            "decode": _with_handler(parsers.add_decode, cmd_decode),
            "info": _with_handler(parsers.add_info, cmd_info),
            "rd": rd.add_command, "train": train.add_command, "tokens": tokens.add_command}
