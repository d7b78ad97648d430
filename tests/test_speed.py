"""The speed option (effort 1-10): checked once, the default unchanged, faster speeds still sound."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import metrics
from vqcodec.errors import OptionError
from vqcodec.options import EncodeOptions
from vqcodec.quantize import kmeans as kmeans_stage
from vqcodec.quantize.histogram import distinct

learn = importlib.import_module("vqcodec.quantize.learn")  # the package's `learn` is the function
from vqcodec.quantize import rdo

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "sample.png"


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))


@pytest.mark.parametrize("value", [0, 11, 4.0, "4", True])
def test_speed_is_an_integer_from_1_to_10(value):
    with pytest.raises(OptionError, match="speed must be an integer from 1 .slowest. to 10 .fastest."):
        EncodeOptions(speed=value)


def test_speeds_1_to_4_are_the_default_encoder(sample):
    default = vqcodec.encode(sample, k=16)
    assert EncodeOptions().speed == kmeans_stage.DEFAULT_SPEED == 4
    assert all(vqcodec.encode(sample, k=16, speed=s) == default for s in (1, 4))


@pytest.mark.parametrize("k", [8, 64, 256])
def test_the_fastest_speed_stays_close(sample, k):
    slow = vqcodec.encode_pixels(sample, k=k)
    fast = vqcodec.encode_pixels(sample, k=k, speed=10)
    assert np.array_equal(vqcodec.decode(fast.data), fast.reconstruct())
    assert metrics.psnr(sample, fast.reconstruct()) > metrics.psnr(sample, slow.reconstruct()) - 0.3
    assert len(fast.data) < 1.1 * len(slow.data)


def test_effort_falls_with_speed():
    efforts = [kmeans_stage._effort(s) for s in range(1, 11)]
    assert efforts[0] == efforts[3]  # 1-4: the full search
    assert [e[0] for e in efforts] == sorted((e[0] for e in efforts), reverse=True)
    assert [rdo.iterations_for(s) for s in (1, 6, 7, 8, 9, 10)] == [4, 4, 2, 2, 1, 1]
    assert [e.beyond_seed for e in efforts] == [True] * 8 + [False] * 2  # 9-10: the seed set only
    assert [learn.rounds_for(s) for s in (1, 4, 8, 9, 10)] == [2, 2, 2, 1, 0]


def test_the_fastest_finishing_still_gives_every_colour_its_nearest_entry(sample):
    colors, counts, _ = distinct(sample)
    centroids = kmeans_stage.kmeans(colors, counts, 32, 0, speed=10)
    book, labels = learn.finish(colors, counts, centroids, rounds=learn.rounds_for(10))
    assert len(book) <= 32 and np.array_equal(book, np.unique(book, axis=0))
    d = ((colors[:, None, :].astype(np.int64) - book[None, :, :].astype(np.int64)) ** 2).sum(2)
    assert np.array_equal(d[np.arange(len(colors)), labels], d.min(1))


def test_a_target_at_the_fastest_speed_is_still_met(sample):
    result = vqcodec.encode_target(sample, psnr=34.0, speed=10)
    assert result.reached and metrics.psnr(sample, vqcodec.decode(result.data)) >= 34.0
