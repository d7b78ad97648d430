"""What a new user hit (issue 10, D1-D17): each defect as a test that failed before its fix.

CLI behaviour is checked in a subprocess (exit code, the one stderr line);
devices, FIFOs and symbolic links are made in tmp_path, and the tests that
need a privilege skip cleanly without it.
"""

from __future__ import annotations

import io
import json
import re
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import batch, fileio, pixels, rd
from image_files import png_pixels

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "sample.png"


def run(*args: object, stdin: bytes | None = None, cwd: Path | None = None,
        stdout: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vqcodec", *map(str, args)], input=stdin, cwd=cwd, timeout=120,
        stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE,
    )


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one stderr line of a refused command (exit 2, no traceback)."""
    text = proc.stderr.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vqcodec: error: ")
    return lines[0][len("vqcodec: error: "):]


@pytest.fixture
def image(tmp_path) -> tuple[Path, np.ndarray]:
    """A small RGB PNG of few colours (a lossless round trip at k=16)."""
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    array = palette[rng.integers(0, 6, (20, 28))]
    path = tmp_path / "in.png"
    Image.fromarray(array).save(path)
    return path, array


# --------------------------------------------------------------------------
# D1: one reader for every path


def _tiff_variants(tmp_path: Path, array: np.ndarray) -> list[Path]:
    out = []
    for name, options in (("raw.tif", {}), ("deflate.tif", {"compression": "tiff_adobe_deflate"}),
                          ("lzw.tif", {"compression": "tiff_lzw"})):
        path = tmp_path / name
        Image.fromarray(array).save(path, **options)
        out.append(path)
    path = tmp_path / "x.im"  # the IM plugin calls readline()
    Image.fromarray(array).save(path)
    out.append(path)
    return out


@pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning")
def test_d1_every_path_reads_tiff_and_im(tmp_path, image):
    _, array = image
    for path in _tiff_variants(tmp_path, array):
        out = tmp_path / (path.stem + ".vqi")
        proc = run("encode", path, out, "-k", "16", "-q")  # single file
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_array_equal(vqcodec.decode(out), array)
        proc = run("encode", "-", out, "-k", "16", "-q", "-f", stdin=path.read_bytes())  # stdin
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_array_equal(vqcodec.decode(out), array)

        class ReadSeekTell:  # a stream with less than a file's interface
            def __init__(self, data: bytes) -> None:
                self._b = io.BytesIO(data)

            def read(self, *a):
                return self._b.read(*a)

            def seek(self, *a):
                return self._b.seek(*a)

            def tell(self):
                return self._b.tell()

        for source in (str(path), path.read_bytes(), ReadSeekTell(path.read_bytes())):  # API
            np.testing.assert_array_equal(vqcodec.decode(vqcodec.encode(source, k=16)), array)
    # batch and rd read the same files
    proc = run("encode", *_tiff_variants(tmp_path, array), "--output-dir", tmp_path / "b", "-k", "16", "-q")
    assert proc.returncode == 0, proc.stderr
    result = rd.sweep([str(p) for p in _tiff_variants(tmp_path, array)], ks=(16,), baselines=())
    assert len(result.images) == 4 and not result.skipped


def test_d1_own_tiff_output_re_encodes(tmp_path):
    vqi, tif = tmp_path / "s.vqi", tmp_path / "rt.tif"
    assert run("encode", SAMPLE, vqi, "-q").returncode == 0
    assert run("decode", vqi, tif, "-q").returncode == 0
    proc = run("encode", tif, tmp_path / "rt.vqi", "-q")
    assert proc.returncode == 0, proc.stderr


def test_d1_text_file_message_is_the_same_everywhere_and_names_no_class(tmp_path):
    text = tmp_path / "text.png"
    text.write_text("hello\nworld\n" * 20)
    single = error_line(run("encode", text, tmp_path / "t.vqi"))
    assert single == f"cannot read '{text}': not an image Pillow recognises"  # it is named .png
    renamed = tmp_path / "text.txt"
    renamed.write_bytes(text.read_bytes())
    assert error_line(run("encode", renamed, tmp_path / "t.vqi")) == (
        f"cannot read '{renamed}': not an image Pillow recognises; give a PNG, JPEG, BMP, TIFF, "
        "WebP, GIF or PPM image")
    piped = error_line(run("encode", "-", tmp_path / "t.vqi", stdin=text.read_bytes()))
    assert piped.startswith("cannot read '<stdin>': not an image Pillow recognises")
    for message in (single, piped):
        assert "object" not in message and "_" not in message.split(":")[-1]
    with pytest.raises(vqcodec.ImageInputError, match="not an image Pillow recognises$"):
        vqcodec.encode(str(text))


# --------------------------------------------------------------------------
# D2: devices, FIFOs and symbolic links


def test_d2_symlink_is_followed_and_its_target_replaced(tmp_path, image):
    src, array = image
    target, link = tmp_path / "target.vqi", tmp_path / "link.vqi"
    target.write_bytes(b"old")
    link.symlink_to("target.vqi")
    assert "exists; use --force" in error_line(run("encode", src, link, "-k", "16"))
    proc = run("encode", src, link, "-k", "16", "-q", "-f")
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == "target.vqi"
    np.testing.assert_array_equal(vqcodec.decode(target), array)
    # a dangling link: its target is created
    (tmp_path / "new.vqi").symlink_to("made.vqi")
    assert run("encode", src, tmp_path / "new.vqi", "-k", "16", "-q").returncode == 0
    assert (tmp_path / "new.vqi").is_symlink() and (tmp_path / "made.vqi").is_file()


def test_d2_fifo_is_written_through(tmp_path, image):
    src, array = image
    fifo = tmp_path / "pipe.vqi"
    try:
        os.mkfifo(fifo)
    except (OSError, AttributeError) as e:
        pytest.skip(f"no FIFO here: {e}")
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    proc = run("encode", src, fifo, "-k", "16", "-q")  # no --force needed: nothing is replaced
    reader.join(30)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    np.testing.assert_array_equal(vqcodec.decode(got[0]), array)


def test_d2_character_device_is_written_through(tmp_path, image):
    src, _ = image
    node = tmp_path / "mynull"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (OSError, AttributeError) as e:
        pytest.skip(f"cannot make a device node here: {e}")
    for extra in ((), ("-f",)):
        proc = run("encode", src, node, "-k", "16", "-q", *extra)
        assert proc.returncode == 0, proc.stderr
        assert stat.S_ISCHR(os.lstat(node).st_mode)  # still the device, not a regular file
    # and through the library, with and without overwrite
    fileio.atomic_write(node, b"x")
    fileio.atomic_write(node, b"x", overwrite=True)
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_d2_dev_full_is_a_write_error_not_a_replace():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    line = error_line(run("encode", SAMPLE, "/dev/full", "-q"))
    assert line == "cannot write '/dev/full': No space left on device"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


# --------------------------------------------------------------------------
# D3, D15: stdout


def test_d3_full_stdout_is_the_users_side():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "wb") as full:
        for args in (("encode", SAMPLE, "-", "-q"), ("encode", SAMPLE, "-k", "4", "-"),):
            proc = run(*args, stdout=full.fileno())
            assert error_line(proc) == "cannot write <stdout>: No space left on device"


def test_d3_full_stdout_for_reports_and_info(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    vqi = tmp_path / "s.vqi"
    assert run("encode", SAMPLE, vqi, "-q").returncode == 0
    with open("/dev/full", "wb") as full:
        for args in (("info", vqi), ("info", vqi, "--json"),
                     ("encode", SAMPLE, tmp_path / "t.vqi", "-k", "4")):
            proc = run(*args, stdout=full.fileno())
            assert error_line(proc) == "cannot write <stdout>: No space left on device", args


def test_d15_broken_pipe_is_not_success(tmp_path):
    vqi = tmp_path / "s.vqi"
    assert run("encode", SAMPLE, vqi, "-q").returncode == 0
    for args in (("decode", vqi, "-"), ("info", vqi), ("encode", SAMPLE, "-", "-q")):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first byte
        try:
            proc = run(*args, stdout=write_end)
        finally:
            os.close(write_end)
        assert error_line(proc) == ("cannot write <stdout>: the pipe was closed before the end "
                                    "(broken pipe)"), args


# --------------------------------------------------------------------------
# D4: -o FILE, no abbreviations


def test_d4_dash_o_is_the_output_file(tmp_path, image):
    src, array = image
    for flag in ("-o", "--output"):
        out = tmp_path / f"x{flag}.vqi"
        proc = run("encode", src, flag, out, "-k", "16", "-q")
        assert proc.returncode == 0, proc.stderr
        assert out.is_file()
        np.testing.assert_array_equal(vqcodec.decode(out), array)
    back = tmp_path / "back.png"
    assert run("decode", tmp_path / "x-o.vqi", "-o", back, "-q").returncode == 0
    np.testing.assert_array_equal(png_pixels(back), array)
    assert error_line(run("encode", src, src, "-o", tmp_path / "y.vqi")).startswith(
        "-o names the output file of one input, got 2 inputs")
    assert error_line(run("encode", src, "-o", tmp_path / "y.vqi", "--output-dir", tmp_path / "d")
                      ).startswith("-o names the output file of one input; with --output-dir")
    assert not (tmp_path / "y.vqi").exists() and not (tmp_path / "d").exists()


def test_d4_no_abbreviations(tmp_path, image):
    src, _ = image
    for args in (("--output", tmp_path / "x.vqi", "--output-d", tmp_path / "d"),
                 (tmp_path / "x.vqi", "--forc"), (tmp_path / "x.vqi", "--qui")):
        line = error_line(run("encode", src, *args))
        assert line.startswith("unrecognized arguments: --") and line.endswith(
            "; see 'vqcodec encode --help'")
    assert not (tmp_path / "d").exists() and not (tmp_path / "x.vqi").exists()


def test_d4_batch_uses_output_dir(tmp_path, image):
    src, _ = image
    proc = run("encode", src, "--output-dir", tmp_path / "out", "-k", "16", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "in.vqi").is_file()
    assert "needs batch mode; add --output-dir DIR" in error_line(
        run("encode", src, tmp_path / "x.vqi", "-j", "2"))


# --------------------------------------------------------------------------
# D5: --rdo's range ends at the knee


def test_d5_rdo_range_and_help():
    line = error_line(run("encode", SAMPLE, "x.vqi", "--rdo", "20"))
    assert line.startswith("argument --rdo: rdo must be a number from 0 to 5, got 20")
    with pytest.raises(vqcodec.OptionError, match="rdo must be a number from 0 to 5"):
        vqcodec.EncodeOptions(rdo=5.01)
    helptext = " ".join(run("encode", "--help").stdout.decode().split())
    assert "0 to 5" in helptext and "where files stop getting smaller" in helptext


def test_d5_more_rdo_never_means_a_larger_file_on_the_sample():
    sizes = [len(vqcodec.encode(str(SAMPLE), k=64, rdo=r)) for r in (0, 0.6, 1, 2, 3, 4)]
    assert sizes == sorted(sizes, reverse=True), sizes


# --------------------------------------------------------------------------
# D6, D7: writability and overwrite, before the work


def test_d6_rd_does_not_overwrite_without_force(tmp_path, image):
    src, _ = image
    keep = tmp_path / "keep.csv"
    keep.write_text("precious\n")
    args = ("rd", src, "-k", "4,16", "--no-baselines", "--csv", keep)
    assert error_line(run(*args)) == f"--csv '{keep}' exists; use --force to replace it"
    assert keep.read_text() == "precious\n"
    proc = run(*args, "--force")
    assert proc.returncode == 0, proc.stderr
    assert keep.read_text().startswith("image,")


def test_d6_d7_unwritable_output_is_found_before_the_work(tmp_path, image, monkeypatch):
    src, _ = image
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("this user can write into a read-only folder (root)")
        assert error_line(run("encode", src, ro / "o.vqi")) == f"cannot write '{ro / 'o.vqi'}': permission denied"
        assert error_line(run("rd", src, "--no-baselines", "--json", ro / "r.json")) == \
            f"cannot write --json '{ro / 'r.json'}': permission denied"
    finally:
        ro.chmod(0o755)


def test_d7_check_comes_before_the_encode(tmp_path, image, monkeypatch, capsys):
    """The check runs first: an encoder that would raise is never reached."""
    from vqcodec.cli import io as cli_io
    from vqcodec.cli import main

    src, _ = image

    def refuse(path):
        raise PermissionError(13, "Permission denied", path)

    def boom(*a, **k):
        raise AssertionError("the encoder ran before the output was checked")

    monkeypatch.setattr(cli_io.fileio, "check_writable", refuse)
    monkeypatch.setattr(vqcodec, "encode_pixels", boom)
    assert main(["encode", str(src), str(tmp_path / "o.vqi")]) == 2
    assert capsys.readouterr().err == f"vqcodec: error: cannot write '{tmp_path / 'o.vqi'}': permission denied\n"


def test_check_writable_leaves_nothing(tmp_path):
    fileio.check_writable(tmp_path / "new.vqi")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        fileio.check_writable(tmp_path / "missing" / "new.vqi")


# --------------------------------------------------------------------------
# D8: encode writes .vqi and reads images, not .vqi


def test_d8_encode_refuses_image_output_and_vqi_input(tmp_path, image):
    src, _ = image
    out = tmp_path / "out.png"
    assert error_line(run("encode", src, out)) == (
        f"'{out}' is named as a PNG file, but encode writes VQI; name the output .vqi "
        "(decode writes .png files)")
    assert not out.exists()
    vqi = tmp_path / "a.vqi"
    assert run("encode", src, vqi, "-q").returncode == 0
    for args in ((vqi, tmp_path / "b.vqi"), ("-", tmp_path / "b.vqi")):
        line = error_line(run("encode", *args, stdin=vqi.read_bytes()))
        assert "is already a VQI file; encoding it would quantize it again" in line
    assert not (tmp_path / "b.vqi").exists()
    # any other name is still allowed (no extension, an unknown one)
    assert run("encode", src, tmp_path / "noext", "-q").returncode == 0


# --------------------------------------------------------------------------
# D10, D11: messages and their order


def test_d10_messages_give_advice_once(tmp_path, image):
    src, _ = image
    vqi = tmp_path / "a.vqi"
    assert run("encode", src, vqi, "-q").returncode == 0
    for out in ("x.foo", "noext", "x.vqi"):
        line = error_line(run("decode", vqi, tmp_path / out))
        assert line.count("; ") <= 1 and line.count("use ") + line.count("add ") <= 1, line
    line = error_line(run("encode", src, tmp_path / "x.vqi", "--max-pixels", "100"))
    assert line.endswith("above the limit of 100 (max_pixels); raise the limit with --max-pixels "
                         "if you trust this file")
    line = error_line(run("decode", vqi, tmp_path / "x.png", "--max-pixels", "100"))
    assert "--max-pixels" in line and line.count("max_pixels") <= 1
    help_text = run("decode", "--help").stdout.decode()
    assert "skip the metrics" not in help_text


def test_d10_library_messages_name_no_cli_flag(tmp_path, image):
    src, _ = image
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in.vqi").write_bytes(b"x")
    plan = batch.plan_encode([str(src)], str(tmp_path / "out"))
    assert "--" not in plan.failed[0].error
    with pytest.raises(vqcodec.LimitError) as e:
        vqcodec.encode(str(src), max_pixels=10)
    assert "--" not in str(e.value)


def test_d11_missing_input_is_reported_before_existing_output(tmp_path):
    (tmp_path / "s.vqi").write_bytes(b"x")
    assert error_line(run("encode", "nope.png", "s.vqi", cwd=tmp_path)) == \
        "cannot open 'nope.png': no such file; check the path"
    assert error_line(run("decode", "nope.vqi", "s.png", cwd=tmp_path)) == \
        "cannot open 'nope.vqi': no such file; check the path"


# --------------------------------------------------------------------------
# D12, D13: batches


def test_d12_failed_batch_leaves_no_empty_folder(tmp_path):
    bad = tmp_path / "in" / "deep"
    bad.mkdir(parents=True)
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    proc = run("encode", tmp_path / "in", "--output-dir", tmp_path / "out", "-q", "-j", "1")
    assert proc.returncode == 2
    assert not (tmp_path / "out").exists()
    # an existing output folder stays, its new empty subfolders go
    (tmp_path / "out").mkdir()
    proc = run("encode", tmp_path / "in", "--output-dir", tmp_path / "out", "-q", "-j", "1")
    assert proc.returncode == 2 and list((tmp_path / "out").iterdir()) == []


def test_d13_summary_reads_right(tmp_path, image):
    src, _ = image
    flat = tmp_path / "flat.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(flat)
    proc = run("encode", src, flat, "--output-dir", tmp_path / "out", "-k", "4", "-j", "1")
    assert proc.returncode == 0, proc.stderr
    rows = dict(line.split(None, 1) for line in proc.stdout.decode().replace("mean ", "mean_").splitlines())
    assert rows["mean_PSNR"].endswith("dB over the lossy files (1 lossless left out)")
    proc = run("decode", tmp_path / "out", "--output-dir", tmp_path / "back", "-j", "1")
    rows = dict(line.split(None, 1) for line in proc.stdout.decode().replace("mean ", "mean_").splitlines())
    assert set(rows) == {"files", "input", "output", "time"}
    proc = run("encode", src, "--output-dir", tmp_path / "out", "-j", "1")  # exists: none converted
    assert proc.returncode == 2
    time_row = [line for line in proc.stdout.decode().splitlines() if line.startswith("time")][0]
    assert "files/s" not in time_row
    summary = batch.summarize([batch.Result("a", "a.vqi", 1, 1, 1, 8.0, float("inf"))], 1.0)
    assert summary.lossless == 1 and json.dumps(summary.as_dict())


# --------------------------------------------------------------------------
# NamedBytes: the reader's file object


def test_named_bytes_is_a_whole_file_with_a_name():
    nb = pixels.NamedBytes(b"ab\ncd", "x.png")
    assert nb.name == "x.png" and nb.readline() == b"ab\n" and nb.tell() == 3


# --------------------------------------------------------------------------
# D17: opaque RGBA to formats without alpha


@pytest.mark.parametrize("ext", [".jpg", ".bmp", ".ppm"])
def test_d17_opaque_rgba_is_written_without_alpha(tmp_path, ext):
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (6, 9, 4), dtype=np.uint8)
    rgba[:, :, 3] = 255
    src = tmp_path / "a.vqi"
    src.write_bytes(vqcodec.encode(rgba, k=64))
    out = tmp_path / f"a{ext}"
    proc = run("decode", src, out, "-q")
    assert proc.returncode == 0, proc.stderr
    back = np.asarray(Image.open(out))
    assert back.shape == (6, 9, 3)
    if ext != ".jpg":  # lossless formats: the colours exactly
        np.testing.assert_array_equal(back, vqcodec.decode(src)[:, :, :3])
    # one transparent pixel: refused, as before (the alpha would be lost)
    rgba[0, 0, 3] = 0
    src.write_bytes(vqcodec.encode(rgba, k=64))
    assert "cannot store RGBA" in error_line(run("decode", src, tmp_path / f"b{ext}"))


# --------------------------------------------------------------------------
# D9: README facts


def test_d9_readme_facts():
    text = (ROOT / "README.md").read_text()
    version = "(%d, %d)" % vqcodec.FORMAT_VERSION
    assert f"`vqcodec.FORMAT_VERSION` is `{version}`" in text
    assert "pip install 'vqcodec[" not in text and "-o DIR" not in text
    assert 'if __name__ == "__main__":' in text
    ignored = (ROOT / ".gitignore").read_text().split()
    for name in re.findall(r"vqcodec encode tests/data/sample\.png (\S+\.vqi)", text):
        assert name in ignored, name
    import inspect

    params = inspect.signature(vqcodec.encode).parameters
    for name in ("k", "seed", "rdo", "coder", "layout", "level", "max_pixels", "overwrite"):
        assert name in params and f"{name}=" in text


# --------------------------------------------------------------------------
# D10 wording, D16: options that do nothing are not silent


def test_d10_wording(tmp_path):
    two = np.zeros((4, 4, 3), np.uint8)
    two[0, 0] = 255
    proc = run("encode", "-", tmp_path / "a.vqi", "-k", "2", stdin=_png(two))
    assert proc.returncode == 0 and "k=2 (1 bit/index)" in proc.stdout.decode()
    proc = run("decode", tmp_path / "a.vqi", tmp_path / "a.jpg", "--format", "jpg")
    assert proc.returncode == 0 and ", JPEG " in proc.stdout.decode()
    for name in ("a.png", "a.tif"):
        Image.fromarray(two).save(tmp_path / name)
    proc = run("encode", tmp_path / "a.png", tmp_path / "a.tif", "--output-dir", tmp_path / "o")
    assert "would both write" in proc.stderr.decode()


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def test_d16_ignored_options_are_said(tmp_path):
    out = tmp_path / "a.vqi"
    line = error_line(run("encode", SAMPLE, out, "--coder", "bzip2", "--level", "3"))
    assert line.startswith("--level sets zstd's level; it does nothing with --coder bzip2")
    proc = run("encode", SAMPLE, out, "-k", "64", "--level", "3")
    assert proc.returncode == 0
    # the ctx coder, or bzip2 where coder 2 cannot be encoded (VQCODEC_PURE_PYTHON=1): not zstd either way
    assert re.search(r"vqcodec: warning: --level had no effect: the encoder chose the (ctx|bzip2) coder",
                     proc.stderr.decode())
    proc = run("encode", SAMPLE, out, "-k", "64", "--layout", "packed", "-f")
    assert proc.returncode == 0 and "--layout packed leaves the ctx coder out" in proc.stderr.decode()
    proc = run("encode", SAMPLE, out, "-k", "64", "--coder", "zstd", "--level", "3", "-f")
    assert proc.returncode == 0 and proc.stderr == b""


# --------------------------------------------------------------------------
# Build: a no-compiler install says so, once


def test_version_and_first_slow_command_say_the_extensions_are_missing(monkeypatch, capsys, tmp_path):
    from vqcodec import _native
    from vqcodec.cli import extensions_line, main

    monkeypatch.setattr(_native, "status", lambda: {name: "compiled" if name == "_ssim" else "missing"
                                                      for name in _native.EXTENSIONS})
    monkeypatch.setattr(_native, "_warned", False)
    monkeypatch.delenv(_native.PURE_PYTHON_VARIABLE, raising=False)
    line = extensions_line()
    assert line.startswith("compiled extensions: MISSING _quantize, _rdo, _ctxcoder, _candcoder (built without "
                           "a C compiler)")
    src = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(src)
    for n in range(2):
        assert main(["encode", str(src), str(tmp_path / f"{n}.vqi"), "-k", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count("vqcodec: warning: the compiled extensions _quantize, _rdo, _ctxcoder, _candcoder are "
                     "not built") == 1


# --------------------------------------------------------------------------
# Usability: --strip, one ICC rule


def test_strip_drops_the_icc_profile_and_rd_agrees(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "icc.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(src, icc_profile=icc)
    kept, stripped = tmp_path / "kept.vqi", tmp_path / "stripped.vqi"
    assert run("encode", src, kept, "-k", "4", "-q").returncode == 0
    assert run("encode", src, stripped, "-k", "4", "-q", "--strip").returncode == 0
    assert vqcodec.read_info(kept).icc_profile_bytes == len(icc)
    assert vqcodec.read_info(stripped).icc_profile_bytes == 0
    assert vqcodec.decode_image(stripped).info.get("icc_profile") is None
    for strip, path in ((False, kept), (True, stripped)):
        flags = ("--strip",) if strip else ()
        proc = run("rd", src, "-k", "4", "--no-baselines", "--json", "-", *flags)
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(proc.stdout)["rows"]
        assert [r["bytes"] for r in rows] == [path.stat().st_size]
    with pytest.raises(vqcodec.OptionError, match="strip must be True or False"):
        vqcodec.encode(str(src), strip="yes")


# --------------------------------------------------------------------------
# Usability: rd -j N, and Ctrl-C keeps the finished rows


def _rd_images(tmp_path: Path, n: int) -> list[str]:
    rng = np.random.default_rng(5)
    paths = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


_UNTIMED = ("image", "codec", "k", "bytes", "bpp", "psnr", "ssim", "mse", "quality", "reached")


def test_rd_jobs_gives_the_same_rows_as_serial(tmp_path):
    paths = _rd_images(tmp_path, 3)
    paths.insert(1, str(tmp_path / "text.png"))
    (tmp_path / "text.png").write_text("not an image")
    runs = [rd.sweep(paths, ks=(4, 16), baselines=("png", "webp"), jobs=jobs) for jobs in (1, 2)]

    def untimed(result):
        return [{name: value for name, value in row.as_dict().items() if name in _UNTIMED}
                for row in result.rows]

    assert untimed(runs[0]) == untimed(runs[1]) and len(runs[0].rows) == 3 * 2 * 3
    assert runs[0].images == runs[1].images == [paths[0], paths[2], paths[3]]
    assert runs[0].skipped == runs[1].skipped and len(runs[1].skipped) == 1
    with pytest.raises(vqcodec.OptionError, match="jobs must be"):
        rd.sweep(paths, jobs=0)


def test_rd_interrupted_keeps_the_finished_images(tmp_path, monkeypatch, capsys):
    from vqcodec.cli import main

    paths = _rd_images(tmp_path, 3)
    import importlib

    sweep_module = importlib.import_module("vqcodec.rd.sweep")  # the package's 'sweep' is the function

    real = sweep_module._measure_path
    calls = []

    def measure_then_interrupt(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "_measure_path", measure_then_interrupt)
    out_csv = tmp_path / "rd.csv"
    code = main(["rd", *paths, "-k", "4", "--no-baselines", "-j", "1", "--csv", str(out_csv)])
    assert code == 130
    err = capsys.readouterr().err
    assert "vqcodec: interrupted; the outputs hold the 2 image(s) finished" in err
    lines = out_csv.read_text().splitlines()
    assert len(lines) == 1 + 2 and paths[0] in lines[1] and paths[1] in lines[2]


# --------------------------------------------------------------------------
# Usability: decoding to PNG writes PNG8 when the colours fit


def test_decode_to_png_is_a_palette_png_no_larger_than_pngquants(tmp_path):
    import shutil

    vqi, png = tmp_path / "s.vqi", tmp_path / "s.png"
    assert run("encode", SAMPLE, vqi, "-k", "64", "-q").returncode == 0
    assert run("decode", vqi, png, "-q").returncode == 0
    im = Image.open(png)
    assert im.mode == "P" and len(im.getpalette()) // 3 <= 256
    decoded = vqcodec.decode(vqi)
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), decoded)
    truecolour = io.BytesIO()
    Image.fromarray(decoded).save(truecolour, "PNG")
    assert png.stat().st_size < len(truecolour.getvalue()) / 2
    if shutil.which("pngquant"):
        rgb = tmp_path / "rgb.png"
        Image.fromarray(decoded).save(rgb)
        pq = tmp_path / "pq.png"
        subprocess.run(["pngquant", "--nofs", "64", "--force", "-o", str(pq), str(rgb)], check=True)
        with Image.open(pq) as pq_im:
            np.testing.assert_array_equal(np.asarray(pq_im.convert("RGB")), decoded)  # same pixels
            stored = io.BytesIO()
            pq_im.save(stored, "PNG")
        assert png.stat().st_size <= len(stored.getvalue())


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_png_round_trip_keeps_pixels_and_mode(mode):
    rng = np.random.default_rng(7)
    channels = len(mode)
    book = rng.integers(0, 256, (12, channels), dtype=np.uint8)
    if "A" in mode:
        book[0, -1] = 0
    array = book[rng.integers(0, 12, (9, 14))]
    px = pixels.from_array(array)
    data = pixels.to_bytes(px, "PNG")
    back = pixels.load(data)
    assert back.mode == mode
    np.testing.assert_array_equal(back.array, px.array)
    if mode in ("RGB", "RGBA"):
        assert Image.open(io.BytesIO(data)).mode == "P"
    # more than 256 colours: truecolour, as before
    many = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert Image.open(io.BytesIO(pixels.to_bytes(pixels.from_array(many), "PNG"))).mode == "RGB"


# --------------------------------------------------------------------------
# Usability: WebP lossless unless asked, JPEG said to be lossy


def test_decode_to_webp_is_lossless_unless_a_quality_is_given(tmp_path):
    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    vqi = tmp_path / "a.vqi"
    vqi.write_bytes(vqcodec.encode(array, k=64))
    decoded = vqcodec.decode(vqi)
    proc = run("decode", vqi, tmp_path / "a.webp")
    assert proc.returncode == 0 and "lossy" not in proc.stdout.decode()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.webp").convert("RGB")), decoded)
    proc = run("decode", vqi, tmp_path / "b.webp", "--lossy-quality", "60")
    assert proc.returncode == 0 and "(lossy, quality 60" in proc.stdout.decode()
    proc = run("decode", vqi, tmp_path / "c.jpg")
    assert proc.returncode == 0 and "(lossy, Pillow's default quality" in proc.stdout.decode()
    assert error_line(run("decode", vqi, tmp_path / "d.png", "--lossy-quality", "60")) == \
        "--lossy-quality applies to WebP, JPEG and AVIF, not PNG; drop it"
    proc = run("decode", vqi, "--output-dir", tmp_path / "batch", "--format", "jpg",
               "--lossy-quality", "30", "-q")
    assert proc.returncode == 0, proc.stderr
    small = (tmp_path / "batch" / "a.jpg").stat().st_size
    assert small < (tmp_path / "c.jpg").stat().st_size  # quality 30 reached the batch workers


# --------------------------------------------------------------------------
# Usability: the Pillow plugin's errors are OSErrors too


def test_plugin_errors_are_oserrors_and_stay_vqcodecs(tmp_path):
    data = bytearray(vqcodec.encode(np.zeros((6, 8, 3), np.uint8), k=2))
    data[-12] ^= 0xFF  # inside a section: a CRC mismatch
    path = tmp_path / "bad.vqi"
    path.write_bytes(bytes(data))
    with pytest.raises(OSError) as caught:
        Image.open(path).load()
    own = _raised(lambda: vqcodec.decode(bytes(data)))  # the library's own API is unchanged
    assert isinstance(own, vqcodec.FormatError) and not isinstance(own, OSError)
    assert isinstance(caught.value, type(own)) and type(caught.value).__name__ == type(own).__name__
    assert str(caught.value) == str(own)


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the test inspects it
        return e
    raise AssertionError("nothing raised")


def test_paths_may_follow_options(tmp_path, image):
    src, array = image
    out = tmp_path / "late.vqi"
    assert run("encode", src, "-k", "16", out, "-q").returncode == 0
    np.testing.assert_array_equal(vqcodec.decode(out), array)
    other = tmp_path / "other.png"
    Image.fromarray(array[::-1]).save(other)
    proc = run("rd", src, "-k", "4", other, "--no-baselines", "-j", "1")
    assert proc.returncode == 0 and "2 images" in proc.stdout.decode().splitlines()[0]


def test_d10_batch_limit_message_names_the_flag(tmp_path, image):
    src, _ = image
    proc = run("encode", src, "--output-dir", tmp_path / "out", "--max-pixels", "10", "-q")
    line = error_line(proc)
    assert line.endswith("above the limit of 10 (max_pixels); raise the limit with --max-pixels "
                         "if you trust this file")


def test_d10_decode_limit_message_names_the_flag_once(tmp_path, image):
    src, _ = image
    vqi = tmp_path / "a.vqi"
    assert run("encode", src, vqi, "-q").returncode == 0
    line = error_line(run("decode", vqi, tmp_path / "a.png", "--max-pixels", "10"))
    assert line == (f"cannot decode '{vqi}': image is 28×20 = 560 pixels, above the limit of 10 "
                    "(max_pixels); raise the limit with --max-pixels if you trust this file")
    line = error_line(run("decode", vqi, "--output-dir", tmp_path / "o", "--max-pixels", "10"))
    assert line.endswith("(max_pixels); raise the limit with --max-pixels if you trust this file")


def test_rd_plot_labels_a_baseline_that_fell_short(monkeypatch):
    """The legend said 'at equal PSNR' even where quality 100 never reached vqcodec's PSNR."""
    import types
    from unittest import mock

    figure = mock.MagicMock()
    fake = types.ModuleType("matplotlib")
    fake.use = lambda backend: None
    fake_figure = types.ModuleType("matplotlib.figure")
    fake_figure.Figure = lambda *a, **k: figure
    monkeypatch.setitem(sys.modules, "matplotlib", fake)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", fake_figure)
    rng = np.random.default_rng(4)
    px = pixels.from_array(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    result = rd.Result(ks=(256,), baselines=("jpeg",))
    result.rows = rd.measure_image(px, ks=(256,), baselines=("jpeg",))
    result.images = ["<image>"]
    assert [r.reached for r in result.rows if r.codec == "jpeg"] == [False]  # noise at k=256
    rd.plot_png(result)
    labels = [c.kwargs.get("label") for c in figure.add_subplot.return_value.plot.call_args_list]
    assert "JPEG (quality 100 short of vqcodec's PSNR at some k)" in labels
