"""What loading the code location costs, next to a bare ``import dagster``.

Every Dagster process (webserver, daemon, each step subprocess, each ``dagster asset materialize``)
imports ``mlops_assets.definitions``; budget (DESIGN.md §7): at most 1.3x a bare ``import dagster``.
The named alternative is the eager layout that imports the heavy libraries at module top
(MLflow, Feast, Great Expectations, scikit-learn), which this project avoids.

Each figure is the wall time of a fresh ``python -c 'import ...'`` process, repeated and
interleaved so that a slow moment of the machine hits every candidate alike; the median is shown.

    .venv/bin/python bench/import_time.py [--repeat 7] [--eager-repeat 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CANDIDATES = {
    "python (interpreter start)": "pass",
    "import dagster": "import dagster",
    "import mlops_assets.definitions": "import mlops_assets.definitions",
}
EAGER = (
    "import dagster, mlflow, feast, great_expectations, sklearn.pipeline; "
    "import mlops_assets.definitions"
)


def wall(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--eager-repeat", type=int, default=1, help="0 skips the eager layout")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        # Local profile in a scratch home: no service, nothing written to the repo.
        env = {**os.environ, "MLOPS_PROFILE": "local", "MLOPS_HOME": home}
        for code in CANDIDATES.values():  # warm the page cache once
            wall(code, env)
        times: dict[str, list[float]] = {name: [] for name in CANDIDATES}
        for _ in range(args.repeat):
            for name, code in CANDIDATES.items():
                times[name].append(wall(code, env))
        eager = [wall(EAGER, env) for _ in range(args.eager_repeat)]

    med = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"import cost, median of {args.repeat} fresh processes (PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})"
    )
    for name, value in med.items():
        spread = f"{min(times[name]):.2f}-{max(times[name]):.2f}"
        print(f"  {name:<36} {value:6.2f} s   (range {spread} s)")
    ratio = med["import mlops_assets.definitions"] / med["import dagster"]
    print(f"  definitions / bare dagster           {ratio:6.2f} x   (budget <= 1.30 x)")
    if eager:
        eager_med = statistics.median(eager)
        print(
            f"  eager alternative (heavy libs at top) {eager_med:6.2f} s = "
            f"{eager_med / med['import dagster']:.1f} x bare dagster ({len(eager)} run(s))"
        )


if __name__ == "__main__":
    main()
