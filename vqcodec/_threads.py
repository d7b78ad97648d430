"""One way to run a few pieces of work on threads, for the leaf modules.

A leaf (quantize, rdo, ctxcoder, metrics) may import this and ``errors``
only.  The heavy loops release the GIL (numpy's and vqcodec's C loops), so
plain threads give a second core; a thread pool's import and start cost more
than some of the work (a whole photo's decode takes a few milliseconds;
bench/decode_bench.py measures it).
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Sequence, TypeVar

__all__ = ["cores", "map_in_order"]

T = TypeVar("T")
R = TypeVar("R")


def cores() -> int:
    """The cores this process may run on (its affinity where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def map_in_order(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(item) for item in items]`` on up to *workers* threads, the calling
    one included: thread i takes items i, i + workers, ...  The results come
    back in the items' order whatever the timing; the first exception raised
    is raised here, once every thread has stopped (the others stop at their
    next item)."""
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        return [fn(item) for item in items]
    results: list = [None] * len(items)
    failures: list[BaseException] = []

    def work(first: int) -> None:
        for i in range(first, len(items), workers):
            if failures:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as e:  # re-raised in the caller's thread
                failures.append(e)
                return

    helpers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(1, workers)]
    for helper in helpers:
        helper.start()
    try:
        work(0)
    finally:
        for helper in helpers:
            helper.join()
    if failures:
        raise failures[0]
    return results
