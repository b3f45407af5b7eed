#!/usr/bin/env bash
# Runs the whole test suite: sets up the machine, starts Redis and PostgreSQL if needed, runs pytest.
# Arguments go to pytest (e.g. `bash balloonweb/scripts/test.sh tests/core -x`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$PROJECT_DIR/balloonweb/scripts/setup.sh"
cd "$PROJECT_DIR"

ensure_redis
if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL="$(postgres_url)"
  export DATABASE_URL
fi
export DJANGO_SETTINGS_MODULE=tests.settings

set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
# pytest says 5 when it collected no test: that is a failure of the suite, not a pass.
exit $status
