"""The simulated fleet's command: start, list (usable with virsh), stop."""

import subprocess
import sys

from hosts.models import Host
from tests.conftest import ROOT, child_environment, virsh


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=child_environment(), capture_output=True, text=True, timeout=60)


def test_start_list_stop(transactional_db):
    started = manage("simhost", "start", "sim9", "--memory", "4096", "--cpus", "8")
    assert started.returncode == 0, started.stderr
    try:
        host = Host.objects.get(name="sim9")
        assert (host.status, host.total_kib, host.cpus, host.reserved_kib) == ("online", 4096 * 1024, 8, 512 * 1024)
        lines = [line.split() for line in manage("simhost", "list").stdout.splitlines()]
        uri = dict((line[0], line[1]) for line in lines)["sim9"]
        assert uri == host.uri
        assert virsh(uri, "list", "--all", "--name").strip() == ""  # libvirt's own sample domain is removed
        assert "TEST" in virsh(uri, "version")
    finally:
        stopped = manage("simhost", "stop", "sim9")
    assert stopped.stdout.strip() == "stopped sim9"
    assert "sim9" not in manage("simhost", "list").stdout
    assert manage("simhost", "stop", "sim9").stderr.strip() == "CommandError: no simulated host named sim9"
