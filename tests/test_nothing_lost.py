"""Nothing the user had is lost: kills and interrupts mid-encode, concurrent encodes.

An encode computes everything in memory and then writes an anonymous file
that gets its name only when complete, so at any moment the output path
holds either the previous file or the complete new one, and no temporary
file survives, not even SIGKILL.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec


@pytest.fixture(scope="module")
def big_png(tmp_path_factory) -> Path:
    """A photo-like image large enough that an encode takes a noticeable time."""
    y, x = np.mgrid[0:900, 0:1200]
    rng = np.random.default_rng(7)
    image = np.stack([(x * 3 + y) % 256, (y * 5) % 256, (x ^ y) % 256], -1).astype(np.int16)
    image = np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("big") / "big.png"
    Image.fromarray(image).save(path, compress_level=1)
    return path


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vqcodec", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_encode_leaves_previous_output_and_no_temporary(tmp_path, big_png, sig):
    out = tmp_path / "out.vqi"
    previous = b"the previous output, which must survive"
    rng = random.Random(int(sig))
    for attempt in range(4):
        out.write_bytes(previous)
        proc = start("encode", big_png, out, "-k", "256", "--force", "-q")
        # SIGKILL at any moment; the catchable signals once main() has installed its
        # handlers (before that, during Python's own start-up, they act as defaults)
        time.sleep(rng.uniform(0.05 if sig == signal.SIGKILL else 0.6, 1.5))
        proc.send_signal(sig)
        proc.wait(timeout=60)
        data = out.read_bytes()
        if data != previous:
            # the output was replaced: only ever by the complete new file (the signal came
            # after the atomic rename -- even during the interpreter's shut-down, which then
            # ends by the signal's default action)
            assert vqcodec.decode(data).shape == (900, 1200, 3), (attempt, proc.returncode)
        else:
            assert proc.returncode != 0, attempt  # a finished encode replaces the file
            if sig != signal.SIGKILL and proc.returncode > 0:
                assert proc.returncode == 130
                assert proc.stderr.read().decode().strip() == "vqcodec: interrupted"
        assert sorted(os.listdir(tmp_path)) == ["out.vqi"]


def test_killed_encode_without_previous_leaves_nothing(tmp_path, big_png):
    out = tmp_path / "new.vqi"
    proc = start("encode", big_png, out, "-k", "256", "-q")
    time.sleep(0.3)
    proc.kill()
    proc.wait(timeout=60)
    assert os.listdir(tmp_path) == [] or (proc.returncode == 0 and os.listdir(tmp_path) == ["new.vqi"])


def test_input_is_never_modified(tmp_path, big_png):
    before = big_png.read_bytes(), big_png.stat().st_mtime_ns
    proc = start("encode", big_png, tmp_path / "o.vqi", "-k", "16", "-q")
    assert proc.wait(timeout=120) == 0
    assert (big_png.read_bytes(), big_png.stat().st_mtime_ns) == before


def test_concurrent_encodes_do_not_interfere(tmp_path, big_png):
    small = tmp_path / "small.png"
    Image.open(big_png).crop((0, 0, 300, 200)).save(small)
    procs = [start("encode", src, tmp_path / f"{i}.vqi", "-k", str(k), "-q")
             for i, (src, k) in enumerate([(big_png, 64), (small, 16), (big_png, 32), (small, 8)])]
    assert [p.wait(timeout=180) for p in procs] == [0, 0, 0, 0]
    shapes = [vqcodec.decode((tmp_path / f"{i}.vqi").read_bytes()).shape for i in range(4)]
    assert shapes == [(900, 1200, 3), (200, 300, 3), (900, 1200, 3), (200, 300, 3)]
    assert sorted(os.listdir(tmp_path)) == ["0.vqi", "1.vqi", "2.vqi", "3.vqi", "small.png"]


def test_failed_encode_leaves_no_output(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    proc = start("encode", bad, tmp_path / "o.vqi")
    assert proc.wait(timeout=60) == 2
    assert sorted(os.listdir(tmp_path)) == ["bad.png"]


def test_interrupted_batch_leaves_no_empty_folder(tmp_path, big_png):
    """D12 (issue 10): Ctrl-C in a batch left an empty output folder behind."""
    deep = tmp_path / "in" / "deep"
    deep.mkdir(parents=True)
    for n in range(3):
        shutil.copyfile(big_png, deep / f"p{n}.png")
    out = tmp_path / "out"
    proc = start("encode", tmp_path / "in", "--output-dir", out, "-k", "256", "-j", "1", "-q")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode in (0, 130), proc.stderr.read()
    for folder, dirs, files in os.walk(out):
        assert dirs or files, f"empty folder {folder} left behind"
        for name in files:
            assert vqcodec.decode(os.path.join(folder, name)).shape == (900, 1200, 3)
