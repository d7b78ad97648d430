"""Test helper: the pixels of an image file a test wrote, as vqcodec reads images.

Decoding to PNG writes a palette PNG (PNG8) when the image has at most 256
colours, so ``np.asarray(Image.open(path))`` gives palette indices there;
:func:`png_pixels` gives the colours, by :mod:`vqcodec.pixels`' mode rules.
"""

from __future__ import annotations

import io

import numpy as np

from vqcodec import pixels


def png_pixels(src) -> np.ndarray:
    """(H, W) for greyscale, else (H, W, C): the shape ``vqcodec.decode`` gives."""
    data = src.getvalue() if isinstance(src, io.BytesIO) else src
    a = pixels.load(data).array
    return a[:, :, 0] if a.shape[2] == 1 else a
