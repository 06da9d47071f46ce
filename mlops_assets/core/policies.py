"""How the graph behaves in production: what is retried, what may run at once, how fresh assets
must be, and which runs a schedule or backfill tags. Written once; the use cases pick from here.

Failures fall in two kinds, and only one is worth retrying:

* **Outages** of a service reached over the network (the MLflow server, Feast's registry and
  online store, a source API) pass on their own. Steps that call such a service carry
  :data:`NETWORK_RETRY`. Parquet reads and writes on S3 need no policy of ours: s3fs and botocore
  already retry throttling and dropped connections below the IO manager.
* **Data errors** (a missing champion, a malformed file, a failed check) fail the same way every
  time. They are raised as :func:`data_error`, which Dagster does not retry, so a bad input fails
  in seconds instead of after minutes of back-off.

Run retries (``run_retries`` in both ``dagster.yaml``) only cover a run whose worker died (a
killed container, a lost node): ``retry_on_asset_or_op_failure: false`` leaves step failures to
the step policies, so one failure is never retried at two levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core.profiles import TRAINING_QUEUE

if TYPE_CHECKING:
    from mlops_assets.core.use_case import UseCase

#: Step retries for work that calls a service over the network: 3 more attempts after 10, 20 and
#: 40 s (±50 % jitter, so the steps of a backfill that failed together do not retry together).
#: An MLflow server restart or a Redis failover takes seconds to a minute.
NETWORK_RETRY = dg.RetryPolicy(
    max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def data_error(message: str) -> dg.Failure:
    """A failure caused by the data or the state of the registry, not by an outage: retrying the
    step would fail the same way, so Dagster is told not to."""
    return dg.Failure(message, allow_retries=False)


# -- Concurrency pools ------------------------------------------------------------------------
# A pool caps how many steps holding it run at once across every run of the instance (both
# dagster.yaml files: `concurrency.pools`, op granularity). A backfill of a hundred days queues
# its runs (max_concurrent_runs), and within the runs that do start, these pools keep the
# machine from being split among more heavy steps than it has cores for.

#: Model fitting and backtests: CPU- and memory-bound, each already uses every core (XGBoost,
#: OpenMP, statsforecast), so two at once only thrash. Limit 1 on the 2-core default.
TRAINING_POOL = "training"
#: Steps that rewrite the Feast registry. Its file registry (local profile) is rewritten whole
#: without a lock, so two `feast apply` at once lose one's changes.
FEAST_REGISTRY_POOL = "feast_registry"
#: Calls to a rate-limited source API (EIA: a few requests per second per key).
SOURCE_API_POOL = "source_api"

# -- Automation ---------------------------------------------------------------------------------


# -- Celery queues (MLOPS_EXECUTOR=celery, :mod:`.cluster`) ------------------------------------------
# Steps of the training pool go to their own queue, so that big workers can take them.

#: dagster-celery's op tag naming the queue a step is sent to.
CELERY_QUEUE_TAG = "dagster-celery/queue"


# -- Light steps: executed in the run's own process ----------------------------------------------
# Under the default multiprocess executor every step starts a Python process of its own, which
# imports Dagster, the code location and the step's libraries again (2-5 s each on two cores,
# plus ~2 s for Great Expectations and ~3 s for Feast) before doing a second of work. A run made
# only of steps tagged light runs them in its own process instead (`core/runs.py`), paying each
# import once per run; a run config that names an executor is obeyed as it is.

#: Op tag of a light step: seconds of work on one machine, less than a process of its own costs.
IN_PROCESS_TAG = "mlops/in_process"
#: The op tags of a light step.
LIGHT_STEP_TAGS = {IN_PROCESS_TAG: "true"}


def eager_on_published(condition: dg.AutomationCondition | None = None) -> dg.AutomationCondition:
    """``condition`` (default ``eager()``) that also waits for the blocking checks of every
    upstream asset to pass: a partition rejected by its audits is quarantined, not published
    (``core/publishing.py``), so nothing is requested on it until a fixed version passes."""
    base = condition if condition is not None else dg.AutomationCondition.eager()
    return (base & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
        "eager_on_published"
    )


# -- Freshness ----------------------------------------------------------------------------------
# Policies the UI shows as fresh / warning / failed (the daemon evaluates them when `freshness` is
# enabled in dagster.yaml). They state the promise of each schedule, with slack for a retry.


def daily_freshness(hours_late: int = 6) -> dg.FreshnessPolicy:
    """For an asset a daily schedule refreshes: warn when a day was missed by ``hours_late``
    hours, fail when the next day's run was missed too."""
    return dg.FreshnessPolicy.time_window(
        warn_window=timedelta(hours=24 + hours_late), fail_window=timedelta(hours=48 + hours_late)
    )


def weekly_freshness() -> dg.FreshnessPolicy:
    """For a model retrained weekly: warn after 8 days, fail after 15 (two retrainings missed)."""
    return dg.FreshnessPolicy.time_window(
        warn_window=timedelta(days=8), fail_window=timedelta(days=15)
    )


# -- Run tags -------------------------------------------------------------------------------------


def scheduled_run_tags(purpose: str) -> dict[str, str]:
    """Tags of every run a schedule or sensor starts: what started it, and for what, so the runs
    page can be filtered by ``mlops/purpose``."""
    return {"mlops/purpose": purpose}


def last_complete_day(now: datetime) -> str:
    """The UTC day before ``now``'s: the latest daily partition whose data is complete."""
    return (now.astimezone(UTC).date() - timedelta(days=1)).isoformat()


def weekly_schedule(
    job: dg.UnresolvedAssetJobDefinition, *, name: str, hour: int, running: bool, weekday: int = 0
) -> dg.ScheduleDefinition:
    """``job`` once a week at ``hour``:00 UTC on ``weekday`` (0 = Sunday), for a use case whose
    data is not partitioned by time. ``running``: the default status, a decision each use case
    states with its reason."""
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    return dg.ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=f"0 {hour} * * {weekday}",
        execution_timezone="UTC",
        default_status=status,
    )


def weekly_retraining(
    case: UseCase,
    assets: Sequence[dg.AssetsDefinition],
    *,
    description: str,
    hour: int,
    running: bool = False,
    selection: dg.AssetSelection | None = None,
    job_name: str = "",
    schedule_name: str = "",
) -> dg.Definitions:
    """The definitions of a use case retrained once a week: its ``assets``, a job of its whole
    group (or of ``selection``, when automation conditions rebuild the rest), tagged as a
    retraining, and the weekly schedule of that job (:func:`weekly_schedule`, Sundays at
    ``hour``:00 UTC). Names default to ``<use case>_training`` and
    ``<use case>_weekly_retraining``."""
    job = dg.define_asset_job(
        job_name or f"{case.name}_training",
        selection=selection if selection is not None else dg.AssetSelection.groups(case.group),
        description=description,
        tags=scheduled_run_tags("retraining"),
    )
    schedule = weekly_schedule(
        job, name=schedule_name or f"{case.name}_weekly_retraining", hour=hour, running=running
    )
    return dg.Definitions(assets=list(assets), jobs=[job], schedules=[schedule])


def training_step(*, per_partition: bool = False, **kwargs: Any) -> dict[str, Any]:
    """The decorator arguments of a step that trains or backtests models: in the
    :data:`TRAINING_POOL` (at most the deployment's limit of them run at once, whatever launched
    them), with :data:`NETWORK_RETRY` for MLflow's outages, sent to the :data:`TRAINING_QUEUE` on a
    Celery cluster. ``per_partition``: a backfill runs one
    partition per run (each partition registers its own model version or backtest). ``kwargs``
    add to them (``deps``, ``kinds``...)."""
    policies: dict[str, Any] = {
        "pool": TRAINING_POOL,
        "retry_policy": NETWORK_RETRY,
        "op_tags": {CELERY_QUEUE_TAG: TRAINING_QUEUE, **kwargs.pop("op_tags", {})},
    }
    if per_partition:
        policies["backfill_policy"] = dg.BackfillPolicy.multi_run(1)
    return {**policies, **kwargs}
