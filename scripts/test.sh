#!/usr/bin/env bash
# The README's test command: start the servers the tests need (if they are not
# already up), run unit then integration tests, and stop what this script started.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

$BIN/ruff check spice tests bench || exit 1
$BIN/mypy spice || exit 1

was_up=0
$BIN/spice stack status >/dev/null 2>&1 && was_up=1
if [ "$was_up" = 0 ]; then
  $BIN/spice stack up || { echo "stack failed to start"; $BIN/spice stack down; exit 1; }
fi

# The dashboard test drives a real headless Chromium (Debian packages).
$BIN/python -m spice.devstack.browser || exit 1
export SPICE_REQUIRE_BROWSER=1

mkdir -p test-artifacts
$BIN/pytest -m "${MARKERS:-unit or integration}" -p no:cacheprovider "$@"
status=$?

if [ "$was_up" = 0 ]; then
  $BIN/spice stack down
fi
exit $status
