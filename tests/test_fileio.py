"""Atomic writes: complete or absent, no clobbering without overwrite, nothing left behind."""

from __future__ import annotations

import io
import os

import pytest

from vqcodec import fileio
from vqcodec.errors import ImageInputError


def leftovers(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


def test_write_and_no_clobber(tmp_path):
    target = tmp_path / "a.bin"
    fileio.atomic_write(target, b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(FileExistsError):
        fileio.atomic_write(target, b"second")
    assert target.read_bytes() == b"first"
    fileio.atomic_write(target, b"second", overwrite=True)
    assert target.read_bytes() == b"second"
    assert leftovers(tmp_path) == []


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        fileio.atomic_write(tmp_path / "nope" / "a.bin", b"x")


def test_fallback_named_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_open_anonymous", lambda folder: None)
    target = tmp_path / "b.bin"
    fileio.atomic_write(target, b"data")
    with pytest.raises(FileExistsError):
        fileio.atomic_write(target, b"other")
    fileio.atomic_write(target, b"other", overwrite=True)
    assert target.read_bytes() == b"other"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("anonymous", [True, False])
def test_failure_during_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, anonymous):
    if not anonymous:
        monkeypatch.setattr(fileio, "_open_anonymous", lambda folder: None)
    target = tmp_path / "c.bin"
    target.write_bytes(b"precious")

    def boom(fd, data):
        os.write(fd, data[:3])
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio, "_write_all", boom)
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write(target, b"new content", overwrite=True)
    assert target.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["c.bin"]


def test_read_source_forms(tmp_path):
    p = tmp_path / "s.bin"
    p.write_bytes(b"abc")
    assert fileio.read_source(str(p)) == b"abc"
    assert fileio.read_source(p) == b"abc"
    assert fileio.read_source(b"abc") == b"abc"
    assert fileio.read_source(io.BytesIO(b"abc")) == b"abc"
    with pytest.raises(ImageInputError, match="cannot open .*nope"):
        fileio.read_source(tmp_path / "nope")
    with pytest.raises(ImageInputError, match="is a directory"):
        fileio.read_source(tmp_path)
    with pytest.raises(ImageInputError, match="larger than 2 bytes"):
        fileio.read_source(io.BytesIO(b"abc"), limit=2)


def test_write_target_stream():
    buf = io.BytesIO()
    fileio.write_target(buf, b"xyz")
    assert buf.getvalue() == b"xyz"
