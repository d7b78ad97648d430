"""Dithering (vqcodec.quantize.dither, remap(dither=...), EncodeOptions.dither, --dither)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import vqcodec
from vqcodec import codec, metrics
from vqcodec.errors import OptionError
from vqcodec.options import EncodeOptions
from vqcodec.quantize import Codebook, dither, quantize, remap

needs_c = pytest.mark.skipif(dither._native is None, reason="the C extension is not in use")


def gradient(h: int = 48, w: int = 256, channels: int = 3) -> np.ndarray:
    """A smooth diagonal gradient: what a small codebook turns into bands."""
    y, x = np.mgrid[0:h, 0:w]
    planes = [x * 255 // max(w - 1, 1), (x + 2 * y) * 255 // max(w + 2 * h - 3, 1),
              np.full_like(x, 90), 255 - x // 2]
    return np.stack(planes[:channels], -1).astype(np.uint8)


def textured(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = gradient(h, w, channels).astype(int) + rng.integers(-4, 5, (h, w, channels))
    img[: h // 3, : w // 3] = rng.integers(0, 256, (h // 3, w // 3, channels))  # noise
    img[:, w // 2 :: 7] = 255 - img[:, w // 2 :: 7]  # edges
    return np.clip(img, 0, 255).astype(np.uint8)


def test_dithering_lowers_the_blurred_error_of_a_gradient():
    img = gradient()
    plain = codec.encode_pixels(img, k=16, rdo=0).reconstruct()
    dithered = codec.encode_pixels(img, k=16, rdo=0, dither=1.0).reconstruct()
    default_rdo = codec.encode_pixels(img, k=16, dither=1.0).reconstruct()
    before = metrics.blurred_psnr(img, plain)
    assert metrics.blurred_psnr(img, dithered) > before + 3.0
    assert metrics.blurred_psnr(img, default_rdo) > before + 3.0  # the in-loop rate choice keeps it
    assert metrics.psnr(img, dithered) < metrics.psnr(img, plain)  # the price: plain PSNR (why it is off)


def test_the_rate_aware_choice_inside_the_loop_saves_bytes_and_keeps_the_dithering():
    from vqcodec.coders import ctx

    if not ctx.available():
        pytest.skip("the context coder (index coder 2, what the choice is tuned for) is not built")
    img = textured(64, 192, 3, 7)
    img[40:] = gradient(24, 192)  # texture above, a smooth ramp below
    plain = codec.encode_pixels(img, k=12, rdo=0, coder="ctx")
    alone = codec.encode_pixels(img, k=12, rdo=0, dither=1.0, coder="ctx")
    inside = codec.encode_pixels(img, k=12, rdo=0.6, dither=1.0, coder="ctx")
    assert len(inside.data) < len(alone.data)
    ramp = np.s_[40:]
    blurred = [metrics.blurred_psnr(img[ramp], e.reconstruct()[ramp]) for e in (plain, alone, inside)]
    assert blurred[2] > blurred[0] + 2.0  # the ramp stays dithered
    assert blurred[2] > blurred[1] - 1.0


def test_a_lower_level_dithers_less():
    img = gradient()
    q = quantize(img, k=6)
    changed = [np.count_nonzero(remap(img, q.codebook, indices=q.indices, dither=level) != q.indices)
               for level in (0.25, 1.0)]
    assert 0 < changed[0] < changed[1]


def test_level_zero_is_todays_encoder():
    img = textured(40, 60, 3, 0)
    assert EncodeOptions().dither == 0.0
    assert vqcodec.encode(img, k=16, dither=0) == vqcodec.encode(img, k=16)
    q = quantize(img, k=16)
    np.testing.assert_array_equal(remap(img, q.codebook, indices=q.indices, rdo_strength=0.6, dither=0),
                                  remap(img, q.codebook, indices=q.indices, rdo_strength=0.6))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_an_image_of_at_most_k_colours_is_never_dithered(channels):
    rng = np.random.default_rng(channels)
    palette = rng.integers(0, 256, (5, channels), dtype=np.uint8)
    img = palette[rng.integers(0, 5, (30, 40))]
    enc = codec.encode_pixels(img, k=16, dither=1.0)
    np.testing.assert_array_equal(enc.reconstruct(), img)
    assert enc.data == codec.encode_pixels(img, k=16).data


def test_weights_are_low_on_edges_and_noise_and_full_in_smooth_areas():
    img = gradient(40, 120)
    img[:, 80:] = 255 - img[:, 80:]  # a hard edge at column 80
    rng = np.random.default_rng(0)
    img[:12, :30] = rng.integers(0, 256, (12, 30, 3))  # noise
    share = dither.weights(img, 1.0, mean=40.0)
    full = dither.curve(1.0)
    assert share[20:, 40:70].min() > 0.9 * full  # the ramp's 1-level steps count for little
    assert share[20:, 79:81].max() < 0.2 * full
    assert share[3:9, 5:25].max() <= dither.NOISE_FLOOR * full + 1e-9
    assert share.min() >= 0 and share.max() <= full


def test_weights_and_mean_error_on_bands_equal_the_whole_image(monkeypatch):
    img = textured(50, 37, 3, 4)
    q = quantize(img, k=8)
    whole_mean = dither.mean_error(img, q.codebook, q.indices)
    whole = dither.weights(img, 0.7, whole_mean)
    monkeypatch.setattr(dither, "BAND_PIXELS", 37 * 4)  # bands of 4 rows, each with 3 rows of context
    assert len(dither._bands(50, 37)) == 13
    assert dither.mean_error(img, q.codebook, q.indices) == pytest.approx(whole_mean, rel=1e-12)
    np.testing.assert_array_equal(dither.weights(img, 0.7, whole_mean), whole)


def cases():
    for channels in (1, 2, 3, 4):
        for seed, (h, w) in enumerate([(1, 1), (1, 9), (9, 1), (17, 23), (31, 40)]):
            yield channels, seed, h, w


@needs_c
@pytest.mark.parametrize("channels,seed,h,w", list(cases()))
@pytest.mark.parametrize("strength", [0.0, 0.6])
def test_c_loop_equals_the_python_reference(channels, seed, h, w, strength):
    img = textured(h, w, channels, seed)
    if channels in (2, 4):
        img[h // 2 :, : w // 2, -1] = 0  # transparent
        img[: h // 2, w // 2 :, -1] //= 3
    q = quantize(img, k=8, seed=seed)
    mean = dither.mean_error(img, q.codebook, q.indices)
    share = dither.weights(img, 1.0, mean)
    args = (img, q.codebook, q.indices, share, dither.clamp(mean), strength, strength * mean)
    c, py = dither.diffuse(*args, native=True), dither.diffuse(*args, native=False)
    np.testing.assert_array_equal(c, py)
    assert c.dtype == q.indices.dtype


@needs_c
def test_c_loop_equals_the_python_reference_for_wide_indices():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    book = np.unique(rng.integers(0, 256, (600, 3), dtype=np.uint8), axis=0)
    q = remap(img, book)
    assert q.dtype == np.uint16
    share = np.full(q.shape, dither.curve(1.0))
    c = dither.diffuse(img, book, q, share, 300.0, 0.6, 20.0, native=True)
    np.testing.assert_array_equal(c, dither.diffuse(img, book, q, share, 300.0, 0.6, 20.0, native=False))
    assert np.count_nonzero(c != q)


def test_transparent_pixels_take_and_pass_no_error():
    rng = np.random.default_rng(3)
    img = np.zeros((20, 50, 4), np.uint8)
    img[:, 25:] = gradient(20, 25, 4)
    img[:, 25:, 3] = 200
    img[:, :25] = rng.integers(0, 256, (20, 25, 4))
    img[:, :25, 3] = 0  # transparent, with hidden colours
    book = np.array([[0, 0, 0, 0], [255, 0, 90, 200], [0, 255, 90, 200], [128, 128, 90, 200]], np.uint8)
    nearest = remap(img, book)
    share = np.full(nearest.shape, dither.curve(1.0))
    out = dither.diffuse(img, book, nearest, share, 1e9)
    np.testing.assert_array_equal(out[:, :25], nearest[:, :25])  # their nearest entry, untouched
    assert np.count_nonzero(out[:, 25:] != nearest[:, 25:])  # the visible half is dithered
    alone = dither.diffuse(img[:, 25:], book, nearest[:, 25:], share[:, 25:], 1e9)
    np.testing.assert_array_equal(out[:, 25:], alone)  # no error came from the transparent half
    other = img.copy()
    other[:, :25, :3] = 255 - other[:, :25, :3]  # other hidden colours: nothing changes
    assert codec.encode_pixels(other, k=4, dither=1.0).data == codec.encode_pixels(img, k=4, dither=1.0).data


def test_alpha_is_dithered_in_the_premultiplied_space():
    img = gradient(32, 128, 4)
    img[..., 3] = np.linspace(0, 255, 128).astype(np.uint8)[None, :]
    plain = codec.encode_pixels(img, k=6, rdo=0).reconstruct()
    dithered = codec.encode_pixels(img, k=6, rdo=0, dither=1.0).reconstruct()
    assert metrics.blurred_psnr(img, dithered) > metrics.blurred_psnr(img, plain) + 1.0


def test_block_codebooks_are_refused():
    img = gradient(8, 8, 4)
    book = Codebook(np.zeros((4, 16), np.uint8), channels=4, block=(2, 2))
    with pytest.raises(OptionError, match="dithering maps single pixels, not 2x2 blocks"):
        remap(img, book, dither=0.5)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), True, "1", None])
def test_option_errors(value):
    with pytest.raises(OptionError, match="dither must be a number from 0 to 1"):
        EncodeOptions(dither=value)
    if not isinstance(value, str) and value is not None:
        with pytest.raises(OptionError, match="dither must be a number from 0 to 1"):
            remap(gradient(4, 4), np.zeros((2, 3), np.uint8), dither=value)


def test_pillow_plugin_takes_dither(tmp_path):
    from PIL import Image

    img = gradient()
    path = tmp_path / "g.vqi"
    Image.fromarray(img).save(path, k=6, dither=1.0)
    assert path.read_bytes() == vqcodec.encode(img, k=6, dither=1.0)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqcodec", *map(str, args)], capture_output=True, timeout=120)


def test_cli_dither_flag_alone_is_one_and_a_level_is_taken(tmp_path):
    from PIL import Image

    src = tmp_path / "g.png"
    Image.fromarray(gradient()).save(src)
    for args, level in ((["--dither"], 1.0), (["--dither", "0.5"], 0.5), (["--dither=0"], 0.0)):
        out = tmp_path / f"g{level}.vqi"
        proc = run_cli("encode", "-q", "-k", "6", src, out, *args)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == vqcodec.encode(np.asarray(Image.open(src)), k=6, dither=level)


@pytest.mark.parametrize("args,pattern", [
    (["--dither", "2"], r"dither must be a number from 0 to 1, got 2\.0"),
    (["--dither", "much"], r"dither must be a number from 0 to 1, got 'much'"),
])
def test_cli_dither_errors_are_one_line_exit_2(tmp_path, args, pattern):
    from PIL import Image

    src = tmp_path / "g.png"
    Image.fromarray(gradient(8, 8)).save(src)
    proc = run_cli("encode", *args, src, tmp_path / "g.vqi")
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqcodec: error: "), lines
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "g.vqi").exists()


def test_cli_dither_before_a_path_says_how_to_write_it(tmp_path):
    from PIL import Image

    src = tmp_path / "g.png"
    Image.fromarray(gradient(8, 8)).save(src)
    proc = run_cli("encode", "--dither", src, tmp_path / "g.vqi")
    assert proc.returncode == 2
    assert "--dither 1 or --dither=1" in proc.stderr.decode()


def test_cli_rd_sweeps_dither_and_reports_blurred_psnr(tmp_path):
    from PIL import Image

    src = tmp_path / "g.png"
    Image.fromarray(gradient(24, 64)).save(src)
    proc = run_cli("rd", src, "-k", "8", "--dither", "0,1", "--no-baselines")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "blurPSNR" in out and "SSIM" in out and "vqcodec dither=1" in out
    lines = [line.split() for line in out.splitlines() if line.strip().startswith("8 ")]
    assert len(lines) == 1 and len(lines[0]) == 1 + 6 + 4  # k, vqcodec's columns, the variant's
    bad = run_cli("rd", src, "-k", "8", "--dither", "0,2")
    assert bad.returncode == 2 and len(bad.stderr.decode().strip().splitlines()) == 1
    assert "dither must be a number from 0 to 1" in bad.stderr.decode()


def test_batch_encode_takes_dither(tmp_path):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(gradient()).save(src / "g.png")
    proc = run_cli("encode", "-q", "-k", "6", "--dither", "0.5", "--output-dir", tmp_path / "out", "-j", "1", src / "g.png")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "g.vqi").read_bytes() == vqcodec.encode(gradient(), k=6, dither=0.5)
