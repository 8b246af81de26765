#!/usr/bin/env bash
# Stops the server start.sh started. Usage: stop.sh DATA_DIR
set -uo pipefail
data="$1"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
pg_ctl="$(command -v pg_ctl || echo "$bin/pg_ctl")"
if [ "$(id -u)" = 0 ]; then
  runuser -u weir-pg -- "$pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1
else
  "$pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1
fi
rm -rf "$data"
