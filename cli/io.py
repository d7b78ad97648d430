"""Files for the CLI: '-' for stdin/stdout, the same-file guard, atomic writes.

Errors a user can fix become :class:`~vqcodec.cli.UsageError` with a message
that says what to do.
"""

from __future__ import annotations

import os
import sys

from vqcodec import fileio

from .errors import UsageError

STDIO = "-"


def read_input(path: str) -> bytes:
    """The bytes of *path*, or of stdin for '-'."""
    if path == STDIO:
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"cannot open '{path}': no such file; check the path") from None
    except IsADirectoryError:
        raise UsageError(f"cannot read '{path}': it is a folder; give a file") from None
    except PermissionError:
        raise UsageError(f"cannot open '{path}': permission denied") from None
    except OSError as e:
        raise UsageError(f"cannot read '{path}': {e.strerror or e}") from None


def check_output(output: str, inputs: list[str], *, force: bool) -> None:
    """Refuse, before any work, an output that would clobber an input or an existing file."""
    if output == STDIO:
        return
    for src in inputs:
        if src != STDIO and _same_file(src, output):
            raise UsageError(f"output '{output}' is the input file; choose another output path")
    if os.path.isdir(output):
        raise UsageError(f"output '{output}' is a folder; give a file name")
    if not force and os.path.lexists(output):
        raise UsageError(f"'{output}' exists; use --force to replace it")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write '{output}': folder '{folder}' does not exist; create it first")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def write_output(output: str, data: bytes, *, force: bool) -> None:
    """Write to stdout for '-', else atomically (the file appears only complete)."""
    if output == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        fileio.atomic_write(output, data, overwrite=force)
    except FileExistsError:
        raise UsageError(f"'{output}' exists; use --force to replace it") from None
    except FileNotFoundError:
        raise UsageError(f"cannot write '{output}': its folder does not exist; create it first") from None
    except PermissionError:
        raise UsageError(f"cannot write '{output}': permission denied") from None
    except OSError as e:
        raise UsageError(f"cannot write '{output}': {e.strerror or e}") from None
