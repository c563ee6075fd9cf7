#!/usr/bin/env bash
# test.sh - the whole test suite, exactly as CI runs it (`make test`, .ci/run):
# setup -> lint, types, layer contracts -> start a fresh HAPI sandbox on its own port ->
# pytest with --require-live (the live tier must run and pass) -> stop HAPI.
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
echo "== starting HAPI sandbox for the live tier on port $HAPI_PORT"
sandbox/hapi/stop.sh >/dev/null 2>&1 || true   # a stale server from an aborted run
trap 'sandbox/hapi/stop.sh' EXIT
sandbox/hapi/start.sh

export IOP_BRIDGE_FHIR_BASE_URL="http://127.0.0.1:$HAPI_PORT/fhir"
echo "== pytest (unit, component, live against $IOP_BRIDGE_FHIR_BASE_URL)"
.venv/bin/pytest --require-live "$@"
