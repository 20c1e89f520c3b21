"""A/B tests of response templates: sticky assignment, the statistics (checked against values
computed by hand here, never by the code under test), the guardrail, stopping, promoting the
winner and the results chart. Database tests run on SQLite and, with TEST_DATABASE_URL, on
PostgreSQL as the app role (RLS on)."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlmodel import col, select

from core import ab_stats, experiments, templates
from core.access import Actor
from core.errors import InvalidInput, NotFound, PermissionDenied
from db.engine import session_scope
from db.models import AuditEvent, ExperimentStatus, TemplateExperiment
from tests.core.template_helpers import arm, customers, report, response_template, use
from tests.factories import Shop, make_shop

Z_975 = 1.959963984540054  # the standard normal's 97.5% quantile
Z_80 = 0.8416212335729143  # its 80% quantile


@pytest.fixture
def shop(engine) -> Shop:
    return make_shop(engine, "Bloom")


@pytest.fixture
def template_id(engine, shop) -> int:
    return response_template(engine, shop)


def call(engine: Engine, actor: Actor, function: str, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return getattr(experiments, function)(session=s, actor=actor, **kwargs)


def start(engine: Engine, actor: Actor, template_id: int, **kwargs: Any):
    return call(
        engine, actor, "start_experiment", template_id=template_id, **{"version_b": 2} | kwargs
    )


def audit_actions(engine: Engine, shop: Shop) -> list[str]:
    with session_scope(shop.admin, engine=engine) as s:
        return [e.action for e in s.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal, from the error function (not scipy)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


# ---------------------------------------------------------------- assignment


def test_assignment_is_sticky_and_splits_10000_customers_at_the_configured_share():
    people = [f"customer-{n}" for n in range(10_000)]
    for split in (0.5, 0.2):
        first = [ab_stats.variant_for(7, c, split) for c in people]
        assert first == [ab_stats.variant_for(7, c, split) for c in people]
        share = first.count("B") / len(people)
        # Four standard errors of a share of 10,000: a fair hash fails this once in 15,000.
        assert abs(share - split) < 4 * math.sqrt(split * (1 - split) / len(people))


def test_assignment_is_the_documented_hash_and_independent_between_tests():
    digest = hashlib.sha256(b"3:alice").digest()
    assert ab_stats.bucket(3, "alice") == int.from_bytes(digest[:8], "big") / 2**64
    people = [f"c{n}" for n in range(2_000)]
    in_3 = [ab_stats.variant_for(3, c, 0.5) for c in people]
    in_4 = [ab_stats.variant_for(4, c, 0.5) for c in people]
    agree = sum(a == b for a, b in zip(in_3, in_4, strict=True)) / len(people)
    assert 0.45 < agree < 0.55  # another test splits the same customers afresh


def test_a_customer_gets_the_same_version_while_the_test_runs(engine, shop, template_id):
    assert call(
        engine, shop.admin, "choose_version", template_id=template_id, customer_id="ada"
    ) == experiments.Assignment(1, None, None)
    test = start(engine, shop.florist, template_id, split=0.5)
    (b_customer,) = customers(test.id, 0.5, "B", 1)
    (a_customer,) = customers(test.id, 0.5, "A", 1)
    for _ in range(3):
        chosen = call(
            engine, shop.admin, "choose_version", template_id=template_id, customer_id=b_customer
        )
        assert chosen == experiments.Assignment(2, test.id, "B")
        assert (
            call(
                engine,
                shop.manager,
                "assign_variant",
                experiment_id=test.id,
                customer_id=a_customer,
            )
            == 1
        )


# ---------------------------------------------------------------- statistics


def test_the_z_test_and_interval_match_the_textbook_formulas():
    x_a, n_a, x_b, n_b = 120, 1000, 150, 1000
    found = ab_stats.compare_proportions(x_a, n_a, x_b, n_b, alpha=0.05)
    pooled = 270 / 2000
    z = (0.15 - 0.12) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    half = Z_975 * math.sqrt(0.12 * 0.88 / 1000 + 0.15 * 0.85 / 1000)
    assert found.method == "z-test"
    assert found.difference == pytest.approx(0.03)
    assert found.p_value == pytest.approx(2 * normal_sf(z), rel=1e-9)
    assert found.p_value == pytest.approx(0.0496, abs=1e-4)  # z = 1.963
    assert (found.ci_low, found.ci_high) == pytest.approx((0.03 - half, 0.03 + half), rel=1e-9)
    assert found.significant  # p just under 0.05; the Wald interval just misses 0 too
    assert 0 < found.ci_low < 0.001
    assert not ab_stats.compare_proportions(x_a, n_a, x_b, n_b, alpha=0.01).significant


def test_small_counts_use_fishers_exact_test_the_lady_tasting_tea():
    # Fisher's own example: 3 of 4 right against 1 of 4; p = 34/70 two-sided, 17/70 one-sided.
    found = ab_stats.compare_proportions(1, 4, 3, 4)
    assert found.method == "fisher"
    assert found.p_value == pytest.approx(34 / 70, rel=1e-9)
    method, one_sided = ab_stats.b_is_worse(1, 4, 3, 4)
    assert (method, one_sided) == ("fisher", pytest.approx(17 / 70, rel=1e-9))


def test_the_one_sided_guardrail_test_is_the_upper_tail_of_the_pooled_z():
    method, p_value = ab_stats.b_is_worse(50, 500, 75, 500)
    pooled = 125 / 1000
    z = (0.15 - 0.10) / math.sqrt(pooled * (1 - pooled) * (2 / 500))
    assert method == "z-test"
    assert p_value == pytest.approx(normal_sf(z), rel=1e-9)
    assert ab_stats.b_is_worse(75, 500, 50, 500)[1] == pytest.approx(1 - normal_sf(z), rel=1e-9)


def test_the_test_switches_to_fisher_when_an_expected_count_is_below_five():
    assert ab_stats.needs_exact_test(2, 100, 3, 100)  # expected successes 2.5 per arm
    assert not ab_stats.needs_exact_test(10, 100, 12, 100)
    assert ab_stats.compare_proportions(0, 30, 0, 30).p_value == pytest.approx(1.0)


def test_sample_size_per_arm_matches_the_textbook():
    # 10% -> 15% at alpha 0.05 (two-sided) and power 0.8: 686 per arm (Fleiss, no correction).
    assert ab_stats.sample_size_per_arm(0.10, 0.05, alpha=0.05, power=0.8) == (686, 686)
    p1, p2, k = 0.30, 0.40, 0.25 / 0.75  # a quarter of the traffic to B
    mean = (p1 + k * p2) / (1 + k)
    root = Z_975 * math.sqrt(mean * (1 - mean) * (1 + 1 / k)) + Z_80 * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2) / k
    )
    n_a = math.ceil(root**2 / 0.1**2)
    assert ab_stats.sample_size_per_arm(0.30, 0.10, alpha=0.05, power=0.8, split=0.25) == (
        n_a,
        math.ceil(k * n_a),
    )
    # Near the ceiling the effect is measured downwards, which needs the same n as upwards.
    assert ab_stats.sample_size_per_arm(0.97, 0.05, alpha=0.05, power=0.8) == (
        ab_stats.sample_size_per_arm(0.92, 0.05, alpha=0.05, power=0.8)
    )


def test_the_results_put_the_counts_through_the_same_statistics(engine, shop, template_id):
    test = start(engine, shop.florist, template_id, split=0.5, min_effect=0.1)
    a_people, b_people = customers(test.id, 0.5, "A", 61), customers(test.id, 0.5, "B", 60)
    report(
        engine,
        shop.admin,
        *arm(template_id, 1, a_people[:60], resolved=30, escalated=10),
        *arm(template_id, 2, b_people, resolved=45, escalated=5),
        use(template_id, 1, a_people[60]),  # its outcome is not reported yet: in no rate
    )
    found = call(engine, shop.manager, "experiment_results", experiment_id=test.id)
    assert (found.a.counts.uses, found.a.counts.reported, found.a.counts.resolved) == (61, 60, 30)
    assert (found.b.counts.resolved, found.b.counts.escalated) == (45, 5)
    assert found.resolution == ab_stats.compare_proportions(30, 60, 45, 60, alpha=0.05)
    assert found.resolution.significant and found.leader == 2
    assert found.baseline == 0.5 and found.baseline_observed
    assert (found.a.needed, found.b.needed) == ab_stats.sample_size_per_arm(
        0.5, 0.1, alpha=0.05, power=0.8, split=0.5
    )
    assert not found.enough_data  # 60 per arm, 385 needed
    assert found.guardrail.checked and not found.guardrail.tripped


# ---------------------------------------------------------------- the guardrail


def test_the_guardrail_stops_a_test_whose_b_escalates_significantly_more(engine, shop, template_id):
    test = start(engine, shop.florist, template_id)
    a_people, b_people = (customers(test.id, 0.5, v, 40) for v in "AB")
    summary = report(
        engine,
        shop.admin,
        *arm(template_id, 1, a_people, resolved=34, escalated=4),
        *arm(template_id, 2, b_people, resolved=20, escalated=18),
    )
    assert summary.stopped == (test.id,)
    stopped = call(engine, shop.manager, "get_experiment", experiment_id=test.id)
    assert stopped.status is ExperimentStatus.STOPPED and stopped.stopped_at is not None
    assert stopped.stop_reason.startswith("Guardrail: variant B's escalation rate 45.0% (18/40)")
    assert "experiment.stop" in audit_actions(engine, shop)
    # Stopped: everyone gets the production version again, and new uses count for no variant.
    chosen = call(
        engine, shop.admin, "choose_version", template_id=template_id, customer_id=b_people[0]
    )
    assert chosen == experiments.Assignment(1, None, None)


def test_the_guardrail_waits_for_enough_outcomes_and_ignores_a_better_b(engine, shop, template_id):
    test = start(engine, shop.florist, template_id)
    a_people, b_people = (customers(test.id, 0.5, v, 40) for v in "AB")
    few = experiments.GUARDRAIL_MIN_OUTCOMES - 1
    report(
        engine,
        shop.admin,
        *arm(template_id, 1, a_people[:few], resolved=few, escalated=0),
        *arm(template_id, 2, b_people[:few], resolved=0, escalated=few),
    )
    found = call(engine, shop.florist, "evaluate_experiment", experiment_id=test.id)
    assert found.experiment.running and not found.guardrail.checked
    report(
        engine,
        shop.admin,
        *arm(template_id, 1, a_people[few:], resolved=0, escalated=40 - few),
        *arm(template_id, 2, b_people[few:], resolved=40 - few, escalated=0),
    )
    found = call(engine, shop.florist, "evaluate_experiment", experiment_id=test.id)
    assert found.guardrail.checked and not found.guardrail.tripped  # 50% against 50%
    assert found.experiment.running


def test_evaluate_on_demand_stops_a_test_the_guardrail_condemns(engine, shop, template_id):
    test = start(engine, shop.florist, template_id)
    a_people, b_people = (customers(test.id, 0.5, v, 30) for v in "AB")
    report(
        engine,
        shop.admin,
        *arm(template_id, 1, a_people, resolved=28, escalated=2),
        *arm(template_id, 2, b_people, resolved=15, escalated=15),
    )
    # Recording stopped it already; reading never changes anything, evaluating again is a no-op.
    found = call(engine, shop.manager, "experiment_results", experiment_id=test.id)
    assert found.guardrail.tripped and not found.experiment.running
    again = call(engine, shop.florist, "evaluate_experiment", experiment_id=test.id)
    assert again.experiment.stop_reason == found.experiment.stop_reason
    assert audit_actions(engine, shop).count("experiment.stop") == 1


# ---------------------------------------------------------------- starting and stopping


def test_starting_checks_the_versions_and_allows_one_running_test(engine, shop, template_id):
    for kwargs, message in [
        ({"version_b": 1}, "against itself"),
        ({"version_b": 9}, "no version 9"),
        ({"version_b": None}, "existing version or as new content"),
        ({"split": 1.0}, "split"),
        ({"alpha": 0.5}, "alpha"),
    ]:
        with pytest.raises((InvalidInput, NotFound), match=message):
            start(engine, shop.florist, template_id, **kwargs)
    test = start(engine, shop.admin, template_id, split=0.3, note="shorter answer")
    assert (test.version_a, test.version_b, test.split, test.note) == (1, 2, 0.3, "shorter answer")
    assert test.running and test.template_name == "Delivery times"
    with pytest.raises(InvalidInput, match="already has an A/B test running"):
        start(engine, shop.florist, template_id)
    assert audit_actions(engine, shop) == ["experiment.start"]


def test_variant_b_can_be_written_as_a_new_version(engine, shop, template_id):
    test = start(
        engine,
        shop.florist,
        template_id,
        version_b=None,
        content_b={"text": "Order before 2 pm and we deliver today."},
        note_b="shorter",
    )
    assert test.version_b == 3
    with session_scope(shop.admin, engine=engine) as s:
        latest = templates.get_version(
            session=s, actor=shop.admin, template_id=template_id, number=3
        )
    assert latest.note == "shorter" and not latest.is_production


def test_only_response_templates_of_the_shop_are_tested(engine, shop, template_id):
    with session_scope(shop.admin, engine=engine) as s:
        prompt = templates.find_template(
            session=s, actor=shop.admin, kind="prompt", name="Basic Bouquet"
        )
    with pytest.raises(InvalidInput, match="response templates"):
        start(engine, shop.florist, prompt.id)
    other = make_shop(engine, "Fern")
    with pytest.raises(NotFound):
        start(engine, other.admin, template_id)
    test = start(engine, shop.florist, template_id)
    for function in ("get_experiment", "experiment_results", "experiment_series"):
        with pytest.raises(NotFound):
            call(engine, other.manager, function, experiment_id=test.id)
    assert call(engine, other.manager, "list_experiments") == []


def test_managers_read_results_but_do_not_start_or_stop(engine, shop, template_id):
    with pytest.raises(PermissionDenied):
        start(engine, shop.manager, template_id)
    test = start(engine, shop.florist, template_id)
    for function in ("stop_experiment", "evaluate_experiment"):
        with pytest.raises(PermissionDenied):
            call(engine, shop.manager, function, experiment_id=test.id)
    assert [t.id for t in call(engine, shop.manager, "list_experiments")] == [test.id]
    assert (
        call(engine, shop.manager, "experiment_results", experiment_id=test.id).a.counts.uses == 0
    )


def test_stopping_ends_the_test_and_later_uses_count_for_no_variant(engine, shop, template_id):
    test = start(engine, shop.florist, template_id)
    (b_customer,) = customers(test.id, 0.5, "B", 1)
    report(engine, shop.admin, use(template_id, 2, b_customer, use_id="during"))
    stopped = call(
        engine, shop.florist, "stop_experiment", experiment_id=test.id, reason="wrong wording"
    )
    assert stopped.status is ExperimentStatus.STOPPED and stopped.stop_reason == "wrong wording"
    with pytest.raises(InvalidInput, match="not running"):
        call(engine, shop.florist, "stop_experiment", experiment_id=test.id)
    report(engine, shop.admin, use(template_id, 2, b_customer, use_id="after"))
    found = call(engine, shop.manager, "experiment_results", experiment_id=test.id)
    assert found.b.counts.uses == 1
    assert [t.status for t in call(engine, shop.manager, "list_experiments", status="stopped")] == [
        ExperimentStatus.STOPPED
    ]
    start(engine, shop.florist, template_id)  # a new test may start now


# ---------------------------------------------------------------- promoting the winner


def test_promoting_the_significant_winner_makes_it_production_audited(engine, shop, template_id):
    test = start(engine, shop.florist, template_id)
    a_people, b_people = (customers(test.id, 0.5, v, 80) for v in "AB")
    report(
        engine,
        shop.admin,
        *arm(template_id, 1, a_people, resolved=40, escalated=10),
        *arm(template_id, 2, b_people, resolved=60, escalated=8),
    )
    with pytest.raises(PermissionDenied):
        call(engine, shop.florist, "promote_winner", experiment_id=test.id)
    done = call(engine, shop.admin, "promote_winner", experiment_id=test.id)
    assert (done.status, done.winner) == (ExperimentStatus.PROMOTED, 2)
    assert done.stopped_at is not None and done.stop_reason == "Version 2 promoted"
    with session_scope(shop.admin, engine=engine) as s:
        view = templates.get_template(session=s, actor=shop.admin, template_id=template_id)
        events = s.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
    assert view.production_number == 2
    promote = next(e for e in events if e.action == "template.promote")
    assert (promote.before, promote.after) == ({"production": 1}, {"production": 2})
    assert promote.reason == f"Winner of A/B test {test.id}"
    assert [e.action for e in events][-1] == "experiment.promote"
    assert call(
        engine, shop.admin, "choose_version", template_id=template_id, customer_id=a_people[0]
    ) == experiments.Assignment(2, None, None)
    with pytest.raises(InvalidInput, match="already"):
        call(engine, shop.admin, "promote_winner", experiment_id=test.id)


def test_without_a_significant_winner_the_admin_names_the_version(engine, shop, template_id):
    test = start(engine, shop.florist, template_id)
    with pytest.raises(InvalidInput, match="no outcomes yet"):
        call(engine, shop.admin, "promote_winner", experiment_id=test.id)
    with pytest.raises(InvalidInput, match="not in this test"):
        call(engine, shop.admin, "promote_winner", experiment_id=test.id, version=3)
    call(engine, shop.florist, "stop_experiment", experiment_id=test.id)
    done = call(
        engine, shop.admin, "promote_winner", experiment_id=test.id, version=1, reason="keep A"
    )
    assert (done.status, done.winner) == (ExperimentStatus.PROMOTED, 1)
    assert done.stop_reason == f"Stopped by {shop.florist.label}"  # why it stopped is kept
    assert audit_actions(engine, shop) == [
        "experiment.start",
        "experiment.stop",
        "experiment.promote",
    ]  # version 1 was production already: no template.promote


# ---------------------------------------------------------------- the results chart


def test_the_series_has_each_days_counts_and_running_totals_per_variant(engine, shop, template_id):
    test = start(engine, shop.florist, template_id)
    day1 = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
    with session_scope(shop.admin, engine=engine) as s:
        s.exec(
            update(TemplateExperiment)
            .where(col(TemplateExperiment.id) == test.id)
            .values(started_at=day1 - timedelta(days=1))
        )
    a_people, b_people = (customers(test.id, 0.5, v, 6) for v in "AB")
    day2 = day1 + timedelta(hours=1)  # 00:30 UTC the next day
    report(
        engine,
        shop.admin,
        *arm(template_id, 1, a_people[:2], resolved=1, escalated=1, created_at=day1),
        *arm(template_id, 2, b_people[:3], resolved=3, escalated=0, created_at=day1),
        *arm(template_id, 1, a_people[2:], resolved=4, escalated=0, created_at=day2),
    )
    points = call(engine, shop.manager, "experiment_series", experiment_id=test.id)
    shown = [
        (p.day, p.variant, p.version, p.counts.uses, p.counts.resolved, p.cumulative_reported)
        for p in points
    ]
    assert shown == [
        ("2026-11-02", "A", 1, 2, 1, 2),
        ("2026-11-02", "B", 2, 3, 3, 3),
        ("2026-11-03", "A", 1, 4, 4, 6),
    ]
    assert points[0].cumulative_resolution_rate == 0.5
    assert points[2].cumulative_resolution_rate == pytest.approx(5 / 6)
    assert points[2].cumulative_escalation_rate == pytest.approx(1 / 6)
