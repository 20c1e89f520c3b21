"""The statistics of an A/B test between two template versions (plain numbers, no database).

- Assignment: sha256("{experiment id}:{customer id}") read as a number in [0, 1); the customer
  gets B below the split. Sticky (the same customer always gets the same variant) and
  independent between experiments.
- The difference in resolution rate: a two-proportion z-test with the pooled standard error
  when every expected cell of the 2x2 table is at least 5, else Fisher's exact test (scipy);
  the confidence interval of the difference is Wald's with the unpooled standard error.
- The guardrail: the same choice of test, one-sided, on the escalation rate: is B's worse?
- The sample size per arm that detects a given difference at alpha (two-sided) and power:
  Fleiss's formula without continuity correction, for arms of unequal size.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

Variant = Literal["A", "B"]
Method = Literal["z-test", "fisher"]
MIN_EXPECTED = 5.0  # the usual rule for the z-test's normal approximation (Cochran)


def bucket(experiment_id: int, customer_id: str) -> float:
    """The customer's fixed place in [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def variant_for(experiment_id: int, customer_id: str, split: float) -> Variant:
    """B when the customer's bucket is below `split` (B's share of customers), else A."""
    return "B" if bucket(experiment_id, customer_id) < split else "A"


@dataclass(frozen=True)
class ProportionTest:
    """B's rate against A's: the difference (B - A), its confidence interval and p-value."""

    method: Method
    rate_a: float
    rate_b: float
    difference: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float  # 1 - alpha
    significant: bool  # p_value < alpha


def _rates(x_a: int, n_a: int, x_b: int, n_b: int) -> tuple[float, float]:
    if min(n_a, n_b) < 1 or not (0 <= x_a <= n_a and 0 <= x_b <= n_b):
        raise ValueError("each arm needs at least one observation and 0 <= x <= n")
    return x_a / n_a, x_b / n_b


def needs_exact_test(x_a: int, n_a: int, x_b: int, n_b: int) -> bool:
    """Whether some expected cell of the 2x2 table is below MIN_EXPECTED."""
    total, hits = n_a + n_b, x_a + x_b
    smallest = min(n_a, n_b) * min(hits, total - hits) / total
    return smallest < MIN_EXPECTED


def _pooled_z(x_a: int, n_a: int, x_b: int, n_b: int) -> float:
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return (x_b / n_b - x_a / n_a) / se


def _table(x_a: int, n_a: int, x_b: int, n_b: int) -> list[list[int]]:
    # Rows B then A, so an odds ratio above 1 means B's rate is higher.
    return [[x_b, n_b - x_b], [x_a, n_a - x_a]]


def compare_proportions(
    x_a: int, n_a: int, x_b: int, n_b: int, *, alpha: float = 0.05
) -> ProportionTest:
    """Two-sided test of rate B = rate A, with the (1 - alpha) interval of B - A."""
    rate_a, rate_b = _rates(x_a, n_a, x_b, n_b)
    method: Method
    if needs_exact_test(x_a, n_a, x_b, n_b):
        method = "fisher"
        p_value = float(stats.fisher_exact(_table(x_a, n_a, x_b, n_b)).pvalue)
    else:
        method = "z-test"
        p_value = float(2 * stats.norm.sf(abs(_pooled_z(x_a, n_a, x_b, n_b))))
    se = math.sqrt(rate_a * (1 - rate_a) / n_a + rate_b * (1 - rate_b) / n_b)
    half = float(stats.norm.ppf(1 - alpha / 2)) * se
    diff = rate_b - rate_a
    return ProportionTest(
        method, rate_a, rate_b, diff, p_value, diff - half, diff + half, 1 - alpha, p_value < alpha
    )


def b_is_worse(x_a: int, n_a: int, x_b: int, n_b: int) -> tuple[Method, float]:
    """One-sided p-value of "B's rate is higher than A's" (for escalations: worse), and the
    test used (the same choice as compare_proportions)."""
    _rates(x_a, n_a, x_b, n_b)
    if needs_exact_test(x_a, n_a, x_b, n_b):
        found = stats.fisher_exact(_table(x_a, n_a, x_b, n_b), alternative="greater")
        return "fisher", float(found.pvalue)
    return "z-test", float(stats.norm.sf(_pooled_z(x_a, n_a, x_b, n_b)))


def sample_size_per_arm(
    baseline: float, min_effect: float, *, alpha: float, power: float, split: float = 0.5
) -> tuple[int, int]:
    """(A's, B's) number of outcomes needed to detect B - A = min_effect from `baseline` with a
    two-sided test at `alpha` and the given power, when B gets `split` of the traffic. Where
    baseline + min_effect would pass 1, the effect is measured downwards instead."""
    if not (0 <= baseline <= 1 and 0 < min_effect < 1 and 0 < alpha < 1 and 0 < power < 1):
        raise ValueError("baseline in [0, 1]; min_effect, alpha and power in (0, 1)")
    if not 0 < split < 1:
        raise ValueError("split must lie strictly between 0 and 1")
    p1 = baseline
    p2 = p1 + min_effect if p1 + min_effect <= 1 else p1 - min_effect
    if not 0 <= p2 <= 1:
        raise ValueError("min_effect is too large for this baseline")
    k = split / (1 - split)  # B's arm size over A's
    mean = (p1 + k * p2) / (1 + k)
    z_alpha = float(stats.norm.ppf(1 - alpha / 2))
    z_power = float(stats.norm.ppf(power))
    root = z_alpha * math.sqrt(mean * (1 - mean) * (1 + 1 / k)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2) / k
    )
    # Rounded first so that float noise never adds a customer (400.0000000001 -> 400).
    n_a = math.ceil(round(root**2 / min_effect**2, 9))
    return n_a, math.ceil(round(k * n_a, 9))
