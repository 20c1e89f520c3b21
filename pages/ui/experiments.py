"""A/B tests of response templates on the Templates screen: start one, list them, results per
variant (uses, rates, p-value, confidence interval, sample size, guardrail) with a chart over
time, stop (confirmed), promote the winner (admins, confirmed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import pandas as pd
import streamlit as st
from sqlmodel import Session

from core import experiments, templates
from core.access import Actor, Role
from core.experiments import ArmResult, ExperimentResult, ExperimentView, SeriesPoint
from core.templates import TemplateView
from db.models import TemplateKind
from pages.ui.actions import flash, read, run_action
from pages.ui.charts import FERN, PEONY
from pages.ui.text import plain

VARIANT_COLORS = {"A": FERN, "B": PEONY}


def _quoted(name: str) -> str:
    return f"“{plain(name)}”"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def experiments_tab(actor: Actor, *, manage: bool = True) -> None:
    """The shop's A/B tests and their results; with `manage`, also start, stop and promote
    (Templates); without, results only (Analytics, where managers read them)."""
    tests = read(actor, lambda s: experiments.list_experiments(session=s, actor=actor))
    if manage:
        _start(actor, running={t.template_id for t in tests if t.running})
    if not tests:
        st.info(
            "No A/B tests yet. Start one above: save a new version of a response template, "
            "then test it against the production version."
            if manage
            else "No A/B tests yet: florists and admins start them on the Templates page.",
            icon=":material/science:",
        )
        return
    _list(tests)
    chosen = _pick(tests)
    _results(actor, chosen, manage=manage)


# --- starting a test -------------------------------------------------------------------------


def _testable(session: Session, actor: Actor) -> list[TemplateView]:
    views = templates.list_templates(session=session, actor=actor, kind=TemplateKind.RESPONSE)
    return [v for v in views if v.production_number and v.latest_number > 1]


def _start(actor: Actor, *, running: set[int]) -> None:
    views = [v for v in read(actor, lambda s: _testable(s, actor)) if v.id not in running]
    with st.expander("Start an A/B test", icon=":material/science:", expanded=False):
        if not views:
            st.caption(
                "A test needs a response template with a production version and another "
                "version to try, and no test running: save a new version on the Responses tab."
            )
            return
        by_id = {v.id: v for v in views}
        template_id = st.selectbox(
            "Response template",
            list(by_id),
            format_func=lambda i: by_id[i].name,
            key="ab_template",
        )
        view = by_id[template_id]
        production = view.production_number
        others = [n for n in range(view.latest_number, 0, -1) if n != production]
        with st.form(f"ab_start_{view.id}"):
            st.caption(f"Variant A is the production version {production}.")
            version_b = st.selectbox(
                "Variant B: version",
                others,
                key=f"ab_b_{view.id}",
                format_func=lambda n: f"version {n}",
            )
            c1, c2 = st.columns(2)
            split = c1.slider(
                "Share of customers who get B", 0.05, 0.95, 0.5, 0.05, key=f"ab_split_{view.id}"
            )
            min_effect = c2.number_input(
                "Smallest difference in resolution rate worth detecting",
                min_value=0.005,
                max_value=0.5,
                value=0.05,
                step=0.01,
                format="%.3f",
                key=f"ab_effect_{view.id}",
                help="Absolute: 0.05 means 5 percentage points.",
            )
            note = st.text_input("Note", max_chars=500, key=f"ab_note_{view.id}")
            started = st.form_submit_button(
                "Start the test", type="primary", key=f"ab_go_{view.id}"
            )
    if views and started:
        outcome = run_action(
            actor,
            lambda s: experiments.start_experiment(
                session=s,
                actor=actor,
                template_id=view.id,
                version_b=version_b,
                split=split,
                min_effect=min_effect,
                note=note,
            ),
        )
        if outcome.ok and outcome.value is not None:
            st.session_state["ab_open"] = outcome.value.id
            flash(
                f"Started A/B test {outcome.value.id} of {_quoted(view.name)}: version "
                f"{outcome.value.version_a} against version {outcome.value.version_b}."
            )


# --- the list and one test -------------------------------------------------------------------


def _list(tests: Sequence[ExperimentView]) -> None:
    st.dataframe(
        [
            {
                "test": t.id,
                "template": t.template_name,
                "A": f"v{t.version_a}",
                "B": f"v{t.version_b}",
                "B's share": t.split,
                "status": t.status.value,
                "started": t.started_at,
                "winner": f"v{t.winner}" if t.winner else "",
            }
            for t in tests
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "B's share": st.column_config.NumberColumn(format="percent"),
            "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )


def _pick(tests: Sequence[ExperimentView]) -> ExperimentView:
    opened = st.session_state.pop("ab_open", None)
    if opened is not None:
        st.session_state["ab_pick"] = opened
    by_id = {t.id: t for t in tests}
    if st.session_state.get("ab_pick") not in by_id:
        st.session_state.pop("ab_pick", None)
    chosen = st.selectbox(
        "Open a test",
        list(by_id),
        key="ab_pick",
        format_func=lambda i: f"{i} · {by_id[i].template_name} · {by_id[i].status.value}",
    )
    return by_id[chosen]


@dataclass(frozen=True)
class Report:
    result: ExperimentResult
    series: list[SeriesPoint]


def _report(session: Session, actor: Actor, experiment_id: int) -> Report:
    return Report(
        experiments.experiment_results(session=session, actor=actor, experiment_id=experiment_id),
        experiments.experiment_series(session=session, actor=actor, experiment_id=experiment_id),
    )


def _results(actor: Actor, test: ExperimentView, *, manage: bool) -> None:
    found = read(actor, lambda s: _report(s, actor, test.id))
    result = found.result
    view = result.experiment
    st.subheader(f"Test {view.id}: {plain(view.template_name)}")
    st.caption(
        f"{view.status.value.capitalize()} · started {view.started_at:%Y-%m-%d %H:%M} UTC · "
        f"B's share {view.split:.0%} · detects {view.min_effect:.1%} at alpha {view.alpha}, "
        f"power {view.power}"
    )
    if view.stop_reason:
        st.text(view.stop_reason)
    if view.note:
        st.text(view.note)
    _arms(result)
    _verdict(result)
    _chart(found.series, view.id)
    if manage and view.running:
        _stop(actor, view)
    if manage and view.winner is None:
        _promote(actor, result)


def _arm_row(arm: ArmResult) -> dict[str, object]:
    c = arm.counts
    return {
        "variant": arm.variant,
        "version": arm.version,
        "uses": c.uses,
        "outcomes reported": c.reported,
        "resolution rate": c.resolution_rate,
        "escalation rate": c.escalation_rate,
        "average rating": c.avg_rating,
        "outcomes needed": arm.needed,
    }


def _arms(result: ExperimentResult) -> None:
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        [_arm_row(result.a), _arm_row(result.b)],
        hide_index=True,
        width="stretch",
        column_config={
            "resolution rate": percent,
            "escalation rate": percent,
            "average rating": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    baseline = "A's observed rate" if result.baseline_observed else "an assumed rate"
    st.caption(
        f"Outcomes needed per variant to detect the difference, from {baseline} of "
        f"{result.baseline:.0%}. "
        + ("Both variants have enough." if result.enough_data else "Not enough data yet.")
    )


def _verdict(result: ExperimentResult) -> None:
    test = result.resolution
    cols = st.columns(4)
    if test is None:
        cols[0].metric("Difference (B − A)", "—")
        st.caption("No outcome reported for both variants yet: no test of the difference.")
    else:
        cols[0].metric("Difference (B − A)", f"{test.difference:+.1%}")
        cols[1].metric("p-value", f"{test.p_value:.4f}", help=f"Test used: {test.method}")
        cols[2].metric(
            f"{test.confidence:.0%} confidence interval",
            f"{test.ci_low:+.1%} to {test.ci_high:+.1%}",
        )
    rail = result.guardrail
    state = "tripped" if rail.tripped else ("holding" if rail.checked else "waiting")
    cols[3].metric(
        "Guardrail",
        state,
        help="Stops the test when B's escalation rate is significantly worse than A's; it "
        f"waits for {experiments.GUARDRAIL_MIN_OUTCOMES} outcomes per variant.",
    )
    if test is not None:
        verdict = (
            f"Version {result.leader} resolves significantly more ({test.method})."
            if result.leader
            else f"No significant difference yet ({test.method})."
        )
        st.caption(verdict)
    if rail.checked and rail.p_value is not None:
        st.caption(f"Guardrail: one-sided {rail.method}, p = {rail.p_value:.4f}.")


def _chart(series: Sequence[SeriesPoint], test_id: int) -> None:
    if not series:
        st.caption(
            "No uses reported for this test yet: the chart fills in as the assistant reports "
            "answers and how they ended."
        )
        return
    frame = pd.DataFrame(
        [
            {
                "day": p.day,
                "variant": f"{p.variant} (v{p.version})",
                "uses": p.counts.uses,
                "resolution rate": p.cumulative_resolution_rate,
                "escalation rate": p.cumulative_escalation_rate,
            }
            for p in series
        ]
    )
    names = sorted(frame["variant"].unique())
    color = alt.Color(
        "variant:N",
        scale=alt.Scale(domain=names, range=[VARIANT_COLORS[n[0]] for n in names]),
        legend=alt.Legend(orient="top"),
    )
    x = alt.X("day:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d"))
    chart = (
        alt.Chart(frame)
        .transform_fold(["resolution rate", "escalation rate"], as_=["rate", "value"])
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("value:Q", title=None, axis=alt.Axis(format="%")),
            color=color,
            strokeDash=alt.StrokeDash("rate:N", legend=alt.Legend(orient="top")),
            tooltip=[
                "day:T",
                "variant:N",
                "rate:N",
                alt.Tooltip("value:Q", format=".1%"),
                "uses:Q",
            ],
        )
        .properties(height=260, title="Cumulative rates per variant")
    )
    st.altair_chart(chart, width="stretch", key=f"ab_chart_{test_id}")


# --- stop and promote ------------------------------------------------------------------------


def _stop(actor: Actor, view: ExperimentView) -> None:
    with st.form(f"ab_stop_{view.id}"):
        reason = st.text_input("Why stop it? (kept in the audit log)", max_chars=500)
        confirm = st.checkbox(
            "Yes, stop this test (it cannot be restarted)", key=f"ab_stop_confirm_{view.id}"
        )
        stop = st.form_submit_button("Stop the test", key=f"ab_stop_go_{view.id}")
    if stop and not confirm:
        st.warning("Tick the confirmation first.")
    elif stop:
        outcome = run_action(
            actor,
            lambda s: experiments.stop_experiment(
                session=s, actor=actor, experiment_id=view.id, reason=reason
            ),
        )
        if outcome.ok:
            flash(f"Stopped A/B test {view.id}.")


def _promote(actor: Actor, result: ExperimentResult) -> None:
    view = result.experiment
    if actor.role is not Role.ADMIN:
        st.info("Only an admin can promote the winner to production.", icon=":material/lock:")
        return
    numbers = [view.version_a, view.version_b]
    leader = result.leader
    with st.form(f"ab_promote_{view.id}"):
        st.markdown("**Promote the winner**")
        number = st.selectbox(
            "Version",
            numbers,
            index=numbers.index(leader) if leader in numbers else 0,
            format_func=lambda n: (
                f"version {n} ({'A' if n == view.version_a else 'B'})"
                + (" · significantly better" if n == leader else "")
            ),
            key=f"ab_promote_version_{view.id}",
        )
        confirm = st.checkbox(
            "Yes, the assistant should answer with this version from now on",
            key=f"ab_promote_confirm_{view.id}",
        )
        go = st.form_submit_button(
            "Promote to production", type="primary", key=f"ab_promote_go_{view.id}"
        )
    if go and not confirm:
        st.warning("Tick the confirmation first.")
    elif go:
        outcome = run_action(
            actor,
            lambda s: experiments.promote_winner(
                session=s, actor=actor, experiment_id=view.id, version=number
            ),
        )
        if outcome.ok:
            flash(f"Promoted version {number} of {_quoted(view.template_name)}; the test ended.")
