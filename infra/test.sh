#!/usr/bin/env bash
# The one command that runs the whole test suite: installs what is missing,
# starts a real Kafka-protocol broker (tansu) on 127.0.0.1, and runs every
# test of the workspace with cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
bash infra/broker/install-tansu.sh
export PATH="${WEIR_TOOLS:-$HOME/.cache/weir/tools}/bin:$PATH"

port="${WEIR_TEST_BROKER_PORT:-29192}"
log="$(mktemp)"
tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
export WEIR_TEST_BOOTSTRAP="127.0.0.1:$port"

# A throwaway PostgreSQL server for the store and control-plane tests.
pg_port="${WEIR_TEST_PG_PORT:-29432}"
pg_data="$(mktemp -d /tmp/weir-pg.XXXXXX)"
WEIR_TEST_POSTGRES="$(bash infra/postgres/start.sh "$pg_port" "$pg_data")"
export WEIR_TEST_POSTGRES
trap 'kill $broker 2>/dev/null || true; bash infra/postgres/stop.sh "$pg_data"' EXIT

cargo fmt --all --check
cargo nextest run --workspace --no-fail-fast
