"""The Codebook value: the entries an index refers to.

A codebook is ``n`` entries of ``D = channels × block_width × block_height``
``uint8`` components each: a colour for per-pixel quantization (block
1×1), or a block of colours (row-major, channels interleaved) for vectors
larger than one pixel.  It is immutable (the array is read-only) and
identified by :attr:`Codebook.sha256`, a hash of its shape and entries (the
identity of its ``.vqb`` file, spec §11.2), so two codebooks with the same
entries compare equal whatever their origin.
"""

from __future__ import annotations

import struct

import numpy as np

from vqcodec.errors import OptionError
from vqcodec.limits import MAX_K

__all__ = ["Codebook", "sorted_rows", "unique_rows"]


class Codebook:
    """``entries`` ``(n, D)`` ``uint8`` with ``1 <= n <= 65536``; ``channels`` 1..4; ``block`` (width, height)."""

    __slots__ = ("entries", "channels", "block", "_hash")

    def __init__(self, entries: np.ndarray, /, *, channels: int | None = None,
                 block: tuple[int, int] = (1, 1)) -> None:
        a = np.asarray(entries)
        if a.dtype != np.uint8 or a.ndim != 2 or not 1 <= len(a) <= MAX_K:
            raise OptionError(f"codebook: expected (n, D) uint8 entries with 1 <= n <= {MAX_K}, "
                              f"found {a.dtype} {a.shape}")
        bw, bh = block
        if not (isinstance(bw, int) and isinstance(bh, int) and bw >= 1 and bh >= 1):
            raise OptionError(f"codebook: block must be two integers >= 1, got {block!r}")
        if channels is None:
            channels, rest = divmod(a.shape[1], bw * bh)
            if rest:
                raise OptionError(f"codebook: {a.shape[1]} components do not fill {bw}x{bh} blocks")
        if not 1 <= channels <= 4 or a.shape[1] != channels * bw * bh:
            raise OptionError(f"codebook: {a.shape[1]} components per entry is not "
                              f"{channels} channels x {bw}x{bh} pixels")
        a = a.copy()
        a.flags.writeable = False
        self.entries, self.channels, self.block, self._hash = a, int(channels), (bw, bh), None

    def __len__(self) -> int:
        return len(self.entries)

    def __reduce__(self):  # pickled (to batch and training workers) as a new, read-only value
        return _codebook, (self.entries, self.channels, self.block)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 identity of the codebook: that of its ``.vqb`` file (spec §11.2).

        The hash of (channels, sample depth 8, block width, block height,
        colour space 0, a zero byte: u8 each; n as u32 LE; the entries), the
        bytes :func:`vqcodec.vqb.identity_body` builds (tests check they agree).
        """
        if self._hash is None:
            import hashlib  # here: only a codebook asked for its identity needs OpenSSL loaded

            head = struct.pack("<BBBBBBI", self.channels, 8, *self.block, 0, 0, len(self.entries))
            self._hash = hashlib.sha256(head + self.entries.tobytes()).hexdigest()
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codebook) and self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __repr__(self) -> str:
        bw, bh = self.block
        return f"Codebook({len(self)} entries, {self.channels} channels, block {bw}x{bh}, sha256 {self.sha256[:12]})"


def _codebook(entries: np.ndarray, channels: int, block: tuple[int, int]) -> Codebook:
    return Codebook(entries, channels=channels, block=block)


def unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique over the rows of a uint8 matrix: (sorted distinct rows, first index of each, inverse).

    Lexicographic order; rows of up to 8 components are packed into one
    integer key, longer ones compared as byte strings (the same order).
    """
    if a.shape[1] <= 8:
        key = np.zeros(len(a), np.int64)
        for j in range(a.shape[1]):
            key = (key << 8) | a[:, j]
    else:
        key = np.ascontiguousarray(a).view(np.dtype((np.void, a.shape[1]))).reshape(len(a))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return a[first], first, inverse.reshape(-1)


def sorted_rows(cb: np.ndarray) -> np.ndarray:
    """The distinct rows of a uint8 matrix in lexicographic order."""
    return unique_rows(cb)[0]
