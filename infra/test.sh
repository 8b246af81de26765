#!/usr/bin/env bash
# The one command that runs the whole test suite: installs what is missing,
# then runs every test of the workspace with cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
bash infra/broker/install-tansu.sh
export PATH="$HOME/.cache/weir/tools/bin:$PATH"
cargo fmt --all --check
cargo nextest run --workspace --no-fail-fast
