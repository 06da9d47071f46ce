# Sourced by the other scripts: make sure uv is there and the locked environment is installed.
# Needs only Python 3.11 and pip on the machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# This environment may set PYTHONDONTWRITEBYTECODE; compile bytecode at install time instead, or
# every Dagster step subprocess recompiles its imports (3-4x slower).
export UV_COMPILE_BYTECODE=1
export UV_LINK_MODE=copy

if ! python3 -m uv --version >/dev/null 2>&1; then
  python3 -m pip install --quiet "uv>=0.5"
fi
uv() { python3 -m uv "$@"; }
uv sync --frozen --python 3.11 "$@"
# The project itself is installed editable, so uv does not compile it: do it here.
.venv/bin/python -m compileall -q mlops_assets feature_repo >/dev/null
