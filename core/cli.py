"""The `trellis` command line. Errors: one line on stderr; exit 2 bad input, 1 environment."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import click
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.access import ALL_ROLES, Actor
from core.config import get_settings
from core.errors import DatabaseUnavailable, FileRefused, SchemaOutdated, TrellisError
from core.file_spec import ReadSpec
from core.logs import configure_logging
from db.engine import get_engine, ping, session_scope

F = TypeVar("F", bound=Callable[..., Any])
ExportFormat = Literal["csv", "jsonl", "rasa"]
log = logging.getLogger(__name__)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn Trellis errors into one clear line and the contract's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (DatabaseUnavailable, SchemaOutdated, FileRefused) as exc:
            _fail(str(exc), 1)
        except TrellisError as exc:
            _fail(str(exc), 2)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            _fail(f"Cannot use the database set by DATABASE_URL: {reason}", 1)

    return wrapper  # type: ignore[return-value]


def app_engine() -> Engine:
    """The app database, checked to be reachable and migrated."""
    from db.migrate import check_schema

    engine = get_engine()
    ping(engine)
    check_schema(engine)
    return engine


def emit(payload: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(payload, default=str) if as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Trellis: the training console for a flower shop's AI assistant.

    DATABASE_URL selects the database (default: the embedded SQLite file var/trellis.db).
    """
    configure_logging(get_settings().log_level)


@main.command("init-db")
@handle_errors
def init_db() -> None:
    """Create or upgrade the database schema (run as the owner on PostgreSQL)."""
    from db.migrate import role_of, upgrade

    settings = get_settings()
    owner_url = settings.migration_database_url or settings.database_url
    owner = get_engine(owner_url)
    ping(owner)
    upgrade(owner, app_role=role_of(settings.database_url))
    click.echo("Database schema is up to date.", err=True)


@main.command()
@click.option("--if-empty", is_flag=True, help="Do nothing (but show logins) if shops exist.")
@handle_errors
def demo(if_empty: bool) -> None:
    """Create the demo workspace: two shops, their users and 60 days of traffic."""
    from core import demo as demo_mod

    engine = app_engine()
    with session_scope(None, engine=engine) as session:
        has_data = demo_mod.database_has_shops(session=session)
        has_demo = demo_mod.demo_exists(session=session)
    if has_data and not if_empty:
        raise TrellisError("The database already has shops; the demo goes only into an empty one.")
    if not has_data:
        click.echo("Creating the demo workspace (a few seconds)…", err=True)
        summary = demo_mod.create_demo_workspace(engine=engine)
        click.echo(summary.describe(), err=True)
        has_demo = True
    if has_demo:
        click.echo(demo_mod.credentials_text(), err=True)


@main.group()
def tenant() -> None:
    """Shops (tenants)."""


@tenant.command("create")
@click.option("--name", required=True, help="The shop's name, e.g. 'Bloom & Co.'.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def tenant_create(name: str, as_json: bool) -> None:
    """Create a shop; prints its slug (used by --tenant elsewhere)."""
    from core.tenants import create_tenant

    with session_scope(None, engine=app_engine()) as session:
        created = create_tenant(session=session, name=name)
        payload = {"slug": created.slug, "id": created.id}
    emit(payload, as_json, f"Created shop '{name}' with slug {payload['slug']}.")


@tenant.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def tenant_list(as_json: bool) -> None:
    """List the shops."""
    from core.tenants import list_tenants

    with session_scope(None, engine=app_engine()) as session:
        rows = [{"slug": t.slug, "id": t.id, "name": t.name} for t in list_tenants(session=session)]
    lines = "\n".join(f"{r['slug']}\t{r['name']}" for r in rows) or "No shops yet."
    emit({"tenants": rows}, as_json, lines)


def tenant_actor(slug: str) -> tuple[Engine, Actor]:
    """The engine and the CLI's admin actor inside the shop with this slug."""
    from core.tenants import get_by_slug

    engine = app_engine()
    with session_scope(None, engine=engine) as session:
        shop = get_by_slug(session=session, slug=slug)
        assert shop.id is not None
        return engine, Actor.cli(shop.id, shop.name)


@main.group()
def user() -> None:
    """Users of a shop."""


@user.command("create")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice([r.value for r in ALL_ROLES]), required=True)
@click.option("--display-name", default="", help="Name shown in the app.")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from stdin.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def user_create(
    slug: str, username: str, role: str, display_name: str, password_stdin: bool, as_json: bool
) -> None:
    """Create a user; the password is read from standard input (never an argument)."""
    from core.users import create_user, parse_user_create

    password = sys.stdin.readline().rstrip("\r\n")
    data = parse_user_create(
        username=username, role=role, password=password, display_name=display_name
    )
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        created = create_user(session=session, actor=actor, data=data)
    payload = {"username": created.username, "role": created.role.value, "tenant": slug}
    emit(payload, as_json, f"Created {created.role.value} '{created.username}' in {slug}.")


def check_size(path: Path) -> None:
    """Refuse a file over the upload limit before reading it."""
    limit = get_settings().max_upload_mb
    if path.stat().st_size > limit * 1024 * 1024:
        raise FileRefused(f"{path.name} is larger than {limit} MB (TRELLIS_MAX_UPLOAD_MB).")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def ingest(file: Path, slug: str, as_json: bool) -> None:
    """Record the assistant's interactions from a JSONL file (record_interaction's keys)."""
    from core.ingest import read_interactions, record_interactions

    check_size(file)
    try:
        with file.open(encoding="utf-8-sig") as lines:
            items = read_interactions(lines)
    except UnicodeDecodeError as exc:
        raise FileRefused(f"{file.name} is not UTF-8 text; nothing recorded.") from exc
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        count = record_interactions(session=session, actor=actor, items=items)
    emit({"recorded": count}, as_json, f"Recorded {count} interactions in {slug}.")


FORMAT_SPECS = {
    "csv": ReadSpec(kind="examples", file_format="csv"),
    "jsonl": ReadSpec(kind="examples", file_format="jsonl"),
    "rasa": ReadSpec(kind="examples", file_format="rasa"),
}


def _read_spec(file: Path, fmt: str | None) -> ReadSpec | None:
    """--format as a ReadSpec; conversations take the file type from the extension."""
    if fmt is None:
        return None
    if fmt == "conversations":
        jsonl = file.suffix.lower() in {".jsonl", ".ndjson", ".json"}
        return ReadSpec(kind="conversations", file_format="jsonl" if jsonl else "csv")
    return FORMAT_SPECS[fmt]


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "rasa", "conversations"]),
    help="What the file holds (default: detected from its name and first lines).",
)
@click.option("--profile", "profile_name", help="Read it with this import profile.")
@click.option("--valid-only", is_flag=True, help="Import the valid rows when some are bad.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def import_cmd(
    file: Path,
    slug: str,
    fmt: str | None,
    profile_name: str | None,
    valid_only: bool,
    as_json: bool,
) -> None:
    """Import labelled examples, a Rasa NLU file or conversation logs (all or nothing)."""
    from core import imports, profiles

    check_size(file)
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        profile_id = None
        if profile_name:
            profile_id = profiles.get_profile_by_name(
                session=session, actor=actor, name=profile_name
            ).id
        with (
            file.open("rb") as stream,
            click.progressbar(
                length=file.stat().st_size, label=f"Importing {file.name}", file=sys.stderr
            ) as bar,
        ):
            outcome = imports.import_upload(
                session=session,
                actor=actor,
                stream=stream,
                filename=file.name,
                profile_id=profile_id,
                spec=_read_spec(file, fmt),
                valid_only=valid_only,
                progress=lambda done: bar.update(done - bar.pos),
            )
    if outcome.error:
        _fail(_refusal(outcome), 1)
    report = outcome.report
    assert report is not None
    emit(
        outcome.as_json(),
        as_json,
        f"Imported {report.inserted} rows into {slug}; {report.duplicates} duplicates skipped, "
        f"{report.rejected} rejected.",
    )


def _refusal(outcome: Any) -> str:
    lines = [outcome.error]
    if outcome.report is not None:
        lines += [f"  line {r.line}: {r.reason}" for r in outcome.report.rejects[:20]]
        if outcome.report.rejected > 20:
            lines.append(f"  … and {outcome.report.rejected - 20} more rejected rows")
        lines.append("Nothing was imported; --valid-only imports the valid rows.")
    return "\n".join(lines)


@main.command("export")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl", "rasa"]), default="csv", show_default=True
)
@click.option("--conversations", is_flag=True, help="Export conversation logs (JSONL).")
@click.option("--status", help="Only examples with this status.")
@click.option("--intent", help="Only examples labelled with this intent.")
@click.option("--source", help="Only examples from this source (live, imported, synthetic).")
@click.option("--since", type=click.DateTime(), help="From this date (UTC).")
@click.option("--until", type=click.DateTime(), help="Before this date (UTC).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: standard output).",
)
@handle_errors
def export_cmd(
    slug: str,
    fmt: str,
    conversations: bool,
    status: str | None,
    intent: str | None,
    source: str | None,
    since: datetime | None,
    until: datetime | None,
    out: Path | None,
) -> None:
    """Export examples (CSV, JSONL, Rasa YAML) or conversation logs (JSONL)."""
    from core import dataset

    since_utc, until_utc = (d.replace(tzinfo=UTC) if d else None for d in (since, until))
    engine, actor = tenant_actor(slug)
    target = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        with session_scope(actor, engine=engine) as session:
            if conversations:
                count = dataset.export_conversations(
                    session=session, actor=actor, out=target, since=since_utc, until=until_utc
                )
            else:
                flt = dataset.ExampleFilter(
                    status=status, intent=intent, source=source, since=since_utc, until=until_utc
                )
                count = dataset.export_examples(
                    session=session,
                    actor=actor,
                    out=target,
                    flt=flt,
                    file_format=cast(ExportFormat, fmt),
                )
    finally:
        if out:
            target.close()
    click.echo(f"Exported {count} rows.", err=True)


@main.command()
@click.argument("text")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--top", "k", default=5, show_default=True, help="How many intents to list.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def predict(text: str, slug: str, k: int, as_json: bool) -> None:
    """The serving model's intents for one message."""
    from core import registry

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        found = registry.predict(session=session, actor=actor, text=text, k=k)
    if found is None:
        raise TrellisError(f"No model serves in {slug} yet: train one with `trellis train`.")
    payload = {
        "intent": found.intent,
        "confidence": round(found.confidence, 4),
        "top": [[i, round(p, 4)] for i, p in found.top],
        "model_version": found.model_version,
    }
    lines = "\n".join(f"{p:6.1%}  {i}" for i, p in found.top)
    emit(payload, as_json, f"{lines}\n(model version {found.model_version})")


@main.group()
def models() -> None:
    """A shop's trained model versions: list, activate, roll back."""


def _version_json(view: Any) -> dict[str, Any]:
    return {
        "version": view.version,
        "active": view.is_active,
        "created_at": view.created_at,
        "size_bytes": view.size_bytes,
        "features": view.features,
        "macro_f1": view.metrics.get("macro_f1"),
        "accuracy": view.metrics.get("accuracy"),
    }


@models.command("list")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def models_list(slug: str, as_json: bool) -> None:
    """Every model version of the shop, newest first; * marks the serving one."""
    from core import registry

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        rows = [_version_json(v) for v in registry.list_versions(session=session, actor=actor)]
    text = (
        "\n".join(
            f"{'*' if r['active'] else ' '} v{r['version']}  macro-F1 {r['macro_f1']}  "
            f"{r['size_bytes']:,} bytes  {r['created_at']:%Y-%m-%d %H:%M}"
            for r in rows
        )
        or "No model versions yet."
    )
    emit({"models": rows}, as_json, text)


@models.command("activate")
@click.argument("version", type=int)
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--reason", help="Why (kept in the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def models_activate(version: int, slug: str, reason: str | None, as_json: bool) -> None:
    """Serve model VERSION from now on."""
    from core import registry

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        view = registry.activate(session=session, actor=actor, version=version, reason=reason)
    emit(_version_json(view), as_json, f"Model v{view.version} now serves {slug}.")


@models.command("rollback")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--reason", help="Why (kept in the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def models_rollback(slug: str, reason: str | None, as_json: bool) -> None:
    """Serve again the model that served before the current one."""
    from core import registry

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        view = registry.rollback(session=session, actor=actor, reason=reason)
    emit(_version_json(view), as_json, f"Rolled back: model v{view.version} serves {slug}.")


def follow_run(engine: Engine, actor: Actor, run_id: int) -> Any:
    """Execute a queued run in the foreground with a progress bar on stderr; its RunView."""
    from core import training

    worker = training.launch_run(engine=engine, actor=actor, run_id=run_id)
    # The same progress every other session sees, read back from the database.
    with click.progressbar(length=100, label="queued", file=sys.stderr) as bar:
        while worker.is_alive():
            with session_scope(actor, engine=engine) as session:
                seen = training.get_run(session=session, actor=actor, run_id=run_id)
            bar.label = f"Run {run_id}: {seen.stage.replace('_', ' '):<15}"
            bar.update(max(0, round(seen.progress * 100) - bar.pos))
            worker.join(0.2)
        with session_scope(actor, engine=engine) as session:
            run = training.get_run(session=session, actor=actor, run_id=run_id)
        bar.label = f"Run {run_id}: {run.stage.replace('_', ' '):<15}"
        bar.update(100 - bar.pos)
    return run


@main.command()
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def train(slug: str, as_json: bool) -> None:
    """Train a model now (in the foreground); the deploy gate decides whether it serves."""
    from core import training

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        run_id = training.start_run(session=session, actor=actor, trigger="cli").id
    run = follow_run(engine, actor, run_id)
    metrics, baseline, gate = run.metrics or {}, run.baseline_metrics or {}, run.gate or {}
    reason = run.error if run.status == "failed" else "; ".join(gate.get("reasons", []))
    payload = {
        "run_id": run.id,
        "status": run.status,
        "deployed": run.deployed,
        "accuracy": metrics.get("accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "baseline_macro_f1": baseline.get("macro_f1"),
        "duration_s": run.duration_s,
        "reason": reason,
    }
    outcome = f"deployed as v{run.model_version}" if run.deployed else "not deployed"
    emit(payload, as_json, f"Run {run.id} {run.status}, {outcome}: {reason}")
    if run.status == "failed":
        sys.exit(1)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def evaluate(file: Path, slug: str, as_json: bool) -> None:
    """Score the serving model on a labelled CSV/JSONL file (text, intent); imports nothing."""
    from core.evaluate import evaluate_file

    check_size(file)
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session, file.open("rb") as stream:
        result = evaluate_file(session=session, actor=actor, stream=stream, filename=file.name)
    lines = [
        f"Model v{result.model_version} on {result.n:,} examples of {file.name}: "
        f"accuracy {result.accuracy:.1%}, macro-F1 {result.macro_f1:.3f}, ECE {result.ece:.3f}"
        + (f"; {result.skipped:,} rows skipped (no text or intent)" if result.skipped else "")
        + ".",
    ]
    if result.unknown_intents:
        shown = ", ".join(result.unknown_intents[:10])
        more = ", …" if len(result.unknown_intents) > 10 else ""
        lines.append(f"Intents the model does not know (counted as errors): {shown}{more}")
    lines.append("Weakest intents:    F1  precision  recall  support")
    lines += [
        f"  {intent:<30} {row['f1']:.3f}     {row['precision']:.3f}   {row['recall']:.3f}"
        f"  {row['support']:>7,}"
        for intent, row in result.weakest(10)
    ]
    emit(result.as_json(), as_json, "\n".join(lines))


@main.group()
def review() -> None:
    """The review queue: what needs a person, and corrections."""


def _item_json(item: Any) -> dict[str, Any]:
    return {
        "example_id": item.example_id,
        "version": item.version,
        "text": item.text,
        "predicted_intent": item.predicted,
        "intent": item.label,
        "confidence": item.confidence,
        "top": [[intent, p] for intent, p in item.top],
        "reasons": [r.value for r in item.reasons],
        "group_size": item.group_size,
        "priority": round(item.priority, 4),
        "ai_response": item.ai_response,
        "suggested_intent": item.issue_suggestion,
        "created_at": item.created_at.isoformat(),
    }


@review.command("next")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option(
    "--reason",
    type=click.Choice(["low_confidence", "low_margin", "escalated", "label_issue"]),
    help="Only items waiting for this reason.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def review_next(slug: str, reason: str | None, as_json: bool) -> None:
    """The most impactful item of the review queue."""
    from core import review as review_mod

    engine, actor = tenant_actor(slug)
    filters = review_mod.QueueFilter(reason=review_mod.Reason(reason) if reason else None)
    with session_scope(actor, engine=engine) as session:
        page = review_mod.queue(session=session, actor=actor, filters=filters, page_size=1)
    item = page.items[0] if page.items else None
    waiting = {
        "groups": page.groups,
        "messages": page.messages,
        "by_reason": {r.value: n for r, n in page.by_reason.items()},
    }
    if item is None:
        text = "The review queue is empty: nothing needs a person right now."
    else:
        top = ", ".join(f"{intent} {p:.0%}" for intent, p in item.top) or "no prediction"
        text = (
            f"#{item.example_id} (×{item.group_size}, {', '.join(r.value for r in item.reasons)})"
            f": {item.text}\n  predicted: {top}\n  "
            f"{page.groups:,} items ({page.messages:,} messages) wait for review."
        )
    emit({"item": _item_json(item) if item else None, "waiting": waiting}, as_json, text)


@review.command("correct")
@click.argument("example_id", type=int)
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--intent", help="The right intent (default: confirm the one it has).")
@click.option("--create-intent", is_flag=True, help="Create the intent if the shop lacks it.")
@click.option("--version", type=int, help="Refuse if the example changed since this version.")
@click.option("--group", is_flag=True, help="Also correct its waiting near-identical messages.")
@click.option("--note", help="Why (kept with the correction).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def review_correct(
    example_id: int,
    slug: str,
    intent: str | None,
    create_intent: bool,
    version: int | None,
    group: bool,
    note: str | None,
    as_json: bool,
) -> None:
    """Correct one example: confirm its intent, or give it the right one (--intent)."""
    from core import review as review_mod

    engine, actor = tenant_actor(slug)
    action = review_mod.Action.CHANGE_INTENT if intent else review_mod.Action.CORRECT
    with session_scope(actor, engine=engine) as session:
        result = review_mod.act(
            session=session,
            actor=actor,
            example_id=example_id,
            action=action,
            version=version,
            intent=intent,
            note=note,
            group=group,
            create_intent=create_intent,
            launch_retrain=False,
        )
        item = review_mod.get_item(session=session, actor=actor, example_id=example_id)
    payload: dict[str, Any] = {
        "example_id": example_id,
        "intent": item.label,
        "version": item.version,
        "changed": result.count,
        "batch_id": result.batch_id,
        "retrain_run_id": result.retrain_run.id if result.retrain_run else None,
    }
    text = f"Example {example_id} is now {item.label} ({result.count} changed; undo with "
    text += f"`trellis review undo {result.batch_id} --tenant {slug}`)."
    if result.retrain_run is not None:
        click.echo(
            f"Enough new reviews since the last run: retraining now (run {result.retrain_run.id}).",
            err=True,
        )
        run = follow_run(engine, actor, result.retrain_run.id)
        payload["retrain_status"], payload["retrain_deployed"] = run.status, run.deployed
    emit(payload, as_json, text)


@review.command("undo")
@click.argument("batch_id")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def review_undo(batch_id: str, slug: str, as_json: bool) -> None:
    """Undo one review action or bulk relabel: every example exactly as it was."""
    from core import review as review_mod

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        restored = review_mod.undo_batch(session=session, actor=actor, batch_id=batch_id)
    emit({"restored": restored}, as_json, f"Restored {restored:,} examples as they were.")


@main.command("label-issues")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--limit", default=100, show_default=True, help="How many to list.")
@click.option("--detect", is_flag=True, help="Run the detection first (else: the last one's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def label_issues_cmd(slug: str, limit: int, detect: bool, as_json: bool) -> None:
    """Examples whose label is probably wrong, likeliest first, with the suggested intent."""
    from core import label_issues

    engine, actor = tenant_actor(slug)
    if detect:
        with session_scope(actor, engine=engine) as session:
            summary = label_issues.detect(session=session, actor=actor)
        click.echo(
            summary.reason
            or f"Checked {summary.judged:,} labelled examples: {summary.flagged:,} flagged.",
            err=True,
        )
    with session_scope(actor, engine=engine) as session:
        found = label_issues.list_issues(session=session, actor=actor, limit=limit)
    rows = [
        {
            "example_id": i.example_id,
            "text": i.text,
            "given_intent": i.given_intent,
            "suggested_intent": i.suggested_intent,
            "score": round(i.score, 4),
        }
        for i in found
    ]
    lines = [
        f"{i.score:.2f}  #{i.example_id}  {i.given_intent} -> {i.suggested_intent}  {i.text[:70]}"
        for i in found
    ] or ["No label issues flagged (run with --detect to look now)."]
    emit({"issues": rows}, as_json, "\n".join(lines))


@main.command("gaps")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--refresh", is_flag=True, help="Cluster again now (else: the open gaps found last).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def gaps_cmd(slug: str, refresh: bool, as_json: bool) -> None:
    """Knowledge gaps: escalated and uncertain messages clustered by meaning."""
    from core import gaps

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        if refresh or not gaps.list_gaps(session=session, actor=actor, status="open"):
            found = gaps.find_gaps(session=session, actor=actor)
        else:
            found = gaps.list_gaps(session=session, actor=actor)
    rows = [
        {
            "id": g.id,
            "label": g.label,
            "size": g.size,
            "severity": round(g.severity, 3),
            "escalation_rate": round(g.escalation_rate, 4),
            "examples": list(g.representatives),
            "nearest_intents": [[i, round(p, 4)] for i, p in g.nearest_intents],
        }
        for g in found
    ]
    lines = [
        f"{r['severity']:>7.1f}  {r['size']:>5} messages  {r['escalation_rate']:.0%} escalated"
        f"  {r['label']}"
        for r in rows
    ] or ["No knowledge gaps: no cluster of escalated or uncertain messages."]
    emit({"gaps": rows}, as_json, "\n".join(lines))


def _metrics_text(shop: str, days: str, found: Any, top: Any, wrong: Any) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    confidence = "n/a" if found.avg_confidence is None else f"{found.avg_confidence:.3f}"
    lines = [
        f"{shop}, {days} (UTC, both days included):",
        f"  Messages          {found.total_messages:,}",
        f"  AI-resolved       {found.ai_resolved:,}",
        f"  Escalated         {found.escalated:,} ({pct(found.escalation_rate)})",
        f"  Avg confidence    {confidence}",
        f"  Intent accuracy   {pct(found.intent_accuracy)}",
        f"  Correction rate   {pct(found.correction_rate)}",
        "Top intents:",
        *([f"  {n:>7,}  {intent}" for intent, n in top] or ["  none"]),
        "Top misclassified (true -> predicted):",
        *([f"  {n:>7,}  {t} -> {p}" for t, p, n in wrong] or ["  none"]),
    ]
    return "\n".join(lines)


@main.command()
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day (UTC).")
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d"]),
    required=True,
    help="Last day (UTC), included: the whole day counts.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def metrics(slug: str, since: datetime, until: datetime, as_json: bool) -> None:
    """Headline metrics, top intents and top misclassified pairs of messages written from
    --since through --until (whole UTC days, both included); rates are 0-1."""
    from datetime import timedelta

    from core import analytics
    from core.errors import InvalidInput

    start, end = since.replace(tzinfo=UTC), until.replace(tzinfo=UTC) + timedelta(days=1)
    if end <= start:
        raise InvalidInput("--until must not be before --since.")
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        found = analytics.headline(session=session, actor=actor, since=start, until=end)
        top = analytics.top_intents(session=session, actor=actor, since=start, until=end)
        wrong = analytics.top_misclassified(session=session, actor=actor, since=start, until=end)
    values = {name: getattr(found, name) for name in analytics.METRICS}
    payload: dict[str, Any] = {
        name: round(v, 4) if isinstance(v, float) else v for name, v in values.items()
    } | {
        "top_intents": {intent: n for intent, n in top},
        "top_misclassified": [[t, p, n] for t, p, n in wrong],
    }
    days = f"{since:%Y-%m-%d} to {until:%Y-%m-%d}"
    emit(payload, as_json, _metrics_text(actor.tenant_name or slug, days, found, top, wrong))


@main.command("snapshot")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option(
    "--period", type=click.Choice(["hourly", "daily", "weekly", "monthly"]), required=True
)
@click.option(
    "--at",
    "at_text",
    help="Snapshot the last complete period before this ISO date-time (default: now; UTC "
    "unless it carries an offset).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def snapshot_cmd(slug: str, period: str, at_text: str | None, as_json: bool) -> None:
    """Snapshot the headline metrics of the last complete period (once; safe from cron)."""
    from core import snapshots
    from core.errors import InvalidInput

    try:
        at = snapshots.as_utc(datetime.fromisoformat(at_text)) if at_text else None
    except ValueError:
        raise InvalidInput(f"--at '{at_text}' is not an ISO date-time.") from None
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        view, created = snapshots.take_snapshot(session=session, actor=actor, period=period, at=at)
    payload = {
        "period": view.period.value,
        "period_start": view.period_start.isoformat(),
        **view.metrics(),
        "created": created,
    }
    state = "taken" if created else "already taken"
    text = (
        f"{view.period.value.title()} snapshot of {view.period_start:%Y-%m-%d %H:%M} UTC {state}: "
        f"{view.total_messages:,} messages, {view.escalated:,} escalated."
    )
    emit(payload, as_json, text)


def _alert_json(alert: Any) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind.value,
        "value": alert.value,
        "threshold": alert.threshold,
        "raised_at": alert.raised_at.isoformat(),
        "message": alert.message,
        "advice": alert.advice,
    }


@main.command("alerts")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--evaluate", is_flag=True, help="Measure the last 7 days first: raise and clear.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def alerts_cmd(slug: str, evaluate: bool, as_json: bool) -> None:
    """The shop's open alerts, with what to do (--evaluate: check the thresholds now)."""
    from core import alerts

    engine, actor = tenant_actor(slug)
    payload: dict[str, Any] = {}
    if evaluate:
        with session_scope(actor, engine=engine) as session:
            checks = alerts.evaluate_alerts(session=session, actor=actor)
        payload["checks"] = [
            {
                "kind": c.kind.value,
                "value": c.value,
                "threshold": c.threshold,
                "volume": c.volume,
                "outcome": c.outcome.value,
                "note": c.note,
            }
            for c in checks
        ]
        if not as_json:
            for c in checks:
                click.echo(
                    f"{c.kind.value}: {c.note or c.outcome.value.replace('_', ' ')}", err=True
                )
    with session_scope(actor, engine=engine) as session:
        found = alerts.open_alerts(session=session, actor=actor)
    payload["alerts"] = [_alert_json(a) for a in found]
    text = "\n".join(f"{a.label}: {a.message}\n  What to do: {a.advice}" for a in found)
    emit(payload, as_json, text or "No open alerts.")


# --------------------------------------------------------------------------------------------
# Florist studio: designs the generator reports, prompts it renders
# --------------------------------------------------------------------------------------------


@main.group()
def design() -> None:
    """Designs the image generator made: it reports them here."""


@design.command("record")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def design_record(file: Path, slug: str, as_json: bool) -> None:
    """Record designs from a JSONL file (record_design's keys), all or nothing; a design id
    recorded before adds nothing. Bad lines are listed by number and exit 2."""
    from core.designs import read_designs, record_designs
    from core.errors import InvalidInput

    check_size(file)
    try:
        with file.open(encoding="utf-8-sig") as lines:
            numbered = read_designs(lines)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{file.name} is not UTF-8 text; nothing was recorded.") from exc
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        summary = record_designs(
            session=session,
            actor=actor,
            items=[item for _line, item in numbered],
            lines=[line for line, _item in numbered],
        )
    emit(
        {"added": summary.added, "already_known": summary.known},
        as_json,
        f"Recorded {summary.added} new designs in {slug}; {summary.known} were known already.",
    )


@main.group()
def prompt() -> None:
    """Prompt templates: render one for the generator, check a template's text."""


def _assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    from core.errors import InvalidInput

    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--set {pair!r}: write NAME=VALUE, e.g. --set occasion=wedding.")
        values[name.strip()] = value
    return values


@prompt.command("render")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--template", "name", required=True, help="The prompt template's name.")
@click.option(
    "--set",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A variable's value (repeatable); the others come from the style and the catalog.",
)
@click.option("--style", help="The style to take values from (default: the shop's most used).")
@click.option("--version", "number", type=int, help="This version instead of the production one.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def prompt_render(
    slug: str,
    name: str,
    pairs: tuple[str, ...],
    style: str | None,
    number: int | None,
    as_json: bool,
) -> None:
    """Print the prompt the production version of a template renders to."""
    from core.errors import InvalidInput
    from core.templates import MissingValues, render_prompt

    values = _assignments(pairs)
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        try:
            found = render_prompt(
                session=session,
                actor=actor,
                template=name,
                values=values,
                style=style,
                number=number,
            )
        except MissingValues as exc:
            hint = " ".join(f"--set {n}=…" for n in exc.names)
            raise InvalidInput(
                f"{exc} Give {'it' if len(exc.names) == 1 else 'them'}: {hint}"
            ) from exc
    payload = {
        "prompt": found.text,
        "template": found.template_name,
        "version": found.number,
        "style": found.style_name,
        "values": found.values,
        "origins": found.origins,
    }
    emit(payload, as_json, found.text)


@prompt.command("check")
@click.option(
    "--text", "text", required=True, help="The template's text, e.g. 'A {style} bouquet'."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def prompt_check(text: str, as_json: bool) -> None:
    """Check a prompt template's text against the standard studio variables: exit 0 when it
    is valid, 2 with each problem and its position on stderr when not."""
    from core.placeholders import check
    from core.templates import STANDARD_NAMES

    problems = check(text, STANDARD_NAMES)
    if not problems:
        emit({"valid": True, "problems": []}, as_json, "valid")
        return
    if as_json:
        rows = [
            {"message": p.message, "line": p.line, "column": p.column, "offset": p.offset}
            for p in problems
        ]
        click.echo(json.dumps({"valid": False, "problems": rows}))
    for p in problems:
        click.echo(f"Error: {p.message}", err=True)
    sys.exit(2)


# --------------------------------------------------------------------------------------------
# Response templates: create one, suggest the ones that fit a customer message
# --------------------------------------------------------------------------------------------


@main.group("template")
def template_group() -> None:
    """Response templates (the studio's pages edit them; versions and production as there)."""


@template_group.command("create")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--name", required=True, help="The template's name, unique in the shop.")
@click.option(
    "--content",
    "body",
    required=True,
    help="The response text; each {name} in it is a required text variable unless "
    "--variables declares it otherwise.",
)
@click.option(
    "--intent",
    "intents",
    required=True,
    multiple=True,
    help="An intent this template answers (repeatable).",
)
@click.option("--trigger", "phrases", multiple=True, help="A trigger phrase (repeatable).")
@click.option("--category", default="General", show_default=True, help="The template's category.")
@click.option("--description", default="", help="What the template is for.")
@click.option(
    "--variables",
    "variables_json",
    help='Typed variables as a JSON list, e.g. \'[{"name": "day", "type": "date"}]\' '
    "(types text, select with options, date, number; required, default).",
)
@click.option("--draft", is_flag=True, help="Leave version 1 a draft instead of production.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def template_create(
    slug: str,
    name: str,
    body: str,
    intents: tuple[str, ...],
    phrases: tuple[str, ...],
    category: str,
    description: str,
    variables_json: str | None,
    draft: bool,
    as_json: bool,
) -> None:
    """Create a response template; its version 1 serves suggestions at once (production)
    unless --draft."""
    from core.errors import InvalidInput
    from core.responses import create_response, text_variables

    try:
        declared = json.loads(variables_json) if variables_json else None
    except ValueError as exc:
        raise InvalidInput(f"--variables is not valid JSON: {exc}.") from None
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        view = create_response(
            session=session,
            actor=actor,
            name=name,
            text=body,
            category=category,
            variables=text_variables(body, declared),
            phrases=phrases,
            intents=intents,
            description=description,
            note="Created from the command line",
            production=not draft,
        )
    payload = {
        "id": view.id,
        "name": view.name,
        "category": view.content["category"],
        "version": view.latest_number,
        "production": view.production_number,
        "variables": [v["name"] for v in view.content["variables"]],
        "triggers": view.content["triggers"],
    }
    state = "a draft" if view.production_number is None else "production"
    emit(payload, as_json, f"Created the response template {view.name!r}: version 1, {state}.")


@main.command("suggest")
@click.argument("text")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option(
    "--top", "k", default=3, show_default=True, type=click.IntRange(1, 50), help="How many."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def suggest_cmd(text: str, slug: str, k: int, as_json: bool) -> None:
    """The response templates that fit a customer message, best first, with a score (0-1)
    and the reason: the serving model's intent, trigger phrases, text similarity."""
    from core import registry
    from core.templates import suggest

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        found = suggest(session=session, actor=actor, text=text, k=k)
        serving = registry.serving_version(session=session, actor=actor)
    if serving is None:
        click.echo(
            f"Note: no model serves in {slug} yet, so intents do not count (`trellis train`).",
            err=True,
        )
    payload = {
        "suggestions": [
            {"template": s.template, "score": s.score, "reason": s.reason} for s in found
        ]
    }
    lines = "\n".join(f"{s.score:.2f}  {s.template}  ({s.reason})" for s in found)
    emit(payload, as_json, lines or "No response template fits this message.")


# --------------------------------------------------------------------------------------------
# Response templates in use: the assistant reports uses and outcomes; A/B tests' results
# --------------------------------------------------------------------------------------------


@template_group.group("use")
def template_use() -> None:
    """Uses of response templates the assistant reports, and how they ended."""


@template_use.command("record")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def template_use_record(file: Path, slug: str, as_json: bool) -> None:
    """Record uses and outcomes from a JSONL file, all or nothing: a use names its template,
    an outcome line only a use_id. A use id recorded before adds nothing. Bad lines are listed
    by number and exit 2."""
    from core.errors import InvalidInput
    from core.template_usage import read_reports, record_reports

    check_size(file)
    try:
        with file.open(encoding="utf-8-sig") as lines:
            numbered = read_reports(lines)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{file.name} is not UTF-8 text; nothing was recorded.") from exc
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        summary = record_reports(
            session=session,
            actor=actor,
            items=[item for _line, item in numbered],
            lines=[line for line, _item in numbered],
        )
    payload = {
        "added": summary.added,
        "already_known": summary.known,
        "outcomes": summary.outcomes,
        "stopped": list(summary.stopped),
    }
    text = (
        f"Recorded {summary.added} new uses in {slug} ({summary.known} known already) and "
        f"{summary.outcomes} outcomes."
    )
    if summary.stopped:
        text += f" The guardrail stopped A/B test {', '.join(map(str, summary.stopped))}."
    emit(payload, as_json, text)


@main.group("experiment")
def experiment_group() -> None:
    """A/B tests of response templates."""


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _arm_json(arm: Any) -> dict[str, Any]:
    c = arm.counts
    return {
        "version": arm.version,
        "uses": c.uses,
        "outcomes": c.reported,
        "resolved": c.resolved,
        "escalated": c.escalated,
        "resolution_rate": _rate(c.resolution_rate),
        "escalation_rate": _rate(c.escalation_rate),
        "avg_rating": _rate(c.avg_rating),
        "needed": arm.needed,
    }


def _experiment_json(found: Any) -> dict[str, Any]:
    view, test, rail = found.experiment, found.resolution, found.guardrail
    return {
        "id": view.id,
        "template": view.template_name,
        "status": view.status.value,
        "started_at": view.started_at.isoformat(),
        "split": view.split,
        "min_effect": view.min_effect,
        "alpha": view.alpha,
        "power": view.power,
        "a": _arm_json(found.a),
        "b": _arm_json(found.b),
        "test": None
        if test is None
        else {
            "method": test.method,
            "difference": round(test.difference, 4),
            "p_value": round(test.p_value, 6),
            "ci": [round(test.ci_low, 4), round(test.ci_high, 4)],
            "significant": test.significant,
        },
        "enough_data": found.enough_data,
        "leader": found.leader,
        "guardrail": {
            "checked": rail.checked,
            "method": rail.method,
            "p_value": None if rail.p_value is None else round(rail.p_value, 6),
            "tripped": rail.tripped,
        },
    }


def _experiment_text(found: Any) -> str:
    view, test, rail = found.experiment, found.resolution, found.guardrail

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    lines = [
        f"#{view.id} {view.template_name}: A = version {view.version_a}, B = version "
        f"{view.version_b} ({view.split:.0%} of customers), since {view.started_at:%Y-%m-%d}"
    ]
    for arm in (found.a, found.b):
        c = arm.counts
        lines.append(
            f"  {arm.variant}: {c.uses:,} uses, {c.reported:,}/{arm.needed:,} outcomes needed, "
            f"resolved {pct(c.resolution_rate)}, escalated {pct(c.escalation_rate)}"
        )
    if test is None:
        lines.append("  No outcomes in both arms yet.")
    else:
        verdict = "significant" if test.significant else "not significant"
        lines.append(
            f"  B - A: {test.difference:+.1%} ({test.confidence:.0%} CI {test.ci_low:+.1%} to "
            f"{test.ci_high:+.1%}), {test.method} p = {test.p_value:.4f}: {verdict}"
        )
    guard = f"p = {rail.p_value:.4f}" if rail.checked else "waiting for outcomes"
    lines.append(f"  Guardrail on escalations: {'TRIPPED' if rail.tripped else 'ok'} ({guard})")
    return "\n".join(lines)


@experiment_group.command("status")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def experiment_status(slug: str, as_json: bool) -> None:
    """The results of the shop's running A/B tests: per variant, the test of the difference
    in resolution rate, the outcomes each arm needs, and the escalation guardrail."""
    from core.experiments import running_results

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        found = running_results(session=session, actor=actor)
    text = "\n".join(_experiment_text(f) for f in found) or "No A/B test is running."
    emit({"experiments": [_experiment_json(f) for f in found]}, as_json, text)


# Command groups kept in their own modules register themselves on `main` when imported.
from core import cli_memory  # noqa: E402, F401

if __name__ == "__main__":  # pragma: no cover
    main()
