"""Rules no single feature test catches: layering and documented settings."""

from __future__ import annotations

import ast
from pathlib import Path

from core.config import env_names

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_and_db_never_import_streamlit():
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("core", "db")
        for p in (ROOT / folder).rglob("*.py")
        if "streamlit" in _imports(p)
    ]
    assert offenders == []


QUERY_BUILDERS = {"select", "insert", "update", "delete", "text", "func"}


def _query_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {
            "sqlmodel",
            "sqlalchemy",
        }:
            found.update(a.name for a in node.names if a.name in QUERY_BUILDERS)
    return found


def test_pages_do_not_query_the_database_directly():
    """Pages call core; they may name a Session type but never build a query."""
    offenders = {
        str(p.relative_to(ROOT)): _query_imports(p)
        for p in [ROOT / "app.py", *(ROOT / "pages").rglob("*.py")]
        if _query_imports(p)
    }
    assert offenders == {}


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in env_names() if f"`{name}`" not in readme]
    assert missing == []
