import pytest
from django.core.management import call_command

from balloonweb.access.actors import Actor
from balloonweb.audit.log import record


@pytest.fixture
def entries(db):
    """Five entries from the command line."""
    actor = Actor.command_line()
    return [record(actor, "test.action", message=f"entry {i}") for i in range(5)]


def run_audit(*args) -> tuple[int, str]:
    """`manage.py audit ...` -> (exit code, stdout + stderr)."""
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command("audit", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def audit_cmd():
    return run_audit


@pytest.fixture(autouse=True)
def anchor_file(settings, tmp_path):
    """Each test's own anchor file: an anchor names entry ids, which mean nothing to another test's table."""
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "audit-anchors.jsonl")
    return tmp_path / "audit-anchors.jsonl"
