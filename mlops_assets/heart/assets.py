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

from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.io_managers import frame_input
from mlops_assets.core.policies import NETWORK_RETRY, data_error, training_step
from mlops_assets.core.publishing import check_specs, publish
from mlops_assets.core.raw_sources import RawSourceConfig, load_raw_source, source_field
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.tracking import CANDIDATE, CHAMPION, MlflowTracking
from mlops_assets.heart import checks, schema

CASE = schema.CASE
MODEL_NAME = CASE.model_name


@deployment_defaults(CASE.op("raw"))
class RawConfig(RawSourceConfig):
    """Where the patients come from."""

    source: Literal["generator", "uci"] = source_field(
        "'generator': deterministic synthetic patients; 'uci': a UCI heart-disease "
        "file (processed.cleveland.data, `?` for missing) or a CSV with the same columns."
    )
    n_patients: int = Field(default=1000, gt=0, description="Generator: number of patients.")


RAW_AUDITS = checks.raw_audits(CASE.key("raw"))


@CASE.asset(
    "raw",
    kinds={"parquet"},
    check_specs=check_specs(RAW_AUDITS),
)
def raw(context: dg.AssetExecutionContext, config: RawConfig, asset_store: AssetStore):
    """Patients in the 14-column Cleveland layout: 13 clinical inputs, the diagnosis `num`
    (0-4) and its binarisation `target` (heart disease or not); missing values are nulls.
    Published only when its blocking checks pass on it."""
    from mlops_assets.heart import sources

    key = CASE.key("raw")
    table = load_raw_source(
        key,
        config,
        generate=lambda: sources.generate_patients(
            sources.GeneratorConfig(n_patients=config.n_patients, seed=config.seed)
        ),
        read=sources.read_uci_file,
        contract_errors=(sources.HeartContractError,),
    )
    yield from publish(
        context,
        asset_store,
        {key: {None: table}},
        RAW_AUDITS,
        metadata={key: {"source": config.describe()}},
    )


@CASE.asset(
    "quality_report",
    ins={"raw": frame_input(CASE.key("raw"), load_as="pandas")},
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


@CASE.asset(
    "features",
    ins={"raw": frame_input(CASE.key("raw"), load_as="pandas")},
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


@deployment_defaults(CASE.op("models"))
class ModelsConfig(dg.Config):
    """How the four models are compared."""

    n_folds: int = Field(default=5, ge=2, le=20, description="Stratified CV folds.")
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.5, description="Stratified holdout.")
    seed: int = 0


@CASE.asset(
    "models",
    ins={"features": frame_input(CASE.key("features"), load_as="pandas")},
    **training_step(kinds={"sklearn", "mlflow"}),
)
def models(
    context: dg.AssetExecutionContext,
    config: ModelsConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
    features,
) -> dg.MaterializeResult:
    """Random forest, logistic regression, gradient boosting and SVM, each an sklearn Pipeline
    (feature engineering, imputation, scaling, one-hot encoding, estimator), compared by
    stratified cross-validation on ROC-AUC (with accuracy, precision, recall, F1) and scored on a
    stratified holdout; each logged to MLflow with `heart/features` as its datasets (the
    training part and the holdout); the best by CV ROC-AUC registered as `heart_disease` with
    alias `candidate`."""
    from mlops_assets.core import reporting
    from mlops_assets.core.tracking import frame_schema
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
            context, use_case=CASE.name, run_name=kind, tags={"kind": kind}
        ) as run:
            run.log_params({"kind": kind, **config.model_dump()})
            run.log_metrics(result.logged_metrics)
            # The same stratified split for every kind (and for the champion's gate): the rows
            # are named by the split's settings, which pick them deterministically.
            split = f"stratified on {schema.TARGET}, holdout_fraction={config.holdout_fraction:g}"
            split += f", seed={config.seed}"
            run.log_input_split(
                context,
                asset_store,
                CASE.key("features"),
                split=split,
                rows=len(frame),
                evaluation_rows=len(result.holdout_labels),
                schema=frame_schema(frame),
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
    table = training.comparison_table(results)
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


@deployment_defaults(CASE.op("champion"))
class ChampionConfig(dg.Config):
    """The promotion gate."""

    min_roc_auc_gain: float = Field(
        default=0.005, ge=0, description="ROC-AUC the candidate must gain over the champion."
    )
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    seed: int = 0


@CASE.asset(
    "champion",
    ins={"features": frame_input(CASE.key("features"), load_as="pandas")},
    deps=[CASE.key("models")],
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
    from mlops_assets.core import champion as flow
    from mlops_assets.core import evaluation
    from mlops_assets.heart import training

    _, holdout = training.split_holdout(
        features[[schema.KEY, *schema.INPUTS, schema.TARGET]],
        fraction=config.holdout_fraction,
        seed=config.seed,
    )
    y = holdout[schema.TARGET].to_numpy()
    ring = flow.contenders(mlflow, MODEL_NAME, trained_by=CASE.key("models").to_user_string())
    scores = flow.score_contenders(mlflow, ring, lambda model: training.score(model, holdout))
    rule = evaluation.PromotionRule(
        metric="roc_auc", higher_is_better=True, min_improvement=config.min_roc_auc_gain
    )
    outcome = flow.gate_contenders(
        mlflow,
        ring,
        rule,
        {role: evaluation.classification_metrics(y, s) for role, s in scores.items()},
    )
    return dg.MaterializeResult(metadata={**outcome.metadata(), "holdout_patients": len(holdout)})


@CASE.asset(
    "deployment_package",
    ins={"features": frame_input(CASE.key("features"), load_as="pandas")},
    deps=[CASE.key("champion")],
    retry_policy=NETWORK_RETRY,
    # Follows the champion: when the alias moves in a run, the new version is packaged next.
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"mlflow"},
)
def deployment_package(
    context: dg.AssetExecutionContext, asset_store: AssetStore, mlflow: MlflowTracking, features
) -> dg.MaterializeResult:
    """What operations deploy: the champion's MLflow model, the environment lock it was built
    in, its serving config and a model card (data, metrics, intended use, limits), in
    `<root>/heart/deployment_package/v<version>/`, with a manifest of hashes written last. A
    version's package is built once; re-materializing verifies it."""
    from mlops_assets.heart import packaging

    serving = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    if serving is None:
        raise data_error(f"{MODEL_NAME} has no champion: materialize heart/champion first")
    destination, manifest, built = packaging.package_version(
        asset_store.folder(CASE.key("deployment_package")),
        mlflow,
        MODEL_NAME,
        serving,
        data_summary={
            "patients": len(features),
            "disease_share": round(float(features[schema.TARGET].mean()), 4),
            "source": CASE.key("raw").to_user_string(),
        },
    )
    return dg.MaterializeResult(
        metadata={
            "path": str(destination),
            "model_version": str(serving.version),
            "built": built,
            "files": dg.MetadataValue.json(sorted(f.path for f in manifest.files)),
        }
    )
