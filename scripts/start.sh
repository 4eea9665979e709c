#!/usr/bin/env bash
# `npm start`: installs and builds what is missing, brings the local stack up, then runs Tally's
# main process in the foreground (Ctrl-C stops Tally; the stack keeps running until stack:down).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-deps.sh
bash scripts/stack.sh up

main=services/tally/dist/main.js
if [[ ! -f "$main" ]]; then
  echo "error: $main was not built; services/tally has no src/main.ts yet" >&2
  exit 1
fi
exec node "$main"
