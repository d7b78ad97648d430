"""One progress line on stderr, redrawn in place; shared by ``rd`` and the batch mode."""

from __future__ import annotations

import os
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
