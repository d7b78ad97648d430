"""The codec end to end in memory: round trips, losslessness, determinism, options."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import container
from vqcodec.errors import ImageInputError, LimitError, OptionError
from image_files import png_pixels


def palette_image(h: int, w: int, channels: int, colours: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    book = rng.integers(0, 256, (colours, channels), dtype=np.uint8)
    book[:, -1] = np.arange(colours) % 256 if channels in (2, 4) else book[:, -1]
    return book[rng.integers(0, colours, (h, w))]


def photo_like(h: int, w: int, channels: int = 3) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256,
              np.full_like(x, 200)]
    return np.stack(planes[:channels], axis=-1).astype(np.uint8)


SIZES = [(1, 1), (1, 7), (7, 1), (2, 2), (13, 17), (31, 3), (64, 61)]


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("h, w", SIZES)
def test_lossless_when_colours_fit(channels, h, w):
    image = palette_image(h, w, channels, colours=5, seed=h * w)
    for layout, coder in [(None, None), ("packed", "zstd"), ("bytes", "zstd"), ("stripes", "bzip2")]:
        data = vqcodec.encode(image, k=8, layout=layout, coder=coder)
        back = vqcodec.decode(data)
        expected = image[:, :, 0] if channels == 1 else image
        np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("k", [2, 16, 256, 257, 1000])
def test_lossy_round_trip_matches_reconstruction(k):
    image = photo_like(37, 53)
    enc = vqcodec.encode_pixels(image, k=k)
    assert enc.header.k <= k
    assert enc.header.index_bits == container.bits_for(enc.header.k)
    decoded = vqcodec.decode(enc.data)
    np.testing.assert_array_equal(decoded, enc.reconstruct())
    assert len(np.unique(decoded.reshape(-1, 3), axis=0)) <= k


def test_more_colours_less_error():
    image = photo_like(48, 64)
    errors = []
    for k in (2, 8, 32, 128):
        decoded = vqcodec.decode(vqcodec.encode(image, k=k)).astype(float)
        errors.append(((decoded - image) ** 2).mean())
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 4


def test_deterministic_bytes():
    image = photo_like(40, 40, 4)
    assert vqcodec.encode(image, k=16, seed=3) == vqcodec.encode(image, k=16, seed=3)


def test_grayscale_shapes():
    gray = photo_like(9, 11, 1)[:, :, 0]
    out = vqcodec.decode(vqcodec.encode(gray, k=256))
    assert out.shape == (9, 11)
    np.testing.assert_array_equal(out, gray)
    assert vqcodec.decode(vqcodec.encode(gray[:, :, None], k=256)).shape == (9, 11)


def test_pil_image_and_icc_profile():
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.fromarray(palette_image(8, 8, 3, 4))
    img.info["icc_profile"] = icc
    data = vqcodec.encode(img, k=4)
    back = vqcodec.decode_image(data)
    assert back.mode == "RGB" and back.info.get("icc_profile") == icc
    np.testing.assert_array_equal(np.asarray(back), np.asarray(img))
    assert vqcodec.decode_pixels(data).icc_profile == icc


def test_encode_from_png_bytes_path_and_stream(tmp_path):
    image = palette_image(10, 12, 3, 6)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    png = buf.getvalue()
    path = tmp_path / "in.png"
    path.write_bytes(png)
    results = {vqcodec.encode(src, k=8) for src in (png, str(path), path, io.BytesIO(png))}
    assert len(results) == 1
    out = tmp_path / "out.vqi"
    vqcodec.encode(str(path), str(out), k=8)
    np.testing.assert_array_equal(vqcodec.decode(str(out)), image)
    with pytest.raises(FileExistsError):
        vqcodec.encode(str(path), str(out), k=8)
    vqcodec.encode(str(path), str(out), k=8, overwrite=True)
    target = tmp_path / "back.png"
    vqcodec.decode(str(out), str(target))
    np.testing.assert_array_equal(png_pixels(target), image)


@pytest.mark.parametrize("k", [0, 1, 65537, -3, 2.5, True, "16"])
def test_k_out_of_range(k):
    with pytest.raises(OptionError, match="k must be an integer from 2 to 65536"):
        vqcodec.encode(np.zeros((2, 2, 3), np.uint8), k=k)


def test_bad_options():
    image = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(OptionError, match="layout must be one of"):
        vqcodec.encode(image, layout="diagonal")
    with pytest.raises(OptionError, match="coder must be one of"):
        vqcodec.encode(image, coder="gzip")
    with pytest.raises(OptionError, match="level must be a zstd level from 1 to 22, got 30"):
        vqcodec.encode(image, level=30)


def test_bad_arrays():
    with pytest.raises(OptionError):
        vqcodec.encode(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(OptionError):
        vqcodec.encode(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(OptionError):
        vqcodec.encode(np.zeros((4, 4, 5), np.uint8))


def test_not_an_image():
    with pytest.raises(ImageInputError):
        vqcodec.encode(b"this is not an image at all")


def test_pixel_limit_on_encode_and_decode():
    image = palette_image(10, 10, 3, 3)
    with pytest.raises(LimitError, match="above the limit of 50"):
        vqcodec.encode(image, max_pixels=50)
    data = vqcodec.encode(image)
    with pytest.raises(LimitError, match="10×10 = 100 pixels, above the limit of 99"):
        vqcodec.decode(data, max_pixels=99)


def test_read_info_and_header():
    image = palette_image(5, 6, 4, 3)
    data = vqcodec.encode(image, k=4)
    info = vqcodec.read_info(data)
    assert info.version == (1, 0) and info.file_bytes == len(data)
    assert [s.type for s in info.sections] == ["HEAD", "BOOK", "INDX", "DONE"]
    header = vqcodec.read_header(data)
    assert (header.width, header.height, header.mode, header.k) == (6, 5, "RGBA", 3)
