"""One day of fraud ingestion from the CLI, where a fresh process spends its time.

What is run is the README's ingestion (bronze, both feature snapshots, their blocking checks and
Feast) for one day at the DEFAULT daily volume (no run config), on the local profile, in a fresh
``MLOPS_HOME`` per configuration::

    dagster asset materialize -m mlops_assets.definitions \\
      --select 'fraud/transactions,fraud/labels,fraud/card_features,fraud/merchant_features,\\
fraud/feature_store' --partition 2024-01-01

twice, each in a fresh process: the first day (which creates the instance, the Feast registry and
the online store) and then the next day, timed: the daily ingestion as a schedule runs it. Per
configuration:

* ``ours``          the command as the README writes it: a run made of light steps only
                    (``mlops/in_process``, :mod:`mlops_assets.core.policies`) executes them in
                    the CLI's own process;
* ``multiprocess``  the same with ``--config-json`` naming Dagster's default executor: a process
                    per step, each importing Dagster, the code location, GX and Feast again
                    (what the command did before light steps).

Printed for the timed run: the wall time of the command, then the phases from the run's event
log: before the run starts (interpreter, CLI, code location, run creation), each step from its
launch (multiprocess: ``STEP_WORKER_STARTING``) or start to its success, the gaps between them,
and after the run; the GX suites as their checks recorded them (``duration_s``, and ``import_s``
for the one that imported great_expectations). ``--gx`` also times the GX suites of one default
day alone, in a fresh process: the import, each suite the first time, and again warm.
``--demo`` times ``mlops demo --jobs N`` once in a fresh home (``--demo-jobs``, 2: two use cases
at once; 1: one after the other, as before) and prints each of its steps' wall time.

    .venv/bin/python bench/fraud_day.py [--configs ours,multiprocess] [--gx] [--demo [--demo-jobs 1]]

Run it under the shared lock on a busy machine: ``flock /tmp/bench.lock .venv/bin/python ...``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SELECTION = (
    "fraud/transactions,fraud/labels,fraud/card_features,fraud/merchant_features,"
    "fraud/feature_store"
)
DAYS = ("2024-01-01", "2024-01-02")
MULTIPROCESS = json.dumps({"execution": {"config": {"multiprocess": {}}}})
CONFIGS = {"ours": [], "multiprocess": ["--config-json", MULTIPROCESS]}


def home_env(home: Path) -> dict[str, str]:
    """The environment of ``eval "$(mlops env)"`` for a fresh local home (the project's Feast
    repo, as the tests use it)."""
    base = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_FEAST_REPO": str(REPO / "feature_repo")}
    base.pop("DAGSTER_HOME", None)
    base.pop("MLOPS_RUN_CONFIG", None)
    out = subprocess.run(
        [PYTHON, "-m", "mlops_assets.tooling.cli", "env"],
        env=base,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = dict(base)
    for line in out.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


def materialize(env: dict[str, str], day: str, extra: list[str]) -> tuple[float, float, float]:
    """Run the command; its wall time, and the wall-clock times it started and ended."""
    args = [PYTHON, "-m", "dagster", "asset", "materialize", "-m", "mlops_assets.definitions"]
    args += ["--select", SELECTION, "--partition", day, *extra]
    began = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{day} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, began, began + wall


def phases(dagster_home: str, began: float, ended: float) -> list[tuple[str, float]]:
    """The latest run's phases from its event log, and its GX checks' recorded durations."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = dagster_home
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs(limit=1)
        logs = instance.all_logs(run.run_id)
    first: dict[str, float] = {}
    done: dict[str, float] = {}
    run_start = run_end = None
    checks: list[tuple[str, float]] = []
    for entry in logs:
        event = entry.dagster_event
        if event is None:
            continue
        kind, step, ts = event.event_type.name, entry.step_key, entry.timestamp
        if kind == "RUN_START":
            run_start = ts
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            run_end = ts
        elif kind in ("STEP_WORKER_STARTING", "STEP_START") and step:
            first.setdefault(step, ts)
        elif kind == "STEP_SUCCESS" and step:
            done[step] = ts
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            meta = {k: v.value for k, v in evaluation.metadata.items()}
            if "duration_s" in meta:
                checks.append((f"  GX {evaluation.check_name}", float(meta["duration_s"])))
                if meta.get("import_s"):
                    checks.append(("  GX import (in the first suite)", float(meta["import_s"])))
    assert run_start is not None and run_end is not None, "no run events"
    rows = [("before the run (interpreter, CLI, code location, run)", run_start - began)]
    cursor = run_start
    for step in sorted(first, key=first.get):
        if first[step] > cursor + 0.05:
            rows.append(("  between steps", first[step] - cursor))
        rows.append((f"step {step}", done[step] - first[step]))
        cursor = max(cursor, done[step])
    rows.append(("run end after the last step", run_end - cursor))
    rows.append(("after the run (exit)", ended - run_end))
    return rows + checks


def ingestion(configs: list[str]) -> None:
    for config in configs:
        with tempfile.TemporaryDirectory(prefix=f"fraud_day_{config}_") as tmp:
            env = home_env(Path(tmp))
            first, _, _ = materialize(env, DAYS[0], CONFIGS[config])
            wall, began, ended = materialize(env, DAYS[1], CONFIGS[config])
            print(f"\n== {config}: first day {first:.1f} s; next day (fresh process) {wall:.1f} s")
            for name, seconds in phases(env["DAGSTER_HOME"], began, ended):
                print(f"  {seconds:6.2f} s  {name}")


GX_ALONE = """
import time, datetime
import polars as pl
from mlops_assets.fraud import expectations, sources
from mlops_assets.core.validation import run_suite
tx, labels = (pl.from_arrow(t) for t in sources.generate_day(datetime.date(2024, 1, 2)))
for rnd in ("fresh process", "warm"):
    t0 = time.perf_counter()
    a = run_suite(tx, expectations.TRANSACTIONS_SUITE)
    b = run_suite(labels, expectations.LABELS_SUITE)
    total = time.perf_counter() - t0
    print(f"{rnd}: transactions {a.seconds:.2f} s ({tx.height:,} rows), labels {b.seconds:.2f} s"
          f" ({labels.height:,} rows), import {a.import_seconds or 0:.2f} s, all {total:.2f} s,"
          f" passed {a.success and b.success}")
"""


def gx_alone() -> None:
    print("\n== GX suites of one default day")
    proc = subprocess.run([PYTHON, "-c", GX_ALONE], cwd=REPO, capture_output=True, text=True)
    print(proc.stdout.strip() or proc.stderr[-2000:])


def demo(jobs: int) -> None:
    """``mlops demo --jobs N`` once in a fresh home; the wall time of each of its steps (with
    ``--jobs 2`` two use cases run at once: a step's time then runs from its own start line to the
    next start line of any use case, so read the total)."""
    with tempfile.TemporaryDirectory(prefix="fraud_day_demo_") as tmp:
        env = {**os.environ, "MLOPS_HOME": tmp, "MLOPS_FEAST_REPO": str(REPO / "feature_repo")}
        for name in ("DAGSTER_HOME", "MLOPS_RUN_CONFIG"):
            env.pop(name, None)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, "-m", "mlops_assets.tooling.cli", "demo", "--jobs", str(jobs)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        steps: list[tuple[str, float]] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            if re.match(r"^\[\w+\] ", line) and "failed" not in line:
                steps.append((line.strip(), time.perf_counter() - t0))
        code = proc.wait()
        wall = time.perf_counter() - t0
        print(f"\n== mlops demo --jobs {jobs}: {wall:.1f} s (exit {code})")
        marks = [*steps, ("(summary)", wall)]
        for (name, at), (_, until) in itertools.pairwise(marks):
            print(f"  {until - at:6.1f} s  {name[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="ours,multiprocess")
    parser.add_argument("--gx", action="store_true", help="also time the GX suites alone")
    parser.add_argument("--demo", action="store_true", help="also time `mlops demo` (minutes)")
    parser.add_argument("--demo-jobs", type=int, default=2, help="`mlops demo --jobs` (2)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        sys.exit(f"unknown configs {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    ingestion(configs)
    if args.gx:
        gx_alone()
    if args.demo:
        demo(args.demo_jobs)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
