"""Rebuilding a registered ``demand_forecaster_<respondent>`` version (``mlops rebuild
demand_forecaster_ciso 1``).

A demand forecaster holds no fitted state (:class:`~mlops_assets.demand.forecaster.
DemandForecaster`): it is the *choice* of a model kind and of the backtest settings it was
selected with, refitted on whatever history it forecasts from. What made a version is therefore
the day's backtest that put its kind first for the respondent, and rebuilding it means running
that backtest again on the same clean hours and checking that the same kind wins with the same
figures.

What the version's MLflow run recorded (:mod:`mlops_assets.demand.champions`):

* params ``respondent``, ``model`` (the kind), ``horizon``, ``n_windows`` and
  ``models_compared`` (every model of the respondent's leaderboard, best first);
* metrics: the winner's leaderboard row and the ``rmse_mean`` of every model compared;
* its ``training`` dataset: the clean window the backtest ran on, named ``demand/clean <first day>
  .. <last day>``, with the window's combined data version (``demand/cv_results``'s
  ``clean_data_version``) as its version; its ``evaluation`` dataset: the day's leaderboard
  partition and its data version;
* the registered forecaster itself keeps the whole backtest spec (step, statistical models'
  input hours, seed), which no param records.

The rebuild reads the clean window again and refuses, naming the window, if its combined data
version is not the recorded one; backtests every model compared on it with
:func:`mlops_assets.demand.forecasting.backtest` and ranks them with
:func:`~mlops_assets.demand.forecasting.leaderboard` (the functions ``demand/cv_results`` and
``demand/leaderboard`` run, on the stored form of each frame); and takes the respondent's best
row as the candidate, as ``demand/champion`` does. The holdout is the window's last ``horizon``
hours of the respondent: both forecasters are refitted on the hours before and forecast them.

pandas and polars are imported inside the functions; the forecaster module (which imports
mlflow) too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mlops_assets.core.rebuild import (
    Change,
    Rebuilder,
    RebuildError,
    RebuildRefused,
    Rebuilt,
    parquet_roundtrip,
)
from mlops_assets.demand import schema

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.core.rebuild import Recorded, Sources
    from mlops_assets.core.tracking import RunDataset, TrackedRun
    from mlops_assets.demand.forecasting import BacktestSpec

CASE = schema.CASE
# `<first day> .. <last day>` in the name of the run's training dataset (`demand/clean <window>`).
_WINDOW = re.compile(r"(\d{4}-\d{2}-\d{2}) \.\. (\d{4}-\d{2}-\d{2})")


def _datasets(recorded: Recorded, sources: Sources) -> dict[str, RunDataset]:
    """The run's dataset inputs by context (``training``: the clean window, ``evaluation``: the
    leaderboard partition)."""
    from mlops_assets.core.tracking import run_datasets

    try:
        run = sources.tracking.client.get_run(recorded.run_id)
    except Exception as exc:
        raise RebuildError(
            f"{recorded.name} v{recorded.version}: could not read run {recorded.run_id}: {exc}"
        ) from None
    return {d.context: d for d in run_datasets(run) if d.context}


def _window(recorded: Recorded, training: RunDataset | None) -> list[str]:
    """The clean days the version's backtest ran on, oldest first, from its training dataset's
    name."""
    from datetime import date

    from mlops_assets.demand.assets import history_days

    found = _WINDOW.search(training.name) if training is not None else None
    if found is None:
        raise RebuildError(
            f"{recorded.name} v{recorded.version}: its run {recorded.run_id} logged no clean "
            "window as its training dataset (trained before lineage was kept, or its backtest "
            "recorded no history)"
        )
    first, last = found.groups()
    n_days = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    return history_days(last, n_days)


def _spec(recorded: Recorded, sources: Sources) -> BacktestSpec:
    """The backtest spec the version was selected (and forecasts) with: the registered
    forecaster's own, checked against the horizon and window count the run recorded."""
    registered = sources.tracking.load_model_version(
        recorded.name, recorded.version, flavor="pyfunc"
    )
    spec = registered.unwrap_python_model().spec
    for param, value in (("horizon", spec.horizon), ("n_windows", spec.n_windows)):
        if str(value) != recorded.param(param):
            raise RebuildError(
                f"{recorded.name} v{recorded.version}: the registered forecaster's {param} "
                f"({value}) is not the run's ({recorded.param(param)})"
            )
    return spec


def _stored(frame: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """``frame`` as the next asset loads it (written to parquet by the IO manager, read back as
    pandas), with the data version of that file."""
    version, table = parquet_roundtrip(frame)
    return version, table.to_pandas()


def forecast_values(model: Any, rows: pd.DataFrame) -> Any:
    """The hourly forecasts (``yhat``) of a forecaster refitted on ``rows``: the registered
    one as MLflow loads it (a pyfunc) or the rebuilt :class:`DemandForecaster` itself."""
    from mlops_assets.demand.forecaster import DemandForecaster

    if isinstance(model, DemandForecaster):
        frame = model.predict(None, rows)
    else:
        frame = model.predict(rows)
    return frame["yhat"].to_numpy()


def rebuild(recorded: Recorded, sources: Sources) -> Rebuilt:
    """Backtest the version's clean window again and make the forecaster it selected (see the
    module)."""
    import polars as pl

    from mlops_assets.core import storage
    from mlops_assets.core.tracking import dataset_uri
    from mlops_assets.demand import champions, forecaster, forecasting

    respondent = recorded.param("respondent")
    datasets = _datasets(recorded, sources)
    training, evaluation = datasets.get("training"), datasets.get("evaluation")
    days = _window(recorded, training)
    assert training is not None  # _window raised otherwise
    clean_key = CASE.key("clean")
    window = f"{days[0]} .. {days[-1]}"
    table, versions = sources.asset_store.read_partitions(clean_key, days)
    clean_version = storage.combined_version(versions)
    if clean_version != training.data_version:
        # The run recorded the window's combined version only: the window is named (the lineage
        # walk before this names the changed days themselves when it finds them).
        raise RebuildRefused(
            recorded.name,
            recorded.version,
            [Change(clean_key.to_user_string(), window, training.data_version, clean_version)],
        )
    history = pl.from_arrow(table).to_pandas()  # as `read_clean_window` gives it to the asset
    spec = _spec(recorded, sources)

    # demand/cv_results: every model compared, in the order it runs them (the baseline first).
    compared = recorded.param("models_compared").split(",")
    models = list(dict.fromkeys([forecasting.BASELINE, *compared]))
    cv_version, cv = _stored(forecasting.backtest(history, models, spec))
    # demand/leaderboard, then demand/champion's candidate: the respondent's best row.
    board_version, board = _stored(forecasting.leaderboard(cv))
    rows = board[board["unique_id"] == respondent]
    if rows.empty:
        raise RebuildError(
            f"{recorded.name} v{recorded.version}: {respondent} is not in {clean_key.to_user_string()} "
            f"{window}"
        )
    params, metrics = champions.candidate_record(respondent, rows, spec)
    kind = str(params["model"])
    model = forecaster.DemandForecaster(kind, spec)

    series = history[history["unique_id"] == respondent].sort_values("ds", ignore_index=True)
    # The holdout: the respondent's last `horizon` hours of the window, forecast by each
    # forecaster refitted on the hours before them.
    holdout = series.iloc[: len(series) - spec.horizon].reset_index(drop=True)
    board_recorded = evaluation.data_version if evaluation is not None else None
    board_same = board_version == board_recorded

    def log(run: TrackedRun) -> None:
        # What demand/champion logs besides params and metrics: the clean window as the training
        # dataset, the day's leaderboard as the evaluation one (only when the rebuilt one is the
        # recorded partition, which its name means), and the forecaster.
        selection = f"unique_id == {respondent!r}"
        run.log_dataset(
            name=f"{clean_key.to_user_string()} {window}",
            source=dataset_uri(sources.asset_store.folder(clean_key)),
            digest=clean_version,
            context="training",
            selection=selection,
        )
        if board_same and evaluation is not None:
            run.log_dataset(
                name=evaluation.name.split(" [")[0],
                source=evaluation.source,
                digest=board_version,
                context="evaluation",
                rows=len(rows),
                selection=selection,
            )
        champions.log_forecaster(run, respondent, kind, series, spec)

    leaderboard = (
        f"rebuilt, data version {board_version[:12]} "
        + ("(the recorded partition's)" if board_same else f"(recorded {str(board_recorded)[:12]})")
        + f"; {respondent}'s rank 1 of {len(rows)}: {kind}"
    )
    return Rebuilt(
        params=params,
        metrics=metrics,
        model=model,
        holdout=holdout,
        flavor="pyfunc",
        predict=forecast_values,
        log=log,
        data={
            "clean window": f"{clean_key.to_user_string()} {window}: {len(days)} days, "
            f"{history['unique_id'].nunique()} respondent(s), {len(history)} hours",
            "backtest": f"{len(models)} models, {spec.n_windows} window(s) of {spec.horizon} h "
            f"every {spec.step} h, seed {spec.seed}; cv_results data version {cv_version[:12]}",
            "leaderboard": leaderboard,
            "holdout": f"{respondent}'s last {spec.horizon} hours of the window",
        },
        data_version=clean_version,
        recorded_data_version=training.data_version,
    )


REBUILDERS = [Rebuilder(CASE.name, CASE.model_name, rebuild, per_entity=True)]
