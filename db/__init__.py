"""Trellis storage: tables, engine and session scope, migrations."""
