"""``vqcodec encode --psnr | --quality | --max-bytes | --bpp [--skip-if-larger]`` in a subprocess:
reports, exit codes 99 and 98 with nothing written, option errors, batch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "sample.png"


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqcodec", *map(str, args)],
                          capture_output=True, timeout=120)


def psnr_of(png: Path, vqi: Path) -> float:
    a = np.asarray(Image.open(png).convert("RGB"), np.float64)
    b = vqcodec.decode(str(vqi)).astype(np.float64)
    return 10 * math.log10(255**2 / np.mean((a - b) ** 2))


@pytest.fixture
def noise_png(tmp_path) -> Path:
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_psnr_reports_the_chosen_k_and_meets_the_target(tmp_path):
    out = tmp_path / "s.vqi"
    proc = run("encode", SAMPLE, out, "--psnr", "34")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.decode()
    k = vqcodec.read_header(out.read_bytes()).k
    assert f"k={k} " in line and "target psnr >= 34 dB: met with k=" in line
    assert psnr_of(SAMPLE, out) >= 34


def test_quality_json_names_the_target(tmp_path):
    out = tmp_path / "q.vqi"
    proc = run("encode", SAMPLE, out, "--quality", "65-80", "--json")
    assert proc.returncode == 0, proc.stderr
    fields = json.loads(proc.stdout)
    assert fields["target"] == "quality 65-80" and fields["quality"] >= 80
    assert fields["k"] == vqcodec.read_header(out.read_bytes()).k <= fields["k_requested"] == 256


def test_unreachable_quality_exits_99_and_writes_nothing(tmp_path, noise_png):
    out = tmp_path / "n.vqi"
    proc = run("encode", noise_png, out, "--quality", "65-80")
    assert proc.returncode == 99
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "target quality 65-80 not reached" in lines[0]
    assert "nothing written" in lines[0] and "k=256" in lines[0]
    assert not out.exists() and proc.stdout == b""
    assert run("encode", noise_png, out, "--max-bytes", "50").returncode == 99
    assert not out.exists()


def test_skip_if_larger_exits_98_and_writes_nothing(tmp_path):
    jpeg = tmp_path / "tiny.jpg"
    Image.open(SAMPLE).convert("RGB").save(jpeg, quality=5)
    out = tmp_path / "t.vqi"
    proc = run("encode", jpeg, out, "--skip-if-larger")
    assert proc.returncode == 98, proc.stderr
    assert "not smaller than the input's" in proc.stderr.decode() and not out.exists()
    proc = run("encode", jpeg, out, "--psnr", "30", "--skip-if-larger")
    assert proc.returncode == 98 and not out.exists()
    proc = run("encode", SAMPLE, out, "--psnr", "30", "--skip-if-larger", "-q")
    assert proc.returncode == 0 and out.stat().st_size < SAMPLE.stat().st_size


def test_max_bytes_and_bpp_fit(tmp_path):
    out = tmp_path / "b.vqi"
    assert run("encode", SAMPLE, out, "--max-bytes", "9000", "-q").returncode == 0
    assert 0.9 * 9000 <= out.stat().st_size <= 9000
    assert run("encode", SAMPLE, out, "--bpp", "0.5", "-q", "-f").returncode == 0
    assert out.stat().st_size <= 384 * 256 * 0.5 / 8


@pytest.mark.parametrize("args,pattern", [
    (["--quality", "80-65"], r"argument --quality: quality must be MIN-MAX with 0 <= MIN <= MAX <= 100"),
    (["--quality", "good"], r"argument --quality: quality must be MIN-MAX"),
    (["--psnr", "x"], r"argument --psnr: psnr must be a number, got 'x'"),
    (["--psnr", "0"], r"argument --psnr: psnr must be a number of dB from 1 to 100"),
    (["--max-bytes", "0"], r"argument --max-bytes: max_bytes must be a positive integer"),
    (["--bpp", "-2"], r"argument --bpp: bpp must be a positive number"),
    (["--psnr", "35", "--quality", "65-80"], r"argument --quality: not allowed with argument --psnr"),
])
def test_bad_target_options_are_one_line_exit_2(tmp_path, args, pattern):
    import re

    out = tmp_path / "x.vqi"
    proc = run("encode", SAMPLE, out, *args)
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqcodec: error: ") and re.search(pattern, lines[0])
    assert not out.exists()


def test_batch_writes_what_it_can_and_exits_99(tmp_path, noise_png):
    src = tmp_path / "in"
    src.mkdir()
    Image.open(SAMPLE).save(src / "a.png")
    noise_png.rename(src / "n.png")
    proc = run("encode", src, "--output-dir", tmp_path / "out", "--quality", "65-80", "-j", "1")
    assert proc.returncode == 99, proc.stderr
    assert (tmp_path / "out" / "a.vqi").exists() and not (tmp_path / "out" / "n.vqi").exists()
    assert "n.png" in proc.stderr.decode() and "not reached" in proc.stderr.decode()
    assert "1 ok, 0 failed, 1 target not reached" in proc.stdout.decode()


def test_skip_existing_reruns_a_batch_after_adding_files(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.open(SAMPLE).save(src / "a.png")
    assert run("encode", src, "--output-dir", out, "-j", "1", "-k", "16").returncode == 0
    first = (out / "a.vqi").stat().st_mtime_ns
    Image.open(SAMPLE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(src / "b.png")
    proc = run("encode", src, "--output-dir", out, "-j", "1", "-k", "16", "--skip-existing")
    assert proc.returncode == 0, proc.stderr
    assert "1 ok, 0 failed, 1 existing skipped" in proc.stdout.decode() and proc.stderr == b""
    assert (out / "b.vqi").exists() and (out / "a.vqi").stat().st_mtime_ns == first
    assert run("encode", src, "--output-dir", out, "-j", "1", "-k", "16").returncode == 2  # without: exists
    proc = run("encode", SAMPLE, tmp_path / "s.vqi", "--skip-existing")
    assert proc.returncode == 2 and b"--skip-existing needs batch mode" in proc.stderr


def test_verbose_says_how_the_file_was_made(tmp_path):
    proc = run("encode", SAMPLE, tmp_path / "v.vqi", "--psnr", "36", "-v", "-q")
    assert proc.returncode == 0 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert any(line.startswith("vqcodec: candidate k=") and "MSE" in line for line in lines)
    k = vqcodec.read_header((tmp_path / "v.vqi").read_bytes()).k
    assert f"vqcodec: target psnr >= 36 dB: chose k={k}, rdo 0.6" in proc.stderr.decode()
    assert lines[-1].startswith("vqcodec: index coder ")


def test_ext_writes_beside_each_input(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.open(SAMPLE).save(tmp_path / "a.png")
    Image.open(SAMPLE).save(tmp_path / "sub" / "b.png")
    proc = run("encode", tmp_path, "--ext", ".vqi", "-j", "1", "--psnr", "30", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.vqi").exists() and (tmp_path / "sub" / "b.vqi").exists()
    assert vqcodec.read_header((tmp_path / "a.vqi").read_bytes()).k < 256
    proc = run("decode", tmp_path / "a.vqi", "--ext=-back.png", "-j", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "a-back.png").size == (384, 256)
    proc = run("encode", tmp_path, "--ext", ".vqi", "-j", "1", "-q")  # the outputs exist now
    assert proc.returncode == 2 and b"exists; use --force" in proc.stderr
    proc = run("decode", tmp_path / "a.vqi", "--ext", ".xyz")
    assert proc.returncode == 2 and b"--ext .xyz: unknown image extension" in proc.stderr


def test_speed_flag(tmp_path):
    out = tmp_path / "s.vqi"
    assert run("encode", SAMPLE, out, "--speed", "10", "-k", "32", "-q").returncode == 0
    assert vqcodec.read_header(out.read_bytes()).k == 32
    proc = run("encode", SAMPLE, out, "--speed", "11", "-f")
    assert proc.returncode == 2 and b"argument --speed: speed must be an integer from 1" in proc.stderr
