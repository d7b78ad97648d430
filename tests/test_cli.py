"""The CLI end to end, in a subprocess: success paths, reports, and every error path."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec
from image_files import png_pixels

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "sample.png"


def run(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vqcodec", *map(str, args)],
        input=stdin, capture_output=True, cwd=cwd, timeout=120,
    )


def one_error_line(proc: subprocess.CompletedProcess, pattern: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vqcodec: error: "), lines[0]
    assert "Traceback" not in proc.stderr.decode()
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert proc.stdout == b""
    return lines[0]


@pytest.fixture
def small_png(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    path = tmp_path / "small.png"
    Image.fromarray(image).save(path)
    return path


def test_version_and_help():
    proc = run("--version")
    assert proc.returncode == 0
    first, second = proc.stdout.decode().strip().splitlines()
    assert first == f"vqcodec {vqcodec.__version__} (VQI format 1.3)"
    from vqcodec import _native

    if all(state == "compiled" for state in _native.status().values()):
        assert second == "compiled extensions: all 5 in use"
    for sub in ("encode", "decode", "info", "rd", "train", "tokens"):
        proc = run(sub, "--help")
        assert proc.returncode == 0 and b"usage: vqcodec " + sub.encode() in proc.stdout
    # a command named first builds its parser alone; the others still list them all
    for args in (["--help"], ["-h"]):
        listing = run(*args).stdout.decode()
        assert all(f"    {sub} " in listing for sub in ("encode", "decode", "info", "rd", "train", "tokens"))
    proc = run("frob", "x")
    assert proc.returncode == 2
    assert "invalid choice: 'frob' (choose from 'encode', 'decode', 'info', 'rd', 'train', 'tokens')" in proc.stderr.decode()


def test_encode_report_line_and_decode(tmp_path):
    out = tmp_path / "s.vqi"
    proc = run("encode", SAMPLE, out, "-k", "32")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.decode().strip()
    assert "\n" not in line
    for piece in ("384×256 RGB", "k=32 (5 bits/index)", "bytes", "bpp", "× raw", "× input",
                  "MSE", "PSNR", "dB", "SSIM", " s"):
        assert piece in line, piece
    back = tmp_path / "back.png"
    proc = run("decode", out, back)
    assert proc.returncode == 0, proc.stderr
    original = np.asarray(Image.open(SAMPLE).convert("RGB"))
    decoded = png_pixels(back)
    assert decoded.shape == original.shape
    np.testing.assert_array_equal(decoded, vqcodec.decode(out.read_bytes()))


def test_json_report_matches_independent_numbers(tmp_path):
    out = tmp_path / "s.vqi"
    proc = run("encode", SAMPLE, out, "-k", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    fields = json.loads(proc.stdout)
    size = out.stat().st_size
    assert fields["bytes"] == size
    assert fields["width"] == 384 and fields["height"] == 256 and fields["k"] <= 16
    assert fields["bpp"] == pytest.approx(8 * size / (384 * 256))
    assert fields["ratio_raw"] == pytest.approx(384 * 256 * 3 / size)
    assert fields["ratio_input"] == pytest.approx(SAMPLE.stat().st_size / size)
    original = np.asarray(Image.open(SAMPLE).convert("RGB")).astype(float)
    decoded = vqcodec.decode(out.read_bytes()).astype(float)
    mse = ((original - decoded) ** 2).mean()
    assert fields["mse"] == pytest.approx(mse, rel=1e-9)
    assert fields["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-9)
    assert 0 < fields["ssim"] < 1


def test_quiet_prints_nothing(tmp_path):
    proc = run("encode", SAMPLE, tmp_path / "q.vqi", "-k", "8", "-q")
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""


def test_lossless_when_colours_fit_and_alpha_kept(tmp_path):
    rng = np.random.default_rng(1)
    book = np.array([[0, 0, 0, 0], [255, 0, 0, 128], [0, 255, 0, 255], [9, 9, 9, 40]], np.uint8)
    image = book[rng.integers(0, 4, (17, 23))]
    src = tmp_path / "a.png"
    Image.fromarray(image, "RGBA").save(src)
    assert run("encode", src, tmp_path / "a.vqi", "-k", "4").returncode == 0
    assert run("decode", tmp_path / "a.vqi", tmp_path / "b.png").returncode == 0
    back = Image.open(tmp_path / "b.png")
    assert back.mode == "P" and "transparency" in back.info  # PNG8 with tRNS: 4 colours
    np.testing.assert_array_equal(np.asarray(back.convert("RGBA")), image)
    np.testing.assert_array_equal(png_pixels(tmp_path / "b.png"), image)


def test_stdin_stdout_pipe(small_png):
    proc = run("encode", "-", "-", "-k", "8", stdin=small_png.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout[:4] == b"\x89VQI"
    assert b"PSNR" in proc.stderr  # the report goes to stderr when stdout carries data
    dec = run("decode", "-", "-", "-q", stdin=proc.stdout)
    assert dec.returncode == 0 and dec.stdout[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_quick_exit_loses_no_output(tmp_path):
    """encode/decode end the process without the interpreter's teardown: every byte
    written to a pipe still arrives (a full PNG of the sample photo through
    stdout, the report line after it), and the exit status is the command's."""
    vqi = tmp_path / "s.vqi"
    assert run("encode", SAMPLE, vqi, "-k", "32").returncode == 0
    dec = run("decode", vqi, "-")
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout[-12:-4] == b"\x00\x00\x00\x00IEND"  # the PNG's last chunk, whole
    np.testing.assert_array_equal(png_pixels(io.BytesIO(dec.stdout)),
                                  vqcodec.decode(vqi.read_bytes()))
    assert dec.stderr.decode().count("\n") == 1  # and the report, on stderr
    bad = run("decode", tmp_path / "missing.vqi", tmp_path / "x.png")
    assert bad.returncode == 2 and bad.stdout == b""


def test_info(tmp_path, small_png):
    out = tmp_path / "i.vqi"
    run("encode", small_png, out, "-k", "8", "-q")
    proc = run("info", out)
    assert proc.returncode == 0
    text = proc.stdout.decode()
    for piece in ("VQI 1.0", "size             32×24 RGB", "k                8 (3 bits/index)",
                  "ICC profile      none", "HEAD", "BOOK", "INDX", "DONE"):
        assert piece in text, piece
    fields = json.loads(run("info", out, "--json").stdout)
    assert fields["bytes"] == out.stat().st_size
    assert (fields["width"], fields["height"], fields["k"], fields["icc_profile_bytes"]) == (32, 24, 8, 0)
    assert isinstance(fields["index_coder"], int) and isinstance(fields["index_coder_name"], str)
    assert [s["type"] for s in fields["sections"]] == ["HEAD", "BOOK", "INDX", "DONE"]


# ------------------------------------------------------------------ errors


def test_not_an_image(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("just some text\n")
    one_error_line(run("encode", bad, tmp_path / "o.vqi"), r"notes\.png")
    assert not (tmp_path / "o.vqi").exists()


def test_broken_png(tmp_path, small_png):
    cut = tmp_path / "cut.png"
    cut.write_bytes(small_png.read_bytes()[:200])
    one_error_line(run("encode", cut, tmp_path / "o.vqi"), r"cut\.png")
    assert not (tmp_path / "o.vqi").exists()


@pytest.mark.parametrize("k", ["1", "65537", "0", "-5", "many"])
def test_k_out_of_range(tmp_path, k):
    one_error_line(run("encode", SAMPLE, tmp_path / "o.vqi", "-k", k), r"k must be")


def test_zero_size_image(tmp_path):
    # a PNG header that claims 0×0 pixels (Pillow itself refuses to write one)
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    src = tmp_path / "zero.png"
    src.write_bytes(png)
    one_error_line(run("encode", src, tmp_path / "o.vqi"), r"zero\.png")


def test_missing_input_and_folder(tmp_path):
    one_error_line(run("encode", tmp_path / "nope.png", tmp_path / "o.vqi"), r"nope\.png.*no such file")
    one_error_line(run("encode", SAMPLE, tmp_path / "no" / "dir" / "o.vqi"), r"folder .* does not exist")
    one_error_line(run("decode", tmp_path / "nope.vqi", tmp_path / "o.png"), r"nope\.vqi")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_input(tmp_path):
    src = tmp_path / "locked.png"
    src.write_bytes(SAMPLE.read_bytes())
    src.chmod(0)
    one_error_line(run("encode", src, tmp_path / "o.vqi"), r"permission denied")


def test_wrong_magic_version_crc_truncation(tmp_path, small_png):
    good = tmp_path / "g.vqi"
    run("encode", small_png, good, "-k", "8", "-q")
    data = good.read_bytes()
    cases = {
        "magic": (b"GIF89a" + data[6:], r"not a VQI file: bad magic"),
        "version": (data[:8] + b"\x07\x00" + data[10:], r"unsupported format version 7\.0"),
        "crc": (data[:-30] + bytes([data[-30] ^ 0xFF]) + data[-29:], r"CRC mismatch"),
        "cut": (data[: len(data) // 2], r"truncated"),
    }
    for name, (blob, pattern) in cases.items():
        path = tmp_path / f"{name}.vqi"
        path.write_bytes(blob)
        one_error_line(run("decode", path, tmp_path / f"{name}.png"), pattern)
        one_error_line(run("info", path), pattern)
        assert not (tmp_path / f"{name}.png").exists()


def test_no_overwrite_without_force(tmp_path, small_png):
    out = tmp_path / "o.vqi"
    out.write_bytes(b"precious")
    one_error_line(run("encode", small_png, out, "-k", "8"), r"exists; use --force")
    assert out.read_bytes() == b"precious"
    assert run("encode", small_png, out, "-k", "8", "--force", "-q").returncode == 0
    assert out.read_bytes()[:4] == b"\x89VQI"


def test_output_may_not_be_the_input(tmp_path, small_png):
    before = small_png.read_bytes()
    one_error_line(run("encode", small_png, small_png, "--force"), r"is the input file")
    link = tmp_path / "link.png"
    os.symlink(small_png, link)
    one_error_line(run("encode", small_png, link, "--force"), r"is the input file")
    assert small_png.read_bytes() == before


def test_usage_errors_are_one_line():
    one_error_line(run("encode", "only-one-path"), r"encode takes INPUT OUTPUT")
    one_error_line(run("frobnicate"), r"invalid choice")
    one_error_line(run("encode", SAMPLE, "x.vqi", "--layout", "zigzag"), r"invalid choice")


def test_decode_unknown_extension(tmp_path, small_png):
    out = tmp_path / "o.vqi"
    run("encode", small_png, out, "-k", "8", "-q")
    one_error_line(run("decode", out, tmp_path / "o.xyz"), r"xyz")


def test_decode_alpha_to_jpeg_refused(tmp_path):
    image = np.zeros((4, 4, 4), np.uint8)
    src = tmp_path / "a.vqi"
    src.write_bytes(vqcodec.encode(image, k=2))
    one_error_line(run("decode", src, tmp_path / "a.jpg"), r"JPEG")
    assert not (tmp_path / "a.jpg").exists()


def test_python_dash_m_and_console_script_agree(tmp_path):
    exe = Path(sys.executable).with_name("vqcodec")
    if not exe.exists():
        pytest.skip("console script not installed (pip install -e .)")
    proc = subprocess.run([str(exe), "--version"], capture_output=True)
    assert proc.stdout == run("--version").stdout


# ------------------------------------------------------------ hostile images (issue 4)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_decompression_bomb_png_refused_fast(tmp_path):
    import struct
    import time
    import zlib

    # 100,000 × 100,000 greyscale: 10 GB of pixels from a file of a few kB
    raw = zlib.compress(b"\0" * 100_001 * 50, 9)
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
           + _png_chunk(b"IDAT", raw) + _png_chunk(b"IEND", b""))
    src = tmp_path / "bomb.png"
    src.write_bytes(png)
    start = time.perf_counter()
    one_error_line(run("encode", src, tmp_path / "o.vqi"), r"10,000,000,000 pixels.*limit")
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "o.vqi").exists()


def test_truncated_jpeg(tmp_path):
    import io as _io

    buf = _io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    src = tmp_path / "cut.jpg"
    src.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    one_error_line(run("encode", src, tmp_path / "o.vqi"), r"cut\.jpg")


def test_one_by_100000(tmp_path):
    image = (np.arange(100_000) % 251).astype(np.uint8)[None, :]
    src = tmp_path / "long.png"
    Image.fromarray(image).save(src)
    assert run("encode", src, tmp_path / "long.vqi", "-k", "256", "-q").returncode == 0
    np.testing.assert_array_equal(vqcodec.decode((tmp_path / "long.vqi").read_bytes()), image)


def test_16_bit_grey_png(tmp_path):
    values = np.arange(0, 65536, 257 * 3, dtype=np.uint16).reshape(1, -1).repeat(3, 0)
    src = tmp_path / "g16.png"
    Image.fromarray(values).save(src)
    assert run("encode", src, tmp_path / "g16.vqi", "-k", "256", "-q").returncode == 0
    decoded = vqcodec.decode((tmp_path / "g16.vqi").read_bytes())
    np.testing.assert_array_equal(decoded, ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))


def test_animated_gif_takes_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    src = tmp_path / "anim.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert run("encode", src, tmp_path / "a.vqi", "-k", "4", "-q").returncode == 0
    decoded = vqcodec.decode((tmp_path / "a.vqi").read_bytes())
    assert decoded.shape == (6, 8, 3) and (decoded == [255, 0, 0]).all()


def test_max_pixels_option(tmp_path, small_png):
    one_error_line(run("encode", small_png, tmp_path / "o.vqi", "--max-pixels", "100"), r"limit of 100")
    run("encode", small_png, tmp_path / "o.vqi", "-q")
    one_error_line(run("decode", tmp_path / "o.vqi", tmp_path / "o.png", "--max-pixels", "100"),
                   r"768 pixels, above the limit of 100")


def test_report_leaves_out_ssim_above_the_limit(tmp_path, monkeypatch, capsys):
    """Above metrics.REPORT_SSIM_MAX_PIXELS the report says SSIM was not measured
    (JSON null); --ssim measures it anyway.  In-process, with the limit lowered."""
    from vqcodec import metrics
    from vqcodec.cli import main

    monkeypatch.setattr(metrics, "REPORT_SSIM_MAX_PIXELS", 1000)
    out = tmp_path / "s.vqi"
    assert main(["encode", str(SAMPLE), str(out), "-k", "16"]) == 0
    line = capsys.readouterr().out.strip()
    assert "SSIM not measured (large image; --ssim measures it)," in line and "PSNR" in line
    assert main(["encode", str(SAMPLE), str(out), "-k", "16", "-f", "--json"]) == 0
    fields = json.loads(capsys.readouterr().out)
    assert fields["ssim"] is None and fields["mse"] > 0
    assert main(["encode", str(SAMPLE), str(out), "-k", "16", "-f", "--json", "--ssim"]) == 0
    fields = json.loads(capsys.readouterr().out)
    original = np.asarray(Image.open(SAMPLE).convert("RGB"))
    assert fields["ssim"] == metrics.ssim(original, vqcodec.decode(out.read_bytes()))


def test_report_line_formats():
    from vqcodec.cli import report

    fields = {"width": 4, "height": 2, "mode": "RGB", "k": 4, "bits_per_index": 2, "bytes": 1234,
              "bpp": 1.5, "ratio_raw": 2.0, "ratio_input": None, "mse": 0.0,
              "psnr": float("inf"), "ssim": 1.0, "seconds": 0.01}
    line = report.encode_line("a.png", "a.vqi", fields)
    assert "PSNR inf (lossless), SSIM 1.0000, 0.01 s" in line and "1,234 bytes" in line
    line = report.encode_line("a.png", "a.vqi", {**fields, "ssim": None})
    assert "SSIM not measured (large image; --ssim measures it), 0.01 s" in line
    assert json.loads(report.to_json({**fields, "ssim": None}))["ssim"] is None


@pytest.mark.parametrize("preset", [None, "3"])
def test_the_program_runs_openblas_on_one_thread_unless_told(preset):
    """main() with argv=None (the program) sets OPENBLAS_NUM_THREADS=1 and numpy's
    OpenBLAS to one thread; a value the user set is kept.  In a subprocess: it is
    process-wide."""
    code = (
        "import os, sys, numpy\n"
        "from vqcodec import cli\n"
        "sys.argv = ['vqcodec', '--version']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split()[-1] == (preset or "1")


def test_rdo_and_coder_options(tmp_path):
    outs = {}
    for name, opts in {"nearest": ("--rdo", "0"), "default": (), "strong": ("--rdo", "3")}.items():
        out = tmp_path / f"{name}.vqi"
        proc = run("encode", SAMPLE, out, "-k", "32", "--json", *opts)
        assert proc.returncode == 0, proc.stderr
        outs[name] = json.loads(proc.stdout)
    # rdo=0 maps every pixel to its nearest colour: the best PSNR, the largest file
    assert outs["nearest"]["psnr"] > outs["default"]["psnr"] > outs["strong"]["psnr"]
    assert outs["nearest"]["bytes"] > outs["default"]["bytes"] > outs["strong"]["bytes"]
    for coder, coder_id in (("zstd", 0), ("bzip2", 1)):
        out = tmp_path / f"{coder}.vqi"
        assert run("encode", SAMPLE, out, "-k", "32", "-q", "--coder", coder).returncode == 0
        assert vqcodec.read_header(out.read_bytes()).index_coder == coder_id
    for bad in ("-1", "5.5", "101", "x"):
        proc = run("encode", SAMPLE, tmp_path / "bad.vqi", f"--rdo={bad}")
        assert proc.returncode == 2 and b"rdo must be a number from 0 to 5," in proc.stderr
        assert len(proc.stderr.splitlines()) == 1


def test_main_writes_to_injected_streams_in_process(tmp_path):
    import io as _io

    from vqcodec.cli import main

    src = tmp_path / "in.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(src)
    out, err = _io.StringIO(), _io.StringIO()
    assert main(["encode", str(src), str(tmp_path / "x.vqi"), "-k", "4"], stdout=out, stderr=err) == 0
    assert out.getvalue().startswith(f"{src} 4×4 RGB -> {tmp_path / 'x.vqi'}: k=4") and err.getvalue() == ""
    out, err = _io.StringIO(), _io.StringIO()
    assert main(["info", str(tmp_path / "missing.vqi")], stdout=out, stderr=err) == 2
    assert out.getvalue() == "" and len(err.getvalue().splitlines()) == 1
    assert err.getvalue().startswith("vqcodec: error: ")
    binary = _io.TextIOWrapper(_io.BytesIO())
    assert main(["decode", str(tmp_path / "x.vqi"), "-"], stdout=binary, stderr=err) == 0
    binary.flush()
    assert binary.buffer.getvalue().startswith(b"\x89PNG")
