"""Data: import files (admin), export, dataset statistics, and the shared import profiles."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, time, timedelta

import streamlit as st

from core import dataset, imports, profiles
from core.access import Actor, Role
from core.config import get_settings
from core.errors import TrellisError
from core.file_spec import CLEANUP_STEPS
from pages.ui.actions import flash, read, run_action
from pages.ui.charts import ranked_bars
from pages.ui.guard import require_page

actor = require_page("data")
NO_PROFILE = "Trellis columns (no profile)"
tab_names = (["Import"] if actor.role is Role.ADMIN else []) + [
    "Export",
    "Statistics",
    "Import profiles",
]
tabs = dict(zip(tab_names, st.tabs(tab_names), strict=True))


def _pick_profile(actor: Actor) -> profiles.ProfileView | None:
    """Source first, then its profiles with the best-ranked one preselected."""
    sources = read(actor, lambda s: profiles.sources(session=s, actor=actor))
    c1, c2 = st.columns(2)
    source = c1.selectbox(
        "Where does the file come from?",
        [NO_PROFILE, *sources],
        key="import_source",
        help="Pick the platform; Trellis preselects the profile that has "
        "worked best for it across all shops.",
    )
    if source == NO_PROFILE:
        return None
    options = read(actor, lambda s: profiles.list_profiles(session=s, actor=actor, source=source))
    if not options:
        return None
    return c2.selectbox(
        "Import profile",
        options,
        index=0,
        key=f"import_profile_{source}",
        format_func=lambda p: f"{p.name} · {_rate(p)}",
    )


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _rate(p: profiles.ProfileView) -> str:
    if not p.uses:
        return "not used yet"
    return f"{p.success_rate:.0%} of {p.uses} imports worked"


def _import_tab(actor: Actor) -> None:
    limit = get_settings().max_upload_mb
    upload = st.file_uploader(
        "File to import",
        type=["csv", "jsonl", "ndjson", "json", "yaml", "yml"],
        help=f"Labelled examples (CSV or JSONL with text and intent), a Rasa NLU file, or "
        f"conversation logs. Up to {limit} MB.",
    )
    if upload is None:
        st.info("Upload a file to see how Trellis will read it before anything is imported.")
        return
    data = upload.getvalue()
    if len(data) > limit * 1024 * 1024:  # the browser's limit is not a security boundary
        st.error(f"{upload.name} is larger than {limit} MB; nothing was imported.")
        return
    profile = _pick_profile(actor)
    spec = profile.read_spec() if profile else None
    try:
        preview = dataset.preview_file(stream=io.BytesIO(data), filename=upload.name, spec=spec)
    except TrellisError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    st.caption(
        f"Read as {preview.kind} ({preview.file_format})"
        + (f" · {'; '.join(preview.notes)}" if preview.notes else "")
    )
    st.dataframe(preview.rows, hide_index=True, width="stretch")
    _check_and_import(actor, upload.name, data, profile)


def _check_and_import(
    actor: Actor, name: str, data: bytes, profile: profiles.ProfileView | None
) -> None:
    key = hashlib.sha256(data).hexdigest()[:16] + (f"-{profile.id}" if profile else "")
    spec = profile.read_spec() if profile else None
    if st.button("Check the whole file", key=f"check_{key}", type="primary"):
        outcome = run_action(
            actor,
            lambda s: dataset.check_file(
                session=s, actor=actor, stream=io.BytesIO(data), filename=name, spec=spec
            ),
        )
        if outcome.ok:
            st.session_state["import_check"] = (key, outcome.value)
    checked = st.session_state.get("import_check")
    if not checked or checked[0] != key:
        return
    report = checked[1]
    _show_report(report)
    if report.valid_rows == 0:
        st.warning("No row of this file can be imported.")
        return
    label = (
        f"Import {_rows(report.valid_rows)}"
        if not report.rejected
        else f"Import the {report.valid_rows} valid, skip {_rows(report.rejected)}"
    )
    if st.button(label, key=f"import_{key}", type="primary"):
        _run_import(actor, name, data, profile, valid_only=bool(report.rejected))
        st.session_state.pop("import_check", None)


def _show_report(report: dataset.ImportReport) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Rows", report.total_rows)
    c2.metric("New", report.total_rows - report.rejected - report.duplicates)
    c3.metric("Duplicates (skipped)", report.duplicates)
    c4.metric("Rejected", report.rejected)
    for note in report.notes:
        st.caption(note)
    if report.rejects:
        st.warning(
            f"{_rows(report.rejected)} cannot be imported. Fix them in the file and upload "
            "it again, or import only the valid rows."
        )
        st.dataframe(
            [{"line": r.line, "reason": r.reason} for r in report.rejects],
            hide_index=True,
            width="stretch",
        )


def _run_import(
    actor: Actor, name: str, data: bytes, profile: profiles.ProfileView | None, *, valid_only: bool
) -> None:
    with st.spinner(f"Importing {name}…"):
        outcome = run_action(
            actor,
            lambda s: imports.import_upload(
                session=s,
                actor=actor,
                stream=io.BytesIO(data),
                filename=name,
                profile_id=profile.id if profile else None,
                valid_only=valid_only,
            ),
        )
    result = outcome.value
    if not outcome.ok or result is None:
        return
    if result.error:
        st.error(result.error, icon=":material/error:")
        return
    assert result.report is not None
    st.success(
        f"Imported {_rows(result.report.inserted)} from {name}: "
        f"{result.report.duplicates} duplicates skipped, {result.report.rejected} rejected.",
        icon=":material/check_circle:",
    )


def _export_tab(actor: Actor) -> None:
    with st.form("export"):
        c1, c2, c3 = st.columns(3)
        what = c1.selectbox("What", ["Examples", "Conversations"])
        fmt = c2.selectbox(
            "Format",
            ["csv", "jsonl", "rasa"],
            help="Conversations export as JSONL; Rasa holds labelled examples.",
        )
        status = c3.selectbox(
            "Status", ["any", "pending", "reviewed", "approved", "rejected", "used_in_training"]
        )
        c4, c5, c6 = st.columns(3)
        intent = c4.text_input("Intent", help="Exact intent name; empty for all.")
        source = c5.selectbox("Source", ["any", "live", "imported", "synthetic"])
        today = datetime.now(UTC).date()
        span = c6.date_input("Dates", value=(today - timedelta(days=90), today))
        go = st.form_submit_button("Prepare export", type="primary")
    if not go:
        return
    since = until = None
    if isinstance(span, tuple) and len(span) == 2:
        since = datetime.combine(span[0], time.min, tzinfo=UTC)
        until = datetime.combine(span[1] + timedelta(days=1), time.min, tzinfo=UTC)
    out = io.StringIO()
    if what == "Conversations":
        outcome = run_action(
            actor,
            lambda s: dataset.export_conversations(
                session=s, actor=actor, out=out, since=since, until=until
            ),
        )
        fmt = "jsonl"
    else:
        flt = dataset.ExampleFilter(
            status=None if status == "any" else status,
            intent=intent.strip() or None,
            source=None if source == "any" else source,
            since=since,
            until=until,
        )
        outcome = run_action(
            actor,
            lambda s: dataset.export_examples(
                session=s, actor=actor, out=out, file_format=fmt, flt=flt
            ),
        )
    if not outcome.ok:
        return
    if not outcome.value:
        st.info("Nothing matches these filters. Widen the dates or clear a filter.")
        return
    ext = {"csv": "csv", "jsonl": "jsonl", "rasa": "yml"}[fmt]
    st.download_button(
        f"Download {outcome.value} rows",
        out.getvalue(),
        file_name=f"trellis-{what.lower()}.{ext}",
        icon=":material/download:",
    )


def _stats_tab(actor: Actor) -> None:
    stats = read(actor, lambda s: dataset.dataset_stats(session=s, actor=actor))
    if not stats.total:
        st.info("No examples yet. Import a file (admins) or connect the assistant's traffic.")
        return
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Examples", stats.total)
    c2.metric("Reviewed", f"{stats.reviewed_share:.0%}")
    c3.metric(
        "Repeated messages",
        stats.duplicate_rows,
        help=f"{stats.duplicate_groups} messages occur more than once.",
    )
    c4.metric(
        "Intents with too few examples",
        len(stats.thin_intents),
        help=f"Intents need at least {dataset.MIN_EXAMPLES_PER_INTENT} labelled examples "
        "to train well.",
    )
    if stats.thin_intents:
        st.warning("Add examples to: " + ", ".join(f"{i} ({n})" for i, n in stats.thin_intents))
    if stats.per_intent:
        st.subheader("Labelled examples per intent")
        ranked_bars(stats.per_intent, label="intent", value="examples")
    c5, c6 = st.columns(2)
    c5.subheader("By source")
    c5.dataframe(
        [{"source": k, "examples": v} for k, v in stats.per_source.items()],
        hide_index=True,
        width="stretch",
    )
    c6.subheader("By status")
    c6.dataframe(
        [{"status": k, "examples": v} for k, v in stats.per_status.items()],
        hide_index=True,
        width="stretch",
    )


def _profiles_tab(actor: Actor) -> None:
    st.caption(
        "Import profiles are shared by every shop using Trellis, without saying which "
        "shop made them. Each import with a profile counts as a success (95 % of rows "
        "or more read) or a failure; the best-proven profile is suggested first. Only "
        "the shop that created a profile can change or delete it."
    )
    rows = read(actor, lambda s: profiles.list_profiles(session=s, actor=actor))
    if not rows:
        st.info(
            "No shared profiles yet. An admin can create one for the platform your files come from."
        )
    else:
        st.dataframe(
            [
                {
                    "name": p.name,
                    "source": p.source,
                    "reads": f"{p.kind} · {p.file_format}",
                    "uses": p.uses,
                    "success rate": None if p.success_rate is None else f"{p.success_rate:.0%}",
                    "last success": p.last_successful_use,
                    "yours": p.is_mine,
                }
                for p in rows
            ],
            hide_index=True,
            width="stretch",
            column_config={"last success": st.column_config.DatetimeColumn(format="YYYY-MM-DD")},
        )
    if actor.role is Role.ADMIN:
        _new_profile_form(actor)
        _own_profiles_form(actor, rows)


DELIMITERS = {"detect": None, ",": ",", ";": ";", "tab": "\t", "|": "|"}


def _profile_form(
    key: str, submit: str, p: profiles.ProfileView | None
) -> dict[str, object] | None:
    """The fields of a profile (prefilled from `p`); the submitted values, or None."""
    with st.form(key):
        c1, c2 = st.columns(2)
        name = c1.text_input("Name", value=p.name if p else "", placeholder="Shopify Inbox CSV")
        source = c2.text_input(
            "Source platform", value=p.source if p else "", placeholder="Shopify Inbox"
        )
        c3, c4, c5 = st.columns(3)
        kinds, formats, delims = ["examples", "conversations"], ["csv", "jsonl"], list(DELIMITERS)
        kind = c3.selectbox("Holds", kinds, index=kinds.index(p.kind) if p else 0)
        file_format = c4.selectbox(
            "File type", formats, index=formats.index(p.file_format) if p else 0
        )
        current = next((k for k, v in DELIMITERS.items() if p and v == p.delimiter), "detect")
        delimiter = c5.selectbox("Delimiter", delims, index=delims.index(current))
        mapping_text = st.text_area(
            "Field mapping, one per line: trellis_field = file column",
            value="\n".join(f"{k} = {v}" for k, v in p.mapping.items()) if p else "",
            placeholder="text = Message\nintent = Topic\ntimestamp = Created at",
        )
        c6, c7 = st.columns(2)
        date_format = c6.text_input(
            "Date format (strptime)",
            value=(p.date_format or "") if p else "",
            placeholder="%d/%m/%Y %H:%M",
        )
        encoding = c7.text_input(
            "Encoding", value=(p.encoding or "") if p else "", placeholder="utf-8"
        )
        cleanup = st.multiselect(
            "Clean-up", list(CLEANUP_STEPS), default=list(p.cleanup) if p else []
        )
        description = st.text_input("Description", value=p.description if p else "")
        if not st.form_submit_button(submit, type="primary"):
            return None
    return dict(
        name=name,
        source=source,
        kind=kind,
        file_format=file_format,
        delimiter=DELIMITERS[delimiter],
        mapping=_parse_mapping(mapping_text),
        date_format=date_format or None,
        encoding=encoding or None,
        cleanup=cleanup,
        description=description,
    )


def _new_profile_form(actor: Actor) -> None:
    with st.expander("Create a profile"):
        fields = _profile_form("new_profile", "Create profile", None)
    if fields is None:
        return
    outcome = run_action(
        actor,
        lambda s: profiles.create_profile(
            session=s, actor=actor, data=profiles.parse_profile_input(**fields)
        ),
    )
    if outcome.ok:
        flash(f"Created the profile '{fields['name']}'; every shop can now use it.")


def _own_profiles_form(actor: Actor, rows: list[profiles.ProfileView]) -> None:
    """Change or delete a profile this shop created (others' profiles are read-only)."""
    mine = [p for p in rows if p.is_mine]
    if not mine:
        return
    with st.expander("Change or delete one of your shop's profiles"):
        chosen = st.selectbox("Profile", mine, format_func=lambda p: p.name, key="own_profile")
        fields = _profile_form(f"edit_profile_{chosen.id}", "Save changes", chosen)
        confirm = st.checkbox(
            f"Yes, delete '{chosen.name}' for every shop", key=f"confirm_delete_{chosen.id}"
        )
        delete = st.button("Delete profile", key=f"delete_{chosen.id}", disabled=not confirm)
    if fields is not None:
        outcome = run_action(
            actor,
            lambda s: profiles.update_profile(
                session=s,
                actor=actor,
                profile_id=chosen.id,
                expected_version=chosen.version,
                data=profiles.parse_profile_input(**fields),
            ),
        )
        if outcome.ok:
            flash(f"Saved the profile '{fields['name']}'.")
    if (
        delete
        and run_action(
            actor,
            lambda s: profiles.delete_profile(
                session=s, actor=actor, profile_id=chosen.id, expected_version=chosen.version
            ),
        ).ok
    ):
        flash(f"Deleted the profile '{chosen.name}'.")


def _parse_mapping(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


if "Import" in tabs:
    with tabs["Import"]:
        _import_tab(actor)
with tabs["Export"]:
    _export_tab(actor)
with tabs["Statistics"]:
    _stats_tab(actor)
with tabs["Import profiles"]:
    _profiles_tab(actor)
