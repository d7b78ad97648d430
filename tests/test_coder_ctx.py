"""Index coder 2 (vqcodec/coders/ctx.py, spec §5.4): the C loops against the Python
reference, the model's pieces against independent computations, the tables'
rules, and corrupt streams."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vqcodec
from vqcodec import codec, container
from vqcodec.coders import ctx as ctxcoder
from vqcodec.coders import rans
from vqcodec.errors import FormatError, OptionError, VqiError
from vqi_files import mutate, rebuild, sections

needs_native = pytest.mark.skipif(not ctxcoder.available(), reason="vqcodec._ctxcoder not built")


def random_map(seed: int, h: int, w: int, n: int) -> np.ndarray:
    """Noise with runs and repeated rows, so that every mode occurs."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, n, (h, w))
    runs = rng.random((h, w)) < 0.5
    for x in range(1, w):
        grid[:, x] = np.where(runs[:, x], grid[:, x - 1], grid[:, x])
    copy = rng.random(h) < 0.3
    for y in range(1, h):
        if copy[y]:
            grid[y] = np.roll(grid[y - 1], int(rng.integers(-1, 2)))
    return grid.astype(np.uint8)


def random_book(seed: int, n: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed + 1000).integers(0, 256, (n, channels)).astype(np.uint8)


SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (5, 7), (16, 3), (31, 40)]


# ---------------------------------------------------------------- the model


def test_rank_order_against_a_plain_sort():
    book = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [255, 255, 255], [10, 0, 0], [5, 5, 5]],
                    np.uint8)
    order = ctxcoder.rank_order(book)
    for a in range(len(book)):
        expected = sorted(range(len(book)),
                          key=lambda b: (sum((int(book[a][c]) - int(book[b][c])) ** 2 for c in range(3)), b))
        assert order[a].tolist() == expected
    assert order[1].tolist()[:2] == [1, 4]  # a duplicate colour: ties by index
    assert order[4].tolist()[:2] == [1, 4]  # ... so entry 4 is not first in its own list


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("spread", [1, 3, 40, 256])
def test_rank_order_of_small_and_narrow_books(channels, spread):
    """The C sort takes as many radix passes as a row's largest distance needs
    (none when all are 0, one below 2^9) and pads 2 or 3 channels to 4: every
    case gives the spec's order (§5.4.2)."""
    rng = np.random.default_rng(channels * 1000 + spread)
    for n in (1, 2, 17, 256):
        book = rng.integers(0, spread, (n, channels), dtype=np.uint8)
        wide = book.astype(np.int64)
        expected = np.argsort(((wide[:, None] - wide[None]) ** 2).sum(-1), axis=1, kind="stable")
        np.testing.assert_array_equal(ctxcoder.rank_order(book), expected)


def test_symbols_against_the_definition():
    grid = random_map(3, 6, 8, 5)
    order = ctxcoder.rank_order(random_book(3, 5))
    contexts, modes, ranks = ctxcoder.symbols(grid, order)
    h, w = grid.shape

    def at(y, x):
        return int(grid[y, x]) if 0 <= y < h and 0 <= x < w else 0

    for y in range(h):
        for x in range(w):
            p = y * w + x
            v, left, up, ul, ur = at(y, x), at(y, x - 1), at(y - 1, x), at(y - 1, x - 1), at(y - 1, x + 1)
            mode = next((m for m, nb in enumerate((left, up, ur, ul)) if v == nb), 4)
            m_left = modes[p - 1] if x else 4
            pattern = (left == up) + 2 * (up == ur) + 4 * (left == ul) + 8 * (ul == up)
            assert modes[p] == mode and contexts[p] == pattern * 5 + m_left
            if mode == 4:
                assert order[left][ranks[p]] == v
            else:
                assert ranks[p] == 0


def test_symbols_do_not_depend_on_the_band_size(monkeypatch):
    grid = random_map(4, 23, 11, 7)
    order = ctxcoder.rank_order(random_book(4, 7))
    whole = ctxcoder.symbols(grid, order)
    monkeypatch.setattr(ctxcoder, "_BAND_PIXELS", 20)  # bands of one or two rows
    for a, b in zip(whole, ctxcoder.symbols(grid, order)):
        np.testing.assert_array_equal(a, b)


@needs_native
@pytest.mark.parametrize("shape", SHAPES + [(40, 130)])
@pytest.mark.parametrize("n", [1, 3, 256])
def test_c_symbols_and_counts_equal_numpys(shape, n):
    grid = random_map(sum(shape) + n, *shape, n)
    order = ctxcoder.rank_order(random_book(n, n))
    contexts, modes, ranks, mode_counts, literal_counts = ctxcoder._native.symbols(
        grid, shape[1], n, order.tobytes())
    expected = ctxcoder.symbols(grid, order)
    for got, want in zip((contexts, modes, ranks), expected):
        np.testing.assert_array_equal(np.frombuffer(got, np.uint8), want)
    c, m, r = expected
    np.testing.assert_array_equal(np.frombuffer(mode_counts, np.uint64),
                                  np.bincount(c.astype(int) * 5 + m, minlength=400))
    np.testing.assert_array_equal(np.frombuffer(literal_counts, np.uint64),
                                  np.bincount(r[m == 4], minlength=256))
    if n < 256:
        grid[-1, -1] = n  # not below k
        with pytest.raises(ValueError, match="not below k"):
            ctxcoder._native.symbols(grid, shape[1], n, order.tobytes())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=300))
def test_frequencies_sum_to_4096_and_keep_every_symbol(counts):
    freq = ctxcoder.quantize_frequencies(np.array(counts))
    if sum(counts) == 0:
        assert not freq.any()
        return
    assert freq.sum() == 4096
    assert ((freq > 0) == (np.array(counts) > 0)).all()
    # close to proportional: off by the rounding and the minimum of 1
    share = np.array(counts) * 4096 / sum(counts)
    assert (np.abs(freq - share) <= np.maximum(share, 1) + 1).all()


# ---------------------------------------------------------------- round trips


@needs_native
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [1, 2, 5, 64, 256])
def test_c_and_python_write_the_same_stream_and_both_read_it(shape, n):
    h, w = shape
    grid = random_map(h * 100 + w + n, h, w, n)
    book = random_book(n, n)
    data = ctxcoder.encode(grid, book)
    assert data == ctxcoder.encode_reference(grid, book)
    assert ctxcoder.decode(data, w, h, book).tobytes() == grid.tobytes()
    mode_freq, literal_freq, offset = ctxcoder.read_tables(data, n)
    band_rows, streams = rans.read_streams(data, offset, h, ctxcoder.WHO)
    back = np.vstack([ctxcoder.decode_reference(stream, w, min(band_rows, h - top), ctxcoder.rank_order(book),
                                                mode_freq, literal_freq)
                      for stream, top in zip(streams, range(0, h, band_rows))])
    np.testing.assert_array_equal(back, grid)


@needs_native
@pytest.mark.parametrize("band_rows", [1, 2, 5, 100])
def test_bands_are_independent_and_any_band_size_reads_back(band_rows):
    grid = random_map(21, 13, 17, 9)
    book = random_book(21, 9)
    data = ctxcoder.encode(grid, book, band_rows=band_rows)
    assert data == ctxcoder.encode_reference(grid, book, band_rows=band_rows)
    assert ctxcoder.decode(data, 17, 13, book).tobytes() == grid.tobytes()
    _, _, offset = ctxcoder.read_tables(data, 9)
    rows, streams = rans.read_streams(data, offset, 13, ctxcoder.WHO)
    assert rows == band_rows and len(streams) == -(-13 // band_rows)
    # a band's first row sees nothing above it: its symbols are those of the band alone
    order = ctxcoder.rank_order(book)
    top = band_rows if band_rows < 13 else 0
    alone = ctxcoder.symbols(grid[top:top + band_rows], order)
    parts, _, _ = ctxcoder._model(grid, order, band_rows)
    for a, b in zip(alone, parts[1 if top else 0]):
        np.testing.assert_array_equal(a, b)


def decode_fast(data: bytes, w: int, h: int, book: np.ndarray, *, pixels: bool, threads: int):
    """vqcodec._ctxcoder.decode_image on its own: (bands it flagged, output)."""
    n, channels = book.shape
    mode_freq, literal_freq, offset = ctxcoder.read_tables(data, n)
    band_rows, streams = rans.read_streams(data, offset, h, ctxcoder.WHO)
    out = bytearray(w * h * (channels if pixels else 1))
    failed = ctxcoder._native.decode_image(
        streams, out, w, band_rows, book.tobytes(), channels, pixels, mode_freq.tobytes(),
        rans.starts(mode_freq).tobytes(), literal_freq.tobytes(),
        rans.starts(literal_freq).tobytes(), threads)
    return failed, np.frombuffer(out, np.uint8), streams, band_rows


@needs_native
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (9, 1), (7, 16), (40, 31)])
@pytest.mark.parametrize("band_rows", [1, 3, 8, 1000])
@pytest.mark.parametrize("n", [1, 5, 256])
def test_the_fast_decoder_needs_no_second_look_at_good_streams(shape, band_rows, n):
    """Two bands in lockstep, the last one shorter, odd band counts, any thread
    count: the indices, and the pixels of 1-4 channels, with no band flagged."""
    h, w = shape
    grid = random_map(h + w + n + band_rows, h, w, n)
    for channels in (1, 2, 3, 4):
        book = random_book(n + channels, n, channels)
        data = ctxcoder.encode(grid, book, band_rows=band_rows)
        for pixels in (False, True):
            for threads in (1, 2, 3):
                failed, out, _, _ = decode_fast(data, w, h, book, pixels=pixels, threads=threads)
                assert failed == []
                expected = book[grid] if pixels else grid
                np.testing.assert_array_equal(out, expected.reshape(-1))


@needs_native
@pytest.mark.parametrize("mode, width, literals, reason", [
    (ctxcoder.LITERAL, 1, 0, "a literal outside the table"),  # there is no literal table
    (0, 2, 1, "a mode context without a table"),  # the second pixel's context has none
])
def test_the_fast_decoder_flags_a_symbol_without_a_table(mode, width, literals, reason):
    """The fast decoder checks these only in the buckets marked for them (and
    at no other pixel): a band that reaches one is handed to the checked
    decoder, which names it.  The stream is made to end exactly after the
    symbol (a frequency of 4096 leaves x as it is, the slot 128 becomes x,
    and two zero bytes bring it to 2^23; a literal of frequency 4096 after a
    mode without a table leaves that as it is), so that only that check can tell."""
    mode_freq = np.zeros((ctxcoder.CONTEXTS, ctxcoder.MODES), np.uint16)
    first = 15 * ctxcoder.MODES + ctxcoder.LITERAL  # all neighbours 0 (equal), no mode on the left
    mode_freq[first, mode] = rans.SCALE
    stream = (rans.RANS_L + 128).to_bytes(4, "little") + bytes(2)
    literal_freq = np.zeros(256, np.uint16)
    literal_freq[:literals] = rans.SCALE
    data = ctxcoder.write_tables(mode_freq, literal_freq) + rans.assemble_bands(1, [stream])
    book = random_book(1, 4)
    for pixels in (False, True):
        failed, _, _, _ = decode_fast(data, width, 1, book, pixels=pixels, threads=1)
        assert failed == [0]
    with pytest.raises(FormatError, match=reason):
        ctxcoder.decode(data, width, 1, book)


@needs_native
@settings(max_examples=int(os.environ.get("VQCODEC_FUZZ_EXAMPLES", "300")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_fast_decoder_accepts_only_what_the_checked_one_does(data):
    """Damage behind the tables: every band the fast decoder does not flag, the
    step-by-step decoder of §5.4.4 also decodes, to the same indices."""
    grid = random_map(5, 30, 23, 40)
    book = random_book(5, 40)
    body = bytearray(ctxcoder.encode(grid, book, band_rows=7))
    _, _, offset = ctxcoder.read_tables(bytes(body), 40)
    position = data.draw(st.integers(offset + 4, len(body) - 1))
    for _ in range(data.draw(st.integers(1, 3))):
        body[position] ^= data.draw(st.integers(1, 255))
        position = min(len(body) - 1, position + data.draw(st.integers(0, 40)))
    try:
        failed, out, streams, band_rows = decode_fast(bytes(body), 23, 30, book, pixels=False, threads=2)
    except FormatError:  # a band length went wrong: read_streams refuses the framing
        return
    order = ctxcoder.rank_order(book).tobytes()
    mode_freq, literal_freq, _ = ctxcoder.read_tables(bytes(body), 40)
    tables = (mode_freq.tobytes(), rans.starts(mode_freq).tobytes(),
              literal_freq.tobytes(), rans.starts(literal_freq).tobytes())
    for band, (top, bottom) in enumerate(rans.bands(30, band_rows)):
        if band in failed:
            continue
        checked = bytearray(23 * (bottom - top))
        ctxcoder._native.decode(streams[band], checked, 23, bottom - top, 40, order, *tables)
        assert bytes(checked) == out[top * 23 : bottom * 23].tobytes()


@needs_native
@pytest.mark.parametrize("size", [0, 1, 4095, 1 << 20, (1 << 21) + 3])
def test_decoded_images_live_in_their_own_pages(size):
    """The decoder's output memory: writable, exactly the size asked for (huge
    pages from 1 MiB up, where Linux gives them), freed with the array."""
    import sys

    buffer = ctxcoder._native.pages(size)
    view = memoryview(buffer)
    assert view.nbytes == size and not view.readonly
    refs = sys.getrefcount(buffer)
    array = np.frombuffer(buffer, np.uint8)
    array[:] = 7
    assert array.sum() == 7 * size
    assert sys.getrefcount(buffer) == refs + 1  # the array holds its memory...
    del array
    assert sys.getrefcount(buffer) == refs  # ...and lets it go
    view.release()
    with pytest.raises(ValueError, match="negative"):
        ctxcoder._native.pages(-1)


def test_the_encoder_cuts_about_100k_pixel_bands():
    assert rans.band_rows_for(512, 768) == 130  # a Kodak photo: 4 bands
    assert rans.band_rows_for(3, 5) == 3
    assert rans.band_rows_for(10, 10**6) == 1


def test_python_fallback_decodes_and_the_encoder_declines(monkeypatch):
    grid = random_map(7, 9, 13, 6)
    book = random_book(7, 6)
    data = ctxcoder.encode_reference(grid, book)
    monkeypatch.setattr(ctxcoder, "_native", None)
    assert not ctxcoder.available()
    assert ctxcoder.decode(data, 13, 9, book).tobytes() == grid.tobytes()
    with pytest.raises(OptionError, match="needs the compiled extension"):
        ctxcoder.encode(grid, book)
    image = book[grid]
    enc = codec.encode_pixels(image, k=6)  # auto: the other coders
    assert enc.header.index_coder != 2
    np.testing.assert_array_equal(vqcodec.decode(enc.data), enc.reconstruct())


@needs_native
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_files_with_coder_2_round_trip_and_say_version_1_1(channels):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, (6, channels), dtype=np.uint8)[random_map(channels, 20, 30, 6)]
    enc = codec.encode_pixels(image, k=8, coder="ctx")
    assert (enc.header.index_coder, enc.header.index_layout) == (2, 1)
    assert enc.data[8:10] == bytes([1, 1])
    assert vqcodec.read_info(enc.data).version == (1, 1)
    np.testing.assert_array_equal(vqcodec.decode(enc.data).reshape(image.shape), image)
    other = codec.encode_pixels(image, k=8, coder="zstd")
    assert other.data[8:10] == bytes([1, 0])  # the lowest version that holds the file


@needs_native
def test_a_kodak_photo_round_trips(kodak):
    kodak_path = str(kodak / "kodim03.png")
    enc = codec.encode_pixels(kodak_path, k=256, coder="ctx")
    np.testing.assert_array_equal(vqcodec.decode(enc.data), enc.reconstruct())
    smaller_than = codec.encode_pixels(kodak_path, k=256, coder="zstd")
    assert len(enc.data) < 0.95 * len(smaller_than.data)


def test_ctx_needs_bytes_and_k_at_most_256():
    image = random_book(1, 300)[np.arange(300).reshape(15, 20)]
    with pytest.raises(OptionError, match="needs k <= 256"):
        codec.encode_pixels(image, k=300, coder="ctx")
    with pytest.raises(OptionError, match="layout 'bytes'"):
        codec.encode_pixels(image, k=16, coder="ctx", layout="stripes")
    for layout, k, message in ((0, 4, "needs index_layout 1, found 0"),
                               (2, 4, "needs index_layout 1, found 2"),
                               (1, 257, "needs k <= 256, found 257")):
        header = container.Header(width=2, height=2, channels=1, k=k, index_layout=layout,
                                  index_coder=2)
        with pytest.raises(FormatError, match=rf"HEAD: index_coder 2 \(ctx\) {message}"):
            container.write(header, bytes(k), bytes(container.index_payload_size(header)))


# ---------------------------------------------------------------- tables


def tables(bitmap=None, masks=(), literal=b"\x00") -> bytes:
    bitmap = bitmap if bitmap is not None else bytes(10)
    return bytes(bitmap) + bytes(masks) + literal


def one_context_bitmap(context: int) -> bytes:
    b = bytearray(10)
    b[context // 8] |= 1 << context % 8
    return bytes(b)


@pytest.mark.parametrize("data, message", [
    (b"\x00" * 9, "truncated"),
    (tables(one_context_bitmap(79), [0x20]), "mask 0x20"),
    (tables(one_context_bitmap(79), [0x00]), "mask 0x00"),
    (tables(one_context_bitmap(79), [0x03, 0x80, 0x20]), "sums past 4096"),  # 4096 + implied
    (tables(one_context_bitmap(79), [0x03, 0x00]), "zero frequency"),
    (tables(one_context_bitmap(79), [0x03, 0x80, 0x80, 0x01]), "longer than 2 bytes"),
    (tables(one_context_bitmap(79), [0x03, 0x81, 0x00]), "not minimal"),
    (tables(literal=b"\x05"), "literal table has 5 ranks, k is 4"),
    (tables(literal=b"\x02\x80\x20"), "literal table sums past 4096"),
    (tables(literal=b"\x02"), "truncated"),
])
def test_table_rules(data, message):
    with pytest.raises(FormatError, match=message):
        ctxcoder.read_tables(data, 4)
    if ctxcoder.available():  # the C reader refuses the same tables (read_tables then names why)
        assert ctxcoder._native.parse_tables(data, 4) is None


@needs_native
@settings(max_examples=200, deadline=None)
@given(st.data())
def test_c_reads_the_tables_as_read_tables_does(data):
    """Valid tables (any mix of contexts, modes and ranks) and damaged ones: the C
    reader gives read_tables' frequencies, starts and offset, or refuses what
    read_tables refuses."""
    n = data.draw(st.integers(1, 256))
    mode_counts = np.array(data.draw(st.lists(st.integers(0, 50), min_size=400, max_size=400))).reshape(80, 5)
    mode_counts[data.draw(st.lists(st.integers(0, 79), max_size=60))] = 0
    mode_freq = np.stack([ctxcoder.quantize_frequencies(row) for row in mode_counts]).astype(np.uint16)
    literal_counts = np.zeros(256, np.int64)
    literal_counts[:n] = data.draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    blob = bytearray(ctxcoder.write_tables(mode_freq, ctxcoder.quantize_frequencies(literal_counts)
                                           .astype(np.uint16)) + b"\x07rest")
    if data.draw(st.booleans()):  # damage: a byte changed, or the tail cut
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    got = ctxcoder._native.parse_tables(bytes(blob), n)
    try:
        modes, literals, offset = ctxcoder.read_tables(bytes(blob), n)
    except FormatError:
        assert got is None
        return
    assert got == (modes.tobytes(), rans.starts(modes).tobytes(), literals.tobytes(),
                   rans.starts(literals).tobytes(), offset)


def test_tables_read_back():
    mode_freq = np.zeros((80, 5), np.uint16)
    mode_freq[3] = [0, 4000, 0, 96, 0]
    mode_freq[79] = [4096, 0, 0, 0, 0]
    literal_freq = np.zeros(256, np.uint16)
    literal_freq[[1, 2]] = [4095, 1]
    data = ctxcoder.write_tables(mode_freq, literal_freq)
    assert data == (one_context_bitmap(3)[:9] + bytes([one_context_bitmap(3)[9] | 0x80])
                    + bytes([0x0A, 0xA0, 0x1F, 0x01]) + bytes([0x03, 0x00, 0xFF, 0x1F]))
    back_modes, back_literals, offset = ctxcoder.read_tables(data + b"rest", 4)
    np.testing.assert_array_equal(back_modes, mode_freq)
    np.testing.assert_array_equal(back_literals, literal_freq)
    assert offset == len(data)


# ---------------------------------------------------------------- corrupt streams


def with_indx(data: bytes, body: bytes) -> bytes:
    """*data* with its INDX section's data replaced (length and CRC made right)."""
    return rebuild(data, {b"INDX": body})


@pytest.fixture(scope="module")
def ctx_file() -> bytes:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (12, 3), dtype=np.uint8)[random_map(11, 24, 33, 12)]
    return vqcodec.encode(image, k=12, coder="ctx") if ctxcoder.available() else b""


def indx_body(data: bytes) -> bytes:
    return dict((kind, body) for kind, body, _ in sections(data))[b"INDX"]


@needs_native
def test_stream_damage_is_refused_by_both_decoders(ctx_file, monkeypatch):
    body = indx_body(ctx_file)
    _, _, offset = ctxcoder.read_tables(body, 12)
    state = offset + 8  # after the band size and the first band's length
    length = struct.unpack_from("<I", body, offset + 4)[0]
    cases = {  # the framing stays right, the stream is wrong
        "state": body[:state] + bytes([body[state] ^ 0x40]) + body[state + 1 :],
        "last byte": body[:-1] + bytes([body[-1] ^ 0x01]),
        "short band": body[: offset + 4] + struct.pack("<I", 2) + body[state : state + 2],
        "extra byte": (body[: offset + 4] + struct.pack("<I", length + 1) + body[state : state + length]
                       + b"\x00" + body[state + length :]),
    }
    for name, bad in cases.items():
        for native in (True, False):
            if not native:
                monkeypatch.setattr(ctxcoder, "_native", None)
            with pytest.raises(FormatError, match="index coder 2 stream is corrupt"):
                vqcodec.decode(with_indx(ctx_file, bad))
            monkeypatch.undo()
    for bad, message in ((body + b"\x00", "1 bytes after the last index coder 2 band"),
                         (body[:-1], "band 0 needs|band 1 needs|ends before band"),
                         (body[: offset + 4], "ends before band 0"),
                         (body[:offset] + bytes(4) + body[offset + 4 :], "band of 0 rows")):
        with pytest.raises(FormatError, match=message):
            vqcodec.decode(with_indx(ctx_file, bad))


@needs_native
@settings(max_examples=int(os.environ.get("VQCODEC_FUZZ_EXAMPLES", "300")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_damage_behind_a_good_crc(ctx_file, data):
    """The CRC is made right, so the context decoder itself meets the damage:
    an error or (rarely) some image of the right size, never a crash."""
    body = mutate(data, bytearray(indx_body(ctx_file)), max_run=4)
    try:
        out = vqcodec.decode(with_indx(ctx_file, body))
    except VqiError:
        return
    assert out.shape == (24, 33, 3)
