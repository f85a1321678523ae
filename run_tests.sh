#!/usr/bin/env bash
# Set up (.venv, package, data) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup_env.sh
python -m pytest "$@"
