"""Schema migrations (Alembic) and the PostgreSQL grants for the app role."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from core.errors import SchemaOutdated
from db.engine import is_postgres

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest migration shipped with this code (read once: the app checks it every rerun)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(owner_engine: Engine, *, app_role: str | None = None) -> None:
    """Bring the schema to head as the owner; on PostgreSQL grant the app role its rights."""
    cfg = alembic_config()
    with owner_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    if app_role and is_postgres(owner_engine):
        grant_app_role(owner_engine, app_role)


def grant_app_role(owner_engine: Engine, role: str) -> None:
    """Data rights only: the app role owns nothing, so RLS (FORCE) always applies to it."""
    with owner_engine.begin() as conn:
        if conn.execute(text("SELECT current_user")).scalar() == role:
            log.warning("The app connects as the schema owner: RLS still applies (FORCE).")
            return
        ident = conn.dialect.identifier_preparer.quote(role)
        for stmt in (
            f"GRANT USAGE ON SCHEMA public TO {ident}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ident}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ident}",
            f"REVOKE ALL ON alembic_version FROM {ident}",
            f"GRANT SELECT ON alembic_version TO {ident}",
        ):
            conn.execute(text(stmt))


def role_of(url: str) -> str | None:
    return make_url(url).username


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutdated when the database is behind (or ahead of) this code."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise SchemaOutdated(
            f"The database is {state}, this Trellis needs revision {head}: run `trellis init-db`."
        )
