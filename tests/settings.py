"""Settings for the test suite: the project's settings with test defaults that the environment can override.

Each run gets its own Redis database, channel prefix and state directory, so that parallel runs on one machine
do not share queues or simulated hosts. The Celery worker that tests start uses this module too.
"""

import os
import tempfile

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("BALLOONWEB_STATE_DIR", os.path.join(tempfile.gettempdir(), "balloonweb-tests"))
os.environ.setdefault("CHANNELS_PREFIX", "balloonweb-test")
# Short limits, so that the sweep finds a dead worker's job within a test.
os.environ.setdefault("RESIZE_TIME_LIMIT", "5")
os.environ.setdefault("MIGRATE_TIME_LIMIT", "30")
os.environ.setdefault("REQUEUE_AFTER", "3")
os.environ.setdefault("POLL_INTERVAL", "1")

from balloonweb.settings import *  # noqa: E402,F403

STATE_DIR.mkdir(parents=True, exist_ok=True)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
