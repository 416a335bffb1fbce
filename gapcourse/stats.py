"""Noise in accuracies: how far apart two numbers must be before the difference means something. Introduced in
notebook 04; used by every results table.

One test accuracy ``p`` on ``n`` images is a binomial proportion: its 95 % interval is about ``±1.96·√(p(1−p)/n)``
(±0.66 points at 87 % on 10 000 images). Retraining with another seed moves it too; tables report the mean and the
spread over seeds, and a difference is called real only when it exceeds both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def binomial_halfwidth(p: float, n: int, z: float = 1.96) -> float:
    """Half-width of the normal-approximation 95 % interval of an accuracy ``p`` measured on ``n`` images."""
    if n <= 0:
        raise ValueError(f"n must be a positive number of images, got {n}.")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be an accuracy in [0, 1], got {p}.")
    return z * math.sqrt(p * (1 - p) / n)


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and spread (max − min) of a few accuracies, e.g. one per seed."""
    if not values:
        raise ValueError("no values")
    return sum(values) / len(values), max(values) - min(values)

