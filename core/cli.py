"""The `trellis` command line. Errors: one line on stderr; exit 2 bad input, 1 environment."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.access import ALL_ROLES, Actor
from core.config import get_settings
from core.errors import DatabaseUnavailable, FileRefused, SchemaOutdated, TrellisError
from core.logs import configure_logging
from db.engine import get_engine, ping, session_scope

F = TypeVar("F", bound=Callable[..., Any])
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


if __name__ == "__main__":  # pragma: no cover
    main()
