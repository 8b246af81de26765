#!/usr/bin/env bash
# The one command that runs the whole test suite: installs what is missing,
# starts two independent Kafka-protocol brokers (Weir's own `weir broker`,
# on disk, and noida-db) and a throwaway PostgreSQL on 127.0.0.1, runs every
# test of the workspace with cargo-nextest against `weir broker`, then the
# integration tests again against noida-db, so that nothing relies on one
# broker's quirks. noida-db supports Kafka transactions and `weir broker`
# does not, so Kafka sinks are exactly-once on the one and at-least-once on
# the other (WEIR_TEST_EXACTLY_ONCE tells the tests which to expect).
# Real clients run too: Confluent's Python Kafka client against `weir
# broker`, and Confluent's DB-API driver, its schema-registry client and
# serializers, and dbt-confluent against a `weir dev`; the web workspace in
# headless Chromium against it; Schemathesis fuzzes the API of that `weir
# dev` from its OpenAPI document; the Terraform provider with the real
# `terraform` binary (once, on `weir broker`: it does not touch Kafka's
# transactions).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
tools="${WEIR_TOOLS:-$HOME/.cache/weir/tools}"
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
bash infra/broker/install-noida.sh
# Python tools, each in a venv of its own under $tools, installed once:
# the marker is written only after pip succeeds, so that a run stopped in
# the middle of an install installs again rather than finding a venv
# without its packages.
py_tool() { # venv-name pip-requirement...
  local venv="$tools/$1"; shift
  [ -e "$venv/.installed" ] && return 0
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  touch "$venv/.installed"
}
# Confluent's Python client, to check `weir broker` with a client Weir's
# users run (not only Weir's own librdkafka).
py_tool confluent confluent-kafka==2.16.1
# Confluent's DB-API driver, run against `weir dev` (pinned; upgrade on
# purpose, and update the README's client table with it).
py_tool confluent-sql-0.7.0 confluent-sql==0.7.0
# dbt with Confluent's adapter (which brings its own confluent-sql).
py_tool dbt-confluent-0.4.1 dbt-confluent==0.4.1 dbt-core==1.11.16
# Confluent's client with its schema-registry serializers (Avro, JSON
# Schema, Protobuf), against `weir dev`'s built-in registry.
py_tool confluent-sr-2.16.1 "confluent-kafka[avro,json,protobuf,schemaregistry]==2.16.1"
# Schemathesis, to fuzz the API from its OpenAPI document (pinned).
py_tool schemathesis-4.32.5 schemathesis==4.32.5
# Debian packages: Chromium for the web workspace's browser tests (driven
# with playwright-core, which web/app's lock file pins), protoc and its
# well-known types for the Terraform provider's plugin protocol
# (tf-provider's build), tmux for the
# shell's pseudo-terminal tests.
apt_install() { # command-or-file package
  command -v "$1" >/dev/null && return 0
  [ -e "$1" ] && return 0
  local sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1 \
    || { $sudo_ apt-get update >/dev/null && $sudo_ apt-get install -y --no-install-recommends "$2" >/dev/null; }
}
apt_install chromium chromium
apt_install protoc protobuf-compiler
# protoc's well-known types (google/protobuf/empty.proto), which the
# plugin protocol imports: only a recommendation of protobuf-compiler.
apt_install /usr/include/google/protobuf/empty.proto libprotobuf-dev
apt_install tmux tmux
# Terraform itself is on the machines (1.11); the provider's tests need it.
command -v terraform >/dev/null || { echo "terraform is not installed; the Terraform provider's tests need it (1.11)" >&2; exit 1; }
# Builds the web workspace too (web/build.rs runs npm ci and Vite), and the
# Terraform provider its tests install (nextest builds only the binaries of
# the package under test).
cargo build --bin weir --bin terraform-provider-weir

wait_port() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1 after 15 s" >&2
  return 1
}

# The tests' own directories (data dirs of `weir dev`, Terraform mirrors,
# SQLite files) go under one temporary directory per run, removed at the
# end, so that repeated runs do not fill the disk.
test_tmp="$(mktemp -d /tmp/weir-test.XXXXXX)"
export TMPDIR="$test_tmp"
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done; rm -rf "$test_tmp"' EXIT

port="${WEIR_TEST_BROKER_PORT:-29192}"
broker_data="$(mktemp -d /tmp/weir-broker.XXXXXX)"
"$CARGO_TARGET_DIR/debug/weir" broker --listen "127.0.0.1:$port" --data-dir "$broker_data" \
  >"$broker_data.log" 2>&1 &
cleanup+=("kill $! 2>/dev/null" "rm -rf '$broker_data'")
wait_port "$port"

port2="${WEIR_TEST_BROKER2_PORT:-29392}"
noida_data="$(mktemp -d /tmp/weir-noida.XXXXXX)"
"$tools/noida-db/bin/noida-db" start --only kafka --kafka-port "$port2" --host 127.0.0.1 \
  --data-dir "$noida_data" >"$noida_data.log" 2>&1 &
# The launcher execs a native child; stop it by its data dir, or it
# outlives this script and holds the port.
cleanup+=("kill $! 2>/dev/null" "pkill -f -- '--data-dir $noida_data' 2>/dev/null" "rm -rf '$noida_data'")
wait_port "$port2"

# A throwaway PostgreSQL server for the store and control-plane tests.
pg_port="${WEIR_TEST_PG_PORT:-29432}"
pg_data="$(mktemp -d /tmp/weir-pg.XXXXXX)"
WEIR_TEST_POSTGRES="$(bash infra/postgres/start.sh "$pg_port" "$pg_data")"
export WEIR_TEST_POSTGRES
cleanup+=("bash infra/postgres/stop.sh '$pg_data'")

cargo fmt --all --check
status=0
echo "== every test, broker: weir broker (127.0.0.1:$port)"
WEIR_TEST_BOOTSTRAP="127.0.0.1:$port" WEIR_TEST_EXACTLY_ONCE=0 cargo nextest run --workspace --no-fail-fast || status=1
echo "== Confluent's Python client against weir broker"
"$tools/confluent/bin/python" infra/broker/confluent_client_check.py "127.0.0.1:$port" || status=1
echo "== Confluent's DB-API driver (confluent-sql) against weir dev"
dev_dir="$(mktemp -d /tmp/weir-dev.XXXXXX)"
"$CARGO_TARGET_DIR/debug/weir" dev --data-dir "$dev_dir" \
  --port "${WEIR_TEST_DEV_PORT:-29080}" --broker-port "${WEIR_TEST_DEV_BROKER_PORT:-29093}" \
  >"$dev_dir.log" 2>&1 &
dev_pid=$!
cleanup+=("kill $dev_pid 2>/dev/null" "rm -rf '$dev_dir' '$dev_dir.log'")
for _ in $(seq 1 300); do [ -s "$dev_dir/dev.env" ] && break; sleep 0.1; done
wait_port "${WEIR_TEST_DEV_PORT:-29080}"
"$tools/confluent-sql-0.7.0/bin/python" infra/clients/confluent_sql_check.py "$dev_dir/dev.env" \
  || { status=1; tail -20 "$dev_dir.log"; }
echo "== Confluent's schema-registry client and serializers against weir dev"
"$tools/confluent-sr-2.16.1/bin/python" infra/clients/schema_registry_check.py "$dev_dir/dev.env" \
  "$CARGO_TARGET_DIR/debug/weir" || { status=1; tail -20 "$dev_dir.log"; }
echo "== dbt-confluent against weir dev"
"$tools/dbt-confluent-0.4.1/bin/python" infra/clients/dbt_check.py "$dev_dir/dev.env" \
  "$tools/dbt-confluent-0.4.1/bin/dbt" || { status=1; tail -20 "$dev_dir.log"; }
echo "== the web workspace in headless Chromium against weir dev"
# (web/build.rs installed web/app's packages; again here in case the build
# was cached from before they were removed.)
[ -d web/app/node_modules ] || (cd web/app && npm ci --no-audit --no-fund --loglevel=error)
(cd web/app && npx tsc --noEmit && WEIR_DEV_ENV="$dev_dir/dev.env" \
  WEIR_KAFKA_PYTHON="$tools/confluent/bin/python" node --test tests/) \
  || { status=1; tail -20 "$dev_dir.log"; }
echo "== Schemathesis fuzzing /openapi.json against weir dev"
SCHEMATHESIS="$tools/schemathesis-4.32.5/bin/schemathesis" bash infra/schemathesis/run.sh "$dev_dir/dev.env" \
  || { status=1; tail -20 "$dev_dir.log"; }
kill "$dev_pid" 2>/dev/null || true
echo "== integration tests, broker: noida-db (127.0.0.1:$port2)"
# Not the stepped-load test of the elastic pool (binary elastic): it
# measures how busy tasks are, and noida-db's own CPU on a 2-core machine
# leaves them too little to tell the low load from the 4× one. It runs
# once, above; the autoscaler does not depend on the broker. Nor the
# engine's own suites (the SQL corpus, the planner, the fuzzers, state
# sizes, Nexmark on in-memory sources), which never open a Kafka
# connection: running them twice would only double their 5 minutes.
WEIR_TEST_BOOTSTRAP="127.0.0.1:$port2" WEIR_TEST_EXACTLY_ONCE=1 cargo nextest run --workspace --no-fail-fast \
  -E 'kind(test) - binary(terraform) - binary(elastic) - binary(conformance) - binary(planner) - binary(fuzz) - binary(state_size) - binary(queries)' || status=1
exit $status
