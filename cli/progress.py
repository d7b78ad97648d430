"""One progress line on stderr, redrawn in place; shared by ``rd``, the batch mode
and long single-file work (:class:`Ticker`)."""

from __future__ import annotations

import os
import threading
import time
from typing import TextIO


class ProgressLine:
    """A ``\\r``-redrawn line on a terminal stream; silent when the stream is not a terminal.

    Nothing is drawn for work that is over within :attr:`DELAY_S`, and the line
    is redrawn at most ten times a second (always for the last step).
    """

    DELAY_S = 0.5
    INTERVAL_S = 0.1

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.start = self.last = time.monotonic()
        self.shown = 0  # characters on the line now

    def due(self, done: int, total: int) -> bool:
        """True when a redraw for step *done* of *total* is wanted now."""
        if not self.enabled or total == 0:
            return False
        now = time.monotonic()
        if now - self.start < self.DELAY_S or (now - self.last < self.INTERVAL_S and done < total):
            return False
        self.last = now
        return True

    def show(self, line: str) -> None:
        """Replace the line with *line*, cut to the terminal's width."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        if columns < 20:  # unknown (0 under a pseudo-terminal without a size) or absurd
            columns = 80
        line = line[: columns - 1]
        self.stream.write("\r" + line.ljust(self.shown))
        self.stream.flush()
        self.shown = len(line)

    def clear(self) -> None:
        """Erase the line (before printing anything else on the stream)."""
        if self.shown:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()
            self.shown = 0


class Ticker(ProgressLine):
    """``encode big.png: learning the codebook, 4 s`` for single-file work that takes long.

    A context manager: a background thread redraws the line once a second
    after :attr:`DELAY_S` (2 s: shorter work shows nothing), with the stage
    that :meth:`stage` last named; leaving the block stops it and clears the
    line.  Silent off a terminal and when not *enabled* (``-q``).
    """

    DELAY_S = 2.0
    TICK_S = 1.0

    def __init__(self, stream: TextIO, what: str, *, enabled: bool = True) -> None:
        super().__init__(stream, enabled=enabled)
        self.what, self.current = what, "working"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def stage(self, name: str) -> None:
        """The stage now running (shown at the next tick)."""
        self.current = name

    def __enter__(self) -> "Ticker":
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="vqcodec-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self.clear()

    def _run(self) -> None:
        if self._stop.wait(self.DELAY_S):
            return
        while True:
            with self._lock:
                if self._stop.is_set():
                    return
                seconds = time.monotonic() - self.start
                self.show(f"{self.what}: {self.current}, {seconds:.0f} s")
            if self._stop.wait(self.TICK_S):
                return
