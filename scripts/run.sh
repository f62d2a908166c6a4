#!/usr/bin/env bash
# `make run`: the whole of Berth on this machine — Redis (started here when none answers at
# REDIS_URL), the ASGI web server, the control worker (with beat) and an agent for this host —
# serving http://127.0.0.1:8000. Ctrl-C stops it all; a second run finds everything as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
export BERTH_STATE_DIR=${BERTH_STATE_DIR:-$PWD/var}
export BERTH_RUNTIME_ROOT=${BERTH_RUNTIME_ROOT:-/var/lib/berth}
export BERTH_HOST_NAME=${BERTH_HOST_NAME:-$(hostname -s)}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PY=.venv/bin/python
mkdir -p "$BERTH_STATE_DIR"

procfile=$BERTH_STATE_DIR/Procfile.run  # the Procfile plus Redis when we start it
cp Procfile "$procfile"
if ! $PY -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_timeout=1).ping()" \
     "$REDIS_URL" 2>/dev/null; then
  port=$($PY -c "import sys, urllib.parse as u; print(u.urlparse(sys.argv[1]).port or 6379)" "$REDIS_URL")
  mkdir -p "$BERTH_STATE_DIR/redis"
  echo "redis: redis-server --bind 127.0.0.1 --port $port --dir $BERTH_STATE_DIR/redis --appendonly yes --save ''" >> "$procfile"
  echo "Berth: starting a local Redis on 127.0.0.1:$port (data in $BERTH_STATE_DIR/redis)"
fi

# A fresh machine gets a base image, so there is something to run with no registry at all.
if ! $PY -m runtime --root "$BERTH_RUNTIME_ROOT" image inspect busybox:latest >/dev/null 2>&1; then
  $PY -m runtime --root "$BERTH_RUNTIME_ROOT" image bootstrap busybox >/dev/null
fi
$PY manage.py migrate --noinput >/dev/null
$PY manage.py collectstatic --noinput >/dev/null
$PY manage.py berth_admin
echo "Berth: http://127.0.0.1:${BERTH_PORT:-8000}  (host $BERTH_HOST_NAME, runtime root $BERTH_RUNTIME_ROOT; Ctrl-C stops)"
exec .venv/bin/honcho start -f "$procfile" -d "$PWD"
