"""Training: start a run and watch it live, the runs so far, and which model serves."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import registry, training
from core.access import Actor, Role
from db.engine import get_engine
from pages.ui.actions import flash, read, run_action
from pages.ui.charts import calibration_curve, confusion_heatmap, learning_curve, ranked_bars
from pages.ui.guard import require_page

actor = require_page("training")
is_admin = actor.role is Role.ADMIN


def _serving(actor: Actor) -> None:
    view = read(actor, lambda s: registry.serving_version(session=s, actor=actor))
    if view is None:
        st.info(
            "No model serves your shop yet. "
            + ("Train one below." if is_admin else "An admin trains the first one.")
        )
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Serving model", f"v{view.version}")
    f1 = view.metrics.get("macro_f1")
    c2.metric("Macro-F1 on its test split", "—" if f1 is None else f"{f1:.3f}")
    c3.metric("Intents it knows", len(view.intents))


def _start_form(actor: Actor) -> None:
    with st.form("start_run"):
        st.subheader("Train a new model")
        unreviewed = st.checkbox(
            "Also learn from unreviewed messages the model was sure of", value=True
        )
        confidence = st.slider("…when its confidence was at least", 0.5, 0.99, 0.9, 0.01)
        weight = st.number_input("Weight of human-corrected examples", 1.0, 10.0, 2.0, 0.5)
        go = st.form_submit_button("Train", type="primary", icon=":material/model_training:")
    if not go:
        return
    options = training.RunOptions(
        include_unreviewed=unreviewed, min_confidence=confidence, corrected_weight=weight
    )
    outcome = run_action(
        actor, lambda s: training.start_run(session=s, actor=actor, options=options)
    )
    if outcome.ok and outcome.value is not None:
        training.launch_run(engine=get_engine(), actor=actor, run_id=outcome.value.id)
        flash(f"Run {outcome.value.id} started; it trains while you work.")


def _eta(run: training.RunView) -> str:
    if run.eta_seconds is None:
        return ""
    return f" · about {max(1, round(run.eta_seconds))} s left"


@st.fragment(run_every=2)
def _live(actor: Actor) -> None:
    """Polls the database, so leaving and coming back (or a second admin) sees the same run."""
    _serving(actor)
    run = read(actor, lambda s: training.active_run(session=s, actor=actor))
    if run is None:
        runs = read(actor, lambda s: training.list_runs(session=s, actor=actor, limit=1))
        if not runs:
            st.caption("No training runs yet.")
            return
        run = runs[0]
        st.caption(f"Latest run: {run.id} ({run.status})")
    else:
        st.progress(
            run.progress,
            text=f"Run {run.id}: {run.stage.replace('_', ' ')} · {run.progress:.0%}{_eta(run)}",
        )
    _run_detail(run, "live")


def _run_detail(run: training.RunView, where: str) -> None:
    if run.points:
        st.markdown("**Learning curve**")
        learning_curve(run.points, key=f"{where}_curve_{run.id}")
    if run.status == "failed":
        st.error(f"Run {run.id} failed: {run.error}. The serving model was not changed.")
        return
    if run.status != "completed" or not run.metrics:
        return
    _decision(run)
    _comparison(run.metrics, run.baseline_metrics)
    per_intent = run.metrics.get("per_intent", {})
    if per_intent:
        st.markdown("**F1 per intent (test split)**")
        ranked_bars(
            [(i, round(v["f1"], 3)) for i, v in per_intent.items()],
            label="intent",
            value="F1",
            key=f"{where}_f1_{run.id}",
        )
    left, right = st.columns(2)
    confusion = run.metrics.get("confusion")
    if confusion and confusion.get("labels"):
        with left:
            st.markdown("**Confusion matrix**")
            confusion_heatmap(
                confusion["labels"], confusion["matrix"], key=f"{where}_confusion_{run.id}"
            )
    if run.metrics.get("calibration"):
        with right:
            st.markdown(f"**Calibration** (ECE {run.metrics.get('ece', 0):.3f})")
            calibration_curve(run.metrics["calibration"], key=f"{where}_calibration_{run.id}")
    if run.metrics.get("misclassified"):
        with st.expander(f"Misclassified test messages ({len(run.metrics['misclassified'])})"):
            st.dataframe(run.metrics["misclassified"], hide_index=True, width="stretch")


def _decision(run: training.RunView) -> None:
    gate = run.gate or {}
    reasons = "; ".join(gate.get("reasons", []))
    if run.deployed:
        st.success(
            f"Run {run.id} deployed model v{run.model_version}. {reasons}",
            icon=":material/rocket_launch:",
        )
    else:
        st.warning(f"Run {run.id} kept the serving model. {reasons}", icon=":material/shield:")
    _shadow(run.shadow)


def _shadow(shadow: dict[str, Any] | None) -> None:
    if not shadow:
        return
    share = shadow.get("disagreement")
    if share is None:
        st.caption("Shadow replay: no serving model or no recent customer messages to replay.")
        return
    flips = ", ".join(f"{f['from']} → {f['to']} ({f['count']})" for f in shadow["flips"][:5])
    st.caption(
        f"Shadow replay: disagrees with the serving model on {share:.1%} of the last "
        f"{shadow.get('messages', 0):,} customer messages."
        + (f" Most flips: {flips}." if flips else "")
    )


def _comparison(new: dict[str, Any], old: dict[str, Any] | None) -> None:
    keys = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "ece")
    rows = [
        {
            "metric": k.replace("_", " "),
            "candidate": new.get(k),
            "serving model": (old or {}).get(k),
        }
        for k in keys
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


def _history(actor: Actor) -> None:
    runs = read(actor, lambda s: training.list_runs(session=s, actor=actor))
    if not runs:
        st.info("No runs yet.")
        return
    st.dataframe(
        [
            {
                "run": r.id,
                "status": r.status,
                "trigger": r.trigger,
                "started": r.started_at,
                "seconds": None if r.duration_s is None else round(r.duration_s, 1),
                "macro-F1": (r.metrics or {}).get("macro_f1"),
                "deployed": r.deployed,
                "model": r.model_version,
            }
            for r in runs
        ],
        hide_index=True,
        width="stretch",
    )
    chosen = st.selectbox(
        "Run details", runs, format_func=lambda r: f"Run {r.id} ({r.status})", key="run_detail"
    )
    if chosen is not None:
        _run_detail(chosen, "history")


def _models(actor: Actor) -> None:
    versions = read(actor, lambda s: registry.list_versions(session=s, actor=actor))
    if not versions:
        st.info("No model versions yet.")
        return
    st.dataframe(
        [
            {
                "version": v.version,
                "serving": v.is_active,
                "macro-F1": v.metrics.get("macro_f1"),
                "accuracy": v.metrics.get("accuracy"),
                "MB": round(v.size_bytes / 2**20, 2),
                "created": v.created_at,
                "run": v.run_id,
            }
            for v in versions
        ],
        hide_index=True,
        width="stretch",
    )
    if is_admin:
        _switch_model(actor, versions)
    _compare(versions)


def _switch_model(actor: Actor, versions: list[registry.ModelVersionView]) -> None:
    with st.form("switch_model"):
        target = st.selectbox("Serve this version", versions, format_func=lambda v: f"v{v.version}")
        reason = st.text_input("Reason (kept in the audit log)")
        confirm = st.checkbox("Yes, switch the model that answers customers")
        activate = st.form_submit_button("Activate")
        rollback = st.form_submit_button("Roll back to the previous model")
    if (activate or rollback) and not confirm:
        st.warning("Tick the confirmation first.")
        return
    if (
        activate
        and run_action(
            actor,
            lambda s: registry.activate(
                session=s, actor=actor, version=target.version, reason=reason
            ),
        ).ok
    ):
        flash(f"Model v{target.version} now serves.")
    if rollback:
        done = run_action(
            actor, lambda s: registry.rollback(session=s, actor=actor, reason=reason or None)
        )
        if done.ok and done.value is not None:
            flash(f"Rolled back: model v{done.value.version} serves.")


def _compare(versions: list[registry.ModelVersionView]) -> None:
    if len(versions) < 2:
        return
    st.markdown("**Compare two versions** (F1 per intent on each version's own test split)")
    c1, c2 = st.columns(2)
    a = c1.selectbox(
        "Version", versions, format_func=lambda v: f"v{v.version}", index=1, key="compare_a"
    )
    b = c2.selectbox(
        "with", versions, format_func=lambda v: f"v{v.version}", index=0, key="compare_b"
    )
    fa, fb = a.metrics.get("per_intent", {}), b.metrics.get("per_intent", {})
    rows = [
        {
            "intent": i,
            f"v{a.version}": (fa.get(i) or {}).get("f1"),
            f"v{b.version}": (fb.get(i) or {}).get("f1"),
        }
        for i in sorted(set(fa) | set(fb))
    ]
    for row in rows:
        x, y = row[f"v{a.version}"], row[f"v{b.version}"]
        row["change"] = None if x is None or y is None else round(y - x, 3)
    st.dataframe(rows, hide_index=True, width="stretch")
    _confusion_diff(a, b)


def _confusion_diff(a: registry.ModelVersionView, b: registry.ModelVersionView) -> None:
    """Confusions v_b makes more (positive) or less (negative) than v_a, on shared intents."""
    ca, cb = a.metrics.get("confusion") or {}, b.metrics.get("confusion") or {}
    labels = [x for x in cb.get("labels", []) if x in set(ca.get("labels", []))]
    if len(labels) < 2:
        return
    ia = {x: i for i, x in enumerate(ca["labels"])}
    ib = {x: i for i, x in enumerate(cb["labels"])}
    diff = [
        [cb["matrix"][ib[t]][ib[p]] - ca["matrix"][ia[t]][ia[p]] for p in labels] for t in labels
    ]
    st.markdown(f"**Confusion change, v{a.version} → v{b.version}** (positive: more often)")
    confusion_heatmap(labels, diff, key=f"confusion_diff_{a.id}_{b.id}")


live_tab, runs_tab, models_tab = st.tabs(["Train", "Runs", "Models"])
with live_tab:
    if is_admin:
        _start_form(actor)
    _live(actor)
with runs_tab:
    _history(actor)
with models_tab:
    _models(actor)
