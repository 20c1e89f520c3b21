"""Response templates on the Templates screen (list with uses, search, edit, render with typed
values, create) and the suggestions shown for a customer message (Playground, Review)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from sqlmodel import Session

from core import responses, template_usage, templates
from core.access import Actor, Role
from core.experiments import OutcomeCounts
from core.responses import RenderedResponse, SearchHit, Suggestion, ValueErrors, VariableType
from core.templates import TemplateView, VersionView
from db.models import TemplateKind
from pages.ui.actions import flash, read
from pages.ui.studio import blank, run_checked
from pages.ui.text import plain

KIND = TemplateKind.RESPONSE
VARIABLE_COLUMNS = ("name", "type", "required", "default", "options")
TREND_DAYS = 30
RESPONSE_HELP = (
    "Write {name} where a variable's value goes, e.g. {customer_name}; write {{ and }} for "
    "literal braces. Every placeholder must be declared in the variables table below."
)

# The parts of the Templates page a response template shares with prompts: its versions
# (list, diff, production label) and its details (name, description, active).
Section = Callable[[Actor, TemplateView], None]


def _quoted(name: str) -> str:
    return f"“{plain(name)}”"


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- what the tab reads, in one session ------------------------------------------------------


@dataclass(frozen=True)
class ResponseShelf:
    views: list[TemplateView]
    usage: dict[int, OutcomeCounts]


def response_shelf(session: Session, actor: Actor) -> ResponseShelf:
    """The shop's response templates (inactive ones too) and the uses of each."""
    views = templates.list_templates(session=session, actor=actor, kind=KIND, include_inactive=True)
    usage = template_usage.template_usage(session=session, actor=actor)
    return ResponseShelf(views, {u.template_id: u.counts for u in usage})


# --- the tab ---------------------------------------------------------------------------------


def responses_tab(actor: Actor, *, versions: Section, details: Section) -> ResponseShelf:
    """The Responses tab; returns what it read (the A/B tests tab draws on it too)."""
    shelf = read(actor, lambda s: response_shelf(s, actor))
    _search(actor)
    if not shelf.views:
        st.info(
            "No response templates yet. Create the first one below.", icon=":material/add_circle:"
        )
    else:
        _overview(shelf)
        view = _pick(shelf.views)
        _show(actor, view, shelf.usage.get(view.id), versions=versions, details=details)
    _create(actor, first=not shelf.views)
    return shelf


def _overview(shelf: ResponseShelf) -> None:
    rows = []
    for v in shelf.views:
        counts = shelf.usage.get(v.id)
        rows.append(
            {
                "name": v.name,
                "category": v.content.get("category", ""),
                "production": f"v{v.production_number}" if v.production_number else "none yet",
                "latest": f"v{v.latest_number}",
                "uses": counts.uses if counts else 0,
                "resolution rate": _rate(counts.resolution_rate) if counts else None,
                "escalation rate": _rate(counts.escalation_rate) if counts else None,
                "average rating": counts.avg_rating if counts else None,
                "active": v.active,
            }
        )
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        key="response_overview",
        column_config={
            "resolution rate": percent,
            "escalation rate": percent,
            "average rating": st.column_config.NumberColumn(format="%.2f"),
        },
    )


def _pick(views: Sequence[TemplateView]) -> TemplateView:
    key = "pick_response"
    opened = st.session_state.pop("open_response", None)
    if opened is not None:  # a template just created or found: open it before the widget draws
        st.session_state[key] = opened
    ids = [v.id for v in views]
    if st.session_state.get(key) not in ids:
        st.session_state.pop(key, None)
    by_id = {v.id: v for v in views}
    chosen = st.selectbox(
        "Open a response template",
        ids,
        key=key,
        format_func=lambda i: by_id[i].name + ("" if by_id[i].active else " (inactive)"),
    )
    return by_id[chosen]


# --- search ----------------------------------------------------------------------------------


def _search(actor: Actor) -> None:
    query = st.text_input(
        "Search response templates",
        key="response_search",
        max_chars=200,
        placeholder="e.g. refund damaged",
        help="Every word must match (the last one may be the start of a word); matches in "
        "the name rank first. Matches are shown between « and ».",
    )
    if not query.strip():
        return
    hits = read(
        actor,
        lambda s: responses.search(
            session=s, actor=actor, query=query, limit=20, include_inactive=True
        ),
    )
    if not hits:
        st.caption("No response template matches every word. Try fewer or shorter words.")
        return
    _hits_table(hits)


def _hits_table(hits: Sequence[SearchHit]) -> None:
    # A dataframe shows its cells as literal text: the « » markers and whatever the
    # templates say are never read as markdown or HTML.
    st.dataframe(
        [
            {
                "name": h.name_highlight,
                "category": h.category,
                "where it matched": h.excerpt,
                "active": h.active,
            }
            for h in hits
        ],
        hide_index=True,
        width="stretch",
        key="response_hits",
    )
    st.caption(f"{len(hits)} found, best first. Open one with the list below.")


# --- one template ----------------------------------------------------------------------------


def _show(
    actor: Actor,
    view: TemplateView,
    counts: OutcomeCounts | None,
    *,
    versions: Section,
    details: Section,
) -> None:
    st.subheader(plain(view.name))
    production = f"version {view.production_number}" if view.production_number else "none yet"
    st.caption(
        f"{plain(view.content.get('category', ''))} · latest: version {view.latest_number} · "
        f"production: {production} · {counts.uses if counts else 0:,} uses"
    )
    _edit_form(actor, view)
    _render_form(actor, view)
    versions(actor, view)
    _trend(actor, view)
    details(actor, view)


def _variables_frame(variables: Sequence[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "name": v.get("name"),
            "type": v.get("type", "text"),
            "required": bool(v.get("required", True)),
            "default": None if v.get("default") is None else str(v["default"]),
            "options": ", ".join(v.get("options", [])) or None,
        }
        for v in variables
    ]
    return pd.DataFrame(rows, columns=VARIABLE_COLUMNS).astype(
        {"name": "object", "type": "object", "default": "object", "options": "object"}
    )


def _variables_config() -> dict[str, Any]:
    return {
        "name": st.column_config.TextColumn("name", required=True, help="lowercase_snake_case"),
        "type": st.column_config.SelectboxColumn(
            "type", options=[t.value for t in VariableType], default="text", required=True
        ),
        "required": st.column_config.CheckboxColumn("required", default=True),
        "default": st.column_config.TextColumn(
            "default", help="Used when no value is given; a date as YYYY-MM-DD."
        ),
        "options": st.column_config.TextColumn(
            "options", help="Only for select: the choices, separated by commas."
        ),
    }


def variable_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The editor's rows as declarations (core checks them); fully blank rows are dropped."""
    rows = []
    for record in frame.to_dict("records"):
        if all(blank(record.get(c)) for c in ("name", "default", "options")):
            continue
        row: dict[str, Any] = {
            "name": "" if blank(record.get("name")) else str(record["name"]).strip(),
            "type": "text" if blank(record.get("type")) else str(record["type"]),
            "required": bool(record.get("required"))
            if record.get("required") is not None
            else True,
        }
        if not blank(record.get("default")):
            row["default"] = str(record["default"]).strip()
        if row["type"] == VariableType.SELECT.value:
            text = "" if blank(record.get("options")) else str(record["options"])
            row["options"] = [o.strip() for o in text.split(",") if o.strip()]
        rows.append(row)
    return rows


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _edit_form(actor: Actor, view: TemplateView) -> None:
    key = f"{view.id}_{view.latest_number}"
    content = view.content
    triggers = content.get("triggers", {})
    with st.form(f"response_form_{key}"):
        category = st.text_input(
            "Category",
            value=content.get("category", ""),
            key=f"response_category_{key}",
            max_chars=responses.MAX_CATEGORY,
        )
        text = st.text_area(
            "Response text",
            value=content.get("text", ""),
            key=f"response_text_{key}",
            height=140,
            max_chars=20_000,
            help=RESPONSE_HELP,
        )
        st.markdown("**Variables**")
        frame = st.data_editor(
            _variables_frame(content.get("variables", [])),
            key=f"response_vars_{key}",
            num_rows="dynamic",
            hide_index=True,
            width="stretch",
            column_config=_variables_config(),
        )
        c1, c2 = st.columns(2)
        phrases = c1.text_area(
            "Trigger phrases, one per line",
            value="\n".join(triggers.get("phrases", [])),
            key=f"response_phrases_{key}",
            help="Suggested when a customer message contains one (whole words, any case).",
        )
        intents = c2.text_area(
            "Trigger intents, one per line",
            value="\n".join(triggers.get("intents", [])),
            key=f"response_intents_{key}",
            help="Suggested when the model sees one of these intents in a message.",
        )
        note = st.text_input(
            "Note for the new version",
            key=f"response_note_{key}",
            max_chars=500,
            placeholder="What changed, and why",
        )
        save = st.form_submit_button(
            "Save as new version",
            type="primary",
            icon=":material/save:",
            shortcut="Alt+S",
            key=f"response_save_{key}",
        )
    if save:
        drafted = responses.make_content(
            text=text or "",
            category=category,
            variables=variable_rows(frame),
            phrases=_lines(phrases or ""),
            intents=_lines(intents or ""),
        )
        _save(actor, view, drafted, note)


def _save(actor: Actor, view: TemplateView, content: dict[str, Any], note: str) -> None:
    if not note.strip():
        st.warning("Write a note saying what changed; it is kept with the version.")
        return
    outcome = run_checked(
        actor,
        lambda s: templates.save_version(
            session=s,
            actor=actor,
            template_id=view.id,
            content=content,
            note=note,
            expected_version=view.version,
        ),
        text=content["text"],
        what="template text",
    )
    if outcome.ok and outcome.value is not None:
        saved: VersionView = outcome.value
        flash(
            f"Saved version {saved.number} of {_quoted(view.name)}."
            + (
                " Promote it below when the assistant should answer with it."
                if actor.role is Role.ADMIN
                else " It waits as a draft until an admin promotes it."
            )
        )


# --- rendering with values -------------------------------------------------------------------


def _value_widget(var: dict[str, Any], key: str) -> Any:
    name, kind = str(var["name"]), var.get("type", "text")
    required = bool(var.get("required", True))
    default = var.get("default")
    title = f"{{{name}}} · {kind}" + (" · required" if required else "")
    if kind == VariableType.SELECT.value:
        options = [None, *var.get("options", [])]
        index = options.index(default) if default in options else 0
        return st.selectbox(
            title,
            options,
            index=index,
            key=key,
            format_func=lambda o: "— none —" if o is None else str(o),
        )
    if kind == VariableType.DATE.value:
        start = date.fromisoformat(default) if isinstance(default, str) else None
        return st.date_input(title, value=start, key=key, format="YYYY-MM-DD")
    if kind == VariableType.NUMBER.value:
        return st.number_input(
            title, value=default if isinstance(default, int | float) else None, key=key
        )
    return st.text_input(
        title, value="" if default is None else str(default), key=key, max_chars=2000
    )


def _render_form(actor: Actor, view: TemplateView) -> None:
    """Fill a version in with typed values (nothing is saved)."""
    numbers = list(range(view.latest_number, 0, -1))
    with st.expander("Render with values", icon=":material/preview:"):
        number = st.selectbox(
            "Version",
            numbers,
            format_func=lambda n: (
                f"version {n}" + (" (production)" if n == view.production_number else "")
            ),
            key=f"render_version_{view.id}",
        )
        chosen = read(
            actor,
            lambda s: templates.get_version(
                session=s, actor=actor, template_id=view.id, number=number
            ),
        )
        variables = chosen.content.get("variables", [])
        with st.form(f"render_{view.id}_{number}"):
            columns = st.columns(2)
            given = {}
            for i, var in enumerate(variables):
                with columns[i % 2]:
                    given[var["name"]] = _value_widget(
                        var, f"render_value_{view.id}_{number}_{var['name']}"
                    )
            if not variables:
                st.caption("This version has no variables: it reads the same for everyone.")
            submitted = st.form_submit_button("Render", icon=":material/play_arrow:")
        if submitted:
            _render(actor, view, number, given)


def _render(actor: Actor, view: TemplateView, number: int, given: dict[str, Any]) -> None:
    values = {k: v for k, v in given.items() if not blank(v)}

    def work(session: Session) -> RenderedResponse | dict[str, str]:
        try:
            return responses.render_response(
                session=session, actor=actor, template_id=view.id, values=values, number=number
            )
        except ValueErrors as exc:  # shown per variable below, not as one sentence
            return exc.problems

    outcome = run_checked(actor, work)
    if not outcome.ok or outcome.value is None:
        return
    if isinstance(outcome.value, dict):
        show_value_errors(outcome.value)
        return
    rendered = outcome.value
    st.code(rendered.text, language=None, wrap_lines=True)
    if rendered.defaults_used:
        st.caption("Defaults used for " + plain(", ".join(rendered.defaults_used)) + ".")


def show_value_errors(problems: dict[str, str]) -> None:
    count = len(problems)
    st.error(
        f"Not rendered: {count} value{'s' if count != 1 else ''} refused. Fix "
        f"{'them' if count != 1 else 'it'} above and render again.",
        icon=":material/error:",
    )
    st.dataframe(
        [{"variable": name, "problem": why} for name, why in problems.items()],
        hide_index=True,
        width="stretch",
    )


# --- analytics of one template ---------------------------------------------------------------


def _trend(actor: Actor, view: TemplateView) -> None:
    until = datetime.now(UTC)
    points = read(
        actor,
        lambda s: template_usage.usage_trend(
            session=s,
            actor=actor,
            since=until - timedelta(days=TREND_DAYS),
            until=until,
            template_id=view.id,
        ),
    )
    st.subheader("Uses over the last 30 days")
    if not points:
        st.caption(
            "No uses reported in the last 30 days. The assistant reports each answer it gives "
            "with a template (`trellis template use record`)."
        )
        return
    frame = pd.DataFrame(
        [
            {
                "day": p.bucket_start,
                "uses": p.counts.uses,
                "resolution rate": p.counts.resolution_rate,
                "escalation rate": p.counts.escalation_rate,
            }
            for p in points
        ]
    )
    x = alt.X("day:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d"))
    bars = alt.Chart(frame).mark_bar(opacity=0.35).encode(x=x, y=alt.Y("uses:Q", title="uses"))
    rates = (
        alt.Chart(frame)
        .transform_fold(["resolution rate", "escalation rate"], as_=["rate", "value"])
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y(
                "value:Q", title="rate", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
            ),
            color=alt.Color("rate:N", legend=alt.Legend(orient="top")),
            tooltip=["day:T", "rate:N", alt.Tooltip("value:Q", format=".1%")],
        )
    )
    chart = alt.layer(bars, rates).resolve_scale(y="independent").properties(height=240)
    st.altair_chart(chart, width="stretch", key=f"response_trend_{view.id}")


# --- a new response template -----------------------------------------------------------------


def _create(actor: Actor, *, first: bool) -> None:
    with (
        st.expander("Create a new response template", icon=":material/add:", expanded=first),
        st.form("create_response"),
    ):
        name = st.text_input("Name", max_chars=100, key="new_response_name")
        category = st.text_input(
            "Category", max_chars=responses.MAX_CATEGORY, key="new_response_category"
        )
        text = st.text_area(
            "Response text",
            key="new_response_text",
            placeholder="Hi {customer_name}, your order {order_number} is on its way.",
            help=RESPONSE_HELP + " Each placeholder starts as a required text variable; change "
            "its type after creating.",
        )
        phrases = st.text_area("Trigger phrases, one per line", key="new_response_phrases")
        intents = st.text_input("Trigger intents, separated by commas", key="new_response_intents")
        production = (
            st.checkbox("Make version 1 production now", key="new_response_production")
            if actor.role is Role.ADMIN
            else False
        )
        submitted = st.form_submit_button("Create response template", type="primary")
    if submitted:
        _create_response(
            actor,
            name,
            category,
            text or "",
            _lines(phrases or ""),
            [i.strip() for i in (intents or "").split(",") if i.strip()],
            production,
        )


def _create_response(
    actor: Actor,
    name: str,
    category: str,
    text: str,
    phrases: list[str],
    intents: list[str],
    production: bool,
) -> None:
    outcome = run_checked(
        actor,
        lambda s: responses.create_response(
            session=s,
            actor=actor,
            name=name,
            text=text,
            category=category.strip() or responses.DEFAULT_CATEGORY,
            variables=responses.text_variables(text),
            phrases=phrases,
            intents=intents,
            production=production,
        ),
        text=text,
    )
    if outcome.ok and outcome.value is not None:
        st.session_state["open_response"] = outcome.value.id
        state = "production" if production else "not yet production"
        flash(f"Created the response template {_quoted(outcome.value.name)} (version 1, {state}).")


# --- suggestions for a customer message ------------------------------------------------------


def suggestions_for(actor: Actor, text: str, *, k: int = 3) -> list[Suggestion]:
    """The response templates that fit `text`, best first (one core call, one session)."""
    if not text.strip():
        return []
    return read(actor, lambda s: templates.suggest(session=s, actor=actor, text=text, k=k))


def suggestions_panel(actor: Actor, text: str, *, compact: bool = False) -> None:
    """Suggested response templates for a customer message: score and reason as plain text."""
    found = suggestions_for(actor, text, k=3)
    if compact:
        st.markdown("**Suggested responses**")
        if not found:
            st.caption("No response template fits this message.")
        for s in found:
            st.caption(f"{plain(s.template)} · {s.score:.2f} · {plain(s.reason or 'no reason')}")
        return
    st.subheader("Suggested response templates")
    if not found:
        st.info(
            "No response template fits this message. Florists write them on the Templates "
            "page (Responses tab), with trigger phrases and intents.",
            icon=":material/lightbulb:",
        )
        return
    st.dataframe(
        [
            {
                "template": s.template,
                "category": s.category,
                "version": s.number,
                "score": round(s.score, 3),
                "why": s.reason,
            }
            for s in found
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "score": st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1)
        },
    )
