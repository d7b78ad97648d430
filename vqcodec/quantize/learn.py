"""Learning a codebook: a histogram and k -> a Codebook of at most k entries.

:func:`fit` is the whole stage: weighted k-means (:mod:`.kmeans`) over the
distinct colours, then *finishing*: the centroids are rounded to ``uint8``;
assignment and rounded means alternate until stable (the rounded mean is the
best integer centroid for its cluster); every distinct colour gets its exact
nearest entry; unused (or duplicate) entries are dropped and the codebook is
sorted lexicographically.  It returns the codebook and each distinct
colour's entry, so the encoder maps pixels through their colours, never by
per-pixel distance computations.  :func:`learn` is the public form.

Alpha (LA, RGBA): learning, assignment and the rounded-mean refinement all
work in the premultiplied error space of :mod:`vqcodec.space`; the codebook
is stored straight.  All fully transparent colours are then one colour,
kept out of the learning as an entry of zeros.

A histogram with at most ``k`` colours comes back exactly: the codebook is
its colours.
"""

from __future__ import annotations

import numpy as np

from vqcodec import space
from vqcodec.errors import OptionError
from vqcodec.limits import check_k, check_seed
from vqcodec.quantize.codebook import Codebook, sorted_rows, unique_rows
from vqcodec.quantize.histogram import Histogram
from vqcodec.quantize.kmeans import DEFAULT_SPEED, PNN_MAX_K, SEED_ONLY_SPEED, kmeans
from vqcodec.quantize.nearest import nearest

__all__ = ["learn", "learn_codebook", "fit", "finish", "rounds_for"]

_ITER_ROUND = 2  # rounded-centroid refinement passes


def rounds_for(speed: int) -> int:
    """Rounded-mean passes of the finishing at encoder speed 1-10: 2 up to speed 8, 1 at 9, 0 at 10.

    From speed 9 k-means leaves the working set out (:func:`.kmeans._effort`),
    so one pass over every colour is what moves the centroids from the seed
    set's cells to the colours' means; speed 10 skips it too (the entries are
    the rounded centroids, every colour still gets its nearest).
    """
    return _ITER_ROUND if speed < SEED_ONLY_SPEED else (1 if speed < 10 else 0)


def learn(histogram: Histogram, /, k: int, *, seed: int = 0) -> Codebook:
    """The codebook of at most ``k`` colours that k-means finds for *histogram*.

    Every entry is the nearest of some colour of the histogram; entries are
    distinct and sorted lexicographically.  The same histogram, ``k`` and
    ``seed`` give the same codebook.
    """
    if not isinstance(histogram, Histogram):
        raise OptionError(f"learn: expected a Histogram, got {type(histogram).__name__}")
    if not len(histogram):
        raise OptionError("learn: the histogram is empty (add an image first)")
    entries, _ = fit(histogram.colors, histogram.counts, check_k(k), check_seed(seed), histogram.channels)
    return Codebook(entries, channels=histogram.channels, block=histogram.block)


def fit(colors: np.ndarray, counts: np.ndarray, k: int, seed: int,
        channels: int | None = None, *, speed: int = DEFAULT_SPEED) -> tuple[np.ndarray, np.ndarray | None]:
    """The uint8 codebook for distinct *colors* with *counts*, and each colour's entry.

    *speed* (1-10) is k-means' effort (:func:`.kmeans.kmeans`).
    *colors* are colours (``(n, C)``) or blocks of pixels of *channels*
    channels each (``(n, P x C)``, pixels in order, channels interleaved).
    The labels are None when the colours are the codebook (at most k of them).
    """
    channels = channels or colors.shape[1]
    if len(colors) <= k:
        return colors, None
    if space.has_alpha(channels):  # alpha: learn and assign where the error is seen (premultiplied)
        return _quantize_alpha(colors, counts, k, seed, channels, speed)
    return finish(colors, counts, kmeans(colors, counts, k, seed, speed=speed), rounds=rounds_for(speed))


def learn_codebook(colors: np.ndarray, counts: np.ndarray, /, *, k: int, seed: int = 0) -> np.ndarray:
    """Weighted k-means over distinct colours.

    ``colors`` is ``(n, C)`` ``uint8``, ``counts`` ``(n,)`` non-negative
    weights (pixel counts).  Returns ``(m, C)`` centroids, ``m <= k``: the
    colours themselves (``uint8``) when ``n <= k``, else ``float64``
    centroids (not rounded).
    """
    k = check_k(k)
    seed = check_seed(seed)
    colors, counts = check_colors(colors, counts)
    if len(colors) <= k:
        return colors.copy()
    return kmeans(colors, counts, k, seed)




def finish(colors: np.ndarray, counts: np.ndarray, centroids: np.ndarray, *,
           premultiplied: bool = False, channels: int | None = None,
           rounds: int = _ITER_ROUND) -> tuple[np.ndarray, np.ndarray]:
    """Round the centroids, refine the rounded codebook, assign, drop unused.

    Returns the uint8 codebook (lexicographic order, like the distinct colours
    of a lossless codebook) and the codebook index of every distinct colour:
    its nearest entry, ties to the lowest index.  With *premultiplied* (the
    last channel is alpha) the centroids are premultiplied, distances and
    means are taken over premultiplied colours, and the codebook is stored
    straight (un-premultiplied, rounded).  Vectors of several pixels give
    their *channels*; each pixel of a vector is premultiplied by its own alpha.
    *rounds*: the rounded-mean passes at most (fewer at a faster encoder
    speed, :func:`rounds_for`).
    """
    to_space, straight = _spaces(channels or colors.shape[1]) if premultiplied else (_same, _same)
    x = to_space(colors).astype(np.float32)
    w = counts.astype(np.float64)
    cb = np.clip(np.rint(straight(centroids)), 0, 255).astype(np.uint8)
    labels = None
    for _ in range(rounds if len(cb) <= PNN_MAX_K else min(rounds, 1)):
        cb = sorted_rows(cb)
        labels = nearest(x, to_space(cb))[0]
        k = len(cb)
        weight = np.bincount(labels, weights=w, minlength=k)
        full = weight > 0
        means = np.stack([np.bincount(labels, weights=w * x[:, j], minlength=k)
                          for j in range(x.shape[1])], 1)[full] / weight[full, None]
        new = cb.copy()
        new[full] = np.clip(np.rint(straight(means)), 0, 255)
        if np.array_equal(new, cb):
            break
        cb = new
        labels = None
    if labels is None:
        cb = sorted_rows(cb)
        labels = nearest(x, to_space(cb))[0]
    return _drop_unused(cb, labels)


def _drop_unused(book: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entries some colour uses, and the labels renumbered to them (order kept)."""
    used = np.bincount(labels, minlength=len(book)) > 0
    remap = np.cumsum(used) - 1
    return book[used], remap[labels]


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _spaces(channels: int):
    """(to the error space, back to straight) for rows of pixels of *channels* channels with alpha."""
    def to_space(a: np.ndarray) -> np.ndarray:
        return space.premultiply(a.reshape(len(a), -1, channels)).reshape(len(a), -1)

    def straight(a: np.ndarray) -> np.ndarray:
        return space.unpremultiply(a.reshape(len(a), -1, channels)).reshape(len(a), -1)

    return to_space, straight


def _quantize_alpha(colors: np.ndarray, counts: np.ndarray, k: int, seed: int,
                    channels: int, speed: int = DEFAULT_SPEED) -> tuple[np.ndarray, np.ndarray]:
    """Codebook and labels for more than k colours with alpha, over premultiplied colours.

    Fully transparent colours (alpha 0) all get one entry of zeros, kept out
    of the learning so that a cluster mean can never give them a visible
    alpha; the other k - 1 entries are learned on the other colours.  At
    k = 2 that would leave one entry for everything visible, so there all
    colours are learned together.  For blocks, a block is transparent when
    all its pixels are.
    """
    to_space, _ = _spaces(channels)
    clear = (colors[:, channels - 1 :: channels] == 0).all(1)
    if not clear.any() or k <= 2:
        return finish(colors, counts, _learn_premultiplied(colors, counts, k, seed, channels, speed),
                      premultiplied=True, channels=channels, rounds=rounds_for(speed))
    rest, rest_counts = colors[~clear], counts[~clear]
    if len(rest) <= k - 1:
        book = rest
    else:
        book = finish(rest, rest_counts, _learn_premultiplied(rest, rest_counts, k - 1, seed, channels, speed),
                      premultiplied=True, channels=channels, rounds=rounds_for(speed))[0]
    zero = np.zeros((1, colors.shape[1]), np.uint8)
    book = sorted_rows(np.concatenate([zero, book]))  # the zero row sorts first
    labels = np.zeros(len(colors), np.intp)
    if len(rest):
        labels[~clear] = nearest(to_space(rest).astype(np.float32), to_space(book))[0]
    return _drop_unused(book, labels)


def _learn_premultiplied(colors: np.ndarray, counts: np.ndarray, k: int, seed: int, channels: int,
                         speed: int = DEFAULT_SPEED) -> np.ndarray:
    """Premultiplied centroids for colours with alpha (the last channel).

    The squared error of premultiplied colours is what the eye (and
    :func:`vqcodec.metrics.psnr`) sees: a colour's error counts in
    proportion to its opacity, and all fully transparent colours are one.
    k-means runs on the distinct premultiplied colours rounded to integers
    (weights summed), as :func:`_learn` does on straight colours.
    """
    pre = np.rint(_spaces(channels)[0](colors)).astype(np.uint8)
    _, first, inverse = unique_rows(pre)
    weights = np.bincount(inverse.reshape(-1), weights=counts.astype(np.float64), minlength=len(first))
    pre = pre[first]
    if len(pre) <= k:
        return pre.astype(np.float64)
    return kmeans(pre, weights, k, seed, speed=speed)


# argument checks


def check_colors(colors: object, counts: object) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(colors, np.ndarray) or colors.dtype != np.uint8:
        found = colors.dtype if isinstance(colors, np.ndarray) else type(colors).__name__
        raise OptionError(f"colors: expected a uint8 numpy array, found {found}")
    if colors.ndim != 2 or colors.shape[1] < 1 or len(colors) == 0:
        raise OptionError(f"colors: expected shape (n, D) with n >= 1 and D >= 1, found {colors.shape}")
    counts = np.asarray(counts)
    if counts.shape != (len(colors),) or not (
        np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)
    ):
        raise OptionError(
            f"counts: expected {len(colors)} numbers (one per colour), "
            f"found shape {counts.shape} dtype {counts.dtype}"
        )
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or not counts.sum() > 0:
        raise OptionError("counts: expected finite weights >= 0 with a positive sum")
    return colors, counts
