#!/usr/bin/env bash
# Runs BalloonWeb on embedded defaults: SQLite, Redis (started if none runs), two simulated hosts hv1 and hv2
# (or the QEMU lab with BALLOONWEB_FLEET=lab), a Celery worker and beat, and the web server on
# http://127.0.0.1:8000 (BALLOONWEB_PORT). Ctrl-C stops everything it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mkdir -p "$STATE_DIR"
# One BalloonWeb per checkout: a second one would share its database, its port and its simulated hosts, and the
# first one's stopping would remove the hosts the second has just started.
RUN_PID_FILE="$STATE_DIR/run.pid"
if [ -f "$RUN_PID_FILE" ] && kill -0 "$(cat "$RUN_PID_FILE")" 2>/dev/null; then
  echo "run.sh: BalloonWeb is already running from this checkout, or still stopping (run.sh pid $(cat "$RUN_PID_FILE")); stop it first: Ctrl-C in its terminal, or kill -TERM $(cat "$RUN_PID_FILE")" >&2
  exit 1
fi
echo $$ > "$RUN_PID_FILE"
bash "$PROJECT_DIR/balloonweb/scripts/setup.sh"
cd "$PROJECT_DIR"

PORT="${BALLOONWEB_PORT:-8000}"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "run.sh: port $PORT is taken by another program; set BALLOONWEB_PORT to a free one" >&2
  rm -f "$RUN_PID_FILE"
  exit 1
fi
ensure_redis
[ -f "$STATE_DIR/secret_key" ] || (umask 077; "$VENV/bin/python" -c "import secrets; print(secrets.token_urlsafe(50))" > "$STATE_DIR/secret_key")
export SECRET_KEY="${SECRET_KEY:-$(cat "$STATE_DIR/secret_key")}"
export BALLOONWEB_STATE_DIR="$STATE_DIR"
manage() { "$VENV/bin/python" manage.py "$@"; }

# The embedded database holds the sessions: readable by other accounts on the machine, it would hand them a
# signed-in cookie (SQLite gives its -wal and -shm files the database file's mode).
if [ -z "${DATABASE_URL:-}" ]; then
  (umask 077; touch "$STATE_DIR/balloonweb.sqlite3")
  chmod 600 "$STATE_DIR"/balloonweb.sqlite3*
fi
manage migrate --noinput -v0
manage ensure_admin

children=()
stop_everything() {
  trap - EXIT INT TERM
  say "stopping"
  for pid in "${children[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${BALLOONWEB_FLEET:-sim}" = lab ]; then manage lab down || true; else manage simhost stop --all || true; fi
  stop_redis_if_started
  rm -f "$RUN_PID_FILE"
}
trap stop_everything EXIT INT TERM

if [ "${BALLOONWEB_FLEET:-sim}" = lab ]; then manage lab up; else manage simhost demo; fi

# Polls and jobs in workers of their own: a worker's processes take whatever comes next, so long migrations in a
# worker that also polls would hold up the polls, the autoscaler and the sweep that rescues stuck jobs.
"$VENV/bin/celery" -A balloonweb worker -Q poll -c 1 -n poll@%h -l warning --logfile "$STATE_DIR/worker-poll.log" & children+=($!)
"$VENV/bin/celery" -A balloonweb worker -Q jobs -c 2 -n jobs@%h -l warning --logfile "$STATE_DIR/worker-jobs.log" & children+=($!)
"$VENV/bin/celery" -A balloonweb beat -l warning -s "$STATE_DIR/celerybeat-schedule" --logfile "$STATE_DIR/beat.log" & children+=($!)
"$VENV/bin/python" manage.py events >"$STATE_DIR/events.log" 2>&1 & children+=($!)
say "BalloonWeb on http://127.0.0.1:$PORT (logs in $STATE_DIR); Ctrl-C stops it"
"$VENV/bin/daphne" -b 127.0.0.1 -p "$PORT" balloonweb.asgi:application & children+=($!)
wait -n "${children[@]}"
