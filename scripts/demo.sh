#!/usr/bin/env bash
# Set up the environment and materialize every asset of every use case on the local profile.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec .venv/bin/mlops demo
