#!/usr/bin/env bash
# The README's test command: start the servers the tests need (if they are not
# already up), run unit then integration tests, and stop what this script started.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

$BIN/ruff check spice tests bench || exit 1
$BIN/mypy spice || exit 1

# The tests run every adapter against its real server: Elasticsearch and TerminusDB join
# the default four (TerminusDB is built from the vendored source on the first run and
# cached under ~/.cache/spice-harvester, about 7 minutes).
export SPICE_STACK_EXTRAS="${SPICE_STACK_EXTRAS:-elasticsearch,terminusdb}"

was_up=0
$BIN/spice stack status >/dev/null 2>&1 && was_up=1
if [ "$was_up" = 0 ]; then
  $BIN/spice stack up || { echo "stack failed to start"; $BIN/spice stack down; exit 1; }
fi

# The dashboard test drives a real headless Chromium (Debian packages).
$BIN/python -m spice.devstack.browser || exit 1
export SPICE_REQUIRE_BROWSER=1

mkdir -p test-artifacts

# One pytest run. For the reliability suite, a scenario that fails fails the run; it is
# run once more (the failed node ids read from the first run's JUnit report) so that
# both results are printed, the rerun also into test-artifacts/reliability-reruns.txt:
# one that passes the second time is flaky, a bug to fix, and still fails the run.
run_tests() {
  if [ "${MARKERS:-}" != reliability ]; then
    $BIN/pytest -m "${MARKERS:-unit or integration}" -p no:cacheprovider "$@"
    return $?
  fi
  local report=test-artifacts/reliability-first.xml
  $BIN/pytest -m reliability -p no:cacheprovider --junitxml="$report" "$@"
  local first=$?
  if [ "$first" = 0 ] || [ "$first" = 5 ]; then
    return $first
  fi
  local failed
  mapfile -t failed < <($BIN/python scripts/failed_tests.py "$report")
  if [ "${#failed[@]}" = 0 ]; then
    return $first  # no test failed: pytest itself did (collection, an internal error)
  fi
  echo "== reliability: ${failed[*]} failed on the first run (above); running them once more"
  $BIN/pytest -m reliability -p no:cacheprovider "${failed[@]}" \
    | tee -a test-artifacts/reliability-reruns.txt
  local second=${PIPESTATUS[0]}
  echo "== reliability: first run exit $first (${failed[*]}), rerun exit $second" \
    | tee -a test-artifacts/reliability-reruns.txt
  return $first
}

run_tests "$@"
status=$?

# The second pass: the end-to-end API, BFF and projection tests (and, with the
# reliability suite, the crash-point scenarios) again with the graph on TerminusDB and
# the read model on Elasticsearch (docs/backends.md).
if [ "$status" = 0 ] && [ "${SECOND_PASS:-1}" = 1 ] && [ $# = 0 ]; then
  if [ "${MARKERS:-}" = reliability ]; then
    second=(tests/reliability/test_crash_points.py)
  else
    second=(tests/integration/test_api_end_to_end.py tests/integration/test_bff.py
            tests/integration/test_projections.py tests/integration/test_query_routes.py
            tests/integration/test_analysis_routes.py tests/integration/test_history_routes.py)
  fi
  echo "== second pass: GRAPH_BACKEND=terminusdb SEARCH_BACKEND=elasticsearch: ${second[*]}"
  GRAPH_BACKEND=terminusdb SEARCH_BACKEND=elasticsearch run_tests "${second[@]}"
  status=$?
fi

if [ "${MARKERS:-}" = reliability ]; then
  echo "== reliability: the books of every scenario run (test-artifacts/reliability-report.jsonl)"
  $BIN/python scripts/reliability_table.py
fi

if [ "$was_up" = 0 ]; then
  $BIN/spice stack down
fi
exit $status
