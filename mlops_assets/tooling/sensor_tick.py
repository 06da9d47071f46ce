"""One tick of a sensor, evaluated as the daemon would, and the runs it requests, executed here:
the sensor steps of ``mlops demo`` (``DemoStep(sensor=...)``).

``python -m mlops_assets.tooling.sensor_tick SENSOR`` loads the code location, evaluates
``SENSOR`` once against the instance of ``DAGSTER_HOME`` (the one the demo's materializations
wrote to) and executes each requested run in this process, on that instance, with the request's
job, partition, config and tags, plus the tags the daemon adds (the sensor's name, the run key).
So a newcomer without a daemon sees what the deployment does on its own: the retraining a failed
monitor asks for, tagged with the trigger that fired it (``mlops/trigger_*``).

Like the daemon, it starts no second run for a run key the sensor already used (a rerun of the
demo on the same instance), except where that run failed or was canceled: a demo that failed at
this step is rerun to completion. Because the runs carry the daemon's tags, a daemon started later
(``mlops dev``) skips those run keys too, although its own first tick reads the same monitors.

The sensor's cursor is not stored: the daemon keeps it in its instigator state, which no public
API writes (``dagster sensor cursor --set`` would, but it also records the sensor as stopped).
Each tick here is therefore a first tick: sensors built by
:func:`~mlops_assets.core.monitoring.retraining.retrain_on_failed_monitors` then read the last day
of their monitors' materializations, which holds the demo's.

Exit code: 0 when every run it started succeeded (or nothing was requested), 1 when one failed,
2 for a sensor the code location does not have.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

import dagster as dg

# The tags the daemon gives a sensor's run (dagster._core.storage.tags RUN_KEY_TAG and
# SENSOR_NAME_TAG): with them, its run-key deduplication sees the runs started here.
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
# The tags of a retraining trigger (mlops_assets.core.monitoring.verdicts.Trigger.tags), shown
# without the prefix.
TRIGGER_TAG_PREFIX = "mlops/trigger_"
NOTHING_REQUESTED = "no retraining requested"
# Runs that count as done for a run key: the daemon would not start another one either.
_RETRIED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def trigger_summary(tags: dict[str, str]) -> str:
    """The trigger tags of a request, as ``check=... metric=... value=...`` (``-`` when none)."""
    shown = [
        f"{key.removeprefix(TRIGGER_TAG_PREFIX)}={value}"
        for key, value in sorted(tags.items())
        if key.startswith(TRIGGER_TAG_PREFIX)
    ]
    return " ".join(shown) or "-"


def _earlier_run(
    instance: dg.DagsterInstance, sensor: str, run_key: str | None
) -> dg.DagsterRun | None:
    """The latest run this sensor started for ``run_key`` that failed neither way (None: none)."""
    if not run_key:
        return None
    runs = instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: sensor}))
    return next((run for run in runs if run.status not in _RETRIED), None)


def tick(
    sensor_name: str,
    *,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    print_fn: Callable[[str], None] | None = None,
) -> int:
    """Evaluate ``sensor_name`` of ``defs`` once on ``instance`` and execute what it requests;
    the exit code (see the module's docstring)."""
    print_fn = print_fn or _print
    try:
        sensor = defs.resolve_sensor_def(sensor_name)
    except (dg.DagsterInvariantViolationError, KeyError, ValueError) as error:
        print_fn(f"{sensor_name}: no such sensor in the code location ({error})")
        return 2
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    evaluation = sensor.evaluate_tick(context)
    requests = list(evaluation.run_requests or [])
    if not requests:
        reason = f" ({evaluation.skip_message})" if evaluation.skip_message else ""
        print_fn(f"{sensor_name}: {NOTHING_REQUESTED}{reason}")
        return 0

    failed = 0
    for request in requests:
        job_name = request.job_name or sensor.job_name
        partition = request.partition_key
        tags = {**request.tags, SENSOR_NAME_TAG: sensor_name}
        if request.run_key:
            tags[RUN_KEY_TAG] = request.run_key
        shown = (
            f"{sensor_name}: job {job_name} partition {partition or '-'} "
            f"run key {request.run_key or '-'} trigger {trigger_summary(tags)}"
        )
        earlier = _earlier_run(instance, sensor_name, request.run_key)
        if earlier is not None:
            # As the daemon: one run per run key.
            print_fn(f"{shown} -> already requested: run {earlier.run_id} ({earlier.status.value})")
            continue
        print_fn(f"{shown} -> running")
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            partition_key=partition,
            run_config=request.run_config or None,
            asset_selection=list(request.asset_selection) if request.asset_selection else None,
            tags=tags,
            raise_on_error=False,
        )
        outcome = "success" if result.success else "FAILURE"
        print_fn(f"{shown} -> {outcome}: run {result.run_id}")
        failed += not result.success
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_assets.tooling.sensor_tick",
        description="Evaluate a sensor once, as the daemon would, and execute the runs it "
        "requests on the instance of DAGSTER_HOME.",
    )
    parser.add_argument("sensor", help="the sensor's name (e.g. fraud_retrain_on_monitors)")
    parser.add_argument(
        "-m",
        "--module",
        default="mlops_assets.definitions",
        help="the module whose `defs` holds the sensor (default: the project's code location)",
    )
    args = parser.parse_args(argv)
    defs = importlib.import_module(args.module).defs
    with dg.DagsterInstance.get() as instance:
        return tick(args.sensor, defs=defs, instance=instance)


def _print(line: str) -> None:
    # Flushed: the runs' own logs (stderr) come between the lines.
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
