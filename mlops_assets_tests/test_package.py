"""What importing the package does to every process of the project (``mlops_assets/__init__.py``)."""

from __future__ import annotations

import subprocess
import sys

# Prints whether Feast's functions carry typeguard's run-time checks, and whether the import
# hook left ``sys.meta_path``, in a fresh process (the hook acts on the first ``import feast``).
PROBE = """
import sys
import mlops_assets
import feast
from feast.field import Field
from mlops_assets import _FeastImportHook
print("typeguard" in Field.__init__.__code__.co_names)
print(any(isinstance(f, _FeastImportHook) for f in sys.meta_path))
"""


def test_feast_is_imported_without_typeguards_instrumentation() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]


# A cycle with a finalizer that becomes garbage just before exit, and an exit handler registered
# before the package's (so it runs after it) that says what the collector was left with.
EXIT_PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))
import mlops_assets

class Cycle:
    def __del__(self):
        print("finalized", flush=True)

a, b = Cycle(), Cycle()
a.other, b.other = b, a
del a, b
print("exiting", flush=True)
"""


def test_exit_collects_the_garbage_then_freezes_the_rest() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:4] == ["exiting", "finalized", "finalized", "frozen True"]
