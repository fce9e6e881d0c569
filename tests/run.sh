#!/usr/bin/env bash
# Set up and run nsvirt's whole test suite: lint, then every test tier.
# Extra arguments go to pytest (e.g. tests/run.sh -k conformance).
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup
echo "tests: ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "tests: pytest"
# pytest exits 5 when it collects nothing, so an empty run fails here too.
exec .venv/bin/python -m pytest "$@"
