"""Steps on a Celery cluster: the run worker sends each step to a queue, any worker runs it.

With ``MLOPS_EXECUTOR=celery`` (stack profile only: :mod:`.profiles`) every run still has one run
worker, which plans the run, claims pool slots and collects results, but each step executes in a
Celery worker process, on whatever machine reads the broker (``MLOPS_CELERY_BROKER_URL``:
RabbitMQ, the one tested; a Redis URL is accepted). This is ``dagster-celery``'s execution loop;
what this module adds:

* **Two queues.** :data:`DEFAULT_QUEUE` for every step, :data:`TRAINING_QUEUE` for steps of the
  training pool (:func:`mlops_assets.core.policies.training_step` tags them with
  dagster-celery's queue tag), so that big machines take the training and small ones the rest.
  ``mlops worker --queue training`` (:func:`run_worker`) listens to one; by default to both.
  dagster-celery publishes to a queue name with a routing key of ``<queue>.execute_plan``, which a
  queue Celery creates on demand does not match; :func:`_submit_step` publishes on the queue's
  own key, the binding both sides create.
* **A step survives its worker.** Tasks are acknowledged after the step ends (``acks_late``), and a
  worker runs one step at a time in its own process (Celery's ``solo`` pool), so ``kill -9`` of a
  worker, an out-of-memory kill or a lost machine closes its broker connection with the step
  unacknowledged: the broker hands the step to another worker, which runs it again. Every write
  of the platform is all-or-nothing and idempotent (:mod:`.asset_store`), so the step that died
  left nothing half-written and the rerun writes the same bytes. The broker heartbeat is off on
  workers: a solo worker does not answer it while a step runs, and the broker would otherwise
  redeliver a long step that is still running; a dead worker is noticed by its closed connection.
* **The events name the worker.** Each step's first event says which worker took it (Celery node,
  host, pid, queue) and whether the step was redelivered after a worker died.

Imported only by runs with the Celery executor and by ``mlops worker``: never by the code
location's load (this module with Celery, kombu and dagster-celery costs 0.1 s to import, after
Dagster).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._core.execution.retries import RetryMode
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import pack_value, serialize_value, unpack_value
from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper
from dagster_celery.core_execution_loop import DELEGATE_MARKER, core_celery_execution_loop
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app

from mlops_assets.core.dagster_internals import EngineEventData
from mlops_assets.core.profiles import DEFAULT_QUEUE, QUEUES, Settings

#: The Celery task that executes one step (a name of its own: not dagster-celery's task).
TASK_NAME = "mlops.execute_step"


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings shared by the run worker that sends steps and the workers that run
    them (they must agree on queues and serialization)."""
    return {
        **DEFAULT_CONFIG,
        "task_default_queue": DEFAULT_QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "broker_heartbeat": 0,
        "broker_connection_retry_on_startup": True,
    }


def _app_args(settings: Settings) -> dict[str, Any]:
    return {
        "broker": settings.celery_broker_url,
        "backend": settings.celery_backend_url,
        "include": [],
        "config_source": dict_wrapper(celery_config(settings)),
    }


# -- the run worker's side: an executor that sends steps --------------------------------------------


class CeleryStepExecutor(CeleryExecutor):
    """dagster-celery's executor, its steps published on the queues of :data:`QUEUES` and run by
    :data:`TASK_NAME` (see the module)."""

    def __init__(self, settings: Settings, retries: RetryMode):
        super().__init__(
            retries=retries,
            broker=settings.celery_broker_url,
            backend=settings.celery_backend_url,
            config_source=celery_config(settings),
        )

    def execute(self, plan_context, execution_plan):
        return core_celery_execution_loop(
            plan_context, execution_plan, step_execution_fn=_submit_step
        )


def _submit_step(app, plan_context, step, queue: str, priority: int, known_state):
    args = ExecuteStepArgs(
        job_origin=plan_context.reconstructable_job.get_python_origin(),
        run_id=plan_context.dagster_run.run_id,
        step_keys_to_execute=[step.key],
        instance_ref=plan_context.instance.get_ref(),
        retry_mode=plan_context.executor.retries.for_inner_plan(),
        known_state=known_state,
        print_serialized_events=True,
    )
    return app.send_task(
        TASK_NAME,
        kwargs={
            "execute_step_args_packed": pack_value(args),
            "executable_dict": plan_context.reconstructable_job.to_dict(),
        },
        queue=queue,
        # The binding of a queue that Celery declares on demand, on either side: its own name.
        routing_key=queue,
        priority=priority,
    )


# -- the worker's side: the task and the worker process -------------------------------------------


def _execute_step(task, execute_step_args_packed: dict, executable_dict: dict) -> list[str]:
    """Run the step of ``execute_step_args_packed`` in this process; its events go to the run's
    instance as they happen, and back to the run worker as the task's result."""
    args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
    recon_job = ReconstructableJob.from_dict(executable_dict)
    with dg.DagsterInstance.from_ref(args.instance_ref) as instance:
        run = instance.get_run_by_id(args.run_id)
        if run is None:
            raise dg.DagsterInvariantViolationError(f"run {args.run_id} is not in the instance")
        plan = create_execution_plan(
            recon_job,
            run.run_config,
            step_keys_to_execute=args.step_keys_to_execute,
            known_state=args.known_state,
        )
        step_key = plan.step_handle_for_single_step_plans().to_key()
        delivery = task.request.delivery_info or {}
        redelivered = bool(delivery.get("redelivered"))
        queue = delivery.get("routing_key") or ""
        worker = WorkerIdentity(task.request.hostname or "", socket.gethostname(), os.getpid())
        logging.getLogger(__name__).info(
            "step %s of run %s%s", step_key, run.run_id, " (redelivered)" if redelivered else ""
        )
        message = f"Executing step {step_key} on Celery worker {worker}, queue {queue!r}"
        if redelivered:
            message += (
                "; redelivered by the broker: the worker that took it first was lost before "
                "it finished"
            )
        started = instance.report_engine_event(
            message,
            run,
            EngineEventData(
                {
                    **worker.metadata(),
                    "step_keys": step_key,
                    "queue": queue,
                    "redelivered": str(redelivered).lower(),
                },
                marker_end=DELEGATE_MARKER,
            ),
            CeleryExecutor,
            step_key=step_key,
        )
        events = [started]
        events.extend(
            execute_plan_iterator(
                execution_plan=plan,
                job=recon_job,
                dagster_run=run,
                instance=instance,
                retry_mode=args.retry_mode,
                run_config=run.run_config,
            )
        )
    return [serialize_value(event) for event in events]


class WorkerIdentity:
    """Which process ran a step: Celery's node name, the host and the pid."""

    def __init__(self, node: str, host: str, pid: int):
        self.node, self.host, self.pid = node, host, pid

    def __str__(self) -> str:
        return f"{self.node} (host {self.host}, pid {self.pid})"

    def metadata(self) -> dict[str, str]:
        return {"Celery worker": self.node, "host": self.host, "pid": str(self.pid)}


def worker_app(settings: Settings):
    """The Celery app of a worker: the run worker's settings, and the step task."""
    app = make_app(_app_args(settings))
    app.task(bind=True, name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)(_execute_step)
    return app


def worker_argv(queues: Sequence[str], name: str, loglevel: str = "INFO") -> list[str]:
    """The arguments of ``celery worker`` for one worker process: one step at a time, in the
    process itself (``solo``: kill the worker and the step dies with it), no chatter between
    workers (gossip, mingle and Celery's own worker heartbeat events serve only monitoring)."""
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown or not queues:
        raise ValueError(f"queues must be among {', '.join(QUEUES)}, not {unknown or 'none'}")
    return [
        "worker",
        "--queues",
        ",".join(queues),
        "--hostname",
        f"{name}@%h",
        "--pool",
        "solo",
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def run_worker(
    settings: Settings, queues: Sequence[str], name: str, loglevel: str = "INFO"
) -> None:
    """Run one worker in this process until SIGTERM or Ctrl-C (a warm shutdown: the step that
    runs ends first; a second Ctrl-C stops at once, and the broker gives that step to another
    worker)."""
    from celery.app import trace

    # A step's result is its serialized events (kilobytes); Celery would log all of it on every
    # success. The events are in the run's event log already.
    trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime).1fs"
    # Great Expectations narrates every suite at INFO; the worker's log is for its steps.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    worker_app(settings).worker_main(worker_argv(queues, name, loglevel))
