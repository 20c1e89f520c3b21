"""End-to-end: `streamlit run app.py` on a free loopback port, driven by Debian's Chromium.

Playwright's own browser download is not used (it cannot work offline); the tests launch the
system `chromium`. Without it they skip with the reason; under CI=true a skip fails the run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_SKIP_REASON, PG_URL, _create_pg_database, _drop_pg_database

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not become healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def demo_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app serving a fresh demo workspace; yields its base URL.

    On PostgreSQL the app connects as a non-superuser app role of its own database, as in
    production; `trellis init-db` migrates as the owner (MIGRATION_DATABASE_URL).
    """
    workdir = tmp_path_factory.mktemp("e2e")
    if request.param == "sqlite":
        yield from _serve(workdir, {"DATABASE_URL": f"sqlite:///{workdir / 'demo.db'}"})
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    database = _create_pg_database(migrate=False)
    try:
        yield from _serve(
            workdir,
            {"DATABASE_URL": database.app_url, "MIGRATION_DATABASE_URL": database.owner_url},
        )
    finally:
        _drop_pg_database(database)


def _serve(workdir: Path, settings: dict[str, str]) -> Iterator[str]:
    env = {**os.environ, **settings}
    trellis = [sys.executable, "-m", "core.cli"]
    subprocess.run([*trellis, "init-db"], env=env, cwd=ROOT, check=True, timeout=120)
    subprocess.run(
        [*trellis, "demo"], env=env, cwd=ROOT, check=True, timeout=300, capture_output=True
    )
    port = _free_port()
    log = workdir / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip(
            "Debian's chromium is not installed (apt-get install chromium), so browser tests skip"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browser_context(browser, demo_server):  # type: ignore[no-untyped-def]
    """One context per server, so its HTTP cache keeps the app's scripts between tests (a
    fresh context loads them again, ~1 s a page). Nothing of a login outlives its page: a
    signed-in user lives in the server's session of that page's websocket."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    yield context
    context.close()


@pytest.fixture
def page(browser_context):  # type: ignore[no-untyped-def]
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    yield page
    page.close()


# Every chart in view has drawn (vega puts a canvas or an svg into its element; a chart in a
# closed tab has no box and draws only when its tab opens).
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .filter((chart) => chart.getClientRects().length > 0)
    .every((chart) => chart.querySelector("canvas, svg"))"""


def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the app's script run has finished (websockets never go 'network idle') and
    its charts have drawn, so a screenshot shows them."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
    page.wait_for_function(CHARTS_DRAWN)


def shot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
