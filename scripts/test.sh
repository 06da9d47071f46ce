#!/usr/bin/env bash
# Set up the environment (with the test tools) and run the whole test suite.
# The stack tests need PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379; moto's S3 server
# and the MLflow server are started by the tests themselves.
set -euo pipefail
# Sourced without this script's arguments, which are pytest's (a sourced script sees its
# caller's "$@", and bootstrap passes its own to `uv sync`).
args=("$@")
set --
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
.venv/bin/ruff check mlops_assets mlops_assets_tests bench
.venv/bin/dagster definitions validate -m mlops_assets.definitions
# Two workers (the machine has two cores; most tests wait on subprocesses and servers); the tests
# of the shared services stay on one of them (mlops_assets_tests/conftest.py).
exec .venv/bin/pytest -n auto --dist loadgroup "${args[@]}"
