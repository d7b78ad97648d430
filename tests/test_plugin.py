"""The Pillow plugin, used only through Pillow's own API (Image.open, Image.save)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, UnidentifiedImageError

import vqcodec
from vqcodec import codec, container, pillow_plugin
from vqcodec.errors import FormatError, IntegrityError, OptionError, UnsupportedVersionError

MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def few_colours(mode: str, colours: int = 6, h: int = 19, w: int = 23, seed: int = 0) -> Image.Image:
    """A *mode* image with at most *colours* distinct pixels."""
    rng = np.random.default_rng(seed)
    book = rng.integers(0, 256, (colours, MODES[mode]), dtype=np.uint8)
    array = book[rng.integers(0, colours, (h, w))]
    return Image.fromarray(array[:, :, 0] if mode == "L" else array, mode)


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the plugin's calls to the pixel decoder."""
    calls: list[int] = []
    real = codec.decode_pixels

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(codec, "decode_pixels", counting)
    return calls


def saved(image: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="VQI", **params)
    return buf.getvalue()


# --------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------


def test_registered_with_pillow():
    assert Image.registered_extensions()[".vqi"] == "VQI"
    assert Image.MIME["VQI"] == "image/x-vqi"
    assert "VQI" in Image.OPEN and "VQI" in Image.SAVE
    pillow_plugin.register()  # again: harmless
    assert Image.ID.count("VQI") == 1


# --------------------------------------------------------------------------
# Open: lazy, then load
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_open_reads_the_header_only_and_load_decodes(tmp_path, decode_calls, mode):
    path = tmp_path / "x.vqi"
    vqcodec.encode(few_colours(mode), str(path), k=8)
    im = Image.open(path)
    assert (im.format, im.mode, im.size) == ("VQI", mode, (23, 19))
    assert im.get_format_mimetype() == "image/x-vqi"
    assert decode_calls == []
    im.load()
    assert len(decode_calls) == 1
    assert im.fp is None  # the file Pillow opened is closed after loading
    im.load()
    assert len(decode_calls) == 1
    np.testing.assert_array_equal(np.asarray(im), vqcodec.decode(str(path)))


def test_decompression_bomb_check_runs_before_decoding(monkeypatch, decode_calls):
    data = vqcodec.encode(np.zeros((40, 50, 3), np.uint8), k=2)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 900)  # error above 2 × 900
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    assert decode_calls == []


def test_open_a_file_object_leaves_it_open():
    data = vqcodec.encode(few_colours("RGB"), k=8)
    stream = io.BytesIO(data)
    with Image.open(stream) as im:
        im.load()
        np.testing.assert_array_equal(np.asarray(im), vqcodec.decode(data))
    assert not stream.closed


def test_context_manager_closes_an_unloaded_file(tmp_path):
    path = tmp_path / "x.vqi"
    path.write_bytes(vqcodec.encode(few_colours("L"), k=4))
    with Image.open(path) as im:
        fp = im.fp
        assert im.size == (23, 19)
    assert fp.closed


def test_thumbnail_convert_copy_after_open(tmp_path):
    path = tmp_path / "x.vqi"
    vqcodec.encode(few_colours("RGBA", h=40, w=60), str(path), k=8)
    with Image.open(path) as im:
        grey = im.convert("L")
        assert grey.size == (60, 40)
        copy = im.copy()
        im.thumbnail((30, 30))
        assert im.size == (30, 20) and im.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(copy), vqcodec.decode(str(path)))
    np.testing.assert_array_equal(np.asarray(grey), np.asarray(copy.convert("L")))


# --------------------------------------------------------------------------
# Save
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_save_with_k_and_seed_is_encode(tmp_path, mode):
    image = Image.fromarray(
        np.random.default_rng(1).integers(0, 256, (17, 21, MODES[mode]), dtype=np.uint8).squeeze()
    )
    assert image.mode == mode
    path = tmp_path / "y.vqi"
    image.save(path, k=16, seed=5)  # format from the extension
    data = path.read_bytes()
    assert data == vqcodec.encode(image, k=16, seed=5)
    assert vqcodec.read_header(data).k == 16
    with Image.open(path) as back:
        assert back.mode == mode
        np.testing.assert_array_equal(np.asarray(back), vqcodec.decode(data))


@pytest.mark.parametrize("mode", list(MODES))
def test_lossless_when_colours_fit(mode):
    image = few_colours(mode, colours=7)
    back = Image.open(io.BytesIO(saved(image, k=8)))
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), np.asarray(image))


def test_save_options_reach_the_encoder():
    image = few_colours("RGB")
    header = vqcodec.read_header(saved(image, k=4, coder="zstd", layout="packed", level=3))
    assert (header.index_coder, header.index_layout) == (0, 0)
    default = vqcodec.read_header(saved(image))  # the default "auto" coder, as codec.encode
    assert default == vqcodec.read_header(vqcodec.encode(image))
    assert vqcodec.read_header(saved(image, dpi=(72, 72), optimize=True)).k == 6  # others ignored


def test_bad_save_option_is_an_option_error():
    with pytest.raises(OptionError, match="k must be an integer"):
        saved(few_colours("RGB"), k=1)
    with pytest.raises(ValueError, match="coder must be one of"):
        saved(few_colours("RGB"), coder="gzip")


def test_skip_if_larger_is_refused_with_no_input_file_to_compare(tmp_path):
    out = tmp_path / "out.vqi"
    with pytest.raises(OptionError, match="skip_if_larger compares .* Pillow saves an image in memory, not a file"):
        few_colours("RGB").save(out, skip_if_larger=True)
    assert not out.exists()  # Pillow removes the file it opened
    few_colours("RGB").save(out, skip_if_larger=False)
    assert out.exists()


@pytest.mark.parametrize(
    "make, mode",
    [
        (lambda: few_colours("RGB").convert("P"), "RGB"),
        (lambda: few_colours("L").convert("1"), "L"),
        (lambda: Image.fromarray(np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000), "L"),
        (lambda: few_colours("RGB").convert("CMYK"), "RGB"),
    ],
    ids=["P", "1", "I;16", "CMYK"],
)
def test_other_modes_are_converted_by_the_mode_rules(make, mode):
    image = make()
    back = Image.open(io.BytesIO(saved(image, k=256)))
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), vqcodec.decode(vqcodec.encode(image, k=256)))


# --------------------------------------------------------------------------
# ICC profile, both ways
# --------------------------------------------------------------------------


def test_icc_profile_from_info_is_written_and_read_back():
    icc = srgb_profile()
    image = few_colours("RGB")
    image.info["icc_profile"] = icc
    data = saved(image, k=8)
    assert vqcodec.decode_pixels(data).icc_profile == icc
    with Image.open(io.BytesIO(data)) as back:
        assert back.info["icc_profile"] == icc  # before load
        back.load()
        assert back.info["icc_profile"] == icc
        png = io.BytesIO()
        back.save(png, "PNG")  # and Pillow carries it on to other formats
    assert Image.open(png).info["icc_profile"] == icc


def test_icc_profile_save_parameter_wins_over_info():
    icc = srgb_profile()
    image = few_colours("RGBA")
    assert vqcodec.decode_pixels(saved(image, icc_profile=icc)).icc_profile == icc
    image.info["icc_profile"] = icc
    assert vqcodec.decode_pixels(saved(image, icc_profile=None)).icc_profile is None
    assert vqcodec.decode_pixels(saved(image, icc_profile=b"")).icc_profile is None


def test_no_icc_profile_no_info_entry():
    with Image.open(io.BytesIO(saved(few_colours("L")))) as im:
        assert "icc_profile" not in im.info


# --------------------------------------------------------------------------
# Broken files
# --------------------------------------------------------------------------


def test_not_a_vqi_file_is_left_to_pillow():
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"\x89VQ this is not an image at all"))


def test_damaged_vqi_file_raises_our_error_at_open(decode_calls):
    data = bytearray(saved(few_colours("RGB", h=30, w=30), k=8))
    data[-20] ^= 0x40  # inside INDX
    with pytest.raises(IntegrityError, match="CRC"):
        Image.open(io.BytesIO(bytes(data)))
    assert decode_calls == []


def test_unsupported_version_raises_our_error():
    data = bytearray(saved(few_colours("RGB")))
    data[len(container.MAGIC)] = 9
    with pytest.raises(UnsupportedVersionError):
        Image.open(io.BytesIO(bytes(data)))


def test_path_is_closed_after_a_failed_open(tmp_path):
    path = tmp_path / "bad.vqi"
    path.write_bytes(saved(few_colours("RGB"))[:-3])
    with pytest.raises(FormatError):
        Image.open(path)


DATA = saved(few_colours("LA", h=9, w=11), k=4)


@pytest.mark.parametrize("cut", sorted({0, 5, 8, 9, 10, 17, 18, 30, 40, len(DATA) - 13, len(DATA) - 1}))
def test_truncated_file(cut):
    expected = UnidentifiedImageError if cut < len(container.MAGIC) else FormatError
    with pytest.raises(expected):
        Image.open(io.BytesIO(DATA[:cut]))


# --------------------------------------------------------------------------
# The rest of vqcodec sees .vqi files as images too
# --------------------------------------------------------------------------


def test_a_vqi_file_is_refused_as_an_encoder_input_but_opens_as_an_image(tmp_path):
    # encoding a .vqi would quantize it again: refused, as decode refuses to write .vqi (D8);
    # a user who opens it as an image first asks for the pixels on purpose
    path = tmp_path / "x.vqi"
    vqcodec.encode(few_colours("RGBA"), str(path), k=8)
    for source in (str(path), path.read_bytes(), io.BytesIO(path.read_bytes())):
        with pytest.raises(vqcodec.ImageInputError, match="is already a VQI file; encoding it "
                           "would quantize it again"):
            vqcodec.encode(source, k=8)
    again = vqcodec.encode(Image.open(path), k=8)
    np.testing.assert_array_equal(vqcodec.decode(again), vqcodec.decode(str(path)))


def test_rdo_save_parameter_reaches_the_encoder():
    rng = np.random.default_rng(3)
    base = np.repeat(np.repeat(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), 4, 0), 4, 1)
    noisy = np.clip(base.astype(int) + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(noisy)
    for rdo in (0, 2.0):
        assert saved(image, k=32, rdo=rdo) == vqcodec.encode(noisy, k=32, rdo=rdo)
    assert saved(image, k=32, rdo=0) != saved(image, k=32, rdo=2.0)
