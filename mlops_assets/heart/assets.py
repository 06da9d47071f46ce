"""Heart disease as assets: raw → quality_report, features → models → champion →
deployment_package.

A small clinical table (hundreds of patients), so the assets are unpartitioned. The engineered
features come from one function (`heart.features.engineer_features`) that is also the first step
of every model's Pipeline: the model that is served computes them itself from the 13 raw inputs.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context` and inputs.
from typing import Literal

import dagster as dg
from pydantic import Field

from mlops_assets.core.io_managers import ParquetIOManager, frame_input
from mlops_assets.core.policies import NETWORK_RETRY, TRAINING_POOL, data_error
from mlops_assets.core.publishing import check_specs, publish
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.tracking import CANDIDATE, CHAMPION, MlflowTracking
from mlops_assets.heart import checks, schema

GROUP = schema.USE_CASE
MODEL_NAME = "heart_disease"


def heart_key(name: str) -> dg.AssetKey:
    """The key of heart asset `name`: `heart/<name>`, stored at `<root>/heart/<name>.parquet`."""
    return dg.AssetKey([schema.USE_CASE, name])


@deployment_defaults("heart__raw")
class RawConfig(dg.Config):
    """Where the patients come from."""

    source: Literal["generator", "uci"] = Field(
        default="generator",
        description="'generator': deterministic synthetic patients; 'uci': a UCI heart-disease "
        "file (processed.cleveland.data, `?` for missing) or a CSV with the same columns.",
    )
    path: str = Field(default="", description="With source='uci': the file to read.")
    n_patients: int = Field(default=1000, gt=0, description="Generator: number of patients.")
    seed: int = Field(default=42, description="Generator: seed.")


RAW_AUDITS = checks.raw_audits(heart_key("raw"))


@dg.asset(
    key=heart_key("raw"),
    group_name=GROUP,
    kinds={"parquet"},
    check_specs=check_specs(RAW_AUDITS),
    required_resource_keys={"io_manager"},
)
def raw(context: dg.AssetExecutionContext, config: RawConfig):
    """Patients in the 14-column Cleveland layout: 13 clinical inputs, the diagnosis `num`
    (0-4) and its binarisation `target` (heart disease or not); missing values are nulls.
    Published only when its blocking checks pass on it."""
    from mlops_assets.heart import sources

    if config.source == "generator":
        table = sources.generate_patients(
            sources.GeneratorConfig(n_patients=config.n_patients, seed=config.seed)
        )
    else:
        if not config.path:
            raise dg.Failure("source='uci' needs `path` (the UCI file to read)")
        try:
            table = sources.read_uci_file(config.path)
        except (sources.HeartContractError, FileNotFoundError) as exc:
            raise dg.Failure(f"heart/raw: {exc}") from exc
    source = config.source if config.source == "generator" else config.path
    yield from publish(
        context,
        {heart_key("raw"): {None: table}},
        RAW_AUDITS,
        metadata={heart_key("raw"): {"source": source}},
    )


@dg.asset(
    key=heart_key("quality_report"),
    group_name=GROUP,
    ins={"raw": frame_input(heart_key("raw"), load_as="pandas")},
    kinds={"pandas", "parquet"},
)
def quality_report(context: dg.AssetExecutionContext, raw):
    """Data quality and exploration of the patients, one row per column: type, missing values,
    range, mean, and correlation with the diagnosis; class balance, the correlation matrix and
    the distributions by class as images in the metadata."""
    from mlops_assets.core import reporting
    from mlops_assets.heart import reports

    summary = reports.column_summary(raw)
    balance = raw[schema.TARGET].value_counts().sort_index()
    context.add_output_metadata(
        {
            "patients": len(raw),
            "disease_share": float(raw[schema.TARGET].mean()),
            "class_balance": dg.MetadataValue.json({str(k): int(v) for k, v in balance.items()}),
            "missing_values": dg.MetadataValue.json(
                {c: int(n) for c, n in raw.isna().sum().items() if n}
            ),
            "columns": dg.MetadataValue.md(
                reporting.markdown_table(summary.round(3).to_dict("records"), list(summary.columns))
            ),
            "correlations": reporting.figure_markdown(
                reports.correlation_figure(raw), alt="Correlation matrix"
            ),
            "distributions": reporting.figure_markdown(
                reports.distribution_figure(raw), alt="Distributions by diagnosis"
            ),
        }
    )
    return summary


@dg.asset(
    key=heart_key("features"),
    group_name=GROUP,
    ins={"raw": frame_input(heart_key("raw"), load_as="pandas")},
    kinds={"pandas", "parquet"},
)
def features(context: dg.AssetExecutionContext, raw):
    """The patients with the six engineered features (age group, cholesterol/age, heart-rate
    reserve, risk score, age x sex, chest pain x exercise angina), computed by the one function
    the served models also run."""
    from mlops_assets.heart.features import ENGINEERED, engineer_features

    frame = engineer_features(raw)
    context.add_output_metadata(
        {
            "engineered": list(ENGINEERED),
            "missing_engineered": dg.MetadataValue.json(
                {c: int(frame[c].isna().sum()) for c in ENGINEERED}
            ),
        }
    )
    return frame


@deployment_defaults("heart__models")
class ModelsConfig(dg.Config):
    """How the four models are compared."""

    n_folds: int = Field(default=5, ge=2, le=20, description="Stratified CV folds.")
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.5, description="Stratified holdout.")
    seed: int = 0


@dg.asset(
    key=heart_key("models"),
    group_name=GROUP,
    ins={"features": frame_input(heart_key("features"), load_as="pandas")},
    pool=TRAINING_POOL,
    retry_policy=NETWORK_RETRY,
    kinds={"sklearn", "mlflow"},
)
def models(
    context: dg.AssetExecutionContext, config: ModelsConfig, mlflow: MlflowTracking, features
) -> dg.MaterializeResult:
    """Random forest, logistic regression, gradient boosting and SVM, each an sklearn Pipeline
    (feature engineering, imputation, scaling, one-hot encoding, estimator), compared by
    stratified cross-validation on ROC-AUC (with accuracy, precision, recall, F1) and scored on a
    stratified holdout; each logged to MLflow; the best by CV ROC-AUC registered as
    `heart_disease` with alias `candidate`."""
    from mlops_assets.core import reporting
    from mlops_assets.heart import training

    frame = features[[schema.KEY, *schema.INPUTS, schema.TARGET]]
    results = training.compare_models(
        frame,
        n_folds=config.n_folds,
        holdout_fraction=config.holdout_fraction,
        seed=config.seed,
    )
    runs = {}
    for kind, result in results.items():
        with mlflow.start_run(
            context, use_case=schema.USE_CASE, run_name=kind, tags={"kind": kind}
        ) as run:
            run.log_params({"kind": kind, **config.model_dump()})
            run.log_metrics(
                {
                    **{f"cv_{k}": v for k, v in result.cv_metrics.items()},
                    **{f"holdout_{k}": v for k, v in result.holdout_metrics.items()},
                }
            )
            info = run.log_model(
                result.pipeline,
                name="model",
                input_example=frame[list(schema.INPUTS)].head(5),
                flavor="sklearn",
            )
            runs[kind] = (run, info)
    best = training.best_kind(results)
    run, info = runs[best]
    version = mlflow.register(info, MODEL_NAME, alias=CANDIDATE, tags={"kind": best})
    table = [
        {
            "kind": kind,
            **{f"cv_{k}": round(v, 4) for k, v in r.cv_metrics.items()},
            "holdout_roc_auc": round(r.holdout_metrics["roc_auc"], 4),
        }
        for kind, r in results.items()
    ]
    return dg.MaterializeResult(
        metadata={
            **mlflow.model_metadata(
                run.run_id,
                experiment_id=run.experiment_id,
                model_version=version,
                alias=CANDIDATE,
                metrics={f"cv_{k}": v for k, v in results[best].cv_metrics.items()},
            ),
            "kind": best,
            "comparison": dg.MetadataValue.md(reporting.markdown_table(table, list(table[0]))),
        }
    )


@deployment_defaults("heart__champion")
class ChampionConfig(dg.Config):
    """The promotion gate."""

    min_roc_auc_gain: float = Field(
        default=0.005, ge=0, description="ROC-AUC the candidate must gain over the champion."
    )
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    seed: int = 0


@dg.asset(
    key=heart_key("champion"),
    group_name=GROUP,
    ins={"features": frame_input(heart_key("features"), load_as="pandas")},
    deps=[heart_key("models")],
    retry_policy=NETWORK_RETRY,
    kinds={"mlflow"},
)
def champion(
    context: dg.AssetExecutionContext,
    config: ChampionConfig,
    mlflow: MlflowTracking,
    features,
) -> dg.MaterializeResult:
    """The model that serves (`heart_disease@champion`): candidate and champion score the same
    stratified holdout; the alias moves only when the candidate's ROC-AUC is higher by the
    margin."""
    from mlops_assets.core import evaluation
    from mlops_assets.heart import training

    _, holdout = training.split_holdout(
        features[[schema.KEY, *schema.INPUTS, schema.TARGET]],
        fraction=config.holdout_fraction,
        seed=config.seed,
    )
    y = holdout[schema.TARGET].to_numpy()
    candidate = mlflow.get_version_by_alias(MODEL_NAME, CANDIDATE)
    if candidate is None:
        raise data_error(f"{MODEL_NAME} has no '{CANDIDATE}': materialize heart/models first")
    current = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    # By version, not alias: the versions scored are those the gate is told it compared, even
    # if an alias moves meanwhile.
    candidate_model = mlflow.load_model_version(MODEL_NAME, candidate.version)
    scores = {"candidate": training.score(candidate_model, holdout)}
    if current is not None and current.version != candidate.version:
        champion_model = mlflow.load_model_version(MODEL_NAME, current.version)
        scores["champion"] = training.score(champion_model, holdout)
    metrics = {who: evaluation.classification_metrics(y, s) for who, s in scores.items()}
    rule = evaluation.PromotionRule(
        metric="roc_auc", higher_is_better=True, min_improvement=config.min_roc_auc_gain
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
    return dg.MaterializeResult(
        metadata={
            **decision.as_metadata(),
            "candidate_version": str(candidate.version),
            "champion_version": str(serving.version) if serving else None,
            "holdout_patients": len(holdout),
            **{f"{who}/{k}": v for who, m in metrics.items() for k, v in m.items()},
        }
    )


@dg.asset(
    key=heart_key("deployment_package"),
    group_name=GROUP,
    ins={"features": frame_input(heart_key("features"), load_as="pandas")},
    deps=[heart_key("champion")],
    required_resource_keys={"io_manager", "mlflow"},
    retry_policy=NETWORK_RETRY,
    # Follows the champion: when the alias moves in a run, the new version is packaged next.
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"mlflow"},
)
def deployment_package(context: dg.AssetExecutionContext, features) -> dg.MaterializeResult:
    """What operations deploy: the champion's MLflow model, the environment lock it was built
    in, its serving config and a model card (data, metrics, intended use, limits), in
    `<root>/heart/deployment_package/v<version>/`, with a manifest of hashes written last. A
    version's package is built once; re-materializing verifies it."""
    import tempfile
    from pathlib import Path

    from mlops_assets.heart import packaging

    mlflow: MlflowTracking = context.resources.mlflow
    io: ParquetIOManager = context.resources.io_manager
    serving = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    if serving is None:
        raise data_error(f"{MODEL_NAME} has no champion: materialize heart/champion first")
    version = str(serving.version)
    folder = io.partition_path(heart_key("deployment_package"), "package").parent
    destination = folder / f"v{version}"
    if destination.exists():
        manifest = packaging.verify_package(destination)
        built = False
    else:
        run = mlflow.client.get_run(serving.run_id)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = mlflow.download_model(MODEL_NAME, version, Path(tmp))
            manifest = packaging.build_package(
                destination,
                model_dir=model_dir,
                model_name=MODEL_NAME,
                model_version=version,
                metrics={
                    part: {
                        k.removeprefix(f"{part}_"): v
                        for k, v in sorted(run.data.metrics.items())
                        if k.startswith(f"{part}_")
                    }
                    for part in ("cv", "holdout")
                },
                data_summary={
                    "patients": len(features),
                    "disease_share": round(float(features[schema.TARGET].mean()), 4),
                    "source": "heart/raw",
                },
                config={"threshold": 0.5, "kind": serving.tags.get("kind", "")},
            )
        built = True
    return dg.MaterializeResult(
        metadata={
            "path": str(destination),
            "model_version": version,
            "built": built,
            "files": dg.MetadataValue.json(sorted(f.path for f in manifest.files)),
        }
    )
