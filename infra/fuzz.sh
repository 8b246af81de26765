#!/usr/bin/env bash
# Runs the SQL fuzzer (compute-pool/tests/fuzz.rs) for longer than the test
# suite's 20 seconds, and the REST API fuzzer with more requests:
#   infra/fuzz.sh [seconds] [api-requests]    (default 600 and 5000)
# WEIR_FUZZ_SEED=N repeats a run. The API fuzzer needs the test broker, so
# it runs under infra/test.sh's services only when WEIR_TEST_BOOTSTRAP is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
seconds="${1:-600}"
requests="${2:-5000}"
WEIR_FUZZ_SECONDS="$seconds" cargo nextest run --workspace --no-capture -E 'binary(fuzz)'
if [ -n "${WEIR_TEST_BOOTSTRAP:-}" ]; then
  WEIR_API_FUZZ_REQUESTS="$requests" cargo nextest run --workspace --no-capture -E 'binary(api_fuzz)'
else
  echo "WEIR_TEST_BOOTSTRAP is not set: skipping the REST API fuzzer (it needs a broker)"
fi
