"""Index coder 2: a context model with rANS (spec/FORMAT.md §5.4).

numpy and the compiled loops of ``vqcodec._ctxcoder``.  It codes the index
map (layout 1, one byte per index, so k <= 256) given the codebook, and
returns the INDX data; :data:`CODER` is its entry in the registry.

The model (all of it static: the tables are counted by the encoder and sent
before the stream).  Every pixel ``X`` in raster order looks at its
neighbours left ``L``, up ``U``, up-left ``UL`` and up-right ``UR`` (0
outside the band of rows being coded, §5.4.1) and codes a *mode*: 0 if
``X == L``, else 1 if ``X == U``, 2 if ``X == UR``, 3 if ``X == UL``, else
4, a literal.  The mode's
frequency table is chosen by an 80-valued context: which of the neighbours
are equal to each other (``L == U``, ``U == UR``, ``L == UL``, ``UL == U``)
and the mode of the pixel on the left.  A literal then codes the *rank* of
``X`` among the codebook's entries ordered by their distance from ``L``'s
colour: the decoder sorts the codebook the same way, so colours near the
left neighbour's get the short codes of one shared table.
(bench/research/explore8_context_model.py measured the model's entropy;
README has its sizes against bzip2 and zstd.)

The symbols are coded with rANS (32-bit state, byte-wise renormalisation,
12-bit frequencies).  ``vqcodec._ctxcoder`` (C) runs the two per-pixel
loops; :func:`encode_reference` and :func:`decode_reference` are the same
loops in Python, slow but complete: the tests check the two against each
other, and the decoder falls back to Python when the extension is missing.
:func:`decode` runs the C decoder on the whole image on two threads, two
bands in lockstep on each (a pixel's decoding is a chain of dependent loads
that leaves a core idle), and can look the codebook up as it goes, so it
returns the pixels themselves; a band that fails a check is decoded again
step by step, which names the error (bench/decode_bench.py times it).
"""

from __future__ import annotations


import numpy as np

from .._native import load
from .._threads import cores, map_in_order
from ..errors import FormatError, OptionError
from . import rans

__all__ = ["CODER", "MAX_K", "available", "encode", "decode", "encode_reference", "decode_reference"]

MAX_K = 256  # one byte per index
MODES = 5
LITERAL = 4
CONTEXTS = 80  # 16 equality patterns x 5 modes of the left pixel
SCALE_BITS, SCALE, RANS_L = rans.SCALE_BITS, rans.SCALE, rans.RANS_L
WHO = "index coder 2"  # how errors name it
_BAND_PIXELS = 1 << 20  # symbols() works on pieces of about this many pixels
_DECODE_THREADS = min(2, cores())

_native = load("_ctxcoder")  # the compiled loops; without them decoding is slow and encoding declines


def available() -> bool:
    """True when the compiled loops are there (the encoder only uses coder 2 then)."""
    return _native is not None


# --------------------------------------------------------------------------
# The model


def rank_order(codebook: np.ndarray) -> np.ndarray:
    """(n, n) uint8: ``order[a, r]`` is the entry of rank ``r`` seen from entry ``a``.

    Entries are ranked by the squared difference of their stored values
    summed over the channels, ties by index; ``order[a, 0] == a`` unless an
    earlier entry has the same colour.
    """
    book = np.ascontiguousarray(codebook, dtype=np.uint8).reshape(len(codebook), -1)
    n = len(book)
    if not 1 <= n <= MAX_K:
        raise OptionError(f"index coder 2 needs 1 to {MAX_K} codebook entries, got {n}")
    if _native is not None and book.shape[1] <= 256:  # a radix sort per row, ~5x numpy's
        return np.frombuffer(_native.rank_order(book, n, book.shape[1]), np.uint8).reshape(n, n)
    wide = book.astype(np.int64)
    distance = ((wide[:, None, :] - wide[None, :, :]) ** 2).sum(axis=-1)
    return np.argsort(distance, axis=1, kind="stable").astype(np.uint8)  # ties by index


def symbols(grid: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contexts, modes, ranks) of an (H, W) uint8 index map, uint8 each, raster order.

    ``ranks`` holds the literal's rank where the mode is 4 and 0 elsewhere.
    The row above the map counts as outside (0): call it once per coding
    band.  Pieces of rows keep the temporaries small on huge maps.
    """
    h, w = grid.shape
    n = len(order)
    rank = np.zeros((n, n), dtype=np.uint8)
    rank[np.arange(n)[:, None], order] = np.arange(n, dtype=np.uint8)[None, :]
    contexts = np.empty(h * w, dtype=np.uint8)
    modes = np.empty(h * w, dtype=np.uint8)
    ranks = np.zeros(h * w, dtype=np.uint8)
    rows = max(1, _BAND_PIXELS // w)
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        padded = np.zeros((bottom - top + 1, w + 2), dtype=np.uint8)  # 0 outside the band
        padded[1:, 1:-1] = grid[top:bottom]
        if top:
            padded[0, 1:-1] = grid[top - 1]
        x = padded[1:, 1:-1]
        left, up, up_left, up_right = padded[1:, :-2], padded[:-1, 1:-1], padded[:-1, :-2], padded[:-1, 2:]
        mode = np.full(x.shape, LITERAL, dtype=np.uint8)
        for value, neighbour in ((3, up_left), (2, up_right), (1, up), (0, left)):
            mode[x == neighbour] = value  # the first match in L, U, UR, UL wins
        context = (left == up).view(np.uint8) | (up == up_right).view(np.uint8) << 1
        context |= (left == up_left).view(np.uint8) << 2
        context |= (up_left == up).view(np.uint8) << 3
        context *= MODES
        context[:, 0] += LITERAL  # the mode left of the first column
        context[:, 1:] += mode[:, :-1]
        span = slice(top * w, bottom * w)
        contexts[span] = context.ravel()
        modes[span] = mode.ravel()
        literal = mode == LITERAL
        ranks[span][literal.ravel()] = rank[left[literal], x[literal]]
    return contexts, modes, ranks


def quantize_frequencies(counts: np.ndarray) -> np.ndarray:
    """Counts -> frequencies summing to 4096, every non-zero count at least 1.

    All zero stays all zero.  Largest remainders get the rounding; the
    encoder's choice only (decoders check the sums, §5.4.3).
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(len(counts), dtype=np.int64)
    nonzero = counts > 0
    if int(nonzero.sum()) > SCALE:
        raise OptionError("more symbols than frequency slots")
    exact = counts * SCALE / total
    freq = np.where(nonzero, np.maximum(np.floor(exact), 1), 0).astype(np.int64)
    missing = SCALE - int(freq.sum())
    if missing > 0:  # at most one per symbol: to the largest remainders (ties: lower symbol)
        remainder = np.where(nonzero, exact - np.floor(exact), -1.0)
        freq[np.lexsort((np.arange(len(counts)), -remainder))[:missing]] += 1
    while missing < 0:  # the minimum of 1 overshot: take from the largest frequencies
        j = int(np.argmax(freq))
        take = min(-missing, int(freq[j]) - 1)
        freq[j] -= take
        missing += take
    return freq


# --------------------------------------------------------------------------
# Tables (§5.4.3)


def write_tables(mode_freq: np.ndarray, literal_freq: np.ndarray) -> bytes:
    """The table part of the INDX data: which of the 80 mode tables are there, those
    tables, then the literal table."""
    used = mode_freq.any(axis=1)
    out = bytearray(np.packbits(used, bitorder="little").tobytes())  # 10 bytes
    for row in mode_freq[used]:
        present = [int(s) for s in np.flatnonzero(row)]
        out.append(sum(1 << s for s in present))
        for s in present[:-1]:
            out += rans.v14(int(row[s]))
    used = np.flatnonzero(literal_freq)
    count = int(used[-1]) + 1 if len(used) else 0
    out += rans.v14(count)
    for r in range(count - 1):
        out += rans.v14(int(literal_freq[r]))
    return bytes(out)


# The table part's largest possible size: the bitmap, 80 tables of a mask and
# 4 two-byte frequencies, a two-byte count and 255 two-byte frequencies.
_TABLES_MAX = CONTEXTS // 8 + CONTEXTS * (1 + 2 * (MODES - 1)) + 2 + 2 * (MAX_K - 1)


def _truncated() -> FormatError:
    return FormatError("section INDX: index coder 2 tables are truncated")


def _complete(freq: list[int], what: str) -> list[int]:
    """*freq* with the implied last frequency, 4096 minus the others, which must be >= 1
    (so every table sums to exactly 4096)."""
    last = SCALE - sum(freq)
    if last < 1:
        raise FormatError(f"section INDX: index coder 2 {what} sums past {SCALE}")
    return [*freq, last]


def read_tables(data: bytes | memoryview, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(mode_freq (80, 5), literal_freq (256,), offset of the stream) from INDX data."""
    raw = bytes(memoryview(data).cast("B")[:_TABLES_MAX])  # all the tables can take
    if len(raw) < CONTEXTS // 8:
        raise _truncated()
    bitmap = int.from_bytes(raw[: CONTEXTS // 8], "little")
    pos = CONTEXTS // 8
    rows = [[0] * MODES for _ in range(CONTEXTS)]
    for context in range(CONTEXTS):
        if not bitmap >> context & 1:
            continue
        if pos >= len(raw):
            raise _truncated()
        mask = raw[pos]
        pos += 1
        if mask >> MODES or not mask:
            raise FormatError(f"section INDX: index coder 2 mode table {context} has mask {mask:#04x}")
        present = [s for s in range(MODES) if mask >> s & 1]
        freq = []
        for _ in present[:-1]:
            value, pos = rans.read_v14(raw, pos, WHO)
            freq.append(value)
        if 0 in freq:
            raise FormatError(f"section INDX: index coder 2 mode table {context} has a zero frequency")
        for s, f in zip(present, _complete(freq, f"mode table {context}")):
            rows[context][s] = f
    count, pos = rans.read_v14(raw, pos, WHO)
    if count > n:
        raise FormatError(f"section INDX: index coder 2 literal table has {count} ranks, k is {n}")
    literal_freq = np.zeros(MAX_K, dtype=np.uint16)
    if count:
        freq = []
        for _ in range(count - 1):
            value, pos = rans.read_v14(raw, pos, WHO)
            freq.append(value)
        literal_freq[:count] = _complete(freq, "literal table")
    return np.array(rows, dtype=np.uint16), literal_freq, pos


# --------------------------------------------------------------------------
# Encoding and decoding


def _model(grid: np.ndarray, order: np.ndarray, band_rows: int, *, native: bool = False):
    """The symbols of each band and the shared tables (*native*: the symbols
    and counts from the C loop, the same as :func:`symbols` gives)."""
    mode_counts = np.zeros(CONTEXTS * MODES, dtype=np.int64)
    literal_counts = np.zeros(MAX_K, dtype=np.int64)
    bands = rans.bands(grid.shape[0], band_rows)
    parts = []
    if native:  # the C pass releases the GIL: the bands on two threads
        table = order.tobytes()
        for *part, modes, literals in _map(
                lambda band: _native.symbols(grid[band[0] : band[1]], grid.shape[1], len(order), table),
                bands):
            mode_counts += np.frombuffer(modes, np.uint64).astype(np.int64)
            literal_counts += np.frombuffer(literals, np.uint64).astype(np.int64)
            parts.append(tuple(part))
    else:
        for top, bottom in bands:
            contexts, modes, ranks = part = symbols(grid[top:bottom], order)
            mode_counts += np.bincount(contexts.astype(np.int64) * MODES + modes,
                                       minlength=CONTEXTS * MODES)
            literal_counts += np.bincount(ranks[modes == LITERAL], minlength=MAX_K)
            parts.append(part)
    counts = mode_counts.reshape(CONTEXTS, MODES)
    mode_freq = np.zeros((CONTEXTS, MODES), dtype=np.int64)
    for context in np.flatnonzero(counts.any(axis=1)):  # an unused context stays all zero
        mode_freq[context] = quantize_frequencies(counts[context])
    literal_freq = quantize_frequencies(literal_counts)
    return parts, mode_freq.astype(np.uint16), literal_freq.astype(np.uint16)


def _assemble(mode_freq: np.ndarray, literal_freq: np.ndarray, band_rows: int,
              streams: list[bytes]) -> bytes:
    return write_tables(mode_freq, literal_freq) + rans.assemble_bands(band_rows, streams)


def encode(indices: np.ndarray, codebook: np.ndarray, *, band_rows: int | None = None) -> bytes:
    """The INDX data of an (H, W) index map under coder 2 (needs the compiled loops)."""
    if _native is None:
        raise OptionError("index coder 2 needs the compiled extension vqcodec._ctxcoder "
                          "(reinstall vqcodec with a C compiler)")
    order = rank_order(codebook)
    grid = rans.check_grid(indices, len(order), WHO)
    band_rows = rans.check_band_rows(band_rows, grid.shape, WHO)
    parts, mode_freq, literal_freq = _model(grid, order, band_rows, native=True)
    tables = (mode_freq.tobytes(), rans.starts(mode_freq).tobytes(),
              literal_freq.tobytes(), rans.starts(literal_freq).tobytes())
    streams = _map(lambda part: _native.encode(*part, *tables), parts)
    return _assemble(mode_freq, literal_freq, band_rows, streams)


def _map(fn, items: list) -> list:
    """fn over items, on two threads when there are several (the C loops release
    the GIL)."""
    return map_in_order(fn, items, _DECODE_THREADS)


def decode(data: bytes | memoryview, width: int, height: int, codebook: np.ndarray, *,
           pixels: bool = False) -> np.ndarray:
    """The index payload (layout 1, ``width * height`` bytes, as a flat uint8
    array) from coder-2 INDX data.

    With *pixels*, the codebook's entries instead of the indices: ``width *
    height * channels`` bytes, the image itself (the lookup is done as each
    row is decoded, on the decoding threads).  Raises :class:`FormatError` on
    any inconsistency (spec §5.4.4).
    """
    book = np.ascontiguousarray(codebook, dtype=np.uint8).reshape(len(codebook), -1)
    n, channels = book.shape
    if not 1 <= n <= MAX_K:
        raise OptionError(f"index coder 2 needs 1 to {MAX_K} codebook entries, got {n}")
    parsed = _native.parse_tables(data, n) if _native is not None else None
    if parsed is None:  # no extension, or a broken rule, which read_tables names
        mode_freq, literal_freq, offset = read_tables(data, n)
        tables = (mode_freq.tobytes(), rans.starts(mode_freq).tobytes(),
                  literal_freq.tobytes(), rans.starts(literal_freq).tobytes())
    else:  # the same tables, read by C (faster than building them in numpy)
        *tables, offset = parsed
    band_rows, streams = rans.read_streams(data, offset, height, WHO)
    bands = rans.bands(height, band_rows)
    if _native is None:  # pragma: no cover - depends on the build
        order = rank_order(book)
        grid = np.concatenate([decode_reference(stream, width, bottom - top, order, mode_freq,
                                                literal_freq) for stream, (top, bottom) in zip(streams, bands)])
        return (np.take(book, grid, axis=0) if pixels else grid).reshape(-1)
    item = channels if pixels else 1
    # not zeroed, and in huge pages from a megabyte up (see _ctxcoder.pages)
    out = np.frombuffer(_native.pages(width * height * item), dtype=np.uint8)
    failed = _native.decode_image(streams, out, width, band_rows, book.tobytes(), channels, pixels,
                                  *tables, _DECODE_THREADS)
    if failed:  # the checked loop names the first error, or decodes the band after all
        order, view, row_bytes = rank_order(book).tobytes(), memoryview(out).cast("B"), width * item
        for band in failed:
            top, bottom = bands[band]
            grid = bytearray(width * (bottom - top))
            try:
                _native.decode(streams[band], grid, width, bottom - top, n, order, *tables)
            except ValueError as e:
                raise FormatError(f"section INDX: index coder 2 stream is corrupt ({e})") from None
            rows = np.frombuffer(grid, np.uint8)
            view[top * row_bytes : bottom * row_bytes] = (
                np.take(book, rows, axis=0) if pixels else rows).tobytes()
    return out


# --------------------------------------------------------------------------
# The same loops in Python (reference and fallback)


def encode_reference(indices: np.ndarray, codebook: np.ndarray, *, band_rows: int | None = None
                     ) -> bytes:
    """:func:`encode` without the extension: the same bytes, ~1000x slower."""
    order = rank_order(codebook)
    grid = rans.check_grid(indices, len(order), WHO)
    band_rows = rans.check_band_rows(band_rows, grid.shape, WHO)
    parts, mode_freq, literal_freq = _model(grid, order, band_rows)
    mode_start, literal_start = rans.starts(mode_freq), rans.starts(literal_freq)
    streams = []
    for contexts, modes, ranks in parts:
        # decoding order: each pixel's mode, then its literal's rank
        literal = modes == LITERAL
        count = 1 + literal
        at = np.cumsum(count) - count
        freq = np.zeros(int(count.sum()), dtype=np.int64)
        start = np.zeros_like(freq)
        freq[at] = mode_freq[contexts, modes]
        start[at] = mode_start[contexts, modes]
        freq[at[literal] + 1] = literal_freq[ranks[literal]]
        start[at[literal] + 1] = literal_start[ranks[literal]]
        streams.append(rans.encode_stream(freq, start))
    return _assemble(mode_freq, literal_freq, band_rows, streams)


def decode_reference(stream: bytes | memoryview, width: int, height: int, order: np.ndarray,
                     mode_freq: np.ndarray, literal_freq: np.ndarray) -> np.ndarray:
    """The decoding loop of §5.4.4 in Python, for one band: (height, width) uint8 indices."""
    data = bytes(stream)
    n = len(order)
    mode_start, literal_start = rans.starts(mode_freq).tolist(), rans.starts(literal_freq).tolist()
    mode_freq_l, literal_freq_l, order_l = mode_freq.tolist(), literal_freq.tolist(), order.tolist()
    if len(data) < 4:
        raise FormatError("section INDX: index coder 2 stream is corrupt (stream shorter than its state)")
    x, pos = int.from_bytes(data[:4], "little"), 4

    def fail(reason: str) -> FormatError:
        return FormatError(f"section INDX: index coder 2 stream is corrupt ({reason})")

    def renormalise(x: int, pos: int) -> tuple[int, int]:
        while x < RANS_L:
            if pos == len(data):
                raise fail("stream ends early")
            x, pos = (x << 8) | data[pos], pos + 1
        return x, pos

    grid = np.zeros((height, width), dtype=np.uint8)
    previous_row = [0] * width
    for y in range(height):
        row = [0] * width
        left, prev = 0, LITERAL
        for i in range(width):
            u = previous_row[i] if y else 0
            ul = previous_row[i - 1] if y and i else 0
            ur = previous_row[i + 1] if y and i + 1 < width else 0
            context = ((left == u) | (u == ur) << 1 | (left == ul) << 2 | (ul == u) << 3) * MODES + prev
            slot = x & (SCALE - 1)
            freqs, starts = mode_freq_l[context], mode_start[context]
            for s in range(MODES):
                if freqs[s] and starts[s] <= slot < starts[s] + freqs[s]:
                    break
            else:
                raise fail("a mode context without a table")
            x, pos = renormalise(freqs[s] * (x >> SCALE_BITS) + slot - starts[s], pos)
            if s < LITERAL:
                value = (left, u, ur, ul)[s]
            else:
                slot = x & (SCALE - 1)
                for r in range(MAX_K):
                    if literal_freq_l[r] and literal_start[r] <= slot < literal_start[r] + literal_freq_l[r]:
                        break
                else:
                    raise fail("a literal outside the table")
                if r >= n or left >= n:
                    raise fail("a literal outside the table")
                x, pos = renormalise(literal_freq_l[r] * (x >> SCALE_BITS) + slot - literal_start[r], pos)
                value = order_l[left][r]
            if value >= n:
                raise fail("an index >= k")
            row[i] = left = value
            prev = s
        grid[y] = row
        previous_row = row
    if pos != len(data):
        raise fail("bytes left after the last pixel")
    if x != RANS_L:
        raise fail("final state is wrong")
    return grid


# --------------------------------------------------------------------------
# The registry's entry


class _Ctx(rans.MapCoder):
    id = 2
    name = "ctx"
    version = (1, 1)
    tie_rank = 0  # the smallest on photos: keeps a tie against zstd and bzip2

    def available(self) -> bool:
        return available()

    encode_map = staticmethod(encode)
    decode_map = staticmethod(decode)


CODER = _Ctx()
