"""vqcodec.rd and `vqcodec rd`: rows, the quality search, BD-rate, outputs, skips, the CLI."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import codec, metrics, pixels, rd
from vqcodec.errors import OptionError

PNGQUANT = shutil.which("pngquant")
needs_pngquant = pytest.mark.skipif(PNGQUANT is None, reason="pngquant is not on PATH")


def synthetic(height: int = 32, width: int = 48, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus a little noise: many colours, compressible, lossy at small k."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = [
        x * 255 / (width - 1),
        y * 255 / (height - 1),
        (x + y) * 127 / (width + height),
        np.where((x // 8 + y // 8) % 2, 230, 40),
    ][:channels]
    image = np.stack(planes, axis=-1) + rng.normal(0, 2, (height, width, channels))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def px() -> pixels.Pixels:
    return pixels.from_array(synthetic())


def pillow_psnr(px: pixels.Pixels, fmt: str, quality: int, **options) -> float:
    data = pixels.to_bytes(px, fmt, quality=quality, **options)
    with Image.open(io.BytesIO(data)) as im:
        decoded = np.asarray(im.convert(px.mode)).reshape(px.array.shape)
    return metrics.psnr(px.array, decoded)


# --------------------------------------------------------------------------
# Rows


def test_vqcodec_rows_are_the_codec_and_the_metrics(px):
    rows = rd.measure_image(px, name="syn", ks=(4, 16), baselines=())
    assert [(r.codec, r.k) for r in rows] == [("vqcodec", 4), ("vqcodec", 16)]
    for row in rows:
        data = codec.encode(px.array, k=row.k, seed=0)
        decoded = codec.decode(data).reshape(px.array.shape)
        assert row.bytes == len(data)
        assert row.bpp == 8 * len(data) / (px.width * px.height)
        assert row.ratio == px.array.size / len(data)
        assert row.mse == metrics.mse(px.array, decoded)
        assert row.psnr == metrics.psnr(px.array, decoded)
        assert row.ssim == metrics.ssim(px.array, decoded)
        assert (row.image, row.width, row.height, row.mode) == ("syn", 48, 32, "RGB")
        assert row.encode_s > 0 and row.decode_s > 0
        assert row.encode_mps == pytest.approx(48 * 32 / 1e6 / row.encode_s)
    assert rows[0].psnr < rows[1].psnr


def test_decode_is_checked_against_reconstruct_first(px, monkeypatch):
    real = codec.decode

    def damaged(data, **kw):
        out = real(data, **kw).copy()
        out[0, 0] ^= 1
        return out

    monkeypatch.setattr(codec, "decode", damaged)
    with pytest.raises(rd.RoundTripError, match=r"differs from Encoded.reconstruct\(\) in 1 pixels"):
        rd.measure_vqcodec(px, k=8)


def test_png_row_is_lossless_and_repeated_for_every_k(px):
    rows = [r for r in rd.measure_image(px, ks=(4, 8), baselines=("png",)) if r.codec == "png"]
    assert [r.k for r in rows] == [4, 8]
    data = pixels.to_bytes(px, "PNG", compress_level=9)
    for row in rows:
        assert row.bytes == len(data)
        assert row.mse == 0.0 and row.psnr == math.inf and row.ssim == 1.0


@pytest.mark.parametrize("baseline, fmt, options", [
    ("jpeg", "JPEG", {"optimize": True}),
    ("webp", "WEBP", {}),
])
def test_quality_search_gives_the_smallest_quality_reaching_the_target(px, baseline, fmt, options):
    for target in (24.0, 31.5, 36.0):
        quality, reached, psnr = rd.smallest_quality(px, baseline, target)
        assert reached
        assert psnr == pillow_psnr(px, fmt, quality, **options) >= target
        if quality > 1:
            assert pillow_psnr(px, fmt, quality - 1, **options) < target


def test_lossy_rows_reach_vqcodecs_psnr_at_the_smallest_quality(px):
    rows = rd.measure_image(px, ks=(4, 32), baselines=("jpeg",))
    vq = {r.k: r for r in rows if r.codec == "vqcodec"}
    for row in (r for r in rows if r.codec == "jpeg"):
        assert row.target_psnr == vq[row.k].psnr
        assert row.reached and row.psnr >= row.target_psnr
        assert row.psnr == pillow_psnr(px, "JPEG", row.quality, optimize=True)
        if row.quality > 1:
            assert pillow_psnr(px, "JPEG", row.quality - 1, optimize=True) < row.target_psnr
        data = pixels.to_bytes(px, "JPEG", quality=row.quality, optimize=True)
        assert row.bytes == len(data) and row.bpp == 8 * len(data) / (48 * 32)


def test_unreachable_psnr_keeps_quality_100_and_flags_it(px):
    quality, reached, psnr = rd.smallest_quality(px, "jpeg", math.inf)
    assert (quality, reached) == (100, False) and math.isfinite(psnr)
    # k at least the number of colours: vqcodec is lossless, no lossy quality reaches it
    few = pixels.from_array(np.array([[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [0, 0, 255]]] * 4, np.uint8))
    rows = rd.measure_image(few, ks=(4,), baselines=("jpeg",))
    jpeg = [r for r in rows if r.codec == "jpeg"][0]
    assert rows[0].psnr == math.inf and jpeg.quality == 100 and jpeg.reached is False


def test_smallest_quality_rejects_other_codecs(px):
    with pytest.raises(OptionError, match="baseline must be one of webp, avif, jpeg"):
        rd.smallest_quality(px, "png", 30.0)


def test_alpha_images_use_premultiplied_psnr_and_skip_jpeg():
    rgba = pixels.from_array(synthetic(channels=4))
    rows = rd.measure_image(rgba, ks=(8,), baselines=("png", "jpeg", "webp"))
    assert [r.codec for r in rows] == ["vqcodec", "png", "webp"]
    data = codec.encode(rgba.array, k=8)
    decoded = codec.decode(data)
    assert rows[0].psnr == metrics.psnr(rgba.array, decoded, alpha="premultiplied")
    assert rows[0].psnr != metrics.psnr(rgba.array, decoded, alpha="straight")


@needs_pngquant
def test_pngquant_rows(px, tmp_path):
    rows = rd.measure_image(px, ks=(8, 300), baselines=("pngquant",), pngquant=PNGQUANT)
    pq = [r for r in rows if r.codec == "pngquant"]
    assert [r.k for r in pq] == [8]  # pngquant stops at 256 colours
    src = tmp_path / "src.png"
    src.write_bytes(pixels.to_bytes(px, "PNG"))
    out = tmp_path / "out.png"
    subprocess.run([PNGQUANT, "--nofs", "8", "--output", str(out), "--", str(src)], check=True)
    with Image.open(out) as im:
        decoded = np.asarray(im.convert("RGB"))
    assert pq[0].bytes == out.stat().st_size
    assert pq[0].psnr == metrics.psnr(px.array, decoded)
    assert pq[0].settings == "--nofs 8"


# --------------------------------------------------------------------------
# BD-rate


def test_bd_rate_of_a_curve_at_080_times_the_rate_is_minus_20_percent():
    psnr = [30.0, 33.0, 36.0, 39.0, 42.0]
    anchor = [0.5, 1.1, 2.0, 3.2, 5.0]
    test = [0.8 * r for r in anchor]
    assert rd.bd_rate(anchor, psnr, test, psnr) == pytest.approx(-20.0, abs=1e-9)
    assert rd.bd_rate(test, psnr, anchor, psnr) == pytest.approx(25.0, abs=1e-9)


def test_bd_rate_against_hand_computations():
    # log10 R = 0.1 P - 1 (anchor); test adds 0.01 (P - 30); shared PSNR interval [32, 38]:
    # mean difference 0.01 * (35 - 30) = 0.05, BD-rate = 10^0.05 - 1.
    pa = np.array([30.0, 32.0, 34.0, 36.0, 38.0])
    pt = np.array([32.0, 34.5, 37.0, 39.0, 40.0])
    ra = 10 ** (0.1 * pa - 1)
    rt = 10 ** (0.1 * pt - 1 + 0.01 * (pt - 30))
    assert rd.bd_rate(ra, pa, rt, pt) == pytest.approx((10 ** 0.05 - 1) * 100, abs=1e-9)
    # three points, as in `rd -k 16,64,256`: still exact on straight lines
    p3, q3 = pa[[0, 2, 4]], np.array([31.0, 35.0, 39.0])
    assert rd.bd_rate(10 ** (0.1 * p3 - 1), p3, 10 ** (0.1 * q3 - 1 + 0.02), q3) == pytest.approx(
        (10 ** 0.02 - 1) * 100, abs=1e-9)


def test_bd_rate_converges_to_the_integral_on_smooth_curves():
    # log10 R = sqrt(P - 25) (concave, like real RD curves); the test curve sits on a shifted
    # PSNR grid and adds 0.002 (P - 35)^2.  Over [30, 40] the mean of (P-35)^2 is 25/3.
    # PCHIP is not exact on such curves, but converges to the integral as points are added.
    exact = (10 ** (0.002 * 25 / 3) - 1) * 100
    errors = []
    for n in (5, 9, 17, 33):
        pa = np.linspace(29.0, 41.0, n)
        pt = np.linspace(30.0, 40.0, n)
        ra = 10 ** np.sqrt(pa - 25)
        rt = 10 ** (np.sqrt(pt - 25) + 0.002 * (pt - 35) ** 2)
        errors.append(abs(rd.bd_rate(ra, pa, rt, pt) - exact))
    assert errors[0] < 0.5 and errors[-1] < 0.01, errors
    assert errors[-1] < errors[0] / 10, errors


def test_bd_rate_is_na_without_two_points_or_overlap():
    p4 = [30.0, 32.0, 34.0, 36.0]
    r4 = [1.0, 2.0, 3.0, 4.0]
    assert rd.bd_rate(r4[:1], p4[:1], r4[:1], p4[:1]) is None
    assert rd.bd_rate(r4[:2], [30.0, 30.0], r4[:2], p4[:2]) is None  # one distinct PSNR
    # an infinite (lossless) PSNR is not a point of the curve
    assert rd.bd_rate(r4[:2], [30.0, math.inf], r4, p4) is None
    assert rd.bd_rate(r4, p4, r4, [40.0, 41.0, 42.0, 43.0]) is None
    assert rd.bd_rate(r4, p4, r4, p4) == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------
# The sweep over files, outputs, skips


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    Image.fromarray(synthetic()).save(root / "a.png")
    Image.fromarray(synthetic(seed=1)[:, :, 0]).save(root / "sub" / "b.bmp")
    Image.fromarray(synthetic()).save(root / ".hidden" / "c.png")
    (root / "notes.txt").write_text("not an image")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return root


def test_find_images_recurses_and_skips_what_is_not_an_image(folder):
    images, skipped = rd.find_images([str(folder), str(folder / "a.png"), str(folder / "nope.png")])
    assert images == [str(folder / "a.png"), str(folder / "broken.png"), str(folder / "sub" / "b.bmp")]
    assert skipped == [rd.Skipped(str(folder / "nope.png"), "no such file or folder")]


def test_sweep_skips_a_broken_file_and_measures_the_rest(folder):
    skips, steps = [], []
    result = rd.sweep([str(folder)], ks=(4, 8), baselines=("png",),
                      on_skip=lambda p, r: skips.append((p, r)),
                      progress=lambda done, total, what: steps.append((done, total)))
    assert result.images == [str(folder / "a.png"), str(folder / "sub" / "b.bmp")]
    assert result.modes == {str(folder / "a.png"): "RGB", str(folder / "sub" / "b.bmp"): "L"}
    assert len(skips) == 1 and skips[0][0] == str(folder / "broken.png")
    assert "invalid or damaged PNG header" in skips[0][1]
    assert result.skipped == [rd.Skipped(*skips[0])]
    assert len(result.rows) == 2 * 2 * 2
    assert steps[-1] == (6, 6) and all(d <= t for d, t in steps)


def test_csv_and_json_hold_the_same_rows(folder):
    result = rd.sweep([str(folder / "a.png")], ks=(8, 16, 32, 64), baselines=("png", "jpeg"))
    table = rd.format_table(result)
    assert "vs JPEG" in table and "vs PNG" not in table
    rows = list(csv.DictReader(io.StringIO(rd.to_csv(result))))
    document = json.loads(rd.to_json(result))
    assert len(rows) == len(document["rows"]) == len(result.rows) == 4 * 3
    for text, obj, row in zip(rows, document["rows"], result.rows):
        assert list(text) == list(obj) == list(rd.COLUMNS)
        for key in rd.COLUMNS:
            value = getattr(row, key)
            if isinstance(value, float) and math.isinf(value):
                assert obj[key] is None and text[key] == "inf"
            elif value is None:
                assert obj[key] is None and text[key] == ""
            elif isinstance(value, bool):
                assert obj[key] is value and text[key] == str(value)
            elif isinstance(value, (int, float)):
                assert obj[key] == value and type(value)(text[key]) == value
            else:
                assert obj[key] == text[key] == value
    assert document["ks"] == [8, 16, 32, 64]
    bd = document["bd_rate"]["jpeg"]
    assert bd["per_image"][str(folder / "a.png")] == pytest.approx(bd["mean_percent"])
    assert isinstance(bd["mean_percent"], float)
    assert [e["k"] for e in document["summary"]] == [8, 16, 32, 64]


def test_table_says_what_is_absent_and_about_alpha(tmp_path):
    Image.fromarray(synthetic(channels=4)).save(tmp_path / "a.png")
    result = rd.sweep([str(tmp_path / "a.png")], ks=(8,), baselines=("pngquant", "jpeg", "png"),
                      pngquant=None)
    table = rd.format_table(result)
    assert "pngquant absent: pngquant not found on PATH" in table
    assert "premultiplied RGBA" in table and "JPEG skipped" in table
    assert result.unavailable == {"pngquant": "pngquant not found on PATH (apt-get install pngquant)"}
    assert {r.codec for r in result.rows} == {"vqcodec", "png"}


def test_option_errors():
    with pytest.raises(OptionError, match="k must be an integer from 2 to 65536, got 1"):
        rd.check_ks([1, 4])
    with pytest.raises(OptionError, match="no k values given"):
        rd.check_ks([])
    with pytest.raises(OptionError, match="unknown baseline 'gif'"):
        rd.check_baselines(["png", "gif"])


def test_plot(folder):
    pytest.importorskip("matplotlib")
    result = rd.sweep([str(folder / "a.png")], ks=(4, 8), baselines=("png", "jpeg"))
    data = rd.plot_png(result)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")


# --------------------------------------------------------------------------
# The command line


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqcodec", "rd", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_end_to_end(folder, tmp_path):
    out_csv, out_json = tmp_path / "rd.csv", tmp_path / "rd.json"
    proc = run_cli(folder, "-k", "4,8", "--baselines", "png,jpeg", "--csv", out_csv, "--json", out_json)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    # the file is named once (D10)
    assert len(lines) == 1 and lines[0] == (f"vqcodec: warning: cannot read '{folder / 'broken.png'}': "
                                            "invalid or damaged PNG header; skipped")
    assert "vqcodec rd: 2 images (L, RGB), k = 4, 8; means over images" in proc.stdout
    assert re.search(r"vs JPEG +[-+]\d+\.\d %", proc.stdout), proc.stdout
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == len(json.loads(out_json.read_text())["rows"]) == 2 * 2 * 3
    assert {r["codec"] for r in rows} == {"vqcodec", "png", "jpeg"}


def test_cli_json_to_stdout_moves_the_table_to_stderr(folder):
    proc = run_cli(folder / "a.png", "-k", "4", "--no-baselines", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert [r["codec"] for r in document["rows"]] == ["vqcodec"]
    assert "vqcodec rd: 1 image (RGB)" in proc.stderr


def test_cli_exits_2_when_no_image_is_measured(folder):
    proc = run_cli(folder / "broken.png", folder / "missing.png", "-k", "4")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 3 and proc.stdout == ""
    assert lines[-1].startswith("vqcodec: error: no image could be measured (2 skipped)")


@pytest.mark.parametrize("args, message", [
    (["-k", "1,4"], "k must be an integer from 2 to 65536, got 1"),
    (["-k", "x"], "k must be a comma-separated list"),
    (["--baselines", "gif"], "unknown baseline 'gif'"),
    (["--csv", "/nonexistent-folder/x.csv"], "folder '/nonexistent-folder' does not exist"),
    (["--csv", "-", "--json", "-"], "only one of --csv and --json can be '-'"),
    (["--variant", "k=4"], "a variant sets one of seed, rdo"),
    (["--variant", "rdo"], "a variant is NAME=VALUE"),
    (["--variant", "rdo=-1"], "rdo must be a number"),
    (["--variant", "coder=lzma"], "coder must be one of"),
])
def test_cli_usage_errors(folder, args, message):
    proc = run_cli(folder / "a.png", *args)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqcodec: error: ") and message in lines[0]


def test_cli_plot_without_matplotlib_fails_before_the_sweep(folder, tmp_path, monkeypatch, capsys):
    from vqcodec.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out_csv = tmp_path / "x.csv"
    code = main(["rd", str(folder), "--plot", str(tmp_path / "p.png"), "--csv", str(out_csv)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err == ("vqcodec: error: --plot needs matplotlib: pip install -e '.[plot]' "
                            "(in vqcodec's folder)\n")
    assert not out_csv.exists()


def test_icc_profiles_follow_encodes_rule(tmp_path):
    """One ICC rule for rd and encode: kept by default in every codec's file (rd's
    vqcodec bytes are encode's), left out of all with strip (encode --strip's)."""
    import shutil

    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = synthetic()
    Image.fromarray(image).save(tmp_path / "icc.png", icc_profile=icc)
    Image.fromarray(image).save(tmp_path / "plain.png")
    baselines = ("png", "webp", "pngquant") if shutil.which("pngquant") else ("png", "webp")
    for strip in (False, True):
        runs = {name: rd.sweep([str(tmp_path / f"{name}.png")], ks=(8,), baselines=baselines,
                               strip=strip)
                for name in ("icc", "plain")}
        for codec_name in ("vqcodec", *baselines):
            sizes = {name: [r.bytes for r in result.rows if r.codec == codec_name]
                     for name, result in runs.items()}
            if strip:
                assert sizes["icc"] == sizes["plain"], codec_name
            else:  # the profile costs the same compressed bytes, or so, in every file
                assert all(i > p + 100 for i, p in zip(sizes["icc"], sizes["plain"])), codec_name
        for name in ("icc", "plain"):
            encoded = vqcodec.encode(str(tmp_path / f"{name}.png"), k=8, strip=strip)
            assert [r.bytes for r in runs[name].rows if r.codec == "vqcodec"] == [len(encoded)]
        assert runs["icc"].icc_images == [str(tmp_path / "icc.png")] and runs["plain"].icc_images == []
        table = rd.format_table(runs["icc"])
        assert ("left out of every codec's file (--strip)" in table) == strip
        assert ("kept in every codec's file, as encode keeps it" in table) == (not strip)
    assert "ICC" not in rd.format_table(runs["plain"])


def test_summary_pools_bpp_over_pixels_so_a_tiny_image_does_not_dominate(tmp_path):
    Image.fromarray(synthetic(64, 96, seed=3)).save(tmp_path / "big.png")
    Image.fromarray(synthetic(2, 2, seed=4)).save(tmp_path / "tiny.png")
    result = rd.sweep([str(tmp_path / "big.png"), str(tmp_path / "tiny.png")], ks=(4, 16),
                      baselines=("png",))
    for entry in rd.summarize(result):
        for name in ("vqcodec", "png"):
            rows = [r for r in result.rows if r.k == entry["k"] and r.codec == name]
            assert len(rows) == 2
            pooled = 8 * sum(r.bytes for r in rows) / (64 * 96 + 2 * 2)
            assert entry[name]["bpp"] == pytest.approx(pooled, rel=1e-12)
            assert entry[name]["bpp"] < max(r.bpp for r in rows) / 10  # the 4-pixel file's bpp
            assert entry[name]["bytes"] == sum(r.bytes for r in rows) / 2
    assert "bpp: all bits / all pixels" in rd.format_table(result)


def test_quality_search_bisects_when_the_top_is_lossless(monkeypatch, px):
    """A lossy coder that is exact from some quality up (PSNR inf) and a lossless
    vqcodec target: interpolating inf against inf gave NaN (PngSuite found it)."""
    search = rd.QualitySearch(px, "jpeg")
    calls = []

    def fake_trial(quality):
        calls.append(quality)
        psnr = math.inf if quality >= 73 else 20.0 + quality / 10
        search.trials[quality] = rd.codecs._Trial(quality, b"", 0.0, psnr)
        return search.trials[quality]

    monkeypatch.setattr(search, "trial", fake_trial)
    assert search.smallest(math.inf) == (73, True)
    assert search.smallest(25.0) == (50, True)  # finite targets still interpolate
    assert len(set(calls)) < 20


def test_a_failing_pngquant_is_reported_and_the_rest_measured(px, tmp_path):
    """A baseline that fails (here a pngquant that exits 3) is reported through
    on_problem and left out; the other codecs' rows are still made."""
    fake = tmp_path / "pngquant"
    fake.write_text("#!/bin/sh\necho 'no such luck' >&2\nexit 3\n")
    fake.chmod(0o755)
    problems = []
    rows = rd.measure_image(px, ks=(8, 16), baselines=("pngquant", "png"), pngquant=str(fake),
                            workdir=str(tmp_path), on_problem=problems.append)
    assert {r.codec for r in rows} == {"vqcodec", "png"}
    assert len(problems) == 1
    assert "pngquant" in problems[0] and "status 3: no such luck" in problems[0]


# --------------------------------------------------------------------------
# The codec list: vqcodec variants and the lossless stores of vqcodec's pixels


def test_a_variant_is_a_codec_of_its_own_with_a_bd_rate_against_the_defaults(folder):
    result = rd.sweep([str(folder / "a.png")], ks=(4, 8, 16), baselines=(), variants=[{"rdo": 0}, {"coder": "zstd"}])
    assert result.variants == ("vqcodec rdo=0", "vqcodec coder=zstd")
    assert result.codecs() == ("vqcodec", "vqcodec rdo=0", "vqcodec coder=zstd")
    px = pixels.load(str(folder / "a.png"))
    for row in result.rows:
        changes = {"vqcodec": {}, "vqcodec rdo=0": {"rdo": 0}, "vqcodec coder=zstd": {"coder": "zstd"}}[row.codec]
        data = codec.encode_pixels(px, k=row.k, **changes).data
        assert row.bytes == len(data)  # each variant's row is that encode's file
    zstd = {r.k: r for r in result.rows if r.codec == "vqcodec coder=zstd"}
    ctx = {r.k: r for r in result.rows if r.codec == "vqcodec"}
    assert all(zstd[k].psnr == ctx[k].psnr for k in (4, 8, 16))  # same pixels, another coder
    bd = {b.test: b for b in result.bd_rates()}
    expected = rd.bd_rate([ctx[k].bpp for k in (4, 8, 16)], [ctx[k].psnr for k in (4, 8, 16)],
                          [zstd[k].bpp for k in (4, 8, 16)], [zstd[k].psnr for k in (4, 8, 16)])
    assert bd["vqcodec coder=zstd"].baseline == "vqcodec"
    assert bd["vqcodec coder=zstd"].value == pytest.approx(expected)
    document = json.loads(rd.to_json(result))
    assert document["variants"] == list(result.variants)
    assert document["variants_bd_rate"]["vqcodec coder=zstd"]["vqcodec"]["mean_percent"] == pytest.approx(expected)
    table = rd.format_table(result)
    assert "BD-rate of vqcodec coder=zstd against vqcodec's defaults" in table


def test_a_variant_has_a_bd_rate_against_each_baseline_too(folder):
    result = rd.sweep([str(folder / "a.png")], ks=(4, 8, 16), baselines=("jpeg",), variants=[{"rdo": 0}])
    rows = {(r.codec, r.k): r for r in result.rows}
    expected = rd.bd_rate([rows["jpeg", k].bpp for k in (4, 8, 16)], [rows["jpeg", k].psnr for k in (4, 8, 16)],
                          [rows["vqcodec rdo=0", k].bpp for k in (4, 8, 16)],
                          [rows["vqcodec rdo=0", k].psnr for k in (4, 8, 16)])
    means = result.bd_rate_means("vqcodec rdo=0")
    assert list(means) == ["vqcodec", "jpeg"]
    assert means["jpeg"][0] == pytest.approx(expected)


def test_variant_errors_name_the_option():
    with pytest.raises(OptionError, match="cannot set 'k'"):
        rd.vqcodec_codec({"k": 4})
    with pytest.raises(OptionError, match="rdo must be a number"):
        rd.vqcodec_codec({"rdo": "lots"})
    with pytest.raises(OptionError, match="given twice or changes nothing"):
        rd.codec_list(variants=[{}])


def test_webp_lossless_stores_vqcodecs_own_pixels(px):
    from PIL import features

    if not features.check("webp"):
        pytest.skip("Pillow without WebP")
    rows = rd.measure_image(px, ks=(4, 16), baselines=("webp-lossless",))
    assert [(r.codec, r.k) for r in rows] == [("vqcodec", 4), ("webp-lossless", 4), ("vqcodec", 16),
                                              ("webp-lossless", 16)]
    for vq, store in zip(rows[::2], rows[1::2]):
        assert store.psnr == vq.psnr and store.mse == vq.mse  # the same pixels, stored exactly
        decoded = codec.decode(codec.encode(px.array, k=vq.k))
        data = pixels.to_bytes(pixels.from_array(decoded.reshape(px.array.shape)), "WEBP",
                               lossless=True, quality=100, method=6, exact=True)
        assert store.bytes == len(data)


@pytest.mark.skipif(shutil.which("cjxl") is None or shutil.which("djxl") is None, reason="libjxl-tools absent")
def test_jpeg_xl_lossless_stores_vqcodecs_own_pixels(px, tmp_path):
    rows = rd.measure_image(px, ks=(8,), baselines=("jxl-lossless",))
    vq, store = rows
    assert store.codec == "jxl-lossless" and store.psnr == vq.psnr
    source = tmp_path / "p.png"
    decoded = codec.decode(codec.encode(px.array, k=8)).reshape(px.array.shape)
    Image.fromarray(decoded).save(source)
    subprocess.run(["cjxl", str(source), str(tmp_path / "p.jxl"), "-d", "0", "-e", "9", "--quiet"], check=True)
    assert store.bytes == (tmp_path / "p.jxl").stat().st_size


def test_a_store_that_is_not_exact_is_reported_as_that_codecs_failure(px, monkeypatch):
    from vqcodec.rd import codecs

    monkeypatch.setattr(codecs, "pillow_decode", lambda data, mode: np.zeros((32, 48, 3), np.uint8))
    problems = []
    rows = rd.measure_image(px, ks=(8,), baselines=("webp-lossless",), on_problem=problems.append)
    assert [r.codec for r in rows] == ["vqcodec"]
    assert problems == ["WebP lossless failed on '<image>': WebP lossless did not store the pixels exactly"]


def test_cli_variant_adds_a_codec(folder):
    proc = run_cli(folder / "a.png", "-k", "8,16", "--no-baselines", "--variant", "rdo=0", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["variants"] == ["vqcodec rdo=0"]
    assert sorted({r["codec"] for r in document["rows"]}) == ["vqcodec", "vqcodec rdo=0"]


def test_a_dither_sweep_gives_vqcodec_one_codec_per_level(tmp_path):
    y, x = np.mgrid[0:40, 0:96]
    ramp = np.stack([x * 255 // 95, (x + y) * 255 // 134, np.full_like(x, 80)], -1).astype(np.uint8)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    result = rd.sweep([str(tmp_path / "ramp.png")], ks=(8,), baselines=("png",), dithers=(0, 1))
    assert result.variants == ("vqcodec dither=1",)
    plain, dithered = (next(r for r in result.rows if r.codec == name) for name in ("vqcodec", "vqcodec dither=1"))
    assert dithered.settings == "k=8 seed=0 dither=1"
    assert dithered.blurred_psnr > plain.blurred_psnr and dithered.psnr < plain.psnr
    decoded = codec.decode(codec.encode(ramp, k=8, dither=1))
    assert dithered.blurred_psnr == pytest.approx(metrics.blurred_psnr(ramp, decoded.reshape(ramp.shape)))
    entry = rd.summarize(result)[0]
    assert entry["vqcodec"]["blurred_psnr"] == pytest.approx(plain.blurred_psnr)
    assert entry["vqcodec dither=1"]["blurred_psnr"] == pytest.approx(dithered.blurred_psnr)
    table = rd.format_table(result)
    assert "blurPSNR" in table and "vqcodec dither=1" in table
    with pytest.raises(OptionError, match="dither must be a number from 0 to 1"):
        rd.sweep([str(tmp_path / "ramp.png")], ks=(8,), baselines=(), dithers=(0, 2))


# --------------------------------------------------------------------------
# The lossy baselines' PSNR cache across runs


def _count_jpeg_encodes(monkeypatch) -> list[int]:
    from vqcodec.rd import codecs

    calls: list[int] = []
    real = codecs.pixels.to_bytes

    def counting(px, fmt, **options):
        if fmt == "JPEG":
            calls.append(options["quality"])
        return real(px, fmt, **options)

    monkeypatch.setattr(codecs.pixels, "to_bytes", counting)
    return calls


def _untimed(result) -> list[dict]:
    timed = {"encode_s", "decode_s", "encode_mps", "decode_mps"}
    return [{k: v for k, v in row.as_dict().items() if k not in timed} for row in result.rows]


def test_a_second_sweep_encodes_the_lossy_baseline_only_where_its_rows_are(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    calls = _count_jpeg_encodes(monkeypatch)
    first = rd.sweep([str(folder / "a.png")], ks=(4, 16, 64), baselines=("jpeg",), cache=str(cache))
    searched = len(calls)
    assert len(list(cache.iterdir())) == 1
    calls.clear()
    second = rd.sweep([str(folder / "a.png")], ks=(4, 16, 64), baselines=("jpeg",), cache=str(cache))
    used = {r.quality for r in second.rows if r.codec == "jpeg"}
    assert sorted(calls) == sorted(used) and len(calls) < searched  # one encode per quality its rows use
    assert _untimed(first) == _untimed(second)
    calls.clear()
    rd.sweep([str(folder / "a.png")], ks=(4, 16, 64), baselines=("jpeg",), cache=False)
    assert len(calls) == searched


def test_a_cache_file_that_does_not_match_is_ignored(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = rd.sweep([str(folder / "a.png")], ks=(8,), baselines=("jpeg",), cache=str(cache))
    (entry,) = cache.iterdir()
    document = json.loads(entry.read_text())
    document["psnr"] = {q: 99.0 for q in document["psnr"]}  # lies, under another library version's key
    document["key"] += " (another version)"
    entry.write_text(json.dumps(document))
    again = rd.sweep([str(folder / "a.png")], ks=(8,), baselines=("jpeg",), cache=str(cache))
    assert _untimed(again) == _untimed(first)
    entry.write_bytes(b"\0not json")
    assert _untimed(rd.sweep([str(folder / "a.png")], ks=(8,), baselines=("jpeg",), cache=str(cache))) \
        == _untimed(first)


def test_cli_no_cache_writes_no_cache(folder, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run([sys.executable, "-m", "vqcodec", "rd", str(folder / "a.png"), "-k", "8",
                           "--baselines", "jpeg", "--no-cache"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "xdg").exists()
    proc = subprocess.run([sys.executable, "-m", "vqcodec", "rd", str(folder / "a.png"), "-k", "8",
                           "--baselines", "jpeg"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "xdg" / "vqcodec" / "rd").iterdir())) == 1
