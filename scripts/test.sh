#!/usr/bin/env bash
# test.sh - the whole test suite, exactly as CI runs it (`make test`, .ci/run):
# setup -> lint, types, layer contracts -> start a fresh HAPI sandbox, a second HAPI with the
# official starter's stock defaults (HAPI_PROFILE=stock: search cache on, rest-hook off) and a
# fresh PostgreSQL test cluster on their own ports -> pytest with --require-live (the live tier
# and the PostgreSQL tests must run and pass) -> the live workflows again against the stock
# HAPI, where only the poll hears of Tasks -> stop all three.
# Extra arguments go to the first pytest run.
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

# The stock-profile HAPI: its own port and run dir.
STOCK_PORT="${IOP_TEST_STOCK_HAPI_PORT:-18091}"
STOCK_RUN_DIR="$REPO/var/hapi-test-stock"

stop_servers() {
  sandbox/hapi/stop.sh || true
  HAPI_RUN_DIR="$STOCK_RUN_DIR" sandbox/hapi/stop.sh || true
  scripts/postgres.sh stop || true
}
echo "== starting HAPI sandbox for the live tier on port $HAPI_PORT"
sandbox/hapi/stop.sh >/dev/null 2>&1 || true   # a stale server from an aborted run
HAPI_RUN_DIR="$STOCK_RUN_DIR" sandbox/hapi/stop.sh >/dev/null 2>&1 || true
scripts/postgres.sh stop >/dev/null 2>&1 || true
trap stop_servers EXIT
sandbox/hapi/start.sh
# The stock HAPI starts while the first pytest run goes on; it is awaited before the second.
echo "== starting a stock-profile HAPI on port $STOCK_PORT (log: $STOCK_RUN_DIR/start.log)"
mkdir -p "$STOCK_RUN_DIR"
HAPI_PROFILE=stock HAPI_PORT="$STOCK_PORT" HAPI_RUN_DIR="$STOCK_RUN_DIR" \
  sandbox/hapi/start.sh >"$STOCK_RUN_DIR/start.log" 2>&1 &
stock_start=$!

echo "== starting a fresh PostgreSQL test cluster on port $PG_PORT"
rm -rf "$PG_DIR"   # fresh each run, like the in-memory HAPI database
IOP_BRIDGE_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
export IOP_BRIDGE_TEST_POSTGRES_URL

STOCK_TESTS=(
  tests/live/test_stock_server_live.py
  tests/live/test_public_sandbox_mode_live.py
  tests/live/test_step_down_live.py
  tests/live/test_inbound_live.py
  tests/live/test_referrals_api_live.py
  tests/live/test_discharge_live.py
  tests/live/test_medications_live.py
  tests/live/test_owned_fields_live.py
  tests/live/test_fhir_setup_live.py
  tests/live/test_hapi_sandbox_live.py
  tests/live/test_role_owner_live.py
)

export IOP_BRIDGE_FHIR_BASE_URL="http://127.0.0.1:$HAPI_PORT/fhir"
echo "== pytest (unit, component, live against $IOP_BRIDGE_FHIR_BASE_URL; PostgreSQL $IOP_BRIDGE_TEST_POSTGRES_URL)"
.venv/bin/pytest --require-live -m "not stock_only" "$@"

echo "== waiting for the stock-profile HAPI"
if ! wait "$stock_start"; then
  cat "$STOCK_RUN_DIR/start.log" >&2
  exit 1
fi
# The workflows that read and write Tasks, and the stock-only tests (the search cache, a
# Subscription that is never activated, a server that forgets). Rest-hook delivery is off there.
echo "== pytest: live workflows against the stock-profile HAPI (poll only)"
IOP_BRIDGE_FHIR_BASE_URL="http://127.0.0.1:$STOCK_PORT/fhir" .venv/bin/pytest --require-live \
  -m "live and not resthook" "${STOCK_TESTS[@]}"
