"""The ``vqcodec`` command line: parse, dispatch, turn exceptions into exit codes.

``main(argv=None) -> int`` does the work; every user mistake becomes one line
on stderr (``vqcodec: error: <what>; <what to do>``) and exit code 2, an
internal error exit code 1, Ctrl-C exit code 130; an encode target that
cannot be met exits 99 and ``--skip-if-larger`` 98, nothing written
(pngquant's codes, :class:`ExitStatus`).  Nothing under
``vqcodec/`` imports this package.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Sequence, TextIO

from .errors import ExitStatus, UsageError

__all__ = ["main", "ExitStatus", "UsageError"]


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (~2 ms, and
    argparse imports it for every parser it builds)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs.setdefault("allow_abbrev", False)  # --out is not --output-dir, --forc not --force
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        raise UsageError(f"{message}; see '{self.prog} --help'")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with *argv* naming a command first, that command's alone
    (the others' parsers cost ~10 ms to build, more than some encodes)."""
    from vqcodec import FORMAT_VERSION, __version__

    from . import commands

    parser = _Parser(
        prog="vqcodec",
        description="Compress images to the VQI format (vector quantization) and back.",
    )
    version = f"vqcodec {__version__} (VQI format {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]})"
    if argv and "--version" in argv:  # (loading the extensions costs a little: only when asked)
        version += "\n" + extensions_line()
    parser.add_argument("--version", action=_Version, version=version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    first = argv[0] if argv else None
    commands.add_commands(sub, only=first if first in commands.COMMANDS else None)
    return parser


class _Version(argparse.Action):
    """``--version``: the lines as written (argparse's own action re-wraps them into one)."""

    def __init__(self, option_strings, version: str, dest=argparse.SUPPRESS,
                 default=argparse.SUPPRESS, help="show the version and whether the compiled "
                 "extensions are in use, and exit") -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)
        self.version = version

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from .io import write_stdout

        write_stdout(self.version + "\n")
        parser.exit()


def extensions_line() -> str:
    """What ``--version`` says of the compiled extensions (a no-compiler install says so)."""
    from vqcodec import _native

    states = _native.status()
    missing = [name for name, state in states.items() if state == "missing"]
    if all(state == "disabled" for state in states.values()):
        return f"compiled extensions: not used ({_native.PURE_PYTHON_VARIABLE}=1)"
    if missing:
        return (f"compiled extensions: MISSING {', '.join(missing)} (built without a C compiler): "
                "files come out larger and decode much slower; reinstall with gcc and the "
                "Python headers")
    return f"compiled extensions: all {len(states)} in use"


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in subprocess tests
    raise KeyboardInterrupt


def _blas_one_thread() -> None:
    """Run OpenBLAS on one thread in this process, unless OPENBLAS_NUM_THREADS is set.

    vqcodec keeps its matrix products below OpenBLAS's threading threshold
    and splits the work over its own threads; OpenBLAS's idle worker
    threads spin, and on a 2-core machine they burnt ~200 ms of CPU per
    Kodak encode (measured whole-process: 568 -> 447 ms here; with the
    variable set before numpy is imported, 375 ms).  numpy is already loaded
    when this runs (``import vqcodec`` imports it), so the thread count is
    also set through numpy's bundled OpenBLAS; the variable reaches child
    processes (batch workers).  Best effort: any other BLAS is left alone.
    """
    if "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return
    import ctypes
    import glob

    libs = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                return


# commands after which the process may end at once (see main)
_QUICK_EXIT = ("encode", "decode", "info")


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the CLI; return the exit status (never raises for a user's mistake).

    *stdout* and *stderr*, when given, receive what the command prints in
    place of ``sys.stdout`` and ``sys.stderr`` (every handler writes to the
    streams current when it runs): a test or a program runs a command
    in-process and reads its output.  Binary output (``-`` as the output
    file) goes to ``stdout.buffer``, so give a text stream with one
    (``io.TextIOWrapper(io.BytesIO())``) for those commands.

    With ``argv=None`` (the ``vqcodec`` program) the process is ours:
    OpenBLAS is kept to one thread (:func:`_blas_one_thread`), and after a
    single-file encode, decode or info the process ends as soon as its
    output is flushed, without the interpreter's teardown (freeing every
    module: ~20 ms, a tenth of a Kodak encode; the files it wrote are
    complete, fsynced and closed by then, and these commands leave no
    thread, pool or temporary file behind).
    """
    if stdout is not None or stderr is not None:
        import contextlib

        with contextlib.ExitStack() as streams:
            if stdout is not None:
                streams.enter_context(contextlib.redirect_stdout(stdout))
            if stderr is not None:
                streams.enter_context(contextlib.redirect_stderr(stderr))
            return _main(argv, [])
    holder: list = []
    status = _main(argv, holder)
    if argv is None and holder and holder[0].command in _QUICK_EXIT \
            and getattr(holder[0], "output_dir", None) is None:
        try:
            sys.stdout.flush()
        except (OSError, ValueError) as e:  # the report did not reach stdout: not a success
            if status == ExitStatus.OK:
                _error("vqcodec", _stdout_failure(e))
                status = ExitStatus.USAGE
        try:
            sys.stderr.flush()
        except (OSError, ValueError):  # nowhere left to say it
            pass
        os._exit(int(status))
    return status


def _stdout_failure(e: BaseException) -> str:
    from .io import STDOUT_NAME

    if isinstance(e, BrokenPipeError):
        return f"cannot write {STDOUT_NAME}: the pipe was closed before the end (broken pipe)"
    return f"cannot write {STDOUT_NAME}: {getattr(e, 'strerror', None) or e}"


def _main(argv: Sequence[str] | None, holder: list) -> int:
    """:func:`main`'s work; *holder* receives the parsed arguments."""
    from vqcodec.errors import VqiError

    prog = "vqcodec"
    if argv is None:
        _blas_one_thread()
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass
    try:
        parser = build_parser(sys.argv[1:] if argv is None else argv)
        args, extra = parser.parse_known_args(argv)
        listed = next((name for name in ("paths", "inputs") if hasattr(args, name)), None)
        if extra and listed and all(e == "-" or not e.startswith("-") for e in extra):
            getattr(args, listed).extend(extra)  # PATHs after an option ("a.png -k 4 out.vqi")
            extra = []
        if extra:  # named here, where the command is known, so the hint names its --help
            where = f"vqcodec {args.command}" if getattr(args, "command", None) else "vqcodec"
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}; see '{where} --help'")
        holder.append(args)
        if getattr(args, "handler", None) and not getattr(args, "quiet", False) \
                and args.command in ("encode", "decode", "rd"):
            from vqcodec import _native

            _native.warn_if_missing()  # once, before slow work, on stderr
        if not getattr(args, "handler", None):
            parser.print_help(sys.stderr)
            return ExitStatus.USAGE
        return int(args.handler(args))
    except UsageError as e:
        _error(prog, str(e))
        return ExitStatus.USAGE
    except VqiError as e:
        _error(prog, str(e))
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError as e:  # stdout's reader went away: what was asked was not delivered
        _silence_stdout()
        _error(prog, _stdout_failure(e))
        return ExitStatus.USAGE
    except MemoryError:
        _error(prog, "out of memory; try a smaller image or a smaller k")
        return ExitStatus.ERROR
    except Exception as e:  # an internal error: one line plus where to report it
        _error(prog, f"internal error: {type(e).__name__}: {e}; please report this bug")
        if "--debug" in (argv if argv is not None else sys.argv):
            raise
        return ExitStatus.ERROR


def _error(prog: str, message: str) -> None:
    message = " ".join(message.split())  # always exactly one line
    try:
        print(f"{prog}: error: {message}", file=sys.stderr)
    except BrokenPipeError:  # pragma: no cover
        pass


def _silence_stdout() -> None:
    from .io import silence_stdout

    silence_stdout()
