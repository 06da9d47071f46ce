"""Runs whose process died: how one is recognised, and how its run and its pool slots are released.

A step of a pool (``training``, ``feast_registry``, ``source_api``: :mod:`.policies`) holds one of
the pool's slots in the instance from the moment its run worker claims it until that worker frees
it. A worker killed in between (``kill -9``, the out-of-memory killer, a container restart) frees
nothing: the run stays ``STARTED`` and the slot stays claimed, so every later step of the pool
waits forever. Dagster frees such slots only in its daemon (``free_slots_after_run_end_seconds``,
once the run is *finished*), and with its default run launcher nothing ever notices that the
worker of a ``STARTED`` run is gone. This module closes both gaps.

**What is recorded.** Every run worker writes the tag :data:`RUN_WORKER_TAG` when its executor
starts: host name, pid and the process's start time (:class:`RunWorker`). Step processes of the
multiprocess executor are known from the run's own ``STEP_WORKER_STARTED`` events (Dagster stores
the pid of each event), on the same host.

**When a run is dead** (:func:`worker_state`): its tag names *this* host, no process with its pid
exists, or the one that does started later (the pid was reused), and none of its step processes
is alive or still starting. Anything else (another host, no tag, a live process) is left alone:
a run is never reaped on a guess.

**What is done about it** (:func:`reap_dead_runs`): an engine event on the dead run saying why
("run worker pid N on host H is gone ..."), the run marked ``FAILURE`` (``CANCELED`` if it was
being canceled), and its concurrency slots freed. Finished runs that still hold slots are freed
too: at once when their processes are gone on this host, otherwise after the instance's
``free_slots_after_run_end_seconds``, as Dagster's daemon would.

**Who checks.**

* :data:`executor`, the executor of every job of the code location: at each run's start, before
  any step waits on a pool, and every :data:`WATCH_INTERVAL_S` seconds while the run lasts (a step
  process may outlive its killed worker and hold the slot until it ends). This is the only check
  on the CLI path, ``dagster asset materialize``, where no daemon runs. Its in-process mode also
  stops at once on SIGTERM or Ctrl-C while waiting for a slot (Dagster's checks the signal only
  when a step starts) and sleeps between its checks instead of spinning.
* :class:`RunWorkerHealthLauncher`, Dagster's default run launcher plus a health check: the
  daemon's run monitoring (both ``dagster.yaml``) asks it about every ``STARTED`` run and marks
  the dead ones failed; ``free_slots_after_run_end_seconds`` then frees their slots.

Nothing here imports more than Dagster (and only modules that ``import dagster`` has loaded).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.core.dagster_internals import (
    CheckRunHealthResult,
    DagsterEvent,
    DagsterExecutionInterruptedError,
    EngineEventData,
    ExecuteRunWithPlanIterable,
    ExecutionPlan,
    InstanceConcurrencyContext,
    JobFailureData,
    PlanExecutionContextManager,
    PlanOrchestrationContext,
    RunFailureReason,
    WorkerStatus,
    inner_plan_execution_iterator,
    is_in_process,
    pop_captured_interrupt,
)
from mlops_assets.core.policies import IN_PROCESS_TAG

#: Run tag written by every run worker: ``{"run_id", "host", "pid", "started_at"}`` (JSON).
RUN_WORKER_TAG = "mlops/run_worker"
#: Seconds between two checks of a running run for dead runs holding slots.
WATCH_INTERVAL_S = 10.0
#: A step process spawned this recently may not have reported its pid yet: its run is not dead.
#: (A spawned process imports Dagster and the code location before its first event: seconds.)
STEP_WORKER_START_GRACE_S = 60.0
# A process "seen" at time t started no later than t. The slack absorbs the rounding of the boot
# time in /proc/stat (whole seconds) and clock adjustments; a pid is not reused within it.
_START_SLACK_S = 2.0
# The longest sleep of an in-process run waiting for a slot: how late it notices a signal.
_MAX_CLAIM_WAIT_S = 1.0

_IN_PROGRESS = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)


# -- processes ------------------------------------------------------------------------------------


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _linux_process(pid: int) -> tuple[bool, float | None] | None:
    """``(alive, start time)`` from /proc; None where there is no /proc to read."""
    if not Path("/proc/self/stat").exists():
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False, None
    except OSError:
        return True, None  # exists, unreadable: alive, start unknown
    try:
        # The command name (field 2) may hold spaces and parentheses: fields after its last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        state, start_ticks = fields[0], int(fields[19])
    except (ValueError, IndexError):
        return True, None  # exists, not understood: alive, the safe answer
    if state in ("Z", "X"):  # a zombie has exited; only its exit status is left
        return False, None
    boot = _boot_time()
    start = boot + start_ticks / os.sysconf("SC_CLK_TCK") if boot is not None else None
    return True, start


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), where the platform says (Linux)."""
    found = _linux_process(pid)
    return found[1] if found else None


def process_is_alive(pid: int, seen_at: float) -> bool:
    """Whether the process that had ``pid`` at ``seen_at`` (epoch seconds) is still running.

    A process with that pid that started after ``seen_at`` is another one: pids are reused (fast
    in a restarted container, whose pids start again from 1). Where start times cannot be read
    (no /proc), an existing pid counts as alive: the safe answer.
    """
    if pid <= 0:
        return False
    found = _linux_process(pid)
    if found is not None:
        alive, start = found
        return alive and (start is None or start <= seen_at + _START_SLACK_S)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _pid_gone_reason(pid: int) -> str:
    found = _linux_process(pid)
    if found is not None and found[0]:
        return f"pid {pid} now belongs to a process started after it"
    return f"no process has pid {pid}"


@dataclass(frozen=True)
class RunWorker:
    """The process that orchestrates a run, as written in its :data:`RUN_WORKER_TAG`."""

    run_id: str
    host: str
    pid: int
    #: The process's start time (epoch s), or when it was recorded if the platform does not say.
    started_at: float

    @classmethod
    def current(cls, run_id: str) -> RunWorker:
        pid = os.getpid()
        return cls(run_id, socket.gethostname(), pid, process_start_time(pid) or time.time())

    def to_tag(self) -> str:
        fields = {"run_id": self.run_id, "host": self.host, "pid": self.pid}
        return json.dumps({**fields, "started_at": self.started_at})

    @classmethod
    def of(cls, run: dg.DagsterRun) -> RunWorker | None:
        """The worker ``run`` recorded; None if it recorded none. A re-executed run starts with
        its parent's tags, and so with its parent's worker until its own writes over it: that
        one names another run and is not this run's."""
        raw = run.tags.get(RUN_WORKER_TAG)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            worker = cls(
                str(data["run_id"]), str(data["host"]), int(data["pid"]), float(data["started_at"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return worker if worker.run_id == run.run_id else None

    def is_alive(self) -> bool:
        return process_is_alive(self.pid, self.started_at)


# -- is a run dead? -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerState:
    """What this host can tell about the processes of a run. ``dead`` is True only when it knows:
    the worker ran here and neither it nor any of its step processes is alive."""

    dead: bool
    reason: str
    worker: RunWorker | None = None


def _live_step_worker(instance: dg.DagsterInstance, run_id: str, now: float) -> str | None:
    """A step process of the run that is alive or may be starting, described; None if none."""
    entries = instance.all_logs(
        run_id,
        of_type={dg.DagsterEventType.STEP_WORKER_STARTING, dg.DagsterEventType.STEP_WORKER_STARTED},
    )
    starting: dict[str | None, float] = {}
    for entry in entries:  # in the order they were stored
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_WORKER_STARTING:
            # Emitted by the worker just before it spawns the step's process.
            starting[entry.step_key] = entry.timestamp
            continue
        starting.pop(entry.step_key, None)
        if event.pid is not None and process_is_alive(event.pid, entry.timestamp):
            return f"step process pid {event.pid} of {entry.step_key} is alive"
    for step_key, at in starting.items():
        # A process spawned just before the worker died runs its step all the same.
        if now - at < STEP_WORKER_START_GRACE_S:
            return f"a process for step {step_key} was being started {now - at:.0f} s ago"
    return None


def worker_state(
    instance: dg.DagsterInstance, run: dg.DagsterRun, *, host: str | None = None
) -> WorkerState:
    """Whether ``run``'s processes are gone, as seen from ``host`` (this one by default).

    A host name is taken to name one set of pids: true of machines, and of containers, whose host
    name is their own (Docker's default) unless one is set to another's.
    """
    worker = RunWorker.of(run)
    if worker is None:
        return WorkerState(False, f"the run has no {RUN_WORKER_TAG} tag: its worker is unknown")
    host = host or socket.gethostname()
    if worker.host != host:
        # Pids mean nothing across hosts (and containers: each has its own pid namespace).
        return WorkerState(False, f"its worker runs on host {worker.host}, not {host}", worker)
    if worker.is_alive():
        return WorkerState(False, f"run worker pid {worker.pid} on host {host} is alive", worker)
    step = _live_step_worker(instance, run.run_id, time.time())
    if step:
        return WorkerState(
            False, f"run worker pid {worker.pid} on host {host} is gone, but {step}", worker
        )
    reason = (
        f"run worker pid {worker.pid} on host {host} is gone "
        f"({_pid_gone_reason(worker.pid)}) and no step process of the run is "
        "alive"
    )
    return WorkerState(True, reason, worker)


# -- reaping --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReapedRun:
    """A run released by :func:`reap_dead_runs`."""

    run_id: str
    #: The status it was left in (FAILURE, CANCELED), or its status if it had already finished.
    status: dg.DagsterRunStatus
    reason: str
    #: ``pool: step`` of each slot it held, now free.
    freed_slots: Sequence[str] = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        slots = ", ".join(self.freed_slots) or "none"
        return (
            f"Run {self.run_id} released ({self.status.value}): {self.reason}. "
            f"Slots freed: {slots}."
        )


def _claimed_slots(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    storage = instance.event_log_storage
    held = []
    for key in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(key)
        held += [f"{key}: {slot.step_key}" for slot in info.claimed_slots if slot.run_id == run_id]
    return held


def _free_slots(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    if not instance.event_log_storage.supports_global_concurrency_limits:
        return []
    held = _claimed_slots(instance, run_id)
    # Frees claimed slots and drops the run's steps still queued for one.
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return held


def _release(
    instance: dg.DagsterInstance, run: dg.DagsterRun, reason: str, reaper: str
) -> dg.DagsterRunStatus:
    """Record why ``run`` is dead and end it, unless it ended in the meantime."""
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.is_finished:
        return current.status if current else run.status
    message = f"{reason}: marked ended by {reaper}, its concurrency slots freed."
    instance.report_engine_event(message, current)
    if current.status == dg.DagsterRunStatus.CANCELING:
        instance.report_run_canceled(current, message)
        return dg.DagsterRunStatus.CANCELED
    instance.report_run_failed(
        current,
        message,
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    return dg.DagsterRunStatus.FAILURE


def reap_dead_runs(instance: dg.DagsterInstance, *, reaper: str) -> list[ReapedRun]:
    """End the runs of ``instance`` whose processes died on this host and free their slots.

    ``reaper`` names who does it in the dead run's log (a run id, the daemon). Also frees the slots
    of finished runs: at once when their processes are gone on this host, otherwise
    ``run_monitoring.free_slots_after_run_end_seconds`` after they ended, where that is set. An
    ephemeral instance has no other process: nothing to do.
    """
    if instance.is_ephemeral:
        return []
    host = socket.gethostname()
    reaped: list[ReapedRun] = []
    in_progress = instance.get_run_records(dg.RunsFilter(statuses=list(_IN_PROGRESS)))
    for record in in_progress:
        run = record.dagster_run
        state = worker_state(instance, run, host=host)
        if not state.dead:
            continue
        status = _release(instance, run, state.reason, reaper)
        reaped.append(
            ReapedRun(run.run_id, status, state.reason, _free_slots(instance, run.run_id))
        )

    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return reaped
    done = {r.run_id for r in reaped}
    holders = [run_id for run_id in storage.get_concurrency_run_ids() if run_id not in done]
    if not holders:
        return reaped
    after = instance.run_monitoring_settings.get("free_slots_after_run_end_seconds")
    now = time.time()
    for record in instance.get_run_records(dg.RunsFilter(run_ids=holders)):
        run = record.dagster_run
        if not run.is_finished:
            continue
        state = worker_state(instance, run, host=host)
        ended = record.end_time or record.update_timestamp.timestamp()
        if state.dead:
            reason = f"the run has ended and {state.reason}"
        elif after and now - ended > after and (state.worker is None or state.worker.host != host):
            # What Dagster's daemon does, for runs whose processes this host cannot see; the CLI
            # path has no daemon to do it. (On this host, a live step process keeps its slot.)
            reason = f"the run ended {now - ended:.0f} s ago (free_slots_after_run_end_seconds)"
        else:
            continue
        freed = _free_slots(instance, run.run_id)
        if freed:
            instance.report_engine_event(
                f"{reason}: its concurrency slots ({', '.join(freed)}) freed by {reaper}.", run
            )
        reaped.append(ReapedRun(run.run_id, run.status, reason, freed))
    return reaped


# -- the executor -----------------------------------------------------------------------------------


class _Watch:
    """Reaps dead runs every :data:`WATCH_INTERVAL_S` seconds in a thread, while a run lasts."""

    def __init__(self, instance: dg.DagsterInstance, run: dg.DagsterRun):
        self._ref = instance.get_ref()
        self._run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlops-dead-runs", daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        # Most runs end before the first check: they open nothing.
        if self._stop.wait(WATCH_INTERVAL_S):
            return
        # An instance of its own: Dagster's instance objects are not shared across threads.
        with dg.DagsterInstance.from_ref(self._ref) as instance:
            while True:
                try:
                    for reaped in reap_dead_runs(instance, reaper=f"run {self._run.run_id}"):
                        instance.report_engine_event(reaped.summary, self._run)
                except Exception as error:  # a failed check must never fail the run
                    dg.get_dagster_logger().warning(f"checking for dead runs failed: {error!r}")
                if self._stop.wait(WATCH_INTERVAL_S):
                    return


class _ReapingExecutor(dg.Executor):
    """Dagster's multiprocess or in-process executor, or the Celery one, with the dead-run
    check around it."""

    def __init__(self, inner: dg.Executor, *, light_runs_in_process: bool = False):
        self._inner = inner
        # Dagster's multiprocess executor by default: a run of light steps only is executed in
        # process instead (:func:`runs_in_process`).
        self._light_runs_in_process = light_runs_in_process

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def __getattr__(self, name: str):
        # The Celery execution loop reads its executor's settings (``app_args``) off the run's
        # executor, which is this wrapper.
        return getattr(self._inner, name)

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        instance, run = plan_context.instance, plan_context.dagster_run
        light = self._light_runs_in_process and runs_in_process(
            run.run_config,
            [
                execution_plan.get_step_by_key(key).tags
                for key in execution_plan.step_keys_to_execute
            ],
        )
        if is_in_process(self._inner) or light:
            inner = _execute_in_process(self._inner, plan_context, execution_plan, light=light)
        else:
            inner = self._inner.execute(plan_context, execution_plan)
        if instance.is_ephemeral:  # in memory: no other process can share it
            yield from inner
            return
        worker = RunWorker.current(run.run_id)
        instance.add_run_tags(run.run_id, {RUN_WORKER_TAG: worker.to_tag()})
        # Before any step of this run claims a pool slot, so that a slot held by a dead run is
        # free by the time it asks.
        try:
            released = reap_dead_runs(instance, reaper=f"run {run.run_id}")
        except Exception as error:  # a failed check must never fail the run
            released = []
            message = f"Checking for dead runs failed: {error!r}"
            yield DagsterEvent.engine_event(plan_context, message, EngineEventData())
        for reaped in released:
            yield DagsterEvent.engine_event(plan_context, reaped.summary, EngineEventData())
        with _Watch(instance, run):
            yield from inner


def _in_process_iterator(job_context, execution_plan) -> Iterator[DagsterEvent]:
    with _InterruptibleConcurrency(job_context.instance, job_context.dagster_run) as context:
        yield from inner_plan_execution_iterator(job_context, execution_plan, context)


def runs_in_process(
    run_config: Mapping[str, Any] | None, step_tags: Sequence[Mapping | None]
) -> bool:
    """Whether a run under the default executor executes its steps in its own process: when its
    config names no executor and every step it executes is light (op tag
    :data:`~mlops_assets.core.policies.IN_PROCESS_TAG`, see :mod:`.policies`).

    A light step does seconds of work; a process of its own would first spend seconds importing
    Dagster, the code location and the step's libraries (GX, Feast) again, once per step. One
    heavy step in the run (a model fit, a grid that trains in parallel) keeps the run
    multiprocess, as does a config that asks for an executor (``execution:``, e.g.
    ``{"multiprocess": {}}`` to compare).
    """
    if "execution" in (run_config or {}):
        return False
    return bool(step_tags) and all((tags or {}).get(IN_PROCESS_TAG) == "true" for tags in step_tags)


def _execute_in_process(
    executor: dg.Executor,
    plan_context: PlanOrchestrationContext,
    execution_plan: ExecutionPlan,
    *,
    light: bool = False,
) -> Iterator[DagsterEvent]:
    """``InProcessExecutor.execute`` of Dagster 1.13, its concurrency context replaced by
    :class:`_InterruptibleConcurrency` (the only change). ``light``: the run's executor is the
    multiprocess one, and every step is light (:func:`runs_in_process`)."""

    pid = os.getpid()
    steps = execution_plan.step_keys_to_execute
    why = f" (every step is light, tagged {IN_PROCESS_TAG})" if light else ""
    yield DagsterEvent.engine_event(
        plan_context,
        f"Executing steps in process (pid: {pid}){why}",
        event_specific_data=EngineEventData.in_process(pid, steps),
    )
    started = time.perf_counter()
    yield from iter(
        ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=_in_process_iterator,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
                step_dependency_config=executor.step_dependency_config,
            ),
        )
    )
    yield DagsterEvent.engine_event(
        plan_context,
        f"Finished steps in process (pid: {pid}) in {time.perf_counter() - started:.1f} s",
        event_specific_data=EngineEventData.in_process(pid, steps),
    )


class _InterruptibleConcurrency(InstanceConcurrencyContext):
    """Dagster's pool slots of a run, for the in-process loop, with two fixes.

    * A SIGTERM or Ctrl-C is only recorded while Dagster runs its own code, and the in-process loop
      looks at it when a step starts: a run waiting for a slot never did. The loop asks for a slot
      again and again while it waits: each time, a recorded signal stops the run.
    * The loop sleeps what this returns between two asks; Dagster's returns 0 (a busy loop that
      takes a core from the step holding the slot): here, up to the next check, at most 1 s.
    """

    def claim(self, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        if pop_captured_interrupt():
            raise DagsterExecutionInterruptedError()
        return super().claim(concurrency_key, step_key, step_priority)

    def interval_to_next_pending_claim_check(self) -> float:
        if not self.has_pending_claims():
            return 0.0
        now = time.time()
        waits = [ready_at - now for ready_at in self._pending_timeouts.values()]
        return max(0.0, min([_MAX_CLAIM_WAIT_S, *waits]))


def _executor_requirements(config: dict) -> list:
    return dg.multiple_process_executor_requirements() if "multiprocess" in config else []


@dg.executor(
    name="multi_or_in_process_reaping_dead_runs",
    # The very config of Dagster's default executor (and its object: building one anew validates
    # the default value, 8 ms of every import of the code location).
    config_schema=dg.multi_or_in_process_executor.config_schema.as_field(),
    requirements=_executor_requirements,
)
def executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's default executor (multiprocess, or ``in_process`` by run config, same config),
    which first ends the runs that died holding pool slots (see the module)."""
    inner = dg.multi_or_in_process_executor.executor_creation_fn(init_context)
    return _ReapingExecutor(
        inner, light_runs_in_process="multiprocess" in init_context.executor_config
    )


def in_process_executor() -> dg.ExecutorDefinition:
    """:data:`executor` with ``in_process`` as its default (``MLOPS_EXECUTOR=in_process``); a run's
    config can still ask for ``multiprocess``."""
    schema = dg.multi_or_in_process_executor.config_schema
    return dg.ExecutorDefinition(
        name=executor.name,
        config_schema=dg.Field(schema.config_type, default_value={"in_process": {}}),
        executor_creation_fn=executor.executor_creation_fn,
        requirements=_executor_requirements,
    )


@dg.executor(
    name="celery_reaping_dead_runs",
    config_schema={
        "retries": dg.Field(
            dg.Selector({"enabled": {}, "disabled": {}}), default_value={"enabled": {}}
        )
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def celery_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Every step on a worker of the deployment's Celery cluster (``MLOPS_EXECUTOR=celery``:
    :mod:`mlops_assets.core.cluster`), with the dead-run check around the run worker."""
    # Imported by runs that execute, never by the code location's load (Celery is heavy).
    from dagster._core.execution.retries import RetryMode

    from mlops_assets.core.cluster import CeleryStepExecutor
    from mlops_assets.core.profiles import load_settings

    retries = RetryMode.from_config(init_context.executor_config["retries"])
    return _ReapingExecutor(CeleryStepExecutor(load_settings(), retries))


def executor_for(name: str) -> dg.ExecutorDefinition:
    """The executor of ``MLOPS_EXECUTOR``: ``multiprocess`` (Dagster's default), ``in_process``,
    ``celery``, or ``k8s`` (a Kubernetes Job per step, launched by ``dagster-k8s``: its pods are
    watched by Kubernetes, not by this host's dead-run check)."""
    if name == "celery":
        return celery_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return in_process_executor() if name == "in_process" else executor


# -- the run launcher -------------------------------------------------------------------------------


class RunWorkerHealthLauncher(dg.DefaultRunLauncher):
    """Dagster's default run launcher, which can tell the daemon's run monitoring that the
    worker of a ``STARTED`` run is dead (the default one cannot: such runs stay ``STARTED``).

    Its answer comes from :func:`worker_state`, so only about runs whose worker ran on the
    daemon's host (``dagster dev``, ``mlops stack``). For any other run it answers "running": the
    monitor would fail a run on any other answer, and not knowing is not dead.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        state = worker_state(self._instance, run)
        status = WorkerStatus.FAILED if state.dead else WorkerStatus.RUNNING
        return CheckRunHealthResult(status, state.reason)
