"""Index coder 3 (vqcodec/coders/cand.py, spec §5.5): round trips, the C loops against
the Python ones, the definitions of §5.5.1-§5.5.3 against the spec's formulas written
out here, the byte layout of INDX.data read by hand, and every must-refuse rule of
§5.5.4/§5.5.5 on both decoders."""

from __future__ import annotations

import functools
import os
import struct

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vqcodec
from vqcodec import codec, container
from vqcodec.coders import cand, rans
from vqcodec.coders.ctx import rank_order
from vqcodec.errors import FormatError, VqiError
from test_coder_ctx import random_book, random_map
from vqi_files import mutate, rebuild, section, sections

needs_native = pytest.mark.skipif(cand._native is None, reason="vqcodec._candcoder not built")

SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (5, 7), (16, 3), (31, 40)]


def structured_maps(n: int) -> dict[str, np.ndarray]:
    """Maps with long runs, repeats two rows up, diagonals and all-distinct
    neighbourhoods (so that each of the symbols 0-5 and escapes occur)."""
    yy, xx = np.mgrid[:12, :17]
    return {
        "constant": np.full((12, 17), n - 1),
        "stripes": (yy // 2) % n,
        "columns": (xx // 3) % n,
        "checker": (xx + yy) % min(n, 2),
        "diagonal": (xx - yy) % n,
        "ramp": (xx * 7 + yy * 13) % n,
        "squares": ((xx // 4) * 5 + (yy // 4) * 3) % n,
    }


def decode_python(data: bytes, width: int, height: int, book: np.ndarray) -> np.ndarray:
    """Every band through cand.decode_reference (§5.5.5 in Python), stacked."""
    model, offset = cand.read_model(data)
    band_rows, streams = rans.read_streams(data, offset, height, cand.WHO)
    order = rank_order(np.asarray(book).reshape(len(book), -1))
    return np.vstack([cand.decode_reference(stream, width, bottom - top, order, model)
                      for stream, (top, bottom) in zip(streams, rans.bands(height, band_rows))])


def check_round_trip(grid: np.ndarray, book: np.ndarray, band_rows: int | None = None) -> bytes:
    """Encode; the Python and C encoders agree; both decoders give *grid*; pixels=True
    gives the codebook looked up.  Returns the INDX data."""
    h, w = grid.shape
    data = cand.encode(grid, book, band_rows=band_rows, native=False)
    if cand._native is not None:
        assert cand.encode(grid, book, band_rows=band_rows) == data
    np.testing.assert_array_equal(decode_python(data, w, h, book), grid)
    indices = cand.decode(data, w, h, book)
    assert indices.dtype == np.uint8 and indices.shape == (h * w,)
    np.testing.assert_array_equal(indices.reshape(h, w), grid)
    flat = book.reshape(len(book), -1)
    pixels = cand.decode(data, w, h, book, pixels=True)
    np.testing.assert_array_equal(pixels.reshape(h, w, -1), flat[grid])
    return data


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [1, 2, 5, 64, 256])
def test_random_maps_round_trip(shape, n):
    grid = random_map(shape[0] * 31 + shape[1] + n, *shape, n)
    check_round_trip(grid, random_book(n, n))


@pytest.mark.parametrize("n", [1, 2, 3, 16, 256])
def test_structured_maps_round_trip(n):
    for name, grid in structured_maps(n).items():
        check_round_trip(grid.astype(np.uint8), random_book(n + 1, n, 2))


@pytest.mark.parametrize("band_rows", [1, 2, 3, 7, 1000])
def test_any_band_size_round_trips_and_bands_are_framed(band_rows):
    grid = random_map(band_rows, 13, 11, 30)
    data = check_round_trip(grid, random_book(3, 30), band_rows)
    _, offset = cand.read_model(data)
    rows, streams = rans.read_streams(data, offset, 13, cand.WHO)
    assert rows == band_rows and len(streams) == -(-13 // band_rows)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 12, 256, 300])
def test_entries_of_any_size_round_trip(channels):
    """Entries of 1-4 channels, 12-byte block entries (2x2 RGB, §3.1), the largest a
    file holds (8x8 RGBA: 256 bytes) and, from the API only, larger ones (the C
    decoder takes up to 256 bytes; beyond, cand.decode runs the Python loop)."""
    grid = random_map(channels, 9, 14, 20)
    check_round_trip(grid, random_book(channels, 20, channels))


def test_duplicate_entries_tie_by_index():
    """Equal entries: order[W] breaks ties by index, and an escape skips the candidates."""
    book = np.array([[5, 5, 5]] * 4 + [[9, 9, 9]] * 4, np.uint8)
    grid = random_map(2, 10, 10, 8)
    check_round_trip(grid, book)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(h=st.integers(1, 10), w=st.integers(1, 10), n=st.integers(1, 256),
       channels=st.sampled_from([1, 2, 3, 4, 12]), band_rows=st.integers(1, 11),
       seed=st.integers(0, 10**6), noisy=st.booleans())
def test_hypothesis_round_trip(h, w, n, channels, band_rows, seed, noisy):
    rng = np.random.default_rng(seed)
    grid = (rng.integers(0, n, (h, w)) if noisy else random_map(seed, h, w, n)).astype(np.uint8)
    book = rng.integers(0, 256 if seed % 3 else 3, (n, channels)).astype(np.uint8)  # ties too
    check_round_trip(grid, book, band_rows)


@pytest.mark.parametrize("block", [(1, 1), (2, 2), (3, 1)])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_files_round_trip_and_are_stamped_1_3(block, channels):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, (6, channels), dtype=np.uint8)[random_map(channels, 20, 30, 6)]
    image = image[..., 0] if channels == 1 else image
    enc = codec.encode_pixels(image, k=8, coder="cand", block=block)
    assert (enc.header.index_coder, enc.header.index_layout) == (3, 1)
    assert enc.data[8:10] == b"\x01\x03"
    assert vqcodec.read_info(enc.data).version == (1, 3)
    np.testing.assert_array_equal(vqcodec.decode(enc.data).reshape(enc.reconstruct().shape),
                                  enc.reconstruct())
    if block == (1, 1):
        np.testing.assert_array_equal(vqcodec.decode(enc.data), image)
    other = codec.encode_pixels(image, k=8, coder="zstd", block=block)
    assert other.data[8:10] == (b"\x01\x00" if block == (1, 1) else b"\x01\x02")  # unchanged


def test_format_version_is_the_newest_a_coder_writes():
    """FORMAT_VERSION, "the newest version read and written", covers coder 3's 1.3."""
    from vqcodec import coders

    newest = max(c.version for c in coders.all_coders())
    assert newest == (1, 3) and vqcodec.FORMAT_VERSION == newest


def test_k_up_to_256_and_layout_bytes_only():
    image = random_book(1, 300)[np.arange(300).reshape(15, 20)]
    with pytest.raises(vqcodec.OptionError, match="needs k <= 256"):
        codec.encode_pixels(image, k=300, coder="cand")
    with pytest.raises(vqcodec.OptionError, match="layout 'bytes'"):
        codec.encode_pixels(image, k=16, coder="cand", layout="stripes")
    enc = codec.encode_pixels(image, k=256, coder="cand")
    assert enc.header.k == 256
    np.testing.assert_array_equal(vqcodec.decode(enc.data), enc.reconstruct())


def test_the_encoder_refuses_what_it_cannot_code():
    """The library call names the problem in one OptionError: a codebook of more than
    256 entries, a negative index, a band size outside 1 .. 2^32 - 1."""
    grid = random_map(3, 4, 5, 4)
    with pytest.raises(vqcodec.OptionError, match="index coder 3 needs 1 to 256 codebook entries, got 300"):
        cand.encode(grid, random_book(3, 300))
    negative = grid.astype(np.int64)
    negative[1, 2] = -1
    with pytest.raises(vqcodec.OptionError, match="index -1 is negative"):
        cand.encode(negative, random_book(3, 4))
    for band_rows in (0, -3, 1 << 32, 2.5):
        with pytest.raises(vqcodec.OptionError, match="band_rows must be a whole number"):
            cand.encode(grid, random_book(3, 4), band_rows=band_rows)


def test_without_the_c_loops_the_error_names_the_band(monkeypatch):
    """decode's Python path names the band that fails, as the C path does."""
    grid = random_map(5, 6, 5, 4)
    book = random_book(5, 4)
    data = bytearray(cand.encode(grid, book, band_rows=3))
    data[-1] ^= 0x5A  # damage the last band's stream
    monkeypatch.setattr(cand, "_native", None)
    with pytest.raises(FormatError, match=r"index coder 3 stream of band 1 is corrupt"):
        cand.decode(bytes(data), 5, 6, book)


def test_pure_python_encodes_by_name_and_decodes(monkeypatch):
    """Without the C loops (VQCODEC_PURE_PYTHON=1): coder 3 is not available to "auto",
    but asked for by name it encodes with the Python loop (the same bytes) and every
    coder-3 file decodes through decode_reference."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (7, 3), dtype=np.uint8)[random_map(4, 18, 21, 7)]
    native = vqcodec.encode(image, k=7, coder="cand")
    monkeypatch.setattr(cand, "_native", None)
    assert not cand.CODER.available()
    assert vqcodec.encode(image, k=7, coder="cand") == native
    np.testing.assert_array_equal(vqcodec.decode(native), image)
    auto = codec.encode_pixels(image, k=7)
    assert auto.header.index_coder != 3


def test_available_says_whether_the_c_loops_are_there():
    assert cand.CODER.available() == (cand._native is not None)
    assert cand.CODER.auto is False  # asked for by name only


# ---------------------------------------------------------------- the definitions


def spec_token(v: int) -> tuple[int, int, int]:
    """§5.5.3 from the encoder's side: (t, b, u) of an escape value v."""
    if v < 4:
        return v, 0, 0
    e = v.bit_length() - 1
    t = 4 + 2 * (e - 2) + (v >> (e - 1) & 1)
    b = (t - 4) // 2 + 1
    return t, b, v % (1 << b)


def spec_value(t: int, u: int) -> int:
    """§5.5.3 from the decoder's side."""
    if t < 4:
        return t
    b = (t - 4) // 2 + 1
    return (2 + (t - 4) % 2) * 2**b + u


def test_tokens_of_every_escape_value():
    tokens, bits, raws = cand.token_of(np.arange(256))
    for v in range(256):
        t, b, u = spec_token(v)
        assert (tokens[v], bits[v], raws[v]) == (t, b, u), v
        assert 0 <= t < 16 and 0 <= u < 2**b and spec_value(t, u) == v
        assert cand.raw_bits(t) == b and cand.value_of(t, u) == v
    # the table of §5.5.3: tokens 4, 5 give 4-5, 6-7; ... 14, 15 give 128-191, 192-255
    ranges = {t: [v for v in range(256) if spec_token(v)[0] == t] for t in range(16)}
    assert ranges[4] == [4, 5] and ranges[5] == [6, 7] and ranges[6] == list(range(8, 12))
    assert ranges[14] == list(range(128, 192)) and ranges[15] == list(range(192, 256))


def test_escape_context_is_the_bit_length():
    q = cand.escape_context(np.arange(256))
    assert q.tolist() == [p.bit_length() for p in range(256)]
    assert q[0] == 0 and q[1] == 1 and q[255] == 8


def spec_symbols(grid: np.ndarray, order: np.ndarray) -> list[dict]:
    """§5.5.1-§5.5.3 for one band, pixel by pixel, as the spec says it."""
    h, w = grid.shape
    order = order.tolist()

    def at(y, x):
        return int(grid[y, x]) if 0 <= y < h and 0 <= x < w else 0

    out = []
    for y in range(h):
        s_left = 6
        for x in range(w):
            W, N, NE, NW, WW, NN = at(y, x - 1), at(y - 1, x), at(y - 1, x + 1), at(y - 1, x - 1), \
                at(y, x - 2), at(y - 2, x)
            cands = [W]
            for v in (N, NE, NW, WW, NN):
                if v not in cands:
                    cands.append(v)
            pairs = [(W, N), (W, NE), (W, NW), (W, WW), (WW, NW), (N, NE), (NW, N), (N, NN),
                     (NW, NE), (NN, NE)]
            pattern = sum(2**i for i, (a, b) in enumerate(pairs) if a == b)
            X = int(grid[y, x])
            s = cands.index(X) if X in cands else 6
            pixel = {"c": pattern + 1024 * s_left, "s": s, "d": len(cands)}
            if s == 6:
                others = []
                for e in order[W]:  # order[W] with the candidates taken out, by hand
                    if e not in cands:
                        others.append(e)
                v = others.index(X)
                p = order[W].index(N)
                pixel.update(v=v, q=0 if p == 0 else int(np.floor(np.log2(p))) + 1)
            out.append(pixel)
            s_left = s
    return out


@pytest.mark.parametrize("n", [1, 2, 6, 40, 256])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (6, 9), (12, 12)])
def test_symbols_against_the_definition(shape, n):
    grid = random_map(n + sum(shape), *shape, n)
    if n > 6:  # and noise, for six distinct neighbours and far escapes
        grid[::2] = np.random.default_rng(n).integers(0, n, grid[::2].shape)
    order = rank_order(random_book(n, n))
    want = spec_symbols(grid, order)
    for native in (False, True) if cand._native is not None else (False,):  # numpy's and C's
        check_symbols(cand.Symbols.of(grid, order, native=native), want)


def check_symbols(sym: cand.Symbols, want: list[dict]) -> None:
    assert sym.raw.tolist() == [p["c"] for p in want]
    assert sym.symbol.tolist() == [p["s"] for p in want]
    escapes = [p for p in want if p["s"] == 6]
    assert sym.rank.tolist() == [p["v"] for p in escapes]
    assert sym.escape_context.tolist() == [p["q"] for p in escapes]
    assert sym.token.tolist() == [spec_token(p["v"])[0] for p in escapes]
    assert sym.raw_value.tolist() == [spec_token(p["v"])[2] for p in escapes]
    assert all(p["s"] < p["d"] or p["s"] == 6 for p in want)


def test_the_symbols_cover_every_case():
    """The maps of the round trips reach every symbol 0-6, escapes with raw bits, all q."""
    n = 256
    rng = np.random.default_rng(9)
    grid = random_map(9, 40, 40, n)
    grid[::3] = rng.integers(0, n, grid[::3].shape)
    sym = cand.Symbols.of(grid, rank_order(random_book(9, n)))
    assert set(sym.symbol.tolist()) == set(range(7))
    assert (sym.bits > 0).any() and (sym.bits == 0).any() and sym.token.max() >= 14
    assert set(sym.escape_context.tolist()) >= {0, 8}


def test_positions_invert_order():
    order = rank_order(random_book(2, 50))
    position = cand.positions(order)
    for a in range(50):
        for r in range(50):
            assert position[a, order[a, r]] == r


# ---------------------------------------------------------------- INDX.data by hand


def v14_at(data: bytes, pos: int) -> tuple[int, int]:
    if data[pos] < 0x80:
        return data[pos], pos + 1
    assert 1 <= data[pos + 1] <= 127
    return (data[pos] & 0x7F) + 128 * data[pos + 1], pos + 2


def read_table(data: bytes, pos: int, mask_bytes: int, symbols: int) -> tuple[list[int] | None, int]:
    mask = int.from_bytes(data[pos : pos + mask_bytes], "little")
    pos += mask_bytes
    if mask == 0:
        return None, pos
    present = [s for s in range(symbols) if mask >> s & 1]
    freq = [0] * symbols
    for s in present[:-1]:
        freq[s], pos = v14_at(data, pos)
        assert freq[s] >= 1
    freq[present[-1]] = 4096 - sum(freq)
    assert freq[present[-1]] >= 1
    return freq, pos


def parse_indx(data: bytes, height: int) -> dict:
    """§5.5.4 by hand: every part of coder-3 INDX data."""
    T = data[0]
    (length,) = struct.unpack_from("<I", data, 1)
    frame = data[5 : 5 + length]
    content = zstandard.ZstdDecompressor().decompress(frame)
    assert frame[:4] == b"\x28\xb5\x2f\xfd"
    assert zstandard.get_frame_parameters(frame).content_size == 7168 == len(content)
    pos = 5 + length
    symbol_tables = []
    for _ in range(T):
        table, pos = read_table(data, pos, 1, 7)
        symbol_tables.append(table)
    escape_tables = []
    for _ in range(9):
        table, pos = read_table(data, pos, 2, 16)
        escape_tables.append(table)
    (band_rows,) = struct.unpack_from("<I", data, pos)
    pos += 4
    bands = []
    for _ in range(-(-height // band_rows)):
        (n,) = struct.unpack_from("<I", data, pos)
        bands.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    assert pos == len(data)
    return {"T": T, "frame": frame, "map": list(content), "symbol_tables": symbol_tables,
            "escape_tables": escape_tables, "band_rows": band_rows, "bands": bands}


def join_indx(p: dict, *, symbol_bytes: bytes | None = None, escape_bytes: bytes | None = None) -> bytes:
    """INDX data from the parts of parse_indx (tables given as bytes, or rewritten)."""
    def table(freq, mask_bytes):
        if freq is None:
            return bytes(mask_bytes)
        present = [s for s, f in enumerate(freq) if f]
        return (sum(1 << s for s in present).to_bytes(mask_bytes, "little")
                + b"".join(rans.v14(freq[s]) for s in present[:-1]))

    if symbol_bytes is None:
        symbol_bytes = b"".join(table(t, 1) for t in p["symbol_tables"])
    if escape_bytes is None:
        escape_bytes = b"".join(table(t, 2) for t in p["escape_tables"])
    out = bytes([p["T"]]) + struct.pack("<I", len(p["frame"])) + p["frame"] + symbol_bytes + escape_bytes
    out += struct.pack("<I", p["band_rows"])
    return out + b"".join(struct.pack("<I", len(b)) + b for b in p["bands"])


def test_indx_layout_of_a_tiny_map():
    grid = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    book = np.array([[0], [100], [255]], np.uint8)
    data = cand.encode(grid, book, band_rows=1)
    p = parse_indx(data, 2)
    model, offset = cand.read_model(data)
    assert 1 <= p["T"] == len(model.symbol_freq) and max(p["map"]) < p["T"]
    assert p["map"] == model.context_map.tolist()
    assert [t for t in p["symbol_tables"]] == model.symbol_freq.tolist()
    assert [t or [0] * 16 for t in p["escape_tables"]] == model.escape_freq.tolist()
    assert p["band_rows"] == 1 and len(p["bands"]) == 2 and all(len(b) >= 4 for b in p["bands"])
    assert offset == len(data) - 4 - sum(4 + len(b) for b in p["bands"])
    assert join_indx(p) == data  # nothing else in the data
    # the tables the symbols use: (0, 0) is an escape in context 1023 + 1024 * 6 (all neighbours 0)
    want = spec_symbols(grid[:1], rank_order(book)) + spec_symbols(grid[1:], rank_order(book))
    for pixel in want:
        assert p["symbol_tables"][p["map"][pixel["c"]]][pixel["s"]] > 0
        if pixel["s"] == 6:
            assert p["escape_tables"][pixel["q"]][spec_token(pixel["v"])[0]] > 0


@needs_native
def test_the_c_table_reader_agrees_with_python(monkeypatch):
    """read_model reads the tables in C (parse_tables) and falls back to Python, which names
    what is wrong: on valid tables and on broken ones (bytes changed, cut short) both give
    the same model or both refuse."""
    rng = np.random.default_rng(7)
    grid = rng.integers(0, 40, (24, 40)).astype(np.uint8)
    grid[::3] = grid[::3] // 4  # some candidates, some escapes
    data = bytearray(cand.encode(grid, random_book(7, 40), band_rows=8))
    start = 5 + struct.unpack_from("<I", data, 1)[0]  # the symbol tables

    def read(blob: bytes, native):
        monkeypatch.setattr(cand, "_native", native)
        try:
            model, offset = cand.read_model(blob)
        except FormatError as e:
            return str(e)
        return model.symbol_freq.tolist(), model.escape_freq.tolist(), offset

    native = cand._native
    cases = [bytes(data)]
    for _ in range(400):
        blob = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(start, min(len(blob), start + 200)))
            blob[at] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.integers(0, 256)]))
        cases.append(bytes(blob))
    cases += [bytes(data[: start + cut]) for cut in range(0, 120, 3)]
    outcomes = set()
    for blob in cases:
        want = read(blob, None)
        assert read(blob, native) == want
        outcomes.add(isinstance(want, str))
    assert outcomes == {False, True}  # both kinds of case were met


# ---------------------------------------------------------------- must refuse (§5.5.4, §5.5.5)

K2 = np.array([[0], [255]], np.uint8)  # 1x1 maps over two entries: (0, 0) has d = 1, c = 7167


def tiny_parts(symbol_freq: list[int], escape_tables=None, stream: bytes = b"") -> dict:
    """INDX parts of a 1x1 map, one symbol table, the map all 0 (RLE frame)."""
    return {"T": 1, "frame": zstd_frame(bytes(7168)), "map": [0] * 7168,
            "symbol_tables": [symbol_freq], "escape_tables": escape_tables or [None] * 9,
            "band_rows": 1, "bands": [stream]}


def zstd_frame(content: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=True).compress(content)


def stream_of(*symbols: tuple[int, int]) -> bytes:
    """A band coding (frequency, start) pairs in decoding order."""
    return rans.encode_stream(np.array([f for f, _ in symbols]), np.array([s for _, s in symbols]))


def decoders():
    """The decoders every refusal is checked on: the C loop (cand.decode) and the Python one
    (cand.decode without the extension, which runs decode_reference)."""
    return [pytest.param("c", marks=needs_native), "python"]


@pytest.fixture(params=decoders())
def decode(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setattr(cand, "_native", None)

    def run(data: bytes, w: int = 1, h: int = 1, book: np.ndarray = K2):
        return cand.decode(data, w, h, book)

    return run


def good_tiny() -> bytes:
    """1x1, index 0: symbol 0 from a table of symbols 0 and 6."""
    return join_indx(tiny_parts([2048, 0, 0, 0, 0, 0, 2048], stream=stream_of((2048, 0))))


def test_the_tiny_file_decodes(decode):
    assert decode(good_tiny()).tolist() == [0]


def replaced(data: bytes, at: int, new: bytes, old_length: int | None = None) -> bytes:
    return data[:at] + new + data[at + (len(new) if old_length is None else old_length):]


def map_frame_cases():
    base = tiny_parts([2048, 0, 0, 0, 0, 0, 2048], stream=stream_of((2048, 0)))
    ones = dict(base, frame=zstd_frame(bytes(7167) + b"\x01"))
    short = dict(base, frame=zstd_frame(bytes(7167)))
    long = dict(base, frame=zstd_frame(bytes(7169)))
    garbage = dict(base, frame=b"\x00" * 12)
    skippable = dict(base, frame=struct.pack("<II", 0x184D2A50, 0) + zstd_frame(bytes(7168)))
    trailing = dict(base, frame=zstd_frame(bytes(7168)) + b"\x00")
    no_size = dict(base, frame=zstandard.ZstdCompressor(write_content_size=False).compress(bytes(7168)))
    empty = dict(base, frame=b"")
    return {
        "T = 0": (join_indx(dict(base, T=0), symbol_bytes=b""), "at least one symbol table, found 0"),
        "map value >= T": (join_indx(ones), "context map names table 1, there are 1"),
        "map of 7167 bytes": (join_indx(short), "7167 bytes"),
        "map of 7169 bytes": (join_indx(long), "7169 bytes"),
        "map not a zstd frame": (join_indx(garbage), "not a zstd frame"),
        "map of no bytes": (join_indx(empty), "not a zstd frame"),
        "skippable frame first": (join_indx(skippable), "not a zstd frame"),
        "byte after the map frame": (join_indx(trailing), "unexpected bytes after the zstd frame"),
        "map without a content size": (join_indx(no_size), "does not state its content size"),
        "map_length past the end": (replaced(good_tiny(), 1, struct.pack("<I", 10**6)),
                                    "context map needs 1000000 bytes"),
    }


def table_cases():
    frame = zstd_frame(bytes(7168))
    head = b"\x01" + struct.pack("<I", len(frame)) + frame
    tail = struct.pack("<I", 1) + struct.pack("<I", 4) + struct.pack("<I", 1 << 23)
    esc0 = bytes(18)

    def sym(table: bytes, escapes: bytes = esc0) -> bytes:
        return head + table + escapes + tail

    return {
        "symbol mask 0": (sym(b"\x00"), "symbol table 0 has mask 0x0"),
        "symbol mask bit 7": (sym(b"\x81\x80\x10"), "symbol table 0 has mask 0x81"),
        "zero frequency": (sym(b"\x03\x00"), "symbol table 0 has a zero frequency"),
        "non-minimal v14": (sym(b"\x03\x81\x00"), "not minimal"),
        "v14 of 3 bytes": (sym(b"\x03\x81\x80\x01"), "longer than 2 bytes"),
        "sum past 4096": (sym(b"\x03\x80\x20"), "symbol table 0 sums past 4096"),
        "sum of 4096 leaves 0": (sym(b"\x07\x80\x10\x80\x10"), "symbol table 0 sums past 4096"),
        "escape zero frequency": (sym(b"\x01", b"\x03\x00\x00" + bytes(16)), "escape table 0 has a zero"),
        "escape sum past 4096": (sym(b"\x01", bytes(2) + b"\x03\x00\x80\x20" + bytes(14)),
                                 "escape table 1 sums past 4096"),
        "escape non-minimal v14": (sym(b"\x01", bytes(16) + b"\x03\x00\x81\x00"), "not minimal"),
        "tables truncated": (head + b"\x03", "tables are truncated"),
        "escape tables truncated": (head + b"\x01" + bytes(17), "tables are truncated"),
    }


def framing_cases():
    good = good_tiny()
    _, offset = cand.read_model(good)
    stream = good[offset + 8 :]
    return {
        "band_rows 0": (replaced(good, offset, bytes(4)), "band of 0 rows"),
        "no band_rows": (good[:offset + 2], "ends before its band size"),
        "band length 3": (good[: offset + 4] + struct.pack("<I", 3) + stream[:3], "shorter than its state"),
        "band length 0": (good[: offset + 4] + struct.pack("<I", 0), "shorter than its state"),
        "band past the end": (good[:-1], "band 0 needs"),
        "no band length": (good[: offset + 4], "ends before band 0"),
        "byte after the last band": (good + b"\x00", "1 bytes after the last index coder 3 band"),
    }


def stream_cases():
    """Well-framed tables, wrong streams: each breaks one check of §5.5.5."""
    two = [2048, 0, 0, 0, 0, 0, 2048]  # symbols 0 and 6
    esc_01 = [2048, 2048] + [0] * 14  # tokens 0 and 1
    esc_4 = [0, 0, 0, 0, 4096] + [0] * 11  # token 4 only: v = 4 + one raw bit
    cases = {
        "symbol 1 of d = 1": (tiny_parts([0, 2048, 0, 0, 0, 0, 2048], stream=stream_of((2048, 0))),
                              "names no candidate"),
        "symbol 5 of d = 1": (tiny_parts([0, 0, 0, 0, 0, 2048, 2048], stream=stream_of((2048, 0))),
                              "names no candidate"),
        "escape without a table": (tiny_parts(two, stream=stream_of((2048, 2048), (2048, 0))),
                                   "an escape without a table"),
        "escape v = 1, k - d = 1": (tiny_parts(two, [esc_01] + [None] * 8,
                                               stream_of((2048, 2048), (2048, 2048))),
                                    "escape"),
        "escape v = 5 by raw bits": (tiny_parts(two, [esc_4] + [None] * 8,
                                                stream_of((2048, 2048), (4096, 0), (2048, 2048))),
                                     "escape"),
        "final state wrong": (tiny_parts([4096, 0, 0, 0, 0, 0, 0], stream=struct.pack("<I", (1 << 23) + 1)),
                              "final state is wrong"),
        "stream ends early": (tiny_parts([4096, 0, 0, 0, 0, 0, 0], stream=struct.pack("<I", 1)),
                              "stream ends early"),
        "bytes left after the last pixel": (
            tiny_parts([2048, 0, 0, 0, 0, 0, 2048], stream=stream_of((2048, 0)) + b"\x00"),
            "bytes left after the last pixel"),
    }
    return {name: (join_indx(parts), message) for name, (parts, message) in cases.items()}


ALL_CASES = {**map_frame_cases(), **table_cases(), **framing_cases(), **stream_cases()}


@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_must_refuse(name, decode):
    data, message = ALL_CASES[name]
    with pytest.raises(FormatError, match=message) as error:
        decode(data)
    assert "index coder 3" in str(error.value)


@pytest.mark.parametrize("name", sorted(stream_cases()))
def test_decode_reference_refuses_the_stream(name):
    data, message = stream_cases()[name]
    model, offset = cand.read_model(data)
    _, (stream,) = rans.read_streams(data, offset, 1, cand.WHO)
    with pytest.raises(FormatError, match=rf"index coder 3 stream is corrupt \(.*({message})"):
        cand.decode_reference(stream, 1, 1, rank_order(K2), model)


def test_escape_past_the_others_on_a_wider_map(decode):
    """k = 4, a 1x2 map: (0, 0) has d = 1 (all neighbours 0), (0, 1) has W = 0 and N = 1,
    d = 2, so its others are order[0] less {0, 1} = [2, 3]: an escape value 1 is entry 3,
    2 is past them (§5.5.3)."""
    book = np.array([[0], [60], [120], [180]], np.uint8)  # order[0] = 0 1 2 3
    only_escape = [0, 0, 0, 0, 0, 0, 4096]
    tokens = [2048, 1024, 1024] + [0] * 13  # tokens 0, 1, 2 at starts 0, 2048, 3072
    for v, start, expected in ((1, 2048, [1, 3]), (2, 3072, None)):
        # (0, 0): escape, q = 0 (N = 0 at 0), v = 0 -> entry 1; (0, 1): escape, q = 1 (N = 1 at 1)
        stream = stream_of((4096, 0), (2048, 0), (4096, 0), (1024, start))
        parts = dict(tiny_parts(only_escape, [tokens] * 9, stream), band_rows=2)
        if expected is None:
            with pytest.raises(FormatError, match="index coder 3.*escape"):
                decode(join_indx(parts), 1, 2, book)
        else:
            assert decode(join_indx(parts), 1, 2, book).tolist() == expected


def test_every_truncation_of_the_data_is_refused(decode):
    grid = random_map(8, 4, 5, 9)
    book = random_book(8, 9)
    data = cand.encode(grid, book, band_rows=2)
    for cut in range(len(data)):
        with pytest.raises(FormatError, match="index coder 3"):
            decode(data[:cut], 5, 4, book)


# ---------------------------------------------------------------- the container's HEAD rules


@pytest.fixture(scope="module")
def cand_file() -> bytes:
    rng = np.random.default_rng(12)
    image = rng.integers(0, 256, (12, 3), dtype=np.uint8)[random_map(12, 14, 19, 12)]
    return vqcodec.encode(image, k=12, coder="cand")


def with_head(data: bytes, **fields) -> bytes:
    head = dict((kind, body) for kind, body, _ in sections(data))[b"HEAD"]
    offsets = {"index_layout": 17, "index_coder": 18}
    body = bytearray(head)
    for name, value in fields.items():
        body[offsets[name]] = value
    return rebuild(data, {b"HEAD": bytes(body)})


@pytest.mark.parametrize("layout", [0, 2])
def test_head_refuses_coder_3_with_another_layout(cand_file, layout):
    with pytest.raises(FormatError, match=rf"index_coder 3 \(cand\) needs index_layout 1, found {layout}"):
        vqcodec.decode(with_head(cand_file, index_layout=layout))


def test_head_refuses_coder_3_with_k_above_256():
    k = 257
    head = struct.pack("<IIBBBBIBBBBB3s", 2, 1, 1, 8, 1, 1, k, 9, 1, 3, 1, 0, b"\0\0\0")
    data = (container.MAGIC + b"\x01\x03" + section(b"HEAD", head) + section(b"BOOK", bytes(k))
            + section(b"INDX", good_tiny()) + section(b"DONE", b""))
    with pytest.raises(FormatError, match=r"index_coder 3 \(cand\) needs k <= 256, found 257"):
        vqcodec.decode(data)
    for layout, message in ((0, "needs index_layout 1, found 0"), (1, "needs k <= 256, found 257")):
        header = container.Header(width=2, height=2, channels=1, k=k if layout else 4,
                                  index_layout=layout, index_coder=3)
        with pytest.raises(FormatError, match=rf"HEAD: index_coder 3 \(cand\) {message}"):
            container.write(header, bytes(header.k), bytes(container.index_payload_size(header)))


def test_damage_in_a_file_names_coder_3(cand_file):
    body = dict((kind, body) for kind, body, _ in sections(cand_file))[b"INDX"]
    for bad in (body + b"\x00", body[:-1], b"\x00" + body[1:]):
        with pytest.raises(FormatError, match="index coder 3"):
            vqcodec.decode(rebuild(cand_file, {b"INDX": bad}))


# ---------------------------------------------------------------- fuzzing behind a good CRC


def decode_both(data: bytes, w: int, h: int, book: np.ndarray):
    """(C outcome, Python outcome) of cand.decode: the indices, or the FormatError's class."""
    outcomes = []
    for native in ((cand._native, None) if cand._native is not None else (None,)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cand, "_native", native)
            try:
                outcomes.append(cand.decode(data, w, h, book).tobytes())
            except FormatError as error:
                assert "index coder 3" in str(error)
                outcomes.append(FormatError)
    return outcomes


@settings(max_examples=int(os.environ.get("VQCODEC_FUZZ_EXAMPLES", "300")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_damage_behind_a_good_crc(cand_file, data):
    """The CRC made right, so coder 3 itself meets the damage: an error or an image of the
    right size, never a crash; and the C and Python decoders agree on which."""
    body = dict((kind, body) for kind, body, _ in sections(cand_file))[b"INDX"]
    bad = mutate(data, bytearray(body), max_run=4)
    try:
        out = vqcodec.decode(rebuild(cand_file, {b"INDX": bad}))
    except VqiError:
        out = None
    if out is not None:
        assert out.shape == (14, 19, 3)
    book = np.frombuffer(container.read(cand_file, inflate=False).codebook, np.uint8).reshape(12, 3)
    outcomes = decode_both(bad, 19, 14, book)
    assert len(set(outcomes)) == 1
    assert (outcomes[0] is FormatError) == (out is None)


@functools.lru_cache(maxsize=1)
def damage_target() -> tuple[bytes, np.ndarray]:
    """INDX data of a 16x15 map in bands of 5 rows, with escapes and raw bits; its book."""
    grid = random_map(5, 16, 15, 40)
    grid[::4] = np.random.default_rng(5).integers(0, 40, grid[::4].shape)
    book = random_book(5, 40)
    return cand.encode(grid, book, band_rows=5), book


@needs_native
@settings(max_examples=int(os.environ.get("VQCODEC_FUZZ_EXAMPLES", "300")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_stream_damage_c_and_python_agree(data):
    """Flips behind the tables (in the bands, their lengths and band_rows): the C decoder
    refuses exactly what decode_reference refuses and otherwise gives its indices."""
    body, book = bytearray(damage_target()[0]), damage_target()[1]
    _, offset = cand.read_model(bytes(body))
    position = data.draw(st.integers(offset, len(body) - 1))
    for _ in range(data.draw(st.integers(1, 3))):
        body[position] ^= data.draw(st.integers(1, 255))
        position = min(len(body) - 1, position + data.draw(st.integers(0, 40)))
    c, python = decode_both(bytes(body), 15, 16, book)
    assert c == python


@needs_native
def test_a_large_map_in_the_encoders_own_bands_round_trips():
    """Over 100,000 pixels: the encoder cuts bands itself (rans.band_rows_for), decoded on
    threads; the indices and the pixels come back."""
    h, w = 300, 700
    grid = random_map(77, h, w, 64)
    book = random_book(77, 64)
    data = cand.encode(grid, book)
    _, offset = cand.read_model(data)
    rows, streams = rans.read_streams(data, offset, h, cand.WHO)
    assert rows == rans.band_rows_for(h, w) and len(streams) == 3
    np.testing.assert_array_equal(cand.decode(data, w, h, book).reshape(h, w), grid)
    np.testing.assert_array_equal(cand.decode(data, w, h, book, pixels=True).reshape(h, w, 3), book[grid])
