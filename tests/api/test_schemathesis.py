"""Schemathesis against /api/schema/ on a live server (daphne, as in production), once with a token of each role:
no server error, and every answer (status, headers, body) as the schema says.

The example count is kept small so that the five runs take a few minutes; raise API_FUZZ_EXAMPLES to dig deeper.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from balloonweb.access.models import Membership, Team
from tests.conftest import ROOT, child_environment

from .conftest import fake_domain, fake_host, make_token

EXAMPLES = os.environ.get("API_FUZZ_EXAMPLES", "8")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"
# Revoking its own token would end a run early; the token tests cover revocation.
EXCLUDED_OPERATIONS = ["tokens_destroy"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server_url(transactional_db):
    port = free_port()
    log = Path(settings.STATE_DIR) / "api-fuzz-server.log"
    # A job GET may wait for its job; here no worker runs them, so waits are kept short.
    env = child_environment(API_JOB_WAIT_MAX="0.5", DEBUG="0", SECRET_KEY="fuzz-" + "x" * 50)
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "balloonweb.asgi:application"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/schema/", timeout=5).read()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"the API server did not start: see {log}") from None
            time.sleep(0.2)
    yield url
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def fuzz_fleet(transactional_db) -> dict:
    """A team with hosts and domains, people of each role with read-write tokens."""
    team, other = Team.objects.create(name="blue"), Team.objects.create(name="red")
    hosts = [fake_host("h1", team), fake_host("h2", team), fake_host("r1", other)]
    for i, host in enumerate(hosts):
        fake_domain(host, f"dom{i}")
        fake_domain(host, f"off{i}", state="shutoff")
    users = get_user_model().objects
    people = {role: users.create_user(role) for role in ("viewer", "operator", "admin")}
    for role, user in people.items():
        Membership.objects.create(user=user, team=team, role=role)
    people["superuser"] = users.create_superuser("root")
    return {role: make_token(user) for role, user in people.items()}


@pytest.mark.timeout(900)
def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(live_server_url, fuzz_fleet):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    failures = []
    for role, token in fuzz_fleet.items():
        command = [
            st, "run", f"{live_server_url}/api/schema/", "--checks", CHECKS, "--max-examples", EXAMPLES,
            "--header", f"Authorization: Bearer {token}", "--workers", "1", "--seed", "20261127",
            "--generation-database", "none", "--phases", "examples,coverage,fuzzing", "--no-color",
            "--request-timeout", "10", "--suppress-health-check", "all",
            *[arg for op in EXCLUDED_OPERATIONS for arg in ("--exclude-operation-id", op)],
        ]
        run = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=settings.STATE_DIR)
        if run.returncode != 0:
            failures.append(f"--- as {role} ---\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}")
    assert not failures, "\n".join(failures)
