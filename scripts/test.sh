#!/usr/bin/env bash
# README command 2: install what is missing, run the whole test suite in parallel, then fail if
# the kit left any namespace, link or attached program behind.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit $?
scripts/venv.sh || exit $?
.venv/bin/python -m pytest -n "${XDPTEST_WORKERS:-2}" "$@" tests
status=$?
.venv/bin/xdptest-leftovers --check || status=1
exit $status
