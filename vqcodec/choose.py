"""The encoder's choice of index layout and index coder: encoder policy, not format.

Given an index map and its codebook, :func:`choose` returns the layout, the
coder and the ``INDX`` data.  With ``coder="auto"`` (the default) it
iterates the coder registry (:mod:`vqcodec.coders`):

1. every *map* coder (one that models the index map) that "auto" tries
   (ctx; at speeds 1-3 cand too, see :data:`EVERY_CODER_BELOW_SPEED`) and
   that accepts the map and can encode here makes its data, and beside it,
   on another thread, the quick estimate: the cheapest *bytes* coder (zstd)
   at a fast level on the byte layout (and on packed bits when an index
   takes at most 4).  If the best map coder is no larger than that estimate and the map
   has more than :data:`TRY_EVERY_CODER_PIXELS` pixels, it is taken: the
   map has no long exact repeats for a dictionary coder to find.
2. Otherwise the bytes coders are tried: the one that searches layouts
   (bzip2: its block sorting finds 2-D structure better in stripe order on
   photos) codes the bytes and stripes layouts and keeps the smaller; each
   other bytes coder (zstd) codes that layout (and packed bits when an index
   takes at most 4), first at a cheap level as an estimate, at its real
   level only when the estimate is within :data:`ZSTD_TRY` of the best.
   Above :data:`TRY_ALL_PIXELS` only the layout-searching coder runs, on
   the layout a band of rows prefers.
3. The smallest result wins; on a tie, the coder with the lower
   ``tie_rank`` (bytes before stripes within a coder).

A named coder without a layout gets the layout it prefers (the searching
coder searches, the others take bytes); ``coder="auto"`` with a named
layout is the layout-searching coder on that layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import coders, packing
from ._threads import cores, map_in_order
from .coders import Coder
from .errors import OptionError

__all__ = ["Choice", "choose", "EVERY_CODER_BELOW_SPEED", "TRY_ALL_PIXELS", "TRY_EVERY_CODER_PIXELS",
           "QUICK_LEVEL", "ZSTD_TRY"]

# Above this many pixels the layout is chosen from a band of rows, not by trying both.
TRY_ALL_PIXELS = 4_000_000
# A bytes coder's real level is tried when its cheap estimate is at most this many
# times the best size (on the Kodak maps zstd-19 is 0.86-0.95 x zstd-9).
ZSTD_TRY = 1 / 0.86
ESTIMATE_LEVEL = 9
# The level of the quick estimate that checks a map coder's result.
QUICK_LEVEL = 3
# Encodes at a speed below this one (pngquant's numbers: 1 is the slowest) let "auto"
# try every map coder, coder 3 included: photos come out ~4 % smaller, and decode
# ~2x slower (README, "vqcodec's index coder against lossless coders").
EVERY_CODER_BELOW_SPEED = 4
# Maps up to this many pixels try every coder, map coders included (on the
# PngSuite's 32x32 images ctx's ~30 bytes of tables lose to zstd or bzip2 now and then).
TRY_EVERY_CODER_PIXELS = 1 << 16


@dataclass(frozen=True)
class Choice:
    """The chosen layout and coder, and the ``INDX`` data they make."""

    layout: int
    coder: Coder
    data: bytes


def level_for(pixel_count: int, level: int | None) -> int:
    """The zstd level: the caller's, else strong on ordinary images and faster on huge ones."""
    if level is not None:
        return level
    return 19 if pixel_count <= TRY_ALL_PIXELS else 12


def threads_for(pixel_count: int) -> int:
    """Threads a bytes coder may use for one payload (0: its own single-threaded path)."""
    return 0 if pixel_count <= TRY_ALL_PIXELS else min(4, cores())


class _Map:
    """An index map with what every coder needs: its header fields and codebook bytes."""

    def __init__(self, indices: np.ndarray, codebook: np.ndarray) -> None:
        self.indices = indices
        self.codebook = np.ascontiguousarray(codebook, dtype=np.uint8)
        self.book_bytes = self.codebook.tobytes()
        self.height, self.width = indices.shape
        self.channels = self.codebook.shape[1]
        self.k = len(self.codebook)
        self.index_bits = max(1, (self.k - 1).bit_length())
        self.count = indices.size

    def header(self, layout: int, coder: Coder) -> coders.IndexMap:
        """The header fields a coder reads (spec §3 names), for *layout* and *coder*."""
        return coders.IndexMap(self.width, self.height, self.channels, self.k, self.index_bits,
                               layout, coder.id)

    def payload(self, layout: int) -> bytes:
        return packing.pack(self.indices, bits=self.index_bits, layout=layout)

    def code(self, coder: Coder, layout: int, *, level: int | None, threads: int = 0,
             payload: bytes | None = None) -> bytes:
        raw = self.payload(layout) if payload is None else payload
        return coder.encode(raw, self.header(layout, coder), self.book_bytes, level=level,
                            threads=threads)


def _layout_searcher() -> Coder:
    return next(c for c in coders.all_coders() if c.kind == "bytes" and c.searches_layout)


def choose(indices: np.ndarray, codebook: np.ndarray, /, *, coder: str = "auto",
           layout: str | None = None, level: int | None = None, every_coder: bool = False) -> Choice:
    """The layout, the coder and the INDX data for an (H, W) index map (module docstring).

    *every_coder*: "auto" also tries the map coders it leaves out by default
    (``Coder.auto`` false: coder 3, smaller files that decode slower); the
    encoder asks for it at speeds 1-3 (:data:`EVERY_CODER_BELOW_SPEED`).
    """
    m = _Map(indices, codebook)
    level = level_for(m.count, level)
    threads = threads_for(m.count)
    if coder == "auto" and layout is None:
        return _auto(m, level, threads, every_coder)
    chosen = _layout_searcher() if coder == "auto" else coders.by_name(coder)
    if layout is not None:
        layout_id = {name: value for value, name in packing.LAYOUTS.items()}[layout]
    elif chosen.kind == "bytes" and chosen.searches_layout:
        if m.count <= TRY_ALL_PIXELS:
            return _search_layouts(m, chosen, level, threads)
        layout_id = _sampled_layout(m, chosen)
    else:
        layout_id = packing.BYTES
    if m.k > chosen.max_k:
        others = " or ".join(repr(c.name) for c in coders.all_coders() if c.max_k >= m.k)
        raise OptionError(f"coder {chosen.name!r} needs k <= {chosen.max_k} (one byte per index) and "
                          f"this encode has {m.k} colours; use k <= {chosen.max_k}, or coder {others}")
    return Choice(layout_id, chosen, m.code(chosen, layout_id, level=level, threads=threads))


def _auto(m: _Map, level: int, threads: int, every_coder: bool = False) -> Choice:
    best: Choice | None = None
    models = [c for c in coders.all_coders() if c.kind == "map" and (c.auto or every_coder)
              and c.available() and c.refusal(m.k, packing.BYTES) is None]
    if models:
        quick = _quick_estimator()
        quick_layouts = (packing.BYTES, packing.PACKED) if m.index_bits <= 4 else (packing.BYTES,)

        def estimate() -> int:  # a bytes coder releases the GIL: on another thread, beside the models
            return min(len(m.code(quick, layout, level=QUICK_LEVEL)) for layout in quick_layouts)

        def model(c: Coder):
            return lambda: Choice(packing.BYTES, c, m.code(c, packing.BYTES, level=None))

        *made, quick_size = map_in_order(lambda task: task(), [*map(model, models), estimate], 2)
        best = min(made, key=lambda c: (len(c.data), c.coder.tie_rank))
        if len(best.data) <= quick_size and m.count > TRY_EVERY_CODER_PIXELS:
            return best
    if m.count <= TRY_ALL_PIXELS:
        choice = _search_layouts(m, _layout_searcher(), level, threads, others=True)
    else:  # a huge map: the searching coder on the layout a band of rows prefers
        searcher = _layout_searcher()
        layout = _sampled_layout(m, searcher)
        choice = Choice(layout, searcher, m.code(searcher, layout, level=level, threads=threads))
    return best if best is not None and len(best.data) <= len(choice.data) else choice


def _quick_estimator() -> Coder:
    return min((c for c in coders.all_coders() if c.kind == "bytes"), key=lambda c: c.tie_rank)


def _search_layouts(m: _Map, searcher: Coder, level: int, threads: int, *,
                    others: bool = False) -> Choice:
    """The smaller of *searcher* on bytes and on stripes; with *others*, each other
    bytes coder on that layout (and packed bits when an index takes at most 4 bits,
    where the byte layouts are 10-15 % larger), tried at a cheap level first."""
    layouts = (packing.BYTES, packing.STRIPES)  # bytes first: it wins a tie
    raws = [m.payload(layout) for layout in layouts]
    if threads:  # a big map: the coder already splits it over threads
        codeds = [m.code(searcher, layout, level=level, threads=threads, payload=raw)
                  for layout, raw in zip(layouts, raws)]
    else:  # both layouts at once (bz2 releases the GIL)
        codeds = map_in_order(lambda i: m.code(searcher, layouts[i], level=level, payload=raws[i]),
                              [0, 1], 2)
    i = min((0, 1), key=lambda i: (len(codeds[i]), i))
    choice = Choice(layouts[i], searcher, codeds[i])
    if not others:
        return choice
    candidates = [(layouts[i], raws[i])]
    if m.index_bits <= 4:
        candidates.append((packing.PACKED, m.payload(packing.PACKED)))
    rivals = sorted((c for c in coders.all_coders() if c.kind == "bytes" and c is not searcher),
                    key=lambda c: c.tie_rank)
    for rival in rivals:
        for layout, raw in candidates:
            estimate = m.code(rival, layout, level=min(level, ESTIMATE_LEVEL), payload=raw)
            if len(estimate) > len(choice.data) * ZSTD_TRY:
                continue
            coded = estimate if level <= ESTIMATE_LEVEL else m.code(
                rival, layout, level=level, threads=threads, payload=raw)
            if (len(coded), rival.tie_rank) < (len(choice.data), choice.coder.tie_rank):
                choice = Choice(layout, rival, coded)
    return choice


def _sampled_layout(m: _Map, coder: Coder) -> int:
    """The layout *coder* prefers on a band of about a megapixel of rows from the middle."""
    rows = max(2, (1 << 20) // max(m.width, 1)) & ~1
    top = (m.height // 2) & ~1
    band = _Map(m.indices[top : top + rows], m.codebook)
    sizes = {layout: len(band.code(coder, layout, level=ESTIMATE_LEVEL))
             for layout in (packing.STRIPES, packing.BYTES)}
    return min(sizes, key=lambda layout: (sizes[layout], layout))
