#!/usr/bin/env bash
# `npm test`: installs and builds what is missing, brings the local stack up, lints, type-checks,
# then runs every jest project (unit and integration) and ends with the line `N passed, N failed`.
# Arguments go to jest, e.g. `npm test -- test/stack`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/env.sh
results="$TALLY_HOME/jest-results.json"
# Before anything can fail: a previous run's results must not pass for this run's.
rm -f "$results"

bash scripts/ensure-deps.sh
bash scripts/stack.sh up
echo "test: lint"
npm run --silent lint
echo "test: typecheck"
npm run --silent typecheck

# One test file at a time: integration tests share the 2-core machine with Kafka and the registry.
# --forceExit: a handle some test leaves open (jest names it) must not hold CI until its deadline.
status=0
npx jest --ci --runInBand --forceExit --json --outputFile="$results" "$@" || status=$?

if [[ ! -f "$results" ]]; then
  echo "error: jest wrote no results to $results" >&2
  exit $((status == 0 ? 1 : status))
fi
node scripts/lib/jest-summary.js "$results"
exit "$status"
