#!/usr/bin/env bash
# `npm run tally -- <command>`: the engineers' CLI (send, balance, replay [--verify], stack).
# Operators run it beside a running main job, so it does only what the CLI needs: the Node.js
# check and the CLI's own incremental build (seconds when nothing changed). Not ensure-deps.sh:
# no Debian packages, no npm install over a node_modules in use (only a missing one is
# installed), and no web build, whose emptyOutDir empties services/web/dist under the API.
# The CLI runs in the caller's directory (`send --schema <file>` is relative to it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

node "$root/scripts/lib/node-version.js"
if [[ ! -f "$root/node_modules/.package-lock.json" ]]; then
  echo "deps: node_modules is missing; running npm ci" >&2
  (cd "$root" && npm ci --no-audit --no-fund) >&2
fi
"$root/node_modules/.bin/tsc" -b "$root/services/tally" >&2
exec node "$root/services/tally/dist/cli.js" "$@"
