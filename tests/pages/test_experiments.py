"""A/B tests of response templates through app.py (Templates page, A/B tests tab): start one,
results per variant after outcomes recorded through core, stop and promote (admins only, each
confirmed); on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from core import experiments, responses, templates
from db.engine import session_scope
from db.models import ExperimentStatus
from tests.core.template_helpers import arm, customers, report
from tests.pages.test_responses import ORDER, bloom, db  # noqa: F401 (fixtures)


def _order(engine, actor):
    with session_scope(actor, engine=engine) as s:
        return responses.find_response(session=s, actor=actor, name=ORDER)


def _with_version_2(engine, actor):
    order = _order(engine, actor)
    with session_scope(actor, engine=engine) as s:
        templates.save_version(
            session=s,
            actor=actor,
            template_id=order.id,
            content={**order.content, "text": order.content["text"] + "\nThank you!"},
            note="thank them",
            expected_version=order.version,
        )
    return order


def _tab(app, actor):
    at = app(actor)
    at.switch_page("pages/templates.py")
    return at.run()


def _tests(engine, actor):
    with session_scope(actor, engine=engine) as s:
        return experiments.list_experiments(session=s, actor=actor)


def _start(engine, actor, order):
    with session_scope(actor, engine=engine) as s:
        return experiments.start_experiment(
            session=s, actor=actor, template_id=order.id, version_b=2, split=0.5
        )


def _outcomes(engine, shop, order, test_id):
    """40 customers per variant: B resolves 38, A 24; escalations equal (guardrail holds)."""
    a, b = customers(test_id, 0.5, "A", 40), customers(test_id, 0.5, "B", 40)
    report(
        engine,
        shop.admin,
        *arm(order.id, 1, a, resolved=24, escalated=2),
        *arm(order.id, 2, b, resolved=38, escalated=2),
    )


def _frame_with(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_a_florist_starts_a_test_and_reads_its_results(app, bloom, db):  # noqa: F811
    order = _with_version_2(db, bloom.admin)
    at = _tab(app, bloom.florist)
    assert not at.exception
    assert any("No A/B tests yet" in i.value for i in at.info)
    at.selectbox(key="ab_template").set_value(order.id)
    at = at.run()
    at.slider(key=f"ab_split_{order.id}").set_value(0.5)
    at.button(key=f"ab_go_{order.id}").click()
    at = at.run()
    assert not at.exception
    assert any("Started A/B test" in s.value for s in at.success)
    (test,) = _tests(db, bloom.florist)
    assert (test.version_a, test.version_b, test.split) == (1, 2, 0.5)

    _outcomes(db, bloom, order, test.id)
    at = _tab(app, bloom.florist)
    assert not at.exception
    arms = _frame_with(at, "outcomes needed")
    assert list(arms["variant"]) == ["A", "B"]
    assert list(arms["uses"]) == [40, 40]
    assert list(arms["resolution rate"]) == [0.6, 0.95]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Difference (B − A)"] == "+35.0%"
    assert float(metrics["p-value"]) < 0.05
    assert "confidence interval" in " ".join(metrics)
    assert metrics["Guardrail"] == "holding"
    assert any("Version 2 resolves significantly more" in c.value for c in at.caption)
    titles = [json.loads(c.proto.spec).get("title") for c in at.get("vega_lite_chart")]
    assert "Cumulative rates per variant" in titles  # the chart per variant over time
    assert any("Only an admin can promote the winner" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == f"ab_promote_go_{test.id}"]


def test_an_admin_promotes_the_winner_after_confirming(app, bloom, db):  # noqa: F811
    order = _with_version_2(db, bloom.admin)
    test = _start(db, bloom.florist, order)
    _outcomes(db, bloom, order, test.id)
    at = _tab(app, bloom.admin)
    assert at.selectbox(key=f"ab_promote_version_{test.id}").value == 2  # the leader
    at.button(key=f"ab_promote_go_{test.id}").click()
    at = at.run()
    assert any("Tick the confirmation first" in w.value for w in at.warning)
    assert _order(db, bloom.admin).production_number == 1
    at.checkbox(key=f"ab_promote_confirm_{test.id}").check()
    at.button(key=f"ab_promote_go_{test.id}").click()
    at = at.run()
    assert not at.exception
    assert any("Promoted version 2" in s.value for s in at.success)
    assert _order(db, bloom.admin).production_number == 2
    (done,) = _tests(db, bloom.admin)
    assert (done.status, done.winner) == (ExperimentStatus.PROMOTED, 2)


def test_stopping_a_test_needs_the_confirmation(app, bloom, db):  # noqa: F811
    order = _with_version_2(db, bloom.admin)
    test = _start(db, bloom.florist, order)
    at = _tab(app, bloom.florist)
    assert any("No uses reported for this test yet" in c.value for c in at.caption)
    at.button(key=f"ab_stop_go_{test.id}").click()
    at = at.run()
    assert any("Tick the confirmation first" in w.value for w in at.warning)
    assert _tests(db, bloom.florist)[0].running
    at.checkbox(key=f"ab_stop_confirm_{test.id}").check()
    at.button(key=f"ab_stop_go_{test.id}").click()
    at = at.run()
    assert not at.exception
    assert any(f"Stopped A/B test {test.id}" in s.value for s in at.success)
    assert _tests(db, bloom.florist)[0].status is ExperimentStatus.STOPPED


def test_a_manager_reads_the_results_on_analytics_without_controls(app, bloom, db):  # noqa: F811
    order = _with_version_2(db, bloom.admin)
    test = _start(db, bloom.florist, order)
    _outcomes(db, bloom, order, test.id)
    at = app(bloom.manager)
    at.switch_page("pages/analytics.py")
    at = at.run()
    assert not at.exception
    arms = _frame_with(at, "outcomes needed")
    assert list(arms["resolution rate"]) == [0.6, 0.95]
    keys = {b.key for b in at.button}
    assert f"ab_stop_go_{test.id}" not in keys and f"ab_promote_go_{test.id}" not in keys
    assert "ab_template" not in {s.key for s in at.selectbox}
