"""The sweep's codecs: each one an entry of a list (name, how to encode, decode and measure).

A :class:`Codec` is a name, a label, a kind and a ``start`` function that
takes one image (its pixels, its name, a work folder) and returns a
*measurer*: ``measure(k, reference) -> Measured | None``, called once per k.
``reference`` is what the sweep's first vqcodec entry measured at that k
(its row and its decoded pixels): the lossy baselines search for its PSNR,
the lossless stores keep its pixels.  Per-image state (PNG's one file, the
lossy quality search shared across k) lives in the measurer.

The entries
    vqcodec     :func:`vqcodec_codec`: :func:`vqcodec.codec.encode_pixels`
                in-process with an :class:`~vqcodec.options.EncodeOptions`
                (one entry per variant: ``rdo=0``, ``coder=zstd``...), then
                :func:`vqcodec.codec.decode` of its bytes, checked equal to
                the encoder's reconstruction (:class:`~.rows.RoundTripError`).
    pngquant    ``pngquant --nofs K`` (2 <= K <= 256) as a subprocess on a
                PNG of the pixels without ICC profile, so it does no colour
                conversion (the profile, when kept, is added to its output as
                an ``iCCP`` chunk); timed as a whole process.
    png         lossless PNG through Pillow, ``compress_level=9``; one file
                per image, repeated in the row of every k.
    webp, avif, jpeg
                Pillow (defaults, JPEG with ``optimize=True``) at the smallest
                integer quality, 1..100, whose PSNR reaches the reference's;
                ``reached=False`` when quality 100 does not.  JPEG skips images
                with alpha.
    jxl-lossless, webp-lossless
                the reference's decoded pixels stored losslessly: ``cjxl -d 0
                -e 9`` (decoded with ``djxl``, both whole processes) and WebP
                lossless through Pillow (``method=6, quality=100``, cwebp's
                ``-lossless -z 9``); checked pixel-exact.  They answer "would
                a lossless coder store vqcodec's own pixels in fewer bytes?"
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import codec, metrics, pixels
from ..errors import OptionError, VqiError
from ..options import EncodeOptions
from .rows import RoundTripError, Row, make_row, median_time, pillow_decode

PNGQUANT_MAX_K = 256
PNG_OPTIONS = {"compress_level": 9}
WEBP_LOSSLESS_OPTIONS = {"lossless": True, "quality": 100, "method": 6, "exact": True}
CJXL_ARGS = ("-d", "0", "-e", "9")
_LOSSY_FORMATS = {
    "webp": ("WEBP", {}),
    "avif": ("AVIF", {}),
    "jpeg": ("JPEG", {"optimize": True}),
}
_TIMEOUT_S = 600

BASELINES = ("pngquant", "png", "webp", "avif", "jpeg", "jxl-lossless", "webp-lossless")
# jxl-lossless is asked for by name: cjxl -e 9 takes several times the rest of a sweep
DEFAULT_BASELINES = tuple(b for b in BASELINES if b != "jxl-lossless")
LOSSY = ("webp", "avif", "jpeg")
STORES = ("jxl-lossless", "webp-lossless")  # lossless stores of the reference's pixels
NAMES = {"vqcodec": "vqcodec", "pngquant": "pngquant", "png": "PNG", "webp": "WebP", "avif": "AVIF",
         "jpeg": "JPEG", "jxl-lossless": "JPEG XL lossless", "webp-lossless": "WebP lossless"}

# A codec's failure on one image: reported and that codec left out of the image's rows.
FAILURES = (VqiError, OSError, subprocess.SubprocessError)


@dataclass(frozen=True)
class Measured:
    """One codec's row at one k and the pixels it decoded."""

    row: Row
    decoded: np.ndarray


Measurer = Callable[[int, "Measured | None"], "Measured | None"]


@dataclass(frozen=True)
class Codec:
    """One entry of the sweep's codec list.

    ``kind``: "vqcodec" (a variant of ours), "at-k" (pngquant), "lossless"
    (one file per image), "at-psnr" (a lossy codec at the reference's PSNR)
    or "store" (a lossless store of the reference's pixels).  ``start(px,
    name, folder)`` returns the image's measurer.
    """

    name: str
    label: str
    kind: str
    start: Callable[[pixels.Pixels, str, str], Measurer]


def label(name: str) -> str:
    """The display name of a codec entry."""
    return NAMES.get(name, name)


# --------------------------------------------------------------------------
# vqcodec and its variants


def _word(value: Any) -> str:
    """An option value as a user writes it: 1 for 1.0, 2x2 for (2, 2)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return str(value)


def variant_name(changes: Mapping[str, Any]) -> str:
    """"vqcodec" for no changes, else "vqcodec rdo=0 coder=zstd" (in the given order)."""
    return " ".join(["vqcodec", *(f"{key}={_word(value)}" for key, value in changes.items())])


def vqcodec_codec(changes: Mapping[str, Any] | None = None, *, seed: int = 0, name: str | None = None) -> Codec:
    """vqcodec with EncodeOptions(seed=seed, **changes) at every k of the sweep.

    The options are checked here (:class:`OptionError` names the option);
    ``k`` is the sweep's axis and ``max_pixels`` the sweep's, so neither can
    be changed.  *name* defaults to :func:`variant_name` of the changes.
    """
    changes = dict(changes or {})
    fixed = sorted({"k", "max_pixels"} & set(changes))
    if fixed:
        raise OptionError(f"a variant cannot set {fixed[0]!r}: the sweep sets it")
    options = EncodeOptions(seed=seed).replace(max_pixels=None, **changes)
    name = variant_name(changes) if name is None else name

    def start(px: pixels.Pixels, image: str, folder: str) -> Measurer:
        return lambda k, reference: measure(px, options.replace(k=k), name=image, codec_name=name)

    return Codec(name, name, "vqcodec", start)


def measure_vqcodec(px: pixels.Pixels, /, *, k: int, seed: int = 0, name: str = "<image>") -> Row:
    """vqcodec's defaults at one k and seed: the row (see :func:`measure`)."""
    return measure(px, EncodeOptions(k=k, seed=seed, max_pixels=None), name=name).row


def measure(px: pixels.Pixels, options: EncodeOptions, /, *, name: str = "<image>",
            codec_name: str = "vqcodec") -> Measured:
    """vqcodec with *options*: encode in-process, decode the bytes, check, then measure."""
    start = time.perf_counter()
    enc = codec.encode_pixels(px, options)
    encode_s = time.perf_counter() - start
    expected = enc.reconstruct()
    shared = options.codebook  # a shared codebook (a variant codebook=book.vqb): decoded with it
    decoded = codec.decode(enc.data, max_pixels=None, codebook=shared).reshape(expected.shape)
    if not np.array_equal(decoded, expected):
        wrong = int(np.count_nonzero(np.any(decoded != expected, axis=-1)))
        raise RoundTripError(
            f"'{name}' at k={options.k}: decode(data) differs from Encoded.reconstruct() "
            f"in {wrong:,} pixels; this is a codec bug"
        )
    decode_s = median_time(lambda: codec.decode(enc.data, max_pixels=None, codebook=shared))
    settings = describe(options)
    row = make_row(px, name, codec_name, options.k, enc.data, decoded, encode_s, decode_s, settings=settings)
    return Measured(row, decoded)


def describe(options: EncodeOptions) -> str:
    """"k=16 seed=0" and every option that differs from the default ("block=2x2 rdo=0")."""
    default = EncodeOptions()
    words = [f"k={options.k}", f"seed={options.seed}"]
    for key in ("block", "rdo", "dither", "coder", "layout", "level", "codebook"):
        value = getattr(options, key)
        unchanged = value is None if key == "codebook" else value == getattr(default, key)
        if unchanged:
            continue
        words.append(f"{key}={value.sha256[:16] if key == 'codebook' else _word(value)}")
    return " ".join(words)


# --------------------------------------------------------------------------
# The baselines


def unavailable(name: str, pngquant: str | None) -> str | None:
    """Why baseline *name* cannot run here, or None."""
    from PIL import features

    if name == "pngquant" and pngquant is None:
        return "pngquant not found on PATH (apt-get install pngquant)"
    if name in ("webp", "avif", "webp-lossless"):
        feature = "avif" if name == "avif" else "webp"
        if not features.check(feature):
            return f"this Pillow was built without {NAMES[feature]} support"
    if name == "jxl-lossless":
        missing = [tool for tool in ("cjxl", "djxl") if shutil.which(tool) is None]
        if missing:
            return f"{' and '.join(missing)} not found on PATH (apt-get install libjxl-tools)"
    return None


def check_baselines(baselines: Iterable[str]) -> tuple[str, ...]:
    """The requested baselines, known ones only, in :data:`BASELINES` order."""
    out = tuple(dict.fromkeys(baselines))
    unknown = [b for b in out if b not in BASELINES]
    if unknown:
        raise OptionError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    return tuple(b for b in BASELINES if b in out)


def baseline(name: str, *, pngquant: str | None = None, cache: PsnrCache | None = None) -> Codec:
    """The codec entry of baseline *name* (*pngquant*: the executable's path; *cache*: the
    lossy baselines' PSNR cache, :class:`PsnrCache`)."""
    if name == "pngquant":
        if pngquant is None:
            raise OptionError("the pngquant baseline needs the executable's path")
        return Codec(name, label(name), "at-k", lambda px, image, folder: _Pngquant(px, image, pngquant, folder))
    if name == "png":
        return Codec(name, label(name), "lossless", lambda px, image, folder: _Png(px, image))
    if name in LOSSY:
        return Codec(name, label(name), "at-psnr", lambda px, image, folder: _AtPsnr(px, image, name, cache))
    if name == "jxl-lossless":
        return Codec(name, label(name), "store", lambda px, image, folder: _JxlStore(px, image, folder))
    if name == "webp-lossless":
        return Codec(name, label(name), "store", lambda px, image, folder: _WebpStore(px, image))
    raise OptionError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


def _run(command: list[str], tool: str) -> float:
    """Run *command*; its wall time, or OSError with the tool's last line of stderr."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, timeout=_TIMEOUT_S, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise OSError(f"{tool} exited with status {proc.returncode}" + (f": {message[-1]}" if message else ""))
    return seconds


def _read_and_remove(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data


class _Pngquant:
    def __init__(self, px: pixels.Pixels, image: str, exe: str, folder: str) -> None:
        self.px, self.image, self.exe, self.folder = px, image, exe, folder
        self.source: str | None = None

    def __call__(self, k: int, reference: Measured | None) -> Measured | None:
        if k > PNGQUANT_MAX_K:
            return None
        if self.source is None:
            self.source = os.path.join(self.folder, "pngquant-source.png")
            with open(self.source, "wb") as f:
                f.write(pixels.to_bytes(pixels.Pixels(self.px.array, None), "PNG", compress_level=1))
        out = os.path.join(self.folder, f"pngquant-{k}.png")
        encode_s = _run([self.exe, "--nofs", str(k), "--force", "--output", out, "--", self.source], "pngquant")
        data = _with_iccp(_read_and_remove(out), self.px.icc_profile)
        decoded = pillow_decode(data, self.px.mode)
        decode_s = median_time(lambda: pillow_decode(data, self.px.mode))
        return Measured(make_row(self.px, self.image, "pngquant", k, data, decoded, encode_s, decode_s,
                                 settings=f"--nofs {k}"), decoded)


def _with_iccp(png: bytes, profile: bytes | None) -> bytes:
    """*png* with an ``iCCP`` chunk of *profile* after IHDR (as a PNG writer that
    keeps the profile stores it), or *png* itself without a profile."""
    import struct
    import zlib

    if not profile:
        return png
    body = b"ICC Profile\0\0" + zlib.compress(profile, 9)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


class _Png:
    def __init__(self, px: pixels.Pixels, image: str) -> None:
        self.px, self.image = px, image
        self.measured: Measured | None = None

    def __call__(self, k: int, reference: Measured | None) -> Measured:
        if self.measured is None:
            start = time.perf_counter()
            data = pixels.to_bytes(self.px, "PNG", **PNG_OPTIONS)
            encode_s = time.perf_counter() - start
            decoded = pillow_decode(data, self.px.mode)
            decode_s = median_time(lambda: pillow_decode(data, self.px.mode))
            settings = " ".join(f"{key}={value}" for key, value in PNG_OPTIONS.items())
            self.measured = Measured(make_row(self.px, self.image, "png", k, data, decoded, encode_s, decode_s,
                                              settings=settings), decoded)
        return Measured(self.measured.row.replace(k=k), self.measured.decoded)


@dataclass(frozen=True)
class _Trial:
    quality: int
    data: bytes | None  # None: the PSNR is known from the cache, the file not made yet
    encode_s: float
    psnr: float


class PsnrCache:
    """The PSNR each lossy baseline reached at each quality, per image, kept across runs.

    A second ``rd`` over the same images (another ``--variant``, another k)
    then encodes each baseline only at the qualities its rows use, instead
    of searching again: the search is most of rd's time.  One small JSON
    file per image and baseline under *folder* (default
    ``$XDG_CACHE_HOME/vqcodec/rd``, ``~/.cache/vqcodec/rd``), keyed by the
    SHA-256 of the pixels, the codec's options and Pillow's and the
    library's versions; a file that cannot be read or does not match is
    ignored, one that cannot be written is skipped.  Timings are never
    cached: every row's file is encoded and timed in the run.
    """

    def __init__(self, folder: str | None = None) -> None:
        if folder is None:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            folder = os.path.join(base, "vqcodec", "rd")
        self.folder = folder

    def slot(self, px: pixels.Pixels, baseline: str) -> tuple[str, str]:
        """(file, key) of this image and baseline: what :meth:`load` and :meth:`store` take."""
        import hashlib

        import PIL
        from PIL import features

        fmt, options = _LOSSY_FORMATS[baseline]
        digest = hashlib.sha256(f"{px.mode} {px.array.shape}".encode() + px.array.tobytes()).hexdigest()
        library = {"webp": "webp", "avif": "avif", "jpeg": "jpg"}[baseline]
        key = f"{digest} {fmt} {sorted(options.items())} Pillow {PIL.__version__} " \
              f"{library} {features.version(library)}"
        return os.path.join(self.folder, f"{digest[:32]}-{baseline}.json"), key

    def load(self, slot: tuple[str, str]) -> dict[int, float]:
        """quality -> PSNR known for the image and baseline of *slot* (empty when none)."""
        import json

        path, key = slot
        try:
            with open(path, encoding="utf-8") as f:
                document = json.load(f)
            if document.get("key") != key:
                return {}
            return {int(q): float("inf") if p is None else float(p) for q, p in document["psnr"].items()
                    if 1 <= int(q) <= 100}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def store(self, slot: tuple[str, str], psnrs: dict[int, float]) -> None:
        """Keep *psnrs* (quality -> PSNR) for the image and baseline of *slot*; skipped on failure."""
        import json

        from .. import fileio

        path, key = slot
        document = {"key": key, "psnr": {str(q): psnrs[q] for q in sorted(psnrs)}}
        try:
            os.makedirs(self.folder, exist_ok=True)
            fileio.atomic_write(path, json.dumps(metrics.json_ready(document)).encode(), overwrite=True)
        except (OSError, VqiError):
            pass


class QualitySearch:
    """Lossy encodes of one image at integer qualities, cached across k (and, with a
    :class:`PsnrCache`, their PSNR across runs)."""

    def __init__(self, px: pixels.Pixels, baseline: str, cache: PsnrCache | None = None) -> None:
        if baseline not in _LOSSY_FORMATS:
            raise OptionError(f"baseline must be one of {', '.join(LOSSY)}, got {baseline!r}")
        self.px, self.baseline, self.cache = px, baseline, cache
        self.format, self.options = _LOSSY_FORMATS[baseline]
        self.trials: dict[int, _Trial] = {}
        self.rows: dict[int, Measured] = {}
        # the pixels' hash, once per image and baseline
        self._slot = None if cache is None else cache.slot(px, baseline)
        known = {} if cache is None else cache.load(self._slot)
        for quality, psnr in known.items():
            self.trials[quality] = _Trial(quality, None, 0.0, psnr)
        self._stored = dict(known)

    def trial(self, quality: int) -> _Trial:
        """The trial at *quality*: its PSNR (from this run or the cache) and, once encoded here,
        its bytes and time."""
        if quality not in self.trials:
            self.trials[quality] = self._encode(quality)
        return self.trials[quality]

    def encoded(self, quality: int) -> _Trial:
        """The trial at *quality* with its file made and timed in this run."""
        t = self.trial(quality)
        if t.data is None:
            t = self.trials[quality] = self._encode(quality)
        return t

    def _encode(self, quality: int) -> _Trial:
        start = time.perf_counter()
        data = pixels.to_bytes(self.px, self.format, quality=quality, **self.options)
        encode_s = time.perf_counter() - start
        psnr = metrics.psnr(self.px.array, pillow_decode(data, self.px.mode))
        return _Trial(quality, data, encode_s, psnr)

    def save(self) -> None:
        """Put the PSNRs found into the cache (when there is one and they are new)."""
        psnrs = {q: t.psnr for q, t in self.trials.items()}
        if self.cache is not None and psnrs != self._stored:
            self.cache.store(self._slot, psnrs)
            self._stored = psnrs

    def smallest(self, target: float) -> tuple[int, bool]:
        """(quality, reached): the smallest quality with PSNR >= target.

        A bracket search: ``hi`` reaches the target, ``lo`` does not, until
        they are neighbours.  The next quality is interpolated from the two
        ends' PSNR (PSNR grows smoothly with quality), falling back to
        bisection whenever a step did not halve the bracket, so it never
        takes more steps than bisection and usually far fewer.
        """
        import math

        if not self.trial(100).psnr >= target:
            return 100, False
        if self.trial(1).psnr >= target:
            return 1, True
        # The tightest bracket the cache (shared across k) already proves.
        hi = min(q for q, t in self.trials.items() if t.psnr >= target)
        lo = max(q for q, t in self.trials.items() if q < hi and t.psnr < target)
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

    def measure(self, target: float, k: int, image: str) -> Measured:
        """The row of the smallest quality reaching *target*, reported at *k*."""
        quality, reached = self.smallest(target)
        if quality not in self.rows:
            t = self.encoded(quality)
            self.save()
            decoded = pillow_decode(t.data, self.px.mode)
            decode_s = median_time(lambda: pillow_decode(t.data, self.px.mode))
            options = "".join(f" {key}={value}" for key, value in self.options.items())
            self.rows[quality] = Measured(make_row(self.px, image, self.baseline, 0, t.data, decoded, t.encode_s,
                                                   decode_s, settings=f"quality={quality}{options}"), decoded)
        found = self.rows[quality]
        return Measured(found.row.replace(k=k, quality=quality, target_psnr=target, reached=reached),
                        found.decoded)


def smallest_quality(px: pixels.Pixels, /, baseline: str, target_psnr: float) -> tuple[int, bool, float]:
    """(quality, reached, psnr) of ``baseline`` ("webp", "avif" or "jpeg") at ``target_psnr``."""
    search = QualitySearch(px, baseline)
    quality, reached = search.smallest(target_psnr)
    return quality, reached, search.trials[quality].psnr


class _AtPsnr:
    def __init__(self, px: pixels.Pixels, image: str, name: str, cache: PsnrCache | None) -> None:
        self.image = image
        # JPEG has no alpha channel: no rows on images with alpha
        self.search = None if name == "jpeg" and "A" in px.mode else QualitySearch(px, name, cache)

    def __call__(self, k: int, reference: Measured | None) -> Measured | None:
        if self.search is None or reference is None:
            return None
        return self.search.measure(reference.row.psnr, k, self.image)


def _check_exact(name: str, decoded: np.ndarray, reference: Measured) -> None:
    if not np.array_equal(decoded.reshape(reference.decoded.shape), reference.decoded):
        raise OSError(f"{label(name)} did not store the pixels exactly")


class _JxlStore:
    def __init__(self, px: pixels.Pixels, image: str, folder: str) -> None:
        self.px, self.image, self.folder = px, image, folder

    def __call__(self, k: int, reference: Measured | None) -> Measured | None:
        if reference is None:
            return None
        base = os.path.join(self.folder, "store")
        source = pixels.Pixels(reference.decoded.reshape(self.px.array.shape), self.px.icc_profile)
        with open(base + ".png", "wb") as f:
            f.write(pixels.to_bytes(source, "PNG", compress_level=1))
        encode_s = _run(["cjxl", base + ".png", base + ".jxl", *CJXL_ARGS, "--quiet"], "cjxl")
        os.unlink(base + ".png")
        decode_s = _run(["djxl", base + ".jxl", base + "-back.png", "--quiet"], "djxl")
        data = _read_and_remove(base + ".jxl")
        decoded = pillow_decode(_read_and_remove(base + "-back.png"), self.px.mode)
        _check_exact("jxl-lossless", decoded, reference)
        return Measured(make_row(self.px, self.image, "jxl-lossless", k, data, decoded, encode_s, decode_s,
                                 settings="cjxl " + " ".join(CJXL_ARGS) + " on vqcodec's pixels"), decoded)


class _WebpStore:
    def __init__(self, px: pixels.Pixels, image: str) -> None:
        self.px, self.image = px, image

    def __call__(self, k: int, reference: Measured | None) -> Measured | None:
        if reference is None:
            return None
        source = pixels.Pixels(reference.decoded.reshape(self.px.array.shape), self.px.icc_profile)
        start = time.perf_counter()
        data = pixels.to_bytes(source, "WEBP", **WEBP_LOSSLESS_OPTIONS)
        encode_s = time.perf_counter() - start
        decoded = pillow_decode(data, self.px.mode)
        _check_exact("webp-lossless", decoded, reference)
        decode_s = median_time(lambda: pillow_decode(data, self.px.mode))
        settings = " ".join(f"{key}={value}" for key, value in WEBP_LOSSLESS_OPTIONS.items())
        return Measured(make_row(self.px, self.image, "webp-lossless", k, data, decoded, encode_s, decode_s,
                                 settings=settings + " on vqcodec's pixels"), decoded)
