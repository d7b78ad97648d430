"""The report printed after an encode or decode: one line, or one JSON object."""

from __future__ import annotations

import math
from typing import Any


def _fmt_psnr(value: float) -> str:
    return "inf (lossless)" if math.isinf(value) else f"{value:.2f} dB"


def _fmt_ssim(value: float | None) -> str:
    # None: not measured (the image is above metrics.REPORT_SSIM_MAX_PIXELS, no --ssim)
    return "not measured (large image; --ssim measures it)" if value is None else f"{value:.4f}"


def encode_line(name_in: str, name_out: str, fields: dict[str, Any]) -> str:
    """``in.png 768×512 RGB -> out.vqi: k=256 (8 bits/index), ...`` as one line."""
    parts = [
        f"{name_in} {fields['width']}×{fields['height']} {fields['mode']} -> {name_out}:",
        f"k={fields['k']}" + (f" {fields['block']} blocks" if fields.get("block", "1x1") != "1x1" else "")
        + f" ({fields['bits_per_index']} bit{'s' if fields['bits_per_index'] != 1 else ''}/index),",
        f"{fields['bytes']:,} bytes, {fields['bpp']:.3f} bpp,",
        f"ratio {fields['ratio_raw']:.2f}× raw",
    ]
    if fields.get("ratio_input") is not None:
        parts[-1] += f" / {fields['ratio_input']:.2f}× input,"
    else:
        parts[-1] += ","
    parts.append(
        f"MSE {fields['mse']:.3f}, PSNR {_fmt_psnr(fields['psnr'])}, SSIM {_fmt_ssim(fields['ssim'])},"
    )
    parts.append(f"{fields['seconds']:.2f} s")
    return " ".join(parts)


def to_json(fields: dict[str, Any]) -> str:
    """One JSON object; an infinite PSNR (lossless) is written as null."""
    from vqcodec.metrics import json_ready

    return dumps(json_ready(fields), sort_keys=False, allow_nan=False)


def dumps(value: Any, **options: Any) -> str:
    """json.dumps, imported when a command prints JSON (~2 ms of start-up)."""
    import json

    return json.dumps(value, **options)
