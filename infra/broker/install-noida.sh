#!/usr/bin/env bash
# Installs noida-db, a second, independent Kafka-protocol server (PyPI), into
# a Python venv under ~/.cache/weir/tools. The test suite runs the
# integration tests against it as well as `weir broker`, so that nothing in Weir
# relies on one broker's quirks.
set -euo pipefail
root="${WEIR_TOOLS:-$HOME/.cache/weir/tools}"
if [ -x "$root/noida-db/bin/noida-db" ]; then echo "noida-db: $root/noida-db/bin/noida-db"; exit 0; fi
echo "installing noida-db 0.2.3 into $root/noida-db (first run only)…"
python3 -m venv "$root/noida-db"
"$root/noida-db/bin/pip" install --quiet --disable-pip-version-check noida-db==0.2.3
