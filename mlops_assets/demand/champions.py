"""Each respondent's forecaster in the MLflow registry: the day's best model registered and
gated, and the champions read back by the backtest and the forecasts.

Every respondent has its own registered model (:func:`~mlops_assets.demand.schema.model_name`),
its own MLflow run per day and its own ``champion`` alias. The gate compares backtest figures on
the same windows, not a fresh holdout: the candidate's are its leaderboard row, the champion's the
row of *its* model in the same leaderboard (``demand/cv_results`` always re-scores the serving
model). The gate itself (compare-and-set under the model's lock) and the champion read back after
it are :func:`mlops_assets.core.champion.gate`.

A forecaster is refitted on the history it forecasts from, so what made a version is the backtest
that selected it: its run logs the clean window that backtest ran on as its ``training`` dataset
and the day's leaderboard rows of the respondent as its ``evaluation`` dataset.

mlflow, pandas and the forecaster are imported inside the functions, where they are needed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core.champion import CANDIDATE_ROLE, CHAMPION_ROLE, gate
from mlops_assets.core.policies import data_error
from mlops_assets.core.tracking import CANDIDATE
from mlops_assets.demand import schema
from mlops_assets.demand.schema import model_name

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion

    from mlops_assets.core.evaluation import PromotionRule
    from mlops_assets.core.tracking import MlflowTracking, TrackedRun
    from mlops_assets.demand.forecasting import BacktestSpec

# The leaderboard figures logged with each candidate and handed to the gate (which compares
# `rmse_mean`).
METRICS = ("rmse_mean", "rmse_std", "mae_mean", "mape_mean", "skill_vs_baseline")


def row_metrics(row: pd.Series) -> dict[str, float]:
    """The gate's figures of one leaderboard row (one model of one respondent)."""
    return {m: float(row[m]) for m in METRICS}


def champion_models(mlflow: MlflowTracking, respondents: list[str]) -> dict[str, str]:
    """The model kind serving as champion of each respondent that has one: the backtest scores
    it again, so that the gate compares candidate and champion on the same windows."""
    kinds = {}
    for respondent in respondents:
        version = mlflow.champion(model_name(respondent))
        if version is not None and version.tags.get("model"):
            kinds[respondent] = version.tags["model"]
    return kinds


@dataclass(frozen=True)
class Promotion:
    """What the gate did for one respondent: a row of the champion's ``decisions`` table.
    Versions read ``v<version> <model>`` (``v3 gbm``), or ``none``."""

    respondent: str
    candidate: str
    candidate_rmse: float
    champion_before: str
    promoted: bool
    champion: str
    reason: str
    mlflow_run: str


def register_and_gate(
    context: dg.AssetExecutionContext,
    mlflow: MlflowTracking,
    respondent: str,
    board: pd.DataFrame,
    history: pd.DataFrame,
    spec: BacktestSpec,
    rule: PromotionRule,
) -> Promotion:
    """The respondent's best model of the day becomes a candidate, and champion if it wins.

    ``board``: the respondent's leaderboard rows; its best model is logged in an MLflow run of
    its own (every model's RMSE with it), registered as ``candidate`` of the respondent's model,
    then gated against the current champion. ``history``: the respondent's clean hours, which the
    model's input example is cut from. ``spec``: the backtest settings it was selected with, and
    forecasts with.
    """
    board = board.sort_values("rank")
    best = board.iloc[0]
    with mlflow.start_run(
        context,
        use_case=schema.USE_CASE,
        run_name=f"{respondent}-{best['model']}-{context.partition_key}",
        tags={"respondent": respondent, "model": best["model"]},
    ) as run:
        _log_backtest(run, respondent, board, spec)
        _log_datasets(context, run, respondent, board)
        info = log_forecaster(run, respondent, best["model"], history, spec)
    name = model_name(respondent)
    tags = {"model": best["model"], "respondent": respondent}
    version = mlflow.register(info, name, alias=CANDIDATE, tags=tags)
    current = mlflow.champion(name)
    outcome = gate(
        mlflow,
        name,
        version.version,
        rule,
        metrics=_contender_metrics(board, current),
        compared_with=current.version if current is not None else None,
    )
    return Promotion(
        respondent=respondent,
        candidate=f"v{version.version} {best['model']}",
        candidate_rmse=round(float(best["rmse_mean"]), 3),
        champion_before=_shown(current),
        promoted=outcome.decision.promote,
        champion=_shown(outcome.serving),
        reason=outcome.decision.reason,
        mlflow_run=run.run_id,
    )


def candidate_record(
    respondent: str, board: pd.DataFrame, spec: BacktestSpec
) -> tuple[dict[str, Any], dict[str, float]]:
    """The params and metrics of a respondent's candidate: its leaderboard row (the best of
    ``board``, the respondent's rows) and the RMSE of every model it was compared with. Logged
    with the candidate, and recomputed by ``mlops rebuild`` (:mod:`mlops_assets.demand.rebuild`)."""
    board = board.sort_values("rank")
    best = board.iloc[0]
    params = {
        "respondent": respondent,
        "model": best["model"],
        "horizon": spec.horizon,
        "n_windows": int(best["n_windows"]),
        "models_compared": ",".join(board["model"]),
    }
    rmse = {f"rmse_mean.{r['model']}": float(r["rmse_mean"]) for _, r in board.iterrows()}
    return params, {**row_metrics(best), **rmse}


def _log_backtest(
    run: TrackedRun, respondent: str, board: pd.DataFrame, spec: BacktestSpec
) -> None:
    """The candidate's settings and figures (:func:`candidate_record`)."""
    params, metrics = candidate_record(respondent, board, spec)
    run.log_params(params)
    run.log_metrics(metrics)


def _log_datasets(
    context: dg.AssetExecutionContext, run: TrackedRun, respondent: str, board: pd.DataFrame
) -> None:
    """What selected the candidate, as the run's MLflow datasets: the clean days the day's
    backtest ran on (``training``: the window and its combined data version, as
    ``demand/cv_results`` recorded them) and the respondent's rows of the day's leaderboard
    (``evaluation``). A backtest that recorded no window is named in a warning, not logged."""
    from mlops_assets.core.tracking import dataset_uri

    store = context.resources.asset_store  # the champion asset reads the clean days through it
    day = context.partition_key
    selection = f"unique_id == {respondent!r}"
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=schema.CASE.key("cv_results"), asset_partitions=[day]),
        limit=1,
    ).records
    recorded = records[0].asset_materialization.metadata if records else {}
    window, version = recorded.get("history"), recorded.get("clean_data_version")
    if window is not None and version is not None:
        clean = schema.CASE.key("clean")
        run.log_dataset(
            name=f"{clean.to_user_string()} {window.value}",
            source=dataset_uri(store.folder(clean)),
            digest=str(version.value),
            context="training",
            selection=selection,
        )
    else:
        context.log.warning(
            f"demand/cv_results {day} recorded no history window: the backtest's clean days "
            f"are not logged as the dataset of {respondent}'s run"
        )
    run.log_input_asset(
        context,
        store,
        schema.CASE.key("leaderboard"),
        context="evaluation",
        partition=day,
        rows=len(board),
        selection=selection,
    )


def log_forecaster(
    run: TrackedRun, respondent: str, model: str, history: pd.DataFrame, spec: BacktestSpec
) -> Any:
    """Log the pyfunc forecaster of ``model`` with an input example cut from ``history``;
    returns its ``ModelInfo``."""
    from mlops_assets.demand import forecaster, forecasting

    try:
        signature, input_example = forecaster.signature_and_example(history, spec, model=model)
    except forecasting.ForecastingError as exc:
        raise dg.Failure(f"demand/champion {respondent}: {exc}", allow_retries=False) from exc
    return run.log_model(
        forecaster.DemandForecaster(model, spec),
        name="forecaster",
        input_example=input_example,
        signature=signature,
        flavor="pyfunc",
        pip_requirements=forecaster.pip_requirements(),
    )


def _contender_metrics(
    board: pd.DataFrame, current: ModelVersion | None
) -> dict[str, dict[str, float]]:
    """The gate's evidence: the candidate's leaderboard row (the first of ``board``), and the row
    of the current champion's model. Without that row (its model no longer in the backtest), the
    gate compares the metrics logged with the champion's version."""
    metrics = {CANDIDATE_ROLE: row_metrics(board.iloc[0])}
    if current is not None:
        row = board[board["model"] == current.tags.get("model")]
        if len(row):
            metrics[CHAMPION_ROLE] = row_metrics(row.iloc[0])
    return metrics


def _shown(version: ModelVersion | None) -> str:
    """``v<version> <model>`` of a registered forecaster, or ``none``."""
    return "none" if version is None else f"v{version.version} {version.tags.get('model')}"


def promotions_metadata(mlflow: MlflowTracking, promotions: list[Promotion]) -> dict[str, Any]:
    """The champion materialization's summary: how many aliases moved, who serves, each
    respondent's decision and its MLflow run."""
    from mlops_assets.core import reporting

    rows = [dataclasses.asdict(p) for p in promotions]
    return {
        "promoted": sum(p.promoted for p in promotions),
        "champions": dg.MetadataValue.json({p.respondent: p.champion for p in promotions}),
        "decisions": dg.MetadataValue.md(reporting.markdown_table(rows, list(rows[0]))),
        "mlflow_runs": dg.MetadataValue.json(
            {p.respondent: mlflow.run_url(p.mlflow_run) for p in promotions}
        ),
    }


@dataclass(frozen=True)
class ChampionForecasts:
    """Every respondent's forecast by its champion, and which versions made them."""

    frame: pd.DataFrame
    # Respondent -> "v<version> <model>" of its champion.
    served: dict[str, str]
    # Registered model -> the version that forecast (what the re-forecast sensor compares).
    versions: dict[str, str]


def forecast_with_champions(
    mlflow: MlflowTracking, history: pd.DataFrame, origin: datetime, horizon: int | None
) -> ChampionForecasts:
    """The ``horizon`` hours from ``origin`` of each respondent of ``history`` (its clean hours,
    ending with the hour before ``origin``), by its champion refitted on them; ``None``: the
    horizon the champion was selected for. Fails, naming the respondent, when its history does
    not end right before ``origin`` or it has no champion yet."""
    import pandas as pd

    from mlops_assets.demand import forecasting

    day = (origin - timedelta(days=1)).date().isoformat()
    params = {"horizon": horizon} if horizon else None
    frames, served, used = [], {}, {}
    for respondent, series in history.groupby("unique_id", sort=True):
        last = series["ds"].max()
        if last != pd.Timestamp(origin - timedelta(hours=1)):
            raise dg.Failure(
                f"demand/clean of {respondent} ends at {last.isoformat()}, not at the last "
                f"hour of {day}: forecasts start at {origin.isoformat()}",
                allow_retries=False,
            )
        name = model_name(respondent)
        version = mlflow.champion(name)
        if version is None:
            raise data_error(
                f"{name} has no champion yet: materialize demand/champion for {respondent} first"
            )
        # By version, not alias: the alias may move between the look-up and the download.
        model = mlflow.load_model_version(name, version.version, flavor="pyfunc")
        try:
            frame = model.predict(series.reset_index(drop=True), params=params)
        except forecasting.ForecastingError as exc:
            raise dg.Failure(f"demand/forecasts {respondent}: {exc}", allow_retries=False) from exc
        kind = version.tags.get("model", "")
        frames.append(
            frame.assign(
                model=kind,
                model_name=name,
                model_version=str(version.version),
                issued_at=pd.Timestamp(origin),
            )
        )
        served[respondent] = f"v{version.version} {kind}"
        used[name] = str(version.version)
    out = pd.concat(frames, ignore_index=True).sort_values(["unique_id", "ds"], ignore_index=True)
    return ChampionForecasts(out, served, used)
