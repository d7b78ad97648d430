"""Batches: planning (mirroring, recursion, collisions), running on executors, the CLI, Dask."""

from __future__ import annotations

import io

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import batch
from image_files import png_pixels

SIZE = (24, 32)  # rows, columns


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*SIZE, 3), dtype=np.uint8)


def write_images(root: Path, names: list[str]) -> None:
    for seed, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image(seed)).save(path)


@pytest.fixture
def tree(tmp_path) -> Path:
    """a.png; sub/ with b.png, deep/c.jpg, deep/d.bmp, and things a search must skip."""
    write_images(tmp_path, ["a.png", "sub/b.png", "sub/deep/c.jpg", "sub/deep/d.bmp",
                            "sub/.hidden/e.png", "sub/.f.png"])
    (tmp_path / "sub" / "notes.txt").write_text("not an image")
    (tmp_path / "sub" / "old.vqi").write_bytes(b"not read by encode")
    return tmp_path


def targets(plan: batch.Plan, root: Path) -> set[str]:
    return {os.path.relpath(job.target, root) for job in plan.jobs}


def cli(*args: object, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqcodec", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120, env=env)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    lines = proc.stderr.strip().splitlines()
    assert all(line.startswith("vqcodec: error: ") for line in lines), lines
    assert "Traceback" not in proc.stderr
    return lines


# --------------------------------------------------------------------------
# Planning


def test_plan_mirrors_folders_files_go_to_the_top(tree, monkeypatch):
    monkeypatch.chdir(tree)
    plan = batch.plan_encode(["a.png", "sub"], "out")
    assert plan.what == "encode" and plan.failed == ()
    assert targets(plan, tree / "out") == {"a.vqi", "b.vqi", os.path.join("deep", "c.vqi"),
                                           os.path.join("deep", "d.vqi")}
    assert [job.source for job in plan.jobs][0] == "a.png"  # paths as given, in order


def test_plan_decode_takes_vqi_and_names_by_format(tree):
    (tree / "sub" / "deep" / "x.vqi").write_bytes(b"")
    plan = batch.plan_decode([str(tree / "sub")], str(tree / "back"), format="jpeg")
    assert targets(plan, tree / "back") == {"old.jpg", os.path.join("deep", "x.jpg")}
    assert batch.output_suffix("PNG") == ".png" and batch.output_suffix("tiff") == ".tif"
    with pytest.raises(vqcodec.OptionError, match="unknown image extension"):
        batch.plan_decode([str(tree)], str(tree / "back"), format="nope")


def test_image_extensions_are_what_pillow_reads():
    exts = batch.image_extensions()
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".webp", ".gif", ".ppm"} <= exts
    assert not exts & {".vqi", ".txt", ".pdf", ".eps"}


def test_collisions_are_reported_not_overwritten(tmp_path):
    write_images(tmp_path, ["in/a.png", "in/a.jpg", "in/b.png", "x/c.png", "y/c.png"])
    plan = batch.plan_encode([str(tmp_path / "in"), str(tmp_path / "x" / "c.png"),
                              str(tmp_path / "y" / "c.png")], str(tmp_path / "out"))
    assert targets(plan, tmp_path / "out") == {"b.vqi"}
    failed = {os.path.basename(r.source): r.error for r in plan.failed}
    assert set(failed) == {"a.png", "a.jpg", "c.png"} and len(plan.failed) == 4
    assert "a.png" in failed["a.jpg"] and "a.jpg" in failed["a.jpg"]
    assert "would both write" in failed["c.png"] and "rename one" in failed["c.png"]
    assert plan.total == 5


def test_output_folder_inside_input_is_not_searched(tree):
    write_images(tree, ["sub/out/earlier.png"])  # e.g. a decode written there last time
    plan = batch.plan_encode([str(tree / "sub")], str(tree / "sub" / "out"))
    assert "earlier.vqi" not in targets(plan, tree / "sub" / "out")
    assert len(plan.jobs) == 3


def test_missing_input_same_file_twice_and_output_replacing_input(tree, monkeypatch):
    monkeypatch.chdir(tree)
    plan = batch.plan_encode(["nothing.png", "sub", "sub/b.png"], "out")
    assert [(r.source, r.error) for r in plan.failed] == [("nothing.png", "no such file or folder")]
    assert len(plan.jobs) == 3  # sub/b.png named twice, planned once
    (tree / "a.vqi").write_bytes(b"x")
    plan = batch.plan_encode(["a.vqi"], ".", overwrite=True)
    assert not plan.jobs and "replace the input" in plan.failed[0].error


def test_existing_outputs_not_replaced_without_force(tree, monkeypatch):
    monkeypatch.chdir(tree)
    (tree / "out").mkdir()
    (tree / "out" / "a.vqi").write_bytes(b"keep me")
    plan = batch.plan_encode(["a.png"], "out")
    assert not plan.jobs and plan.failed[0].error == "'out/a.vqi' exists"
    # the worker checks again (another process may have written it since planning)
    result = batch.encode_file("a.png", "out/a.vqi", k=8)
    assert result.error == "'out/a.vqi' exists"
    assert (tree / "out" / "a.vqi").read_bytes() == b"keep me"
    assert batch.plan_encode(["a.png"], "out", overwrite=True).jobs
    assert batch.encode_file("a.png", "out/a.vqi", k=8, overwrite=True).ok
    np.testing.assert_array_equal(vqcodec.decode("out/a.vqi").shape, (*SIZE, 3))


# --------------------------------------------------------------------------
# Running


def check_round_trip(result: batch.Result, tmp_path: Path) -> None:
    assert result.ok, result.error
    assert result.pixels == SIZE[0] * SIZE[1] and result.bytes_out == os.path.getsize(result.target)
    assert result.bpp == pytest.approx(8 * result.bytes_out / result.pixels)
    original = np.asarray(Image.open(result.source).convert("RGB")).astype(float)
    decoded = vqcodec.decode(result.target).astype(float)
    assert result.psnr == pytest.approx(10 * np.log10(255**2 / ((original - decoded) ** 2).mean()))


@pytest.mark.parametrize("how", ["in-process", "threads"])
def test_run_yields_every_file_a_broken_one_fails_alone(tree, how, monkeypatch):
    (tree / "sub" / "deep" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    monkeypatch.chdir(tree)
    plan = batch.plan_encode(["a.png", "sub"], "out")
    if how == "threads":
        with ThreadPoolExecutor(2) as pool:
            results = list(batch.run(plan, executor=pool, k=16))
    else:
        results = list(batch.run(plan, jobs=1, k=16))
    assert sorted(r.source for r in results) == sorted(j.source for j in plan.jobs)
    bad = [r for r in results if not r.ok]
    assert [r.source for r in bad] == [os.path.join("sub", "deep", "broken.png")]
    assert "sub/deep/broken.png" in bad[0].error and str(tree) not in bad[0].error
    assert not os.path.exists(bad[0].target)
    for result in results:
        if result.ok:
            check_round_trip(result, tree)
    back = batch.plan_decode(["out"], "back")
    decoded = list(batch.run(back, jobs=1))
    assert len(decoded) == 4 and all(r.ok for r in decoded)
    for r in decoded:
        np.testing.assert_array_equal(png_pixels(r.target), vqcodec.decode(r.source))


def test_at_most_a_window_of_futures_in_flight(tmp_path):
    write_images(tmp_path, [f"{i:02}.png" for i in range(10)])
    plan = batch.plan_encode([str(tmp_path)], str(tmp_path / "out"))
    consumed = [0]
    in_flight = []

    class Counting(ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            in_flight.append(len(in_flight) + 1 - consumed[0])
            return super().submit(*args, **kwargs)

    with Counting(2) as pool:
        for result in batch.run(plan, executor=pool, window=3, k=4, measure=False):
            assert result.ok and result.psnr is None
            consumed[0] += 1
    assert len(in_flight) == 10 and max(in_flight) == 3


def test_closing_the_iterator_cancels_the_rest(tmp_path):
    write_images(tmp_path, [f"{i:02}.png" for i in range(8)])
    plan = batch.plan_encode([str(tmp_path)], str(tmp_path / "out"))
    with ThreadPoolExecutor(1) as pool:
        stream = batch.run(plan, executor=pool, window=2, k=4)
        next(stream)
        stream.close()
    assert len(os.listdir(tmp_path / "out")) <= 3


def test_summarize():
    rows = [batch.Result("a", "a.vqi", 100, 20, 10, 16.0, 30.0),
            batch.Result("b", "b.vqi", 50, 30, 10, 24.0, float("inf")),
            batch.Result("c", "c.vqi", error="broken")]
    s = batch.summarize(rows, 2.0)
    assert (s.ok, s.failed, s.bytes_in, s.bytes_out) == (2, 1, 150, 50)
    assert s.ratio == 3.0 and s.mean_bpp == 20.0 and s.mean_psnr == 30.0
    # pixel-weighted: a 4-pixel file at 200 bpp barely moves 1000 pixels at 2 bpp
    mixed = batch.summarize([batch.Result("big", "big.vqi", 900, 250, 1000, 2.0, 30.0),
                             batch.Result("tiny", "tiny.vqi", 80, 100, 4, 200.0, 20.0)], 1.0)
    assert mixed.mean_bpp == pytest.approx(8 * 350 / 1004) and mixed.mean_bpp < 3
    lossless = batch.summarize(rows[1:2], 1.0)
    assert lossless.mean_psnr == float("inf") and lossless.as_dict()["mean_psnr"] is None
    json.dumps(rows[1].as_dict(), allow_nan=False)


# --------------------------------------------------------------------------
# The CLI


def test_cli_encode_then_decode_folders(tree):
    proc = cli("encode", "a.png", "sub/", "--output-dir", "out/", "-k", "16", "-j", "2", cwd=tree)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rows = dict(line.split(None, 1) for line in proc.stdout.replace("mean ", "mean_").splitlines())
    assert rows["files"] == "4 ok, 0 failed"
    assert set(rows) == {"files", "input", "output", "ratio", "mean_bpp", "mean_PSNR", "time"}
    assert sorted(str(p.relative_to(tree / "out")) for p in (tree / "out").rglob("*.vqi")) == [
        "a.vqi", "b.vqi", os.path.join("deep", "c.vqi"), os.path.join("deep", "d.vqi")]

    proc = cli("decode", "out/", "--output-dir", "back/", cwd=tree)
    assert proc.returncode == 0, proc.stderr
    for vqi in (tree / "out").rglob("*.vqi"):
        png = tree / "back" / vqi.relative_to(tree / "out").with_suffix(".png")
        np.testing.assert_array_equal(png_pixels(png), vqcodec.decode(vqi))

    proc = cli("encode", "a.png", "--output-dir", "out/", "-q", cwd=tree)  # exists: refused, still one line
    assert proc.returncode == 2 and proc.stdout == ""
    assert error_lines(proc) == [
        "vqcodec: error: cannot encode 'a.png': 'out/a.vqi' exists; use --force to replace it"]
    proc = cli("encode", "a.png", "--output-dir", "out/", "-q", "-f", "-k", "4", cwd=tree)
    assert proc.returncode == 0 and proc.stdout == proc.stderr == ""


def test_cli_broken_file_among_good_ones_and_json(tree):
    (tree / "sub" / "broken.png").write_bytes(b"garbage")
    proc = cli("encode", "sub", "--output-dir", "out", "-k", "8", "-j", "2", "--json", cwd=tree)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and "sub/broken.png" in lines[0], lines
    report = json.loads(proc.stdout)
    assert report["command"] == "encode"
    assert report["summary"]["ok"] == 3 and report["summary"]["failed"] == 1
    rows = {row["source"]: row for row in report["files"]}
    assert rows["sub/broken.png"]["error"] and rows["sub/broken.png"]["target"] == "out/broken.vqi"
    assert not (tree / "out" / "broken.vqi").exists()
    good = rows["sub/b.png"]
    assert good["error"] is None and good["bytes_out"] == (tree / "out" / "b.vqi").stat().st_size
    assert report["summary"]["bytes_out"] == sum(r["bytes_out"] for r in report["files"])
    assert report["summary"]["mean_psnr"] == pytest.approx(
        np.mean([r["psnr"] for r in report["files"] if r["psnr"] is not None]))


def test_cli_collision_and_nothing_to_do(tmp_path):
    write_images(tmp_path, ["in/a.png", "in/a.jpg"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    proc = cli("encode", "in", "--output-dir", "out", "-j", "1", cwd=tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 2 and all("would both write 'out/a.vqi'" in line for line in lines)
    assert not (tmp_path / "out" / "a.vqi").exists()
    proc = cli("encode", "empty", "--output-dir", "out", cwd=tmp_path)
    assert proc.returncode == 2 and error_lines(proc) == [
        "vqcodec: error: no images found in empty; give files or folders that hold some"]


def test_cli_scheduler_without_dask(tmp_path, tree):
    fake = tmp_path / "fake"
    (fake / "dask").mkdir(parents=True)
    (fake / "dask" / "__init__.py").write_text("raise ImportError('no dask here')\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    proc = cli("encode", "sub", "--output-dir", "out", "--scheduler", "tcp://127.0.0.1:8786", cwd=tree, env=env)
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "vqcodec: error: --scheduler needs Dask: pip install -e '.[dask]' (in vqcodec's folder)"]
    assert not (tree / "out").exists()  # D12: no empty output folder left behind
    proc = cli("encode", "sub", "--output-dir", "out", "-j", "2", "--scheduler", "tcp://x:1", cwd=tree)
    assert proc.returncode == 2 and "do not go together" in error_lines(proc)[0]


# --------------------------------------------------------------------------
# Dask


def test_dask_cluster_cli_and_library(tree, monkeypatch):
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        proc = cli("encode", "sub", "--output-dir", "out", "-k", "16", "--json",
                   "--scheduler", cluster.scheduler_address, cwd=tree)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["summary"]["ok"] == 3
        monkeypatch.chdir(tree)
        with Client(cluster) as client:
            plan = batch.plan_encode(["sub"], "lib")
            results = list(batch.run(plan, executor=client.get_executor(pure=False), k=16))
    assert len(results) == 3
    for result in results:
        check_round_trip(result, tree)
        twin = tree / "out" / os.path.relpath(result.target, "lib")
        np.testing.assert_array_equal(vqcodec.decode(twin), vqcodec.decode(result.target))
