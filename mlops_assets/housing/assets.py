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
from mlops_assets.core.io_managers import frame_input
from mlops_assets.core.policies import NETWORK_RETRY, TRAINING_POOL, data_error
from mlops_assets.core.publishing import Staged, audit, check_specs, publish
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.tracking import CANDIDATE, CHAMPION, MlflowTracking
from mlops_assets.housing import checks, schema

GROUP = schema.USE_CASE
MODEL_NAME = "housing_price"
SPLITS = ("train", "eval", "holdout")


def housing_key(name: str) -> dg.AssetKey:
    """The key of housing asset `name`: `housing/<name>`, stored at `<root>/housing/<name>.parquet`."""
    return dg.AssetKey([schema.USE_CASE, name])


# -- raw ----------------------------------------------------------------------------------------


@deployment_defaults("housing__raw")
class RawConfig(dg.Config):
    """Where the sales come from."""

    source: Literal["generator", "csv"] = Field(
        default="generator",
        description="'generator': deterministic synthetic sales 2012-2023; 'csv': your own file "
        "(CSV or parquet) with the raw columns.",
    )
    path: str = Field(default="", description="With source='csv': the file to read.")
    n_sales: int = Field(default=30_000, gt=0, description="Generator: number of sales.")
    seed: int = Field(default=42, description="Generator: seed.")
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


#: The latest `latest_sale_date` a run may set.
LATEST_SALE_DATE_CAP = date(2200, 1, 1)

# The declared checks (their names and specs); a run judges with its own bounds (RawConfig).
RAW_AUDITS = checks.raw_audits(housing_key("raw"))


@dg.asset(
    key=housing_key("raw"),
    group_name=GROUP,
    kinds={"parquet"},
    check_specs=check_specs(RAW_AUDITS),
    required_resource_keys={"io_manager"},
)
def raw(context: dg.AssetExecutionContext, config: RawConfig):
    """Home sales, one row per sale: when, where, what kind of home, its size, age and
    condition, and the price it sold for (USD). Published only when its blocking checks pass."""
    from mlops_assets.housing import sources

    try:
        latest = date.fromisoformat(config.latest_sale_date) if config.latest_sale_date else None
    except ValueError as exc:
        raise dg.Failure(
            f"housing/raw: latest_sale_date must be an ISO date (2024-06-30), "
            f"got {config.latest_sale_date!r}"
        ) from exc
    if latest is not None and latest > LATEST_SALE_DATE_CAP:
        # pandas' timestamps end in 2262: a later sale would pass the check and break `splits`.
        raise dg.Failure(
            f"housing/raw: latest_sale_date {latest} is past {LATEST_SALE_DATE_CAP}: no sale "
            "is dated that far ahead"
        )
    audits = checks.raw_audits(housing_key("raw"), max_price=config.max_price, latest=latest)
    if config.source == "generator":
        table = sources.generate_sales(
            sources.GeneratorConfig(n_sales=config.n_sales, seed=config.seed)
        )
    else:
        if not config.path:
            raise dg.Failure("source='csv' needs `path` (the file of sales to read)")
        try:
            result = sources.read_sales_csv(config.path)
        except (sources.HousingContractError, FileNotFoundError) as exc:
            raise dg.Failure(f"housing/raw: {exc}") from exc
        if result.extra_columns:
            context.log.warning(f"ignored columns not in the contract: {result.extra_columns}")
        table = result.table
    dates = [d for d in table.column(schema.DATE).to_pylist() if d is not None]
    span = f"{min(dates)} .. {max(dates)}" if dates else "none"
    yield from publish(
        context,
        {housing_key("raw"): {None: table}},
        audits,
        metadata={housing_key("raw"): {"source": config.source, "sale_dates": span}},
    )


# -- splits -------------------------------------------------------------------------------------


@deployment_defaults("housing__splits")
class SplitConfig(dg.Config):
    """Where time cuts the sales: train before `eval_start`, evaluate until `holdout_start`,
    hold out the rest."""

    eval_start: str = Field(default="2020-01-01", description="First day of the eval period.")
    holdout_start: str = Field(default="2022-01-01", description="First day of the holdout.")


def _chronology(staged: Staged) -> validation.SuiteResult:
    frame = staged.frame(housing_key("splits"))
    problems = chronology_problems(frame)
    return validation.rule_result(
        "splits_are_chronological", len(frame), len(problems), problems, columns=("split",)
    )


SPLIT_AUDITS = [
    audit(
        housing_key("splits"),
        "splits_are_chronological",
        _chronology,
        description="Every sale is in exactly one split, each split has rows, and every "
        "train sale precedes every eval sale, which precedes every holdout sale.",
    )
]


@dg.asset(
    key=housing_key("splits"),
    group_name=GROUP,
    ins={"raw": frame_input(housing_key("raw"), load_as="pandas")},
    check_specs=check_specs(SPLIT_AUDITS),
    required_resource_keys={"io_manager"},
    kinds={"pandas", "parquet"},
)
def splits(context: dg.AssetExecutionContext, config: SplitConfig, raw):
    """The sales with the period each belongs to (`split`: train, eval or holdout), cut by
    sale date so that a model is always judged on sales later than those it learned from."""
    import pandas as pd

    from mlops_assets.core.reporting import markdown_table

    try:
        eval_start = date.fromisoformat(config.eval_start)
        holdout_start = date.fromisoformat(config.holdout_start)
    except ValueError as exc:
        raise dg.Failure(f"split boundaries must be ISO dates: {exc}") from exc
    if not eval_start < holdout_start:
        raise dg.Failure(f"eval_start {eval_start} must come before holdout_start {holdout_start}")
    day = pd.to_datetime(raw[schema.DATE]).dt.date
    split = pd.Series("eval", index=raw.index)
    split[day < eval_start] = "train"
    split[day >= holdout_start] = "holdout"
    frame = raw.assign(split=split.astype(str))
    summary = [
        {
            "split": name,
            "rows": int((frame["split"] == name).sum()),
            "first_sale": str(day[frame["split"] == name].min()),
            "last_sale": str(day[frame["split"] == name].max()),
        }
        for name in SPLITS
    ]
    yield from publish(
        context,
        {housing_key("splits"): {None: frame}},
        SPLIT_AUDITS,
        metadata={
            housing_key("splits"): {
                "splits": dg.MetadataValue.md(markdown_table(summary, list(summary[0])))
            }
        },
    )


def chronology_problems(frame) -> list[str]:
    """What breaks the chronological contract of ``frame`` (a `split` column beside the sale
    dates): an unknown or missing split, an empty split, or a split whose sales are not all later
    than every sale of the splits before it."""
    import pandas as pd

    problems = []
    unknown = sorted(set(frame["split"].dropna()) - set(SPLITS))
    if unknown or frame["split"].isna().any():
        problems.append(f"rows outside the three splits: {unknown or 'null'}")
    day = pd.to_datetime(frame[schema.DATE])
    for earlier, later in (("train", "eval"), ("eval", "holdout"), ("train", "holdout")):
        before, after = day[frame["split"] == earlier], day[frame["split"] == later]
        if before.empty or after.empty:
            continue
        if before.max() >= after.min():
            problems.append(
                f"{earlier} ends {before.max().date()}, not before {later} starts "
                f"{after.min().date()}"
            )
    problems += [f"{name} is empty" for name in SPLITS if not (frame["split"] == name).any()]
    return problems


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


@dg.asset(
    key=housing_key("encoders"),
    group_name=GROUP,
    ins={"splits": frame_input(housing_key("splits"), load_as="pandas")},
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


@dg.asset(
    key=housing_key("features"),
    group_name=GROUP,
    ins={
        "splits": frame_input(housing_key("splits"), load_as="pandas"),
        "encoders": frame_input(housing_key("encoders"), load_as="pandas"),
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


@deployment_defaults("housing__model")
class ModelConfig(dg.Config):
    """The hyperparameter search."""

    n_trials: int = Field(default=20, ge=1, le=500, description="Optuna trials.")
    seed: int = Field(default=0, description="Seed of the sampler and of XGBoost.")
    max_estimators: int = Field(default=1500, ge=10, description="Boosting rounds at most.")


@dg.asset(
    key=housing_key("model"),
    group_name=GROUP,
    ins={
        "features": frame_input(housing_key("features"), load_as="pandas"),
        "encoders": frame_input(housing_key("encoders"), load_as="pandas"),
        "splits": frame_input(housing_key("splits"), load_as="pandas"),
    },
    pool=TRAINING_POOL,
    retry_policy=NETWORK_RETRY,
    kinds={"optuna", "xgboost", "mlflow"},
)
def model(
    context: dg.AssetExecutionContext,
    config: ModelConfig,
    mlflow: MlflowTracking,
    features,
    encoders,
    splits,
) -> dg.MaterializeResult:
    """XGBoost on log price, its hyperparameters tuned by an Optuna study on the eval period
    (every trial a nested MLflow run), bundled with the encoders and the training column order
    into ONE MLflow pyfunc, so serving cannot apply other transforms than training did.
    Registered as `housing_price` with alias `candidate`."""
    from mlops_assets.core import reporting
    from mlops_assets.housing import encoding, inference, training

    columns = list(encoding.FEATURE_COLUMNS)
    train, evaluation = (features[features["split"] == s] for s in ("train", "eval"))
    spec = training.TuningSpec(
        n_trials=config.n_trials, seed=config.seed, max_estimators=config.max_estimators
    )
    with mlflow.start_run(context, use_case=schema.USE_CASE, run_name="housing-study") as study:
        study.log_params(
            {"n_trials": spec.n_trials, "seed": spec.seed, "max_estimators": spec.max_estimators}
        )

        def log_trial(trial: training.TrialResult) -> None:
            with mlflow.start_run(
                context,
                use_case=schema.USE_CASE,
                run_name=f"trial-{trial.number:03d}",
                parent=study,
                tags={"optuna.trial": str(trial.number)},
            ) as run:
                run.log_params({**trial.params, "best_iteration": trial.best_iteration})
                run.log_metrics({f"eval_{k}": v for k, v in trial.metrics.items()})

        result = training.tune(
            train[columns],
            train["target"].to_numpy(),
            evaluation[columns],
            evaluation["target"].to_numpy(),
            spec,
            on_trial=log_trial,
        )
        study.log_params({f"best_{k}": v for k, v in result.best.params.items()})
        eval_metrics = {f"eval_{k}": v for k, v in result.best.metrics.items()}
        study.log_metrics(eval_metrics)
        bundle = inference.bundle(
            result.model,
            encoders,
            metadata={"best_trial": result.best.number, "eval_rmse": result.best.metrics["rmse"]},
        )
        sample = splits[splits["split"] == "eval"].head(5)
        signature, example = inference.signature_and_example(sample)
        info = study.log_model(
            bundle,
            name="housing_price",
            input_example=example,
            signature=signature,
            flavor="pyfunc",
            pip_requirements=inference.pip_requirements(),
        )
    version = mlflow.register(info, MODEL_NAME, alias=CANDIDATE)
    trials = result.trials_frame().round(4)
    return dg.MaterializeResult(
        metadata={
            **mlflow.model_metadata(
                study.run_id,
                experiment_id=study.experiment_id,
                model_version=version,
                alias=CANDIDATE,
                metrics=eval_metrics,
            ),
            "best_trial": result.best.number,
            "best_params": dg.MetadataValue.json(result.best.params),
            "trials": dg.MetadataValue.md(
                reporting.markdown_table(trials.to_dict("records"), list(trials.columns))
            ),
        }
    )


# -- holdout report and champion ----------------------------------------------------------------


@dg.asset(
    key=housing_key("holdout_report"),
    group_name=GROUP,
    ins={"splits": frame_input(housing_key("splits"), load_as="pandas")},
    deps=[housing_key("model")],
    retry_policy=NETWORK_RETRY,
    kinds={"mlflow", "parquet"},
)
def holdout_report(context: dg.AssetExecutionContext, mlflow: MlflowTracking, splits):
    """Every holdout sale (2022-2023 by default) priced by the candidate and, when there is one,
    the champion, both loaded from the registry and run through the serving code path; RMSE, MAE,
    MAPE and R² of each, with residual plots."""
    import pandas as pd

    from mlops_assets.core import evaluation, reporting
    from mlops_assets.housing import inference

    holdout = splits[splits["split"] == "holdout"].reset_index(drop=True)
    models = {"candidate": mlflow.get_version_by_alias(MODEL_NAME, CANDIDATE)}
    if models["candidate"] is None:
        raise data_error(f"{MODEL_NAME} has no '{CANDIDATE}': materialize housing/model first")
    champion_version = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    # A candidate that already serves is scored once; the gate keeps it without a comparison.
    if champion_version is not None and champion_version.version != models["candidate"].version:
        models["champion"] = champion_version
    frame = holdout[[schema.KEY, schema.DATE, schema.TARGET]].copy()
    metadata, table = {}, []
    for who, version in models.items():
        bundle = mlflow.load_model(MODEL_NAME, who, flavor="pyfunc").unwrap_python_model()
        predicted, prepared = inference.predict_records(
            bundle, holdout[list(schema.FEATURE_INPUTS)]
        )
        frame[f"predicted_{who}"] = predicted
        frame[f"model_version_{who}"] = str(version.version)
        metrics = evaluation.regression_metrics(holdout[schema.TARGET], predicted)
        table.append(
            {"model": f"{who} v{version.version}", **{k: round(v, 4) for k, v in metrics.items()}}
        )
        metadata.update({f"{who}/{k}": v for k, v in metrics.items()})
        metadata[f"{who}/residuals"] = reporting.figure_markdown(
            evaluation.residual_figure(
                holdout[schema.TARGET], predicted, title=f"{who} v{version.version} on the holdout"
            ),
            alt=f"{who} residuals",
        )
        if prepared.unseen:
            metadata[f"{who}/unseen_categories"] = dg.MetadataValue.json(prepared.unseen)
    metadata["metrics"] = dg.MetadataValue.md(reporting.markdown_table(table, list(table[0])))
    metadata["holdout_sales"] = len(frame)
    context.add_output_metadata(metadata)
    return pd.DataFrame(frame)


@deployment_defaults("housing__champion")
class ChampionConfig(dg.Config):
    """The promotion gate."""

    min_rmse_gain_pct: float = Field(
        default=1.0,
        ge=0,
        description="The candidate's holdout RMSE must beat the champion's by more than this "
        "percentage of the champion's RMSE.",
    )


@dg.asset(
    key=housing_key("champion"),
    group_name=GROUP,
    ins={"holdout_report": frame_input(housing_key("holdout_report"), load_as="pandas")},
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
    from mlops_assets.core import evaluation

    truth = holdout_report[schema.TARGET]
    scored = {
        who: evaluation.regression_metrics(truth, holdout_report[f"predicted_{who}"])
        for who in ("candidate", "champion")
        if f"predicted_{who}" in holdout_report
    }
    candidate = str(holdout_report["model_version_candidate"].iloc[0])
    rule = evaluation.PromotionRule(
        metric="rmse",
        higher_is_better=False,
        min_relative_improvement=config.min_rmse_gain_pct / 100,
    )
    decision = mlflow.promote(
        MODEL_NAME,
        candidate,
        rule,
        candidate_metrics=scored["candidate"],
        champion_metrics=scored.get("champion"),
        # The champion the holdout report scored; the gate refuses if it moved since.
        compared_with=(
            str(holdout_report["model_version_champion"].iloc[0])
            if "model_version_champion" in holdout_report
            else None
        ),
    )
    serving = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    return dg.MaterializeResult(
        metadata={
            **decision.as_metadata(),
            "candidate_version": candidate,
            "champion_version": str(serving.version) if serving else None,
            **{f"{who}/{k}": v for who, m in scored.items() for k, v in m.items()},
        }
    )
