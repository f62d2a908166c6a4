#!/usr/bin/env bash
# Installs what Berth needs on a Debian machine: system packages and the virtualenv at .venv/.
# Idempotent: a second run only checks and exits quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  python3 python3-venv python3-dev gcc
  runc crun conmon busybox-static tini
  redis-server nftables iptables iproute2 aardvark-dns
  skopeo podman docker-registry zstd debootstrap
  golang-github-containers-common
  postgresql
  docker-compose  # `docker-compose config` checks the compose test cases (tests/panel/stacks)
  docker.io  # the docker CLI drives the Docker-compatible endpoint (tests/e2e); dockerd: its peer in bench/
  chromium  # the dashboard's e2e tests
)
# Node.js and npm for the dashboard's front-end packages (package.json): Debian's, unless the
# machine already has them (a NodeSource nodejs bundles npm and conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || SYSTEM_PACKAGES+=(nodejs npm)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Podman is a peer we measure and interoperate with. Its default nofile rlimit is above the hard
# limit of these machines, so every `podman run` fails until the default ulimits are cleared.
if [[ ! -f /etc/containers/containers.conf ]] || ! grep -q "default_ulimits = \[\]" /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF
fi

PY=${PYTHON:-/usr/bin/python3}
[[ -x $PY ]] || PY=python3
stamp=.venv/.installed
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch "$stamp"
fi

# Front-end packages of the dashboard (package.json → node_modules/, served as static files):
# installed again only when package-lock.json changed since the last install.
npm_stamp=node_modules/.berth-installed
if [[ -f package-lock.json && ( ! -f $npm_stamp || package-lock.json -nt $npm_stamp ) ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$npm_stamp"
fi
