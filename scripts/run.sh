#!/usr/bin/env bash
# `make run`: start Berth on this machine and serve http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
export BERTH_RUNTIME_ROOT=${BERTH_RUNTIME_ROOT:-/var/lib/berth}
PY=.venv/bin/python

# A fresh machine gets a base image so there is something to run with no registry at all.
if ! $PY -m runtime --root "$BERTH_RUNTIME_ROOT" image inspect busybox:latest >/dev/null 2>&1; then
  $PY -m runtime --root "$BERTH_RUNTIME_ROOT" image bootstrap busybox
fi
$PY manage.py migrate --noinput >/dev/null
echo "Berth: http://127.0.0.1:8000  (runtime root $BERTH_RUNTIME_ROOT; Ctrl-C stops)"
exec .venv/bin/uvicorn panel.asgi:application --host 127.0.0.1 --port "${BERTH_PORT:-8000}"
