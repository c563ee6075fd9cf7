#!/usr/bin/env bash
# stop.sh - stops what `make demo` started: the iop-bridge API and the HAPI sandbox.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
pid_file="$REPO/var/iop-bridge/api.pid"
if [ -f "$pid_file" ]; then
  kill "$(cat "$pid_file")" 2>/dev/null || true
  rm -f "$pid_file"
  echo "iop-bridge API stopped"
fi
sandbox/hapi/stop.sh
