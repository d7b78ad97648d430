"""vqcodec.target: encoding to a PSNR, a quality or a byte budget, checked on the decoded files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import batch, target
from vqcodec.coders import ctx as ctxcoder
from vqcodec.errors import NotSmallerError, OptionError, TargetUnreachableError
from vqcodec.options import EncodeOptions, parse_quality

from streams import OneWayStream

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "sample.png"


def independent_psnr(original: np.ndarray, vqi: bytes) -> float:
    """PSNR of the decoded file against the original, computed here (no vqcodec.metrics)."""
    decoded = vqcodec.decode(vqi).astype(np.float64)
    ref = original.astype(np.float64).reshape(decoded.shape)
    if ref.ndim == 3 and ref.shape[2] in (2, 4):  # premultiplied, as the codec measures alpha
        ref[..., :-1] *= ref[..., -1:] / 255.0
        decoded[..., :-1] *= decoded[..., -1:] / 255.0
    mse = np.mean((ref - decoded) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)


# the quality scale


def test_quality_scale_is_pngquants_curve_times_the_documented_factor():
    # pngquant prints 6.09 / 9.51 / 13.24 at Q80 / 70 / 60 (its u(q) x 65536 / 6)
    for q, printed in ((80, 6.09), (70, 9.51), (60, 13.24)):
        assert target.quality_to_mse(q) == pytest.approx(1.4 * printed, rel=2e-3)
    assert target.quality_to_mse(0) == math.inf and target.quality_to_mse(100) == 0.0
    values = [target.quality_to_mse(q) for q in range(1, 100)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert all(target.mse_to_quality(target.quality_to_mse(q)) == q for q in range(1, 101))
    assert target.mse_to_quality(1e9) == 0


@pytest.mark.parametrize("text,expected", [
    ("65-80", (65, 80)), ("80", (72, 80)), ("-80", (0, 80)), ("65-", (65, 100)), (" 0-100 ", (0, 100)),
])
def test_quality_takes_pngquants_forms(text, expected):
    assert parse_quality(text) == expected
    assert EncodeOptions(quality=text).quality == expected
    assert EncodeOptions(quality=list(expected)).quality == expected


@pytest.mark.parametrize("changes,message", [
    ({"quality": "80-65"}, "0 <= MIN <= MAX <= 100, got 80-65"),
    ({"quality": "101"}, "0 <= MIN <= MAX <= 100"),
    ({"quality": "high"}, "quality must be MIN-MAX with whole numbers"),
    ({"quality": 80.5}, "quality must be MIN-MAX"),
    ({"psnr": 0}, "psnr must be a number of dB from 1 to 100"),
    ({"psnr": float("inf")}, "psnr must be a number"),
    ({"psnr": "35"}, "psnr must be a number"),
    ({"max_bytes": 0}, "max_bytes must be a positive integer"),
    ({"max_bytes": 1.5}, "max_bytes must be a positive integer"),
    ({"bpp": -1}, "bpp must be a positive number"),
    ({"skip_if_larger": "yes"}, "skip_if_larger must be True or False"),
    ({"psnr": 35, "quality": "65-80"}, "psnr and quality are alternative targets; give one"),
    ({"max_bytes": 1000, "bpp": 1.0}, "max_bytes and bpp are alternative targets"),
])
def test_target_options_are_checked_once_in_the_options_value(changes, message):
    with pytest.raises(OptionError, match=message):
        EncodeOptions(**changes)


def test_target_names_the_option_given():
    assert EncodeOptions().target is None
    assert EncodeOptions(bpp=1).target == "bpp"
    with pytest.raises(OptionError, match="needs a target"):
        vqcodec.encode_target(np.zeros((4, 4, 3), np.uint8))


# PSNR and quality


@pytest.mark.parametrize("db", [30.0, 36.0])
def test_psnr_target_is_met_on_the_decoded_file(sample, db):
    result = vqcodec.encode_target(sample, psnr=db)
    assert result.reached and result.ok and not result.skipped
    measured = independent_psnr(sample, result.data)
    assert measured >= db
    assert measured == pytest.approx(result.psnr, abs=1e-9)
    assert result.k == vqcodec.read_header(result.data).k
    assert result.bytes == len(result.data)
    assert result.rdo == EncodeOptions().rdo


def test_psnr_target_takes_about_the_fewest_colours(sample):
    result = vqcodec.encode_target(sample, psnr=34.0)
    fewer = vqcodec.encode_target(sample, psnr=34.0, k=max(2, result.k - 3))  # k caps the search
    assert not fewer.reached and fewer.psnr < 34.0


def test_higher_targets_never_take_fewer_colours_or_bytes(sample):
    results = [vqcodec.encode_target(sample, psnr=db) for db in (28, 31, 34, 37, 40)]
    assert [r.k for r in results] == sorted(r.k for r in results)
    assert [r.bytes for r in results] == sorted(r.bytes for r in results)
    qualities = [vqcodec.encode_target(sample, quality=f"0-{q}") for q in (40, 60, 80)]
    assert [r.k for r in qualities] == sorted(r.k for r in qualities)


def test_quality_target_meets_max_error_on_the_decoded_file(sample):
    result = vqcodec.encode_target(sample, quality="65-80")
    assert result.reached and result.quality >= 80
    decoded = vqcodec.decode(result.data).astype(float)
    assert np.mean((decoded - sample) ** 2) <= target.quality_to_mse(80)


def test_quality_between_min_and_max_is_written_at_k(sample):
    best = vqcodec.encode_target(sample, psnr=99.0, k=16)  # what k = 16 can do: unreachable
    assert not best.reached and 0 < best.quality < 99
    result = vqcodec.encode_target(sample, quality=f"{best.quality}-99", k=16)
    assert result.reached and result.k == 16 and result.quality == best.quality
    assert vqcodec.read_header(result.data).k == 16
    below = vqcodec.encode_target(sample, quality=f"{best.quality + 1}-99", k=16)
    assert not below.reached and below.data is None


def test_unreachable_quality_is_a_result_not_an_exception(noise, tmp_path):
    result = vqcodec.encode_target(noise, quality="65-80")
    assert not result.reached and not result.ok
    assert result.encoded is None and result.data is None
    assert result.k == 256 and result.quality < 65 and result.psnr < 35
    assert result.as_dict()["reached"] is False
    with pytest.raises(TargetUnreachableError, match=r"target quality 65-80 not reached.*k=256") as e:
        vqcodec.encode_pixels(noise, quality="65-80")
    assert e.value.result.quality == result.quality
    out = tmp_path / "noise.vqi"
    with pytest.raises(TargetUnreachableError):
        vqcodec.encode(noise, out, quality="65-80")
    assert not out.exists()


# byte budgets


@pytest.mark.parametrize("fraction", [0.25, 0.6])
def test_max_bytes_fits_and_uses_the_budget(sample, fraction):
    top = len(vqcodec.encode(sample))
    size = int(top * fraction)
    result = vqcodec.encode_target(sample, max_bytes=size)
    assert result.reached and len(result.data) == result.bytes <= size
    assert result.bytes >= 0.9 * size
    assert independent_psnr(sample, result.data) == pytest.approx(result.psnr, abs=1e-9)
    more = vqcodec.encode_target(sample, max_bytes=int(size * 1.3))
    assert more.psnr >= result.psnr


def test_bpp_is_a_byte_budget(sample):
    h, w, _ = sample.shape
    by_bpp = vqcodec.encode_target(sample, bpp=1.0)
    by_bytes = vqcodec.encode_target(sample, max_bytes=h * w // 8)
    assert by_bpp.data == by_bytes.data
    assert by_bpp.target == f"<= {h * w // 8:,} bytes"


@pytest.mark.skipif(not ctxcoder.available(),
                    reason="the squeeze is measured with coder 2, which encodes with vqcodec._ctxcoder")
def test_a_budget_below_two_colours_squeezes_with_rdo(sample):
    two = len(vqcodec.encode(sample, k=2))
    result = vqcodec.encode_target(sample, max_bytes=two - 1)
    assert result.reached and result.k == 2
    assert len(result.data) == result.bytes <= two - 1


def test_an_impossible_budget_is_unreachable(sample):
    result = vqcodec.encode_target(sample, max_bytes=200)
    assert not result.reached and result.data is None and result.bytes > 200
    with pytest.raises(TargetUnreachableError, match="smallest file found is"):
        vqcodec.encode(sample, max_bytes=200)


# lossless inputs and re-encoding


def few_colours() -> np.ndarray:
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    return palette[rng.integers(0, 40, (30, 50))]


@pytest.mark.parametrize("changes", [{"psnr": 30.0}, {"quality": "65-80"}, {"max_bytes": 100_000}])
def test_an_input_of_at_most_k_colours_stays_lossless(changes):
    image = few_colours()
    result = vqcodec.encode_target(image, **changes)
    assert result.reached and result.k == 40 and result.mse == 0 and math.isinf(result.psnr)
    assert np.array_equal(vqcodec.decode(result.data), image)


def test_a_budget_below_the_lossless_file_of_few_colours_takes_fewer():
    image = few_colours()
    lossless = len(vqcodec.encode(image))
    for size in (lossless - 1, lossless // 2):
        result = vqcodec.encode_target(image, max_bytes=size)
        assert result.reached and result.k < 40 and result.bytes <= size


@pytest.mark.parametrize("changes", [{"psnr": 33.0}, {"quality": "65-80"}, {"bpp": 1.5}])
def test_reencoding_a_decoded_file_gives_the_same_file(sample, changes):
    first = vqcodec.encode(sample, **changes)
    again = vqcodec.encode(vqcodec.decode(first), **changes)
    assert again == first


def test_alpha_images_meet_the_target_premultiplied():
    rng = np.random.default_rng(2)
    image = np.asarray(Image.open(SAMPLE).convert("RGBA")).copy()[:128, :128]
    image[..., 3] = rng.integers(0, 256, image.shape[:2])
    result = vqcodec.encode_target(image, psnr=32.0)
    assert result.reached and independent_psnr(image, result.data) >= 32.0


# skip_if_larger


def test_skip_if_larger_refuses_a_file_that_would_not_be_smaller(tmp_path):
    path = tmp_path / "tiny.jpg"
    Image.open(SAMPLE).convert("RGB").save(path, quality=5)  # a JPEG of a few kB
    with pytest.raises(NotSmallerError, match="not smaller than the input's") as e:
        vqcodec.encode(str(path), skip_if_larger=True)
    assert e.value.encoded_bytes >= e.value.input_bytes == path.stat().st_size
    result = vqcodec.encode_target(path.read_bytes(), psnr=30.0, skip_if_larger=True)
    assert result.reached and result.skipped and not result.ok and result.data is None
    assert result.input_bytes == path.stat().st_size
    stream = io.BytesIO(path.read_bytes())  # a seekable stream tells its length
    with pytest.raises(NotSmallerError, match="not smaller than the input's"):
        vqcodec.encode(stream, skip_if_larger=True)


@pytest.mark.parametrize("make, what", [
    (lambda path: np.asarray(Image.open(path)), "a numpy array"),
    (lambda path: Image.open(path), "a PIL image"),
    (lambda path: OneWayStream(path.read_bytes()), "a stream .* that cannot tell its length"),
], ids=["array", "PIL", "pipe"])
@pytest.mark.parametrize("encode", [
    lambda image: vqcodec.encode(image, skip_if_larger=True),
    lambda image: vqcodec.encode_target(image, psnr=30.0, skip_if_larger=True),
], ids=["encode", "target"])
def test_skip_if_larger_without_an_input_file_is_refused_not_ignored(tmp_path, make, what, encode):
    path = tmp_path / "tiny.jpg"
    Image.open(SAMPLE).convert("RGB").save(path, quality=5)  # the .vqi file would be larger
    with pytest.raises(OptionError, match=f"skip_if_larger compares .* the input is {what}, not a file"):
        encode(make(path))
    assert vqcodec.encode(make(path))  # without it the same input encodes


def test_skip_if_larger_keeps_a_smaller_file(kodak):
    path = kodak / "kodim01.png"
    data = vqcodec.encode(str(path), quality="65-80", skip_if_larger=True)
    assert len(data) < path.stat().st_size


# the Pillow plugin and batch take the same options


def test_pillow_plugin_saves_to_a_target(sample, tmp_path, noise):
    out = tmp_path / "q.vqi"
    Image.fromarray(sample).save(out, quality="65-80")
    assert independent_psnr(sample, out.read_bytes()) >= 10 * math.log10(255**2 / target.quality_to_mse(80))
    Image.fromarray(sample).save(tmp_path / "p.vqi", psnr=35)
    assert independent_psnr(sample, (tmp_path / "p.vqi").read_bytes()) >= 35
    bad = tmp_path / "noise.vqi"
    with pytest.raises(TargetUnreachableError):
        Image.fromarray(noise).save(bad, quality="65-80")
    assert not bad.exists()
    with pytest.raises(OptionError, match="alternative targets"):
        Image.fromarray(sample).save(tmp_path / "x.vqi", psnr=35, bpp=1)


def test_batch_workers_take_targets(tmp_path, noise):
    Image.fromarray(np.asarray(Image.open(SAMPLE).convert("RGB"))).save(tmp_path / "a.png")
    Image.fromarray(noise).save(tmp_path / "n.png")
    opts = EncodeOptions(psnr=33.0)
    good = batch.encode_file(str(tmp_path / "a.png"), str(tmp_path / "a.vqi"), opts)
    assert good.ok and good.psnr >= 33.0
    assert good.k == vqcodec.read_header((tmp_path / "a.vqi").read_bytes()).k < 256
    bad = batch.encode_file(str(tmp_path / "n.png"), str(tmp_path / "n.vqi"), opts)
    assert not bad.ok and bad.skipped == "unreachable" and "not reached" in bad.error
    assert not (tmp_path / "n.vqi").exists()


# with the other options: dithering is searched with, a fixed codebook or blocks are refused


def test_a_target_with_dithering_is_met_dithered(sample):
    plain = vqcodec.encode_target(sample, psnr=32.0)
    dithered = vqcodec.encode_target(sample, psnr=32.0, dither=1.0)
    assert dithered.reached and independent_psnr(sample, dithered.data) >= 32.0
    assert dithered.k >= plain.k  # diffusing the error costs PSNR: more colours for the same target
    assert dithered.data != plain.data


def test_a_target_does_not_go_with_a_shared_codebook_or_blocks(sample):
    book = vqcodec.encode_pixels(sample, k=16).codebook
    with pytest.raises(OptionError, match="psnr chooses the codebook size, and a shared codebook fixes it"):
        EncodeOptions(psnr=30, codebook=book)
    with pytest.raises(OptionError, match="quality chooses k for single pixels; it does not apply to 2x2"):
        EncodeOptions(quality="65-80", block=(2, 2))
