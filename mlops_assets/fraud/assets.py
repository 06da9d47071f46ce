"""The card-fraud pipeline as assets: bronze → leak-free features → Feast → training set → model →
champion → scores.

Assets are thin: they read their inputs, call the pure code of ``sources``, ``features``,
``core.pit``, ``training`` and ``reports``, and write outputs with metadata. Bronze and silver run
single-run backfills (one step computes a whole ``--partition-range``, reading the 30 days of
history once), so they write their days through ``ParquetIOManager.write_partitions``.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context` and inputs.
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import dagster as dg
from pydantic import Field

from mlops_assets.core.feature_store import FeastFeatureStore
from mlops_assets.core.io_managers import ParquetIOManager, frame_input
from mlops_assets.core.policies import (
    FEAST_REGISTRY_POOL,
    NETWORK_RETRY,
    TRAINING_POOL,
    daily_freshness,
    data_error,
    eager_on_published,
    weekly_freshness,
)
from mlops_assets.core.publishing import check_specs, publish
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.sensors import champion_versions_metadata
from mlops_assets.core.tracking import CANDIDATE, CHAMPION, MlflowTracking
from mlops_assets.fraud import checks, history, schema

if TYPE_CHECKING:
    import polars as pl

# Polars is imported inside the assets, not here: the code location loads this module in every
# Dagster process, and the inputs below are loaded as Polars frames through `frame_input`.

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
MODEL_NAME = "fraud_classifier"
GROUP = schema.USE_CASE

# The chargeback delay the pipeline supports: merchant fraud counts read labels of transactions
# up to LOOKBACK + this far back (a label counts when it becomes available, not when it happened).
MAX_CHARGEBACK_DAYS = 14
HISTORY_DAYS = schema.LOOKBACK.days
LABEL_HISTORY_DAYS = HISTORY_DAYS + MAX_CHARGEBACK_DAYS


def fraud_key(name: str) -> dg.AssetKey:
    """The key of fraud asset `name`: `fraud/<name>`, stored at `<root>/fraud/<name>/`."""
    return dg.AssetKey([schema.USE_CASE, name])


def _days(context: dg.AssetExecutionContext) -> list[str]:
    return list(context.partition_keys)


def _window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    window = context.partition_time_window
    return window.start.astimezone(UTC), window.end.astimezone(UTC)


def _day_start(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


# -- bronze ------------------------------------------------------------------------------------


@deployment_defaults("bronze")
class BronzeConfig(dg.Config):
    """Where a day of transactions and labels comes from."""

    source: Literal["generator", "files"] = Field(
        default="generator",
        description="'generator': deterministic synthetic data; 'files': your own parquet/CSV.",
    )
    files_root: str = Field(
        default="",
        description="With source='files': folder holding transactions/<day>.{parquet,csv} and "
        "labels/<day>.{parquet,csv}.",
    )
    n_cards: int = Field(default=100_000, gt=0, description="Cards in the synthetic population.")
    n_merchants: int = Field(default=10_000, gt=0, description="Merchants in the population.")
    tx_per_day: int = Field(default=20_000, gt=0, description="Transactions per day.")
    fraud_rate: float = Field(default=0.01, gt=0, lt=0.5, description="Share of fraud.")
    max_chargeback_days: int = Field(
        default=7,
        ge=1,
        le=MAX_CHARGEBACK_DAYS,
        description="Labels arrive up to this many days after the payment.",
    )
    seed: int = Field(default=42, description="Seed of the population and of every day.")


BRONZE_AUDITS = checks.bronze_audits(fraud_key("transactions"), fraud_key("labels"), DAILY)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            fraud_key("transactions"),
            description="Card payments of one UTC day: one row per transaction (bronze).",
            partitions_def=DAILY,
            group_name=GROUP,
            kinds={"parquet", "polars"},
        ),
        dg.AssetSpec(
            fraud_key("labels"),
            description="The outcome of each payment of the day (fraud or not) and when it "
            "became known: `label_available_ts` is the payment time plus a chargeback delay.",
            partitions_def=DAILY,
            group_name=GROUP,
            kinds={"parquet"},
        ),
    ],
    check_specs=check_specs(BRONZE_AUDITS),
    # Either asset alone can be materialized (`--select fraud/transactions`, one asset picked in
    # the UI): the day is still generated or read whole, since labels are judged against the
    # day's payments, but only what was selected is published.
    can_subset=True,
    # Single run: a range is read (or generated) in one step and each day written by it, so a
    # 30-day backfill is one run, and a malformed file fails it before any day is written.
    backfill_policy=dg.BackfillPolicy.single_run(),
    required_resource_keys={"io_manager"},
)
def bronze(context: dg.AssetExecutionContext, config: BronzeConfig):
    """Generate (or read) every day of the run, then stage, audit and publish them: a malformed
    file fails the step before any day is written, and a day that fails its blocking checks is
    quarantined while the published version of that day stays as it was."""
    from mlops_assets.fraud import sources

    # Transactions alone need no label file; labels are judged against the day's payments.
    kinds = ("transactions", "labels")
    if fraud_key("labels") not in context.selected_asset_keys:
        kinds = ("transactions",)
    days: dict[str, tuple] = {}
    for day in _days(context):
        if config.source == "generator":
            generator = sources.GeneratorConfig(
                n_cards=config.n_cards,
                n_merchants=config.n_merchants,
                tx_per_day=config.tx_per_day,
                fraud_rate=config.fraud_rate,
                max_chargeback_days=config.max_chargeback_days,
                seed=config.seed,
            )
            days[day] = sources.generate_day(date.fromisoformat(day), generator)
        else:
            if not config.files_root:
                raise dg.Failure("source='files' needs files_root (the folder of your files)")
            try:
                read = [
                    sources.read_day_file(config.files_root, kind, date.fromisoformat(day))
                    for kind in kinds
                ]
            except (sources.BronzeContractError, FileNotFoundError) as exc:
                # The user's file is at fault, not the code: the message alone (file, column,
                # count), not a stack trace, as the other use cases do.
                raise dg.Failure(f"fraud/bronze: {exc}") from exc
            for kind, result in zip(kinds, read, strict=True):
                if result.extra_columns:
                    context.log.warning(
                        f"{kind}/{day}: ignored columns not in the contract: "
                        f"{', '.join(result.extra_columns)}"
                    )
            days[day] = tuple(r.table for r in read)
    # A day's transactions and labels are judged together and published together, or not at
    # all: a label file must never be paired with another run's transactions.
    yield from publish(
        context,
        {
            fraud_key(kind): {d: tables[i] for d, tables in days.items()}
            for i, kind in enumerate(kinds)
        },
        BRONZE_AUDITS,
    )


# -- silver: feature snapshots ------------------------------------------------------------------


def _with_history(
    context: dg.AssetExecutionContext, name: str, frame: "pl.DataFrame", days: int
) -> tuple["pl.DataFrame", dict]:
    """``frame`` (the run's own days of bronze ``name``) preceded by the ``days`` days before
    the run, read from the published partitions, and the lineage of what was read.

    The history is read here rather than declared as a partition mapping on purpose: Dagster
    maps a window dependency both ways, so a backfill of two days of bronze would also claim the
    30 (44) following days of features, which fail for want of bronze that was never asked
    for. In Dagster's graph a feature day depends on its own day; the days read before it are
    recorded as metadata (`history`, `history_data_versions`: the hash of each file read).
    Which days are read, where data begins and what a hole is: `fraud/history.py`.
    """
    import polars as pl

    io: ParquetIOManager = context.resources.io_manager
    first = date.fromisoformat(_days(context)[0])
    wanted = history.days_before(first, days, DAILY.start.date())
    reader = f"{context.assets_def.key.to_user_string()} for {first}"
    present = history.published_days(io, fraud_key(name), wanted, reader=reader)
    if not present:
        begins = "the partitions' first day" if not wanted else "no earlier day was ingested"
        return frame, {"history": f"none: data begins on {first} ({begins})"}
    table, versions = io.read_partitions(fraud_key(name), present)
    partial = "" if present[0] == wanted[0] else f"; none before {present[0]}: windows are partial"
    return pl.concat([pl.from_arrow(table), frame], how="vertical_relaxed"), {
        "history": f"fraud/{name} {present[0]} .. {present[-1]} ({len(present)} days{partial})",
        "history_data_versions": dg.MetadataValue.json(versions),
    }


def _feature_days(context: dg.AssetExecutionContext, frame: "pl.DataFrame") -> dict:
    """A ranged step's snapshots split into its days."""
    import polars as pl

    return {
        day: frame.filter(pl.col("event_ts").dt.date() == date.fromisoformat(day))
        for day in _days(context)
    }


@dg.asset(
    key=fraud_key("card_features"),
    partitions_def=DAILY,
    group_name=GROUP,
    # Single run: a range is computed in one step that reads the shared history once and
    # writes each day itself (`write_partitions`), so a 30-day backfill is one run, not 30.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Its own days; the 30 days before them are read by `_with_history`.
    ins={"transactions": frame_input(fraud_key("transactions"))},
    required_resource_keys={"io_manager"},
    kinds={"polars", "parquet"},
)
def card_features(context: dg.AssetExecutionContext, transactions) -> dg.MaterializeResult:
    """One row per transaction with the card's activity in the 1h/1d/7d/30d before it: counts,
    sums, means and maxima of amounts and distinct merchants. Windows end one second before the
    transaction, so a snapshot never contains the payment it describes (nor its label)."""
    from mlops_assets.fraud import features

    start, end = _window(context)
    io: ParquetIOManager = context.resources.io_manager
    transactions, lineage = _with_history(context, "transactions", transactions, HISTORY_DAYS)
    by_day = _feature_days(context, features.card_features(transactions, start, end))
    result = io.write_partitions(fraud_key("card_features"), by_day)
    return dg.MaterializeResult(
        metadata={**(result.metadata or {}), **lineage}, data_version=result.data_version
    )


MERCHANT_AUDITS = checks.merchant_features_audits(
    fraud_key("merchant_features"),
    fraud_key("transactions"),
    fraud_key("labels"),
    DAILY,
    LABEL_HISTORY_DAYS,
)


@dg.asset(
    key=fraud_key("merchant_features"),
    partitions_def=DAILY,
    group_name=GROUP,
    # Single run: a range is computed in one step that reads the shared history once and
    # writes each day itself (`write_partitions`), so a 30-day backfill is one run, not 30.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Its own days; the 44 days before them are read by `_with_history`.
    ins={
        "transactions": frame_input(fraud_key("transactions")),
        "labels": frame_input(fraud_key("labels")),
    },
    required_resource_keys={"io_manager"},
    check_specs=check_specs(MERCHANT_AUDITS),
    kinds={"polars", "parquet"},
)
def merchant_features(context: dg.AssetExecutionContext, transactions, labels):
    """One row per transaction with the merchant's activity in the windows before it, and the
    number of fraud labels of the merchant that became known in the last 1/7/30 days before it
    (a label counts from its `label_available_ts`, never earlier)."""
    from mlops_assets.fraud import features

    start, end = _window(context)
    transactions, tx_lineage = _with_history(
        context, "transactions", transactions, LABEL_HISTORY_DAYS
    )
    labels, label_lineage = _with_history(context, "labels", labels, LABEL_HISTORY_DAYS)
    snapshots = features.merchant_features(transactions, labels, start, end)
    yield from publish(
        context,
        {fraud_key("merchant_features"): _feature_days(context, snapshots)},
        MERCHANT_AUDITS,
        metadata={
            fraud_key("merchant_features"): {
                "history": f"{tx_lineage['history']}; {label_lineage['history']}",
                **(
                    {
                        "history_data_versions": dg.MetadataValue.json(
                            {
                                "transactions": tx_lineage["history_data_versions"].data,
                                "labels": label_lineage["history_data_versions"].data,
                            }
                        )
                    }
                    if "history_data_versions" in tx_lineage
                    else {}
                ),
            }
        },
    )


@dg.asset(
    key=fraud_key("feature_store"),
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[fraud_key("card_features"), fraud_key("merchant_features")],
    # One run loads a whole range into the online store (Feast materializes an interval).
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Feast's file registry is rewritten without a lock: never two applies at once.
    pool=FEAST_REGISTRY_POOL,
    # The registry (PostgreSQL) and the online store (Redis) are across the network.
    retry_policy=NETWORK_RETRY,
    # Serving reads these snapshots: the daily ingestion must keep them within a day.
    freshness_policy=daily_freshness(),
    required_resource_keys={"io_manager", "feature_store"},
    kinds={"feast"},
)
def fraud_feature_store(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The fraud entities and feature views registered in Feast (`feast apply`) and the day's
    latest snapshot per card and merchant loaded into the online store for serving."""
    feature_store: FeastFeatureStore = context.resources.feature_store
    io: ParquetIOManager = context.resources.io_manager
    # Feast reads the published snapshots itself: refuse, like any input, days whose latest
    # version was rejected, rather than load the version published before it.
    for name in SNAPSHOT_VIEWS:
        io.publisher.refuse_rejected(fraud_key(name), _days(context))
    start, end = _window(context)
    applied = feature_store.apply(use_case=schema.USE_CASE)
    views = feature_store.materialize(
        start, end - timedelta(microseconds=1), use_case=schema.USE_CASE
    )
    return dg.MaterializeResult(
        metadata={
            "applied": applied,
            "materialized_views": views,
            "window": f"{start.isoformat()} .. {end.isoformat()}",
        }
    )


# -- training set -------------------------------------------------------------------------------


@deployment_defaults("fraud__training_set")
class TrainingSetConfig(dg.Config):
    """Which labelled transactions make the training set of day D."""

    window_days: int = Field(default=14, ge=1, le=90, description="Days of transactions.")
    maturity_days: int = Field(
        default=7,
        ge=0,
        le=MAX_CHARGEBACK_DAYS,
        description="Leave out the last days whose labels may still change (chargebacks "
        "arrive late): the window ends this many days before D.",
    )
    min_fraud_share: float = Field(default=0.001, description="Warn below this fraud share.")
    max_fraud_share: float = Field(default=0.2, description="Warn above this fraud share.")


SNAPSHOT_VIEWS = ("card_features", "merchant_features")


def _join_snapshots(feature_store: FeastFeatureStore, transactions, frames: dict) -> tuple:
    """Each transaction with the card and merchant snapshots as of its own time, joined as Feast's
    feature views define them. Training and batch scoring both use this one join."""
    from mlops_assets.core import pit

    sources = [
        pit.FeatureSource.from_feature_store(feature_store, view, frames[view])
        for view in SNAPSHOT_VIEWS
    ]
    return pit.point_in_time_join(transactions.sort("event_ts", "tx_id"), sources), sources


def training_window(day: str, config: TrainingSetConfig) -> list[str]:
    """The transaction days of the training set of ``day``, oldest first."""
    last = date.fromisoformat(day) - timedelta(days=config.maturity_days)
    return [
        (last - timedelta(days=offset)).isoformat()
        for offset in range(config.window_days - 1, -1, -1)
    ]


@dg.asset(
    key=fraud_key("training_set"),
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[
        fraud_key(name) for name in ("transactions", "labels", "card_features", "merchant_features")
    ],
    required_resource_keys={"io_manager", "feature_store"},
    check_specs=[
        dg.AssetCheckSpec(
            "snapshots_precede_events", asset=fraud_key("training_set"), blocking=True
        ),
        dg.AssetCheckSpec("fraud_share_within_bounds", asset=fraud_key("training_set")),
    ],
    # One run per day: each day's set is its own versioned dataset with pointers, written by a
    # run whose id names its folder.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # Reads the feature views' definitions from Feast's registry (PostgreSQL on the stack).
    retry_policy=NETWORK_RETRY,
    kinds={"polars", "parquet"},
)
def training_set(context: dg.AssetExecutionContext, config: TrainingSetConfig):
    """Labelled transactions of a window of days, each joined with the card and merchant
    snapshots as of its own time (point-in-time correct). A versioned dataset:
    `dt=<day>/run_id=<run>/` with `_LATEST`, and `_CURRENT` moved only when no row leaks."""
    import polars as pl

    from mlops_assets.core import pit
    from mlops_assets.core.storage import VersionedDataset
    from mlops_assets.fraud import reports

    day = context.partition_key
    days = training_window(day, config)
    io: ParquetIOManager = context.resources.io_manager
    feature_store: FeastFeatureStore = context.resources.feature_store
    read = {
        name: io.read_partitions(fraud_key(name), days)
        for name in ("transactions", "labels", "card_features", "merchant_features")
    }
    frames = {name: pl.from_arrow(table) for name, (table, _) in read.items()}

    # Only labels known by the end of day D: anything later was not available to train on.
    cutoff = _day_start(day) + timedelta(days=1)
    labels = frames["labels"].filter(pl.col("label_available_ts") < cutoff)
    entities = frames["transactions"].join(
        labels.select("tx_id", "is_fraud", "label_available_ts"), on="tx_id", how="inner"
    )
    unlabelled = frames["transactions"].height - entities.height
    joined, sources = _join_snapshots(feature_store, entities, frames)
    leaks = pit.leaking_rows(joined, sources)

    dataset = VersionedDataset(io.partition_path(fraud_key("training_set"), day).parent)
    lineage = {
        "days": days,
        "source_data_versions": {name: versions for name, (_, versions) in read.items()},
        "label_cutoff": cutoff.isoformat(),
    }
    version = dataset.write(day, context.run_id, joined, extra=lineage)
    if leaks == 0:
        dataset.promote(version)

    fraud_share = float(joined["is_fraud"].mean()) if joined.height else 0.0
    report = reports.inspect_training_set(joined.to_pandas())
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": joined.height,
            "data_version": version.data_version,
            "version": version.relative_dir,
            "current": leaks == 0,
            "transaction_days": f"{days[0]} .. {days[-1]}",
            "unlabelled_excluded": unlabelled,
            "fraud_share": fraud_share,
            **{f"inspection/{k}": v for k, v in report.items()},
        },
        data_version=dg.DataVersion(version.data_version),
        check_results=[
            dg.AssetCheckResult(
                check_name="snapshots_precede_events",
                passed=leaks == 0,
                metadata={"rows_with_future_snapshots": leaks},
                description="Every snapshot joined to a transaction was taken at or before it.",
            ),
            dg.AssetCheckResult(
                check_name="fraud_share_within_bounds",
                passed=config.min_fraud_share <= fraud_share <= config.max_fraud_share,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "fraud_share": fraud_share,
                    "bounds": [config.min_fraud_share, config.max_fraud_share],
                },
            ),
        ],
    )


def load_training_set(io: ParquetIOManager, day: str) -> tuple["pl.DataFrame", dict]:
    """The approved (``_CURRENT``) training set of ``day`` and its manifest."""
    from dataclasses import asdict

    import polars as pl

    from mlops_assets.core.storage import VersionedDataset

    dataset = VersionedDataset(io.partition_path(fraud_key("training_set"), day).parent)
    version = dataset.current(day)
    if version is None:
        raise dg.Failure(
            f"no approved training set for {day}: materialize fraud/training_set for it "
            "(a version whose leakage check failed is never made current)",
            allow_retries=False,
        )
    return pl.from_arrow(dataset.read(version)), asdict(version)


# -- models -------------------------------------------------------------------------------------


@deployment_defaults("fraud__model")
class ModelConfig(dg.Config):
    """How candidates are trained and compared."""

    kinds: list[str] = Field(
        default=["logreg", "xgboost"],
        description="Models to train: the logistic-regression baseline and the XGBoost challenger.",
    )
    validation_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    precision_target: float = Field(default=0.9, gt=0, lt=1)
    seed: int = 0


@dg.asset(
    key=fraud_key("model"),
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[fraud_key("training_set")],
    required_resource_keys={"io_manager", "mlflow"},
    # One run per day: each day registers its own model version in MLflow.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    pool=TRAINING_POOL,
    retry_policy=NETWORK_RETRY,
    kinds={"mlflow", "sklearn", "xgboost"},
)
def model(context: dg.AssetExecutionContext, config: ModelConfig) -> dg.MaterializeResult:
    """The fraud classifier trained on the day's training set: one sklearn Pipeline per kind
    (imputation, scaling and one-hot encoding inside, so serving applies exactly the same
    transforms), validated on the chronologically last part of the window. The best kind by
    PR-AUC is registered as `fraud_classifier` with alias `candidate`."""
    from mlops_assets.fraud import training

    day = context.partition_key
    mlflow: MlflowTracking = context.resources.mlflow
    frame, manifest = load_training_set(context.resources.io_manager, day)
    lineage_tags = {
        "training_set.version": f"dt={manifest['dt']}/run_id={manifest['run_id']}",
        "training_set.data_version": manifest["data_version"],
    }
    results = {}
    for kind in config.kinds:
        with mlflow.start_run(
            context, use_case=schema.USE_CASE, run_name=f"{kind}-{day}", tags=lineage_tags
        ) as run:
            result = training.train_and_evaluate(
                frame.to_pandas(),
                kind=kind,
                validation_fraction=config.validation_fraction,
                precision_target=config.precision_target,
                seed=config.seed,
            )
            run.log_params(result.params)
            run.log_metrics(result.metrics)
            for name, figure in result.figures.items():
                run.log_figure(figure, f"{name}.png")
            info = run.log_model(
                result.pipeline,
                name="model",
                input_example=result.input_example,
                flavor="sklearn",
            )
            results[kind] = (result, run, info)

    best = max(results, key=lambda k: results[k][0].metrics["pr_auc"])
    result, run, info = results[best]
    version = mlflow.register(info, MODEL_NAME, alias=CANDIDATE, tags={"kind": best})
    comparison = [
        {"kind": k, **{m: round(v, 4) for m, v in r.metrics.items()}}
        for k, (r, _, _) in results.items()
    ]
    from mlops_assets.core import reporting

    return dg.MaterializeResult(
        metadata={
            **mlflow.model_metadata(
                run.run_id,
                experiment_id=run.experiment_id,
                model_version=version,
                alias=CANDIDATE,
                metrics=result.metrics,
            ),
            "kind": best,
            "comparison": dg.MetadataValue.md(
                reporting.markdown_table(comparison, list(comparison[0]))
            ),
            "pr_curve": reporting.figure_markdown(result.figures["pr_curve"], alt="PR curve"),
            "training_set": lineage_tags["training_set.version"],
        }
    )


@deployment_defaults("fraud__champion")
class ChampionConfig(dg.Config):
    """The promotion gate."""

    min_pr_auc_gain: float = Field(
        default=0.005, ge=0, description="PR-AUC the candidate must gain over the champion."
    )
    max_recall_loss: float = Field(
        default=0.02,
        ge=0,
        description="Guardrail: recall at the target precision may drop at most this much.",
    )
    precision_target: float = Field(default=0.9, gt=0, lt=1)
    validation_fraction: float = Field(default=0.2, gt=0, lt=0.5)


@dg.asset(
    key=fraud_key("champion"),
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[fraud_key("model")],
    required_resource_keys={"io_manager", "mlflow"},
    # Promotions are decided one day after the other, in order, never as a batch.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    retry_policy=NETWORK_RETRY,
    freshness_policy=weekly_freshness(),
    kinds={"mlflow"},
)
def champion(context: dg.AssetExecutionContext, config: ChampionConfig) -> dg.MaterializeResult:
    """The model that serves (`fraud_classifier@champion`). The candidate and the current
    champion score the same latest holdout; the alias moves only if the candidate gains at least
    the margin in PR-AUC without losing more than the guardrail in recall at 90% precision."""
    from mlops_assets.core import evaluation, reporting
    from mlops_assets.fraud import training

    day = context.partition_key
    mlflow: MlflowTracking = context.resources.mlflow
    frame, manifest = load_training_set(context.resources.io_manager, day)
    _, holdout = evaluation.chronological_split(
        frame.to_pandas(), "event_ts", config.validation_fraction, label_col="is_fraud"
    )
    y = holdout["is_fraud"].to_numpy()
    candidate = mlflow.get_version_by_alias(MODEL_NAME, CANDIDATE)
    if candidate is None:
        raise data_error(f"{MODEL_NAME} has no '{CANDIDATE}': materialize fraud/model first")
    current = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)

    # By version, not alias: the versions scored are those the gate is told it compared, even
    # if an alias moves meanwhile.
    candidate_model = mlflow.load_model_version(MODEL_NAME, candidate.version)
    scores = {"candidate": training.score(candidate_model, holdout)}
    if current is not None and current.version != candidate.version:
        champion_model = mlflow.load_model_version(MODEL_NAME, current.version)
        scores["champion"] = training.score(champion_model, holdout)
    metrics = {
        who: evaluation.classification_metrics(y, s, precision_target=config.precision_target)
        for who, s in scores.items()
    }
    rule = evaluation.PromotionRule(
        metric="pr_auc",
        higher_is_better=True,
        min_improvement=config.min_pr_auc_gain,
        guardrails=(evaluation.Guardrail("recall_at_precision", True, config.max_recall_loss),),
    )
    decision = mlflow.promote(
        MODEL_NAME,
        candidate.version,
        rule,
        candidate_metrics=metrics["candidate"],
        champion_metrics=metrics.get("champion"),
        compared_with=current.version if current is not None else None,
    )
    serving = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    figure = evaluation.pr_curve_figure(
        curves={who: (y, s) for who, s in scores.items()},
        precision_target=config.precision_target,
        title="Candidate vs champion on the latest holdout",
    )
    table = [{"model": who, **{k: round(v, 4) for k, v in m.items()}} for who, m in metrics.items()]
    return dg.MaterializeResult(
        metadata={
            **decision.as_metadata(),
            "candidate_version": str(candidate.version),
            "champion_version": str(serving.version) if serving else None,
            "holdout_rows": len(holdout),
            "holdout": f"training set {manifest['dt']} (run {manifest['run_id']}), last "
            f"{config.validation_fraction:.0%} by time",
            "scores": dg.MetadataValue.md(reporting.markdown_table(table, list(table[0]))),
            "pr_curves": reporting.figure_markdown(figure, alt="PR curves on the holdout"),
        }
    )


# -- batch scores -------------------------------------------------------------------------------


@dg.asset(
    key=fraud_key("scores"),
    partitions_def=DAILY,
    group_name=GROUP,
    ins={
        "transactions": frame_input(fraud_key("transactions")),
        "card_features": frame_input(fraud_key("card_features")),
        "merchant_features": frame_input(fraud_key("merchant_features")),
    },
    # Scores use whichever model is champion when they run. Same day, so that in a backfill of
    # the whole group a day is scored after its champion was decided, not before.
    deps=[fraud_key("champion")],
    # The IO manager stores one partition per output: one run per day.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    retry_policy=NETWORK_RETRY,
    # Keeps itself up to date: the latest day is scored as soon as its transactions and features
    # land. The champion is left out of the condition: it is retrained weekly, so its latest
    # partition is usually missing, and a model change is the rescoring sensor's job
    # (`fraud_rescore_on_champion_change` sees every alias move, made by a run or by hand).
    # Days rejected by their blocking checks are not scored until a fixed version passes.
    automation_condition=eager_on_published(
        dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(fraud_key("champion")))
    ),
    kinds={"polars", "parquet"},
)
def scores(
    context: dg.AssetExecutionContext,
    transactions,
    card_features,
    merchant_features,
    mlflow: MlflowTracking,
    feature_store: FeastFeatureStore,
):
    """The fraud probability of every transaction of the day, scored by the champion with the
    same point-in-time features as in training; one row per transaction, model version on each."""
    import polars as pl

    from mlops_assets.fraud import training

    version = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    if version is None:
        raise data_error(f"{MODEL_NAME} has no champion yet: materialize fraud/champion first")
    frames = {"card_features": card_features, "merchant_features": merchant_features}
    joined, _ = _join_snapshots(feature_store, transactions, frames)
    # By version, not alias: the alias may move between the look-up and the download, and the
    # rows must name the model that scored them.
    loaded = mlflow.load_model_version(MODEL_NAME, version.version)
    probability = training.score(loaded, joined.to_pandas())
    out = joined.select("tx_id", "event_ts", "card_id", "merchant_id", "amount").with_columns(
        pl.Series("fraud_probability", probability, dtype=pl.Float64),
        pl.lit(MODEL_NAME).alias("model_name"),
        pl.lit(str(version.version)).alias("model_version"),
    )
    context.add_output_metadata(
        {
            "model_version": str(version.version),
            **champion_versions_metadata({MODEL_NAME: str(version.version)}),
            "mean_probability": float(out["fraud_probability"].mean() or 0.0),
            "share_above_0_5": float((out["fraud_probability"] > 0.5).mean() or 0.0),
        }
    )
    return out
