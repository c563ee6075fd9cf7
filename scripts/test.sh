#!/usr/bin/env bash
# test.sh - the whole test suite, exactly as CI runs it (`make test`, .ci/run):
# setup -> lint, types, layer contracts -> start a fresh HAPI sandbox and a fresh PostgreSQL
# test cluster on their own ports -> pytest with --require-live (the live tier and the
# PostgreSQL tests must run and pass) -> stop both.
# Extra arguments go to pytest.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

scripts/setup.sh

echo "== static checks: ruff, mypy, import-linter"
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports

# A separate port and run dir, so a demo server on 8090 is neither reused nor disturbed.
export HAPI_PORT="${IOP_TEST_HAPI_PORT:-18090}"
export HAPI_RUN_DIR="$REPO/var/hapi-test"
export HAPI_DB=h2
# Likewise PostgreSQL: its own port and directory, apart from scripts/postgres.sh's default
# cluster on 55432 that a developer may be using.
export PG_PORT="${IOP_TEST_PG_PORT:-55433}"
export PG_DIR="$REPO/var/postgres-test"

stop_servers() {
  sandbox/hapi/stop.sh || true
  scripts/postgres.sh stop || true
}
echo "== starting HAPI sandbox for the live tier on port $HAPI_PORT"
sandbox/hapi/stop.sh >/dev/null 2>&1 || true   # a stale server from an aborted run
scripts/postgres.sh stop >/dev/null 2>&1 || true
trap stop_servers EXIT
sandbox/hapi/start.sh

echo "== starting a fresh PostgreSQL test cluster on port $PG_PORT"
rm -rf "$PG_DIR"   # fresh each run, like the in-memory HAPI database
IOP_BRIDGE_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
export IOP_BRIDGE_TEST_POSTGRES_URL

export IOP_BRIDGE_FHIR_BASE_URL="http://127.0.0.1:$HAPI_PORT/fhir"
echo "== pytest (unit, component, live against $IOP_BRIDGE_FHIR_BASE_URL; PostgreSQL $IOP_BRIDGE_TEST_POSTGRES_URL)"
.venv/bin/pytest --require-live "$@"
