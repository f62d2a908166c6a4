#!/usr/bin/env bash
# `make test`: lint (ruff) and type checks (mypy), the whole suite on the embedded SQLite
# database, then the panel tests again on a throwaway PostgreSQL cluster (initdb in a temp dir, a
# free loopback port, run as the postgres user since initdb refuses root). Fails if any of them
# fails; "no tests collected" is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PYTEST=("$PY" -m pytest -q -p no:cacheprovider)

run_pytest() {  # pytest's exit code, with 5 (no tests collected) counted as a failure
  "${PYTEST[@]}" "$@"
  local code=$?
  if ((code == 5)); then echo "test.sh: pytest collected no tests for: $*" >&2; code=1; fi
  return $code
}

status=0
echo "== lint (ruff) and types (mypy: runtime/ and panel/)"
.venv/bin/ruff check runtime panel tests bench || status=1
.venv/bin/mypy || status=1

echo "== whole suite on SQLite"
run_pytest tests || status=1

echo "== panel tests on PostgreSQL"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z $pg_bin || ! -x $pg_bin/initdb ]]; then
  echo "test.sh: PostgreSQL is not installed (scripts/setup.sh installs it)" >&2
  exit 1
fi
pg_dir=$(mktemp -d /tmp/berth-pg-XXXXXX)
chown postgres: "$pg_dir"
pg_port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
cleanup() {
  as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap cleanup EXIT
if as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres >"$pg_dir/initdb.log" 2>&1 \
  && as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
       -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c fsync=off" start >/dev/null; then
  DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/berth" run_pytest tests/panel || status=1
else
  echo "test.sh: could not start PostgreSQL:" >&2
  cat "$pg_dir"/*.log >&2
  status=1
fi
exit $status
