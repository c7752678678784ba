#!/usr/bin/env bash
# The quick loop: builds only the test binaries of one folder and runs them
# (ctest labels, see tests/CMakeLists.txt), in build/ (or $DERIVE_BUILD_DIR).
# Usage: scripts/check.sh [FOLDER [KIND]]
#   FOLDER: core, actors, web or samples (default: the unit tests of every folder)
#   KIND:   unit (default), integration or crash
# e.g. scripts/check.sh core; scripts/check.sh web integration
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
folder=${1:-}
kind=${2:-unit}
case "$folder" in
  ""|core|actors|web|samples) ;;
  *) echo "check: unknown folder '$folder' (core, actors, web, samples)" >&2; exit 2 ;;
esac
case "$kind" in
  unit|integration|crash) ;;
  *) echo "check: unknown kind '$kind' (unit, integration, crash)" >&2; exit 2 ;;
esac
if [[ -z "$folder" ]]; then
  target=check-unit
elif [[ "$kind" == unit ]]; then
  target=check-$folder
else
  target=check-$folder-$kind
fi
exec "$root/scripts/build.sh" "$target"
