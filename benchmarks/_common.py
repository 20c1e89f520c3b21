"""Shared helpers for benchmarks: fresh databases and measurement in child processes."""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import queue as queue_module
import resource
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
BANKING77 = ROOT.parent / "shared" / "datasets" / "banking77"
sys.path.insert(0, str(ROOT))

from db.engine import make_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402


def pg_server_url() -> str | None:
    """A superuser URL for a scratch database (BENCH_DATABASE_URL or TEST_DATABASE_URL)."""
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")


@dataclass(frozen=True)
class Database:
    app_url: str  # what Trellis connects as (the non-superuser app role on PostgreSQL)
    owner_url: str  # what a reference that creates its own tables connects as


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[Database]:
    """A migrated, empty database; on PostgreSQL the app connects as a non-superuser role."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{secrets.token_hex(3)}.db'}"
        upgrade(make_engine(url))
        yield Database(url, url)
        return
    server = pg_server_url()
    assert server is not None
    suffix = secrets.token_hex(4)
    name, role = f"trellis_bench_{suffix}", f"trellis_bench_app_{suffix}"
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS'))
    from sqlalchemy.engine import make_url

    base = make_url(server)
    owner_url = base.set(database=name).render_as_string(hide_password=False)
    owner = make_engine(owner_url)
    upgrade(owner, app_role=role)
    owner.dispose()
    app_url = base.set(database=name, username=role, password=None)
    try:
        yield Database(app_url.render_as_string(hide_password=False), owner_url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


def _child(
    fn: Callable[..., Any], args: tuple[Any, ...], queue: Any, preload: tuple[str, ...]
) -> None:
    for module in preload:  # imports are not what is measured
        importlib.import_module(module)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(
        {
            "seconds": seconds,
            "peak_rss_mib": peak / 1024,
            "rss_growth_mib": (peak - before) / 1024,
            "result": result,
        }
    )


def measure(
    fn: Callable[..., Any], *args: Any, preload: tuple[str, ...] = (), timeout: float = 900
) -> dict[str, Any]:
    """Run fn(*args) in a fresh process: wall seconds, peak RSS and its growth, fn's result."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue, preload))
    proc.start()
    try:
        out = queue.get(timeout=timeout)
    except queue_module.Empty:
        proc.kill()
        raise RuntimeError(f"{fn.__name__} gave no result (exit code {proc.exitcode})") from None
    proc.join()
    return dict(out)
