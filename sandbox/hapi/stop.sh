#!/usr/bin/env bash
# stop.sh - stops the iop-bridge HAPI FHIR sandbox server started by start.sh, using the PID in
# $HAPI_RUN_DIR/hapi.pid (default <repo>/var/hapi): SIGTERM, wait up to 30 s, then SIGKILL.
# Exits 0 if nothing was running.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
HAPI_RUN_DIR="${HAPI_RUN_DIR:-$REPO/var/hapi}"
PID_FILE="$HAPI_RUN_DIR/hapi.pid"

if [ ! -f "$PID_FILE" ]; then
  echo "stop.sh: no PID file ($PID_FILE); nothing to stop."
  exit 0
fi

pid="$(cat "$PID_FILE" 2>/dev/null || true)"
if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
  echo "stop.sh: process '${pid}' from $PID_FILE is not running; removing the stale PID file."
  rm -f "$PID_FILE"
  exit 0
fi

# Guard against a recycled PID: only signal the process if it is our jar.
if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'iop-hapi-sandbox.jar'; then
  echo "stop.sh: PID $pid is not the HAPI sandbox (recycled PID?); removing the stale PID file." >&2
  rm -f "$PID_FILE"
  exit 0
fi

echo "stop.sh: stopping HAPI FHIR (pid $pid) ..."
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 30); do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$PID_FILE"
    echo "stop.sh: stopped."
    exit 0
  fi
  sleep 1
done
echo "stop.sh: still running after 30 s, sending SIGKILL."
kill -KILL "$pid" 2>/dev/null || true
sleep 1
rm -f "$PID_FILE"
echo "stop.sh: killed."
