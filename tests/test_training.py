"""vqcodec.training and `vqcodec train`: map (sample) -> reduce (merge) -> learn, on any executor."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from vqcodec import OptionError, books, training, vqb
from vqcodec.quantize import Histogram, learn

RNG = np.random.default_rng(3)


def images(folder, n=3, size=(20, 16)):
    """*n* small RGB images of few colours, with one sub-folder."""
    paths = []
    for i in range(n):
        sub = folder / ("sub" if i == 2 else "")
        sub.mkdir(exist_ok=True)
        a = RNG.integers(0, 4, size[::-1] + (3,), dtype=np.uint8) * 60 + i
        path = sub / f"im{i}.png"
        Image.fromarray(a).save(path)
        paths.append(str(path))
    return paths


def test_train_equals_learning_the_merged_histogram(tmp_path):
    paths = images(tmp_path)
    result = training.train(paths, k=8, jobs=1)
    merged = Histogram(3)
    for p in paths:
        merged.add(np.asarray(Image.open(p)))
    assert result.codebook == learn(merged, 8)
    assert (result.images, result.vectors, result.distinct) == (3, 3 * 320, len(merged))
    assert result.usage.used == len(result.codebook) and 0 < result.usage.entropy <= 3


def test_any_executor_gives_the_same_codebook(tmp_path):
    paths = images(tmp_path)
    local = training.train(paths, k=6, block=(2, 2), jobs=1)
    with ThreadPoolExecutor(2) as pool:
        threaded = training.train(paths, k=6, block=(2, 2), executor=pool)
    assert local.codebook == threaded.codebook and local.codebook.block == (2, 2)
    processes = training.train(paths, k=6, block=(2, 2), jobs=2)  # a local pool of spawned processes
    assert processes.codebook == local.codebook


def test_dask_executor(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    paths = images(tmp_path)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2) as client:
        result = training.train(paths, k=6, executor=client.get_executor(pure=False))
    assert result.codebook == training.train(paths, k=6, jobs=1).codebook


def test_sampling_is_bounded_and_reproducible(tmp_path):
    path = images(tmp_path, n=1, size=(64, 64))[0]
    a = training.sample_file(path, samples=100, seed=1)
    assert a.counts.sum() == 100
    assert np.array_equal(a.colors, training.sample_file(path, samples=100, seed=1).colors)
    assert training.sample_file(path, samples=None).counts.sum() == 64 * 64


def test_usage_counts_entries_and_entropy():
    hist = Histogram.of(np.array([[[0, 0, 0], [0, 0, 0], [255, 255, 255], [250, 250, 250]]], np.uint8))
    book = books.to_codebook(np.array([[0, 0, 0], [255, 255, 255], [9, 9, 9]], np.uint8))
    u, mse = training.usage_of(hist, book)
    assert (u.used, u.k) == (2, 3) and u.entropy == pytest.approx(1.0)
    assert mse == pytest.approx(25 / 4) and u.used_fraction == pytest.approx(2 / 3)


def test_unreadable_images_are_listed_and_none_is_an_error(tmp_path):
    paths = images(tmp_path, n=1)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = training.train([*paths, str(bad)], k=4, jobs=1)
    assert result.images == 1 and result.failed[0][0] == str(bad)
    with pytest.raises(OptionError, match="no image could be read"):
        training.train([str(bad)], k=4, jobs=1)
    with pytest.raises(OptionError, match="mode must be one of"):
        training.train(paths, k=4, mode="CMYK")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "vqcodec", *map(str, args)], capture_output=True, timeout=120)


def test_cli_train_writes_a_codebook_and_reports_usage(tmp_path):
    images(tmp_path / "in")
    out = tmp_path / "book.vqb"
    proc = cli("train", tmp_path / "in", "-o", out, "-k", "8", "--block", "2x2", "-j", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    book = vqb.read(out.read_bytes())
    assert report["identity"] == book.identity.hex() and report["images"] == 3
    assert book.block == (2, 2) and book.channels == 3 and report["k"] == book.k <= 8
    assert 0 < report["used_fraction"] <= 1 and report["index_entropy_bits"] > 0
    proc = cli("train", tmp_path / "in", "-o", out, "-k", "8")
    assert proc.returncode == 2 and b"exists; use --force" in proc.stderr
    proc = cli("train", tmp_path / "in", "-o", out, "-k", "8", "--block", "3", "--force")
    assert proc.returncode == 2 and b"expected WxH" in proc.stderr
    proc = cli("train", tmp_path / "nothing", "-o", out, "-k", "8", "--force")
    assert proc.returncode == 2 and b"does not exist" in proc.stderr
    text = cli("train", tmp_path / "in", "-o", out, "-k", "4", "--force", "-j", "1")
    assert text.returncode == 0 and b"index entropy" in text.stdout


def test_a_large_corpus_gets_fewer_samples_per_image(tmp_path, monkeypatch):
    paths = images(tmp_path, n=3, size=(64, 64))  # 4,096 vectors each
    monkeypatch.setattr(training, "TOTAL_SAMPLES", 3 * 1000)
    monkeypatch.setattr(training, "MIN_SAMPLES", 100)
    assert training.train(paths, k=4, jobs=1).vectors == 3 * 1000
    assert training.train(paths, k=4, jobs=1, samples=50).vectors == 3 * 50


def test_cli_train_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    images(tmp_path / "in")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        proc = cli("train", tmp_path / "in", "-o", tmp_path / "d.vqb", "-k", "6", "--json",
                   "--scheduler", cluster.scheduler_address)
    assert proc.returncode == 0, proc.stderr
    local = training.train(sorted(str(p) for p in (tmp_path / "in").rglob("*.png")), k=6, jobs=1)
    assert vqb.read((tmp_path / "d.vqb").read_bytes()).identity == books.from_codebook(local.codebook).identity


# --------------------------------------------------------------------------
# Mini-batch k-means (train --method minibatch)


def _clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eight well-separated blobs of 3-D points, unequal in size."""
    rng = np.random.default_rng(seed)
    means = rng.integers(20, 236, (8, 3))
    sizes = rng.integers(200, 2000, 8)
    x = np.concatenate([m + rng.normal(0, 4, (n, 3)) for m, n in zip(means, sizes)])
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), means


def test_minibatch_kmeans_finds_the_blobs_and_matches_full_kmeans_error():
    from vqcodec.quantize import Histogram, learn
    from vqcodec.quantize.kmeans import minibatch_kmeans

    x, means = _clusters()
    h = Histogram(3)
    h.add(x.reshape(1, -1, 3))
    centres, _ = minibatch_kmeans(h.colors.astype(np.float32), h.counts, 8, seed=1, steps=100, batch=1024)
    # every blob's mean has a centre within the blob's noise
    gap = np.sqrt(((means[:, None, :] - centres[None]) ** 2).sum(-1)).min(1)
    assert gap.max() < 3.0
    full = learn(h, 8, seed=1).entries.astype(np.float64)

    def mse(book):
        d = ((x[:, None, :].astype(np.float64) - book[None]) ** 2).sum(-1)
        return d.min(1).mean()

    assert mse(centres) <= mse(full) * 1.05


def test_minibatch_kmeans_reseeds_dead_entries():
    from vqcodec.quantize.kmeans import minibatch_kmeans

    x, _ = _clusters(3)
    x = x.astype(np.float32)
    w = np.ones(len(x))
    w[:10] = 1e6  # ten rows hold nearly all the weight: most first draws are one of them
    centres, reseeded = minibatch_kmeans(x, w, 16, seed=0, steps=60, batch=512)
    assert reseeded > 0
    again, _ = minibatch_kmeans(x, w, 16, seed=0, steps=60, batch=512)
    np.testing.assert_array_equal(centres, again)  # the seed fixes the result


def test_train_minibatch_gives_a_codebook_close_to_full(tmp_path):
    x, _ = _clusters(5)
    paths = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(np.roll(x, 97 * i, axis=0)[:2400].reshape(40, 60, 3)).save(p)
        paths.append(str(p))
    full = training.train(paths, k=8, seed=0, jobs=1)
    mini = training.train(paths, k=8, seed=0, jobs=1, method="minibatch")
    assert len(mini.codebook) == 8 and mini.usage.used == 8
    assert mini.mse <= full.mse * 1.10
    with pytest.raises(OptionError, match="method must be one of full, minibatch"):
        training.train(paths, k=8, method="sgd")
