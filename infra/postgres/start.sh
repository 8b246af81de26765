#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 for the test suite and
# prints its URL on stdout. Usage: start.sh PORT DATA_DIR
# PostgreSQL refuses to run as root, so as root it runs as the user
# `weir-pg`, created on first use.
set -euo pipefail
port="$1"
data="$2"
bin="$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || echo /usr/lib/postgresql/15/bin/pg_ctl)")")"
if [ ! -x "$bin/initdb" ]; then
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
fi
[ -x "$bin/initdb" ] || { echo "start.sh: no PostgreSQL binaries (initdb, pg_ctl) found" >&2; exit 1; }

as_pg=()
if [ "$(id -u)" = 0 ]; then
  id weir-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin weir-pg
  as_pg=(runuser -u weir-pg --)
fi
rm -rf "$data"
mkdir -p "$data"
[ "$(id -u)" = 0 ] && chown weir-pg "$data"
"${as_pg[@]}" "$bin/initdb" -D "$data/db" -U postgres --auth=trust -E UTF8 >"$data/initdb.log" 2>&1 \
  || { cat "$data/initdb.log" >&2; exit 1; }
"${as_pg[@]}" "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w \
  -o "-h 127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" start >/dev/null \
  || { cat "$data/server.log" >&2; exit 1; }
echo "postgres://postgres@127.0.0.1:$port/postgres"
