#!/usr/bin/env bash
# Sets up what is missing, builds everything and runs every test (ctest),
# browser tests included.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" --tests
if [[ -f "$root/tests/browser/package.json" && ! -d "$root/tests/browser/node_modules" ]]; then
  echo "==> installing the browser test driver (playwright-core, no browser download)" >&2
  (cd "$root/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
"$root/scripts/build.sh"
build="${DERIVE_BUILD_DIR:-$root/build}"
echo "==> running tests" >&2
cd "$build"
ctest --output-on-failure -j"$(nproc)" --timeout 900
