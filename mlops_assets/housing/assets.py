"""House prices as assets: raw → splits → encoders → features → model → holdout_report →
champion.

The data is one table of sales over years, not a daily stream, so the assets are unpartitioned: a
run re-reads the whole history and rebuilds every split. Time still rules every step: the splits
are chronological (train before 2020, evaluate 2020-2021, hold out 2022-2023 by default), the
encoders learn from the training period only, hyperparameters are chosen on the evaluation period,
and the holdout is touched once, by the report that decides promotion.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context` and inputs.
from datetime import date
from typing import Literal

import dagster as dg
from pydantic import Field

from mlops_assets.core import validation
from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.champion import RmseGainConfig
from mlops_assets.core.io_managers import frame_input
from mlops_assets.core.policies import NETWORK_RETRY, training_step
from mlops_assets.core.publishing import Staged, audit, check_specs, publish
from mlops_assets.core.raw_sources import RawSourceConfig, load_raw_source, source_field
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.tracking import CANDIDATE, MlflowTracking
from mlops_assets.housing import checks, schema
from mlops_assets.housing.periods import chronology_problems

CASE = schema.CASE
MODEL_NAME = CASE.model_name

# -- raw ----------------------------------------------------------------------------------------

#: The latest `latest_sale_date` a run may set.
LATEST_SALE_DATE_CAP = date(2200, 1, 1)


@deployment_defaults(CASE.op("raw"))
class RawConfig(RawSourceConfig):
    """Where the sales come from, and the plausibility bounds their blocking checks judge."""

    source: Literal["generator", "csv"] = source_field(
        "'generator': deterministic synthetic sales 2012-2023; 'csv': your own file "
        "(CSV or parquet) with the raw columns."
    )
    n_sales: int = Field(default=30_000, gt=0, description="Generator: number of sales.")
    max_price: float = Field(
        default=schema.MAX_PRICE,
        gt=0,
        description="Blocking check: the highest plausible price. The default, 1e9 USD, is about "
        "four times the dearest home ever sold: it refuses typos and wrong units, no real sale.",
    )
    latest_sale_date: str = Field(
        default="",
        description="Blocking check: no sale may be dated after this day (ISO, 2024-06-30). "
        "Empty: today (UTC) when the check runs, plus a day for time zones ahead of UTC.",
    )

    def latest_sale(self) -> date | None:
        """``latest_sale_date`` as a day (``None``: today, when the check runs); a failure
        naming the setting when it is not an ISO date or lies past the cap."""
        try:
            latest = date.fromisoformat(self.latest_sale_date) if self.latest_sale_date else None
        except ValueError as exc:
            raise dg.Failure(
                f"housing/raw: latest_sale_date must be an ISO date (2024-06-30), "
                f"got {self.latest_sale_date!r}"
            ) from exc
        if latest is not None and latest > LATEST_SALE_DATE_CAP:
            # pandas' timestamps end in 2262: a later sale would pass the check and break `splits`.
            raise dg.Failure(
                f"housing/raw: latest_sale_date {latest} is past {LATEST_SALE_DATE_CAP}: no sale "
                "is dated that far ahead"
            )
        return latest


# The declared checks (their names and specs); a run judges with its own bounds (RawConfig).
RAW_AUDITS = checks.raw_audits(CASE.key("raw"))


@CASE.asset(
    "raw",
    kinds={"parquet"},
    check_specs=check_specs(RAW_AUDITS),
)
def raw(context: dg.AssetExecutionContext, config: RawConfig, asset_store: AssetStore):
    """Home sales, one row per sale: when, where, what kind of home, its size, age and
    condition, and the price it sold for (USD). Published only when its blocking checks pass."""
    from mlops_assets.housing import sources

    key = CASE.key("raw")
    audits = checks.raw_audits(key, max_price=config.max_price, latest=config.latest_sale())

    def read(path: str):
        result = sources.read_sales_csv(path)
        if result.extra_columns:
            context.log.warning(f"ignored columns not in the contract: {result.extra_columns}")
        return result.table

    table = load_raw_source(
        key,
        config,
        generate=lambda: sources.generate_sales(
            sources.GeneratorConfig(n_sales=config.n_sales, seed=config.seed)
        ),
        read=read,
        contract_errors=(sources.HousingContractError,),
    )
    dates = [d for d in table.column(schema.DATE).to_pylist() if d is not None]
    span = f"{min(dates)} .. {max(dates)}" if dates else "none"
    yield from publish(
        context,
        asset_store,
        {key: {None: table}},
        audits,
        metadata={key: {"source": config.describe(), "sale_dates": span}},
    )


# -- splits -------------------------------------------------------------------------------------


@deployment_defaults(CASE.op("splits"))
class SplitConfig(dg.Config):
    """Where time cuts the sales: train before `eval_start`, evaluate until `holdout_start`,
    hold out the rest."""

    eval_start: str = Field(default="2020-01-01", description="First day of the eval period.")
    holdout_start: str = Field(default="2022-01-01", description="First day of the holdout.")


def _chronology(staged: Staged) -> validation.SuiteResult:
    frame = staged.frame(CASE.key("splits"))
    problems = chronology_problems(frame)
    return validation.rule_result(
        "splits_are_chronological", len(frame), len(problems), problems, columns=("split",)
    )


SPLIT_AUDITS = [
    audit(
        CASE.key("splits"),
        "splits_are_chronological",
        _chronology,
        description="Every sale is in exactly one split, each split has rows, and every "
        "train sale precedes every eval sale, which precedes every holdout sale.",
    )
]


@CASE.asset(
    "splits",
    ins={"raw": frame_input(CASE.key("raw"), load_as="pandas")},
    check_specs=check_specs(SPLIT_AUDITS),
    kinds={"pandas", "parquet"},
)
def splits(context: dg.AssetExecutionContext, config: SplitConfig, asset_store: AssetStore, raw):
    """The sales with the period each belongs to (`split`: train, eval or holdout), cut by
    sale date so that a model is always judged on sales later than those it learned from."""
    from mlops_assets.core.reporting import markdown_table
    from mlops_assets.housing import periods

    try:
        eval_start = date.fromisoformat(config.eval_start)
        holdout_start = date.fromisoformat(config.holdout_start)
    except ValueError as exc:
        raise dg.Failure(f"split boundaries must be ISO dates: {exc}") from exc
    try:
        frame = periods.split_by_date(raw, eval_start, holdout_start)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    summary = periods.split_summary(frame)
    key = CASE.key("splits")
    yield from publish(
        context,
        asset_store,
        {key: {None: frame}},
        SPLIT_AUDITS,
        metadata={key: {"splits": dg.MetadataValue.md(markdown_table(summary, list(summary[0])))}},
    )


# -- encoders and features -----------------------------------------------------------------------


class EncoderConfig(dg.Config):
    """How categories become numbers."""

    smoothing: float = Field(
        default=20.0,
        ge=0,
        description="Weight of the overall mean in a category's target encoding (in sales).",
    )
    n_folds: int = Field(default=5, ge=2, le=20, description="Folds of the out-of-fold encoding.")
    seed: int = 0


def _encoder_spec(config: EncoderConfig):
    from mlops_assets.housing import encoding

    return encoding.EncoderSpec(
        smoothing=config.smoothing, n_folds=config.n_folds, seed=config.seed
    )


@CASE.asset(
    "encoders",
    ins={"splits": frame_input(CASE.key("splits"), load_as="pandas")},
    kinds={"pandas", "parquet"},
)
def encoders(context: dg.AssetExecutionContext, config: EncoderConfig, splits):
    """The learned encodings of city, zipcode and property type, one row per category: how
    often it occurs (frequency) and the smoothed mean log price of its sales (target encoding),
    learned from the training period only. The unseen row is what a new category gets."""
    from mlops_assets.housing import encoding

    train = splits[splits["split"] == "train"].reset_index(drop=True)
    table = encoding.fit_encoders(train, _encoder_spec(config))
    context.add_output_metadata(
        {
            "categories": dg.MetadataValue.json(
                table.dropna(subset=["category"]).groupby("feature").size().to_dict()
            ),
            "fitted_on": f"train: {len(train)} sales",
        }
    )
    return table


@CASE.asset(
    "features",
    ins={
        "splits": frame_input(CASE.key("splits"), load_as="pandas"),
        "encoders": frame_input(CASE.key("encoders"), load_as="pandas"),
    },
    kinds={"pandas", "parquet"},
)
def features(context: dg.AssetExecutionContext, config: EncoderConfig, splits, encoders):
    """The model matrix of every sale, in the training column order, with its split and the
    target (log price). Training rows get out-of-fold target encodings (a sale's own price never
    feeds its own features); eval and holdout rows get the encoders learned on train."""
    import pandas as pd

    from mlops_assets.housing import encoding

    train_mask = splits["split"] == "train"
    train = splits[train_mask]
    oof = encoding.out_of_fold_encodings(train, _encoder_spec(config))
    parts = [
        encoding.build_features(train, encoders, oof=oof),
        encoding.build_features(splits[~train_mask], encoders),
    ]
    matrix = pd.concat(parts).loc[splits.index]
    frame = pd.concat(
        [
            splits[[schema.KEY, "split"]],
            matrix,
            pd.Series(encoding.target(splits), index=splits.index, name="target"),
        ],
        axis=1,
    ).reset_index(drop=True)
    unseen = encoding.unseen_categories(splits[~train_mask], encoders)
    context.add_output_metadata(
        {
            "feature_columns": list(encoding.FEATURE_COLUMNS),
            "unseen_in_eval_or_holdout": dg.MetadataValue.json(unseen),
        }
    )
    return frame


# -- model --------------------------------------------------------------------------------------


@deployment_defaults(CASE.op("model"))
class ModelConfig(dg.Config):
    """The hyperparameter search."""

    n_trials: int = Field(default=20, ge=1, le=500, description="Optuna trials.")
    seed: int = Field(default=0, description="Seed of the sampler and of XGBoost.")
    max_estimators: int = Field(default=1500, ge=10, description="Boosting rounds at most.")


@CASE.asset(
    "model",
    ins={
        "features": frame_input(CASE.key("features"), load_as="pandas"),
        "encoders": frame_input(CASE.key("encoders"), load_as="pandas"),
        "splits": frame_input(CASE.key("splits"), load_as="pandas"),
    },
    **training_step(kinds={"optuna", "xgboost", "mlflow"}),
)
def model(
    context: dg.AssetExecutionContext,
    config: ModelConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
    features,
    encoders,
    splits,
) -> dg.MaterializeResult:
    """XGBoost on log price, its hyperparameters tuned by an Optuna study on the eval period
    (every trial a nested MLflow run), bundled with the encoders and the training column order
    into ONE MLflow pyfunc, so serving cannot apply other transforms than training did.
    Registered as `housing_price` with alias `candidate`; the study's run names its training
    and eval rows of `housing/features` and the encoders as its MLflow datasets."""
    from mlops_assets.core import reporting
    from mlops_assets.housing import study, training

    spec = training.TuningSpec(
        n_trials=config.n_trials, seed=config.seed, max_estimators=config.max_estimators
    )
    logged = study.run_logged_study(
        mlflow,
        context,
        features,
        encoders,
        splits[splits["split"] == "eval"].head(5),
        spec,
        model_name=MODEL_NAME,
        store=asset_store,
    )
    version = mlflow.register(logged.info, MODEL_NAME, alias=CANDIDATE)
    best, trials = logged.result.best, logged.result.trials_frame().round(4)
    return dg.MaterializeResult(
        metadata={
            **mlflow.model_metadata(
                logged.run.run_id,
                experiment_id=logged.run.experiment_id,
                model_version=version,
                alias=CANDIDATE,
                metrics=logged.eval_metrics,
            ),
            "best_trial": best.number,
            "best_params": dg.MetadataValue.json(best.params),
            "trials": dg.MetadataValue.md(
                reporting.markdown_table(trials.to_dict("records"), list(trials.columns))
            ),
        }
    )


# -- holdout report and champion ----------------------------------------------------------------


@CASE.asset(
    "holdout_report",
    ins={"splits": frame_input(CASE.key("splits"), load_as="pandas")},
    deps=[CASE.key("model")],
    retry_policy=NETWORK_RETRY,
    kinds={"mlflow", "parquet"},
)
def holdout_report(context: dg.AssetExecutionContext, mlflow: MlflowTracking, splits):
    """Every holdout sale (2022-2023 by default) priced by the candidate and, when there is one,
    the champion, both loaded from the registry and run through the serving code path; RMSE, MAE,
    MAPE and R² of each, with residual plots."""
    from mlops_assets.core import champion as flow
    from mlops_assets.housing import reports

    holdout = splits[splits["split"] == "holdout"].reset_index(drop=True)
    ring = flow.contenders(mlflow, MODEL_NAME, trained_by=CASE.key("model").to_user_string())
    # By version, not alias: the versions the report names are those that priced the sales.
    bundles = flow.score_contenders(
        mlflow, ring, lambda m: m.unwrap_python_model(), flavor="pyfunc"
    )
    versions = {role: str(v.version) for role, v in ring.versions.items()}
    frame, metadata = reports.holdout_report(
        holdout, {role: (versions[role], bundle) for role, bundle in bundles.items()}
    )
    context.add_output_metadata(metadata)
    return frame


@deployment_defaults(CASE.op("champion"))
class ChampionConfig(RmseGainConfig):
    """The promotion gate: on the holdout sales both contenders priced."""


@CASE.asset(
    "champion",
    ins={"holdout_report": frame_input(CASE.key("holdout_report"), load_as="pandas")},
    retry_policy=NETWORK_RETRY,
    kinds={"mlflow"},
)
def champion(
    context: dg.AssetExecutionContext,
    config: ChampionConfig,
    mlflow: MlflowTracking,
    holdout_report,
) -> dg.MaterializeResult:
    """The model that serves (`housing_price@champion`): the alias moves to the candidate only
    if its holdout RMSE beats the champion's on the same sales by the margin."""
    from mlops_assets.core import champion as flow
    from mlops_assets.housing import reports

    candidate, compared_with, metrics = reports.contender_metrics(holdout_report)
    # The champion the holdout report scored: the gate refuses if it moved since.
    outcome = flow.gate(
        mlflow,
        MODEL_NAME,
        candidate,
        config.rule("rmse"),
        metrics=metrics,
        compared_with=compared_with,
    )
    return dg.MaterializeResult(metadata=outcome.metadata())
