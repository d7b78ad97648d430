"""The progress line shared by `rd` and the batch mode (a fake terminal stream)."""

from __future__ import annotations

import io

from vqcodec.cli.progress import ProgressLine
from vqcodec.cli.rd import _ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_off_a_terminal_and_in_the_first_moment():
    pipe = io.StringIO()
    bar = _ProgressBar(pipe)
    bar.start -= 10
    bar(1, 2, "x")
    assert pipe.getvalue() == ""
    tty = Terminal()
    bar = _ProgressBar(tty)
    bar(1, 2, "x")  # within DELAY_S of the start: nothing yet
    assert tty.getvalue() == ""
    assert not ProgressLine(Terminal(), enabled=False).enabled


def test_redraws_in_place_and_clears():
    tty = Terminal()
    bar = _ProgressBar(tty)
    bar.start -= 10
    bar.last -= 10
    bar(6, 24, "a long name")
    bar.last -= 10
    bar(24, 24, "b")  # shorter line: padded over the old one
    first = "rd [######..................] 6/24 a long name"
    second = "rd [########################] 24/24 b"
    assert tty.getvalue() == "\r" + first + "\r" + second.ljust(len(first))
    bar.clear()
    assert tty.getvalue().endswith("\r" + " " * len(second) + "\r") and bar.shown == 0


def test_at_most_ten_redraws_a_second_but_always_the_last():
    tty = Terminal()
    line = ProgressLine(tty)
    line.start -= 10
    line.last -= 10
    assert line.due(1, 3)
    assert not line.due(2, 3)  # 0.1 s have not passed
    assert line.due(3, 3)  # the last step is always drawn


def test_a_terminal_without_a_size_gets_80_columns(monkeypatch):
    monkeypatch.setattr("os.get_terminal_size", lambda fd: __import__("os").terminal_size((0, 0)))

    class SizedTerminal(Terminal):
        def fileno(self) -> int:
            return 2

    tty = SizedTerminal()
    line = ProgressLine(tty)
    line.show("x" * 100)
    assert tty.getvalue() == "\r" + "x" * 79


def test_ticker_shows_the_stage_on_a_terminal_after_its_delay_and_clears():
    import time

    from vqcodec.cli.progress import Ticker

    tty = Terminal()
    with Ticker(tty, "encode big.png") as ticker:
        ticker.start -= 100  # as if the work had run for 100 s
        ticker.stage("learning the codebook")
        ticker._stop.wait(0)  # (the thread waits DELAY_S of real time first)
        deadline = time.monotonic() + Ticker.DELAY_S + 5
        while "learning" not in tty.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    text = tty.getvalue()
    assert "\rencode big.png: learning the codebook, 10" in text  # 100 s, or a little more
    assert text.endswith("\r")  # cleared: the report line starts on a clean line


def test_ticker_is_silent_off_a_terminal_with_quiet_and_for_short_work():
    from vqcodec.cli.progress import Ticker

    for stream, enabled in ((io.StringIO(), True), (Terminal(), False)):
        with Ticker(stream, "encode x", enabled=enabled) as ticker:
            ticker.start -= 100
            ticker.stage("coding")
        assert stream.getvalue() == ""
    tty = Terminal()
    with Ticker(tty, "encode x"):
        pass  # over within DELAY_S
    assert tty.getvalue() == ""


def test_encode_names_its_stages_in_order():
    import numpy as np

    import vqcodec

    seen = []
    vqcodec.encode_pixels(np.zeros((4, 4, 3), np.uint8), k=2, on_stage=seen.append)
    assert seen == ["reading", "learning the codebook", "mapping pixels", "coding"]
