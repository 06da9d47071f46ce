"""The card-fraud pipeline as assets: bronze → leak-free features → Feast → training set → model →
champion → scores.

Assets are thin: they read their inputs, call the pure code of ``sources``, ``history``,
``features``, ``training_sets``, ``candidates``, ``promotion`` and ``training``, and write
outputs with metadata. Bronze, silver and scores run single-run backfills (one step computes a
whole ``--partition-range``, reading the 30 days of history or loading the champion once), so
they write their days through the asset store (``AssetStore.write_partitions``, or ``publish``
for the audited ones).
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context`, inputs
# and resources.
import functools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import dagster as dg
from pydantic import Field, field_validator

from mlops_assets.core import champion as champion_flow
from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.champion import sequential_gate
from mlops_assets.core.feature_store import FeastFeatureStore
from mlops_assets.core.io_managers import frame_input
from mlops_assets.core.policies import (
    FEAST_REGISTRY_POOL,
    LIGHT_STEP_TAGS,
    NETWORK_RETRY,
    daily_freshness,
    data_error,
    eager_on_published,
    training_step,
    weekly_freshness,
)
from mlops_assets.core.publishing import check_specs, publish
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.sensors import champion_versions_metadata
from mlops_assets.core.tracking import CANDIDATE, CHAMPION, MlflowTracking
from mlops_assets.fraud import checks, history, schema, training_sets
from mlops_assets.fraud.schema import CASE

if TYPE_CHECKING:
    import polars as pl

    from mlops_assets.fraud.sources import GeneratorConfig

# Polars is imported inside the assets, not here: the code location loads this module in every
# Dagster process, and the inputs below are loaded as Polars frames through `frame_input`.

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
MODEL_NAME = CASE.model_name
BRONZE = ("transactions", "labels")

# The chargeback delay the pipeline supports: merchant fraud counts read labels of transactions
# up to LOOKBACK + this far back (a label counts when it becomes available, not when it happened).
MAX_CHARGEBACK_DAYS = 14
HISTORY_DAYS = schema.LOOKBACK.days
LABEL_HISTORY_DAYS = HISTORY_DAYS + MAX_CHARGEBACK_DAYS


# `@daily_asset("name", ...)`: keyed `<use case>/<name>`, in its group, one partition per UTC day.
daily_asset = functools.partial(CASE.asset, partitions_def=DAILY)


def _window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    window = context.partition_time_window
    return window.start.astimezone(UTC), window.end.astimezone(UTC)


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
    drift_from: str | None = Field(
        default=None,
        description="Drift scenario (generator only): from this day on (YYYY-MM-DD) a new fraud "
        "pattern, account takeover, appears and legitimate amounts shift, so that the "
        "monitors fire and a retraining recovers. Off when empty.",
    )
    drift_amount_factor: float = Field(
        default=1.5, gt=0, le=100, description="Drift scenario: legitimate amounts times this."
    )
    drift_fraud_share: float = Field(
        default=0.5,
        ge=0,
        le=0.9,
        description="Drift scenario: the share of the day's fraud that is account takeover "
        "(added to the configured fraud rate).",
    )

    @field_validator("drift_from")
    @classmethod
    def _iso_day(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        date.fromisoformat(value)  # a ValueError names the bad value
        return value

    def generator(self) -> "GeneratorConfig":
        """The generator's settings (:class:`mlops_assets.fraud.sources.GeneratorConfig`)."""
        from mlops_assets.fraud import sources

        settings = self.model_dump(exclude={"source", "files_root", "drift_from"})
        drift_from = date.fromisoformat(self.drift_from) if self.drift_from else None
        return sources.GeneratorConfig(**settings, drift_from=drift_from)


BRONZE_AUDITS = checks.bronze_audits(CASE.key("transactions"), CASE.key("labels"), DAILY)


def _read_user_days(
    context: dg.AssetExecutionContext, root: str, kinds: Sequence[str], days: Sequence[date]
) -> dict[date, tuple]:
    """The user's files of ``kinds`` for each of ``days``; every file is read before anything is
    written, so a malformed one fails the step with its message alone (file, column, count), not
    a stack trace: the user's file is at fault, not the code."""
    from mlops_assets.fraud import sources

    if not root:
        raise dg.Failure("source='files' needs files_root (the folder of your files)")
    try:
        read = {day: [sources.read_day_file(root, kind, day) for kind in kinds] for day in days}
    except (sources.BronzeContractError, FileNotFoundError) as exc:
        raise dg.Failure(f"fraud/bronze: {exc}", allow_retries=False) from exc
    for day, files in read.items():
        for kind, file in zip(kinds, files, strict=True):
            if file.extra_columns:
                context.log.warning(
                    f"{kind}/{day}: ignored columns not in the contract: "
                    f"{', '.join(file.extra_columns)}"
                )
    return {day: tuple(file.table for file in files) for day, files in read.items()}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CASE.key("transactions"),
            description="Card payments of one UTC day: one row per transaction (bronze).",
            partitions_def=DAILY,
            group_name=CASE.group,
            kinds={"parquet", "polars"},
        ),
        dg.AssetSpec(
            CASE.key("labels"),
            description="The outcome of each payment of the day (fraud or not) and when it "
            "became known: `label_available_ts` is the payment time plus a chargeback delay.",
            partitions_def=DAILY,
            group_name=CASE.group,
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
    # Seconds of work per day: a run of the ingestion alone executes in its own process instead
    # of a process per step (`core/policies.py`, light steps).
    op_tags=LIGHT_STEP_TAGS,
)
def bronze(context: dg.AssetExecutionContext, config: BronzeConfig, asset_store: AssetStore):
    """Generate (or read) every day of the run, then stage, audit and publish them: a malformed
    file fails the step before any day is written, and a day that fails its blocking checks is
    quarantined while the published version of that day stays as it was."""
    from mlops_assets.fraud import sources

    # Transactions alone need no label file; labels are judged against the day's payments.
    kinds = BRONZE if CASE.key("labels") in context.selected_asset_keys else ("transactions",)
    days = [date.fromisoformat(day) for day in context.partition_keys]
    if config.source == "generator":
        generator = config.generator()
        tables = {day: sources.generate_day(day, generator) for day in days}
    else:
        tables = _read_user_days(context, config.files_root, kinds, days)
    # A day's transactions and labels are judged together and published together, or not at
    # all: a label file must never be paired with another run's transactions.
    outputs = {
        CASE.key(kind): {day.isoformat(): day_tables[i] for day, day_tables in tables.items()}
        for i, kind in enumerate(kinds)
    }
    yield from publish(context, asset_store, outputs, BRONZE_AUDITS)


# -- silver: feature snapshots ------------------------------------------------------------------


def _with_history(
    context: dg.AssetExecutionContext,
    store: AssetStore,
    name: str,
    frame: "pl.DataFrame",
    days: int,
) -> tuple["pl.DataFrame", dict]:
    """``frame`` (the step's own days of bronze ``name``) preceded by the ``days`` days before
    them, and the lineage of what was read (`fraud/history.py`)."""
    first = date.fromisoformat(context.partition_keys[0])
    return history.with_history(
        store,
        CASE.key(name),
        frame,
        first,
        days,
        start=DAILY.start.date(),
        reader=f"{context.assets_def.key.to_user_string()} for {first}",
    )


def _split_days(context: dg.AssetExecutionContext, frame: "pl.DataFrame") -> dict:
    """A ranged step's rows (snapshots, scores) split into its days by event time."""
    import polars as pl

    return {
        day: frame.filter(pl.col("event_ts").dt.date() == date.fromisoformat(day))
        for day in context.partition_keys
    }


@daily_asset(
    "card_features",
    # Single run: a range is computed in one step that reads the shared history once and
    # writes each day itself (`write_partitions`), so a 30-day backfill is one run, not 30.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Its own days; the 30 days before them are read by `_with_history`.
    ins={"transactions": frame_input(CASE.key("transactions"))},
    op_tags=LIGHT_STEP_TAGS,
    kinds={"polars", "parquet"},
)
def card_features(
    context: dg.AssetExecutionContext, transactions, asset_store: AssetStore
) -> dg.MaterializeResult:
    """One row per transaction with the card's activity in the 1h/1d/7d/30d before it: counts,
    sums, means and maxima of amounts and distinct merchants. Windows end one second before the
    transaction, so a snapshot never contains the payment it describes (nor its label)."""
    from mlops_assets.fraud import features

    start, end = _window(context)
    transactions, lineage = _with_history(
        context, asset_store, "transactions", transactions, HISTORY_DAYS
    )
    by_day = _split_days(context, features.card_features(transactions, start, end))
    result = asset_store.write_partitions(CASE.key("card_features"), by_day)
    return dg.MaterializeResult(
        metadata={**(result.metadata or {}), **lineage}, data_version=result.data_version
    )


MERCHANT_AUDITS = checks.merchant_features_audits(
    CASE.key("merchant_features"),
    CASE.key("transactions"),
    CASE.key("labels"),
    DAILY,
    LABEL_HISTORY_DAYS,
)


@daily_asset(
    "merchant_features",
    # Single run: a range is computed in one step that reads the shared history once and
    # publishes each day itself, so a 30-day backfill is one run, not 30.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Its own days; the 44 days before them are read by `_with_history`.
    ins={name: frame_input(CASE.key(name)) for name in BRONZE},
    check_specs=check_specs(MERCHANT_AUDITS),
    op_tags=LIGHT_STEP_TAGS,
    kinds={"polars", "parquet"},
)
def merchant_features(
    context: dg.AssetExecutionContext, transactions, labels, asset_store: AssetStore
):
    """One row per transaction with the merchant's activity in the windows before it, and the
    number of fraud labels of the merchant that became known in the last 1/7/30 days before it
    (a label counts from its `label_available_ts`, never earlier)."""
    from mlops_assets.fraud import features

    start, end = _window(context)
    frames, lineages = {}, {}
    for name, frame in zip(BRONZE, (transactions, labels), strict=True):
        frames[name], lineages[name] = _with_history(
            context, asset_store, name, frame, LABEL_HISTORY_DAYS
        )
    snapshots = features.merchant_features(frames["transactions"], frames["labels"], start, end)
    key = CASE.key("merchant_features")
    yield from publish(
        context,
        asset_store,
        {key: _split_days(context, snapshots)},
        MERCHANT_AUDITS,
        metadata={key: history.combined_lineage(lineages)},
    )


@daily_asset(
    "feature_store",
    deps=[CASE.key(view) for view in training_sets.SNAPSHOT_VIEWS],
    # One run loads a whole range into the online store (Feast materializes an interval).
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Feast's file registry is rewritten without a lock: never two applies at once.
    pool=FEAST_REGISTRY_POOL,
    # The registry (PostgreSQL) and the online store (Redis) are across the network.
    retry_policy=NETWORK_RETRY,
    # Serving reads these snapshots: the daily ingestion must keep them within a day.
    freshness_policy=daily_freshness(),
    op_tags=LIGHT_STEP_TAGS,
    kinds={"feast"},
)
def fraud_feature_store(
    context: dg.AssetExecutionContext, asset_store: AssetStore, feature_store: FeastFeatureStore
) -> dg.MaterializeResult:
    """The fraud entities and feature views registered in Feast (`feast apply`) and the day's
    latest snapshot per card and merchant loaded into the online store for serving."""
    # Feast reads the published snapshots itself: refuse, like any input, days whose latest
    # version was rejected, rather than load the version published before it.
    for view in training_sets.SNAPSHOT_VIEWS:
        asset_store.publisher.refuse_rejected(CASE.key(view), list(context.partition_keys))
    start, end = _window(context)
    applied = feature_store.apply(use_case=CASE.name)
    views = feature_store.materialize(start, end - timedelta(microseconds=1), use_case=CASE.name)
    return dg.MaterializeResult(
        metadata={
            "applied": applied,
            "materialized_views": views,
            "window": f"{start.isoformat()} .. {end.isoformat()}",
        }
    )


# -- training set -------------------------------------------------------------------------------


@deployment_defaults(CASE.op("training_set"))
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


@daily_asset(
    "training_set",
    deps=[CASE.key(name) for name in training_sets.INPUTS],
    check_specs=training_sets.check_specs(CASE.key("training_set")),
    # One run per day: each day's set is its own versioned dataset with pointers, written by a
    # run whose id names its folder.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # Reads the feature views' definitions from Feast's registry (PostgreSQL on the stack).
    retry_policy=NETWORK_RETRY,
    kinds={"polars", "parquet"},
)
def training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    asset_store: AssetStore,
    feature_store: FeastFeatureStore,
):
    """Labelled transactions of a window of days, each joined with the card and merchant
    snapshots as of its own time (point-in-time correct). A versioned dataset:
    `dt=<day>/run_id=<run>/` with `_LATEST`, and `_CURRENT` moved only when no row leaks."""
    import polars as pl

    day = context.partition_key
    days = training_sets.window(
        day, window_days=config.window_days, maturity_days=config.maturity_days
    )
    read = {
        name: asset_store.read_partitions(CASE.key(name), days) for name in training_sets.INPUTS
    }
    frames = {name: pl.from_arrow(table) for name, (table, _) in read.items()}
    built = training_sets.build(feature_store, frames, day, days)
    version = training_sets.save(
        asset_store,
        CASE.key("training_set"),
        built,
        day,
        context.run.run_id,
        {name: versions for name, (_, versions) in read.items()},
    )
    yield dg.MaterializeResult(
        metadata=training_sets.metadata(built, version),
        data_version=dg.DataVersion(version.data_version),
        check_results=training_sets.check_results(
            built, (config.min_fraud_share, config.max_fraud_share)
        ),
    )


# -- models -------------------------------------------------------------------------------------


@deployment_defaults(CASE.op("model"))
class ModelConfig(dg.Config):
    """How candidates are trained and compared."""

    kinds: list[str] = Field(
        default=["logreg", "xgboost"],
        description="Models to train: the logistic-regression baseline and the XGBoost challenger.",
    )
    validation_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    precision_target: float = Field(default=0.9, gt=0, lt=1)
    seed: int = 0


@daily_asset(
    "model",
    # One run per day: each day registers its own model version in MLflow.
    **training_step(
        per_partition=True,
        deps=[CASE.key("training_set")],
        kinds={"mlflow", "sklearn", "xgboost"},
    ),
)
def model(
    context: dg.AssetExecutionContext,
    config: ModelConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """The fraud classifier trained on the day's training set: one sklearn Pipeline per kind
    (imputation, scaling and one-hot encoding inside, so serving applies exactly the same
    transforms), validated on the chronologically last part of the window. The best kind by
    PR-AUC is registered as `fraud_classifier` with alias `candidate`."""
    from mlops_assets.fraud import candidates

    day = context.partition_key
    frame, manifest = training_sets.load_current(asset_store, CASE.key("training_set"), day)
    trained = candidates.train(
        context,
        mlflow,
        frame.to_pandas(),
        use_case=CASE.name,
        day=day,
        kinds=config.kinds,
        tags=candidates.lineage_tags(manifest),
        validation_fraction=config.validation_fraction,
        precision_target=config.precision_target,
        seed=config.seed,
    )
    best = candidates.best(trained)
    version = mlflow.register(best.info, MODEL_NAME, alias=CANDIDATE, tags={"kind": best.kind})
    return dg.MaterializeResult(
        metadata=candidates.metadata(mlflow, trained, best, version, alias=CANDIDATE)
    )


@deployment_defaults(CASE.op("champion"))
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
    live_evidence: bool = Field(
        default=False,
        description="Also require live evidence: the candidate, rolled out in shadow or canary, "
        "must beat the champion in PR-AUC on the same labelled API requests. Without it (rollout "
        "off, too few labels yet) the champion is kept, with the reason.",
    )
    min_live_labelled: int = Field(
        default=1000,
        ge=1,
        description="With live_evidence: labelled requests both versions scored, at least.",
    )
    min_live_pr_auc_gain: float = Field(
        default=0.0,
        ge=0,
        description="With live_evidence: the candidate's live PR-AUC must beat the champion's by "
        "at least this much (and be strictly higher) on those requests.",
    )
    live_lookback_days: int = Field(
        default=MAX_CHARGEBACK_DAYS,
        ge=0,
        le=90,
        description="With live_evidence: the requests of the partition's day and of this many "
        "days before it count; their labels count as known at the end of the partition's day.",
    )


@daily_asset(
    "champion", **sequential_gate(deps=[CASE.key("model")], freshness_policy=weekly_freshness())
)
def champion(
    context: dg.AssetExecutionContext,
    config: ChampionConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """The model that serves (`fraud_classifier@champion`). The candidate and the current
    champion score the same latest holdout; the alias moves only if the candidate gains at least
    the margin in PR-AUC without losing more than the guardrail in recall at 90% precision. With
    `live_evidence`, the candidate must also have beaten the champion in PR-AUC on enough
    labelled API requests both scored during its rollout (shadow or canary)."""
    from mlops_assets.fraud import promotion, rollout, training

    day = context.partition_key
    frame, manifest = training_sets.load_current(asset_store, CASE.key("training_set"), day)
    holdout = promotion.holdout(frame.to_pandas(), config.validation_fraction)
    ring = champion_flow.contenders(
        mlflow, MODEL_NAME, trained_by=CASE.key("model").to_user_string()
    )
    scores = champion_flow.score_contenders(mlflow, ring, lambda m: training.score(m, holdout))
    metrics = promotion.metrics(holdout, scores, config.precision_target)
    rule = promotion.rule(
        min_pr_auc_gain=config.min_pr_auc_gain, max_recall_loss=config.max_recall_loss
    )
    live = None
    if config.live_evidence:
        live = rollout.live_evidence(
            asset_store,
            day=day,
            candidate_version=ring.candidate.version,
            champion_version=ring.champion.version if ring.champion is not None else None,
            lookback_days=config.live_lookback_days,
            min_labelled=config.min_live_labelled,
            min_gain=config.min_live_pr_auc_gain,
            rollout=champion_flow.rollout_setting(mlflow, MODEL_NAME),
        )
    outcome = champion_flow.gate_contenders(mlflow, ring, rule, metrics, live=live)
    evidence = promotion.evidence(
        holdout,
        scores,
        metrics,
        precision_target=config.precision_target,
        manifest=manifest,
        fraction=config.validation_fraction,
    )
    return dg.MaterializeResult(metadata={**outcome.metadata(), **evidence})


# -- batch scores -------------------------------------------------------------------------------


@daily_asset(
    "scores",
    ins={
        name: frame_input(CASE.key(name))
        for name in ("transactions", *training_sets.SNAPSHOT_VIEWS)
    },
    # Scores use whichever model is champion when they run. Same day, so that in a backfill of
    # the whole group a day is scored after its champion was decided, not before.
    deps=[CASE.key("champion")],
    # Single run: a range is scored in one step, by one champion loaded once, and each day written
    # by it (`write_partitions`), so rescoring a month after a promotion is one run, not 30.
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=NETWORK_RETRY,
    # Keeps itself up to date: the latest day is scored as soon as its transactions and features
    # land. The champion is left out of the condition: it is retrained weekly, so its latest
    # partition is usually missing, and a model change is the rescoring sensor's job
    # (`fraud_rescore_on_champion_change` sees every alias move, made by a run or by hand).
    # Days rejected by their blocking checks are not scored until a fixed version passes.
    automation_condition=eager_on_published(
        dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(CASE.key("champion")))
    ),
    kinds={"polars", "parquet"},
)
def scores(
    context: dg.AssetExecutionContext,
    transactions,
    card_features,
    merchant_features,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
    feature_store: FeastFeatureStore,
) -> dg.MaterializeResult:
    """The fraud probability of every transaction of the day, scored by the champion with the
    same point-in-time features as in training; one row per transaction, model version on each."""
    import polars as pl

    from mlops_assets.fraud import training

    version = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    if version is None:
        raise data_error(f"{MODEL_NAME} has no champion yet: materialize fraud/champion first")
    snapshots = {"card_features": card_features, "merchant_features": merchant_features}
    joined, _ = training_sets.join_snapshots(feature_store, transactions, snapshots)
    # By version, not alias: the alias may move between the look-up and the download, and the
    # rows must name the model that scored them.
    loaded = mlflow.load_model_version(MODEL_NAME, version.version)
    probability = training.score(loaded, joined.to_pandas())
    out = joined.select("tx_id", "event_ts", "card_id", "merchant_id", "amount").with_columns(
        pl.Series("fraud_probability", probability, dtype=pl.Float64),
        pl.lit(MODEL_NAME).alias("model_name"),
        pl.lit(str(version.version)).alias("model_version"),
    )
    result = asset_store.write_partitions(CASE.key("scores"), _split_days(context, out))
    return dg.MaterializeResult(
        metadata={
            **(result.metadata or {}),
            "model_version": str(version.version),
            **champion_versions_metadata({MODEL_NAME: str(version.version)}),
            "mean_probability": float(out["fraud_probability"].mean() or 0.0),
            "share_above_0_5": float((out["fraud_probability"] > 0.5).mean() or 0.0),
        },
        data_version=result.data_version,
    )
