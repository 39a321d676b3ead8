"""The statistics the verdicts rest on: Wilson score intervals for error rates, and
the z of a two-sided confidence level. Quantile intervals are in quantiles.py."""

import math
from statistics import NormalDist


def z_of(confidence: float) -> float:
    """The z of a two-sided interval at `confidence` (0.95: 1.96)."""
    return NormalDist().inv_cdf((1 + confidence) / 2)


def wilson(errors: int, calls: int, z: float) -> tuple[float, float] | None:
    """The Wilson score interval of the rate errors/calls; None without calls."""
    if calls <= 0:
        return None
    p = errors / calls
    denominator = 1 + z * z / calls
    centre = (p + z * z / (2 * calls)) / denominator
    half = z * math.sqrt(p * (1 - p) / calls + z * z / (4 * calls * calls)) / denominator
    return round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)


def worse(secondary: tuple[float, float] | None, primary: tuple[float, float] | None) -> bool:
    """Whether the secondary's interval lies wholly above the primary's: a difference
    significant at the intervals' level (conservative: both intervals must part)."""
    return secondary is not None and primary is not None and secondary[0] > primary[1]
