"""The rate–distortion sweep: vqcodec and its baselines over images × k.

For every image and every k one row per codec (:class:`Row`): bytes, bits
per pixel, compression ratio against the raw pixels, MSE, PSNR, SSIM, encode
and decode seconds and megapixels per second.  All distortions are measured
with :mod:`vqcodec.metrics` against the image's normalised pixels (the mode
rules of :mod:`vqcodec.pixels`); images with alpha are measured over
premultiplied RGBA, the metrics' default.

The codecs
    ``vqcodec``   :func:`codec.encode_pixels` in-process on the loaded pixels
                  (file reading is not timed), then :func:`codec.decode` of its
                  bytes; the decode is checked equal to ``Encoded.reconstruct()``
                  before anything else is measured (:class:`RoundTripError`).
    ``pngquant``  ``pngquant --nofs K`` (2 <= K <= 256) as a subprocess on a
                  temporary PNG of the normalised pixels, written without the
                  ICC profile so pngquant does no colour conversion (the
                  profile, when kept, is added to its output as an ``iCCP``
                  chunk); timed as a whole process (start-up and PNG
                  input/output included).
                  Absent from PATH: no rows, and a note says so.
    ``png``       lossless PNG through Pillow, ``compress_level=9`` (no
                  ``optimize``).  k does not apply; the same numbers are
                  repeated in the row of every k.
    ``webp``, ``avif``, ``jpeg``
                  through Pillow (defaults, JPEG with ``optimize=True``) at the
                  smallest integer quality, 1..100, whose PSNR reaches
                  vqcodec's PSNR at that k: a binary search that keeps "this
                  quality reaches the target and the one below it does not".
                  If quality 100 does not reach it, the quality-100 row is kept
                  with ``reached=False``; but where vqcodec is lossless, WebP's
                  row is its lossless file (``lossless=True exact=True``,
                  ``quality`` empty), which is.  JPEG is
                  skipped on images with alpha.
    Baseline decodes are Pillow decodes to a numpy array in the image's mode.

ICC profiles follow ``vqcodec encode``'s one rule (:func:`pixels.stored`):
kept in every codec's file, or, with ``strip=True`` (``--strip``), left out
of all of them; so vqcodec's bytes here are what ``encode`` writes with the
same options.

Timing: encodes run once; decodes are repeated (up to five runs, about half
a second at most) and the median is kept.

Across k, :func:`bd_rate` gives the Bjøntegaard delta rate of vqcodec
against each baseline, per image (:meth:`Result.bd_rates`).

Output: :func:`format_table` (the text table), :func:`to_csv`,
:func:`to_json` and :func:`plot_png` (matplotlib, imported only there).
"""

from __future__ import annotations

# csv, shutil, statistics, subprocess and tempfile are imported where they are
# used: the CLI imports this module for its defaults on every command, and
# they cost ~10 ms of a ~0.3 s encode.
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from . import codec, metrics, options, pixels
from .errors import OptionError, VqiError

__all__ = [
    "DEFAULT_KS",
    "BASELINES",
    "CODECS",
    "IMAGE_EXTENSIONS",
    "Row",
    "Skipped",
    "BdRate",
    "Result",
    "RoundTripError",
    "SweepInterrupted",
    "find_images",
    "sweep",
    "measure_image",
    "smallest_quality",
    "bd_rate",
    "summarize",
    "format_table",
    "to_csv",
    "to_json",
    "plot_png",
]

DEFAULT_KS = (2, 4, 8, 16, 32, 64, 128, 256)
BASELINES = ("pngquant", "png", "webp", "avif", "jpeg")
CODECS = ("vqcodec",) + BASELINES
LOSSY = ("webp", "avif", "jpeg")
NAMES = {"vqcodec": "vqcodec", "pngquant": "pngquant", "png": "PNG",
         "webp": "WebP", "avif": "AVIF", "jpeg": "JPEG"}
IMAGE_EXTENSIONS = frozenset({
    ".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif",
    ".tif", ".tiff", ".webp", ".avif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi",
})
PNGQUANT_MAX_K = 256
PNG_OPTIONS = {"compress_level": 9}
_LOSSY_FORMATS = {
    "webp": ("WEBP", {}),
    "avif": ("AVIF", {}),
    "jpeg": ("JPEG", {"optimize": True}),
}
# Baselines with a lossless mode: where vqcodec is lossless (a graphic of few
# colours) and quality 100 is not, the row is the lossless file, the only one of
# equal PSNR, instead of a quality-100 row marked unreached.  (A finite PSNR that
# quality 100 falls short of keeps the quality-100 row, marked: lossless would
# be far more than "equal PSNR" costs.)
LOSSLESS = -1  # the "quality" of that trial
_LOSSLESS_OPTIONS = {"webp": {"lossless": True, "exact": True}}
_DECODE_RUNS = 5
_DECODE_BUDGET_S = 0.5
_PNGQUANT_TIMEOUT_S = 600
BD_MIN_POINTS = 2

Progress = Callable[[int, int, str], None]
OnSkip = Callable[[str, str], None]


class RoundTripError(RuntimeError):
    """vqcodec's decode differs from the encoder's reconstruction: a codec bug."""


@dataclass(frozen=True)
class Row:
    """One codec on one image at one k.  ``psnr`` is ``inf`` when lossless."""

    image: str
    codec: str
    k: int
    width: int
    height: int
    mode: str
    bytes: int
    bpp: float
    ratio: float  # raw pixel bytes (W * H * channels) / bytes
    mse: float
    psnr: float
    ssim: float
    encode_s: float
    decode_s: float
    encode_mps: float
    decode_mps: float
    quality: int | None = None  # webp / avif / jpeg: the quality used
    target_psnr: float | None = None  # webp / avif / jpeg: vqcodec's PSNR at this k
    reached: bool | None = None  # webp / avif / jpeg: did the quality reach the target
    settings: str = ""

    def as_dict(self) -> dict:
        """The fields, with non-finite numbers as ``None`` (strict JSON)."""
        return {key: _finite_or_none(value) for key, value in asdict(self).items()}


COLUMNS = tuple(f.name for f in fields(Row))


@dataclass(frozen=True)
class Skipped:
    """An input the sweep did not measure, and why (unreadable, not an image...)."""

    path: str
    reason: str


@dataclass(frozen=True)
class BdRate:
    """BD-rate of vqcodec against ``baseline`` on one image, in percent."""

    image: str
    baseline: str
    value: float | None  # None: n/a
    reason: str = ""  # why it is n/a


@dataclass
class Result:
    """Everything a sweep measured."""

    ks: tuple[int, ...]
    baselines: tuple[str, ...]  # requested
    seed: int = 0
    strip: bool = False  # ICC profiles left out of every codec's file
    rows: list[Row] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # measured, in order
    modes: dict[str, str] = field(default_factory=dict)  # image -> mode
    icc_images: list[str] = field(default_factory=list)  # measured images that had a profile
    skipped: list[Skipped] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # baseline -> why
    problems: list[str] = field(default_factory=list)  # baseline failures, one line each

    def measured(self) -> tuple[str, ...]:
        """The baselines that produced rows (requested and available)."""
        present = {r.codec for r in self.rows}
        return tuple(b for b in self.baselines if b in present)

    def alpha_images(self) -> list[str]:
        """The measured images that have an alpha channel (LA or RGBA), in order."""
        return [name for name in self.images if "A" in self.modes.get(name, "")]

    def bd_rates(self) -> list[BdRate]:
        """Per image and lossy-curve baseline (pngquant, webp, avif, jpeg)."""
        out = []
        for baseline in self.measured():
            if baseline == "png":
                continue
            for image in self.images:
                test = [r for r in self.rows if r.image == image and r.codec == "vqcodec"]
                anchor = [r for r in self.rows if r.image == image and r.codec == baseline]
                if not anchor:
                    continue
                value, reason = _bd(
                    [r.bpp for r in anchor], [r.psnr for r in anchor],
                    [r.bpp for r in test], [r.psnr for r in test],
                )
                out.append(BdRate(image, baseline, value, reason))
        return out

    def bd_rate_means(self) -> dict[str, tuple[float | None, str, list[float]]]:
        """baseline -> (mean over images or None, reason when None, per-image values)."""
        import statistics

        out: dict[str, tuple[float | None, str, list[float]]] = {}
        per = self.bd_rates()
        for baseline in dict.fromkeys(b.baseline for b in per):
            items = [b for b in per if b.baseline == baseline]
            values = [b.value for b in items if b.value is not None]
            if values:
                out[baseline] = (statistics.fmean(values), "", values)
            else:
                out[baseline] = (None, items[0].reason if items else "no data", [])
        return out


# --------------------------------------------------------------------------
# Finding the images


def find_images(paths: Iterable[str]) -> tuple[list[str], list[Skipped]]:
    """Files given as they are; folders searched recursively for image extensions.

    Hidden files and folders (starting with '.') are skipped when searching;
    a path that does not exist is returned as :class:`Skipped`.
    """
    found: dict[str, None] = {}
    skipped = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                        found.setdefault(os.path.join(folder, name))
        elif os.path.exists(path):
            found.setdefault(path)
        else:
            skipped.append(Skipped(path, "no such file or folder"))
    return list(found), skipped


# --------------------------------------------------------------------------
# The sweep


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """Sorted distinct k values, each checked against the codec's range."""
    out = {options.check("k", k) for k in ks}
    if not out:
        raise OptionError("no k values given; give at least one, e.g. k=(16, 64, 256)")
    return tuple(sorted(out))


def check_baselines(baselines: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(baselines))
    unknown = [b for b in out if b not in BASELINES]
    if unknown:
        raise OptionError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    return tuple(b for b in BASELINES if b in out)


def available_baselines(baselines: Sequence[str], pngquant: str | None) -> dict[str, str]:
    """baseline -> why it cannot run here, for the requested ones that cannot."""
    from PIL import features

    missing = {}
    if "pngquant" in baselines and pngquant is None:
        missing["pngquant"] = "pngquant not found on PATH (apt-get install pngquant)"
    for name in ("webp", "avif"):
        if name in baselines and not features.check(name):
            missing[name] = f"this Pillow was built without {NAMES[name]} support"
    return missing


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`sweep`: ``result`` holds the images finished before it
    (whole images only, in input order), so a caller can still report them."""

    def __init__(self, result: "Result") -> None:
        super().__init__()
        self.result = result


@dataclass(frozen=True)
class _ImageOutcome:
    """What measuring one image gave: its rows, or why it was skipped."""

    path: str
    rows: tuple[Row, ...] = ()
    mode: str = ""
    icc: bool = False
    skipped: str | None = None
    problems: tuple[str, ...] = ()


def _measure_path(path: str, ks: tuple[int, ...], baselines: tuple[str, ...], seed: int,
                  strip: bool, max_pixels: int | None, pngquant: str | None,
                  workdir: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> _ImageOutcome:
    """Load and measure one image (a worker's whole job: plain values in and out)."""
    problems: list[str] = []
    try:
        px = pixels.load(path, max_pixels=max_pixels)
        rows = measure_image(
            px, name=path, ks=ks, baselines=baselines, seed=seed, strip=strip, pngquant=pngquant,
            workdir=workdir, progress=progress, on_problem=problems.append,
        )
    except VqiError as e:
        return _ImageOutcome(path, skipped=str(e), problems=tuple(problems))
    return _ImageOutcome(path, tuple(rows), px.mode, bool(px.icc_profile), None, tuple(problems))


def sweep(
    paths: Iterable[str],
    /,
    *,
    ks: Iterable[int] = DEFAULT_KS,
    baselines: Iterable[str] = BASELINES,
    seed: int = 0,
    strip: bool = False,
    max_pixels: int | None = pixels.DEFAULT_MAX_PIXELS,
    pngquant: str | None = "",
    jobs: int = 1,
    progress: Progress | None = None,
    on_skip: OnSkip | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> Result:
    """Measure vqcodec and the baselines on every image (folders recursed) at every k.

    ``pngquant`` is the executable's path; ``""`` (default) looks it up on
    PATH, ``None`` means "not available".  ``progress(done, total, what)`` is
    called as (image, k) steps finish; ``on_skip(path, reason)`` for every
    file that could not be read or measured (it is left out, not fatal);
    ``on_problem(message)`` when one baseline fails on one image.

    ``jobs`` > 1 measures that many images at once in worker processes
    (spawned: a script needs the ``if __name__ == "__main__":`` guard); the
    rows are the same as with one job, in the same order, apart from the
    timing columns (which then share the cores).  Ctrl-C raises
    :class:`SweepInterrupted`, whose ``result`` holds the finished images.
    """
    import shutil

    ks = check_ks(ks)
    baselines = check_baselines(baselines)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise OptionError(f"jobs must be a whole number >= 1, got {jobs!r}")
    if pngquant == "":
        pngquant = shutil.which("pngquant")
    result = Result(ks=ks, baselines=baselines, seed=seed, strip=strip)
    result.unavailable = available_baselines(baselines, pngquant)
    runnable = tuple(b for b in baselines if b not in result.unavailable)
    images, skipped = find_images(paths)
    for s in skipped:
        result.skipped.append(Skipped(s.path, s.reason))
        if on_skip is not None:
            on_skip(s.path, s.reason)
    outcomes: dict[int, _ImageOutcome] = {}

    def take(i: int, outcome: _ImageOutcome) -> None:
        outcomes[i] = outcome
        for message in outcome.problems:
            if on_problem is not None:
                on_problem(message)
        if outcome.skipped is not None and on_skip is not None:
            on_skip(outcome.path, outcome.skipped)

    args = (ks, runnable, seed, strip, max_pixels, pngquant)
    try:
        if jobs == 1 or len(images) < 2:
            _sweep_here(images, args, progress, take)
        else:
            _sweep_in_pool(images, args, min(jobs, len(images)), progress, take)
    except KeyboardInterrupt:
        _collect(result, images, outcomes)
        raise SweepInterrupted(result) from None
    if progress is not None:
        progress(len(images) * len(ks), len(images) * len(ks), "done")
    _collect(result, images, outcomes)
    return result


def _sweep_here(images: list[str], args: tuple, progress: Progress | None,
                take: Callable[[int, _ImageOutcome], None]) -> None:
    """One image after the other in this process, with a progress step per (image, k)."""
    import tempfile

    ks = args[0]
    total = len(images) * len(ks)
    with tempfile.TemporaryDirectory(prefix="vqcodec-rd-") as workdir:
        for i, path in enumerate(images):
            def tick(j: int, k: int, path: str = path, step: int = i * len(ks)) -> None:
                if progress is not None:
                    progress(step + j, total, f"{os.path.basename(path)} k={k}")

            tick(0, ks[0])
            take(i, _measure_path(path, *args, workdir=workdir, progress=tick))


def _sweep_in_pool(images: list[str], args: tuple, workers: int, progress: Progress | None,
                   take: Callable[[int, _ImageOutcome], None]) -> None:
    """The images on *workers* processes; a progress step per image finished."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from .batch import process_pool, shut_down

    total = len(images) * len(args[0])
    pool = process_pool(workers)
    finished = False
    try:
        pending = {pool.submit(_measure_path, path, *args): i for i, path in enumerate(images)}
        done_images = 0
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                take(i, future.result())
                done_images += 1
                if progress is not None:
                    progress(done_images * len(args[0]), total, os.path.basename(images[i]))
        finished = True
    finally:
        shut_down(pool, finished)


def _collect(result: Result, images: list[str], outcomes: dict[int, _ImageOutcome]) -> None:
    """Put the outcomes into *result*, in input order (finished images only)."""
    for i, path in enumerate(images):
        outcome = outcomes.get(i)
        if outcome is None:
            continue
        result.problems.extend(outcome.problems)
        if outcome.skipped is not None:
            result.skipped.append(Skipped(path, outcome.skipped))
            continue
        result.rows.extend(outcome.rows)
        result.images.append(path)
        result.modes[path] = outcome.mode
        if outcome.icc:
            result.icc_images.append(path)


def measure_image(
    px: pixels.Pixels,
    /,
    *,
    name: str = "<image>",
    ks: Iterable[int] = DEFAULT_KS,
    baselines: Iterable[str] = BASELINES,
    seed: int = 0,
    strip: bool = False,
    pngquant: str | None = None,
    workdir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> list[Row]:
    """The rows of one image: for each k, vqcodec then each baseline.

    ``baselines`` are run as given (availability is the caller's business;
    pngquant runs only with an executable path).  A baseline that fails is
    reported through ``on_problem`` and left out of this image's rows.  An
    ICC profile is in every codec's file, as ``vqcodec encode`` keeps it, or
    with *strip* in none (a 3 KB profile can swamp a small graphic).
    """
    import subprocess  # for the error a failing pngquant raises

    px = pixels.stored(px, strip=strip)
    ks = check_ks(ks)
    baselines = check_baselines(baselines)
    rows: list[Row] = []
    searches = {b: _QualitySearch(px, b) for b in LOSSY if b in baselines}
    if "jpeg" in searches and "A" in px.mode:
        del searches["jpeg"]  # JPEG has no alpha channel
    failed: set[str] = set()

    def attempt(baseline: str, make: Callable[[], Row]) -> None:
        if baseline in failed:
            return
        try:
            rows.append(make())
        except (VqiError, OSError, subprocess.SubprocessError) as e:
            failed.add(baseline)
            if on_problem is not None:
                on_problem(f"{NAMES[baseline]} failed on '{name}': {' '.join(str(e).split())}")

    with _work_folder(workdir) as folder:
        src_png = None
        if "pngquant" in baselines and pngquant is not None:
            src_png = os.path.join(folder, "source.png")
            opaque = pixels.Pixels(px.array, None)
            with open(src_png, "wb") as f:
                f.write(pixels.to_bytes(opaque, "PNG", compress_level=1))
        png_row = None
        for j, k in enumerate(ks):
            if progress is not None:
                progress(j, k)
            ref = measure_vqcodec(px, k=k, seed=seed, name=name)
            rows.append(ref)
            if src_png is not None and k <= PNGQUANT_MAX_K:
                attempt("pngquant", lambda: _pngquant_row(px, k, name, pngquant, src_png, folder))
            if "png" in baselines:
                if png_row is None:
                    attempt("png", lambda: _png_row(px, k, name))
                    png_row = rows[-1] if rows[-1].codec == "png" else None
                else:
                    rows.append(_replace_k(png_row, k))
            for baseline, search in searches.items():
                attempt(baseline, lambda: search.row(ref.psnr, k, name))
        if src_png is not None:
            os.unlink(src_png)
    return rows


class _work_folder:
    """The given folder, or a temporary one made and removed here."""

    def __init__(self, folder: str | None) -> None:
        self.folder, self.tmp = folder, None

    def __enter__(self) -> str:
        import tempfile

        if self.folder is not None:
            return self.folder
        self.tmp = tempfile.TemporaryDirectory(prefix="vqcodec-rd-")
        return self.tmp.name

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def _replace_k(row: Row, k: int) -> Row:
    values = asdict(row)
    values["k"] = k
    return Row(**values)


# --------------------------------------------------------------------------
# One codec on one image


def measure_vqcodec(px: pixels.Pixels, /, *, k: int, seed: int = 0, name: str = "<image>") -> Row:
    """vqcodec at one k: encode in-process, decode the bytes, check, then measure."""
    start = time.perf_counter()
    enc = codec.encode_pixels(px, k=k, seed=seed, max_pixels=None)
    encode_s = time.perf_counter() - start
    expected = enc.reconstruct()
    decoded = codec.decode(enc.data, max_pixels=None).reshape(expected.shape)
    if not np.array_equal(decoded, expected):
        wrong = int(np.count_nonzero(np.any(decoded != expected, axis=-1)))
        raise RoundTripError(
            f"'{name}' at k={k}: decode(data) differs from Encoded.reconstruct() "
            f"in {wrong:,} pixels; this is a codec bug"
        )
    decode_s = _median_time(lambda: codec.decode(enc.data, max_pixels=None))
    return _row(px, name, "vqcodec", k, enc.data, decoded, encode_s, decode_s,
                settings=f"k={k} seed={seed}")


def _png_row(px: pixels.Pixels, k: int, name: str) -> Row:
    start = time.perf_counter()
    data = pixels.to_bytes(px, "PNG", **PNG_OPTIONS)
    encode_s = time.perf_counter() - start
    decoded = _pillow_decode(data, px.mode)
    decode_s = _median_time(lambda: _pillow_decode(data, px.mode))
    return _row(px, name, "png", k, data, decoded, encode_s, decode_s,
                settings=" ".join(f"{k}={v}" for k, v in PNG_OPTIONS.items()))


def _pngquant_row(px: pixels.Pixels, k: int, name: str, exe: str, src_png: str, folder: str) -> Row:
    import subprocess

    out = os.path.join(folder, f"pngquant-{k}.png")
    command = [exe, "--nofs", str(k), "--force", "--output", out, "--", src_png]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, timeout=_PNGQUANT_TIMEOUT_S, check=False)
    encode_s = time.perf_counter() - start
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise OSError(f"pngquant exited with status {proc.returncode}"
                      + (f": {message[-1]}" if message else ""))
    with open(out, "rb") as f:
        data = _with_iccp(f.read(), px.icc_profile)
    os.unlink(out)
    decoded = _pillow_decode(data, px.mode)
    decode_s = _median_time(lambda: _pillow_decode(data, px.mode))
    return _row(px, name, "pngquant", k, data, decoded, encode_s, decode_s, settings=f"--nofs {k}")


def _with_iccp(png: bytes, profile: bytes | None) -> bytes:
    """*png* with an ``iCCP`` chunk of *profile* after IHDR (as a PNG writer that
    keeps the profile stores it), or *png* itself without a profile."""
    import struct
    import zlib

    if not profile:
        return png
    body = b"ICC Profile\0\0" + zlib.compress(profile, 9)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body \
        + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


@dataclass(frozen=True)
class _Trial:
    quality: int
    data: bytes
    encode_s: float
    psnr: float


class _QualitySearch:
    """Lossy encodes of one image at integer qualities, cached across k."""

    def __init__(self, px: pixels.Pixels, baseline: str) -> None:
        self.px, self.baseline = px, baseline
        self.format, self.options = _LOSSY_FORMATS[baseline]
        self.trials: dict[int, _Trial] = {}
        self.rows: dict[int, Row] = {}

    def trial(self, quality: int) -> _Trial:
        if quality not in self.trials:
            start = time.perf_counter()
            if quality == LOSSLESS:
                data = pixels.to_bytes(self.px, self.format, **_LOSSLESS_OPTIONS[self.baseline])
            else:
                data = pixels.to_bytes(self.px, self.format, quality=quality, **self.options)
            encode_s = time.perf_counter() - start
            psnr = metrics.psnr(self.px.array, _pillow_decode(data, self.px.mode))
            self.trials[quality] = _Trial(quality, data, encode_s, psnr)
        return self.trials[quality]

    def smallest(self, target: float) -> tuple[int, bool]:
        """(quality, reached): the smallest quality with PSNR >= target.

        A bracket search: ``hi`` reaches the target, ``lo`` does not, until
        they are neighbours.  The next quality is interpolated from the two
        ends' PSNR (PSNR grows smoothly with quality), falling back to
        bisection whenever a step did not halve the bracket, so it never
        takes more steps than bisection and usually far fewer.
        """
        if not self.trial(100).psnr >= target:
            if target == math.inf and self.baseline in _LOSSLESS_OPTIONS \
                    and self.trial(LOSSLESS).psnr >= target:
                return LOSSLESS, True  # vqcodec was lossless: so is the file to compare
            return 100, False
        if self.trial(1).psnr >= target:
            return 1, True
        # The tightest bracket the cache (shared across k) already proves.
        hi = min(q for q, t in self.trials.items() if q != LOSSLESS and t.psnr >= target)
        lo = max(q for q, t in self.trials.items() if LOSSLESS < q < hi and t.psnr < target)
        interpolate = True
        while hi - lo > 1:
            width = hi - lo
            p_lo, p_hi = self.trials[lo].psnr, self.trials[hi].psnr
            # Interpolate between finite numbers only: a lossless result
            # (PSNR inf) as target or as the upper end bisects instead.
            if interpolate and p_hi > p_lo and math.isfinite(p_hi) and math.isfinite(target):
                step = math.ceil((target - p_lo) / (p_hi - p_lo) * width)
                mid = min(max(lo + step, lo + 1), hi - 1)
            else:
                mid = (lo + hi) // 2
            if self.trial(mid).psnr >= target:
                hi = mid
            else:
                lo = mid
            interpolate = (hi - lo) * 2 <= width
        return hi, True

    def row(self, target: float, k: int, name: str) -> Row:
        quality, reached = self.smallest(target)
        if quality not in self.rows:
            t = self.trials[quality]
            decoded = _pillow_decode(t.data, self.px.mode)
            decode_s = _median_time(lambda: _pillow_decode(t.data, self.px.mode))
            if quality == LOSSLESS:
                settings = " ".join(f"{key}={v}" for key, v in _LOSSLESS_OPTIONS[self.baseline].items())
            else:
                settings = f"quality={quality}" + "".join(f" {key}={value}"
                                                          for key, value in self.options.items())
            self.rows[quality] = _row(self.px, name, self.baseline, 0, t.data, decoded,
                                      t.encode_s, decode_s, settings=settings)
        values = asdict(self.rows[quality])
        values.update(k=k, quality=None if quality == LOSSLESS else quality, target_psnr=target,
                      reached=reached)
        return Row(**values)


def smallest_quality(px: pixels.Pixels, /, baseline: str, target_psnr: float) -> tuple[int, bool, float]:
    """(quality, reached, psnr) of ``baseline`` ("webp", "avif" or "jpeg") at ``target_psnr``;
    quality :data:`LOSSLESS` is WebP's lossless file (for an infinite target that
    quality 100 misses)."""
    if baseline not in _LOSSY_FORMATS:
        raise OptionError(f"baseline must be one of {', '.join(LOSSY)}, got {baseline!r}")
    search = _QualitySearch(px, baseline)
    quality, reached = search.smallest(target_psnr)
    return quality, reached, search.trials[quality].psnr


def _row(px: pixels.Pixels, name: str, codec_name: str, k: int, data: bytes, decoded: np.ndarray,
         encode_s: float, decode_s: float, *, settings: str = "") -> Row:
    ref = px.array
    mse = metrics.mse(ref, decoded)
    megapixels = px.width * px.height / 1e6
    return Row(
        image=name, codec=codec_name, k=k, width=px.width, height=px.height, mode=px.mode,
        bytes=len(data), bpp=metrics.bits_per_pixel(len(data), px.width, px.height),
        ratio=metrics.compression_ratio(ref.size, len(data)),
        mse=mse, psnr=metrics.psnr_from_mse(mse), ssim=metrics.ssim(ref, decoded),
        encode_s=encode_s, decode_s=decode_s,
        encode_mps=megapixels / encode_s if encode_s > 0 else math.inf,
        decode_mps=megapixels / decode_s if decode_s > 0 else math.inf,
        settings=settings,
    )


def _pillow_decode(data: bytes, mode: str) -> np.ndarray:
    """Decode with Pillow to an (H, W, C) array in ``mode`` (palettes expanded)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("P", "PA", "1") and im.mode != mode:
            im = im.convert("RGBA")
        if im.mode != mode:
            im = im.convert(mode)
        array = np.asarray(im)
    return array.reshape(array.shape[0], array.shape[1], -1)


def _median_time(fn: Callable[[], object]) -> float:
    """Median wall time of ``fn`` over up to five runs (fewer past ~0.5 s)."""
    import statistics

    times: list[float] = []
    while len(times) < _DECODE_RUNS and sum(times) < _DECODE_BUDGET_S:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------
# Bjøntegaard delta rate


def bd_rate(anchor_rate: Sequence[float], anchor_psnr: Sequence[float],
            test_rate: Sequence[float], test_psnr: Sequence[float]) -> float | None:
    """Bjøntegaard delta rate of *test* against *anchor*, in percent; None if n/a.

    For each curve, log10(rate) is interpolated as a function of PSNR by a
    piecewise cubic Hermite interpolant (PCHIP, the variant of the metric
    used by JVET's and AOM's reporting tools: unlike the original cubic
    ``polyfit`` it is monotone between the points, needs no fourth point and
    does not oscillate); both are integrated exactly over the PSNR interval
    the two curves share; BD-rate = 10^(mean difference test − anchor) − 1.
    Negative: *test* needs fewer bits for the same PSNR.  Needs at least
    two points with distinct finite PSNR on each curve and an overlapping
    PSNR interval; otherwise None.
    """
    return _bd(anchor_rate, anchor_psnr, test_rate, test_psnr)[0]


def _bd(anchor_rate, anchor_psnr, test_rate, test_psnr) -> tuple[float | None, str]:
    curves = []
    for rate, psnr in ((anchor_rate, anchor_psnr), (test_rate, test_psnr)):
        points = {}
        for r, p in zip(rate, psnr):
            if r is not None and p is not None and r > 0 and math.isfinite(r) and math.isfinite(p):
                points.setdefault(float(p), float(r))
        if len(points) < BD_MIN_POINTS:
            return None, f"needs {BD_MIN_POINTS} points with distinct finite PSNR per curve, got {len(points)}"
        p = np.array(sorted(points))
        curves.append((p, np.log10(np.array([points[x] for x in p]))))
    lo = max(c[0].min() for c in curves)
    hi = min(c[0].max() for c in curves)
    if not hi > lo:
        return None, "the PSNR ranges of the two curves do not overlap"
    from scipy.interpolate import PchipInterpolator  # only here: scipy's import is slow

    integrals = [PchipInterpolator(p, log_rate).integrate(lo, hi) for p, log_rate in curves]
    mean_diff = (integrals[1] - integrals[0]) / (hi - lo)
    return float((10.0 ** mean_diff - 1.0) * 100.0), ""


# --------------------------------------------------------------------------
# Summaries and output


def summarize(result: Result) -> list[dict]:
    """Per k and codec, means over images: bpp, PSNR, SSIM, throughput and more.

    ``bytes`` and SSIM are plain means; ``bpp`` is pooled, all bits over all
    pixels (a plain mean of bpp would let a 1x1 image's 760 bpp outweigh a
    folder of photos; on images of one size the two are equal); PSNR is the
    mean over the images that are not reproduced exactly (``lossless``
    counts those; ``inf`` if all are); MP/s is total megapixels / total
    seconds; ``vqi_over_pngquant`` is the
    mean of the per-image size ratios; ``not_reached`` counts lossy rows whose
    quality 100 fell short of vqcodec's PSNR.
    """
    import statistics

    out = []
    for k in result.ks:
        entry: dict = {"k": k}
        at_k = [r for r in result.rows if r.k == k]
        for name in CODECS:
            rows = [r for r in at_k if r.codec == name]
            if not rows:
                continue
            pixel_count = sum(r.width * r.height for r in rows)
            mp = pixel_count / 1e6
            entry[name] = {
                "images": len(rows),
                "bytes": statistics.fmean(r.bytes for r in rows),
                "bpp": 8 * sum(r.bytes for r in rows) / pixel_count,
                "psnr": _mean_finite([r.psnr for r in rows]),
                "lossless": sum(1 for r in rows if r.psnr == math.inf),
                "ssim": statistics.fmean(r.ssim for r in rows),
                "encode_mps": mp / sum(r.encode_s for r in rows),
                "decode_mps": mp / sum(r.decode_s for r in rows),
            }
            if name in LOSSY:
                entry[name]["not_reached"] = sum(1 for r in rows if r.reached is False)
                entry[name]["quality"] = statistics.fmean(r.quality for r in rows)
        vq = {r.image: r for r in at_k if r.codec == "vqcodec"}
        ratios = [vq[r.image].bytes / r.bytes for r in at_k if r.codec == "pngquant" and r.image in vq]
        if ratios:
            entry["vqi_over_pngquant"] = statistics.fmean(ratios)
        out.append(entry)
    return out


def _mean_finite(values: list[float]) -> float:
    import statistics

    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.inf


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


def format_table(result: Result) -> str:
    """The text table: per-k means, the BD-rate lines and the notes."""
    summary = summarize(result)
    have = set(result.measured())
    # (group, header, width, getter)
    cols: list[tuple[str, str, int, Callable[[dict], str]]] = [
        ("", "k", 5, lambda e: str(e["k"])),
    ]

    def get(name: str, key: str, spec: str) -> Callable[[dict], str]:
        return lambda e: _fmt(e[name][key], spec) if name in e else "-"

    cols += [
        ("vqcodec", "bpp", 7, get("vqcodec", "bpp", ".3f")),
        ("vqcodec", "PSNR", 7, _psnr_cell("vqcodec")),
        ("vqcodec", "SSIM", 6, get("vqcodec", "ssim", ".4f")),
        ("vqcodec", "enc MP/s", 8, get("vqcodec", "encode_mps", ".2f")),
        ("vqcodec", "dec MP/s", 8, get("vqcodec", "decode_mps", ".1f")),
    ]
    if "pngquant" in have:
        cols += [
            ("pngquant --nofs", "bpp", 7, get("pngquant", "bpp", ".3f")),
            ("pngquant --nofs", "PSNR", 7, _psnr_cell("pngquant")),
            ("pngquant --nofs", "vqi/pq", 6,
             lambda e: _fmt(e.get("vqi_over_pngquant"), ".3f")),
        ]
    if "png" in have:
        cols.append(("PNG", "bpp", 7, get("png", "bpp", ".3f")))
    for name in LOSSY:
        if name in have:
            cols.append(("bpp at vqcodec's PSNR", NAMES[name], 7, _lossy_cell(name)))

    lines = []
    n = len(result.images)
    modes = sorted({result.modes[i] for i in result.images})
    lines.append(f"vqcodec rd: {n} image{'s' if n != 1 else ''} ({', '.join(modes)}), "
                 f"k = {', '.join(map(str, result.ks))}; means over images")
    groups, heads, sep = [], [], "  "
    i = 0
    while i < len(cols):
        group = cols[i][0]
        j = i
        while j < len(cols) and cols[j][0] == group:
            j += 1
        width = sum(c[2] for c in cols[i:j]) + len(sep) * (j - i - 1)
        last = j == len(cols)
        if not group:
            groups.append(" " * width)
        elif len(group) > width and last:  # the last label may run past the columns
            groups.append(" " + group)
        else:
            groups.append(group[:width].center(width))
        i = j
    heads = [c[1].rjust(c[2]) for c in cols]
    lines.append(sep.join(groups).rstrip())
    lines.append(sep.join(heads))
    for entry in summary:
        lines.append(sep.join(c[3](entry).rjust(c[2]) for c in cols))

    bd = result.bd_rate_means()
    if bd:
        lines.append("")
        lines.append("BD-rate of vqcodec against each baseline (bits for the same PSNR; "
                     "negative = vqcodec smaller), mean over images:")
        for baseline, (mean, reason, values) in bd.items():
            label = f"  vs {NAMES[baseline]:<9}"
            if mean is None:
                lines.append(f"{label} n/a: {reason}")
            else:
                spread = (f" (per image {min(values):+.1f} % to {max(values):+.1f} %, "
                          f"{len(values)} of {n} images)" if len(values) > 1 else "")
                lines.append(f"{label} {mean:+.1f} %{spread}")
    notes = _notes(result, summary)
    if notes:
        lines.append("")
        lines.extend(f"note: {note}" for note in notes)
    return "\n".join(lines)


def _psnr_cell(name: str) -> Callable[[dict], str]:
    def cell(entry: dict) -> str:
        if name not in entry:
            return "-"
        e = entry[name]
        mark = "+" if e["lossless"] and math.isfinite(e["psnr"]) else ""
        return _fmt(e["psnr"], ".2f") + mark
    return cell


def _lossy_cell(name: str) -> Callable[[dict], str]:
    def cell(entry: dict) -> str:
        if name not in entry:
            return "-"
        mark = "*" if entry[name]["not_reached"] else ""
        return _fmt(entry[name]["bpp"], ".3f") + mark
    return cell


def _notes(result: Result, summary: list[dict]) -> list[str]:
    notes = []
    alpha = result.alpha_images()
    if alpha:
        notes.append(f"{len(alpha)} image(s) with alpha: PSNR and SSIM over premultiplied RGBA"
                     + ("; JPEG skipped on them (JPEG has no alpha)" if "jpeg" in result.baselines else ""))
    if result.icc_images:
        notes.append(f"{len(result.icc_images)} image(s) with an ICC profile: "
                     + ("left out of every codec's file (--strip), so the bytes compare pixels only"
                        if result.strip else "kept in every codec's file, as encode keeps it "
                        "(--strip leaves it out of all)"))
    for baseline, reason in result.unavailable.items():
        notes.append(f"{NAMES[baseline]} absent: {reason}")
    if "pngquant" in result.measured() and any(k > PNGQUANT_MAX_K for k in result.ks):
        notes.append(f"pngquant: no rows for k > {PNGQUANT_MAX_K} (its maximum)")
    lossless = {NAMES[name]: [e["k"] for e in summary if name in e and e[name]["lossless"]
                              and math.isfinite(e[name]["psnr"])]
                for name in ("vqcodec", "pngquant")}
    lossless = {name: ks for name, ks in lossless.items() if ks}
    if lossless:
        where = "; ".join(f"{name} at k = {', '.join(map(str, ks))}" for name, ks in lossless.items())
        notes.append(f"+ some images are reproduced exactly ({where}): their infinite PSNR is "
                     "left out of the PSNR mean")
    short = {NAMES[name]: [e["k"] for e in summary if name in e and e[name]["not_reached"]]
             for name in LOSSY}
    short = {name: ks for name, ks in short.items() if ks}
    if short:
        where = "; ".join(f"{name} at k = {', '.join(map(str, ks))}" for name, ks in short.items())
        notes.append(f"* quality 100 did not reach vqcodec's PSNR on some images ({where}); "
                     "the mean holds their quality-100 size (reached=false in CSV/JSON)")
    if any(name in result.measured() for name in LOSSY):
        notes.append("WebP/AVIF/JPEG: Pillow at the smallest quality (1-100) whose PSNR reaches "
                     "vqcodec's at that k; WebP lossless where vqcodec is and quality 100 is not")
    if len({r.width * r.height for r in result.rows}) > 1:
        notes.append("bpp: all bits / all pixels of the images "
                     "(pooled; the images differ in pixel count)")
    notes.append("MP/s: total megapixels / total seconds; vqcodec in-process (encode once, "
                 "decode median of up to 5 runs)")
    return notes


def to_csv(result: Result) -> str:
    """Every row, with a header line; ``inf`` for a lossless PSNR, empty for None."""
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in result.rows:
        writer.writerow(["" if v is None else v for v in (getattr(row, c) for c in COLUMNS)])
    return out.getvalue()


def to_json(result: Result) -> str:
    """Strict JSON (non-finite numbers as null): rows, summary, BD-rates, skips, notes."""
    bd_means = result.bd_rate_means()
    document = {
        "ks": list(result.ks),
        "baselines": list(result.baselines),
        "measured_baselines": list(result.measured()),
        "seed": result.seed,
        "strip": result.strip,
        "images": result.images,
        "skipped": [asdict(s) for s in result.skipped],
        "unavailable": result.unavailable,
        "problems": result.problems,
        "rows": [row.as_dict() for row in result.rows],
        "summary": _finite_or_none(summarize(result)),
        "bd_rate": {
            baseline: {
                "mean_percent": _finite_or_none(mean),
                "reason": reason,
                "per_image": {b.image: _finite_or_none(b.value) for b in result.bd_rates()
                              if b.baseline == baseline},
            }
            for baseline, (mean, reason, _) in bd_means.items()
        },
        "notes": _notes(result, summarize(result)),
    }
    return json.dumps(document, indent=1, allow_nan=False) + "\n"


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def plot_png(result: Result, /) -> bytes:
    """PSNR against bits per pixel, one curve per codec (means over images), as PNG bytes.

    Needs matplotlib (``pip install -e '.[plot]'``); lossless PNG is drawn
    as a vertical line at its mean bits per pixel.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5), dpi=110)
    ax = fig.add_subplot()
    summary = summarize(result)
    markers = {"vqcodec": "o", "pngquant": "s", "webp": "^", "avif": "v", "jpeg": "D"}
    for name in CODECS:
        if name == "png":
            if name in summary[0]:
                ax.axvline(summary[0][name]["bpp"], color="grey", linestyle="--", label="PNG (lossless)")
            continue
        points = [(e[name]["bpp"], e[name]["psnr"], e["k"]) for e in summary
                  if name in e and math.isfinite(e[name]["psnr"])]
        if not points:
            continue
        x, y, ks = zip(*points)
        if name in ("vqcodec", "pngquant"):
            label = NAMES[name]
        elif any(e[name]["not_reached"] for e in summary if name in e):
            label = f"{NAMES[name]} (quality 100 short of vqcodec's PSNR at some k)"
        else:
            label = f"{NAMES[name]} at equal PSNR"
        ax.plot(x, y, marker=markers[name], linewidth=2 if name == "vqcodec" else 1.2, label=label)
        if name == "vqcodec":
            for xi, yi, k in points:
                ax.annotate(f"k={k}", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
    n = len(result.images)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB)" + (" — premultiplied RGBA for alpha images" if result.alpha_images() else ""))
    ax.set_title(f"Rate–distortion, mean over {n} image{'s' if n != 1 else ''}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    out = io.BytesIO()
    fig.savefig(out, format="png", bbox_inches="tight")
    return out.getvalue()
