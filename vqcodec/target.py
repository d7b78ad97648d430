"""Encoding to a target: the PSNR, quality or size asked for, not the codebook size.

Encoder policy, like :mod:`vqcodec.choose`: the format does not know about
it.  With one of the target options of :class:`~vqcodec.options.EncodeOptions`
(``psnr``, ``quality``, ``max_bytes``, ``bpp``), :func:`search` chooses the
codebook size (and, for a byte budget, the rdo strength) and returns a
:class:`TargetResult`.  ``k`` is then the largest codebook tried (default
256, as pngquant's palette).

The search is cheap because the candidates share one learning:

1. the distinct colours are learned once, by k-means at the largest k;
2. a smaller k's codebook is those centroids merged by Ward's rule down to
   k (a nested family, close to learning each k anew at a fraction of the
   cost), then finished as any codebook is (rounded, refined, unused
   entries dropped);
3. a candidate's error before the rate-aware choice is the nearest-entry
   error of its distinct colours (no pixels touched): the *estimate* that
   steers the search;
4. a *probe* measures a candidate exactly: the index map with the
   rate-aware choice (rdo) and dithering if asked for, its MSE over the
   pixels (premultiplied with alpha, as ``rd`` and the report measure it)
   and, for a byte budget, the exact file size from the encoder's coder
   choice -- no file written;
5. PSNR and quality: the bracket is searched on *predicted* MSEs (the
   colour error times the share the rate-aware choice adds, measured once
   on a quarter of the rows) and only the answer is probed; if it misses,
   the search goes on above it.  Byte budgets: every candidate is coded,
   k by interpolation in log k, then the rdo strength either side.

Images with alpha learn each probed k anew (the transparent entry makes the
family non-nested); the search is the same, by bisection.

An image with at most ``k`` colours is stored without loss under a PSNR or
quality target (and under a byte budget when it fits), so re-encoding a
decoded .vqi file with the same settings gives the same file.

Quality is pngquant's 0-100 scale (:func:`quality_to_mse`), with its
semantics: the fewest colours whose error meets MAX; if even ``k`` colours
are above MIN's error, the target is unreachable.  PSNR and quality search
the smallest k that meets the target at the rdo strength asked for
(default 0.6); a byte budget (``max_bytes``, ``bpp``) searches the largest
k that fits, then the rdo strength of the best PSNR within the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import metrics, space
from .limits import MIN_K
from .options import EncodeOptions
from .quantize.histogram import distinct
from .quantize.kmeans import kmeans, ward_merge
from .quantize.learn import finish, fit
from .quantize.nearest import nearest
from .quantize.rdo import iterations_for
from .quantize.remap import lookup, remap

__all__ = ["TargetResult", "search", "quality_to_mse", "mse_to_quality", "QUALITY_MSE_SCALE",
           "RDO_MAX", "MAX_PROBES"]

QUALITY_MSE_SCALE = 1.4 * 65536 / 6
"""Our MSE (per channel, 0-255 units) at quality q is this times libimagequant's unit curve.

libimagequant maps quality q to an MSE on colours scaled to 0..1:
``u(q) = max(0.016 / (0.001 + q) - 0.001, 0) + 2.5 / (210 + q)^1.2 × (100.1 - q) / 100``,
and pngquant prints it as ``u(q) × 65536 / 6``.  Its search overshoots that
target and its error is gamma-weighted, so the factor 1.4 turns pngquant's
printed number into the plain per-channel MSE it delivers on photos: a
pngquant user's habitual quality gives a similar PSNR here, met exactly.
The calibration and the table of q against MSE and dB are README's
(*Quality targets*).
"""

RDO_MAX = 4.0
"""The strongest rate-aware choice a byte budget may use to fit one more colour."""

MAX_PROBES = 16
"""Candidates per search at most (a safety bound: the searches take 2 to 8 on the corpus)."""

_BUDGET_RDO_STEPS = 5  # interpolation steps on the rdo strength, each side of a byte budget
_FULL = 0.995  # a file this close under its budget ends the search


def quality_to_mse(quality: float) -> float:
    """The MSE (per channel, 0-255 units) that quality 0-100 allows; inf at 0, 0 at 100."""
    q = float(quality)
    if q <= 0:
        return math.inf
    if q >= 100:
        return 0.0
    fudge = max(0.016 / (0.001 + q) - 0.001, 0.0)
    return QUALITY_MSE_SCALE * (fudge + 2.5 / (210.0 + q) ** 1.2 * (100.1 - q) / 100.0)


def mse_to_quality(mse: float) -> int:
    """The highest whole quality whose MSE allows *mse* (0 when none does)."""
    for q in range(100, 0, -1):
        if mse <= quality_to_mse(q) + 1e-9:
            return q
    return 0


@dataclass(frozen=True)
class TargetResult:
    """What an encode with a target made, or found it could not make.

    ``target``    the target in words ("psnr >= 35 dB", "quality 65-80", "<= 20,000 bytes");
    ``reached``   True when a file meets it (for quality: at least MIN);
    ``k``, ``rdo``, ``mse``, ``psnr``, ``quality``, ``bytes``: the chosen
                  candidate's (when not reached: the best candidate's, the
                  nearest to the target; ``bytes`` 0 if it was never coded);
    ``probes``    candidates looked at;
    ``trail``     each candidate in the order looked at: (k, rdo, MSE, measured,
                  bytes) -- the MSE measured over the pixels, or (measured
                  False) the colours' error before the rate-aware choice;
                  bytes 0 when it was not coded;
    ``encoded``   the :class:`vqcodec.codec.Encoded` when reached, else None;
    ``skipped``   ``skip_if_larger`` held it back: the file would not be
                  smaller than the input (``input_bytes``); ``encoded`` is None.
    """

    target: str
    reached: bool
    k: int
    rdo: float
    mse: float
    psnr: float
    quality: int
    bytes: int
    probes: int
    encoded: Any = None
    skipped: bool = False
    input_bytes: int | None = None
    trail: tuple[tuple[int, float, float, bool, int], ...] = ()

    @property
    def ok(self) -> bool:
        """True when there is a file to write: the target was reached and not skipped."""
        return self.reached and not self.skipped

    @property
    def data(self) -> bytes | None:
        """The .vqi bytes to write, or None."""
        return self.encoded.data if self.ok else None

    def as_dict(self) -> dict[str, Any]:
        """The figures, JSON-ready (an infinite PSNR -- lossless -- is None)."""
        return {"target": self.target, "reached": self.reached, "skipped": self.skipped,
                "k": self.k, "rdo": self.rdo, "mse": self.mse,
                "psnr": self.psnr if math.isfinite(self.psnr) else None,
                "quality": self.quality, "bytes": self.bytes, "probes": self.probes,
                "input_bytes": self.input_bytes}


def describe(opts: EncodeOptions, pixel_count: int) -> str:
    """The target of *opts* in words."""
    if opts.psnr is not None:
        return f"psnr >= {opts.psnr:g} dB"
    if opts.quality is not None:
        return f"quality {opts.quality[0]}-{opts.quality[1]}"
    return f"<= {budget(opts, pixel_count):,} bytes"


def budget(opts: EncodeOptions, pixel_count: int) -> int:
    """The byte budget of a ``max_bytes`` or ``bpp`` target."""
    if opts.max_bytes is not None:
        return opts.max_bytes
    return int(math.floor(opts.bpp * pixel_count / 8))


@dataclass
class _Probe:
    """A candidate: its codebook and the nearest-entry error of its colours (``mse0``);
    once measured, the index map with the rate-aware choice and its MSE; once
    coded, its file."""

    k: int
    rdo: float
    book: np.ndarray
    labels: np.ndarray | None
    mse0: float
    indices: np.ndarray | None = None
    mse: float | None = None
    encoded: Any = None
    bytes: int = 0  # the coded file's size, kept when the file is let go

    def release(self) -> None:
        """Let go of the index map and the file (a candidate out of the running): a
        search over a huge image holds two or three of them, not every one."""
        self.indices = self.encoded = None


class _Search:
    """The candidates of one image: codebooks by k, probes by (k, rdo)."""

    def __init__(self, pixels: np.ndarray, opts: EncodeOptions,
                 assemble: Callable[[np.ndarray, np.ndarray], Any]) -> None:
        self.pixels = pixels
        self.opts = opts
        self.assemble = assemble
        self.colors, self.counts, self.inverse = distinct(pixels)
        self.channels = pixels.shape[2]
        self.samples = pixels.shape[0] * pixels.shape[1] * self.channels
        self.nested = not space.has_alpha(self.channels)
        self._books: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._estimates: dict[int, float] = {}
        self._probes: dict[tuple[int, float], _Probe] = {}
        self._base: tuple[np.ndarray, np.ndarray] | None = None
        self._base_sse = 0.0
        self._space_colors: np.ndarray | None = None
        self.measured = 0

    @property
    def distinct(self) -> int:
        return len(self.colors)

    # the family of codebooks

    def _learned(self) -> tuple[np.ndarray, np.ndarray]:
        """k-means at the largest k: the centroids that carry weight, and their weights."""
        if self._base is None:
            top = min(self.opts.k, self.distinct - 1)  # a budget below lossless searches under n
            c = kmeans(self.colors, self.counts, top, self.opts.seed, speed=self.opts.speed)
            labels, d = nearest(self.colors.astype(np.float32), c, want_dist=True)
            w = np.bincount(labels, weights=self.counts.astype(np.float64), minlength=len(c))
            self._base = (c[w > 0], w[w > 0])
            self._base_sse = float(self.counts @ d)
        return self._base

    def _centroids(self, k: int) -> np.ndarray:
        base, w = self._learned()
        return base if k >= len(base) else ward_merge(base, w, k)

    def book(self, k: int) -> tuple[np.ndarray, np.ndarray | None, float]:
        """The codebook of at most k entries, each distinct colour's entry (None:
        lossless) and the MSE of mapping every colour to its entry."""
        if k not in self._books:
            if self.distinct <= k:
                self._books[k] = (self.colors, None, 0.0)
            else:
                if self.nested:
                    book, labels = finish(self.colors, self.counts, self._centroids(k))
                else:
                    book, labels = fit(self.colors, self.counts, k, self.opts.seed, self.channels,
                                       speed=self.opts.speed)
                self._books[k] = (book, labels, self._colour_error(book, labels))
        return self._books[k]

    def _colour_error(self, book: np.ndarray, labels: np.ndarray) -> float:
        """Σ count × squared distance to the entry, over the distinct colours, per sample."""
        if self._space_colors is None:
            self._space_colors = self._in_space(self.colors)
        diff = self._space_colors - self._in_space(book)[labels]
        return float(self.counts @ np.einsum("ij,ij->i", diff, diff)) / self.samples

    def _in_space(self, colors: np.ndarray) -> np.ndarray:
        if space.has_alpha(self.channels):
            return space.premultiply(colors)
        return colors.astype(np.float64)

    def estimate(self, k: int) -> float:
        """The MSE of the merged clusters at k, from the learned centroids alone (nested family).

        The learned clusters' own error plus each learned centroid's weight
        times its squared distance to the nearest merged one: no pass over
        the colours, so the search can ask for many k.
        """
        if k not in self._estimates:
            if self.distinct <= k:
                self._estimates[k] = 0.0
            else:
                base, w = self._learned()
                merged = self._centroids(k)
                d = ((base[:, None, :] - merged[None, :, :]) ** 2).sum(2).min(1)
                self._estimates[k] = (self._base_sse + float(w @ d)) / self.samples
        return self._estimates[k]

    def probe(self, k: int, rdo: float | None = None, *, exact: bool = True,
              coded: bool = False) -> _Probe:
        """Candidate k at rdo strength *rdo*: its colours' error; with *exact* its
        index map and MSE over the pixels; with *coded* its file too."""
        rdo = self.opts.rdo if rdo is None else rdo
        p = self._probes.get((k, rdo))
        if p is None:
            book, labels, mse0 = self.book(k)
            p = self._probes[(k, rdo)] = _Probe(len(book), rdo, book, labels, mse0)
            self.measured += 1
        if (exact or coded) and (p.mse is None or (coded and p.encoded is None and p.indices is None)):
            indices = lookup(p.labels, self.inverse, self.pixels.shape[:2], len(p.book))
            if p.labels is not None:  # without loss there is nothing to trade or diffuse
                indices = self._map(self.pixels, p.book, indices, rdo)
            p.indices = indices
            p.mse = 0.0 if p.labels is None else metrics.mse(self.pixels, p.book[indices])
        if coded:
            self.code(p)
        return p

    def code(self, p: _Probe) -> _Probe:
        """*p* (measured) with its file."""
        if p.encoded is None:
            p.encoded = self.assemble(p.book, p.indices)
            p.bytes = len(p.encoded.data)
        return p

    # the searches

    def smallest_k(self, limit: float, kmax: int) -> tuple[_Probe, bool]:
        """The probe of the fewest colours up to *kmax* whose MSE is at most *limit*
        (and True), or the probe at *kmax* (and False) when it is above.

        The rate-aware choice costs a pass over the pixels, so the bracket
        (*lo* misses the limit, *hi* meets it) is searched on *predicted*
        MSEs: a candidate's colour error (exact, without the pixels) times
        the factor the rate-aware choice adds (a rough guess from its
        strength until a candidate is measured).  Each guess is the smallest
        k whose estimate, scaled to the last candidate, meets the limit (or,
        without an estimate, the geometric midpoint).  Then the answer is
        measured: if it misses, the search goes on above it.  So the answer
        meets the limit for certain, and is the fewest colours up to the
        prediction of the rate-aware choice's share (the factor, measured
        on a quarter of the rows: near k = 256 adjacent k differ by less
        than its error, so the answer may be a k or two above the fewest).
        """
        lo, hi = MIN_K - 1, kmax + 1
        factor: float | None = None
        ratio = 1.0
        seen: dict[int, _Probe] = {}

        def value(p: _Probe) -> float:
            return p.mse if p.mse is not None else p.mse0 * factor

        for _ in range(MAX_PROBES):
            if hi - lo <= 1:
                if hi > kmax:
                    break
                p = self.probe(hi)  # measure the answer
                if p.mse0 > 0:
                    factor = p.mse / p.mse0
                if p.mse <= limit:
                    return p, True
                # missed by the factor's error: the next candidate above predicted to meet it
                lo = hi
                hi = min((k for k, q in seen.items() if k > lo and value(q) <= limit), default=kmax + 1)
                continue
            guess = self._guess(limit, lo, hi, ratio, top=hi > kmax)
            p = seen[guess] = self.probe(guess, exact=guess == kmax)
            if factor is None:
                factor = p.mse / p.mse0 if p.mse is not None and p.mse0 > 0 else self._sampled_factor(p)
            if self.nested and self.estimate(guess) > 0:
                ratio = value(p) / self.estimate(guess)
            if value(p) <= limit:
                hi = guess
            elif guess == kmax:
                return p, False
            else:
                lo = guess
        p = self.probe(kmax)
        return p, p.mse <= limit

    def _sampled_factor(self, p: _Probe) -> float:
        """MSE with the rate-aware choice / without it, on the middle quarter of the rows."""
        if not (p.rdo or self.opts.dither) or p.labels is None or p.mse0 == 0:
            return 1.0
        h = self.pixels.shape[0]
        rows = h if h < 64 else h // 4
        top = (h - rows) // 2
        band = np.ascontiguousarray(self.pixels[top : top + rows])
        inverse = self.inverse.reshape(h, -1)[top : top + rows].reshape(-1)
        nearest_map = lookup(p.labels, inverse, band.shape[:2], len(p.book))
        plain = metrics.mse(band, p.book[nearest_map])
        if plain == 0:
            return 1.0
        return metrics.mse(band, p.book[self._map(band, p.book, nearest_map, p.rdo)]) / plain

    def _map(self, pixels: np.ndarray, book: np.ndarray, nearest_map: np.ndarray, rdo: float) -> np.ndarray:
        """The position-aware stage on a nearest-entry map: the rate-aware choice, and
        dithering when the options ask for it (:func:`vqcodec.quantize.remap`)."""
        if not (rdo or self.opts.dither):
            return nearest_map
        return remap(pixels, book, indices=nearest_map, rdo_strength=rdo, dither=self.opts.dither,
                     rdo_iterations=iterations_for(self.opts.speed))

    def _guess(self, limit: float, lo: int, hi: int, ratio: float, *, top: bool) -> int:
        """The next k to probe in (lo, hi); *top*: none met the limit yet (hi = kmax + 1)."""
        if not self.nested:  # no estimate: kmax first (is the target reachable?), then bisect
            if top:
                return hi - 1
            return min(hi - 1, max(lo + 1, round(math.sqrt(max(lo, 1) * hi))))
        a, b = lo + 1, hi - 1  # the smallest k in [a, b] whose scaled estimate meets the limit
        if self.estimate(b) * ratio > limit:
            return b
        while a < b:
            mid = (a + b) // 2
            if self.estimate(mid) * ratio <= limit:
                b = mid
            else:
                a = mid + 1
        return a

    def largest_fitting(self, size: int, kmax: int) -> tuple[_Probe, bool]:
        """The best-PSNR probe whose file is at most *size* bytes (and True), or the
        smallest file found (and False) when none fits."""
        top = self.probe(kmax, coded=True)
        if top.bytes <= size:
            return self._fill(top, None, size), True
        bottom = self.probe(MIN_K, coded=True)
        if bottom.bytes > size:
            squeezed = self.probe(MIN_K, RDO_MAX, coded=True)
            if squeezed.bytes > size:
                return min((bottom, squeezed), key=lambda p: p.bytes), False
            return self._fill(squeezed, None, size), True
        lo, hi = bottom, top  # lo fits, hi does not
        for _ in range(MAX_PROBES):
            if hi.k - lo.k <= 1:
                break
            # bytes grow about linearly in log k: interpolate, keep off the ends
            t = (size - lo.bytes) / max(hi.bytes - lo.bytes, 1)
            guess = round(math.exp(_between(math.log(lo.k), math.log(hi.k), t, 0.1)))
            guess = min(hi.k - 1, max(lo.k + 1, guess))
            lo, hi = _narrowed(lo, hi, self.probe(guess, coded=True), size)
        return self._fill(lo, hi, size), True

    def _fill(self, fits: _Probe, over: _Probe | None, size: int) -> _Probe:
        """The best PSNR within *size*: *fits* with less rdo, or *over* with more."""
        best = fits
        if fits.bytes >= _FULL * size:  # the budget is used: nothing to gain worth the probes
            return best
        if fits.rdo > 0:  # a weaker rate-aware choice: more bytes, more PSNR
            p = self._least_rdo(fits.k, 0.0, fits.rdo, size)
            if p is not None and p.mse < best.mse:
                best = p
        # a stronger one may fit one more colour; it can only add error to over's, so it
        # is worth probing only when over's error is below the best found
        if over is not None and over.mse < best.mse:
            p = self._least_rdo(over.k, over.rdo, RDO_MAX, size)
            if p is not None and p.mse < best.mse:
                best = p
        return best

    def _least_rdo(self, k: int, low: float, high: float, size: int) -> _Probe | None:
        """The probe of about the weakest rdo strength in [low, high] whose file fits
        (bytes fall as the strength grows: interpolated, kept off the ends)."""
        first = self.probe(k, low, coded=True)
        if first.bytes <= size:
            return first
        fitting = self.probe(k, high, coded=True)
        if fitting.bytes > size:
            return None
        over = first
        for _ in range(_BUDGET_RDO_STEPS):
            if fitting.bytes >= _FULL * size:  # close enough to the budget
                break
            t = (over.bytes - size) / max(over.bytes - fitting.bytes, 1)
            mid = round(_between(over.rdo, fitting.rdo, t, 0.15), 3)
            if not over.rdo < mid < fitting.rdo:
                break
            fitting, over = _narrowed(fitting, over, self.probe(k, mid, coded=True), size)
        return fitting


def _between(a: float, b: float, t: float, margin: float) -> float:
    """The point at fraction *t* from *a* to *b*, kept *margin* off either end (the
    bracket searches interpolate, but never probe right beside a bound)."""
    return a + min(max(t, margin), 1 - margin) * (b - a)


def _narrowed(fits: _Probe, over: _Probe, p: _Probe, size: int) -> tuple[_Probe, _Probe]:
    """The bracket (a probe that fits *size*, one that does not) with probe *p* in place
    of the side it belongs to; the probe it replaces is released."""
    if p.bytes <= size:
        fits, old = p, fits
    else:
        over, old = p, over
    if old is not p:
        old.release()
    return fits, over


def search(pixels: np.ndarray, opts: EncodeOptions,
           assemble: Callable[[np.ndarray, np.ndarray], Any]) -> TargetResult:
    """Meet *opts*' target on ``(H, W, C)`` uint8 *pixels*.

    *assemble(codebook, indices)* makes a candidate's encode (an object
    whose ``data`` is the file's bytes; :mod:`vqcodec.codec` passes its own),
    so that sizes are exact.  The result's ``encoded`` is the chosen
    candidate's when the target is reached.
    """
    s = _Search(pixels, opts, assemble)
    kmax = opts.k
    count = pixels.shape[0] * pixels.shape[1]
    if opts.max_bytes is not None or opts.bpp is not None:
        size = budget(opts, count)
        if s.distinct <= kmax:  # without loss, if that fits
            p = s.probe(s.distinct, coded=True)
            if p.bytes <= size:
                return _result(s, opts, p, True)
            kmax = max(MIN_K, s.distinct - 1)
        p, reached = s.largest_fitting(size, kmax)
        return _result(s, opts, p, reached)
    if s.distinct <= kmax:  # every colour fits: lossless, whatever the target
        return _result(s, opts, s.probe(s.distinct, coded=True), True)
    if opts.psnr is not None:
        p, reached = s.smallest_k(mse_for_psnr(opts.psnr), kmax)
    else:
        low, high = opts.quality
        p, met = s.smallest_k(quality_to_mse(high), kmax)
        reached = met or p.mse <= quality_to_mse(low)
    if reached:
        s.code(p)
    return _result(s, opts, p, reached)


def mse_for_psnr(psnr: float) -> float:
    """The largest MSE whose PSNR is at least *psnr* dB (peak 255)."""
    return 255.0 ** 2 / 10.0 ** (psnr / 10.0)


def _result(s: _Search, opts: EncodeOptions, p: _Probe, reached: bool) -> TargetResult:
    count = s.pixels.shape[0] * s.pixels.shape[1]
    return TargetResult(
        target=describe(opts, count), reached=reached, k=p.k, rdo=p.rdo, mse=p.mse,
        psnr=metrics.psnr_from_mse(p.mse), quality=mse_to_quality(p.mse), bytes=p.bytes,
        probes=s.measured, encoded=p.encoded if reached else None,
        trail=tuple((q.k, q.rdo, q.mse0 if q.mse is None else q.mse, q.mse is not None, q.bytes)
                    for q in s._probes.values()),
    )
