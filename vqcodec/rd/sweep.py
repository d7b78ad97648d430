"""The sweep: every image × every k × every codec of the list, into a :class:`Result`."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import options, pixels
from ..batch import image_extensions
from ..errors import OptionError, VqiError
from . import codecs as _codecs
from .bdrate import bd_rate_why
from .codecs import FAILURES, Codec, Measured
from .rows import Row, Skipped

DEFAULT_KS = (2, 4, 8, 16, 32, 64, 128, 256)

Progress = Callable[[int, int, str], None]
OnSkip = Callable[[str, str], None]


@dataclass(frozen=True)
class BdRate:
    """BD-rate of ``test`` against ``baseline`` (the anchor) on one image, in percent."""

    image: str
    baseline: str
    value: float | None  # None: n/a
    reason: str = ""  # why it is n/a
    test: str = "vqcodec"


@dataclass
class Result:
    """Everything a sweep measured."""

    ks: tuple[int, ...]
    baselines: tuple[str, ...]  # requested
    seed: int = 0
    block: tuple[int, int] = (1, 1)  # vqcodec's vectors (spec §3.1)
    strip: bool = False  # ICC profiles left out of every codec's file
    variants: tuple[str, ...] = ()  # the vqcodec entries after the first ("vqcodec rdo=0"...)
    rows: list[Row] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # measured, in order
    modes: dict[str, str] = field(default_factory=dict)  # image -> mode
    icc_images: list[str] = field(default_factory=list)  # measured images that had a profile
    skipped: list[Skipped] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # baseline -> why
    problems: list[str] = field(default_factory=list)  # codec failures, one line each

    def codecs(self) -> tuple[str, ...]:
        """Every codec that produced rows: vqcodec, its variants, then the baselines."""
        present = {r.codec for r in self.rows}
        return tuple(c for c in ("vqcodec", *self.variants, *self.baselines) if c in present)

    def measured(self) -> tuple[str, ...]:
        """The baselines that produced rows (requested and available)."""
        present = {r.codec for r in self.rows}
        return tuple(b for b in self.baselines if b in present)

    def alpha_images(self) -> list[str]:
        """The measured images that have an alpha channel (LA or RGBA), in order."""
        return [name for name in self.images if "A" in self.modes.get(name, "")]

    def bd_rates(self) -> list[BdRate]:
        """Per image: vqcodec, then each variant, against each curve baseline; each variant also
        against vqcodec's defaults."""
        curves = [b for b in self.measured() if b != "png"]
        pairs = [("vqcodec", b) for b in curves]
        for variant in self.variants:
            pairs += [(variant, "vqcodec")] + [(variant, b) for b in curves]
        out = []
        for test_name, anchor_name in pairs:
            for image in self.images:
                test = [r for r in self.rows if r.image == image and r.codec == test_name]
                anchor = [r for r in self.rows if r.image == image and r.codec == anchor_name]
                if not anchor or not test:
                    continue
                value, reason = bd_rate_why(
                    [r.bpp for r in anchor], [r.psnr for r in anchor],
                    [r.bpp for r in test], [r.psnr for r in test],
                )
                out.append(BdRate(image, anchor_name, value, reason, test_name))
        return out

    def bd_rate_means(self, test: str = "vqcodec") -> dict[str, tuple[float | None, str, list[float]]]:
        """anchor -> (mean over images or None, reason when None, per-image values), for *test*."""
        out: dict[str, tuple[float | None, str, list[float]]] = {}
        per = [b for b in self.bd_rates() if b.test == test]
        for anchor in dict.fromkeys(b.baseline for b in per):
            items = [b for b in per if b.baseline == anchor]
            values = [b.value for b in items if b.value is not None]
            if values:
                out[anchor] = (statistics.fmean(values), "", values)
            else:
                out[anchor] = (None, items[0].reason if items else "no data", [])
        return out


# --------------------------------------------------------------------------
# Finding the images


def find_images(paths: Iterable[str]) -> tuple[list[str], list[Skipped]]:
    """Files given as they are; folders searched recursively for the image files batch finds.

    Folders are searched for the extensions of the formats Pillow reads here
    (:func:`vqcodec.batch.image_extensions`: one answer for rd and batch);
    hidden files and folders (starting with '.') are skipped; a path that
    does not exist is returned as :class:`Skipped`.
    """
    extensions = image_extensions()
    found: dict[str, None] = {}
    skipped = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
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


def available_baselines(baselines: Sequence[str], pngquant: str | None) -> dict[str, str]:
    """baseline -> why it cannot run here, for the requested ones that cannot."""
    reasons = {name: _codecs.unavailable(name, pngquant) for name in baselines}
    return {name: reason for name, reason in reasons.items() if reason is not None}


def codec_list(*, baselines: Iterable[str] = (), variants: Iterable[Mapping[str, Any]] = (), seed: int = 0,
               block: object = (1, 1), dither: float = 0.0, pngquant: str | None = None,
               cache: "_codecs.PsnrCache | None" = None) -> list[Codec]:
    """vqcodec, one entry per variant (EncodeOptions changes), then the baselines, in order.

    ``block`` (an encoder option: ``(2, 2)``, "2x2") and ``dither`` are
    vqcodec's and, unless they set their own, its variants'; ``cache`` is
    the lossy baselines' PSNR cache (:class:`~.codecs.PsnrCache`).
    """
    block = options.check("block", block)
    base = {} if block == (1, 1) else {"block": block}
    if options.check("dither", dither):
        base["dither"] = dither
    entries = [_codecs.vqcodec_codec(base, seed=seed, name="vqcodec")]
    entries += [_codecs.vqcodec_codec({**base, **changes}, seed=seed,
                                      name=_codecs.variant_name(changes)) for changes in variants]
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise OptionError(f"the variant {names[-1][len('vqcodec '):]!r} is given twice or changes nothing")
    entries += [_codecs.baseline(b, pngquant=pngquant, cache=cache) for b in _codecs.check_baselines(baselines)]
    return entries


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`sweep`: ``result`` holds the images finished before it
    (whole images only, in input order), so a caller can still report them."""

    def __init__(self, result: "Result") -> None:
        super().__init__()
        self.result = result


@dataclass(frozen=True)
class _Plan:
    """What every image is measured with, as plain values (a worker process rebuilds the list)."""

    ks: tuple[int, ...]
    baselines: tuple[str, ...]
    variants: tuple[dict, ...]
    seed: int
    block: tuple[int, int]
    dither: float
    strip: bool
    max_pixels: int | None
    pngquant: str | None
    cache: str | None  # the PsnrCache folder, or None: no cache

    def codecs(self) -> list[Codec]:
        return codec_list(baselines=self.baselines, variants=self.variants, seed=self.seed, block=self.block,
                          dither=self.dither, pngquant=self.pngquant,
                          cache=None if self.cache is None else _codecs.PsnrCache(self.cache))


@dataclass(frozen=True)
class _ImageOutcome:
    """What measuring one image gave: its rows, or why it was skipped."""

    path: str
    rows: tuple[Row, ...] = ()
    mode: str = ""
    icc: bool = False
    skipped: str | None = None
    problems: tuple[str, ...] = ()


def _measure_path(path: str, plan: _Plan, workdir: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> _ImageOutcome:
    """Load and measure one image (a worker's whole job: plain values in and out)."""
    problems: list[str] = []
    try:
        px = pixels.load(path, max_pixels=plan.max_pixels)
        rows = measure_image(px, name=path, ks=plan.ks, codecs=plan.codecs(), strip=plan.strip,
                             workdir=workdir, progress=progress, on_problem=problems.append)
    except VqiError as e:
        return _ImageOutcome(path, skipped=str(e), problems=tuple(problems))
    return _ImageOutcome(path, tuple(rows), px.mode, bool(px.icc_profile), None, tuple(problems))


def sweep(
    paths: Iterable[str],
    /,
    *,
    ks: Iterable[int] = DEFAULT_KS,
    baselines: Iterable[str] = _codecs.DEFAULT_BASELINES,
    variants: Iterable[Mapping[str, Any]] = (),
    seed: int = 0,
    block: object = (1, 1),
    dithers: Iterable[float] = (0.0,),
    strip: bool = False,
    max_pixels: int | None = pixels.DEFAULT_MAX_PIXELS,
    pngquant: str | None = "",
    jobs: int = 1,
    cache: bool | str = False,
    progress: Progress | None = None,
    on_skip: OnSkip | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> Result:
    """Measure vqcodec, its variants and the baselines on every image (folders recursed) at every k.

    ``variants`` are EncodeOptions changes (``{"rdo": 0}``, ``{"coder":
    "zstd"}``), each measured as a codec of its own beside vqcodec's
    defaults.  ``block`` is vqcodec's vector shape (``(2, 2)``, "2x2"; the
    variants' too unless they set it).  ``dithers`` are dither levels: vqcodec
    at the first, a variant at each other (``dithers=(0, 1)`` is
    ``variants=[{"dither": 1}]``).  ICC profiles follow ``vqcodec encode``'s
    one rule (:func:`vqcodec.pixels.stored`): kept in every codec's file, or
    with ``strip`` left out of all.  ``pngquant`` is the executable's path;
    ``""`` (default) looks it up on PATH, ``None`` means "not available".
    ``cache``: keep the lossy baselines' PSNR per quality across runs
    (:class:`~.codecs.PsnrCache`; True: its default folder, a path: that
    folder, False: none, the default here; ``vqcodec rd`` keeps it unless
    ``--no-cache``), so a second sweep of the same images encodes each
    baseline only at the qualities its rows use.

    ``jobs`` > 1 measures that many images at once in worker processes
    (spawned: a script needs the ``if __name__ == "__main__":`` guard); the
    rows are the same as with one job, in the same order, apart from the
    timing columns (which then share the cores).  ``progress(done, total,
    what)`` is called as (image, k) steps finish (images, with jobs);
    ``on_skip(path, reason)`` for every file that could not be read or
    measured (it is left out, not fatal); ``on_problem(message)`` when one
    codec fails on one image.  Ctrl-C raises :class:`SweepInterrupted`,
    whose ``result`` holds the finished images.
    """
    import shutil

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise OptionError(f"jobs must be a whole number >= 1, got {jobs!r}")
    ks = check_ks(ks)
    baselines = _codecs.check_baselines(baselines)
    levels = tuple(dict.fromkeys(options.check("dither", d) for d in dithers))
    if not levels:
        raise OptionError("no dither levels given; give at least one, e.g. dithers=(0, 1)")
    variants = tuple([{"dither": d} for d in levels[1:]] + [dict(v) for v in variants])
    if pngquant == "":
        pngquant = shutil.which("pngquant")
    block = options.check("block", block)
    strip = options.check("strip", strip)
    result = Result(ks=ks, baselines=baselines, seed=seed, block=block, strip=strip)
    result.unavailable = available_baselines(baselines, pngquant)
    runnable = tuple(b for b in baselines if b not in result.unavailable)
    folder = None if cache is False else (_codecs.PsnrCache().folder if cache is True else os.fspath(cache))
    plan = _Plan(ks, runnable, variants, seed, block, levels[0], strip, max_pixels, pngquant, folder)
    entries = plan.codecs()  # checks the variants here, before any image
    result.variants = tuple(e.name for e in entries if e.kind == "vqcodec")[1:]
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

    try:
        if jobs == 1 or len(images) < 2:
            _sweep_here(images, plan, progress, take)
        else:
            _sweep_in_pool(images, plan, min(jobs, len(images)), progress, take)
    except KeyboardInterrupt:
        _collect(result, images, outcomes)
        raise SweepInterrupted(result) from None
    if progress is not None:
        progress(len(images) * len(ks), len(images) * len(ks), "done")
    _collect(result, images, outcomes)
    return result


def _sweep_here(images: list[str], plan: _Plan, progress: Progress | None,
                take: Callable[[int, _ImageOutcome], None]) -> None:
    """One image after the other in this process, with a progress step per (image, k)."""
    import tempfile

    ks = plan.ks
    total = len(images) * len(ks)
    with tempfile.TemporaryDirectory(prefix="vqcodec-rd-") as workdir:
        for i, path in enumerate(images):
            def tick(j: int, k: int, path: str = path, step: int = i * len(ks)) -> None:
                if progress is not None:
                    progress(step + j, total, f"{os.path.basename(path)} k={k}")

            tick(0, ks[0])
            take(i, _measure_path(path, plan, workdir=workdir, progress=tick))


def _sweep_in_pool(images: list[str], plan: _Plan, workers: int, progress: Progress | None,
                   take: Callable[[int, _ImageOutcome], None]) -> None:
    """The images on *workers* processes; a progress step per image finished."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from ..batch import process_pool, shut_down

    total = len(images) * len(plan.ks)
    pool = process_pool(workers)
    finished = False
    try:
        pending = {pool.submit(_measure_path, path, plan): i for i, path in enumerate(images)}
        done_images = 0
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                take(i, future.result())
                done_images += 1
                if progress is not None:
                    progress(done_images * len(plan.ks), total, os.path.basename(images[i]))
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
    baselines: Iterable[str] = _codecs.DEFAULT_BASELINES,
    seed: int = 0,
    block: object = (1, 1),
    strip: bool = False,
    pngquant: str | None = None,
    codecs: Sequence[Codec] | None = None,
    workdir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> list[Row]:
    """The rows of one image: for each k, each codec of the list in order.

    ``codecs`` is the list (:func:`codec_list`); without it, vqcodec and
    ``baselines`` (run as given; pngquant only with an executable path).
    The first vqcodec entry is the reference of each k.  A vqcodec failure
    is raised (it is the image's failure); a baseline that fails is reported
    through ``on_problem`` and left out of this image's rows.  An ICC
    profile is in every codec's file, as ``vqcodec encode`` keeps it, or with
    *strip* in none (a 3 KB profile can swamp a small graphic).
    """
    px = pixels.stored(px, strip=strip)
    ks = check_ks(ks)
    if codecs is None:
        wanted = _codecs.check_baselines(baselines)
        if pngquant is None:
            wanted = tuple(b for b in wanted if b != "pngquant")
        codecs = codec_list(baselines=wanted, seed=seed, block=block, pngquant=pngquant)
    rows: list[Row] = []
    failed: set[str] = set()
    with _work_folder(workdir) as folder:
        measurers = [(c, c.start(px, name, folder)) for c in codecs]
        for j, k in enumerate(ks):
            if progress is not None:
                progress(j, k)
            reference: Measured | None = None
            for entry, measure in measurers:
                if entry.name in failed:
                    continue
                if entry.kind == "vqcodec":
                    got = measure(k, reference)
                else:
                    try:
                        got = measure(k, reference)
                    except FAILURES as e:
                        failed.add(entry.name)
                        if on_problem is not None:
                            on_problem(f"{entry.label} failed on '{name}': {' '.join(str(e).split())}")
                        continue
                if got is None:
                    continue
                if reference is None and entry.kind == "vqcodec":
                    reference = got
                rows.append(got.row)
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
