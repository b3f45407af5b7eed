"""A real daphne process serving balloonweb.asgi on the test database, and a real Chromium driven by Playwright.

Chromium is Debian's (/usr/bin/chromium); Playwright never downloads a browser here.
"""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import ROOT, child_environment

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
PASSWORD = "correct horse battery staple"
START_TIMEOUT_S = 30


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(django_db_setup, django_db_blocker) -> Server:
    """daphne on a free port, with the same settings, database and Redis as the tests and the worker."""
    port = free_port()
    log = Path(settings.STATE_DIR) / "daphne.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "balloonweb.asgi:application"],
            cwd=ROOT, env=child_environment(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start: see {log}") from None
            time.sleep(0.1)
    yield Server(f"http://127.0.0.1:{port}", process, log)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def chromium():
    """One browser per test module. Playwright's sync API keeps an event loop in the test's thread while it
    runs, which Django's async-safety check (and asgiref's async_to_sync) refuse: the ORM calls the tests make
    between two browser steps are plain synchronous calls, so the check is off for as long as the browser
    runs, and only in this process (child_environment drops it for the server and workers)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: the set-up (balloonweb/scripts/setup.sh) installs it"
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def operator_user(transactional_db, django_user_model):
    """A superuser: the simulated hosts have no team, and only superusers see hosts outside teams."""
    return django_user_model.objects.create_superuser("ops", "ops@example.invalid", PASSWORD)


@pytest.fixture
def new_page(chromium, server, operator_user):
    """new_page(width=1280, height=900) -> a logged-in page in a context of its own."""
    contexts = []
    refused_by_policy: list[str] = []

    def make(width: int = 1280, height: int = 900, log_in: bool = True):
        context = chromium.new_context(viewport={"width": width, "height": height}, base_url=server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        # The console's own scripts must run under its Content-Security-Policy: anything it refuses is a bug.
        page.on("console", lambda message: refused_by_policy.append(message.text)
                if "Content Security Policy" in message.text else None)
        if log_in:
            login(page, operator_user.username)
        return page

    yield make
    for context in contexts:
        context.close()
    assert refused_by_policy == []


def login(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
