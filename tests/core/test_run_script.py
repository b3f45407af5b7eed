"""The README's run command, as far as a test can start it without taking port 8000."""

import os
import subprocess
from pathlib import Path

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
