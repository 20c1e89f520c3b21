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


def enable_shared_rls(table: str) -> list[str]:
    """Every shop reads `table`; only the shop in owner_tenant_id inserts, updates or deletes."""
    owner = f"owner_tenant_id = {TENANT_EXPR}"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY shared_read ON {table} FOR SELECT USING ({TENANT_EXPR} IS NOT NULL)",
        f"CREATE POLICY owner_insert ON {table} FOR INSERT WITH CHECK ({owner})",
        f"CREATE POLICY owner_update ON {table} FOR UPDATE USING ({owner}) WITH CHECK ({owner})",
        f"CREATE POLICY owner_delete ON {table} FOR DELETE USING ({owner})",
    ]


def disable_shared_rls(table: str) -> list[str]:
    return [
        *(
            f"DROP POLICY IF EXISTS {p} ON {table}"
            for p in ("shared_read", "owner_insert", "owner_update", "owner_delete")
        ),
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def enable_counter_rls(table: str, parent: str, key: str) -> list[str]:
    """Use counters of a shared row: any signed-in shop reads and counts; only the parent's
    owner creates the counter row (deletion follows the parent by ON DELETE CASCADE)."""
    signed_in = f"{TENANT_EXPR} IS NOT NULL"
    # Identifiers come from migrations, never from user input.
    owns_parent = (
        f"EXISTS (SELECT 1 FROM {parent} p WHERE p.id = {key} "  # noqa: S608
        f"AND p.owner_tenant_id = {TENANT_EXPR})"
    )
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY counter_read ON {table} FOR SELECT USING ({signed_in})",
        f"CREATE POLICY counter_count ON {table} FOR UPDATE USING ({signed_in}) "
        f"WITH CHECK ({signed_in})",
        f"CREATE POLICY counter_create ON {table} FOR INSERT WITH CHECK ({owns_parent})",
    ]


def disable_counter_rls(table: str) -> list[str]:
    return [
        *(
            f"DROP POLICY IF EXISTS {p} ON {table}"
            for p in ("counter_read", "counter_count", "counter_create")
        ),
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]
