"""A real headless Chromium loads the running playground (``streamlit run``) and finds the
title, the navigation and the gateway page's charts.

Debian's ``chromium`` is driven through Playwright (never ``playwright install``). Without
it the test skips with the reason, unless ``LABKIT_REQUIRE_BROWSER=1`` (CI), then it fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
START_DEADLINE_S = 60
TEXT_TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    if os.environ.get("LABKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (LABKIT_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"streamlit did not answer within {START_DEADLINE_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The playground served by a real ``streamlit run`` on 127.0.0.1 and a free port."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "playground" / "app.py"),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(proc, url, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TEXT_TIMEOUT_MS)
    yield page
    context.close()


def test_home_page_loads_with_navigation(page, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(server)
    page.get_by_role("heading", name="Microservice Patterns Lab").wait_for()
    nav = page.locator('[data-testid="stSidebarNav"]')
    for label in ("Home", "Request-response", "API gateway / BFF", "Circuit breaker"):
        nav.get_by_role("link", name=label).wait_for()
    page.get_by_text("Synchronous", exact=True).first.wait_for()
    page.get_by_text("NATS", exact=False).first.wait_for()
    assert page.title() == "Microservice Patterns Lab"
    assert page.locator('[data-testid="stException"]').count() == 0
    shot = tmp_path / "home.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_gateway_page_draws_its_charts(page, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(server)
    page.locator('[data-testid="stSidebarNav"]').get_by_role(
        "link", name="API gateway / BFF"
    ).click()
    page.get_by_role("heading", name="API gateway / backend for frontend").wait_for()
    page.get_by_text("sequential: 270 ms").wait_for()  # the comparison's subplot title (SVG)
    page.get_by_text("concurrent: 60 ms").wait_for()
    assert page.locator(".js-plotly-plot").count() >= 3
    assert page.locator('[data-testid="stException"]').count() == 0
    # Streamlit scrolls inside its own container: a tall window shows the whole page
    page.set_viewport_size({"width": 1400, "height": 3600})
    page.wait_for_timeout(500)  # let plotly finish drawing at the new width
    shot = tmp_path / "gateway.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def _page_entries() -> list[tuple[str, str]]:
    """(navigation label, page file) for every page in the course's PAGES list."""
    import ast

    tree = ast.parse((ROOT / "playground" / "course.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES":
            pages = ast.literal_eval(node.value)
            return [(title, path) for _section, path, title, _icon in pages]
    raise AssertionError("course.py has no PAGES list")


def test_every_page_opens_in_the_browser_without_an_error(page, server) -> None:  # type: ignore[no-untyped-def]
    """Open every page of the navigation by its address: each one finishes its script with a
    title and no exception box."""
    import re

    for _title, path in _page_entries()[1:]:
        url_path = re.sub(r"^\d+_", "", Path(path).stem)  # Streamlit's address for a page file
        page.goto(f"{server}/{url_path}")
        page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
        page.locator("h1").first.wait_for()
        assert page.locator('[data-testid="stException"]').count() == 0, path
