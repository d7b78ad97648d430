"""Learning one codebook from many images: map (sample vectors per image) -> reduce (merge) -> learn.

The map step, :func:`sample_file`, is a top-level function of plain values
(a path, a block shape, numbers) returning a
:class:`~vqcodec.quantize.Histogram`, so it runs on any executor, as batch
encoding does (:func:`vqcodec.batch.imap_unordered`: a local process pool,
or a Dask cluster's executor).  Histograms are merged as they arrive (the
reduce step: distinct vectors with summed counts, so the order of arrival
does not change the result), and the merged histogram is learned from once
(:func:`vqcodec.quantize.learn`: weighted k-means with re-seeding of empty
clusters, rounding, dropping unused entries).

The result carries what a VQ-VAE practitioner checks: how many entries the
training vectors use and the entropy of their indices (bits per index,
:class:`vqcodec.tokenizer.Usage`), and the mean squared error on the
training set.
"""

from __future__ import annotations

import math
import os
import time
import zlib
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from . import batch, pixels
from .tokenizer import Usage
from .errors import OptionError, VqiError
from .limits import DEFAULT_MAX_PIXELS, check_k, check_seed

__all__ = ["Trained", "sample_file", "train", "usage_of", "DEFAULT_SAMPLES", "MODES", "METHODS"]

DEFAULT_SAMPLES = 1 << 18
"""Vectors sampled per image at most (an image with more is sampled uniformly without replacement)."""
TOTAL_SAMPLES = 1 << 22
"""Vectors sampled over the whole corpus at most, by default: a large corpus gets fewer per image
(at least :data:`MIN_SAMPLES`), so the merged histogram stays within a few hundred MB."""
MIN_SAMPLES = 1 << 12
MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


@dataclass(frozen=True)
class Trained:
    """The codebook learned and what went into it."""

    codebook: Any  # vqcodec.quantize.Codebook
    images: int
    vectors: int  # vectors sampled (with repeats)
    distinct: int  # distinct vectors among them
    usage: Usage  # of the codebook by the training vectors
    mse: float  # mean squared error per component over the training vectors
    failed: tuple[tuple[str, str], ...]  # (path, error) of the images that could not be read
    seconds: float

    @property
    def psnr(self) -> float:
        """PSNR of the training vectors against their nearest entries."""
        return math.inf if self.mse == 0 else 10 * math.log10(255 ** 2 / self.mse)


def sample_file(path: str, /, *, mode: str = "RGB", block: tuple[int, int] = (1, 1),
                samples: int | None = DEFAULT_SAMPLES, seed: int = 0,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Any:
    """The map step: the histogram of (at most *samples*) *block* vectors of the image at *path*.

    The image is converted to *mode* (L, LA, RGB or RGBA).  Sampling is
    seeded by *seed* and the file's name, so a run is reproducible on any
    executor.
    """
    from .quantize import Histogram
    from .quantize.blocks import gather
    from .quantize.histogram import distinct_vectors

    px = pixels.load(path, max_pixels=max_pixels)
    if px.mode != mode:
        px = pixels.from_pil(pixels.to_pil(px).convert(mode))
    array = px.array
    hist = Histogram(array.shape[2], block)
    vectors = gather(array, hist.block)
    if samples is None or len(vectors) <= samples:
        return Histogram.of(array, hist.block)
    rng = np.random.default_rng([seed, zlib.crc32(os.path.basename(path).encode())])
    vectors = vectors[np.sort(rng.choice(len(vectors), samples, replace=False))]
    colors, counts, _ = distinct_vectors(vectors)
    hist.colors, hist.counts = colors, counts.astype(np.int64)
    return hist


def usage_of(histogram: Any, codebook: Any) -> tuple[Usage, float]:
    """How the vectors of *histogram* (with their counts) use *codebook* (nearest entry each),
    and their mean squared error per component."""
    from .quantize.remap import assign

    labels = assign(histogram.colors, codebook.entries)
    weights = histogram.counts.astype(np.float64)
    hits = np.bincount(labels, weights=weights, minlength=len(codebook))
    diff = histogram.colors.astype(np.float64) - codebook.entries[labels].astype(np.float64)
    mse = float((weights * (diff ** 2).mean(1)).sum() / weights.sum())
    return Usage.of_counts(hits, len(codebook)), mse


METHODS = ("full", "minibatch")
"""How the merged sample is learned: weighted Lloyd k-means over all of it, or mini-batch k-means."""


def train(paths: Sequence[str], /, *, k: int, block: tuple[int, int] = (1, 1), mode: str = "RGB",
          seed: int = 0, samples: int | None = None, method: str = "full", executor: Executor | None = None,
          jobs: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
          progress: Callable[[int, int], None] | None = None) -> Trained:
    """Learn a codebook of at most *k* entries of *block* vectors from the images at *paths*.

    *paths* are image files (see :func:`vqcodec.batch.image_files` for
    folders).  The map step runs on *executor* (or a local pool of *jobs*
    processes; ``jobs=1``: here), as batch encoding does.  Each image gives
    at most *samples* vectors (default: :data:`DEFAULT_SAMPLES`, fewer for
    a corpus of more than :data:`TOTAL_SAMPLES` / that many images).  *method*
    "full" learns with :func:`vqcodec.quantize.learn` (weighted Lloyd
    k-means over every distinct sampled vector); "minibatch" with mini-batch
    k-means (:func:`vqcodec.quantize.kmeans.minibatch_kmeans`: batches drawn
    by weight, dead entries re-seeded, memory of one batch), then the same
    rounding and refinement.  *progress* is
    called with (images done, images) after each image.  Images that cannot
    be read are listed in :attr:`Trained.failed`; none readable is an
    :class:`OptionError`.
    """
    from .quantize import Histogram, learn
    from .quantize.blocks import check_block

    k, seed, block = check_k(k), check_seed(seed), check_block(block)
    if mode not in MODES:
        raise OptionError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if method not in METHODS:
        raise OptionError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if samples is not None and (not isinstance(samples, int) or samples < 1):
        raise OptionError(f"samples must be a positive integer or None, got {samples!r}")
    if samples is None:
        samples = max(MIN_SAMPLES, min(DEFAULT_SAMPLES, TOTAL_SAMPLES // max(1, len(paths))))
    start = time.perf_counter()
    merged = Histogram(MODES[mode], block)
    failed: list[tuple[str, str]] = []
    calls = [(os.path.abspath(p),) for p in paths]
    done = 0
    options = dict(mode=mode, block=block, samples=samples, seed=seed, max_pixels=max_pixels)
    for i, future in batch.imap_unordered(sample_file, calls, executor=executor, jobs=jobs, **options):
        try:
            merged.merge(future.result())
        except VqiError as e:
            failed.append((paths[i], " ".join(str(e).split())))
        except OSError as e:
            failed.append((paths[i], f"cannot read: {e.strerror or e}"))
        done += 1
        if progress is not None:
            progress(done, len(paths))
    if not len(merged):
        raise OptionError("no image could be read to train on" if paths else "no images to train on")
    codebook = learn(merged, k, seed=seed) if method == "full" else _learn_minibatch(merged, k, seed)
    usage, mse = usage_of(merged, codebook)
    return Trained(codebook, len(paths) - len(failed), int(merged.counts.sum()), len(merged),
                   usage, mse, tuple(sorted(failed)), time.perf_counter() - start)


def _learn_minibatch(histogram: Any, k: int, seed: int) -> Any:
    """The codebook of *histogram* by mini-batch k-means, rounded and refined as :func:`learn` does."""
    from .quantize import Codebook
    from .quantize.kmeans import minibatch_kmeans
    from .quantize.learn import _spaces, finish
    from .space import has_alpha

    colors, counts, channels = histogram.colors, histogram.counts, histogram.channels
    if len(colors) <= k:
        return Codebook(colors, channels=channels, block=histogram.block)
    alpha = has_alpha(channels)
    x = _spaces(channels)[0](colors) if alpha else colors
    centres, _ = minibatch_kmeans(x, counts, k, seed)
    entries, _ = finish(colors, counts, centres, premultiplied=alpha, channels=channels)
    return Codebook(entries, channels=channels, block=histogram.block)
