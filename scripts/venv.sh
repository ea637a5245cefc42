#!/usr/bin/env bash
# Creates .venv (once) and installs the kit into it in editable mode with its test, lint and plot extras.
# Safe to run again: pip only rebuilds the extension and the BPF objects. The build's own chatter
# (setuptools' notes on editable installs) is shown only when the install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
quietly() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
quietly .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip setuptools wheel cffi
quietly .venv/bin/python -m pip install --disable-pip-version-check --no-build-isolation -e '.[test,lint,plot]'
