"""Write the test vectors of spec/FORMAT.md (§10, Appendix A; spec/vectors/README.md).

Run once; the committed files are the contract.  A decoder is tested
hex -> pixels (or hex -> refusal), never by re-encoding: the bytes that come
from a library (bzip2, a compressed zstd frame, Pillow's sRGB profile) may
differ between library versions, so rewriting a vector is a deliberate act:

    python spec/vectors/make_vectors.py NAME ...     # (re)write these vectors
    python spec/vectors/make_vectors.py refuse/NAME  # (re)write one must-refuse vector
    python spec/vectors/make_vectors.py --all        # (re)write every vector

Every byte is built here from FORMAT.md, with no help from vqcodec: the
sections (§2-§4), the index layouts (§5.0-§5.2), zstd frames of raw and RLE
blocks by hand (RFC 8878), an encoder of the context model (§5.4), and the
lookup and crop of block vectors (§3.1, §8), and the codebook files (.vqb)
and BREF sections of shared codebooks (§11).
"""

from __future__ import annotations

import bz2
import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFUSE = HERE / "refuse"
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
MAGIC = b"\x89VQI\r\n\x1a\n"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


# ---------------------------------------------------------------- the container (§2-§4)


def section(kind: bytes, data: bytes, *, length: int | None = None) -> bytes:
    """length, type, data, CRC-32 of type + data (§2.2); *length* overrides the field."""
    size = len(data) if length is None else length
    return struct.pack("<I4s", size, kind) + data + struct.pack("<I", zlib.crc32(kind + data))


def index_bits(k: int) -> int:
    return max(1, (k - 1).bit_length())


def head(width, height, channels, k, layout, coder, *, extra=b"", block=(1, 1), source=0) -> bytes:
    """The HEAD section (§3); *extra* is appended after byte 23; *block* (width, height) (§3.1);
    *source*: codebook_source (§11)."""
    data = struct.pack("<IIBBBBIBBBBB3s", width, height, channels, 8, *block, k, index_bits(k),
                       layout, coder, 1, source, b"\0\0\0")
    return section(b"HEAD", data + extra)


def vqi(minor: int, *sections: bytes) -> bytes:
    return MAGIC + bytes([1, minor]) + b"".join(sections)


def book(entries) -> bytes:
    return section(b"BOOK", bytes(v for entry in entries for v in entry))


DONE = section(b"DONE", b"")


# ---------------------------------------------------------------- shared codebooks (§11)


def vqb_file(entries, *, block=(1, 1)) -> bytes:
    """A codebook file (§11.1): signature, body (channels ... entries), CRC-32 of all before it."""
    channels = len(entries[0]) // (block[0] * block[1])
    body = struct.pack("<BBBBBBI", channels, 8, block[0], block[1], 0, 0, len(entries))
    body += bytes(v for entry in entries for v in entry)
    signature = b"\x89VQB\r\n\x1a\n" + bytes([1, 0])
    return signature + body + struct.pack("<I", zlib.crc32(signature + body))


def identity(vqb: bytes) -> bytes:
    """§11.2: the SHA-256 of the body, bytes 10 up to the CRC."""
    return hashlib.sha256(vqb[10:-4]).digest()


# ---------------------------------------------------------------- index payloads (§5.0-§5.2)


def payload(grid, k: int, layout: int) -> bytes:
    bits = index_bits(k)
    if layout == 0:  # packed, MSB first, rows not padded
        string = "".join(format(i, f"0{bits}b") for row in grid for i in row)
        string += "0" * (-len(string) % 8)
        return bytes(int(string[i : i + 8], 2) for i in range(0, len(string), 8))
    width = (bits + 7) // 8
    if layout == 1:
        order = [i for row in grid for i in row]
    else:  # stripes: rows in pairs, column by column, upper then lower
        order = []
        for top in range(0, len(grid), 2):
            pair = grid[top : top + 2]
            order += [row[x] for x in range(len(grid[0])) for row in pair]
    return b"".join(i.to_bytes(width, "little") for i in order)


# ---------------------------------------------------------------- zstd frames by hand (RFC 8878)


def zstd_frame(content: bytes, *, rle: bool = False, dictionary_id: int | None = None) -> bytes:
    """One single-segment frame stating its content size, of raw blocks (or RLE
    blocks repeating content[0] len(content) times, *rle*), no checksum."""
    size = len(content)
    fcs_flag, fcs = ((0, struct.pack("<B", size)) if size < 256 else
                     (1, struct.pack("<H", size - 256)) if size < 65536 + 256 else
                     (2, struct.pack("<I", size)))
    did = b"" if dictionary_id is None else struct.pack("<B", dictionary_id)
    descriptor = fcs_flag << 6 | 1 << 5 | (1 if did else 0)  # single segment, no checksum
    blocks, pos, step = [], 0, 128 * 1024
    while True:
        piece = content[pos : pos + step]
        pos += len(piece)
        last = pos >= size
        block_type = 1 if rle else 0
        header = (last | block_type << 1 | len(piece) << 3).to_bytes(3, "little")
        blocks.append(header + (piece[:1] if rle else piece))
        if last:
            break
    return ZSTD_MAGIC + bytes([descriptor]) + did + fcs + b"".join(blocks)


def zstd_skippable(user_data: bytes) -> bytes:
    return struct.pack("<II", 0x184D2A50, len(user_data)) + user_data


def zstd_compressed(content: bytes, **options) -> bytes:
    """A real compressed frame (library bytes: committed, never rewritten by accident)."""
    import zstandard

    options.setdefault("write_content_size", True)
    return zstandard.ZstdCompressor(level=19, **options).compress(content)


def srgb_profile() -> bytes:
    """Pillow's sRGB profile: the committed copy once there is one (the profile
    Pillow makes holds the time it was made)."""
    committed = HERE / "rgb-2x2-iccp.icc"
    if committed.exists():
        return committed.read_bytes()
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ---------------------------------------------------------------- the context model (§5.4)


def rank_order(entries) -> list[list[int]]:
    """order[a] = the entries sorted by squared distance from entry a, ties by index."""
    def distance(a, b):
        return sum((p - q) ** 2 for p, q in zip(entries[a], entries[b]))
    return [sorted(range(len(entries)), key=lambda b: (distance(a, b), b)) for a in range(len(entries))]


def neighbours(grid, top, bottom, x, y):
    """L, U, UR, UL of pixel (x, y) in the band of rows top..bottom-1 (0 outside it)."""
    def at(xx, yy):
        return grid[yy][xx] if top <= yy < bottom and 0 <= xx < len(grid[0]) else 0
    return at(x - 1, y), at(x, y - 1), at(x + 1, y - 1), at(x - 1, y - 1)


def band_symbols(grid, top, bottom, order, modes=None):
    """[(context, mode, rank or None)] in raster order; *modes* (same shape as grid)
    forces a pixel's mode (a non-canonical stream), None: the first that holds."""
    out = []
    for y in range(top, bottom):
        m_left = 4
        for x in range(len(grid[0])):
            X = grid[y][x]
            L, U, UR, UL = neighbours(grid, top, bottom, x, y)
            context = ((L == U) + 2 * (U == UR) + 4 * (L == UL) + 8 * (UL == U)) * 5 + m_left
            m = modes[y][x] if modes else next((i for i, v in enumerate((L, U, UR, UL)) if v == X), 4)
            assert m == 4 or (L, U, UR, UL)[m] == X, (x, y, m)
            out.append((context, m, order[L].index(X) if m == 4 else None))
            m_left = m
    return out


def scale(counts: list[int]) -> list[int]:
    """Counts -> frequencies summing to 4096, every non-zero count at least 1; the
    rounding goes to the largest remainders, ties to the lower symbol (Appendix B)."""
    total = sum(counts)
    if not total:
        return [0] * len(counts)
    freq = [max(c * 4096 // total, 1) if c else 0 for c in counts]
    missing = 4096 - sum(freq)
    by_remainder = sorted((s for s, c in enumerate(counts) if c), key=lambda s: (-(counts[s] * 4096 % total), s))
    for s in by_remainder[:max(missing, 0)]:
        freq[s] += 1
    while missing < 0:
        j = freq.index(max(freq))
        take = min(-missing, freq[j] - 1)
        freq[j] -= take
        missing += take
    return freq


def v14(value: int) -> bytes:
    assert 0 <= value < 1 << 14
    return bytes([value]) if value < 128 else bytes([0x80 | value & 0x7F, value >> 7])


def table_bytes(freq: list[int], mask_bytes: int) -> bytes:
    """A frequency table as coders 2 and 3 write it (§5.4.3, §5.5.4): the mask of its
    symbols of non-zero frequency in *mask_bytes* bytes, then their frequencies but the
    last, each a v14.  All zero: the mask 0 alone."""
    present = [s for s, f in enumerate(freq) if f]
    out = sum(1 << s for s in present).to_bytes(mask_bytes, "little")
    return out + b"".join(v14(freq[s]) for s in present[:-1])


def starts(freq: list[int]) -> list[int]:
    return [sum(freq[:s]) for s in range(len(freq))]


def rans_band(symbols, mode_freq, literal_freq, *, state_byte_moved: bool = False) -> bytes:
    """One band: the u32 initial state, then the stream (§5.4.4 run backwards).

    *state_byte_moved*: write the state's low byte as the first stream byte
    instead, the state then being below 2^23 (valid when the band's first pixel
    has a one-mode table, whose step leaves x as it is; §5.4.4, A11)."""
    coded = []
    for context, mode, rank in symbols:
        coded.append((mode_freq[context][mode], starts(mode_freq[context])[mode]))
        if rank is not None:
            coded.append((literal_freq[rank], starts(literal_freq)[rank]))
    return rans_stream(coded, state_byte_moved=state_byte_moved)


def rans_stream(coded, *, state_byte_moved: bool = False) -> bytes:
    """A band's initial state and stream coding the (frequency, start) pairs *coded*,
    given in decoding order (§5.4.5: last to first from x = 2^23)."""
    x, out = 1 << 23, bytearray()
    for freq, start in reversed(coded):
        while x >= (1 << 19) * freq:
            out.append(x & 0xFF)
            x >>= 8
        x = (x // freq << 12) + x % freq + start
    out.reverse()
    if state_byte_moved:
        assert coded[0][0] == 4096
        return struct.pack("<I", x >> 8) + bytes([x & 0xFF]) + bytes(out)
    return struct.pack("<I", x) + bytes(out)


def ctx_data(grid, entries, band_rows, *, modes=None, state_byte_moved=()) -> bytes:
    """INDX.data of index coder 2 (§5.4.3) with the reference encoder's tables."""
    order = rank_order(entries)
    height = len(grid)
    bands = [band_symbols(grid, top, min(height, top + band_rows), order, modes)
             for top in range(0, height, band_rows)]
    mode_counts = [[0] * 5 for _ in range(80)]
    literal_counts = [0] * len(entries)
    for symbols in bands:
        for context, mode, rank in symbols:
            mode_counts[context][mode] += 1
            if rank is not None:
                literal_counts[rank] += 1
    mode_freq = [scale(row) for row in mode_counts]
    literal_freq = scale(literal_counts)
    used = [any(row) for row in mode_freq]
    out = bytearray(sum(1 << c % 8 for c in range(80) if used[c] and c // 8 == i) for i in range(10))
    for c in range(80):
        if used[c]:
            out += table_bytes(mode_freq[c], 1)
    t = max((r + 1 for r in range(len(entries)) if literal_freq[r]), default=0)
    out += v14(t)
    for r in range(t - 1):
        out += v14(literal_freq[r])
    out += struct.pack("<I", band_rows)
    for i, symbols in enumerate(bands):
        band = rans_band(symbols, mode_freq, literal_freq, state_byte_moved=i in state_byte_moved)
        out += struct.pack("<I", len(band)) + band
    return bytes(out)


# ---------------------------------------------------------------- candidates under a context map (§5.5)


RAW_CONTEXTS = 7168
ALL_ZERO_MAP = [(0, RAW_CONTEXTS)]  # one table for every context


def zstd_runs(runs) -> bytes:
    """A single-segment zstd frame stating its size whose content is runs of one byte
    value, [(value, count), ...], one RLE block each (RFC 8878)."""
    size = sum(count for _, count in runs)
    assert 256 <= size < 65536 + 256 and all(0 < count <= 128 * 1024 for _, count in runs)
    blocks = b""
    for i, (value, count) in enumerate(runs):
        last = i == len(runs) - 1
        blocks += (last | 1 << 1 | count << 3).to_bytes(3, "little") + bytes([value])
    return ZSTD_MAGIC + bytes([1 << 6 | 1 << 5]) + struct.pack("<H", size - 256) + blocks


def cand_pixel(grid, top, bottom, x, y, order, s_left):
    """§5.5.1-§5.5.3 for pixel (x, y) of the band top..bottom-1: (context c, symbol s,
    and for an escape (q, v), else None)."""
    def at(xx, yy):
        return grid[yy][xx] if top <= yy < bottom and 0 <= xx < len(grid[0]) else 0
    W, N, NE, NW, WW, NN = at(x - 1, y), at(x, y - 1), at(x + 1, y - 1), at(x - 1, y - 1), at(x - 2, y), \
        at(x, y - 2)
    cand = [W]
    for value in (N, NE, NW, WW, NN):
        if value not in cand:
            cand.append(value)
    tests = [(W, N), (W, NE), (W, NW), (W, WW), (WW, NW), (N, NE), (NW, N), (N, NN), (NW, NE), (NN, NE)]
    pattern = sum(1 << bit for bit, (a, b) in enumerate(tests) if a == b)
    X = grid[y][x]
    if X in cand:
        return pattern + 1024 * s_left, cand.index(X), None
    others = [e for e in order[W] if e not in cand]
    return pattern + 1024 * s_left, 6, (order[W].index(N).bit_length(), others.index(X))


def cand_token(v: int) -> tuple[int, int, int]:
    """(token t, raw bit count b, raw bits u) of an escape value v (§5.5.3)."""
    if v < 4:
        return v, 0, 0
    e = v.bit_length() - 1
    t = 4 + 2 * (e - 2) + (v >> (e - 1) & 1)
    return t, e - 1, v & ((1 << (e - 1)) - 1)


def cand_band(grid, top, bottom, order):
    """[(c, s, escape)] of the band's pixels in raster order."""
    out = []
    for y in range(top, bottom):
        s_left = 6
        for x in range(len(grid[0])):
            pixel = cand_pixel(grid, top, bottom, x, y, order, s_left)
            out.append(pixel)
            s_left = pixel[1]
    return out


def expand(runs) -> list[int]:
    return [value for value, count in runs for _ in range(count)]


def cand_indx(tables, frame, symbol_freq, escape_freq, band_rows, bands) -> bytes:
    """INDX.data of coder 3 (§5.5.4) from its parts; *bands* are (state + stream) bytes."""
    out = bytes([tables]) + struct.pack("<I", len(frame)) + frame
    out += b"".join(table_bytes(row, 1) for row in symbol_freq)
    out += b"".join(table_bytes(row, 2) for row in escape_freq)
    out += struct.pack("<I", band_rows)
    return out + b"".join(struct.pack("<I", len(band)) + band for band in bands)


def cand_data(grid, entries, band_rows, *, runs=ALL_ZERO_MAP, unused=None) -> bytes:
    """INDX.data of index coder 3 with the context map of *runs* (§5.5.4) and each
    table's frequencies scaled from the counts of the symbols it codes; *unused*:
    {table: frequencies} for tables no pixel uses."""
    order = rank_order(entries)
    height = len(grid)
    context_map = expand(runs)
    tables = max(context_map) + 1
    bands = [cand_band(grid, top, min(height, top + band_rows), order) for top in range(0, height, band_rows)]
    symbol_counts = [[0] * 7 for _ in range(tables)]
    escape_counts = [[0] * 16 for _ in range(9)]
    for pixels in bands:
        for c, s, escape in pixels:
            symbol_counts[context_map[c]][s] += 1
            if escape:
                escape_counts[escape[0]][cand_token(escape[1])[0]] += 1
    symbol_freq = [scale(row) for row in symbol_counts]
    for table, freq in (unused or {}).items():
        assert not any(symbol_counts[table])
        symbol_freq[table] = freq
    escape_freq = [scale(row) for row in escape_counts]
    streams = []
    for pixels in bands:
        coded = []
        for c, s, escape in pixels:
            freq = symbol_freq[context_map[c]]
            coded.append((freq[s], starts(freq)[s]))
            if escape:
                t, b, u = cand_token(escape[1])
                coded.append((escape_freq[escape[0]][t], starts(escape_freq[escape[0]])[t]))
                if b:
                    coded.append((1 << (12 - b), u << (12 - b)))
        streams.append(rans_stream(coded))
    return cand_indx(tables, zstd_runs(runs), symbol_freq, escape_freq, band_rows, streams)


# ---------------------------------------------------------------- writing


VECTORS = {}
ONLY: set[str] = set()  # refuse/NAME vectors to write; empty: all


def vector(fn):
    VECTORS[fn.__name__.replace("_", "-")] = fn
    return fn


def block_pixels(entries, grid, width, height, channels, block):
    """§8 for blocks: pixel (x, y) is pixel (x mod bw, y mod bh) of the entry of block
    (x div bw, y div bh); blocks past the right and bottom edges are cut off (§3.1)."""
    bw, bh = block

    def pixel(x, y):
        entry = entries[grid[y // bh][x // bw]]
        at = ((y % bh) * bw + x % bw) * channels
        return list(entry[at : at + channels])

    return [[pixel(x, y) for x in range(width)] for y in range(height)]


def image(name, data, entries, grid, channels, *, icc=None, size=None, block=(1, 1)):
    """Write NAME.vqi and NAME.json; *size* (width, height) of a block image (§3.1)."""
    width, height = size or (len(grid[0]), len(grid))
    pixels = block_pixels(entries, grid, width, height, channels, block)
    meta = {"width": width, "height": height, "mode": MODES[channels], "pixels": pixels}
    (HERE / f"{name}.vqi").write_bytes(data)
    (HERE / f"{name}.json").write_text(json.dumps(meta) + "\n")
    if icc is not None:
        (HERE / f"{name}.icc").write_bytes(icc)
    print(f"{name}.vqi", len(data), "bytes")


def refuse(name, data, rule, error):
    if ONLY and f"refuse/{name}" not in ONLY:
        return
    REFUSE.mkdir(exist_ok=True)
    (REFUSE / f"{name}.vqi").write_bytes(data)
    (REFUSE / f"{name}.json").write_text(json.dumps({"rule": rule, "error": error}) + "\n")
    print(f"refuse/{name}.vqi", len(data), "bytes")


def simple(name, entries, grid, layout, coder=0, *, minor=0, before_book=b"", head_extra=b"",
           indx=None, icc=None, size=None, block=(1, 1)):
    """A vector of *grid* (the index map) over *entries*; with *block*, entries are blocks of
    pixels and *size* is the image's (width, height) (§3.1)."""
    channels, k = len(entries[0]) // (block[0] * block[1]), len(entries)
    if indx is None:
        raw = payload(grid, k, layout)
        indx = zstd_frame(raw) if coder == 0 else bz2.compress(raw, 9)
    width, height = size or (len(grid[0]), len(grid))
    data = vqi(minor, head(width, height, channels, k, layout, coder, extra=head_extra, block=block),
               before_book, book(entries), section(b"INDX", indx), DONE)
    image(name, data, entries, grid, channels, icc=icc, size=size, block=block)


RGB4 = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
CTX4 = [(0, 0, 0), (60, 60, 60), (255, 255, 255), (255, 0, 0)]
CTX4_GRID = [[0, 0, 2, 3], [0, 1, 2, 3], [1, 1, 3, 2]]
L2 = [(16,), (235,)]
L4 = [(0,), (80,), (170,), (255,)]
# coder 3's vector: twelve colours, so that an escape from W skips up to six candidates and
# still has values of 4 and more (raw bits) left
CAND_BOOK = [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0),
             (0, 255, 255), (255, 0, 255), (128, 128, 128), (64, 32, 16), (16, 64, 32), (200, 100, 50)]
CAND_GRID = [[9, 7, 2, 1, 2], [9, 4, 0, 4, 4], [0, 3, 8, 1, 3], [0, 8, 5, 1, 4]]


@vector
def rgb_2x2_bytes():
    simple("rgb-2x2-bytes", RGB4, [[0, 1], [2, 3]], 1)


@vector
def la_3x2_packed():  # 2 bits per index, rows not padded
    simple("la-3x2-packed", [(0, 0), (128, 255), (255, 128)], [[0, 1, 2], [2, 1, 0]], 0)


@vector
def l_5x1_ancillary():  # an unknown ancillary section to skip
    simple("l-5x1-ancillary", L2, [[0, 1, 1, 0, 1]], 0,
           before_book=section(b"tEXt", b"a reader skips me"))


@vector
def rgba_2x1_bytes():  # transparent, then opaque
    simple("rgba-2x1-bytes", [(10, 20, 30, 255), (0, 0, 0, 0)], [[1, 0]], 1)


@vector
def rgb_3x3_stripes_bzip2():
    simple("rgb-3x3-stripes-bzip2", [(0, 0, 0), *RGB4], [[0, 1, 2], [3, 4, 0], [1, 2, 3]], 2, 1)


@vector
def rgb_4x3_ctx():  # every mode occurs
    simple("rgb-4x3-ctx", CTX4, CTX4_GRID, 1, 2, minor=1, indx=ctx_data(CTX4_GRID, CTX4, 3))


@vector
def rgb_4x3_ctx_minor0():  # coder 2 in a file stamped 1.0 (§2.1)
    simple("rgb-4x3-ctx-minor0", CTX4, CTX4_GRID, 1, 2, minor=0, indx=ctx_data(CTX4_GRID, CTX4, 3))


@vector
def l_3x2_ctx_noncanonical():  # m_left is the decoded mode (§5.4.1)
    grid = [[1, 1, 0], [1, 1, 0]]
    modes = [[4, 4, 1], [1, 1, 1]]  # (1, 0): a literal equal to L; (1, 1): mode 1 although X = L
    simple("l-3x2-ctx-noncanonical", L2, grid, 1, 2, minor=1,
           indx=ctx_data(grid, L2, 2, modes=modes))


@vector
def l_3x3_ctx_bands():  # two bands; the second's neighbours above are 0; its state is < 2^23
    grid = [[0, 1, 1], [0, 0, 1], [0, 1, 0]]
    simple("l-3x3-ctx-bands", L2, grid, 1, 2, minor=1,
           indx=ctx_data(grid, L2, 2, state_byte_moved={1}))


@vector
def l_2x2_head32():  # a HEAD of 32 bytes, the 8 appended all zero (§3)
    simple("l-2x2-head32", L2, [[0, 1], [1, 0]], 1, head_extra=bytes(8))


@vector
def rgb_4x2_bzip2_streams():  # three bzip2 streams, the middle one empty (§5.3)
    grid = [[0, 1, 2, 3], [3, 2, 1, 0]]
    raw = payload(grid, 4, 1)
    simple("rgb-4x2-bzip2-streams", RGB4, grid, 1, 1,
           indx=bz2.compress(raw[:5], 9) + bz2.compress(b"", 9) + bz2.compress(raw[5:], 9))


@vector
def rgb_2x2_iccp():  # an iccp section with a real profile; both frames compressed, with checksums
    icc = srgb_profile()
    grid = [[0, 1], [2, 3]]
    simple("rgb-2x2-iccp", RGB4, grid, 1, 0, before_book=section(b"iccp", zstd_compressed(icc, write_checksum=True)),
           indx=zstd_compressed(payload(grid, 4, 1), write_checksum=True), icc=icc)


# ---- block vectors (§3.1, version 1.2): entries are blocks, pixels in raster order


@vector
def rgb_5x3_block2x2():  # a 3x2 map; the right column and bottom row of blocks are cut
    quad = (255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255)  # red green / blue white
    dark = (0, 0, 0, 0, 0, 0, 128, 128, 128, 128, 128, 128)  # black black / grey grey
    ramp = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120)
    simple("rgb-5x3-block2x2", [quad, dark, ramp], [[0, 1, 2], [2, 0, 1]], 1, minor=2,
           size=(5, 3), block=(2, 2))


@vector
def l_7x2_block3x1_packed():  # packed layout: the payload holds the 3x2 map's 6 indices
    simple("l-7x2-block3x1-packed", [(0, 128, 255), (16, 16, 16), (235, 100, 50)],
           [[0, 1, 2], [2, 2, 0]], 0, minor=2, size=(7, 2), block=(3, 1))


@vector
def rgba_5x6_block4x4_ctx():  # coder 2 over a 2x2 map of 64-byte entries (ranks over 64 bytes)
    clear = (0,) * 64
    opaque = tuple(v for p in range(16) for v in (16 * p, 255 - 16 * p, 60, 255))
    half = tuple(v for p in range(16) for v in (200, 100, 4 * p, 128 if p % 2 else 0))
    entries, grid = [clear, opaque, half], [[1, 0], [2, 1]]
    simple("rgba-5x6-block4x4-ctx", entries, grid, 1, 2, minor=2, size=(5, 6), block=(4, 4),
           indx=ctx_data(grid, entries, 2))


# ---- index coder 3 (§5.5, version 1.3)


@vector
def rgb_5x4_cand():  # every symbol 0-5; escapes with and without raw bits; one table
    simple("rgb-5x4-cand", CAND_BOOK, CAND_GRID, 1, 3, minor=3, indx=cand_data(CAND_GRID, CAND_BOOK, 4))


@vector
def l_4x6_cand_bands():  # two bands; a map of three tables, table 2 named only by context 6143
    grid = [[0, 1, 1, 0], [2, 2, 1, 0], [3, 2, 1, 1], [0, 0, 1, 0], [3, 3, 1, 0], [1, 2, 3, 0]]
    runs = [(0, 6143), (2, 1), (1, 1024)]  # s_left = 6 (column 0, after an escape): table 1
    simple("l-4x6-cand-bands", L4, grid, 1, 3, minor=3,
           indx=cand_data(grid, L4, 3, runs=runs, unused={2: [0, 0, 0, 0, 0, 0, 4096]}))


def shared(name, entries, grid, layout, coder=0, *, indx=None, size=None, block=(1, 1)):
    """A file naming its codebook (codebook_source 1, BREF) and the codebook file beside it;
    *block* and *size* as for :func:`simple`."""
    channels, k = len(entries[0]) // (block[0] * block[1]), len(entries)
    if indx is None:
        indx = zstd_frame(payload(grid, k, layout))
    book_file = vqb_file(entries, block=block)
    width, height = size or (len(grid[0]), len(grid))
    data = vqi(2, head(width, height, channels, k, layout, coder, source=1, block=block),
               section(b"BREF", identity(book_file)), section(b"INDX", indx), DONE)
    (HERE / f"{name}.vqb").write_bytes(book_file)
    image(name, data, entries, grid, channels, size=size, block=block)


SHARED4 = [(255, 128, 0), (0, 64, 128), (200, 200, 200), (10, 10, 10)]
L3 = [(200,), (0,), (100,)]  # not sorted: the context model's ranks come from these values


@vector
def rgb_4x2_shared():  # §11: BREF instead of BOOK; packed indices
    shared("rgb-4x2-shared", SHARED4, [[0, 1, 2, 3], [3, 3, 1, 0]], 0)


@vector
def l_3x2_shared_ctx():  # §11 with coder 2: literal ranks from the shared codebook's entries
    grid = [[0, 2, 1], [1, 2, 0]]
    shared("l-3x2-shared-ctx", L3, grid, 1, 2, indx=ctx_data(grid, L3, 2))


@vector
def la_3x3_shared_block2x2():  # §11 with §3.1: a shared codebook of 2x2 LA blocks, edges cut
    clear = (0, 0, 0, 0, 0, 0, 0, 0)  # four transparent pixels
    mixed = (10, 255, 20, 128, 30, 64, 40, 0)  # (L, A) of the block's pixels in raster order
    grid = [[1, 0], [0, 1]]  # a 2x2 map for a 3x3 image: the right column and bottom row are cut
    shared("la-3x3-shared-block2x2", [clear, mixed], grid, 1, size=(3, 3), block=(2, 2))


# ---- must-refuse vectors: a tiny valid L file (2×1, k = 2, layout 1, zstd) broken one way


def tiny(*, coder=0, head_extra=b"", after_head=(), after_indx=(), indx=None, tail=b""):
    indx = zstd_frame(b"\x00\x01") if indx is None else indx
    return vqi(0, head(2, 1, 1, 2, 1, coder, extra=head_extra), *after_head,
               book(L2), section(b"INDX", indx), *after_indx, DONE) + tail


def iccp_section(frame=None) -> bytes:
    return section(b"iccp", zstd_compressed(srgb_profile()) if frame is None else frame)


def refuse_vectors():  # every refuse/NAME given on the command line (--all: every one)
    refuse("head-nonzero-extension", tiny(head_extra=b"\x01" + bytes(7)),
           "§3: a HEAD byte at offset 24 or later is not zero", "UnsupportedVersionError")
    refuse("iccp-after-indx", tiny(after_indx=[iccp_section()]),
           "§2.3: iccp comes after INDX", "FormatError")
    refuse("iccp-twice", tiny(after_head=[iccp_section(), iccp_section()]),
           "§2.3: a second iccp", "FormatError")
    refuse("iccp-no-content-size",
           tiny(after_head=[iccp_section(zstd_compressed(srgb_profile(), write_content_size=False))]),
           "§1, §6: the iccp zstd frame does not state its content size", "FormatError")
    refuse("iccp-trailing-byte", tiny(after_head=[iccp_section(zstd_compressed(srgb_profile()) + b"\0")]),
           "§1, §6: a byte after the iccp zstd frame", "FormatError")
    refuse("iccp-too-large", tiny(after_head=[iccp_section(zstd_frame(bytes(16 * 2**20 + 1), rle=True))]),
           "§6: the iccp zstd frame states 16 MiB + 1 bytes (at most 16 MiB)", "FormatError")
    refuse("indx-zstd-skippable", tiny(indx=zstd_skippable(b"skip") + zstd_frame(b"\x00\x01")),
           "§1: INDX data starts with a skippable frame, not a zstd frame", "FormatError")
    refuse("indx-zstd-trailing-byte", tiny(indx=zstd_frame(b"\x00\x01") + b"\0"),
           "§1, §5.3: a byte after the zstd frame", "FormatError")
    refuse("indx-zstd-second-frame", tiny(indx=zstd_frame(b"\x00\x01") + zstd_frame(b"")),
           "§1, §5.3: a second (empty) zstd frame after the first", "FormatError")
    refuse("indx-zstd-dictionary", tiny(indx=zstd_frame(b"\x00\x01", dictionary_id=1)),
           "§1: the zstd frame names a dictionary (Dictionary_ID 1)", "FormatError")
    bad_checksum = bytearray(zstd_compressed(b"\x00\x01", write_checksum=True))
    bad_checksum[-1] ^= 0x01
    refuse("indx-zstd-bad-checksum", tiny(indx=bytes(bad_checksum)),
           "§1: the zstd frame's content checksum does not match", "FormatError")
    refuse("bzip2-past-payload", tiny(coder=1, indx=bz2.compress(b"\x00\x01", 9) + bz2.compress(b"\x00", 9)),
           "§5.3: the bzip2 streams inflate to 3 bytes, the payload is 2", "FormatError")
    refuse("bzip2-garbage-after", tiny(coder=1, indx=bz2.compress(b"\x00\x01", 9) + b"\0"),
           "§5.3: a byte after the last bzip2 stream", "FormatError")
    refuse("trailing-after-done", tiny(tail=b"\0"), "§2.3: a byte after DONE", "FormatError")
    # after INDX, the file ends with an unknown ancillary section that claims 8 bytes of data
    # but holds 4: its data and CRC would end exactly at the end of the file if "bytes left"
    # were counted from the section's start instead of after its 8-byte head
    good = tiny()
    refuse("section-length-lenient", good[:-12] + struct.pack("<I4s", 8, b"tEXt") + b"abcd",
           "§2.2, §7: length + 4 > file size - (offset + 8)", "FormatError")
    # coder 2, a 2×1 map: a band of 3 bytes (too short for its state)
    tables = ctx_data([[0, 0]], L2, 1)
    short = tables[:-8] + struct.pack("<I", 3) + tables[-4:-1]  # ... band_rows, length 3, 3 bytes
    data = vqi(1, head(2, 1, 1, 2, 1, 2), book(L2), section(b"INDX", short), DONE)
    refuse("ctx-band-short", data, "§5.4.3: a band of 3 bytes (at least 4: its state)", "FormatError")
    # coder 3 (§5.5): the tiny image 0 1 (2×1, k = 2) in one band under one table.  Pixel (0, 0)
    # (all neighbours 0, d = 1, context 7167) is symbol 0; pixel (1, 0) (context 7161) an escape,
    # q = 0, value 0 (entry 1, the only entry that is no candidate)
    both = [2048, 0, 0, 0, 0, 0, 2048]  # symbols 0 and 6
    token0 = [4096] + [0] * 15
    no_escape = [[0] * 16] * 8

    def tiny_cand(indx, *, layout=1):
        return vqi(3, head(2, 1, 1, 2, layout, 3), book(L2), section(b"INDX", indx), DONE)

    good_stream = rans_stream([(2048, 0), (2048, 2048), (4096, 0)])
    assert cand_indx(1, zstd_runs(ALL_ZERO_MAP), [both], [token0] + no_escape, 1, [good_stream]) == \
        cand_data([[0, 1]], L2, 1)
    refuse("cand-map-value", tiny_cand(cand_indx(1, zstd_runs([(0, 7167), (1, 1)]), [both],
                                                 [token0] + no_escape, 1, [good_stream])),
           "§5.5.4: the context map names table 1 (for context 7167), T = 1", "FormatError")
    refuse("cand-no-candidate",
           tiny_cand(cand_indx(1, zstd_runs(ALL_ZERO_MAP), [[0, 2048, 0, 0, 0, 0, 2048]], [token0] + no_escape,
                               1, [rans_stream([(2048, 0), (2048, 2048), (4096, 0)])])),
           "§5.5.1, §5.5.5: pixel (0, 0) decodes symbol 1; it has d = 1 candidate", "FormatError")
    refuse("cand-escape-past-others",
           tiny_cand(cand_indx(1, zstd_runs(ALL_ZERO_MAP), [both], [[2048, 2048] + [0] * 14] + no_escape, 1,
                               [rans_stream([(2048, 2048), (2048, 2048), (2048, 2048), (2048, 0)])])),
           "§5.5.3, §5.5.5: pixel (0, 0) escapes with value 1; k - d = 1", "FormatError")
    refuse("cand-layout-packed", tiny_cand(cand_data([[0, 1]], L2, 1), layout=0),
           "§3, §5.5: index_coder 3 with index_layout 0", "FormatError")
    # block vectors (§3.1): an L image 3×1 in 2×1 blocks is a 2×1 map of entries of 2 bytes
    blocks = [(16, 235), (235, 16)]
    block_book = section(b"BOOK", bytes(v for e in blocks for v in e))
    refuse("block-zero", vqi(2, head(3, 1, 1, 2, 1, 0, block=(0, 1)), book(L2),
                             section(b"INDX", zstd_frame(b"")), DONE),
           "§3.1: block_width 0 (1 to 8)", "FormatError")
    refuse("block-too-large", vqi(2, head(3, 1, 1, 2, 1, 0, block=(9, 1)),
                                  section(b"BOOK", bytes(18)), section(b"INDX", zstd_frame(b"\0")), DONE),
           "§3.1: block_width 9 (1 to 8)", "UnsupportedVersionError")
    refuse("block-book-length", vqi(2, head(3, 1, 1, 2, 1, 0, block=(2, 1)), book(L2),
                                    section(b"INDX", zstd_frame(b"\0\1")), DONE),
           "§4: a BOOK of k × channels = 2 bytes in 2×1 blocks (k × 2 × 1 × channels = 4)", "FormatError")
    refuse("block-map-size", vqi(2, head(3, 1, 1, 2, 1, 0, block=(2, 1)), block_book,
                                 section(b"INDX", zstd_frame(b"\0\1\0")), DONE),
           "§3.1, §5: the payload holds 3 indices (one per pixel); the 2×1 map needs 2", "FormatError")


    # shared codebooks (§11): the tiny file with codebook_source 1 and a BREF instead of BOOK
    def tiny_shared(bref, *, k=2, book_section=None):
        return vqi(2, head(2, 1, 1, k, 1, 0, source=1), book_section or section(b"BREF", bref),
                   section(b"INDX", zstd_frame(b"\x00\x01")), DONE)

    l2 = vqb_file(L2)
    refuse("bref-short", tiny_shared(identity(l2)[:31]),
           "§11.4: BREF holds 31 bytes (exactly 32: a SHA-256)", "FormatError")
    refuse("bref-unknown-codebook", tiny_shared(hashlib.sha256(b"no such codebook").digest()),
           "§11.4: no codebook has the identity BREF names", "CodebookError")
    refuse("bref-with-book", tiny_shared(b"", book_section=book(L2)),
           "§2.3, §11.4: codebook_source 1 with a BOOK section instead of BREF", "FormatError")
    if not ONLY or "refuse/bref-k-mismatch" in ONLY:
        (REFUSE / "bref-k-mismatch.vqb").write_bytes(l2)
    refuse("bref-k-mismatch", tiny_shared(identity(l2), k=3),
           "§11.4: HEAD says k = 3, the codebook BREF names (beside it) holds k = 2", "FormatError")
    damaged = bytearray(l2)
    damaged[-1] ^= 0x01
    if not ONLY or "refuse/bref-codebook-damaged" in ONLY:
        (REFUSE / "bref-codebook-damaged.vqb").write_bytes(bytes(damaged))
    refuse("bref-codebook-damaged", tiny_shared(identity(l2)),
           "§11.3: the codebook file beside it has a CRC that does not match", "CodebookError")


VECTORS["refuse"] = refuse_vectors

if __name__ == "__main__":
    names = sys.argv[1:]
    if not names:
        sys.exit(__doc__)
    if names == ["--all"]:
        names = list(VECTORS)
    ONLY.update(n for n in names if n.startswith("refuse/"))
    if ONLY:
        names = [n for n in names if not n.startswith("refuse/")] + ["refuse"]
    for name in names:
        VECTORS[name]()
