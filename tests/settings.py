"""Settings for the test suite: the project's settings with test defaults that the environment can override.

The tests empty their Redis database and stop the simulated hosts of their state directory, so these are never
taken from REDIS_URL and BALLOONWEB_STATE_DIR, which may be exported for a running BalloonWeb (its queues and
hosts would go): TEST_REDIS_URL (default database 15) and TEST_STATE_DIR say them. Two runs at once on one
machine need each their own of those and of DATABASE_URL (tests/conftest.py refuses a second run on one state
directory). The Celery worker that tests start uses this module too.
"""

import os
import tempfile

os.environ.setdefault("DEBUG", "1")
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ["BALLOONWEB_STATE_DIR"] = os.environ.get("TEST_STATE_DIR", os.path.join(tempfile.gettempdir(), "balloonweb-tests"))
os.environ.setdefault("CHANNELS_PREFIX", "balloonweb-test")
# Short limits, so that the sweep finds a dead worker's job within a test.
os.environ.setdefault("RESIZE_TIME_LIMIT", "5")
os.environ.setdefault("MIGRATE_TIME_LIMIT", "30")
os.environ.setdefault("REQUEUE_AFTER", "3")
os.environ.setdefault("POLL_INTERVAL", "1")

from balloonweb.settings import *  # noqa: E402,F403

STATE_DIR.mkdir(parents=True, exist_ok=True)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
