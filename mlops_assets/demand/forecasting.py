"""Backtest, rank and run the demand forecasters: pure functions over the ``clean`` contract.

The models (names in :data:`MODELS`, in display order):

* ``seasonal_naive``: tomorrow's hour is today's (statsforecast ``SeasonalNaive(24)``). The
  baseline (:data:`BASELINE`) that every other model is ranked against.
* ``auto_arima``: statsforecast ``AutoARIMA(season_length=24)`` with a *restricted* search
  (``approximation=True``, p, q <= 2, P, Q <= 1, at most 20 models). The default search on 56 days of
  hourly data takes minutes per fit on a 2-core machine; the restricted one takes ~1.5 s on 28 days.
* ``holt_winters``: additive Holt-Winters with a daily season (statsforecast ``HoltWinters(24)``,
  0.2 s per 28-day fit; ``AutoETS(24)`` was 4x slower and no better on this data).
* ``mstl``: daily and weekly seasons removed by MSTL, the rest by an ``AutoETS("ZZN")`` trend.
* ``gbm``: one global XGBoost regressor over every respondent (mlforecast): lags 24, 48 and 168 h,
  the mean of the last day and of the last week as known 24 h before the target hour (rolling
  means over lag 24), and the UTC hour and weekday. No lag is shorter than 24 h, so a 24-hour
  forecast never feeds on its own predictions (longer horizons run recursively).

Every model gives prediction intervals at :data:`LEVELS`: the statistical models their own
(model-based) ones, ``gbm`` conformal ones from :data:`GBM_CONFORMAL_WINDOWS` backtest windows of
the forecast horizon inside its training data.

The contracts:

* ``cv_results`` (:func:`backtest`): one row per ``(unique_id, model, cutoff, ds)``:
  ``unique_id, model, cutoff, ds, y, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95``.
* ``leaderboard`` (:func:`leaderboard`): one row per ``(unique_id, model)``:
  ``unique_id, model, rmse_mean, rmse_std, mae_mean, mape_mean, skill_vs_baseline,
  beats_baseline, rank, n_windows, horizon``.
* ``forecasts`` (:func:`forecast`): ``unique_id, ds, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95,
  yhat_hi_95``.

Times (``ds``, ``cutoff``) are tz-aware UTC (``datetime64[us, UTC]``, like the Arrow contracts of
:mod:`mlops_assets.demand.schema`); inputs may also be naive, which is read as UTC. statsforecast
and mlforecast get naive UTC times and the results are made tz-aware again.

Library warnings (AutoARIMA warns "possible convergence problem" by the dozen) are captured, not
printed: ``frame.attrs["diagnostics"]`` of :func:`backtest` and :func:`forecast` holds, per model,
``{"seconds": wall time, "warnings": count, "warning_messages": first distinct few}``
(``pd.testing.assert_frame_equal`` does not compare ``attrs``).

Pure code, no Dagster or MLflow. pandas, numpy, statsforecast, mlforecast and xgboost are imported
inside the functions, so the code location loads without them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

MODELS: tuple[str, ...] = ("seasonal_naive", "auto_arima", "holt_winters", "mstl", "gbm")
BASELINE = "seasonal_naive"
LEVELS: tuple[int, ...] = (80, 95)

STATISTICAL_MODELS: tuple[str, ...] = ("seasonal_naive", "auto_arima", "holt_winters", "mstl")
DAY, WEEK = 24, 168

# gbm: conformal intervals from this many windows of the horizon at the end of the training data
# (a week of daily windows: each weekday's errors; with mlforecast's default of 2, the quantiles come
# from 4 errors per horizon step and 95% intervals covered ~63% of a 2-year backtest, with 7 ~96%),
# and the features' warm-up (the 168-hour rolling mean over lag 24 is first defined at row 192).
GBM_CONFORMAL_WINDOWS = 7
GBM_LAGS: tuple[int, ...] = (24, 48, 168)
GBM_WARMUP_HOURS = 24 + WEEK
# Fewest hours of complete feature rows the regressor is trained on.
GBM_MIN_TRAIN_ROWS = WEEK
# Threads of XGBoost: fixed, so that results do not depend on the machine's core count.
GBM_THREADS = 2

# Hours a statistical model needs to be fitted at all: two full cycles of its longest season, and
# a week for the models that estimate seasonal parameters (ARIMA's seasonal terms, the 24 seasonal
# states of Holt-Winters). With less, statsforecast silently falls back to simpler fits.
_STAT_MIN_TRAIN_HOURS = {
    "seasonal_naive": 2 * DAY,
    "auto_arima": WEEK,
    "holt_winters": WEEK,
    "mstl": 2 * WEEK,
}

_CV_COLUMNS = ("unique_id", "model", "cutoff", "ds", "y", "yhat")
_FORECAST_COLUMNS = ("unique_id", "ds", "yhat")
_MAX_MESSAGES = 3


def _interval_columns() -> list[str]:
    return [f"yhat_{side}_{level}" for level in LEVELS for side in ("lo", "hi")]


CV_COLUMNS: tuple[str, ...] = (*_CV_COLUMNS, *_interval_columns())
FORECAST_COLUMNS: tuple[str, ...] = (*_FORECAST_COLUMNS, *_interval_columns())
LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "model",
    "rmse_mean",
    "rmse_std",
    "mae_mean",
    "mape_mean",
    "skill_vs_baseline",
    "beats_baseline",
    "rank",
    "n_windows",
    "horizon",
)


class ForecastingError(ValueError):
    """The input or the request cannot be forecast; the message says what is wrong and where."""


@dataclass(frozen=True)
class BacktestSpec:
    """How models are backtested and how far they forecast.

    ``input_hours`` is the training window of the *statistical* models, at each backtest origin and
    when forecasting: their last ``input_hours`` hours (None: all history). AutoARIMA's cost grows
    with the series length (a restricted search is ~1.5 s on 28 days, the default one minutes on
    56), and four weeks hold four weekly cycles, which is what the seasonal models use. ``gbm``
    always trains on all history: it is one global model and cheap per row.
    """

    horizon: int = 24
    n_windows: int = 3
    step: int = 24
    input_hours: int | None = 28 * DAY
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("horizon", "n_windows", "step"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.input_hours is not None and (
            not _is_int(self.input_hours) or self.input_hours < 2 * DAY
        ):
            raise ValueError(
                f"input_hours must be None (all history) or an integer >= {2 * DAY} (two days), "
                f"got {self.input_hours!r}"
            )
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")


def _is_int(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# --- history requirements ------------------------------------------------------------------------


def _check_models(models: Sequence[str]) -> tuple[str, ...]:
    if isinstance(models, str):
        models = (models,)
    models = tuple(models)
    if not models:
        raise ForecastingError(f"no models given; choose from {list(MODELS)}")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ForecastingError(f"unknown model(s) {unknown}; the models are {list(MODELS)}")
    repeated = sorted({m for m in models if models.count(m) > 1})
    if repeated:
        raise ForecastingError(f"model(s) given more than once: {repeated}")
    return models


def minimum_train_hours(model: str, spec: BacktestSpec) -> int:
    """Hours of history ``model`` needs for one fit (a :func:`forecast`).

    Statistical models: two cycles of their longest season, a week for those with seasonal
    parameters. ``gbm``: the features' warm-up (192 h), a week of training rows and the
    conformal calibration windows (:data:`GBM_CONFORMAL_WINDOWS` x horizon).
    """
    (model,) = _check_models((model,))
    if model == "gbm":
        return GBM_WARMUP_HOURS + GBM_MIN_TRAIN_ROWS + GBM_CONFORMAL_WINDOWS * spec.horizon
    return _STAT_MIN_TRAIN_HOURS[model]


def minimum_history_hours(
    models: Sequence[str], spec: BacktestSpec, *, backtest: bool = True
) -> int:
    """Hours of history every ``unique_id`` needs for a :func:`backtest` of ``models`` (with
    ``backtest=False``: for a :func:`forecast`, one fit of each).

    A backtest's first origin is ``horizon + (n_windows - 1) * step`` hours before the end, and
    the models must be fittable there: ``max(minimum_train_hours) + horizon + (n_windows-1)*step``.
    """
    models = _check_models(models)
    train = max(minimum_train_hours(m, spec) for m in models)
    return train + (spec.horizon + (spec.n_windows - 1) * spec.step if backtest else 0)


def _check_input_hours(models: Sequence[str], spec: BacktestSpec) -> None:
    if spec.input_hours is None:
        return
    short = {
        m: minimum_train_hours(m, spec)
        for m in models
        if m in STATISTICAL_MODELS and minimum_train_hours(m, spec) > spec.input_hours
    }
    if short:
        raise ForecastingError(
            f"input_hours={spec.input_hours} is shorter than what these models need to be "
            f"fitted: {short} (hours); raise input_hours or use None (all history)"
        )


def _check_history(df: pd.DataFrame, needed: int, what: str) -> None:
    counts = df.groupby("unique_id", sort=True).size()
    short = counts[counts < needed]
    if len(short):
        detail = ", ".join(f"{uid!r} has {int(n)}" for uid, n in short.items())
        raise ForecastingError(
            f"too little history for {what}: it needs {needed} hours per unique_id, but {detail} "
            f"hour(s)"
        )


# --- input ---------------------------------------------------------------------------------------


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Validate ``frame`` (the clean contract) and return it sorted, with naive UTC ``ds``
    (``datetime64[ns]``) for the libraries: ``unique_id`` (str), ``ds``, ``y`` (float64).

    Raises ForecastingError on missing columns, no rows, a non-datetime ``ds``, times off the
    hour, duplicate or missing hours, and NaN or infinite ``y``.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ForecastingError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
    if missing:
        raise ForecastingError(
            f"missing column(s) {missing}; the clean contract is unique_id, ds, y "
            f"(got {list(frame.columns)})"
        )
    if frame.empty:
        raise ForecastingError("no rows to forecast from")
    ds = frame["ds"]
    if isinstance(ds.dtype, pd.DatetimeTZDtype):
        ds = ds.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(ds.dtype):
        raise ForecastingError(f"ds must be a datetime column (UTC hours), got dtype {ds.dtype}")
    if frame["unique_id"].isna().any() or frame["ds"].isna().any():
        raise ForecastingError("unique_id and ds must not be null")
    try:
        y = frame["y"].astype("float64")
    except (TypeError, ValueError) as error:
        raise ForecastingError(f"y must be numeric: {error}") from None
    df = pd.DataFrame(
        {
            "unique_id": frame["unique_id"].astype(str).to_numpy(),
            "ds": ds.astype("datetime64[ns]").to_numpy(),
            "y": y.to_numpy(),
        }
    )
    bad_y = ~np.isfinite(df["y"].to_numpy())
    if bad_y.any():
        where = df.loc[bad_y].groupby("unique_id").size().to_dict()
        raise ForecastingError(f"y is NaN or infinite in {int(bad_y.sum())} row(s): {where}")
    off_hour = df["ds"] != df["ds"].dt.floor("h")
    if off_hour.any():
        first = df.loc[off_hour].iloc[0]
        raise ForecastingError(
            f"ds must be whole UTC hours; {int(off_hour.sum())} are not, first "
            f"{first['unique_id']!r} at {first['ds']}"
        )
    df = df.sort_values(["unique_id", "ds"], kind="stable", ignore_index=True)
    same_id = df["unique_id"].eq(df["unique_id"].shift())
    step = df["ds"].diff()
    duplicated = same_id & step.eq(pd.Timedelta(0))
    if duplicated.any():
        first = df.loc[duplicated].iloc[0]
        raise ForecastingError(
            f"duplicate hours: {int(duplicated.sum())} row(s), first {first['unique_id']!r} at "
            f"{first['ds']}"
        )
    gap = same_id & step.ne(pd.Timedelta(hours=1))
    if gap.any():
        i = int(np.flatnonzero(gap.to_numpy())[0])
        raise ForecastingError(
            f"the series must be hourly without gaps; {int(gap.sum())} gap(s), first "
            f"{df['unique_id'].iat[i]!r} from {df['ds'].iat[i - 1]} to {df['ds'].iat[i]}"
        )
    return df


def _to_utc(values: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(values).dt.tz_localize("UTC").astype("datetime64[us, UTC]")


# --- the models ----------------------------------------------------------------------------------


def _stat_model(name: str) -> Any:
    from statsforecast.models import MSTL, AutoARIMA, AutoETS, HoltWinters, SeasonalNaive

    if name == "seasonal_naive":
        return SeasonalNaive(season_length=DAY, alias=name)
    if name == "auto_arima":
        return AutoARIMA(
            season_length=DAY,
            approximation=True,
            max_p=2,
            max_q=2,
            max_P=1,
            max_Q=1,
            nmodels=20,
            alias=name,
        )
    if name == "holt_winters":
        return HoltWinters(season_length=DAY, alias=name)
    if name == "mstl":
        return MSTL(season_length=[DAY, WEEK], trend_forecaster=AutoETS(model="ZZN"), alias=name)
    raise ForecastingError(f"{name!r} is not a statistical model")


def _gbm(spec: BacktestSpec) -> Any:
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from xgboost import XGBRegressor

    regressor = XGBRegressor(
        n_estimators=200,
        learning_rate=0.1,
        max_depth=6,
        tree_method="hist",
        n_jobs=GBM_THREADS,
        random_state=spec.seed,
    )
    return MLForecast(
        models={"gbm": regressor},
        freq="h",
        lags=list(GBM_LAGS),
        lag_transforms={DAY: [RollingMean(window_size=DAY), RollingMean(window_size=WEEK)]},
        date_features=["hour", "dayofweek"],
        num_threads=1,
    )


def _gbm_intervals(horizon: int) -> Any:
    from mlforecast.utils import PredictionIntervals

    return PredictionIntervals(n_windows=GBM_CONFORMAL_WINDOWS, h=horizon)


class _Diagnostics:
    """Wall time and captured warnings per model."""

    def __init__(self) -> None:
        self.by_model: dict[str, dict[str, Any]] = {}

    def run(self, model: str, call: Any) -> Any:
        began = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = call()
        messages: list[str] = []
        for w in caught:
            text = f"{w.category.__name__}: {w.message}"
            if text not in messages and len(messages) < _MAX_MESSAGES:
                messages.append(text)
        self.by_model[model] = {
            "seconds": time.perf_counter() - began,
            "warnings": len(caught),
            "warning_messages": messages,
        }
        return out


def _long(wide: pd.DataFrame, model: str, with_cutoff: bool) -> pd.DataFrame:
    """One model's columns of a statsforecast/mlforecast result, in our long layout."""
    import pandas as pd

    keys = ["unique_id", "cutoff", "ds", "y"] if with_cutoff else ["unique_id", "ds"]
    out = wide[keys].copy()
    out["unique_id"] = out["unique_id"].astype(str)
    out.insert(1, "model", model)
    out["yhat"] = wide[model].astype("float64")
    for level in LEVELS:
        for side in ("lo", "hi"):
            out[f"yhat_{side}_{level}"] = wide[f"{model}-{side}-{level}"].astype("float64")
    if not with_cutoff:
        out = out.drop(columns="model")
    return pd.DataFrame(out)


# --- backtest ------------------------------------------------------------------------------------


def backtest(clean: pd.DataFrame, models: Sequence[str], spec: BacktestSpec) -> pd.DataFrame:
    """Rolling-origin backtest of ``models`` on every ``unique_id`` of ``clean``.

    Origins (cutoffs, the last training hour) are per ``unique_id``: the last one ``horizon``
    hours before its last ``ds``, the others every ``step`` hours before that, ``n_windows`` in
    all. At each origin every model is refitted on data up to the cutoff only (the statistical
    ones on its last ``input_hours``) and forecasts the next ``horizon`` hours. Runs the
    libraries' own ``cross_validation`` (statsforecast per statistical model, mlforecast for gbm).

    Returns ``cv_results``: ``unique_id, model, cutoff, ds, y, yhat, yhat_lo_80, yhat_hi_80,
    yhat_lo_95, yhat_hi_95``, one row per ``(unique_id, model, cutoff, ds)``, sorted by them,
    times tz-aware UTC. ``attrs["diagnostics"]`` has each model's wall time and warnings.
    """
    import pandas as pd

    models = _check_models(models)
    _check_input_hours(models, spec)
    df = _prepare(clean)
    needed = minimum_history_hours(models, spec)
    _check_history(
        df,
        needed,
        f"a backtest of {list(models)} (horizon {spec.horizon}, {spec.n_windows} "
        f"window(s) {spec.step} h apart)",
    )
    diagnostics = _Diagnostics()
    parts = []
    for model in models:
        if model == "gbm":
            mf = _gbm(spec)
            wide = diagnostics.run(
                model,
                lambda mf=mf: mf.cross_validation(
                    df,
                    n_windows=spec.n_windows,
                    h=spec.horizon,
                    step_size=spec.step,
                    refit=True,
                    prediction_intervals=_gbm_intervals(spec.horizon),
                    level=list(LEVELS),
                ),
            )
        else:
            from statsforecast import StatsForecast

            sf = StatsForecast(models=[_stat_model(model)], freq="h", n_jobs=1)
            wide = diagnostics.run(
                model,
                lambda sf=sf: sf.cross_validation(
                    h=spec.horizon,
                    df=df,
                    n_windows=spec.n_windows,
                    step_size=spec.step,
                    input_size=spec.input_hours,
                    level=list(LEVELS),
                ),
            )
        parts.append(_long(wide, model, with_cutoff=True))
    out = pd.concat(parts, ignore_index=True)
    out["cutoff"] = _to_utc(out["cutoff"])
    out["ds"] = _to_utc(out["ds"])
    out["y"] = out["y"].astype("float64")
    out = out.sort_values(["unique_id", "model", "cutoff", "ds"], ignore_index=True)[
        list(CV_COLUMNS)
    ]
    out.attrs["diagnostics"] = diagnostics.by_model
    return out


# --- leaderboard ---------------------------------------------------------------------------------


def leaderboard(cv_results: pd.DataFrame) -> pd.DataFrame:
    """Rank the models of a backtest per ``unique_id`` by their mean RMSE over windows.

    Per ``(unique_id, model, cutoff)`` window: RMSE, MAE and MAPE (percent, over the hours with
    ``y != 0``). Per ``(unique_id, model)``: their means over the windows, and ``rmse_std``, the
    population standard deviation (ddof=0, so one window gives 0, not NaN) of the windows' RMSE.
    ``skill_vs_baseline = 1 - rmse_mean / rmse_mean of the baseline`` of the same ``unique_id``
    (NaN where that ``unique_id`` has no baseline rows); ``beats_baseline`` is ``skill > 0``.
    ``rank``: 1..n within the ``unique_id`` by ``rmse_mean``, ties (and NaN, ranked last) broken
    by model name. ``n_windows``: the number of cutoffs; ``horizon``: the most hours a window has.

    Returns ``unique_id, model, rmse_mean, rmse_std, mae_mean, mape_mean, skill_vs_baseline,
    beats_baseline, rank, n_windows, horizon``, sorted by ``unique_id, rank``. Raises
    ForecastingError when the baseline (:data:`BASELINE`) is not in ``cv_results`` at all.
    """
    import numpy as np

    missing = [
        c for c in ("unique_id", "model", "cutoff", "ds", "y", "yhat") if c not in cv_results
    ]
    if missing:
        raise ForecastingError(f"cv_results lacks column(s) {missing}")
    if cv_results.empty:
        raise ForecastingError("cv_results has no rows")
    if not (cv_results["model"] == BASELINE).any():
        raise ForecastingError(
            f"the baseline {BASELINE!r} is not in cv_results (models: "
            f"{sorted(cv_results['model'].unique())}); every model is ranked against it"
        )
    y = cv_results["y"].astype("float64").to_numpy()
    error = cv_results["yhat"].astype("float64").to_numpy() - y
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.where(y != 0, np.abs(error) / np.abs(y) * 100.0, np.nan)
    rows = cv_results[["unique_id", "model", "cutoff"]].reset_index(drop=True)
    rows = rows.astype({"unique_id": str, "model": str}).assign(
        se=error**2, ae=np.abs(error), ape=ape
    )
    windows = rows.groupby(["unique_id", "model", "cutoff"], sort=True).agg(
        mse=("se", "mean"), mae=("ae", "mean"), mape=("ape", "mean"), hours=("se", "size")
    )
    windows["rmse"] = np.sqrt(windows["mse"])
    board = (
        windows.groupby(["unique_id", "model"], sort=True)
        .agg(
            rmse_mean=("rmse", "mean"),
            rmse_std=("rmse", lambda s: float(np.std(s.to_numpy(), ddof=0))),
            mae_mean=("mae", "mean"),
            mape_mean=("mape", "mean"),
            n_windows=("rmse", "size"),
            horizon=("hours", "max"),
        )
        .reset_index()
    )
    baseline = board.loc[board["model"] == BASELINE].set_index("unique_id")["rmse_mean"]
    with np.errstate(divide="ignore", invalid="ignore"):
        board["skill_vs_baseline"] = 1.0 - board["rmse_mean"] / board["unique_id"].map(baseline)
    board["beats_baseline"] = (board["skill_vs_baseline"] > 0).fillna(False).astype(bool)
    board = board.sort_values(
        ["unique_id", "rmse_mean", "model"], na_position="last", kind="stable", ignore_index=True
    )
    board["rank"] = board.groupby("unique_id").cumcount().astype("int64") + 1
    for column in ("rmse_mean", "rmse_std", "mae_mean", "mape_mean", "skill_vs_baseline"):
        board[column] = board[column].astype("float64")
    for column in ("n_windows", "horizon"):
        board[column] = board[column].astype("int64")
    return board[list(LEADERBOARD_COLUMNS)]


# --- forecast ------------------------------------------------------------------------------------


def forecast(history: pd.DataFrame, model: str, spec: BacktestSpec) -> pd.DataFrame:
    """Fit ``model`` on ``history`` (the statistical models on each series' last
    ``input_hours``) and forecast ``spec.horizon`` hours after each ``unique_id``'s last ``ds``.

    Returns ``unique_id, ds, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95``: exactly
    ``horizon`` rows per ``unique_id``, sorted by ``unique_id, ds``, ``ds`` tz-aware UTC.
    ``attrs["diagnostics"]`` has the fit's wall time and warnings. Raises ForecastingError for an
    unknown model, too little history or a non-finite forecast.
    """
    import numpy as np

    (model,) = _check_models((model,))
    _check_input_hours((model,), spec)
    df = _prepare(history)
    _check_history(
        df,
        minimum_history_hours((model,), spec, backtest=False),
        f"a {spec.horizon}-hour forecast with {model!r}",
    )
    diagnostics = _Diagnostics()
    if model == "gbm":
        mf = _gbm(spec)

        def fit_predict() -> Any:
            mf.fit(df, prediction_intervals=_gbm_intervals(spec.horizon))
            return mf.predict(h=spec.horizon, level=list(LEVELS))

        wide = diagnostics.run(model, fit_predict)
    else:
        from statsforecast import StatsForecast

        train = df if spec.input_hours is None else df.groupby("unique_id").tail(spec.input_hours)
        sf = StatsForecast(models=[_stat_model(model)], freq="h", n_jobs=1)
        wide = diagnostics.run(
            model,
            lambda: sf.forecast(
                h=spec.horizon, df=train.reset_index(drop=True), level=list(LEVELS)
            ),
        )
    out = _long(wide, model, with_cutoff=False)
    out["ds"] = _to_utc(out["ds"])
    out = out.sort_values(["unique_id", "ds"], ignore_index=True)[list(FORECAST_COLUMNS)]
    values = out[list(FORECAST_COLUMNS[2:])].to_numpy()
    if not np.isfinite(values).all():
        bad = sorted(out.loc[~np.isfinite(values).all(axis=1), "unique_id"].unique())
        raise ForecastingError(f"{model!r} produced non-finite forecasts for {bad}")
    out.attrs["diagnostics"] = diagnostics.by_model
    return out
