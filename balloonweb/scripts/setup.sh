#!/usr/bin/env bash
# Installs what BalloonWeb needs on Debian 12: system packages, a virtualenv with the pinned Python packages,
# and the front end's npm packages. Safe to run again: it only does what is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$PROJECT_DIR"

# libvirt: headers to build libvirt-python, the daemon for simulated hosts, virsh; QEMU and busybox for the
# lab of real guests; chromium for the browser tests.
apt_install gcc pkg-config libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
  qemu-system-x86 busybox-static chromium redis-server iproute2
python3 -c "import ensurepip, venv" 2>/dev/null || apt_install python3-venv
apt_install python3-dev  # Python.h, to build libvirt-python
# pyproject.toml pins Python 3.11 (Debian 12's python3); a virtualenv of another Python is made again.
python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  say "BalloonWeb needs Python 3.11 (Debian 12's python3); this python3 is $(python3 -V 2>&1)"; exit 1; }
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  say "$VENV is not of Python 3.11: making it again"; rm -rf "$VENV"
fi
command -v npm >/dev/null || apt_install nodejs npm
# libvirtd's QEMU driver refuses to start without this system user.
id libvirt-qemu >/dev/null 2>&1 || as_root useradd --system --no-create-home libvirt-qemu

[ -x "$VENV/bin/python" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
CONSTRAINTS=balloonweb/scripts/constraints.txt
stamp="$VENV/.installed-$(cat pyproject.toml "$CONSTRAINTS" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing Python packages (libvirt-python compiles, ~15 s)"
  "$VENV/bin/pip" install -q pip==26.3
  "$VENV/bin/pip" install -q -c "$CONSTRAINTS" -e '.[test]'
  touch "$stamp"
fi

(
  cd balloonweb/frontend
  npm_stamp="node_modules/.installed-$(cat package.json package-lock.json | sha256sum | cut -c1-16)"
  if [ ! -f "$npm_stamp" ]; then
    say "installing front-end packages"
    npm ci --silent --no-audit --no-fund
    touch "$npm_stamp"
  fi
  npm run --silent vendor
)
mkdir -p "$STATE_DIR"
# WhiteNoise serves the collected files (and says so at every start when the folder is missing).
DEBUG=1 "$VENV/bin/python" manage.py collectstatic --noinput -v0
