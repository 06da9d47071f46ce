"""Runs whose process died release their pool slots (mlops_assets/core/runs.py).

The fault, replayed for real: ``dagster asset materialize`` on the local profile's instance
(dagster.yaml in a fresh DAGSTER_HOME), killed with ``kill -9`` while its step holds the
``training`` slot; the same command again must finish, the dead run must be marked failed saying
why, and no slot may stay held. Then the detection itself, run by run, and the daemon's path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.test_utils import create_run_for_test

from mlops_assets.core.policies import TRAINING_POOL
from mlops_assets.core.runs import (
    RUN_WORKER_TAG,
    RunWorker,
    RunWorkerHealthLauncher,
    process_is_alive,
    process_start_time,
    reap_dead_runs,
)

REPO = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()

# One asset in the training pool that sleeps: the ML assets are not needed to hold a slot.
TINY_DEFINITIONS = """
import os
import time

import dagster as dg

from mlops_assets.core.policies import TRAINING_POOL
from mlops_assets.core.runs import executor


@dg.asset(pool=TRAINING_POOL)
def fit() -> None:
    time.sleep(float(os.environ["TINY_SLEEP_S"]))


defs = dg.Definitions(assets=[fit], executor=executor)
"""
IN_PROCESS = json.dumps({"execution": {"config": {"in_process": {}}}})
# Guards, not measures: a run that waits forever fails the test here instead of hanging it.
RUN_TIMEOUT_S = 180


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A fresh DAGSTER_HOME with the local profile's dagster.yaml, as `mlops` prepares it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "tiny_definitions.py").write_text(TINY_DEFINITIONS)
    return home


def _command(home: Path, in_process: bool) -> list[str]:
    args = [sys.executable, "-m", "dagster", "asset", "materialize"]
    args += ["-f", str(home.parent / "tiny_definitions.py"), "--select", "fit"]
    return args + (["--config-json", IN_PROCESS] if in_process else [])


def _env(home: Path, sleep_s: float) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "TINY_SLEEP_S": str(sleep_s)}


def _start(home: Path, name: str, *, sleep_s: float, in_process: bool) -> subprocess.Popen:
    # Output to a file: a pipe nobody reads would block Dagster's logging once full.
    log = (home.parent / f"{name}.log").open("w")
    return subprocess.Popen(
        _command(home, in_process),
        env=_env(home, sleep_s),
        cwd=home.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _run(home: Path, name: str, *, in_process: bool) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        _command(home, in_process),
        env=_env(home, 0),
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    (home.parent / f"{name}.log").write_text(proc.stdout + proc.stderr)
    return proc


def _wait_for(what: str, found: Callable[[], object], timeout: float = 90) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _pool(instance: dg.DagsterInstance):
    return instance.event_log_storage.get_concurrency_info(TRAINING_POOL)


def _holder(instance: dg.DagsterInstance) -> str | None:
    """The run holding the training slot, once its step has started."""
    for slot in _pool(instance).claimed_slots:
        started = instance.all_logs(slot.run_id, of_type={dg.DagsterEventType.STEP_START})
        if started:
            return slot.run_id
    return None


def _waiting(instance: dg.DagsterInstance) -> str | None:
    """A run whose step waits for the training slot."""
    pending = [p for p in _pool(instance).pending_steps if p.assigned_timestamp is None]
    return pending[0].run_id if pending else None


def _messages(
    instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType
) -> list[str]:
    return [e.message for e in instance.all_logs(run_id, of_type={event_type})]


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def _assert_pool_is_free(instance: dg.DagsterInstance) -> None:
    info = _pool(instance)
    assert info.claimed_slots == [] and info.pending_steps == [], info


def _interrupt_while_waiting(
    instance: dg.DagsterInstance, home: Path, sig: signal.Signals, *, in_process: bool
) -> None:
    """A second run waits for the held slot; ``sig`` must stop it, as a failure, slot unclaimed."""
    waiter = _start(home, "waiter", sleep_s=0, in_process=in_process)
    try:
        run_id = _wait_for("a run waiting for the slot", lambda: _waiting(instance))
        waiter.send_signal(sig)
        assert waiter.wait(timeout=60) != 0
    finally:
        waiter.kill()
        waiter.wait()
    assert isinstance(run_id, str)
    assert _status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    assert run_id not in {p.run_id for p in _pool(instance).pending_steps}


def test_a_run_killed_holding_the_training_slot_no_longer_blocks_the_next(
    dagster_home: Path,
) -> None:
    """The user's report, multiprocess executor (the default): `kill -9` of the command kills
    the run worker, not its step process, which finishes its step on its own. The same command
    again waits for that process, then frees the slot, marks the dead run failed, and runs."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        killed = _start(dagster_home, "killed", sleep_s=20, in_process=False)
        try:
            dead_run = _wait_for("the step to hold the slot", lambda: _holder(instance))
            _interrupt_while_waiting(instance, dagster_home, signal.SIGTERM, in_process=False)
        finally:
            killed.kill()  # SIGKILL
            killed.wait()
        assert isinstance(dead_run, str)

        again = _run(dagster_home, "again", in_process=False)

        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert _status(instance, dead_run) == dg.DagsterRunStatus.FAILURE
        [failure] = _messages(instance, dead_run, dg.DagsterEventType.RUN_FAILURE)
        assert f"run worker pid {killed.pid} on host {HOST} is gone" in failure
        # Not while its step process lived: that process finished its step (and then died),
        # and only then was the run ended.
        records = instance.all_logs(dead_run)
        kinds = [r.dagster_event_type for r in records]
        assert kinds.index(dg.DagsterEventType.STEP_SUCCESS) < kinds.index(
            dg.DagsterEventType.RUN_FAILURE
        )
        [new_run] = [r.run_id for r in instance.get_runs(limit=1)]
        assert _status(instance, new_run) == dg.DagsterRunStatus.SUCCESS
        released = _messages(instance, new_run, dg.DagsterEventType.ENGINE_EVENT)
        assert any(f"Run {dead_run} released (FAILURE)" in m for m in released), released
        _assert_pool_is_free(instance)


def test_an_in_process_run_killed_holding_the_slot_is_released_when_the_next_starts(
    dagster_home: Path,
) -> None:
    """The in-process executor (`mlops demo`'s): the step dies with its worker, so the next run
    frees the slot as it starts. Ctrl-C of a run waiting for the slot stops it."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        killed = _start(dagster_home, "killed", sleep_s=300, in_process=True)
        try:
            dead_run = _wait_for("the step to hold the slot", lambda: _holder(instance))
            _interrupt_while_waiting(instance, dagster_home, signal.SIGINT, in_process=True)
        finally:
            killed.kill()
            killed.wait()
        assert isinstance(dead_run, str)

        again = _run(dagster_home, "again", in_process=True)

        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert f"Run {dead_run} released (FAILURE)" in again.stdout + again.stderr
        [failure] = _messages(instance, dead_run, dg.DagsterEventType.RUN_FAILURE)
        assert f"run worker pid {killed.pid} on host {HOST} is gone" in failure
        [engine] = [
            m
            for m in _messages(instance, dead_run, dg.DagsterEventType.ENGINE_EVENT)
            if "is gone" in m
        ]
        assert "marked ended by run" in engine
        _assert_pool_is_free(instance)


# -- the detection, run by run -------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_process_is_alive_and_a_dead_or_reused_pid_is_not() -> None:
    me = os.getpid()
    assert process_is_alive(me, time.time())
    assert not process_is_alive(_dead_pid(), time.time())
    started = process_start_time(me)
    if started is not None:  # where start times can be read (Linux): a reused pid is not alive
        assert process_is_alive(me, started)
        assert not process_is_alive(me, started - 3600)


Worker = Callable[[str], RunWorker]


def _dead_worker(host: str = HOST) -> Worker:
    pid = _dead_pid()
    return lambda run_id: RunWorker(run_id, host, pid, time.time())


def _started_run(instance: dg.DagsterInstance, worker: Worker | None) -> dg.DagsterRun:
    """A STARTED run holding a training slot, with the tag ``worker(run_id)`` wrote."""
    run_id = str(uuid.uuid4())
    tags = {RUN_WORKER_TAG: worker(run_id).to_tag()} if worker else {}
    run = create_run_for_test(
        instance, run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags
    )
    instance.event_log_storage.claim_concurrency_slot(TRAINING_POOL, run.run_id, "fit")
    return run


def _step_worker_event(
    instance: dg.DagsterInstance, run: dg.DagsterRun, kind: dg.DagsterEventType, pid: int
) -> None:
    event = DagsterEvent(
        event_type_value=kind.value,
        job_name=run.job_name,
        step_key="fit",
        pid=pid,
        event_specific_data=EngineEventData(),
    )
    instance.report_dagster_event(event, run_id=run.run_id)


@pytest.fixture
def instance(dagster_home: Path):
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        # Room for every run below to hold a slot at once.
        instance.event_log_storage.set_concurrency_slots(TRAINING_POOL, 10)
        yield instance


def _runs_of_every_kind(instance: dg.DagsterInstance) -> dict[str, dg.DagsterRun]:
    dead = _dead_worker()
    runs = {
        "live": _started_run(instance, RunWorker.current),
        "dead": _started_run(instance, dead),
        "other host": _started_run(instance, _dead_worker("another-host")),
        "untagged": _started_run(instance, None),
        # A re-executed run starts with its parent's tags: that worker is not its own.
        "parent's tag": _started_run(instance, lambda _: dead("the-parent-run")),
        "live step process": _started_run(instance, dead),
        "step process starting": _started_run(instance, dead),
    }
    _step_worker_event(
        instance, runs["live step process"], dg.DagsterEventType.STEP_WORKER_STARTED, os.getpid()
    )
    _step_worker_event(
        instance, runs["step process starting"], dg.DagsterEventType.STEP_WORKER_STARTING, 1
    )
    return runs


def _holders(instance: dg.DagsterInstance) -> set[str]:
    return {slot.run_id for slot in _pool(instance).claimed_slots}


def test_only_a_run_whose_processes_are_all_gone_here_is_reaped(
    instance: dg.DagsterInstance,
) -> None:
    runs = _runs_of_every_kind(instance)

    reaped = reap_dead_runs(instance, reaper="the test")

    dead = runs.pop("dead")
    assert [r.run_id for r in reaped] == [dead.run_id]
    assert reaped[0].freed_slots == [f"{TRAINING_POOL}: fit"]
    assert _status(instance, dead.run_id) == dg.DagsterRunStatus.FAILURE
    [failure] = _messages(instance, dead.run_id, dg.DagsterEventType.RUN_FAILURE)
    worker = RunWorker.of(dead)
    assert worker is not None
    assert f"run worker pid {worker.pid} on host {HOST} is gone" in failure
    assert "marked ended by the test" in failure
    for name, run in runs.items():
        assert _status(instance, run.run_id) == dg.DagsterRunStatus.STARTED, name
    assert _holders(instance) == {run.run_id for run in runs.values()}
    assert reap_dead_runs(instance, reaper="the test") == []


def test_a_finished_run_still_holding_a_slot_is_freed_once_its_processes_are_gone(
    instance: dg.DagsterInstance,
) -> None:
    """What a dead run looks like once the code server has marked it failed: finished, slot
    held. No daemon runs on the CLI path to free it; the next run does."""
    run = _started_run(instance, _dead_worker())
    instance.report_run_failed(run, "Run execution process for it unexpectedly exited")

    [reaped] = reap_dead_runs(instance, reaper="the test")

    assert reaped.run_id == run.run_id and reaped.status == dg.DagsterRunStatus.FAILURE
    assert _holders(instance) == set()


def test_the_launcher_reports_a_dead_worker_to_run_monitoring_and_nothing_else(
    instance: dg.DagsterInstance,
) -> None:
    launcher = instance.run_launcher
    assert isinstance(launcher, RunWorkerHealthLauncher)
    assert launcher.supports_check_run_worker_health
    for name, run in _runs_of_every_kind(instance).items():
        health = launcher.check_run_worker_health(run)
        # Run monitoring fails a run on any status but RUNNING and SUCCESS.
        expected = "FAILED" if name == "dead" else "RUNNING"
        assert health.status.value == expected, (name, health)


# -- the daemon's path ---------------------------------------------------------------------------


class _Workspace:
    """What the monitoring daemon's iterations use of its workspace process context."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def create_request_context(self) -> None:  # only used to resume runs: never here
        return None


def test_both_instance_configurations_monitor_runs_and_free_slots_of_finished_ones() -> None:
    for path in (REPO / "dagster.yaml", REPO / "docker" / "dagster.yaml"):
        config = yaml.safe_load(path.read_text())
        monitoring = config["run_monitoring"]
        assert monitoring["enabled"] is True, path
        assert monitoring["free_slots_after_run_end_seconds"] > 0, path
        assert monitoring["max_resume_run_attempts"] == 0, path
        assert config["run_launcher"] == {
            "module": "mlops_assets.core.runs",
            "class": RunWorkerHealthLauncher.__name__,
        }, path


def test_the_daemon_marks_a_dead_run_failed_and_frees_its_slot(tmp_path: Path) -> None:
    """Dagster's own monitoring iterations, on dagster.yaml (its wait to free slots shortened)."""
    from dagster._daemon.monitoring import (
        execute_concurrency_slots_iteration,
        execute_run_monitoring_iteration,
    )

    home = tmp_path / "daemon_home"
    home.mkdir()
    config = (REPO / "dagster.yaml").read_text()
    assert "free_slots_after_run_end_seconds: 60" in config
    config = config.replace(
        "free_slots_after_run_end_seconds: 60", "free_slots_after_run_end_seconds: 1"
    )
    (home / "dagster.yaml").write_text(config)
    logger = logging.getLogger("test_dead_runs")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(TRAINING_POOL, 10)
        live = _started_run(instance, RunWorker.current)
        dead = _started_run(instance, _dead_worker())
        workspace = _Workspace(instance)

        list(execute_run_monitoring_iteration(workspace, logger))  # type: ignore[arg-type]

        assert _status(instance, live.run_id) == dg.DagsterRunStatus.STARTED
        assert _status(instance, dead.run_id) == dg.DagsterRunStatus.FAILURE
        [failure] = _messages(instance, dead.run_id, dg.DagsterEventType.RUN_FAILURE)
        assert "is gone" in failure and "Marking run" in failure
        time.sleep(2.5)  # past free_slots_after_run_end_seconds (1 s, whole seconds in storage)
        list(execute_concurrency_slots_iteration(workspace, logger))  # type: ignore[arg-type]
        assert _holders(instance) == {live.run_id}
