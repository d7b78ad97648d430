"""The encoder's choice of index coder and layout (vqcodec.choose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vqcodec
from vqcodec import choose, codec, coders, container, packing
from vqcodec.coders import ctx as ctxcoder
from vqcodec.errors import FormatError

ZSTD, BZIP2, CTX = 0, 1, 2  # index_coder values (spec §3)


SAMPLE = Path(__file__).resolve().parent / "data" / "sample.png"


def photo_like(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * y) % 256], -1)
    return np.clip(base + rng.integers(-20, 21, size=(h, w, 3)), 0, 255).astype(np.uint8)


def quick_zstd(enc) -> int:
    """The size of auto's check: zstd at the quick level on bytes (and packed bits)."""
    bits = enc.header.index_bits
    layouts = (packing.BYTES, packing.PACKED) if bits <= 4 else (packing.BYTES,)
    return min(len(coders.zstd.compress(packing.pack(enc.indices, bits=bits, layout=layout),
                                        choose.QUICK_LEVEL))
               for layout in layouts)


@pytest.mark.parametrize("k", [2, 4, 16, 256, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_auto_on_a_small_map_is_the_smallest_of_every_coder(k, seed):
    image = photo_like(37, 53, seed)
    assert 37 * 53 <= choose.TRY_EVERY_CODER_PIXELS
    chosen = codec.encode_pixels(image, k=k, coder="auto")
    candidates = [codec.encode_pixels(image, k=k, coder="bzip2", layout=layout).data
                  for layout in ("stripes", "bytes")]
    if k <= 256 and ctxcoder.available():
        candidates.append(codec.encode_pixels(image, k=k, coder="ctx").data)
    assert len(chosen.data) <= min(len(c) for c in candidates)
    if chosen.header.index_coder == ZSTD:  # zstd at the same level on its layout
        layout = {0: "packed", 1: "bytes", 2: "stripes"}[chosen.header.index_layout]
        assert chosen.data == codec.encode_pixels(image, k=k, coder="zstd", layout=layout).data
    else:
        assert chosen.data in candidates
    if k > 256:
        assert chosen.header.index_coder != CTX
    np.testing.assert_array_equal(vqcodec.decode(chosen.data), chosen.reconstruct())


@pytest.mark.skipif(not ctxcoder.available(), reason="vqcodec._ctxcoder not built")
def test_auto_on_a_large_map_takes_ctx_when_it_beats_quick_zstd():
    image = vqcodec.pixels.load(str(SAMPLE)).array  # a Kodak crop, 384x256
    assert image.shape[0] * image.shape[1] > choose.TRY_EVERY_CODER_PIXELS
    for k in (16, 256):
        chosen = codec.encode_pixels(image, k=k, coder="auto")
        assert chosen.header.index_coder == CTX
        assert chosen.data == codec.encode_pixels(image, k=k, coder="ctx").data
        indx = [s.length for s in vqcodec.read_info(chosen.data).sections if s.type == "INDX"][0]
        assert indx <= quick_zstd(chosen)


def halves():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255  # two flat halves: bzip2's stream overhead alone is larger than zstd's frame
    return image


def test_auto_picks_zstd_where_it_is_smaller():
    enc = codec.encode_pixels(halves(), k=2, coder="auto")
    assert enc.header.index_coder == ZSTD
    np.testing.assert_array_equal(vqcodec.decode(enc.data), halves())


@pytest.mark.parametrize("seed", [0, 1])
def test_default_is_auto(seed):
    image = photo_like(37, 53, seed)
    assert codec.encode_pixels(image, k=16).data == codec.encode_pixels(image, k=16, coder="auto").data
    assert codec.encode_pixels(halves(), k=2).header.index_coder == ZSTD


@pytest.mark.parametrize("seed", [0, 1])
def test_bzip2_takes_the_smaller_layout(seed):
    image = photo_like(37, 53, seed)
    enc = codec.encode_pixels(image, k=16, coder="bzip2")
    assert enc.header.index_coder == BZIP2
    sizes = {layout: len(codec.encode_pixels(image, k=16, layout=layout, coder="bzip2").data)
             for layout in ("bytes", "stripes")}
    assert len(enc.data) == min(sizes.values())
    assert codec.encode_pixels(halves(), k=2, coder="bzip2").header.index_coder == BZIP2


def test_auto_with_a_layout_is_bzip2():
    enc = codec.encode_pixels(halves(), k=2, coder="auto", layout="bytes")
    assert (enc.header.index_coder, enc.header.index_layout) == (BZIP2, 1)


def test_unknown_coder_names_the_choices():
    with pytest.raises(vqcodec.OptionError, match=r"coder must be one of \['auto', 'bzip2', 'cand', 'ctx', 'zstd'\]"):
        codec.encode_pixels(halves(), k=2, coder="gzip")


def test_coded_index_is_written_as_given():
    header = container.Header(width=3, height=2, channels=1, k=4, index_layout=1,
                              index_coder=ZSTD)
    payload = bytes([0, 1, 2, 3, 2, 1])
    coded = coders.zstd.compress(payload, 3)
    data = container.write(header, bytes(range(4)), payload, coded_index=coded)
    assert coded in data and container.read(data).index_payload == payload
    with pytest.raises(FormatError, match="index_coder 7 is not supported"):
        coders.by_id(7)


def test_auto_packs_two_colour_noise():
    rng = np.random.default_rng(5)
    image = (rng.integers(0, 2, size=(64, 96, 1)) * 255).astype(np.uint8).repeat(3, -1)
    enc = codec.encode_pixels(image, k=2, coder="auto")
    assert (enc.header.index_coder, enc.header.index_layout) == (ZSTD, packing.PACKED)
    np.testing.assert_array_equal(vqcodec.decode(enc.data), image)


CAND = 3


@pytest.mark.skipif(not (ctxcoder.available() and coders.by_name("cand").available()),
                    reason="vqcodec._ctxcoder or _candcoder not built")
@pytest.mark.parametrize("k", [16, 64, 256])
def test_slow_speeds_also_try_coder_3_and_keep_the_smaller(k):
    image = vqcodec.pixels.load(str(SAMPLE)).array  # a Kodak crop, 384x256
    default = codec.encode_pixels(image, k=k)
    slow = codec.encode_pixels(image, k=k, speed=choose.EVERY_CODER_BELOW_SPEED - 1)
    named = codec.encode_pixels(image, k=k, coder="cand")
    assert default.header.index_coder == CTX  # speed 4 ("auto" alone) never takes coder 3
    np.testing.assert_array_equal(slow.indices, default.indices)  # the same pixels: only the coder differs
    # coder 3's map and tables outweigh its gain at k = 16 on this small image, not above
    assert (len(named.data) < len(default.data)) == (k > 16)
    assert slow.data == min(default.data, named.data, key=len)
    np.testing.assert_array_equal(vqcodec.decode(slow.data), vqcodec.decode(default.data))
    if slow.header.index_coder == CAND:
        assert vqcodec.read_info(slow.data).version == (1, 3)  # coder 3's files are stamped 1.3
    for speed in range(choose.EVERY_CODER_BELOW_SPEED, 11):
        assert codec.encode_pixels(image, k=k, speed=speed).header.index_coder != CAND


def test_every_coder_still_takes_the_smallest_on_a_flat_image():
    # two flat halves: zstd's frame beats every map coder's tables
    chosen = choose.choose(np.repeat(np.arange(2, dtype=np.uint8)[None], 40, 0).repeat(20, 1),
                           np.array([[0, 0, 0], [255, 255, 255]], np.uint8), every_coder=True)
    assert chosen.coder.name == "zstd"
