#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker into ~/.cache/weir/tools (cached
# across runs; ~15 minutes on 2 cores the first time). `weir dev` finds it there.
set -euo pipefail
root="${WEIR_TOOLS:-$HOME/.cache/weir/tools}"
if [ -x "$root/bin/tansu" ]; then echo "tansu: $root/bin/tansu"; exit 0; fi
echo "installing tansu 0.6.0 into $root (first run only)…"
cargo install tansu --version 0.6.0 --locked --features dynostore,libsql \
  --root "$root" --target-dir "$HOME/.cache/weir/tansu-target"
