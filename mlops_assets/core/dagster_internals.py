"""The Dagster internals this project builds on, in one place: the seam to review on an upgrade.

Dagster has no public API for three things the platform needs:

* an executor that wraps Dagster's own (:mod:`mlops_assets.core.runs`: the in-process loop whose
  wait for a pool slot stops on Ctrl-C, and the reaping of runs whose worker died);
* a run launcher's health check (``CheckRunHealthResult``), which the daemon's run monitoring asks;
* a check evaluation of one partition of a ranged step that points at that partition's
  materialization (:mod:`mlops_assets.core.publishing`), so that the UI shows each day's verdict.

Every name below comes from a module that ``import dagster`` has already loaded, so importing this
costs nothing at load. ``dagster>=1.13,<1.14`` is pinned in ``pyproject.toml``; the tests of
``core/runs.py`` and ``core/publishing.py`` exercise each of these names.
"""

from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData, JobFailureData, RunFailureReason
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.execute_plan import inner_plan_execution_iterator
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._utils.interrupts import pop_captured_interrupt

__all__ = [
    "AssetCheckEvaluationTargetMaterializationData",
    "CheckRunHealthResult",
    "DagsterEvent",
    "DagsterExecutionInterruptedError",
    "EngineEventData",
    "ExecuteRunWithPlanIterable",
    "ExecutionPlan",
    "InstanceConcurrencyContext",
    "JobFailureData",
    "PlanExecutionContextManager",
    "PlanOrchestrationContext",
    "RunFailureReason",
    "WorkerStatus",
    "inner_plan_execution_iterator",
    "is_in_process",
    "pop_captured_interrupt",
]


def is_in_process(executor: object) -> bool:
    """Whether ``executor`` is Dagster's in-process executor (its module is loaded only by runs
    that execute, not by ``import dagster``: imported here on first use)."""
    from dagster._core.executor.in_process import InProcessExecutor

    return isinstance(executor, InProcessExecutor)
