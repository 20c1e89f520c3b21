"""Row-level security statements for PostgreSQL, used by migrations (never at run time)."""

from __future__ import annotations

TENANT_EXPR = "NULLIF(current_setting('app.tenant_id', true), '')::integer"


def enable_tenant_rls(table: str) -> list[str]:
    """Statements that restrict `table` to the shop in `app.tenant_id`, owner included."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (tenant_id = {TENANT_EXPR}) WITH CHECK (tenant_id = {TENANT_EXPR})",
    ]


def disable_tenant_rls(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


# Logging in finds a user by username before the shop is known; this policy allows exactly
# that read (SELECT only) in a transaction that turned on app.login (db.engine.login_scope).
LOGIN_LOOKUP_POLICY = (
    "CREATE POLICY login_lookup ON app_user FOR SELECT "
    "USING (current_setting('app.login', true) = 'on')"
)
