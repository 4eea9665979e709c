#!/usr/bin/env bash
# Installs npm packages when node_modules is missing or older than the lock file, then builds
# (tsc -b is incremental, so an up-to-date build costs a second or two). `npm start` and `npm test`
# call this first, which is why a fresh clone needs no other command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/common.sh

node scripts/lib/node-version.js

# The browser tests (test/browser) drive Debian's Chromium through playwright-core, which never
# downloads a browser of its own: install it once, only when it is missing.
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi

# promtool checks and tests the alerting rules (infra/prometheus). It is taken out of Debian's
# prometheus package without installing that package, so no Prometheus server is set up or
# started on this machine; once, when it is missing.
promtool="${TALLY_HOME:-$PWD/.tally}/tools/promtool"
if [[ ! -x "$promtool" ]]; then
  install_promtool "$promtool"
fi

# npm rewrites node_modules/.package-lock.json on every install, so it dates the last install.
# The install applies infra/patches (patch-package, the postinstall script): a patch changed since
# is applied by installing again, from clean packages.
patches_newer() {
  [[ -n "$(find infra/patches -type f -newer node_modules/.package-lock.json 2>/dev/null)" ]]
}
if [[ ! -f package-lock.json ]]; then
  echo "deps: no package-lock.json; running npm install"
  npm install --no-audit --no-fund
elif [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "deps: node_modules is missing or older than package-lock.json; running npm ci"
  npm ci --no-audit --no-fund
elif patches_newer; then
  echo "deps: a patch in infra/patches is newer than node_modules; running npm ci"
  npm ci --no-audit --no-fund
fi

echo "deps: building (npm run build)"
npm run --silent build
