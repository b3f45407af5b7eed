#!/usr/bin/env bash
# Runs the whole test suite: sets up the machine, starts Redis and PostgreSQL if needed, runs pytest.
# Arguments go to pytest (e.g. `bash balloonweb/scripts/test.sh tests/core -x`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$PROJECT_DIR/balloonweb/scripts/setup.sh"
cd "$PROJECT_DIR"

# The tests' Redis (tests/settings.py), never REDIS_URL's, which may be a running BalloonWeb's.
REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}" ensure_redis
if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL="$(postgres_url)"
  export DATABASE_URL
fi
export DJANGO_SETTINGS_MODULE=tests.settings

# Workers the tests start run in sessions of their own; an interrupted run (a second Ctrl-C, a kill) would leave
# them holding the test database, and the next run could not create it again.
test_state="${TEST_STATE_DIR:-${TMPDIR:-/tmp}/balloonweb-tests}"
trap 'pkill -TERM -f -- "--logfile $test_state/worker-" 2>/dev/null || true' EXIT

set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
# pytest says 5 when it collected no test: that is a failure of the suite, not a pass.
exit $status
