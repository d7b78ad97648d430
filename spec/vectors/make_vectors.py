"""Write the test vectors of spec/FORMAT.md Appendix A (run once; the files are the contract).

Each vector is a .vqi file plus a .json with the pixels it must decode to.
The bytes are committed: a decoder is tested hex -> pixels, never by
re-encoding (zstd output depends on the library version).

    python spec/vectors/make_vectors.py
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from vqcodec import container, packing  # noqa: E402

only: set[str] = set()


def ancillary(kind: bytes, body: bytes) -> bytes:
    return struct.pack("<I4s", len(body), kind) + body + struct.pack("<I", zlib.crc32(kind + body))


def vector(name, book, indices, channels, layout, extra=b"", coder=container.CODER_ZSTD):
    if only and name not in only:
        return
    book = np.asarray(book, dtype=np.uint8).reshape(-1, channels)
    indices = np.asarray(indices)
    h, w = indices.shape
    header = container.Header(width=w, height=h, channels=channels, k=len(book),
                              index_layout=layout, index_coder=coder)
    payload = packing.pack(indices, bits=header.index_bits, layout=layout)
    data = container.write(header, book.tobytes(), payload)
    if extra:  # insert an unknown ancillary section right after HEAD
        cut = 10 + 12 + 24
        data = data[:cut] + extra + data[cut:]
    pixels = book[indices]
    (HERE / f"{name}.vqi").write_bytes(data)
    meta = {"width": w, "height": h, "mode": container.CHANNEL_LAYOUTS[channels],
            "pixels": pixels.reshape(h, w, channels).tolist()}
    (HERE / f"{name}.json").write_text(json.dumps(meta) + "\n")
    print(name, len(data), "bytes")


if __name__ == "__main__":
    only.update(sys.argv[1:])  # names to (re)write; none: all
    # 1. RGB 2×2, 4 colours, layout 1 (bytes): red, green / blue, white
    vector("rgb-2x2-bytes", [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255],
           [[0, 1], [2, 3]], 3, packing.BYTES)
    # 2. LA 3×2, 3 entries, layout 0 (packed, 2 bits per index, rows not padded)
    vector("la-3x2-packed", [0, 0, 128, 255, 255, 128], [[0, 1, 2], [2, 1, 0]], 2, packing.PACKED)
    # 3. L 5×1, 2 entries, layout 0, with an unknown ancillary section to skip
    vector("l-5x1-ancillary", [16, 235], [[0, 1, 1, 0, 1]], 1, packing.PACKED,
           extra=ancillary(b"tEXt", b"a reader skips me"))
    # 4. RGBA 2×1, layout 1: one opaque and one fully transparent pixel
    vector("rgba-2x1-bytes", [10, 20, 30, 255, 0, 0, 0, 0], [[1, 0]], 4, packing.BYTES)
    # 5. RGB 3×3, 5 entries, layout 2 (stripes) compressed with bzip2 (coder 1)
    vector("rgb-3x3-stripes-bzip2", [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255],
           [[0, 1, 2], [3, 4, 0], [1, 2, 3]], 3, packing.STRIPES, coder=container.CODER_BZIP2)
    # 6. RGB 4×3, 4 entries, layout 1 with the context model (coder 2, format 1.1):
    #    every mode occurs (left, up, up-right, up-left, literal)
    vector("rgb-4x3-ctx", [0, 0, 0, 60, 60, 60, 255, 255, 255, 255, 0, 0],
           [[0, 0, 2, 3], [0, 1, 2, 3], [1, 1, 3, 2]], 3, packing.BYTES, coder=container.CODER_CTX)
