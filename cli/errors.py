"""The CLI's exit codes and its one exception (the package and its modules import them from here)."""

from __future__ import annotations

import enum

__all__ = ["ExitStatus", "UsageError"]


class ExitStatus(enum.IntEnum):
    """The exit codes of ``vqcodec`` (README: *Exit codes and errors*)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_SMALLER = 98  # --skip-if-larger: the .vqi would not be smaller; nothing written (pngquant's 98)
    TARGET_UNREACHABLE = 99  # --quality/--psnr/--max-bytes/--bpp cannot be met; nothing written (pngquant's 99)
    INTERRUPTED = 130


class UsageError(Exception):
    """A mistake of the user's that the CLI reports in one line (exit 2)."""
