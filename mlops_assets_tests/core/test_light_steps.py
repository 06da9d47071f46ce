"""Light steps run in the run's own process (mlops_assets/core/runs.py, core/policies.py), and GX
suites record how long they took (core/validation)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_assets.core.policies import IN_PROCESS_TAG, LIGHT_STEP_TAGS
from mlops_assets.core.runs import runs_in_process
from mlops_assets.core.validation import (
    ExpectationSuiteSpec,
    SuiteResult,
    check_metadata,
    expect,
    merge_partition_results,
    run_suite,
)

REPO = Path(__file__).resolve().parents[2]
LIGHT = dict(LIGHT_STEP_TAGS)
HEAVY = {"dagster-celery/queue": "training"}
MULTIPROCESS = {"execution": {"config": {"multiprocess": {}}}}


def test_a_run_of_light_steps_only_runs_in_process_unless_its_config_names_an_executor() -> None:
    assert runs_in_process({}, [LIGHT, LIGHT])
    assert runs_in_process(None, [LIGHT])
    assert runs_in_process({"ops": {"bronze": {"config": {"seed": 1}}}}, [LIGHT])
    # One heavy step (or an untagged one) keeps the run multiprocess.
    assert not runs_in_process({}, [LIGHT, HEAVY])
    assert not runs_in_process({}, [LIGHT, None])
    assert not runs_in_process({}, [{IN_PROCESS_TAG: "false"}])
    # A config that asks for an executor is obeyed, whichever.
    assert not runs_in_process(MULTIPROCESS, [LIGHT])
    assert not runs_in_process({"execution": {"config": {"in_process": {}}}}, [LIGHT])
    assert not runs_in_process({}, [])


def test_the_fraud_ingestion_is_light_and_training_is_not() -> None:
    from mlops_assets.fraud import assets

    light = {
        assets.bronze,
        assets.card_features,
        assets.merchant_features,
        assets.fraud_feature_store,
    }
    for definition in light:
        assert definition.op.tags.get(IN_PROCESS_TAG) == "true", definition.op.name
    for definition in (assets.training_set, assets.model, assets.champion, assets.scores):
        assert IN_PROCESS_TAG not in definition.op.tags, definition.op.name


TINY_DEFINITIONS = """
import dagster as dg

from mlops_assets.core.policies import LIGHT_STEP_TAGS
from mlops_assets.core.runs import executor


@dg.asset(op_tags=LIGHT_STEP_TAGS)
def first() -> int:
    return 1


@dg.asset(op_tags=LIGHT_STEP_TAGS)
def second(first: int) -> int:
    return first + 1


defs = dg.Definitions(assets=[first, second], executor=executor)
"""


def test_the_cli_runs_light_steps_in_its_own_process(tmp_path: Path) -> None:
    """`dagster asset materialize` under the default (multiprocess) executor: both light steps
    execute in the command's process, one after the other, and the engine says why."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "tiny.py").write_text(TINY_DEFINITIONS)
    args = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-f",
        str(tmp_path / "tiny.py"),
    ]
    proc = subprocess.run(
        [*args, "--select", "first,second"],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
    [run_pid] = [e.pid for e in events if e.event_type == dg.DagsterEventType.RUN_START]
    started = [e for e in events if e.event_type == dg.DagsterEventType.STEP_START]
    assert len(started) == 2 and {e.pid for e in started} == {run_pid}
    assert not [e for e in events if e.event_type == dg.DagsterEventType.STEP_WORKER_STARTING]
    engine = [e.message or "" for e in events if e.event_type == dg.DagsterEventType.ENGINE_EVENT]
    assert any(f"every step is light, tagged {IN_PROCESS_TAG}" in m for m in engine), engine


SUITE = ExpectationSuiteSpec(
    name="amounts_are_sane",
    expectations=[expect("column_values_to_be_between", column="amount", min_value=0)],
)


def test_a_gx_suite_records_its_duration_without_changing_its_verdict() -> None:
    frame = pd.DataFrame({"amount": [1.0, 2.0, -3.0]})
    first, again = run_suite(frame, SUITE), run_suite(frame, SUITE)
    assert first.seconds is not None and first.seconds > 0
    # The import is paid once per process (maybe by an earlier test): never by the second suite.
    assert again.import_seconds is None
    # Durations are not part of the verdict: equal results stay equal.
    assert first == again and not first.success
    metadata = check_metadata(again)
    assert metadata["duration_s"] == round(again.seconds, 3)
    assert "import_s" not in metadata
    merged = merge_partition_results("amounts_are_sane", {"2024-01-01": first, "d2": again})
    assert merged.seconds == first.seconds + again.seconds
    plain = SuiteResult(name="x", success=True, row_count=0, results=())
    assert "duration_s" not in check_metadata(plain)
    assert merge_partition_results("x", {"a": plain, "b": plain}).seconds is None
