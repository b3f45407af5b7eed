# Shared by setup.sh, run.sh and test.sh: find the project, and start Redis and PostgreSQL when they are not
# running (installing them from Debian's packages when they are not there at all).

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$PROJECT_DIR/.venv"
STATE_DIR="${BALLOONWEB_STATE_DIR:-$PROJECT_DIR/var}"

say() { printf '==> %s\n' "$*" >&2; }

# As root: directly when we are root (containers often have no sudo), else through sudo.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$1"; else sudo -u postgres sh -c "$1"; fi; }

apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq >&2; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# REDIS_URL (redis://[user:password@]host[:port][/db]) in parts: "HOST PORT", and its password.
redis_url_address() {
  local url="${REDIS_URL:-redis://127.0.0.1:6379/0}"; url="${url#*://}"; url="${url%%/*}"; url="${url##*@}"
  case "$url" in *:*) echo "${url%:*} ${url##*:}" ;; *) echo "$url 6379" ;; esac
}
redis_url_password() {
  local url="${REDIS_URL:-}"; url="${url#*://}"; url="${url%%/*}"
  case "$url" in *@*) url="${url%@*}"; echo "${url#*:}" ;; esac
}

# A Redis that REDIS_URL names on another machine is that machine's to run: only a local one is started here.
ensure_redis() {
  local host port; read -r host port <<<"$(redis_url_address)"
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
  case "$host" in
    127.0.0.1|localhost) ;;
    *) say "Redis at $host:$port (REDIS_URL) does not answer: start it there, or leave REDIS_URL unset for a local one"
       return 1 ;;
  esac
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis on 127.0.0.1:$port"
  mkdir -p "$STATE_DIR"
  local password; password="$(redis_url_password)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$STATE_DIR" --logfile "$STATE_DIR/redis.log" --pidfile "$STATE_DIR/redis.pid" \
    ${password:+--requirepass "$password"}
  STARTED_REDIS_PORT="$port"
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.1; done
  say "Redis did not start: see $STATE_DIR/redis.log"; return 1
}

# The Redis ensure_redis started, if it did (one that was running already is left as it was). By its pid: a
# shutdown command would need its password.
stop_redis_if_started() {
  [ -n "${STARTED_REDIS_PORT:-}" ] || return 0
  say "stopping the Redis it started"
  local pid; pid="$(cat "$STATE_DIR/redis.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "redis-server" ]; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  fi
}

postgres_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
# Whether ROLE may log in over TCP with the password that is its name (as the URLs below carry it).
postgres_login() { PGPASSWORD="$1" psql -h 127.0.0.1 -p 5432 -U "$1" -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

# Starts PostgreSQL if need be and prints the URL of the database `balloonweb` for a role that may log in and
# create databases: `postgres` where it logs in as it is (these machines: trust), else a role `balloonweb` of
# our own (a stock Debian cluster asks for a password on TCP; the postgres role's own is left alone).
postgres_url() {
  if ! postgres_ready; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
    local version; version="$(ls /etc/postgresql | sort -V | tail -1)"
    say "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    for _ in $(seq 100); do postgres_ready && break; sleep 0.2; done
    postgres_ready || { say "PostgreSQL did not start"; return 1; }
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  local role=postgres
  if ! postgres_login postgres; then
    role=balloonweb
    if ! postgres_login balloonweb; then
      say "creating the PostgreSQL role balloonweb (may create databases)"
      as_postgres "psql -q -c \"DO \\\$\\\$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'balloonweb') THEN ALTER ROLE balloonweb LOGIN CREATEDB PASSWORD 'balloonweb'; ELSE CREATE ROLE balloonweb LOGIN CREATEDB PASSWORD 'balloonweb'; END IF; END \\\$\\\$\"" >/dev/null
      postgres_login balloonweb || { say "cannot log in to PostgreSQL on 127.0.0.1: set DATABASE_URL to a role that may create databases"; return 1; }
    fi
  fi
  echo "postgres://$role:$role@127.0.0.1:5432/balloonweb"
}
