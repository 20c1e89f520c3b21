"""Wilson lower bound ranking: many successes beat a lucky few."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.ranking import rank_by_success, wilson_lower_bound


def test_two_of_two_never_outranks_950_of_1000():
    assert wilson_lower_bound(950, 50) > wilson_lower_bound(2, 0)


@pytest.mark.parametrize(
    ("successes", "failures", "expected"),
    # Reference values of the 95 % Wilson score interval's lower bound.
    [(0, 0, 0.0), (1, 0, 0.2065), (2, 0, 0.3424), (950, 50, 0.9347), (5, 5, 0.2366)],
)
def test_known_values(successes, failures, expected):
    assert wilson_lower_bound(successes, failures) == pytest.approx(expected, abs=1e-4)


def test_ties_break_on_the_latest_success():
    old, new = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    items = [("a", 10, 0, old), ("b", 10, 0, new), ("c", 1, 0, new), ("d", 0, 0, None)]
    ranked = rank_by_success(items, lambda i: (i[1], i[2]), lambda i: i[3])
    assert [i[0] for i in ranked] == ["b", "a", "c", "d"]
