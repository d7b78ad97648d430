"""The Bjøntegaard delta rate between two rate–distortion curves."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BD_MIN_POINTS = 2


def bd_rate(anchor_rate: Sequence[float], anchor_psnr: Sequence[float],
            test_rate: Sequence[float], test_psnr: Sequence[float]) -> float | None:
    """Bjøntegaard delta rate of *test* against *anchor*, in percent; None if n/a.

    For each curve, log10(rate) is interpolated as a function of PSNR by a
    piecewise cubic Hermite interpolant (PCHIP, the variant of the metric
    used by JVET's and AOM's reporting tools: unlike the original cubic
    ``polyfit`` it is monotone between the points, needs no fourth point and
    does not oscillate); both are integrated exactly over the PSNR interval
    the two curves share; BD-rate = 10^(mean difference test − anchor) − 1.
    Negative: *test* needs fewer bits for the same PSNR.  Needs at least
    two points with distinct finite PSNR on each curve and an overlapping
    PSNR interval; otherwise None.
    """
    return bd_rate_why(anchor_rate, anchor_psnr, test_rate, test_psnr)[0]


def bd_rate_why(anchor_rate, anchor_psnr, test_rate, test_psnr) -> tuple[float | None, str]:
    """:func:`bd_rate` and, when it is None, the reason (one line)."""
    curves = []
    for rate, psnr in ((anchor_rate, anchor_psnr), (test_rate, test_psnr)):
        points = {}
        for r, p in zip(rate, psnr):
            if r is not None and p is not None and r > 0 and math.isfinite(r) and math.isfinite(p):
                points.setdefault(float(p), float(r))
        if len(points) < BD_MIN_POINTS:
            return None, f"needs {BD_MIN_POINTS} points with distinct finite PSNR per curve, got {len(points)}"
        p = np.array(sorted(points))
        curves.append((p, np.log10(np.array([points[x] for x in p]))))
    lo = max(c[0].min() for c in curves)
    hi = min(c[0].max() for c in curves)
    if not hi > lo:
        return None, "the PSNR ranges of the two curves do not overlap"
    from scipy.interpolate import PchipInterpolator  # only here: scipy's import is slow

    integrals = [PchipInterpolator(p, log_rate).integrate(lo, hi) for p, log_rate in curves]
    mean_diff = (integrals[1] - integrals[0]) / (hi - lo)
    return float((10.0 ** mean_diff - 1.0) * 100.0), ""
