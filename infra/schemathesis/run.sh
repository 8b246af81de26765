#!/usr/bin/env bash
# Fuzzes Weir's API from its own contract: Schemathesis (PyPI) reads
# /openapi.json of a running `weir dev`, generates requests for every
# operation (valid and invalid bodies, paths and queries) and checks each
# answer: no 5xx, a documented status code and content type, a body that
# matches the documented schema. Its stateful phase then chains calls along
# the links it infers from the response schemas (create, then get, update,
# delete what was made).
#
#   bash infra/schemathesis/run.sh DEV_ENV            # CI budget: 25 cases per operation
#   WEIR_FUZZ_EXAMPLES=500 bash infra/schemathesis/run.sh DEV_ENV   # a long run
#
# DEV_ENV is the dev.env `weir dev` writes (URL, key, organization,
# environment). Deleting API keys and role bindings is left out: the fuzzer
# would revoke its own credentials and every later case would be a 401
# (iam.rs and permissions.rs test those routes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
set -a
# shellcheck disable=SC1090
source "$1"
set +a
st="${SCHEMATHESIS:-$HOME/.cache/weir/tools/schemathesis-4.32.5/bin/schemathesis}"
log="$(mktemp /tmp/weir-schemathesis.XXXXXX)"
status=0
"$st" --no-color --config-file "$here/schemathesis.toml" run "$WEIR_URL/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases "${WEIR_FUZZ_PHASES:-examples,fuzzing,stateful}" --max-examples "${WEIR_FUZZ_EXAMPLES:-25}" --workers 2 \
  --exclude-name 'DELETE /iam/v2/api-keys/{id}' --exclude-name 'DELETE /iam/v2/role-bindings/{id}' \
  >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  cat "$log"
else
  # The summary: operations, stateful scenarios and links, cases run, seed.
  grep -E '^ +(Scenarios|API Links):' "$log" || true
  sed -n '/= SUMMARY =/,$p' "$log" | grep -E 'Selected|Tested|generated|Seed|passed|failures' || tail -20 "$log"
fi
rm -f "$log"
exit "$status"
