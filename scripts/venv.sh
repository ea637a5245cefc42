#!/usr/bin/env bash
# Creates .venv (once) and installs the kit into it in editable mode with its test and lint tools.
# Safe to run again: pip only rebuilds the extension and the BPF objects.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel cffi
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation -e '.[test,lint]'
