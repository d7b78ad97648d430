"""Reading sources and writing outputs without ever leaving a partial file.

A leaf: standard library only.  Sources are paths, bytes or binary streams;
outputs are paths or binary streams.  Paths are written atomically: the
bytes go to an anonymous file in the destination folder (Linux
``O_TMPFILE``; elsewhere a hidden temporary name), are flushed and fsynced,
and only then get their name.  Without ``overwrite`` the final step is a
hard link, which fails if the name exists (no window where another process's
file could be replaced); with it, ``os.replace``.  A crash or a kill at any
moment leaves either the old file or the complete new one.

The atomic replace is for regular files and new names only.  A symbolic
link is followed: its target is written (atomically, when it is a regular
file or a new name), and the link stays a link, as ``cp`` and
``sed -i --follow-symlinks`` do.  A character device or a FIFO
(``/dev/null``, ``/dev/stdout``, a named pipe) is written through, never
replaced: it holds no file content that could be lost, so *overwrite* is not
needed; a block device is written through only with *overwrite*.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import IO, Union

from .errors import ImageInputError

__all__ = ["Source", "Target", "read_source", "atomic_write", "write_target", "source_name",
           "check_writable", "resolve_output"]

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
Target = Union[str, "os.PathLike[str]", IO[bytes]]


def source_name(src: object) -> str:
    """A short name for messages: the path, or what kind of object it is."""
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    name = getattr(src, "name", None)
    if isinstance(name, str):
        return name
    return f"<{type(src).__name__}>"


def read_source(src: Source, /, *, limit: int | None = None) -> bytes:
    """The bytes of *src*: a path, a bytes-like object or a readable binary stream.

    *limit* bounds how much is read (a larger source raises ImageInputError).
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        try:
            with open(path, "rb") as f:
                return _read_stream(f, limit, path)
        except IsADirectoryError:
            raise ImageInputError(f"cannot read '{path}': it is a directory") from None
        except OSError as e:
            raise ImageInputError(f"cannot open '{path}': {e.strerror or e}") from e
    if hasattr(src, "read"):
        return _read_stream(src, limit, source_name(src))
    raise TypeError(f"expected a path, bytes or a binary stream, got {type(src).__name__}")


def _read_stream(stream: IO[bytes], limit: int | None, name: str) -> bytes:
    try:
        data = stream.read() if limit is None else stream.read(limit + 1)
    except OSError as e:
        raise ImageInputError(f"cannot read '{name}': {e.strerror or e}") from e
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"'{name}' is not a binary stream (read() gave {type(data).__name__})")
    if limit is not None and len(data) > limit:
        raise ImageInputError(f"'{name}' is larger than {limit:,} bytes")
    return bytes(data)


def atomic_write(path: str | os.PathLike[str], data: bytes, /, *, overwrite: bool = False) -> None:
    """Write *data* to *path* so that the file appears only complete.

    Raises FileExistsError when *path* exists and *overwrite* is false, and
    the usual OSError subclasses when the folder is missing or unwritable.
    Nothing is left behind on any failure or interrupt.  A symbolic link is
    followed, and a device or FIFO written through (see the module's text).
    """
    path, kind = resolve_output(path)
    if kind == "stream" or (kind == "block" and overwrite):
        _write_through(path, data)
        return
    folder = os.path.dirname(os.path.abspath(path))
    if kind != "new" and not overwrite:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
    if kind == "folder":
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if kind != "new" and kind != "file":
        raise OSError(errno.EINVAL, f"not a regular file, a device or a FIFO ({kind})", path)
    fd = _open_anonymous(folder)
    if fd is not None:
        try:
            _write_all(fd, data)
            _link_anonymous(fd, path, folder, overwrite)
        finally:
            os.close(fd)
        _fsync_folder(folder)
        return
    _named_temporary_write(path, folder, data, overwrite)


def resolve_output(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(the path to write, what is there): symbolic links followed.

    The kind is "new" (nothing there yet), "file" (a regular file: replaced
    atomically), "stream" (a character device or a FIFO: written through),
    "block" (a block device), "folder", or "other" (a socket...).
    """
    path = os.fspath(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path, "new"
    if stat.S_ISREG(mode):
        return path, "file"
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return path, "stream"
    if stat.S_ISBLK(mode):
        return path, "block"
    return path, "folder" if stat.S_ISDIR(mode) else "other"


def check_writable(path: str | os.PathLike[str], /) -> None:
    """Raise the OSError that writing *path* would raise for want of access, before any work.

    A new or regular file needs a writable folder (the write is a new file
    there, then a rename), checked by creating an anonymous file where the
    system has them (this catches read-only file systems and permissions
    alike), else with :func:`os.access`; a device or FIFO needs write access
    to itself.  A full disk can only be found by writing.
    """
    path, kind = resolve_output(path)
    if kind in ("stream", "block"):
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return
    folder = os.path.dirname(os.path.abspath(path))
    fd = _open_anonymous(folder)
    if fd is not None:
        os.close(fd)  # an anonymous file: closing it leaves nothing behind
        return
    if not os.access(folder, os.W_OK):
        code = errno.EROFS if _read_only(folder) else errno.EACCES
        raise OSError(code, os.strerror(code), folder)


def _read_only(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _write_through(path: str, data: bytes) -> None:
    """Write into a device or FIFO as it is (it cannot be replaced, and must not be)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        _write_all(fd, data, sync=False)  # fsync means nothing to a pipe or /dev/null
    finally:
        os.close(fd)


def _link_anonymous(fd: int, path: str, folder: str, overwrite: bool) -> None:
    """Give the anonymous file *fd* its name (linkat with AT_SYMLINK_FOLLOW via /proc)."""
    dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        source = f"/proc/self/fd/{fd}"
        base = os.path.basename(path)
        if not overwrite:
            # dst_dir_fd makes CPython call linkat(), which follows the /proc link
            os.link(source, base, dst_dir_fd=dir_fd, follow_symlinks=True)
            return
        for attempt in range(100):
            tmp = f".{base}.{os.getpid()}.{attempt}.tmp"
            try:
                os.link(source, tmp, dst_dir_fd=dir_fd, follow_symlinks=True)
            except FileExistsError:
                continue
            try:
                os.replace(tmp, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=dir_fd)
                except OSError:
                    pass
                raise
            return
        raise FileExistsError(errno.EEXIST, "no free temporary name", path)
    finally:
        os.close(dir_fd)


def _open_anonymous(folder: str) -> int | None:
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o666 & ~_umask())
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None  # this file system has no anonymous files: fall back
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_all(fd: int, data: bytes, *, sync: bool = True) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    if sync:
        os.fsync(fd)


def _named_temporary_write(path: str, folder: str, data: bytes, overwrite: bool) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync_folder(folder)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_target(dst: Target, data: bytes, /, *, overwrite: bool = False) -> None:
    """Write to a path (atomically, see :func:`atomic_write`) or a binary stream."""
    if isinstance(dst, (str, os.PathLike)):
        atomic_write(dst, data, overwrite=overwrite)
    elif hasattr(dst, "write"):
        dst.write(data)
        flush = getattr(dst, "flush", None)
        if flush is not None:
            flush()
    else:
        raise TypeError(f"expected a path or a binary stream, got {type(dst).__name__}")
