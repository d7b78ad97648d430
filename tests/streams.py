"""Streams for the tests: one that cannot seek, as a pipe, a socket or stdin."""

from __future__ import annotations

import io


class OneWayStream(io.RawIOBase):
    """A binary stream that cannot seek (a pipe, a socket, stdin)."""

    def __init__(self, data: bytes = b"") -> None:
        self._inner = io.BytesIO(data)
        self.written = bytearray()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[override]
        return self._inner.readinto(buffer)

    def write(self, data) -> int:  # type: ignore[override]
        self.written += data
        return len(data)
