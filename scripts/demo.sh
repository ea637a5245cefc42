#!/usr/bin/env bash
# README command 1: install what is missing, then run xdptest-gen on its built-in topology.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/venv.sh
exec .venv/bin/xdptest-gen "$@"
