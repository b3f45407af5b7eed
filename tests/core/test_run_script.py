"""The README's run command, as far as a test can start it without taking port 8000."""

import os
import subprocess
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "balloonweb" / "scripts" / "run.sh"


def test_a_second_run_in_the_same_checkout_is_refused_before_it_touches_anything(tmp_path):
    """A second BalloonWeb would share the first one's database, port and simulated hosts (and the first one's
    stopping would remove the hosts the second had just started): it says so and starts nothing."""
    (tmp_path / "run.pid").write_text(str(os.getpid()))  # a live process stands for the running one
    result = subprocess.run(["bash", str(RUN)], env={**os.environ, "BALLOONWEB_STATE_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"already running from this checkout, or still stopping (run.sh pid {os.getpid()})" in result.stderr
    assert f"kill -TERM {os.getpid()}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pid"]


COMMON = RUN.parent / "common.sh"


def common(script: str, tmp_path, redis_url: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "REDIS_URL": redis_url, "BALLOONWEB_STATE_DIR": str(tmp_path)}
    return subprocess.run(["bash", "-c", f"set -e; source {COMMON}; {script}"], env=environment,
                          capture_output=True, text=True, timeout=60)


def test_a_redis_on_another_machine_is_not_started_here_but_named(tmp_path):
    result = common("ensure_redis", tmp_path, "redis://:secret@127.0.0.2:6399/0")
    assert result.returncode == 1
    assert "Redis at 127.0.0.2:6399 (REDIS_URL) does not answer: start it there" in result.stderr
    assert not (tmp_path / "redis.pid").exists()


def test_a_local_redis_started_for_a_url_with_a_password_asks_for_it(tmp_path):
    import redis

    url = "redis://:s3cret@127.0.0.1:6398/0"
    result = common("ensure_redis; redis-cli -p 6398 ping; redis-cli -p 6398 -a s3cret --no-auth-warning ping; "
                    "stop_redis_if_started", tmp_path, url)
    assert result.returncode == 0, result.stderr
    without, with_password = result.stdout.split()[0], result.stdout.split()[-1]
    assert without.startswith("NOAUTH") and with_password == "PONG"
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()  # stopped again
