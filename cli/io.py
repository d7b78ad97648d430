"""Files for the CLI: '-' for stdin/stdout, the same-file guard, atomic writes.

Errors a user can fix become :class:`~vqcodec.cli.UsageError` with a message
that says what to do.  Every check that can be made before the work is made
before it (:func:`check_input`, then :func:`check_output`), in that order:
a missing input is reported before an existing output.
"""

from __future__ import annotations

import os
import sys

from vqcodec import fileio

from .errors import UsageError

STDIO = "-"
STDOUT_NAME = "<stdout>"


def check_input(path: str) -> None:
    """Refuse, before any work, an input that does not exist or cannot be read."""
    if path == STDIO:
        return
    if os.path.isdir(path):
        raise UsageError(f"cannot read '{path}': it is a folder; give a file")
    if not os.path.exists(path):
        raise UsageError(f"cannot open '{path}': no such file; check the path")
    if not os.access(path, os.R_OK):
        raise UsageError(f"cannot open '{path}': permission denied")


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
    """Refuse, before any work, an output that would clobber an input or an
    existing file, or that cannot be written (see :func:`vqcodec.fileio.atomic_write`
    for what is replaced and what is written through)."""
    if output == STDIO:
        return
    check_not_input(output, inputs)
    check_new_file(output, force=force)


def check_not_input(output: str, inputs: list[str]) -> None:
    """Refuse an output that is one of the inputs (by any path or link)."""
    for src in inputs:
        if output != STDIO and src != STDIO and _same_file(src, output):
            raise UsageError(f"output '{output}' is the input file; choose another output path")


def check_new_file(output: str, *, force: bool, option: str = "") -> None:
    """The checks of :func:`check_output` that need no input: a folder, an
    existing file without *force*, a missing folder, no write access.
    *option* ("--csv") names the option that gave the path in messages."""
    what = f"{option} '{output}'" if option else f"'{output}'"
    _, kind = fileio.resolve_output(output)
    if kind == "folder":
        raise UsageError(f"output {what} is a folder; give a file name")
    if kind == "other":
        raise UsageError(f"cannot write {what}: not a regular file, a device or a FIFO")
    if not force and kind in ("file", "block"):
        raise UsageError(f"{what} exists; use --force to replace it")
    if kind == "new":
        folder = os.path.dirname(os.path.abspath(fileio.resolve_output(output)[0]))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {what}: folder '{folder}' does not exist; create it first")
    try:
        fileio.check_writable(output)
    except PermissionError:
        raise UsageError(f"cannot write {what}: permission denied") from None
    except OSError as e:
        raise UsageError(f"cannot write {what}: {e.strerror or e}") from None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def write_output(output: str, data: bytes, *, force: bool) -> None:
    """Write to stdout for '-', else atomically (the file appears only complete)."""
    if output == STDIO:
        write_stdout(data)
        return
    write_file(output, data, force=force)


def write_file(output: str, data: bytes, *, force: bool) -> None:
    """Write *data* to the file *output* atomically, failures as one-line UsageErrors."""
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


def write_stdout(data: bytes | str) -> None:
    """Write *data* to stdout and flush; a failure (a full disk, a closed pipe)
    is the user's side: a UsageError naming <stdout>, never success."""
    try:
        if isinstance(data, str):
            sys.stdout.write(data)
            sys.stdout.flush()
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    except BrokenPipeError:
        silence_stdout()
        raise UsageError(f"cannot write {STDOUT_NAME}: the pipe was closed before the end "
                         "(broken pipe)") from None
    except OSError as e:
        silence_stdout()
        raise UsageError(f"cannot write {STDOUT_NAME}: {e.strerror or e}") from None


def say(text: str, stream=None) -> None:
    """Print one line of text on *stream* (default stdout), as :func:`write_stdout` fails."""
    if stream is None or stream is sys.stdout:
        write_stdout(text + "\n")
    else:
        print(text, file=stream, flush=True)


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of a
    failed stdout prints no second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
