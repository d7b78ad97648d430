"""vqcodec._threads: the leaves' one thread helper."""

from __future__ import annotations

import threading
import time

import pytest

from vqcodec import _threads


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
@pytest.mark.parametrize("count", [0, 1, 2, 7])
def test_results_come_back_in_order(workers, count):
    seen = set()

    def work(i: int) -> int:
        time.sleep(0.001 * ((7 - i) % 3))  # finish out of order
        seen.add(threading.get_ident())
        return i * i

    assert _threads.map_in_order(work, list(range(count)), workers) == [i * i for i in range(count)]
    assert len(seen) <= max(1, min(workers, count))


def test_each_thread_takes_every_workers_th_item():
    who: dict[int, int] = {}

    def work(i: int) -> None:
        who[i] = threading.get_ident()

    _threads.map_in_order(work, list(range(6)), 2)
    assert who[0] == who[2] == who[4] == threading.get_ident()  # the caller's: 0, 2, 4
    assert who[1] == who[3] == who[5] != threading.get_ident()


@pytest.mark.parametrize("bad", [0, 3])
def test_an_exception_is_raised_in_the_caller(bad):
    def work(i: int) -> int:
        if i == bad:
            raise ValueError(f"item {i}")
        return i

    before = set(threading.enumerate())
    with pytest.raises(ValueError, match=f"item {bad}"):
        _threads.map_in_order(work, list(range(6)), 2)
    assert set(threading.enumerate()) <= before  # no thread of ours left behind


def test_cores_is_a_positive_count():
    assert _threads.cores() >= 1
