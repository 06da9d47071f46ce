"""Athlete total lift as assets: raw → clean → features (v1, v2) → feature_store → models →
champion.

`features` and `models` are partitioned by feature version (static partitions `v1`, `v2`).
Within a version, `models` is a graph: one mapped step per point of the random-forest grid, so
the multiprocess executor trains grid points in parallel (the in-process executor, used by the
demo, runs them one after another). Every grid point is its own MLflow run with its parameters,
validation scores, residual plot and CodeCarbon emissions; `champion` picks the best point over
both versions and puts it through the promotion gate.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context` and inputs.
from datetime import UTC, datetime
from typing import Literal

import dagster as dg
from pydantic import Field

from mlops_assets.athletes import checks, schema
from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.champion import RmseGainConfig
from mlops_assets.core.feature_store import FeastFeatureStore
from mlops_assets.core.io_managers import STEP_IO_MANAGER, frame_input
from mlops_assets.core.policies import FEAST_REGISTRY_POOL, NETWORK_RETRY, eager_on_published
from mlops_assets.core.publishing import check_specs, publish
from mlops_assets.core.raw_sources import RawSourceConfig, load_raw_source, source_field
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.tracking import CANDIDATE, MlflowTracking

CASE = schema.CASE
MODEL_NAME = CASE.model_name
VERSIONS = dg.StaticPartitionsDefinition(["v1", "v2"])
# The time the feature snapshots describe: the dataset is one registration snapshot, not a stream.
SNAPSHOT_TS = datetime(2024, 1, 1, tzinfo=UTC)


@deployment_defaults(CASE.op("raw"))
class RawConfig(RawSourceConfig):
    """Where the athletes come from."""

    source: Literal["generator", "csv"] = source_field(
        "'generator': deterministic synthetic athletes with a share of junk; "
        "'csv': your athletes.csv in the CrossFit Games layout."
    )
    n_athletes: int = Field(default=5000, gt=0, description="Generator: number of athletes.")


@CASE.asset("raw", kinds={"parquet"})
def raw(context: dg.AssetExecutionContext, config: RawConfig):
    """Registered athletes as the CrossFit Games data has them: identity, body measures,
    benchmark workouts, the four lifts and survey answers, junk included (bronze)."""
    from mlops_assets.athletes import sources

    return load_raw_source(
        CASE.key("raw"),
        config,
        generate=lambda: sources.generate_athletes(
            sources.GeneratorConfig(n_athletes=config.n_athletes, seed=config.seed)
        ),
        read=sources.read_athletes_csv,
        contract_errors=(sources.AthletesContractError,),
    )


CLEAN_AUDITS = checks.clean_audits(CASE.key("clean"))


@CASE.asset(
    "clean",
    ins={"raw": frame_input(CASE.key("raw"), load_as="pandas")},
    check_specs=check_specs(CLEAN_AUDITS),
    kinds={"pandas", "parquet"},
)
def clean(context: dg.AssetExecutionContext, asset_store: AssetStore, raw):
    """The athletes a model may learn from: identity columns dropped, rows breaking a stated
    rule removed (impossible body measures and lifts, unanswered survey), and the target
    `total_lift` = deadlift + clean and jerk + snatch + back squat, in pounds. Published only
    when its blocking checks pass."""
    from mlops_assets.athletes import cleaning
    from mlops_assets.core import reporting

    frame, report = cleaning.clean(raw)
    if (why := cleaning.nothing_left(report)) is not None:
        # Refused before staging: nothing is written, the published table stays as it was, and
        # the step fails, so no feature version is rebuilt on an empty table.
        raise dg.Failure(
            f"athletes/clean: {why}",
            metadata={
                "rows_in": report["rows_in"],
                **{f"removed:{k}": v for k, v in report["removed"].items()},
            },
        )
    removed = [{"rule": k, "removed": v} for k, v in report["removed"].items()]
    summary = {
        "rows_in": report["rows_in"],
        "rows_out": report["rows_out"],
        "removed_by_rule": dg.MetadataValue.md(
            reporting.markdown_table(removed, ["rule", "removed"])
        ),
    }
    yield from publish(
        context,
        asset_store,
        {CASE.key("clean"): {None: frame}},
        CLEAN_AUDITS,
        metadata={CASE.key("clean"): summary},
    )


@CASE.asset(
    "features",
    partitions_def=VERSIONS,
    ins={"clean": frame_input(CASE.key("clean"), load_as="pandas")},
    # One run per version: each is its own feature set with its own grid downstream.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # Keeps itself up to date: both versions are rebuilt when a clean table is published (not
    # when one is rejected by its checks).
    automation_condition=eager_on_published(),
    kinds={"pandas", "parquet"},
)
def features(context: dg.AssetExecutionContext, clean):
    """One feature version per partition, one row per athlete keyed by its stable
    `athlete_id`: v1 the body (age, height, weight, sex), v2 adds BMI, benchmark workouts and
    training background. The lifts are never features: they are the target."""
    from mlops_assets.athletes import features as versions

    frame = versions.build_features(clean, context.partition_key, event_ts=SNAPSHOT_TS)
    context.add_output_metadata({"features": list(versions.FEATURES[context.partition_key])})
    return frame


@CASE.asset(
    "feature_store",
    deps=[CASE.key("features")],
    # Feast's file registry is rewritten without a lock: never two applies at once.
    pool=FEAST_REGISTRY_POOL,
    retry_policy=NETWORK_RETRY,
    # Loaded again when the feature versions are rebuilt, never while one is in progress.
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"feast"},
)
def athletes_feature_store(
    context: dg.AssetExecutionContext, feature_store: FeastFeatureStore
) -> dg.MaterializeResult:
    """Both feature versions registered in Feast (`feast apply`: entity `athlete`, views
    `athlete_features_v1` and `athlete_features_v2`) and loaded into the online store."""
    applied = feature_store.apply(use_case=CASE.name)
    views = feature_store.materialize(
        SNAPSHOT_TS.replace(year=SNAPSHOT_TS.year - 1), SNAPSHOT_TS, use_case=CASE.name
    )
    return dg.MaterializeResult(metadata={"applied": applied, "materialized_views": views})


# -- the grid ---------------------------------------------------------------------------------


@deployment_defaults(CASE.op("models"), "grid_points")
class GridConfig(dg.Config):
    """The random-forest grid: every forest size with every depth (0 = unlimited)."""

    n_estimators: list[int] = Field(default=[50, 150], description="Forest sizes.")
    max_depths: list[int] = Field(default=[6, 12, 0], description="Tree depths; 0 = no limit.")
    validation_share: float = Field(default=0.2, gt=0, lt=0.5)
    seed: int = 0


# Step outputs between the grid's ops are one-row frames, so the parquet IO manager stores them
# like everything else (on disk or S3), and the multiprocess executor can pass them between
# processes.


# The grid's points and fitted results are intermediates, not assets: Dagster's step storage
# under the instance (`$DAGSTER_HOME/storage/<run>/`) keeps them, not the data root, where the
# parquet IO manager would leave a `<run id>/` folder per run beside the use cases.
@dg.op(out=dg.DynamicOut(io_manager_key=STEP_IO_MANAGER))
def grid_points(context: dg.OpExecutionContext, config: GridConfig):
    """Every point of the grid, one mapped step each."""
    import pandas as pd

    from mlops_assets.athletes.training import GridPoint

    for trees in config.n_estimators:
        for depth in config.max_depths:
            point = GridPoint(n_estimators=trees, max_depth=depth or None)
            yield dg.DynamicOutput(
                pd.DataFrame(
                    [
                        {
                            "n_estimators": trees,
                            "max_depth": depth,
                            "validation_share": config.validation_share,
                            "seed": config.seed,
                        }
                    ]
                ),
                mapping_key=point.key,
            )


# Not in the `training` pool: a grid point fits on one core (`n_jobs=1`), and the executor's
# process limit already bounds how many run at once.
@dg.op(retry_policy=NETWORK_RETRY, out=dg.Out(io_manager_key=STEP_IO_MANAGER))
def train_grid_point(
    context: dg.OpExecutionContext,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
    features,
    point,
):
    """Train, score and measure one grid point on the partition's feature version; log it as
    an MLflow run (params, the feature version's training and validation athletes as its
    datasets, validation RMSE/MAE/R², residual plot, emissions, the model)."""
    import pandas as pd

    from mlops_assets.athletes import features as versions
    from mlops_assets.athletes import training
    from mlops_assets.core import evaluation
    from mlops_assets.core.tracking import frame_schema

    # Column by column: a row of mixed types would come back as floats.
    settings = {column: point[column].iloc[0].item() for column in point.columns}
    version = context.partition_key
    grid = training.GridPoint.of(settings)
    columns = list(versions.FEATURES[version])
    result = training.train_grid_point(
        features,
        columns,
        schema.TARGET,
        grid,
        validation_share=float(settings["validation_share"]),
        seed=int(settings["seed"]),
    )
    with mlflow.start_run(
        context,
        use_case=CASE.name,
        asset_key=CASE.key("models"),
        run_name=f"{version}-{grid.key}",
        tags={"feature_version": version, "grid_point": grid.key},
    ) as run:
        run.log_params({"feature_version": version, **settings, "features": ",".join(columns)})
        # The athletes are split by a hash of their id, so the share alone names the rows.
        share = float(settings["validation_share"])
        split = f"sha256(athlete_id) bucket vs validation_share={share:g}"
        run.log_input_split(
            context,
            asset_store,
            CASE.key("features"),
            split=split,
            rows=len(features),
            evaluation_rows=len(result.validation),
            parts=("training athletes", "validation athletes"),
            partition=version,
            schema=frame_schema(features[[*columns, schema.TARGET]]),
        )
        run.log_metrics(result.logged_metrics)
        run.log_figure(
            evaluation.residual_figure(
                result.validation["actual"],
                result.validation["predicted"],
                title=f"{version} {grid.key}: validation athletes",
            ),
            "plots/residuals.png",
        )
        info = run.log_model(
            result.model, name="model", input_example=features[columns].head(5), flavor="sklearn"
        )
    context.log.info(result.summary(version))
    return pd.DataFrame([result.row(version, run.run_id, info.model_uri)])


@dg.op
def grid_table(context: dg.OpExecutionContext, results: list):
    """The grid's results, one row per point, best validation RMSE first."""
    import pandas as pd

    from mlops_assets.core import reporting

    table = pd.concat(results, ignore_index=True).sort_values(
        ["val_rmse", "grid_point"], ignore_index=True
    )
    shown = ["grid_point", "val_rmse", "val_mae", "val_r2", "emissions_kg", "duration_s"]
    context.add_output_metadata(
        {
            "best_grid_point": str(table["grid_point"].iloc[0]),
            "best_val_rmse": float(table["val_rmse"].iloc[0]),
            "grid": dg.MetadataValue.md(
                reporting.markdown_table(table[shown].round(6).to_dict("records"), shown)
            ),
            "total_emissions_kg": float(table["emissions_kg"].sum()),
        }
    )
    return table


@dg.graph_asset(
    key=CASE.key("models"),
    group_name=CASE.group,
    partitions_def=VERSIONS,
    ins={"features": frame_input(CASE.key("features"), load_as="pandas")},
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # Retrained when its feature version is rebuilt.
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"sklearn", "mlflow", "codecarbon"},
)
def models(features):
    """The random-forest grid (forest sizes x depths) on the partition's feature version, one
    MLflow run per grid point with validation RMSE/MAE/R², a residual plot and CodeCarbon
    emissions; the table of every point, best first."""
    results = grid_points().map(lambda point: train_grid_point(features, point))
    return grid_table(results.collect())


@deployment_defaults(CASE.op("champion"))
class ChampionConfig(RmseGainConfig):
    """The promotion gate: the best grid point's validation RMSE against the champion's."""


@CASE.asset(
    "champion",
    ins={"models": frame_input(CASE.key("models"), load_as="pandas")},
    retry_policy=NETWORK_RETRY,
    # Decided again when a grid is updated, never while one is still training.
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"mlflow"},
)
def champion(
    context: dg.AssetExecutionContext, config: ChampionConfig, mlflow: MlflowTracking, models
) -> dg.MaterializeResult:
    """The best grid point over both feature versions by validation RMSE, registered as
    `athletes_total_lift@candidate` and promoted to `champion` if it beats the current one by
    the margin; the whole grid (validation RMSE against emissions) as metadata."""
    from mlops_assets.core import champion as flow
    from mlops_assets.core import reporting

    table = models.sort_values(["val_rmse", "feature_version", "grid_point"], ignore_index=True)
    best = table.iloc[0]
    version = mlflow.register(
        str(best["model_uri"]),
        MODEL_NAME,
        alias=CANDIDATE,
        tags={"feature_version": best["feature_version"], "grid_point": best["grid_point"]},
    )
    # No metrics passed: the gate compares the `val_rmse` each version's run logged, on the
    # validation athletes of its grid.
    outcome = flow.gate(mlflow, MODEL_NAME, version.version, config.rule("val_rmse"))
    shown = ["feature_version", "grid_point", "val_rmse", "val_r2", "emissions_kg", "energy_kwh"]
    return dg.MaterializeResult(
        metadata={
            **outcome.metadata(),
            "candidate": f"v{version.version} {best['feature_version']} {best['grid_point']}",
            "comparison": dg.MetadataValue.md(
                reporting.markdown_table(table[shown].round(6).to_dict("records"), shown)
            ),
            "grid_points": len(table),
            "total_emissions_kg": float(table["emissions_kg"].sum()),
        }
    )
