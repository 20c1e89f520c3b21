"""Fixtures for command-line tests: a migrated SQLite file with one shop, slug `bloom`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import run_cli


@pytest.fixture
def cli_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL of a fresh database holding the shop 'Bloom' (slug `bloom`)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert run_cli("init-db").exit_code == 0
    assert run_cli("tenant", "create", "--name", "Bloom").exit_code == 0
    return url
