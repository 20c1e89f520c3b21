"""Ranking shared items by how often they worked: the Wilson score lower bound.

A raw success rate ranks 2/2 above 950/1000; the lower bound of the 95 % Wilson interval does
not, because it accounts for how little two uses prove. Every shared library (import profiles,
style and prompt templates) ranks with this one function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")
Z_95 = 1.959963984540054


def wilson_lower_bound(successes: int, failures: int, z: float = Z_95) -> float:
    """Lower bound of the Wilson score interval for successes / (successes + failures)."""
    n = successes + failures
    if n <= 0:
        return 0.0
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt((p * (1 - p) + z2 / (4 * n)) / n)
    return max(0.0, (centre - margin) / (1 + z2 / n))


def rank_by_success(
    items: Sequence[T],
    counts: Callable[[T], tuple[int, int]],
    last_success: Callable[[T], datetime | None],
) -> list[T]:
    """Items best first: Wilson lower bound of (successes, failures), then latest success."""

    def key(item: T) -> tuple[float, float]:
        successes, failures = counts(item)
        when = last_success(item)
        return (wilson_lower_bound(successes, failures), when.timestamp() if when else 0.0)

    return sorted(items, key=key, reverse=True)
