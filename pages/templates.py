"""Templates (florist, admin): styles and prompt templates — edit, preview, save as a version
with a note, compare versions, and (admins) promote or roll back; generator configurations;
the library of styles shops share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import Session

from core import templates
from core.access import Actor, Role
from core.catalog import CatalogLists, catalog_lists
from core.placeholders import CATALOGS, STYLE_PARAMETERS, VariableSource, VariableType
from core.templates import TemplateView, VersionView
from db.models import TemplateKind
from pages.ui.actions import flash, read
from pages.ui.experiments import experiments_tab
from pages.ui.guard import require_page
from pages.ui.responses import responses_tab
from pages.ui.studio import (
    ORIGINS,
    Draft,
    DraftPreview,
    blank,
    declared_variables,
    preview_draft,
    run_checked,
    show_image,
    show_preview,
    style_for_preview,
)
from pages.ui.studio_generators import generators_tab
from pages.ui.studio_library import library_tab
from pages.ui.text import plain

actor = require_page("templates")
is_admin = actor.role is Role.ADMIN

NOUN = {TemplateKind.STYLE: "style", TemplateKind.PROMPT: "prompt template"}
VARIABLE_COLUMNS = ("name", "type", "source", "catalog", "parameter")
PLACEHOLDER_HELP = (
    "Write {name} where a variable's value goes, e.g. {flowers}; write {{ and }} for literal "
    "braces. The standard variables (style, mood, flowers, colors, arrangement_style, flair, "
    "occasion, arrangement, budget, container, recipient, season) need no declaring."
)


def _quoted(name: str) -> str:
    return f"“{plain(name)}”"


# --- the list and the choice ------------------------------------------------------------------


def _overview(views: Sequence[TemplateView]) -> None:
    st.dataframe(
        [
            {
                "name": v.name,
                "production": f"v{v.production_number}" if v.production_number else "none yet",
                "latest": f"v{v.latest_number}",
                "draft waiting": v.has_draft,
                "designs made": v.usage_count,
                "active": v.active,
                "from the library": v.adopted_from_library,
            }
            for v in views
        ],
        hide_index=True,
        width="stretch",
    )


def _pick(kind: TemplateKind, views: Sequence[TemplateView]) -> TemplateView:
    key = f"pick_{kind.value}"
    opened = st.session_state.pop(f"open_{kind.value}", None)
    if opened is not None:  # a template just created: open it (before the widget is drawn)
        st.session_state[key] = opened
    ids = [v.id for v in views]
    if st.session_state.get(key) not in ids:
        st.session_state.pop(key, None)
    by_id = {v.id: v for v in views}
    chosen = st.selectbox(
        f"Open a {NOUN[kind]}",
        ids,
        key=key,
        format_func=lambda i: by_id[i].name + ("" if by_id[i].active else " (inactive)"),
    )
    return by_id[chosen]


@dataclass(frozen=True)
class Shelf:
    """What every tab draws from, read in one session: the shop's styles and prompt templates
    (inactive ones too) and its active catalog."""

    styles: list[TemplateView]
    prompts: list[TemplateView]
    lists: CatalogLists

    def of(self, kind: TemplateKind) -> list[TemplateView]:
        return self.styles if kind is TemplateKind.STYLE else self.prompts

    def active(self, kind: TemplateKind) -> list[TemplateView]:
        return [v for v in self.of(kind) if v.active]


def _shelf(session: Session, actor: Actor) -> Shelf:
    def every(kind: TemplateKind) -> list[TemplateView]:
        return templates.list_templates(
            session=session, actor=actor, kind=kind, include_inactive=True
        )

    return Shelf(
        every(TemplateKind.STYLE),
        every(TemplateKind.PROMPT),
        catalog_lists(session=session, actor=actor),
    )


def template_tab(actor: Actor, kind: TemplateKind, shelf: Shelf) -> None:
    views = shelf.of(kind)
    if not views:
        st.info(f"No {NOUN[kind]}s yet. Create the first one below.", icon=":material/add_circle:")
    else:
        _overview(views)
        view = _pick(kind, views)
        _show(actor, view, shelf)
    _create(actor, kind, shelf.lists, first=not views)


def _show(actor: Actor, view: TemplateView, shelf: Shelf) -> None:
    st.subheader(plain(view.name))
    production = f"version {view.production_number}" if view.production_number else "none yet"
    st.caption(
        f"Latest: version {view.latest_number} · production: {production} · "
        f"{view.usage_count:,} designs made with it"
        + (" · adopted from the library" if view.adopted_from_library else "")
    )
    if view.description:
        st.text(view.description)
    if view.kind is TemplateKind.PROMPT:
        _prompt_form(actor, view, shelf)
    else:
        _style_form(actor, view, shelf)
    _preview_panel(actor, view)
    _versions(actor, view)
    _details(actor, view)


# --- editing a prompt template ---------------------------------------------------------------


def _variables_frame(variables: Sequence[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{c: v.get(c) for c in VARIABLE_COLUMNS} for v in variables], columns=VARIABLE_COLUMNS
    )


def _variable_rows(frame: pd.DataFrame) -> tuple[dict[str, str], ...]:
    """The editor's rows as declarations; fully blank rows are dropped."""
    rows = []
    for record in frame.to_dict("records"):
        if all(blank(record.get(c)) for c in VARIABLE_COLUMNS):
            continue
        rows.append(
            {c: str(record[c]).strip() for c in VARIABLE_COLUMNS if not blank(record.get(c))}
            | {"name": "" if blank(record.get("name")) else str(record["name"]).strip()}
        )
    return tuple(rows)


def _variables_config() -> dict[str, Any]:
    return {
        "name": st.column_config.TextColumn("name", required=True, help="lowercase_snake_case"),
        "type": st.column_config.SelectboxColumn(
            "type", options=[t.value for t in VariableType], default="text", required=True
        ),
        "source": st.column_config.SelectboxColumn(
            "source",
            options=[s.value for s in VariableSource],
            default="free_text",
            required=True,
            help="Where a preview takes the value from when you give none.",
        ),
        "catalog": st.column_config.SelectboxColumn(
            "catalog", options=list(CATALOGS), help="Only for the source catalog."
        ),
        "parameter": st.column_config.SelectboxColumn(
            "style parameter",
            options=list(STYLE_PARAMETERS),
            help="Only for the source style_parameter.",
        ),
    }


def _style_choice(shelf: Shelf, key: str) -> int | None:
    names = {v.id: v.name for v in shelf.active(TemplateKind.STYLE)}
    chosen: int | None = st.selectbox(
        "Preview with the style",
        [None, *names],
        key=key,
        format_func=lambda i: "The shop's most used style" if i is None else names[i],
    )
    return chosen


def _prompt_form(actor: Actor, view: TemplateView, shelf: Shelf) -> None:
    key = f"{view.id}_{view.latest_number}"
    with st.form(f"prompt_form_{key}"):
        text = st.text_area(
            "Prompt text",
            value=view.content.get("text", ""),
            key=f"prompt_text_{key}",
            height=120,
            max_chars=20_000,
            help=PLACEHOLDER_HELP,
        )
        st.markdown("**Declared variables**")
        frame = st.data_editor(
            _variables_frame(view.content.get("variables", [])),
            key=f"prompt_vars_{key}",
            num_rows="dynamic",
            hide_index=True,
            width="stretch",
            column_config=_variables_config(),
        )
        style_id = _style_choice(shelf, f"prompt_style_{key}")
        note = st.text_input(
            "Note for the new version",
            key=f"prompt_note_{key}",
            max_chars=500,
            placeholder="What changed, and why",
        )
        left, right = st.columns([1, 4])
        preview = left.form_submit_button(
            "Preview", icon=":material/visibility:", shortcut="Alt+P", key=f"preview_{key}"
        )
        save = right.form_submit_button(
            "Save as new version",
            type="primary",
            icon=":material/save:",
            shortcut="Alt+S",
            key=f"save_{key}",
        )
    draft = Draft(text or "", _variable_rows(frame))
    if preview:
        _preview(actor, view, draft, lambda s: style_for_preview(s, actor, style_id))
    if save:
        _save_prompt(actor, view, draft, note)


def _save_prompt(actor: Actor, view: TemplateView, draft: Draft, note: str) -> None:
    if not note.strip():
        st.warning("Write a note saying what changed; it is kept with the version.")
        return
    declared = {row.get("name") for row in draft.variables}

    def work(session: Any) -> tuple[VersionView, list[str]]:
        variables = declared_variables(draft)
        content = {"text": draft.text, "variables": [v.to_dict() for v in variables]}
        saved = templates.save_version(
            session=session,
            actor=actor,
            template_id=view.id,
            content=content,
            note=note,
            expected_version=view.version,
        )
        return saved, [v.name for v in variables if v.name not in declared]

    outcome = run_checked(actor, work, text=draft.text)
    if outcome.ok and outcome.value is not None:
        saved, added = outcome.value
        _saved(view, saved, added)


def _saved(view: TemplateView, saved: VersionView, added: Sequence[str]) -> None:
    st.session_state.pop(f"preview_{view.id}", None)
    message = f"Saved version {saved.number} of {_quoted(view.name)}."
    if added:
        braced = ", ".join("{" + name + "}" for name in added)
        message += f" Its text uses the standard {'variables' if len(added) > 1 else 'variable'} "
        message += plain(braced) + ", now declared too."
    message += (
        " Promote it below when the generator should use it."
        if is_admin
        else " It waits as a draft until an admin promotes it."
    )
    flash(message)


# --- editing a style -------------------------------------------------------------------------


def _union(*groups: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(item for group in groups for item in group))


def _style_form(actor: Actor, view: TemplateView, shelf: Shelf) -> None:
    key = f"{view.id}_{view.latest_number}"
    content, lists, prompts = view.content, shelf.lists, shelf.active(TemplateKind.PROMPT)
    with st.form(f"style_form_{key}"):
        c1, c2 = st.columns(2)
        palette = c1.multiselect(
            "Color palette",
            _union(content.get("color_palette", []), lists.colors),
            default=content.get("color_palette", []),
            accept_new_options=True,
            key=f"style_palette_{key}",
        )
        flowers = c2.multiselect(
            "Flowers",
            _union(content.get("flowers", []), lists.flowers),
            default=content.get("flowers", []),
            accept_new_options=True,
            key=f"style_flowers_{key}",
        )
        c3, c4 = st.columns(2)
        mood = c3.text_input("Mood", value=content.get("mood", ""), key=f"style_mood_{key}")
        arrangement = c4.text_input(
            "Arrangement style",
            value=content.get("arrangement_style", ""),
            key=f"style_arrangement_{key}",
        )
        flair = st.multiselect(
            "Flair elements",
            content.get("flair_elements", []),
            default=content.get("flair_elements", []),
            accept_new_options=True,
            key=f"style_flair_{key}",
            help="Type a new one and press Enter to add it.",
        )
        images = st.text_area(
            "Example image URLs, one per line",
            value="\n".join(content.get("example_images", [])),
            key=f"style_images_{key}",
        )
        by_id = {p.id: p for p in prompts}
        prompt_id = st.selectbox(
            "Preview with the prompt template",
            list(by_id),
            format_func=lambda i: by_id[i].name,
            key=f"style_prompt_{key}",
        )
        note = st.text_input("Note for the new version", key=f"style_note_{key}", max_chars=500)
        left, right = st.columns([1, 4])
        preview = left.form_submit_button(
            "Preview", icon=":material/visibility:", shortcut="Alt+P", key=f"preview_{key}"
        )
        save = right.form_submit_button(
            "Save as new version",
            type="primary",
            icon=":material/save:",
            shortcut="Alt+S",
            key=f"save_{key}",
        )
    drafted = {
        "color_palette": palette,
        "flowers": flowers,
        "mood": mood,
        "arrangement_style": arrangement,
        "flair_elements": flair,
        "example_images": images,
    }
    if preview:
        _preview_style(actor, view, drafted, by_id.get(prompt_id) if prompt_id else None)
    if save:
        _save_style(actor, view, drafted, note)


def _preview_style(
    actor: Actor, view: TemplateView, drafted: dict[str, Any], prompt: TemplateView | None
) -> None:
    if prompt is None:
        st.info("Create a prompt template to see this style in a prompt.")
        return
    draft = Draft(prompt.content["text"], tuple(prompt.content["variables"]))
    _preview(
        actor,
        view,
        draft,
        lambda s: (view.name, templates.parse_style(drafted)),
        images=True,
    )


def _save_style(actor: Actor, view: TemplateView, drafted: dict[str, Any], note: str) -> None:
    if not note.strip():
        st.warning("Write a note saying what changed; it is kept with the version.")
        return
    outcome = run_checked(
        actor,
        lambda s: templates.save_version(
            session=s,
            actor=actor,
            template_id=view.id,
            content=drafted,
            note=note,
            expected_version=view.version,
        ),
    )
    if outcome.ok and outcome.value is not None:
        _saved(view, outcome.value, ())


# --- previews --------------------------------------------------------------------------------


def _preview(
    actor: Actor,
    view: TemplateView,
    draft: Draft,
    style: Any,
    *,
    given: dict[str, str] | None = None,
    images: bool = False,
) -> bool:
    """Render the draft (style: a function of the session giving (name, parameters) or None)
    and keep the result for the panel under the form; whether it rendered."""

    def work(session: Any) -> tuple[DraftPreview, tuple[str, dict[str, Any]] | None]:
        chosen = style(session)
        return preview_draft(session, actor, draft, given=given or {}, style=chosen), chosen

    outcome = run_checked(actor, work, text=draft.text)
    if not outcome.ok or outcome.value is None:
        return False
    result, chosen = outcome.value
    earlier = st.session_state.get(f"preview_{view.id}") or {}
    st.session_state[f"preview_{view.id}"] = {
        "number": view.latest_number,
        "round": earlier.get("round", 0) + 1,  # fresh value inputs for every preview
        "draft": draft,
        "style": chosen,
        "result": result,
        "images": images,
    }
    return True


def _preview_panel(actor: Actor, view: TemplateView) -> None:
    state = st.session_state.get(f"preview_{view.id}")
    if not state or state["number"] != view.latest_number:
        return
    result: DraftPreview = state["result"]
    with st.container(border=True):
        show_preview(result)
        if state["images"] and state["style"]:
            _example_images(state["style"][1].get("example_images", []))
        if result.used:
            _values_form(actor, view, state, list(result.used))


def _example_images(urls: Sequence[str]) -> None:
    if not urls:
        st.caption("This style has no example images yet.")
        return
    for column, url in zip(st.columns(min(len(urls), 4)), urls[:4], strict=False):
        with column:
            show_image(url, alt="Example image of the style")


def _values_form(actor: Actor, view: TemplateView, state: dict[str, Any], names: list[str]) -> None:
    result: DraftPreview = state["result"]
    with st.form(f"values_{view.id}"):
        st.caption("Change any value and preview again (nothing is saved).")
        columns = st.columns(2)
        typed = {
            name: columns[i % 2].text_input(
                f"{{{name}}} · {ORIGINS.get(result.origins.get(name, ''), 'nobody gave it yet')}",
                value=result.values.get(name, ""),
                key=f"value_{view.id}_{state['round']}_{name}",
            )
            for i, name in enumerate(names)
        }
        again = st.form_submit_button("Preview with these values", icon=":material/refresh:")
    if again:
        given = {
            n: v
            for n, v in typed.items()
            if v.strip() and (v != result.values.get(n) or result.origins.get(n) == "given")
        }
        style = state["style"]
        if _preview(
            actor, view, state["draft"], lambda s: style, given=given, images=state["images"]
        ):
            st.rerun()


# --- versions, diff, production label ---------------------------------------------------------


def _versions(actor: Actor, view: TemplateView) -> None:
    versions = read(
        actor, lambda s: templates.list_versions(session=s, actor=actor, template_id=view.id)
    )
    st.subheader("Versions")
    st.dataframe(
        [
            {
                "version": v.number,
                "production": v.is_production,
                "note": v.note,
                "saved by": v.author_name,
                "saved": v.created_at,
            }
            for v in versions
        ],
        hide_index=True,
        width="stretch",
        column_config={"saved": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )
    _diff(actor, view, [v.number for v in versions])
    _label(actor, view, versions)


def _diff(actor: Actor, view: TemplateView, numbers: list[int]) -> None:
    if len(numbers) < 2:
        st.caption("Only one version so far: save a change to compare versions.")
        return
    c1, c2 = st.columns(2)
    older = view.production_number if view.production_number != numbers[0] else numbers[1]
    old = c1.selectbox(
        "Compare version",
        numbers,
        index=numbers.index(older) if older in numbers else 1,
        key=f"diff_old_{view.id}_{numbers[0]}",
    )
    new = c2.selectbox("with version", numbers, index=0, key=f"diff_new_{view.id}_{numbers[0]}")
    if old == new:
        st.caption("Pick two different versions to see what changed.")
        return
    found = read(
        actor,
        lambda s: templates.diff_versions(
            session=s, actor=actor, template_id=view.id, old=old, new=new
        ),
    )
    if not found.changed:
        st.caption(f"Versions {old} and {new} hold the same content.")
        return
    st.code("\n".join(found.lines), language="diff")


def _label(actor: Actor, view: TemplateView, versions: list[VersionView]) -> None:
    production = view.production_number
    if not is_admin:
        st.info(
            "Only an admin can promote a version to production or roll back: the generator "
            "uses the production version, so an admin checks it first. "
            + (f"Version {production} is production now." if production else "None is yet."),
            icon=":material/lock:",
        )
        st.button(
            "Promote to production",
            disabled=True,
            key=f"promote_locked_{view.id}",
            help="Admins only",
        )
        return
    with st.form(f"label_{view.id}_{view.latest_number}_{production}"):
        st.markdown("**Production label**")
        number = st.selectbox(
            "Version",
            [v.number for v in versions],
            format_func=lambda n: f"version {n}" + (" (production)" if n == production else ""),
            key=f"label_version_{view.id}_{production}",
        )
        reason = st.text_input(
            "Reason (kept in the audit log)",
            max_chars=500,
            key=f"label_reason_{view.id}_{production}",
        )
        confirm = st.checkbox(
            "Yes, the generator should use this from now on",
            key=f"label_confirm_{view.id}_{production}",
        )
        left, right = st.columns([1, 2])
        promote = left.form_submit_button(
            "Promote to production", type="primary", key=f"promote_{view.id}_{production}"
        )
        rollback = right.form_submit_button(
            "Roll back to the previous production version", key=f"rollback_{view.id}_{production}"
        )
    if (promote or rollback) and not confirm:
        st.warning("Tick the confirmation first.")
        return
    if promote:
        _move(actor, view, "promote", number, reason)
    if rollback:
        _move(actor, view, "rollback", None, reason)


def _move(actor: Actor, view: TemplateView, how: str, number: int | None, reason: str) -> None:
    def work(session: Any) -> TemplateView:
        if how == "promote":
            assert number is not None
            return templates.promote(
                session=session,
                actor=actor,
                template_id=view.id,
                number=number,
                reason=reason or None,
            )
        return templates.rollback(
            session=session, actor=actor, template_id=view.id, reason=reason or None
        )

    outcome = run_checked(actor, work)
    if outcome.ok and outcome.value is not None:
        done = outcome.value
        verb = "Promoted" if how == "promote" else "Rolled back"
        flash(f"{verb}: version {done.production_number} of {_quoted(view.name)} is production.")


# --- name, description, active; a new template -----------------------------------------------


def _details(actor: Actor, view: TemplateView) -> None:
    with st.expander("Name, description, active"), st.form(f"details_{view.id}_{view.version}"):
        name = st.text_input("Name", value=view.name, max_chars=100)
        description = st.text_area("Description", value=view.description, max_chars=500)
        active = st.checkbox("Active (offered for new designs)", value=view.active)
        submitted = st.form_submit_button("Save details")
    if submitted:
        outcome = run_checked(
            actor,
            lambda s: templates.update_details(
                session=s,
                actor=actor,
                template_id=view.id,
                expected_version=view.version,
                name=name,
                description=description,
                active=active,
            ),
        )
        if outcome.ok:
            flash(f"Saved the details of {_quoted(name)}.")


def _create(actor: Actor, kind: TemplateKind, lists: CatalogLists, *, first: bool) -> None:
    with (
        st.expander(f"Create a new {NOUN[kind]}", icon=":material/add:", expanded=first),
        st.form(f"create_{kind.value}"),
    ):
        name = st.text_input("Name", max_chars=100, key=f"new_name_{kind.value}")
        description = st.text_input(
            "Description", max_chars=500, key=f"new_description_{kind.value}"
        )
        content = (
            _new_prompt_fields(kind) if kind is TemplateKind.PROMPT else _new_style_fields(lists)
        )
        submitted = st.form_submit_button(f"Create {NOUN[kind]}", type="primary")
    if submitted:
        _create_template(actor, kind, name, description, content)


def _new_prompt_fields(kind: TemplateKind) -> dict[str, Any]:
    text = st.text_area(
        "Prompt text",
        key=f"new_text_{kind.value}",
        placeholder="A {style} bouquet of {flowers} in {colors} for {occasion}",
        help=PLACEHOLDER_HELP,
    )
    return {"text": text or ""}


def _new_style_fields(lists: CatalogLists) -> dict[str, Any]:
    c1, c2 = st.columns(2)
    palette = c1.multiselect("Color palette", lists.colors, accept_new_options=True)
    flowers = c2.multiselect("Flowers", lists.flowers, accept_new_options=True)
    c3, c4 = st.columns(2)
    mood = c3.text_input("Mood", placeholder="romantic")
    arrangement = c4.text_input("Arrangement style", placeholder="loose hand-tied bouquet")
    return {
        "color_palette": palette,
        "flowers": flowers,
        "mood": mood,
        "arrangement_style": arrangement,
    }


def _create_template(
    actor: Actor, kind: TemplateKind, name: str, description: str, content: dict[str, Any]
) -> None:
    text = content.get("text", "")

    def work(session: Any) -> TemplateView:
        full = content
        if kind is TemplateKind.PROMPT:
            variables = templates.with_standard_variables(text)
            full = {"text": text, "variables": [v.to_dict() for v in variables]}
        return templates.create_template(
            session=session,
            actor=actor,
            kind=kind,
            name=name,
            content=full,
            description=description,
        )

    outcome = run_checked(actor, work, text=text)
    if outcome.ok and outcome.value is not None:
        st.session_state[f"open_{kind.value}"] = outcome.value.id
        flash(
            f"Created the {NOUN[kind]} {_quoted(outcome.value.name)} (version 1, not yet "
            "production)."
        )


shelf = read(actor, lambda s: _shelf(s, actor))
# A key and "rerun" keep the open tab across a save's rerun; every tab still draws, so what
# was typed in one form survives a look at another tab.
styles_tab, prompts_tab, responses_t, ab_tab, generator_tab, shared_tab = st.tabs(
    ["Styles", "Prompt templates", "Responses", "A/B tests", "Generator configurations", "Library"],
    key="templates_tabs",
    on_change="rerun",
)
with styles_tab:
    template_tab(actor, TemplateKind.STYLE, shelf)
with prompts_tab:
    template_tab(actor, TemplateKind.PROMPT, shelf)
with responses_t:
    responses_tab(actor, versions=_versions, details=_details)
with ab_tab:
    experiments_tab(actor)
with generator_tab:
    generators_tab(actor)
with shared_tab:
    library_tab(actor, shelf.active(TemplateKind.STYLE) + shelf.active(TemplateKind.PROMPT))
