"""Index coder 3, "cand": candidate symbols under a per-image context map (spec §5.5).

Every pixel ``X`` in raster order looks at six neighbours, ``W``, ``N``,
``NE``, ``NW``, ``WW`` and ``NN`` (0 outside the band of rows being coded),
and lists their distinct values in that order: the *candidates*.  It codes
one 7-ary symbol: ``s`` < 6 says "X is candidate s", 6 is an *escape*, after
which ``X`` is coded by its rank among the codebook's entries ordered by
their distance from ``W``'s (as coder 2's literal), the candidates taken out,
as a token of 16 values and, for larger ranks, a remainder.

The symbol's frequency table is chosen by a *context map*: the pixel's raw
context -- which of ten pairs of neighbours are equal, and the symbol of the
pixel on its left, 7168 values -- is mapped to one of at most 255 tables by a
map the encoder learns for the image (a k-means over the raw contexts'
symbol counts) and sends as a zstd frame.  The escape's table is chosen by
how far ``N`` lies from ``W`` in that distance order.  All tables are static
(counted by the encoder, sent before the streams); the symbols are coded with
the rANS of coder 2 (:mod:`.rans`), in bands of rows decoded on two threads.

bench/research/index-coder-3.md is the research behind the design,
bench/lossless_bench.py measures it against JPEG XL and WebP lossless and
bench/index_speed.py times it.  numpy chooses the model; ``vqcodec._candcoder``
(C) computes a band's symbols and runs the rANS loops, and the same steps in
Python (:func:`_symbols_numpy`, :func:`coded` with ``rans.encode_stream``,
:func:`decode_reference`) are the reference the C is tested against and the
fallback without the extension.  At the default speed the encoder does not
try coder 3 (``auto`` keeps coder 2, which decodes 1.6-2.1 times faster);
at speeds 1-3 it tries both and keeps the smaller (:mod:`vqcodec.choose`).
"""

from __future__ import annotations

import struct

import numpy as np

from .._native import load
from .._threads import cores, map_in_order
from ..errors import FormatError, OptionError
from . import rans
from .ctx import quantize_frequencies, rank_order

__all__ = ["CODER", "MAX_K", "Symbols", "Model", "encode", "decode", "read_model", "decode_reference"]

WHO = "index coder 3"
MAX_K = 256
MAX_ENTRY_BYTES = 256  # the C decoder's largest entry: an 8x8 RGBA block, the most a file holds (§3.1)
NEIGHBOURS = ("W", "N", "NE", "NW", "WW", "NN")
# bit i of the equality pattern: the i-th pair is equal (§5.5.2); bits 0-4 involve W or
# WW, bits 5-9 only the rows above
EQUALITIES = (("W", "N"), ("W", "NE"), ("W", "NW"), ("W", "WW"), ("WW", "NW"),
              ("N", "NE"), ("NW", "N"), ("N", "NN"), ("NW", "NE"), ("NN", "NE"))
PATTERNS = 1 << len(EQUALITIES)
SYMBOLS = 7
ESCAPE = 6
RAW_CONTEXTS = PATTERNS * SYMBOLS  # 7168: pattern + 1024 x the left symbol
ESCAPE_CONTEXTS = 9  # bit length of the rank of N seen from W: 0 .. 8
TOKENS = 16
SCALE_BITS, SCALE = rans.SCALE_BITS, rans.SCALE
# the numbers of tables the encoder tries (it keeps the smallest result)
TABLE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128)
_DECODE_THREADS = min(2, cores())

_native = load("_candcoder")


# --------------------------------------------------------------------------
# Symbols (§5.5.1 - §5.5.3)


def token_of(value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(token, remainder bits, remainder) of escape ranks 0..255 (§5.5.3): values below
    4 are their own token; a larger value with its highest bit at e has token
    4 + 2 (e - 2) + (its next bit), and its e - 1 lowest bits are the remainder."""
    value = np.asarray(value, dtype=np.int64)
    e = np.zeros_like(value)
    big = value >= 4
    e[big] = np.floor(np.log2(value[big])).astype(np.int64)
    bits = np.where(big, e - 1, 0)
    token = np.where(big, 4 + 2 * (e - 2) + ((value >> np.maximum(bits, 0)) & 1), value)
    raw = value & ((1 << bits) - 1)
    return token, bits, raw


def value_of(token: int, raw: int) -> int:
    """The escape rank of *token* and its remainder (the inverse of :func:`token_of`)."""
    if token < 4:
        return token
    bits = ((token - 4) >> 1) + 1
    return ((2 | ((token - 4) & 1)) << bits) | raw


def raw_bits(token: int) -> int:
    """How many bits the remainder after *token* has."""
    return 0 if token < 4 else ((token - 4) >> 1) + 1


def escape_context(position: np.ndarray) -> np.ndarray:
    """The escape's context: the bit length of N's position in order[W] (0 .. 8)."""
    position = np.asarray(position, dtype=np.int64)
    out = np.zeros_like(position)
    nz = position > 0
    out[nz] = np.floor(np.log2(position[nz])).astype(np.int64) + 1
    return out


class Symbols:
    """One band's symbols in raster order: ``raw`` context and ``symbol`` per pixel, and
    for the escapes (``escape`` mask) ``rank`` (among the entries that are no
    candidate), ``escape_context``, ``token``, ``bits`` and ``raw_value``."""

    def __init__(self, raw: np.ndarray, symbol: np.ndarray, rank: np.ndarray,
                 escape_context_: np.ndarray) -> None:
        self.raw = raw.astype(np.int64)
        self.symbol = symbol.astype(np.int64)
        self.escape = self.symbol == ESCAPE
        self.rank = rank.astype(np.int64)
        self.escape_context = escape_context_.astype(np.int64)
        self.token, self.bits, self.raw_value = token_of(self.rank)

    @classmethod
    def of(cls, grid: np.ndarray, order: np.ndarray, *, native: bool | None = None) -> "Symbols":
        """The symbols of a band (its rows; the rows above count as outside): the C pass
        when there is one (and *native* is not False), else numpy (the same arrays)."""
        if native is not False and _native is not None:
            grid = np.ascontiguousarray(grid, dtype=np.uint8)
            raw, symbol, value, context = _native.symbols(grid, grid.shape[1], len(order), order.tobytes())
            symbol = np.frombuffer(symbol, np.uint8)
            escape = symbol == ESCAPE
            return cls(np.frombuffer(raw, np.uint16), symbol, np.frombuffer(value, np.uint8)[escape],
                       np.frombuffer(context, np.uint8)[escape])
        return cls(*_symbols_numpy(grid, positions(order)))


def _symbols_numpy(grid: np.ndarray, position: np.ndarray):
    """(raw, symbol, rank, escape context) of a band, in numpy (§5.5.1 - §5.5.3)."""
    h, w = grid.shape
    pad = np.zeros((h + 2, w + 3), dtype=np.int16)  # 2 rows above, 2 columns left, 1 right
    pad[2:, 2:-1] = grid
    x = pad[2:, 2:-1]
    nb = {"W": pad[2:, 1:-2], "N": pad[1:-1, 2:-1], "NE": pad[1:-1, 3:],
          "NW": pad[1:-1, 1:-2], "WW": pad[2:, :-3], "NN": pad[:-2, 2:-1]}
    values = [nb[name] for name in NEIGHBOURS]
    slot_of: list[np.ndarray] = []
    count = np.zeros(x.shape, dtype=np.int64)
    for j, v in enumerate(values):  # the slot of each neighbour's value in the list
        slot = count.copy()
        new = np.ones(x.shape, dtype=bool)
        for i in range(j - 1, -1, -1):  # an earlier equal neighbour: its slot
            equal = v == values[i]
            slot = np.where(equal, slot_of[i], slot)
            new &= ~equal
        slot_of.append(slot)
        count += new
    symbol = np.full(x.shape, ESCAPE, dtype=np.int64)
    for j in range(len(values) - 1, -1, -1):  # the first candidate equal to X
        symbol = np.where(x == values[j], slot_of[j], symbol)
    pattern = np.zeros(x.shape, dtype=np.int64)
    for bit, (a, b) in enumerate(EQUALITIES):
        pattern |= (nb[a] == nb[b]).astype(np.int64) << bit
    left = np.empty_like(symbol)
    left[:, 0] = ESCAPE
    left[:, 1:] = symbol[:, :-1]
    escape = symbol.ravel() == ESCAPE
    wv = nb["W"].ravel()[escape]
    rank = position[wv, x.ravel()[escape]]
    # the candidates (distinct neighbours) that come before X in order[W] are skipped
    skipped = np.zeros(len(rank), dtype=np.int64)
    for j, v in enumerate(values):
        first = np.ones(len(rank), dtype=bool)
        vj = v.ravel()[escape]
        for i in range(j):
            first &= vj != values[i].ravel()[escape]
        skipped += first & (position[wv, vj] < rank)
    return ((pattern + PATTERNS * left).ravel(), symbol.ravel(), rank - skipped,
            escape_context(position[wv, nb["N"].ravel()[escape]]))


def positions(order: np.ndarray) -> np.ndarray:
    """position[a, b]: where b lies in order[a] (the inverse of each row)."""
    n = len(order)
    position = np.zeros((n, n), dtype=np.int64)
    position[np.arange(n)[:, None], order] = np.arange(n)[None, :]
    return position


# --------------------------------------------------------------------------
# The model: the context map (encoder policy, Appendix B)


def learn_map(counts: np.ndarray, tables: int, iterations: int = 8) -> np.ndarray:
    """A context map of at most *tables* tables from the symbol counts of the raw
    contexts (RAW_CONTEXTS x 7): k-means over the contexts that occur (distance: the
    bits of coding a context's symbols with a table's probabilities), seeded with the
    most frequent contexts.  Returns the map (RAW_CONTEXTS uint8), tables numbered
    from the most used."""
    counts = counts.astype(np.float64)
    present = np.flatnonzero(counts.sum(axis=1))
    hist = counts[present]
    weight = hist.sum(axis=1)
    tables = min(tables, len(present))
    seeds = np.argsort(-weight, kind="stable")[:tables]
    centre = hist[seeds] + 0.5
    label = np.zeros(len(present), dtype=np.int64)
    for _ in range(iterations):
        logp = np.log2(centre / centre.sum(axis=1, keepdims=True))
        label = (-(hist @ logp.T)).argmin(axis=1)
        centre = _sum_rows(hist, label, tables) + 0.02
    used = np.bincount(label, weights=weight, minlength=tables)
    rank = np.empty(tables, dtype=np.int64)
    rank[np.argsort(-used, kind="stable")] = np.arange(tables)
    # a context that never occurs repeats the table of the last one that does before it
    # (table 0 before the first): long runs, which the map's zstd frame stores in a few bytes
    out = np.zeros(RAW_CONTEXTS, dtype=np.uint8)
    out[present] = rank[label]
    last = np.maximum.accumulate(np.where(np.isin(np.arange(RAW_CONTEXTS), present),
                                          np.arange(RAW_CONTEXTS), -1))
    return np.where(last >= 0, out[np.maximum(last, 0)], 0).astype(np.uint8)


def _sum_rows(rows: np.ndarray, label: np.ndarray, groups: int) -> np.ndarray:
    """The sum of the *rows* of each label 0 .. groups - 1."""
    out = np.zeros((groups, rows.shape[1]), dtype=rows.dtype)
    for column in range(rows.shape[1]):
        out[:, column] = np.bincount(label, weights=rows[:, column], minlength=groups)
    return out


def _table_bytes(freq: np.ndarray, mask_bytes: int) -> bytes:
    """A table: the mask of its non-zero symbols, then their frequencies but the last."""
    present = np.flatnonzero(freq)
    mask = sum(1 << int(s) for s in present)
    out = bytearray(mask.to_bytes(mask_bytes, "little"))
    for s in present[:-1]:
        out += rans.v14(int(freq[s]))
    return bytes(out)


def _map_frame(context_map: np.ndarray, level: int = 19) -> bytes:
    from .zstd import compress

    return compress(context_map.tobytes(), level=level)


class Model:
    """The tables of one image: ``context_map`` (RAW_CONTEXTS uint8), ``symbol_freq``
    (tables x 7) and ``escape_freq`` (9 x 16), 12-bit frequencies."""

    def __init__(self, context_map: np.ndarray, symbol_freq: np.ndarray,
                 escape_freq: np.ndarray) -> None:
        self.context_map = np.ascontiguousarray(context_map, dtype=np.uint8)
        self.symbol_freq = np.ascontiguousarray(symbol_freq, dtype=np.uint16)
        self.escape_freq = np.ascontiguousarray(escape_freq, dtype=np.uint16)
        self.symbol_start = rans.starts(self.symbol_freq)
        self.escape_start = rans.starts(self.escape_freq)

    def tables_bytes(self, level: int = 19) -> bytes:
        """The table part of INDX.data (§5.5.4), the map compressed at zstd *level*."""
        frame = _map_frame(self.context_map, level)
        out = [bytes([len(self.symbol_freq)]), struct.pack("<I", len(frame)), frame]
        out += [_table_bytes(row, 1) for row in self.symbol_freq]
        out += [_table_bytes(row, 2) for row in self.escape_freq]
        return b"".join(out)


def _bits(counts: np.ndarray, freq: np.ndarray) -> float:
    """The bits of coding symbols of these *counts* with these 12-bit frequencies."""
    used = counts > 0
    return float(-(counts[used] * np.log2(freq[used] / SCALE)).sum())


def _frequencies(counts: np.ndarray) -> np.ndarray:
    return np.array([quantize_frequencies(row) if row.any() else np.zeros(len(row), np.int64)
                     for row in counts], dtype=np.int64).reshape(counts.shape)


def model_for(parts: list[Symbols], table_counts=TABLE_COUNTS) -> Model:
    """The smallest model of the tried numbers of tables: its tables (the map
    compressed at a quick level) and its streams' ideal code length."""
    raw = np.concatenate([p.raw for p in parts])
    symbol = np.concatenate([p.symbol for p in parts])
    counts = np.bincount(raw * SYMBOLS + symbol, minlength=RAW_CONTEXTS * SYMBOLS)
    counts = counts.reshape(RAW_CONTEXTS, SYMBOLS)
    token = np.concatenate([p.token for p in parts])
    context = np.concatenate([p.escape_context for p in parts])
    escape_counts = np.bincount(context * TOKENS + token, minlength=ESCAPE_CONTEXTS * TOKENS)
    escape_freq = _frequencies(escape_counts.reshape(ESCAPE_CONTEXTS, TOKENS))
    best = None
    for tables in table_counts:
        context_map = learn_map(counts, tables)
        used = int(context_map.max()) + 1
        table_counts_ = _sum_rows(counts, context_map.astype(np.int64), used)
        freq = _frequencies(table_counts_)
        model = Model(context_map, freq, escape_freq)
        size = _bits(table_counts_, freq) / 8 + len(model.tables_bytes(level=3))
        if best is None or size < best[0]:
            best = (size, model)
        if used < tables:  # fewer raw contexts than tables: more tables change nothing
            break
    return best[1]


# --------------------------------------------------------------------------
# Encoding


def coded(part: Symbols, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, starts) of a band's rANS symbols in decoding order: each pixel's
    symbol, then for an escape its token and, when it has a remainder of b bits, the
    remainder as one symbol of frequency 2^(12 - b) (§5.5.3)."""
    esc = part.escape
    big = np.zeros(len(esc), dtype=bool)
    big[esc] = part.bits > 0
    count = 1 + esc + big
    at = np.cumsum(count) - count
    freq = np.zeros(int(count.sum()), dtype=np.int64)
    start = np.zeros_like(freq)
    table = model.context_map[part.raw]
    freq[at] = model.symbol_freq[table, part.symbol]
    start[at] = model.symbol_start[table, part.symbol]
    freq[at[esc] + 1] = model.escape_freq[part.escape_context, part.token]
    start[at[esc] + 1] = model.escape_start[part.escape_context, part.token]
    has = part.bits > 0
    shift = SCALE_BITS - part.bits[has]
    freq[at[big] + 2] = 1 << shift
    start[at[big] + 2] = part.raw_value[has] << shift
    return freq, start


def encode(indices: np.ndarray, codebook: np.ndarray, *, band_rows: int | None = None,
           native: bool | None = None) -> bytes:
    """The INDX data of an (H, W) index map under coder 3.  *native* None: the C loops
    when they are there (False: numpy and the Python rANS loop; the same bytes)."""
    if not 1 <= len(codebook) <= MAX_K:
        raise OptionError(f"{WHO} needs 1 to {MAX_K} codebook entries, got {len(codebook)}")
    order = rank_order(codebook)
    grid = rans.check_grid(indices, len(order), WHO)
    band_rows = rans.check_band_rows(band_rows, grid.shape, WHO)
    use_c = _native is not None and native is not False
    bands = rans.bands(grid.shape[0], band_rows)
    parts = map_in_order(lambda band: Symbols.of(grid[band[0] : band[1]], order, native=use_c),
                         bands, _DECODE_THREADS if use_c else 1)
    model = model_for(parts)

    def stream(part: Symbols) -> bytes:
        if use_c:
            value = np.zeros(len(part.symbol), dtype=np.uint8)
            context = np.zeros(len(part.symbol), dtype=np.uint8)
            value[part.escape] = part.rank
            context[part.escape] = part.escape_context
            return _native.encode_band(part.raw.astype(np.uint16), part.symbol.astype(np.uint8), value,
                                       context, model.context_map, model.symbol_freq, model.symbol_start,
                                       model.escape_freq, model.escape_start)
        return rans.encode_stream(*coded(part, model))

    streams = map_in_order(stream, parts, _DECODE_THREADS if use_c else 1)
    return model.tables_bytes() + rans.assemble_bands(band_rows, streams)


# --------------------------------------------------------------------------
# Reading the tables (§5.5.4)


def _read_table(raw: bytes, pos: int, mask_bytes: int, symbols: int, what: str
                ) -> tuple[list[int] | None, int]:
    """A table (a mask, then frequencies) at *pos*: its frequencies, or None when the mask
    is 0 (allowed only for escape tables)."""
    if pos + mask_bytes > len(raw):
        raise FormatError(f"section INDX: {WHO} tables are truncated")
    mask = int.from_bytes(raw[pos : pos + mask_bytes], "little")
    pos += mask_bytes
    if mask >> symbols:
        raise FormatError(f"section INDX: {WHO} {what} has mask {mask:#x}")
    if not mask:
        return None, pos
    present = [s for s in range(symbols) if mask >> s & 1]
    freq = [0] * symbols
    total = 0
    for s in present[:-1]:
        value, pos = rans.read_v14(raw, pos, WHO)
        if value == 0:
            raise FormatError(f"section INDX: {WHO} {what} has a zero frequency")
        freq[s] = value
        total += value
    if SCALE - total < 1:
        raise FormatError(f"section INDX: {WHO} {what} sums past {SCALE}")
    freq[present[-1]] = SCALE - total
    return freq, pos


def read_model(data: bytes | memoryview) -> tuple[Model, int]:
    """(the model, offset of band_rows) from coder-3 INDX data, every rule of §5.5.4
    checked."""
    from .zstd import decompress_frame

    view = memoryview(data).cast("B")
    if len(view) < 5:
        raise FormatError(f"section INDX: {WHO} tables are truncated")
    tables = view[0]
    if tables == 0:
        raise FormatError(f"section INDX: {WHO} needs at least one symbol table, found 0")
    length = struct.unpack_from("<I", view, 1)[0]
    if length > len(view) - 5:
        raise FormatError(f"section INDX: {WHO} context map needs {length} bytes, "
                          f"{len(view) - 5} left")
    context_map = np.frombuffer(decompress_frame(f"INDX: {WHO} context map", view[5 : 5 + length], exact=RAW_CONTEXTS,
                                                 bound=RAW_CONTEXTS), dtype=np.uint8)
    if int(context_map.max()) >= tables:
        raise FormatError(f"section INDX: {WHO} context map names table {int(context_map.max())}, "
                          f"there are {tables}")
    pos = 5 + length
    most = tables * (1 + 2 * (SYMBOLS - 1)) + ESCAPE_CONTEXTS * (2 + 2 * (TOKENS - 1))
    raw = bytes(view[pos : pos + most])
    parsed = _native.parse_tables(raw, tables) if _native is not None else None
    if parsed is not None:  # the same tables, read by C; None: a rule is broken, named below
        symbol_freq, escape_freq, at = parsed
        return Model(context_map, np.frombuffer(symbol_freq, np.uint16).reshape(tables, SYMBOLS),
                     np.frombuffer(escape_freq, np.uint16).reshape(ESCAPE_CONTEXTS, TOKENS)), pos + at
    at = 0
    symbol_freq = []
    for t in range(tables):
        freq, at = _read_table(raw, at, 1, SYMBOLS, f"symbol table {t}")
        if freq is None:
            raise FormatError(f"section INDX: {WHO} symbol table {t} has mask 0x0")
        symbol_freq.append(freq)
    escape_freq = []
    for q in range(ESCAPE_CONTEXTS):
        freq, at = _read_table(raw, at, 2, TOKENS, f"escape table {q}")
        escape_freq.append(freq or [0] * TOKENS)
    return Model(context_map, np.array(symbol_freq), np.array(escape_freq)), pos + at


# --------------------------------------------------------------------------
# Decoding


def decode(data: bytes | memoryview, width: int, height: int, codebook: np.ndarray, *,
           pixels: bool = False) -> np.ndarray:
    """The index payload (layout 1: ``width * height`` bytes, flat uint8) from coder-3
    INDX data; with *pixels*, the codebook's entries instead (the image's samples).
    Raises :class:`FormatError` on any inconsistency (§5.5.5)."""
    book = np.ascontiguousarray(codebook, dtype=np.uint8).reshape(len(codebook), -1)
    n, channels = book.shape
    if not 1 <= n <= MAX_K:
        raise OptionError(f"{WHO} needs 1 to {MAX_K} codebook entries, got {n}")
    model, offset = read_model(data)
    band_rows, streams = rans.read_streams(data, offset, height, WHO)
    if _native is None or channels > MAX_ENTRY_BYTES:  # larger entries: only from the API
        order = rank_order(book)
        rows = []
        for band, (stream, (top, bottom)) in enumerate(zip(streams, rans.bands(height, band_rows))):
            try:
                rows.append(decode_reference(stream, width, bottom - top, order, model))
            except FormatError as e:  # named as the C decoder names it
                raise FormatError(str(e).replace(f"{WHO} stream is", f"{WHO} stream of band {band} is")) from None
        grid = np.concatenate(rows)
        return (np.take(book, grid, axis=0) if pixels else grid).reshape(-1)
    item = channels if pixels else 1
    out = np.empty(width * height * item, dtype=np.uint8)
    error = _native.decode_image(
        streams, out, width, band_rows, book.tobytes(), channels, pixels, model.context_map.tobytes(),
        model.symbol_freq.tobytes(), model.symbol_start.tobytes(), model.escape_freq.tobytes(),
        model.escape_start.tobytes(), _DECODE_THREADS)
    if error is not None:
        band, reason = error
        raise FormatError(f"section INDX: {WHO} stream of band {band} is corrupt ({reason})")
    return out


def decode_reference(stream: bytes | memoryview, width: int, height: int, order: np.ndarray,
                     model: Model) -> np.ndarray:
    """The decoding loop of §5.5.5 in Python, for one band: (height, width) uint8 indices."""
    data = bytes(stream)
    order_l = order.tolist()
    position = positions(order).tolist()
    cmap = model.context_map.tolist()
    sf, ss = model.symbol_freq.tolist(), model.symbol_start.tolist()
    ef, es = model.escape_freq.tolist(), model.escape_start.tolist()

    def fail(reason: str) -> FormatError:
        return FormatError(f"section INDX: {WHO} stream is corrupt ({reason})")

    if len(data) < 4:
        raise fail("stream shorter than its state")
    x, pos = int.from_bytes(data[:4], "little"), 4

    def step(freq: list[int], start: list[int], what: str) -> int:
        """Decode one symbol of a table (a slot in no non-zero range: *what*)."""
        nonlocal x, pos
        slot = x & (SCALE - 1)
        for s, (f, st) in enumerate(zip(freq, start)):
            if f and st <= slot < st + f:
                break
        else:
            raise fail(what)
        x = f * (x >> SCALE_BITS) + slot - st
        while x < rans.RANS_L:
            if pos == len(data):
                raise fail("stream ends early")
            x, pos = (x << 8) | data[pos], pos + 1
        return s

    grid = [[0] * width for _ in range(height)]
    for y in range(height):
        row = grid[y]
        up = grid[y - 1] if y >= 1 else None
        up2 = grid[y - 2] if y >= 2 else None
        left_symbol = ESCAPE
        for i in range(width):
            nb = {
                "W": row[i - 1] if i >= 1 else 0,
                "N": up[i] if up else 0,
                "NE": up[i + 1] if up and i + 1 < width else 0,
                "NW": up[i - 1] if up and i >= 1 else 0,
                "WW": row[i - 2] if i >= 2 else 0,
                "NN": up2[i] if up2 else 0,
            }
            candidates: list[int] = []
            for name in NEIGHBOURS:
                if nb[name] not in candidates:
                    candidates.append(nb[name])
            pattern = sum((nb[a] == nb[b]) << bit for bit, (a, b) in enumerate(EQUALITIES))
            table = cmap[pattern + PATTERNS * left_symbol]
            s = step(sf[table], ss[table], "a symbol outside its table")
            if s < len(candidates):
                value = candidates[s]
            elif s < ESCAPE:
                raise fail(f"symbol {s} names no candidate (there are {len(candidates)})")
            else:
                w = nb["W"]
                q = position[w][nb["N"]].bit_length()
                token = step(ef[q], es[q], "an escape without a table")
                bits = raw_bits(token)
                raw = 0
                if bits:
                    shift = SCALE_BITS - bits
                    raw = step([1 << shift] * (1 << bits),
                               [v << shift for v in range(1 << bits)], "remainder")
                rank = value_of(token, raw)
                # the entry of order[W] at *rank* once the candidates are taken out
                others = [e for e in order_l[w] if e not in candidates]
                if rank >= len(others):
                    raise fail(f"an escape past the entries that are no candidate ({rank}, "
                               f"{len(others)} of them)")
                value = others[rank]
            row[i] = value
            left_symbol = s
    if pos != len(data):
        raise fail("bytes left after the last pixel")
    if x != rans.RANS_L:
        raise fail("final state is wrong")
    return np.array(grid, dtype=np.uint8).reshape(height, width)


# --------------------------------------------------------------------------
# The registry's entry


class _Cand(rans.MapCoder):
    id = 3
    name = "cand"
    version = (1, 3)
    tie_rank = 1  # coder 2 keeps a tie: files any 1.1 reader reads
    auto = False  # asked for by name until it is as fast as coder 2

    def available(self) -> bool:
        return _native is not None

    encode_map = staticmethod(encode)
    decode_map = staticmethod(decode)


CODER = _Cand()
