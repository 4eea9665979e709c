#!/usr/bin/env bash
# `npm run bench [-- --events N --rate R --duration S --only metering,append,... --keep --profile]`:
# installs and builds what is missing, brings the local stack up, then measures Tally against the
# machine's own ceilings (test/bench, docs/benchmarks.md). It asserts nothing about speed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# TALLY_HOME and the stack's addresses, exported for the bench and the Tally processes it starts.
source scripts/lib/env.sh

bash scripts/ensure-deps.sh
bash scripts/stack.sh up
exec node test/bench/dist/main.js "$@"
