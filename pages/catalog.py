"""Catalog (florist, admin): flowers, arrangement types, occasions and budget tiers, each edited
in a table and saved all or nothing; a row something uses is deactivated instead of deleted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import streamlit as st

from core import catalog
from core.access import Actor
from core.catalog import CatalogEdits, EditOutcome, RowChange, RowRemoval
from pages.ui.actions import flash, read
from pages.ui.guard import require_page
from pages.ui.studio import blank, has_edits, pending_edits, run_checked
from pages.ui.text import plain

actor = require_page("catalog")

Cell = Literal["text", "list", "seasons", "choice", "flag", "price"]


@dataclass(frozen=True)
class Column:
    name: str
    cell: Cell
    title: str
    help: str = ""
    options: tuple[str, ...] = ()
    default: Any = None
    required: bool = False


ACTIVE = Column(
    "active", "flag", "active", "Untick to hide it from pickers; it stays.", default=True
)
DESCRIPTION = Column("description", "text", "description")
COLUMNS: Mapping[str, tuple[Column, ...]] = {
    "flower": (
        Column("name", "text", "name", required=True),
        Column("variety", "text", "variety"),
        Column("color", "text", "color", required=True),
        Column("season", "choice", "season", options=catalog.SEASONS, default="all_year"),
        Column("in_stock", "flag", "in stock", default=True),
        Column(
            "price_tier", "choice", "price tier", options=catalog.PRICE_TIERS, default="standard"
        ),
        DESCRIPTION,
        Column("image_url", "text", "image URL", "An http:// or https:// address."),
        ACTIVE,
    ),
    "arrangement_type": (Column("name", "text", "name", required=True), DESCRIPTION, ACTIVE),
    "occasion": (
        Column("name", "text", "name", required=True),
        Column("typical_flowers", "list", "typical flowers", "Comma-separated: rose, peony"),
        Column("typical_colors", "list", "typical colors", "Comma-separated: white, blush"),
        Column(
            "seasonal_preferences",
            "seasons",
            "seasonal preferences",
            "season: flowers; … e.g. spring: peony, tulip; winter: amaryllis",
        ),
        Column(
            "price_sensitivity",
            "choice",
            "price sensitivity",
            options=catalog.SENSITIVITIES,
            default="medium",
        ),
        DESCRIPTION,
        ACTIVE,
    ),
    "budget_tier": (
        Column("name", "text", "name", required=True),
        Column("min_price", "price", "min price", default=0.0),
        Column("max_price", "price", "max price", "Leave empty for no upper limit."),
        DESCRIPTION,
        ACTIVE,
    ),
}
TABS = {
    "flower": ("Flowers", "flowers"),
    "arrangement_type": ("Arrangement types", "arrangement types"),
    "occasion": ("Occasions", "occasions"),
    "budget_tier": ("Budget tiers", "budget tiers"),
}
EMPTY = {
    "flower": "No flowers yet. Press + under the table, give the flower a name and a color, "
    "then Save.",
    "arrangement_type": "No arrangement types yet (bouquet, centerpiece, wreath…). Press + under "
    "the table to add one, then Save.",
    "occasion": "No occasions yet (wedding, birthday, sympathy…). Press + under the table to add "
    "one, then Save.",
    "budget_tier": "No budget tiers yet. Press + under the table, name a tier and its price "
    "range, then Save.",
}


# --- rows as the table shows them ------------------------------------------------------------


def _shown(column: Column, value: Any) -> Any:
    if column.cell == "list":
        return ", ".join(value or [])
    if column.cell == "seasons":
        return "; ".join(f"{s}: {', '.join(fs)}" for s, fs in (value or {}).items())
    if column.cell == "text":
        return value or ""
    return value


def _load_rows(actor: Actor, kind: str) -> list[dict[str, Any]]:
    """The catalog as plain rows (id, version and the shown value of every column)."""
    items = read(actor, lambda s: catalog.list_items(session=s, actor=actor, kind=kind))
    return [
        {
            "id": item.id,
            "version": item.version,
            **{c.name: _shown(c, getattr(item, c.name)) for c in COLUMNS[kind]},
        }
        for item in items
    ]


def _editor_key(kind: str) -> str:
    return f"catalog_editor_{kind}_{st.session_state.get(f'catalog_gen_{kind}', 0)}"


def _rows(actor: Actor, kind: str) -> list[dict[str, Any]]:
    """The rows the table shows. While it holds unsaved edits they stay the rows as loaded, so
    each edit still points at its row (and its version), even if someone saved meanwhile."""
    snapshot = f"catalog_rows_{kind}"
    if has_edits(_editor_key(kind)) and snapshot in st.session_state:
        rows: list[dict[str, Any]] = st.session_state[snapshot]
        return rows
    rows = _load_rows(actor, kind)
    st.session_state[snapshot] = rows
    return rows


def _reset(kind: str) -> None:
    """Forget the table's edits and loaded rows: the next run draws a fresh table."""
    st.session_state[f"catalog_gen_{kind}"] = st.session_state.get(f"catalog_gen_{kind}", 0) + 1
    st.session_state.pop(f"catalog_rows_{kind}", None)


def _column_config(kind: str) -> dict[str, Any]:
    config: dict[str, Any] = {"id": st.column_config.NumberColumn("id", disabled=True, width=60)}
    for c in COLUMNS[kind]:
        if c.cell == "choice":
            config[c.name] = st.column_config.SelectboxColumn(
                c.title, options=list(c.options), default=c.default, required=True, help=c.help
            )
        elif c.cell == "flag":
            config[c.name] = st.column_config.CheckboxColumn(
                c.title, default=c.default, help=c.help
            )
        elif c.cell == "price":
            config[c.name] = st.column_config.NumberColumn(
                c.title, min_value=0, format="%.2f", default=c.default, help=c.help
            )
        else:
            config[c.name] = st.column_config.TextColumn(
                c.title, required=c.required, help=c.help or None
            )
    return config


# --- edits -----------------------------------------------------------------------------------


def _value(column: Column, value: Any) -> Any:
    """A cell as core takes it; None means 'leave it to the default'."""
    if column.cell in ("text", "list", "seasons"):
        return "" if blank(value) else str(value)
    if column.cell == "price":
        return None if blank(value) else float(value)
    return None if value is None else value


def _values(kind: str, cells: Mapping[str, Any]) -> dict[str, Any]:
    columns = {c.name: c for c in COLUMNS[kind]}
    out: dict[str, Any] = {}
    for name, cell in cells.items():
        if name not in columns:
            continue  # the id column (read-only)
        value = _value(columns[name], cell)
        if value is not None or columns[name].cell == "price":
            out[name] = value
    return out


def _edits(kind: str, rows: list[dict[str, Any]], state: dict[str, Any]) -> CatalogEdits:
    changed = [
        RowChange(rows[pos]["id"], rows[pos]["version"], _values(kind, cells))
        for pos, cells in state["edited_rows"].items()
        if pos < len(rows) and pos not in state["deleted_rows"]
    ]
    added = [
        _values(kind, cells)
        for cells in state["added_rows"]
        if not all(blank(v) for k, v in cells.items() if _is_text(kind, k))
    ]
    removed = [
        RowRemoval(rows[pos]["id"], rows[pos]["version"])
        for pos in state["deleted_rows"]
        if pos < len(rows)
    ]
    return CatalogEdits(added=added, changed=changed, removed=removed)


def _is_text(kind: str, name: str) -> bool:
    return any(c.name == name and c.cell in ("text", "list", "seasons") for c in COLUMNS[kind])


def _row_name(row: Mapping[str, Any]) -> str:
    variety = row.get("variety")
    return f"“{plain(row['name'])}”" + (f" ({plain(variety)})" if variety else "")


def _save(actor: Actor, kind: str, rows: list[dict[str, Any]]) -> None:
    edits = _edits(kind, rows, pending_edits(_editor_key(kind)))
    if not (edits.added or edits.changed or edits.removed):
        st.info("Nothing to save yet: change a cell, add a row with +, or delete a row first.")
        return

    def work(session: Any) -> tuple[EditOutcome, dict[int, list[str]]]:
        uses = {
            r.item_id: catalog.in_use(session=session, actor=actor, kind=kind, item_id=r.item_id)
            for r in edits.removed
        }
        return catalog.apply_edits(session=session, actor=actor, kind=kind, edits=edits), uses

    outcome = run_checked(actor, work)
    if outcome.ok and outcome.value is not None:
        done, uses = outcome.value
        _reset(kind)
        flash(_saved_message(kind, done, uses, rows))


def _saved_message(
    kind: str, done: EditOutcome, uses: dict[int, list[str]], rows: list[dict[str, Any]]
) -> str:
    parts = [
        f"{n} {what}"
        for n, what in (
            (done.added, "added"),
            (done.changed, "changed"),
            (done.deleted, "deleted"),
        )
        if n
    ]
    message = f"Saved the {TABS[kind][1]}: " + (", ".join(parts) or "nothing changed") + "."
    by_id = {row["id"]: row for row in rows}
    kept = [
        f"{_row_name(by_id[item_id])} (used by {plain(', '.join(used))})"
        for item_id, used in uses.items()
        if used and item_id in by_id
    ]
    if kept:
        message += (
            " Deactivated instead of deleted, because something still uses "
            + ("it" if len(kept) == 1 else "them")
            + ": "
            + "; ".join(kept)
            + ". Tick “active” to bring a row back."
        )
    return message


# --- the tabs --------------------------------------------------------------------------------


def catalog_tab(actor: Actor, kind: str) -> None:
    rows = _rows(actor, kind)
    st.caption(
        "Edit cells in place, add rows with + and delete selected rows; nothing is written "
        "until you save, and a save with any bad row writes nothing. Rows something uses "
        "(a style, an occasion, designs) are deactivated instead of deleted."
    )
    if not rows:
        st.info(EMPTY[kind], icon=":material/add_circle:")
    columns = ["id", *(c.name for c in COLUMNS[kind])]
    frame = pd.DataFrame([{k: row[k] for k in columns} for row in rows], columns=columns)
    key = _editor_key(kind)
    st.data_editor(
        frame,
        key=key,
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        height=min(36 * (len(rows) + 3), 720),  # every row of a shop's catalog, up to ~17
        column_config=_column_config(kind),
        disabled=["id"],
    )
    _pending_note(key)
    left, right = st.columns([1, 4])
    if left.button(f"Save {TABS[kind][1]}", type="primary", key=f"save_{kind}"):
        _save(actor, kind, rows)
    if right.button("Discard changes and reload", key=f"reload_{kind}"):
        _reset(kind)
        st.rerun()


def _pending_note(key: str) -> None:
    state = pending_edits(key)
    counts = [
        f"{n} {what}"
        for n, what in (
            (len(state["edited_rows"]), "changed"),
            (len(state["added_rows"]), "new"),
            (len(state["deleted_rows"]), "to delete"),
        )
        if n
    ]
    if counts:
        st.caption("Not saved yet: " + ", ".join(counts) + ".")


# A key and "rerun" keep the open tab across a save's rerun; every tab still draws, so the
# unsaved edits of one table survive a look at another.
tabs = st.tabs([t[0] for t in TABS.values()], key="catalog_tabs", on_change="rerun")
for tab, kind in zip(tabs, TABS, strict=True):
    with tab:
        catalog_tab(actor, kind)
