"""The rate–distortion sweep: vqcodec, its variants and the baselines over images × k.

For every image and every k one row per codec (:class:`Row`): bytes, bits
per pixel, compression ratio against the raw pixels, MSE, PSNR, SSIM, encode
and decode seconds and megapixels per second.  All distortions are measured
with :mod:`vqcodec.metrics` against the image's normalised pixels (the mode
rules of :mod:`vqcodec.pixels`); images with alpha are measured over
premultiplied RGBA, the metrics' default.

A codec is an entry of a list (:class:`~.codecs.Codec`: name, encode, decode
and measure), so vqcodec's variants (``variants=[{"rdo": 0}, {"coder":
"zstd"}]``) sit beside its defaults and the baselines, each with its own
curve and BD-rate.  The modules, one job each:

``rows``     the measured :class:`Row` and how every codec's file is measured;
``codecs``   the entries: vqcodec (any :class:`~vqcodec.options.EncodeOptions`),
             pngquant, PNG, WebP/AVIF/JPEG at vqcodec's PSNR, and JPEG XL /
             WebP lossless stores of vqcodec's own pixels;
``sweep``    images × k × codecs into a :class:`Result`, BD-rates per image;
``bdrate``   the Bjøntegaard delta rate;
``present``  per-k means, the text table, CSV, JSON and the plot.

Timing: encodes run once; decodes are repeated (up to five runs, about half
a second at most) and the median is kept; pngquant and cjxl/djxl are timed
as whole processes.
"""

from __future__ import annotations

from .bdrate import BD_MIN_POINTS, bd_rate
from .codecs import (BASELINES, DEFAULT_BASELINES, LOSSY, NAMES, PNG_OPTIONS, PNGQUANT_MAX_K, STORES, Codec, Measured, PsnrCache,
                     QualitySearch, baseline, check_baselines, measure_vqcodec, smallest_quality,
                     vqcodec_codec)
from .present import format_table, plot_png, summarize, to_csv, to_json
from .rows import COLUMNS, RoundTripError, Row, Skipped
from .sweep import (DEFAULT_KS, BdRate, Result, SweepInterrupted, available_baselines, check_ks, codec_list,
                    find_images, measure_image, sweep)

__all__ = [
    "BASELINES", "BD_MIN_POINTS", "DEFAULT_BASELINES", "COLUMNS", "DEFAULT_KS", "LOSSY", "NAMES", "PNG_OPTIONS", "PNGQUANT_MAX_K",
    "STORES", "BdRate", "Codec", "Measured", "PsnrCache", "QualitySearch", "Result", "RoundTripError", "Row", "Skipped",
    "SweepInterrupted",
    "available_baselines", "baseline", "bd_rate", "check_baselines", "check_ks", "codec_list", "find_images",
    "format_table", "measure_image", "measure_vqcodec", "plot_png", "smallest_quality", "summarize", "sweep",
    "to_csv", "to_json", "vqcodec_codec",
]
