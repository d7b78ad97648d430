"""Many files at once: plan the jobs, run them on any executor, stream the results.

The work is done by two top-level functions, :func:`encode_file` and
:func:`decode_file`, that take plain values (paths as strings, options as
numbers and strings), read and write the files themselves and return a small
:class:`Result` -- never raising for a bad file.  They can therefore run on
any :class:`concurrent.futures.Executor`: a process pool, a thread pool, or a
Dask cluster (``dask.distributed.Client(address).get_executor()``; the
workers then need the same paths, e.g. a shared file system).

Planning (:func:`plan_encode`, :func:`plan_decode`) is pure path work, done
before anything is written:

* a file named directly goes to the top of the output folder; a folder is
  searched recursively (hidden files and folders skipped, symbolic links to
  folders not followed) and its tree is mirrored under the output folder, so
  ``photos/2024/a.png`` given as ``photos`` becomes ``OUT/2024/a.vqi``;
* for encode, folders contribute the files whose extension Pillow can open
  (not ``.vqi``); for decode, ``*.vqi`` files;
* the output folder is never searched, even when it lies inside an input
  folder, so a second run does not read the first run's outputs;
* two inputs that would write the same output (``a.png`` and ``a.jpg`` ->
  ``a.vqi``; compared case-insensitively, as on macOS and Windows), an
  output that would replace its own input, an existing output without
  *overwrite*, and an input path that does not exist all become failed
  :class:`Result`\\ s in :attr:`Plan.failed`; the other jobs still run.

:func:`run` submits the jobs a few at a time (never more than a small
window of futures in flight, whatever the number of files) and yields each
:class:`Result` as it completes.  Outputs are written atomically
(:func:`vqcodec.fileio.atomic_write`): an interrupted batch leaves complete
files or none.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Sequence

from . import codec, fileio, metrics, pixels
from ._threads import cores
from .limits import DEFAULT_MAX_PIXELS
from .errors import NotSmallerError, OptionError, TargetUnreachableError, VqiError
from .options import EncodeOptions

__all__ = [
    "Job",
    "Plan",
    "Result",
    "Summary",
    "image_extensions",
    "output_suffix",
    "plan_encode",
    "plan_decode",
    "encode_file",
    "decode_file",
    "run",
    "imap_unordered",
    "plan_tokens",
    "attempt",
    "write_file",
    "image_files",
    "process_pool",
    "shut_down",
    "summarize",
]

VQI_SUFFIX = ".vqi"
# Formats Pillow lists as readable but cannot decode without outside help.
_UNREADABLE_FORMATS = frozenset({"EPS", "MPEG"})
# The usual extension of a format (Pillow's first registered one is often odd: .jfif).
_PREFERRED_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp",
                     "BMP": ".bmp", "GIF": ".gif", "PPM": ".ppm", "TGA": ".tga"}


# --------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Job:
    """One file to convert: *source* -> *target* (paths as the user gave them)."""

    source: str
    target: str


@dataclass(frozen=True)
class Result:
    """What became of one file; ``error`` is None when it worked.

    ``bytes_in`` and ``bytes_out`` are file sizes; ``bpp`` is the bits per
    pixel of the .vqi file (the output of an encode, the input of a
    decode); ``psnr`` (encode only, when measured) is ``math.inf`` for a
    lossless result; ``k`` (encode) the codebook size written -- the one a
    target chose; ``seconds`` is the worker's time for this file.
    ``skipped`` says why nothing was written for a file that did not fail:
    ``"unreachable"`` (the encode's target cannot be met) or ``"larger"``
    (``skip_if_larger``: the .vqi file would not be smaller); ``error``
    then holds the reason; or ``"exists"`` (planned with *skip_existing*:
    the output was there already; no error).
    """

    source: str
    target: str
    bytes_in: int = 0
    bytes_out: int = 0
    pixels: int = 0
    bpp: float | None = None
    psnr: float | None = None
    seconds: float = 0.0
    error: str | None = None
    skipped: str | None = None
    k: int | None = None

    @property
    def ok(self) -> bool:
        """True when the file was converted (no error, not skipped)."""
        return self.error is None and self.skipped is None

    def as_dict(self) -> dict[str, Any]:
        """The fields, JSON-ready: an infinite PSNR becomes None."""
        return metrics.json_ready(asdict(self))


@dataclass(frozen=True)
class Plan:
    """The jobs to run and the inputs that failed before any work."""

    what: str  # "encode", "decode" or "tokens"
    jobs: tuple[Job, ...]
    failed: tuple[Result, ...] = ()

    @property
    def total(self) -> int:
        """Every input: the jobs to run and the ones that failed while planning."""
        return len(self.jobs) + len(self.failed)


@dataclass(frozen=True)
class Summary:
    """Totals over a batch.  ``ratio`` is input bytes / output bytes of the
    files that worked; the means are over those files: ``mean_bpp``
    weighted by pixel count (all bits over all pixels, so that one tiny
    image does not outweigh a folder of photos), ``mean_psnr`` over the
    finite values (inf only when every measured file was lossless);
    ``lossless`` counts the files whose PSNR is infinite (left out of the mean)."""

    ok: int
    failed: int  # not counting the skipped
    bytes_in: int
    bytes_out: int
    ratio: float | None
    mean_bpp: float | None
    mean_psnr: float | None
    seconds: float
    unreachable: int = 0
    larger: int = 0
    existing: int = 0
    lossless: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The fields, JSON-ready: an infinite mean PSNR becomes None."""
        return metrics.json_ready(asdict(self))


def summarize(results: Iterable[Result], seconds: float) -> Summary:
    """Totals and means of *results*; *seconds* is the batch's wall-clock time."""
    results = list(results)
    good = [r for r in results if r.ok]
    bytes_in = sum(r.bytes_in for r in good)
    bytes_out = sum(r.bytes_out for r in good)
    weighted = [(r.bpp * r.pixels, r.pixels) for r in good if r.bpp is not None and r.pixels]
    psnrs = [r.psnr for r in good if r.psnr is not None]
    finite = [p for p in psnrs if math.isfinite(p)]
    if finite:
        mean_psnr: float | None = sum(finite) / len(finite)
    else:
        mean_psnr = math.inf if psnrs else None
    skipped = [r.skipped for r in results if r.skipped]
    return Summary(
        ok=len(good),
        failed=len(results) - len(good) - len(skipped),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        ratio=bytes_in / bytes_out if bytes_out else None,
        mean_bpp=(sum(b for b, _ in weighted) / sum(n for _, n in weighted)) if weighted else None,
        mean_psnr=mean_psnr,
        seconds=seconds,
        unreachable=skipped.count("unreachable"),
        larger=skipped.count("larger"),
        existing=skipped.count("exists"),
        lossless=len(psnrs) - len(finite),
    )


# --------------------------------------------------------------------------
# Planning


def image_extensions() -> frozenset[str]:
    """Extensions (".png", ...) of the formats Pillow can read here, without ".vqi"."""
    from PIL import Image, ImageFile

    Image.init()
    readable = set()
    for fmt, (factory, _accept) in Image.OPEN.items():
        stub = isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)
        if not stub and fmt not in _UNREADABLE_FORMATS:
            readable.add(fmt)
    found = {ext for ext, fmt in Image.registered_extensions().items() if fmt in readable}
    return frozenset(found - {VQI_SUFFIX})


def output_suffix(format: str) -> str:
    """The extension decode writes for a Pillow *format* ("PNG" -> ".png", "jpeg" -> ".jpg")."""
    from PIL import Image

    fmt = pixels.format_for_path("x." + format.lower().lstrip("."))
    if fmt in _PREFERRED_SUFFIX:
        return _PREFERRED_SUFFIX[fmt]
    for ext, name in Image.registered_extensions().items():
        if name == fmt:
            return ext
    raise OptionError(f"no file extension for format {format!r}")  # pragma: no cover


def plan_encode(paths: Sequence[str], output_dir: str | None, /, *, overwrite: bool = False,
                skip_existing: bool = False, suffix: str = VQI_SUFFIX) -> Plan:
    """Plan encoding images (files, and image files found in folders) into *output_dir*.

    With *output_dir* None each output goes beside its input (pngquant's
    ``--ext``), named with *suffix* in place of the input's extension.

    With *skip_existing*, an input whose output exists is skipped (a
    ``Result`` with ``skipped="exists"``, not a failure), so a batch can be
    run again after adding files.
    """
    return _plan("encode", paths, output_dir, image_extensions(), suffix, overwrite,
                 skip_existing)


def plan_tokens(paths: Sequence[str], output_dir: str, /, *, overwrite: bool = False) -> Plan:
    """Plan tokenizing images (as for encode) into ``.npy`` files under *output_dir*."""
    return _plan("tokens", paths, output_dir, image_extensions(), ".npy", overwrite)


def plan_decode(paths: Sequence[str], output_dir: str | None, /, *, format: str = "PNG",
                overwrite: bool = False, skip_existing: bool = False,
                suffix: str | None = None) -> Plan:
    """Plan decoding .vqi files (files, and ``*.vqi`` in folders) to *format* images
    (*output_dir*, *skip_existing* and *suffix* as for :func:`plan_encode`; the
    suffix defaults to the format's)."""
    return _plan("decode", paths, output_dir, frozenset({VQI_SUFFIX}),
                 suffix or output_suffix(format), overwrite, skip_existing)


def _plan(what: str, paths: Sequence[str], output_dir: str | None, extensions: frozenset[str],
          suffix: str, overwrite: bool, skip_existing: bool = False) -> Plan:
    output_dir = None if output_dir is None else os.fspath(output_dir)
    skip_dir = None if output_dir is None else os.path.realpath(output_dir)
    pairs: list[tuple[str, str]] = []  # (source, path relative to output_dir)
    failed: list[Result] = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            for source in _walk(path, extensions, skip_dir):
                pairs.append((source, os.path.relpath(source, path)))
        elif os.path.exists(path):
            pairs.append((path, os.path.basename(path)))
        else:
            failed.append(Result(path, "", error="no such file or folder"))

    claims: dict[str, list[Job]] = {}
    seen_sources: set[str] = set()
    for source, rel in pairs:
        real = os.path.realpath(source)
        if real in seen_sources:  # the same file named twice (a file and its folder)
            continue
        seen_sources.add(real)
        beside = output_dir is None  # each output beside its input
        job = Job(source, os.path.splitext(source if beside else os.path.join(output_dir, rel))[0]
                  + suffix)
        claims.setdefault(os.path.abspath(job.target).casefold(), []).append(job)

    jobs = []
    for group in claims.values():
        if len(group) > 1:
            names = ", ".join(f"'{j.source}'" for j in group)
            every = "both" if len(group) == 2 else "all"
            failed.extend(Result(j.source, j.target, error=f"{names} would {every} write "
                                 f"'{j.target}'; rename one of them") for j in group)
            continue
        job = group[0]
        if os.path.realpath(job.target) == os.path.realpath(job.source):
            failed.append(Result(job.source, job.target,
                                 error="the output would replace the input; choose another -o folder"))
        elif skip_existing and not overwrite and os.path.lexists(job.target):
            failed.append(Result(job.source, job.target, skipped="exists"))
        elif not overwrite and os.path.lexists(job.target):
            failed.append(Result(job.source, job.target, error=_exists(job.target)))
        else:
            jobs.append(job)
    return Plan(what, tuple(jobs), tuple(failed))


def image_files(paths: Sequence[str], /) -> tuple[list[str], list[str]]:
    """The image files *paths* name (files as given, folders searched as for encode) and
    the paths that do not exist."""
    extensions = image_extensions()
    found: list[str] = []
    missing: list[str] = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            found.extend(_walk(path, extensions, ""))
        elif os.path.exists(path):
            found.append(path)
        else:
            missing.append(path)
    return found, missing


def _walk(root: str, extensions: frozenset[str], skip_dir: str | None) -> Iterator[str]:
    """Files under *root* with one of *extensions*, in sorted order; *skip_dir* not entered."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.realpath(os.path.join(folder, d)) != skip_dir)
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                yield os.path.join(folder, name)


def _exists(target: str) -> str:
    # no advice: it would name the CLI's flag or the API's keyword (each front end adds its own)
    return f"'{target}' exists"


# --------------------------------------------------------------------------
# The workers: plain values in, a Result out, never an exception for a bad file


def encode_file(source: str, target: str, /, options: EncodeOptions | None = None, *,
                overwrite: bool = False, measure: bool = True, **changes: Any) -> Result:
    """Encode the image file *source* to the .vqi file *target* (written atomically).

    *options* (an :class:`~vqcodec.options.EncodeOptions`) and keyword
    *changes* to it are the encoder's options, as for
    :func:`vqcodec.codec.encode_pixels`.  With *measure*, the PSNR is
    computed (cheap; no SSIM).
    """
    def work() -> Result:
        bytes_in = os.stat(source).st_size
        enc = codec.encode_pixels(source, options, **changes)
        write_file(target, enc.data, overwrite)
        count = enc.header.width * enc.header.height
        psnr = metrics.psnr(enc.source.array, enc.reconstruct()) if measure else None
        return Result(source, target, bytes_in, len(enc.data), count,
                      metrics.bits_per_pixel(len(enc.data), enc.header.width, enc.header.height),
                      psnr, k=enc.header.k)

    return attempt(source, target, work)


def decode_file(source: str, target: str, /, *, format: str = "PNG",
                max_pixels: int | None = DEFAULT_MAX_PIXELS,
                overwrite: bool = False, codebook: Any = None,
                quality: int | None = None) -> Result:
    """Decode the .vqi file *source* to an image file *target* in *format* (atomically).

    *codebook*: shared codebooks the files may name (as for
    :func:`vqcodec.codec.decode_pixels`; paths travel to any executor).
    *quality* (1-100) makes a WebP lossy (it is lossless without) and sets JPEG's."""
    def work() -> Result:
        data = fileio.read_source(source)
        px = codec.decode_pixels(data, max_pixels=max_pixels, codebook=codebook)
        out = pixels.to_bytes(px, format, **({} if quality is None else {"quality": quality}))
        write_file(target, out, overwrite)
        return Result(source, target, len(data), len(out), px.width * px.height,
                      metrics.bits_per_pixel(len(data), px.width, px.height))

    return attempt(source, target, work)


def write_file(target: str, data: bytes, overwrite: bool) -> None:
    """Write *data* to *target* atomically, making its folder first (a worker's output)."""
    folder = os.path.dirname(target)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fileio.atomic_write(target, data, overwrite=overwrite)


def attempt(source: str, target: str, work: Callable[[], Result]) -> Result:
    """*work*'s Result, or a failed Result naming what went wrong: a worker never raises for a bad file."""
    start = time.perf_counter()
    try:
        result = work()
    except FileExistsError:
        result = Result(source, target, error=_exists(target))
    except OSError as e:
        where = f" '{e.filename}'" if e.filename else ""
        result = Result(source, target, error=f"cannot read or write{where}: {e.strerror or e}")
    except MemoryError:
        result = Result(source, target, error="out of memory; try a smaller k or fewer jobs")
    except (TargetUnreachableError, NotSmallerError) as e:
        why = "unreachable" if isinstance(e, TargetUnreachableError) else "larger"
        result = Result(source, target, error=" ".join(str(e).split()), skipped=why)
    except Exception as e:  # a VqiError names what failed; anything else is named by its type
        text = str(e) if isinstance(e, VqiError) else f"{type(e).__name__}: {e}"
        result = Result(source, target, error=" ".join(text.split()))
    return replace(result, seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------
# Running


def run(plan: Plan, /, *, executor: Executor | None = None, jobs: int | None = None,
        window: int | None = None, **options: Any) -> Iterator[Result]:
    """Yield a :class:`Result` per input as the files complete (the plan's failures first).

    *options* go to :func:`encode_file` or :func:`decode_file`.  With no
    *executor*, a :class:`~concurrent.futures.ProcessPoolExecutor` of *jobs*
    processes (default: the number of cores) is made and shut down at the
    end; with ``jobs=1`` the files are converted in this process.  At most
    *window* futures (default 2 per worker, at least 4) are in flight.
    Closing the iterator early (or Ctrl-C while it runs) cancels the jobs
    not started; a pool made here has its workers stopped.  Its processes
    are spawned, so a script that calls this needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    worker = encode_file if plan.what == "encode" else decode_file
    yield from plan.failed
    calls = [(os.path.abspath(job.source), os.path.abspath(job.target)) for job in plan.jobs]
    for i, future in imap_unordered(worker, calls, executor=executor, jobs=jobs, window=window,
                                    **options):
        yield _outcome(future, plan.jobs[i])


def imap_unordered(worker: Callable[..., Any], calls: Sequence[tuple], /, *,
                   executor: Executor | None = None, jobs: int | None = None,
                   window: int | None = None, **options: Any) -> Iterator[tuple[int, Future]]:
    """Run ``worker(*calls[i], **options)`` for every *i*; yield ``(i, future)`` as each is done.

    The executor design of :func:`run`, for any top-level *worker*: with no
    *executor* a process pool of *jobs* processes (default: the number of
    cores) is made and shut down at the end, and with ``jobs=1`` the calls
    run in this process; at most *window* futures (default 2 per worker, at
    least 4) are in flight; closing the iterator early cancels the calls not
    started.
    """
    if not calls:
        return
    workers = min(jobs or cores(), len(calls))
    if executor is None and workers == 1:
        for i, call in enumerate(calls):
            future: Future = Future()
            try:
                future.set_result(worker(*call, **options))
            except Exception as e:  # as a pool would hand it over
                future.set_exception(e)
            yield i, future
        return
    own = executor is None
    if own:
        executor = process_pool(workers)
    size = window or max(4, 2 * workers)
    pending: dict[Future, int] = {}  # in flight: never more than *size*
    finished = False
    try:
        todo = iter(enumerate(calls))
        while True:
            for i, call in todo:
                pending[executor.submit(worker, *call, **options)] = i
                if len(pending) >= size:
                    break
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future
        finished = True
    finally:
        for future in pending:
            future.cancel()
        if own:
            shut_down(executor, finished)


def process_pool(workers: int) -> Executor:
    """A pool of *workers* fresh ("spawn") processes that leave Ctrl-C to the parent.

    Fresh processes load numpy anew, so they read ``OPENBLAS_NUM_THREADS``
    (and ``OMP_``/``MKL_NUM_THREADS``) from the environment as it is now:
    set them to 1, as the CLI and Dask's workers do, so that N processes
    do not each start a BLAS thread per core.  (Forked workers would keep
    the parent's thread pool; spawn is also the default on macOS and Windows.)
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init)


def _worker_init() -> None:
    """In a pool's worker: Ctrl-C and SIGTERM are the parent's to handle (it stops us)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _outcome(future: Future, job: Job) -> Result:
    """The future's Result, or a failed one when the executor itself failed."""
    try:
        return _display(future.result(), job)
    except Exception as e:  # a worker process died, the cluster lost the task, ...
        return Result(job.source, job.target, error=f"worker failed: {type(e).__name__}: {e}")


def _display(result: Result, job: Job) -> Result:
    """The worker saw absolute paths; report the paths as the user gave them."""
    error = result.error
    if error is not None:
        error = error.replace(result.source, job.source).replace(result.target, job.target)
    return replace(result, source=job.source, target=job.target, error=error)


def shut_down(executor: Executor, finished: bool) -> None:
    """Shut a pool down: wait for it when *finished*, else stop its workers at once."""
    if finished:
        executor.shutdown(wait=True)
        return
    # Interrupted: drop the queue and stop the workers instead of waiting for
    # the files in progress (their atomic writes leave nothing behind).
    terminate = getattr(executor, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)
