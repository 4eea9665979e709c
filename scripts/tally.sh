#!/usr/bin/env bash
# `npm run tally -- <command>`: the engineers' CLI (send, balance, replay [--verify], stack).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure-deps.sh" >&2
exec node "$root/services/tally/dist/cli.js" "$@"
