#!/usr/bin/env bash
# `npm run test:faults`: the fault-injection suite (test/faults/*.faults.spec.ts and the packages'
# services/*/src/*.faults.spec.ts). Installs and
# builds what is missing, brings the local stack up, runs every scenario in band and ends with the
# line `N passed, N failed`; each scenario's one-line JSON report is also appended to
# bench-results/faults-<UTC date>.json.
# It stops and starts PostgreSQL, Redis (and flushes it) and the Kafka broker that everything on
# this machine shares: run it alone (CI runs it after the main test run).
# TALLY_FAULTS_SCALE=full (default) or ci sizes it; TALLY_FAULTS_SEED=<n> replays a run's random
# choices (the seed is in each report). Arguments go to jest, e.g. `npm run test:faults -- apiFuzz`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/env.sh
results="$TALLY_HOME/jest-faults-results.json"
# Before anything can fail: a previous run's results must not pass for this run's.
rm -f "$results"

bash scripts/ensure-deps.sh
bash scripts/stack.sh up
TALLY_FAULTS_RUN="$(date -u +%Y%m%dT%H%M%SZ)"
export TALLY_FAULTS_RUN
echo "test:faults: scale ${TALLY_FAULTS_SCALE:-full}, run $TALLY_FAULTS_RUN"

# --forceExit, as in test.sh: a handle some scenario leaves open must not hold CI until its deadline.
status=0
npx jest --config jest.faults.config.js --ci --runInBand --forceExit --json --outputFile="$results" "$@" || status=$?

if [[ ! -f "$results" ]]; then
  echo "error: jest wrote no results to $results" >&2
  exit $((status == 0 ? 1 : status))
fi
node scripts/lib/jest-summary.js "$results"
exit "$status"
