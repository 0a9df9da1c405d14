#!/usr/bin/env bash
# Runs the parser property tests long: PROPTEST_CASES cases per property
# (default 1000000), or until DURATION (a `timeout` duration such as 30m)
# passes, whichever comes first. A failure prints the shrunk input, and
# proptest keeps it in proptest-regressions/ for the normal suite to replay.
#
#   scripts/proptest-long.sh                 # a million cases each
#   DURATION=30m scripts/proptest-long.sh    # stop after 30 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-1000000}"
nice -n 15 cargo test --release --no-run --lib --test proptest_parsers
run='nice -n 15 cargo test --release --lib block_props && nice -n 15 cargo test --release --test proptest_parsers'
started=$(date +%s)
status=0
if [ -n "${DURATION:-}" ]; then
  # 124: the time bound was reached with no failure so far.
  timeout --foreground "$DURATION" bash -c "$run" || status=$?
else
  bash -c "$run" || status=$?
fi
echo "proptest-long: PROPTEST_CASES=$PROPTEST_CASES, ran $(( $(date +%s) - started )) s, exit $status (124 = time bound, no failure)" >&2
[ "$status" -eq 0 ] || [ "$status" -eq 124 ]
