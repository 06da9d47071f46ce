"""What the demand materializations show in the Dagster UI: the backtest's settings and costs,
the leaderboard's winners, the forecasts' plot.

matplotlib is imported inside the function that draws, where it is needed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core import reporting
from mlops_assets.demand.forecasting import LEADERBOARD_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.demand.forecasting import BacktestSpec

# The leaderboard as the UI shows it: `skill_vs_baseline` already says whether a model beats it.
SHOWN_COLUMNS = [c for c in LEADERBOARD_COLUMNS if c != "beats_baseline"]


def backtest_summary(
    results: pd.DataFrame, models: list[str], champions: dict[str, str], spec: BacktestSpec
) -> dict[str, Any]:
    """The models compared (``champions``: the serving model of each respondent, always among
    them), the origins, the settings the champion will forecast with, and per model its seconds
    and the library warnings it raised (e.g. ARIMA convergence)."""
    diagnostics = results.attrs.get("diagnostics", {})
    return {
        "models": models,
        "champion_models": dg.MetadataValue.json(champions),
        "cutoffs": sorted({c.isoformat() for c in results["cutoff"]}),
        "horizon": spec.horizon,
        "spec": dg.MetadataValue.json(dataclasses.asdict(spec)),
        "diagnostics": dg.MetadataValue.json(
            {
                model: {k: v for k, v in notes.items() if k in ("seconds", "warnings")}
                for model, notes in diagnostics.items()
            }
        ),
    }


def leaderboard_summary(board: pd.DataFrame, baseline: str) -> dict[str, Any]:
    """The best model of each respondent, how many beat ``baseline``, and the whole ranking."""
    best = board[board["rank"] == 1]
    rows = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        for row in board[SHOWN_COLUMNS].to_dict("records")
    ]
    return {
        "best_model": dg.MetadataValue.json(
            dict(zip(best["unique_id"], best["model"], strict=True))
        ),
        "respondents_beating_baseline": int((best["model"] != baseline).sum()),
        "leaderboard": dg.MetadataValue.md(reporting.markdown_table(rows, SHOWN_COLUMNS)),
    }


def forecast_plot(history: pd.DataFrame, forecast: pd.DataFrame) -> dg.MetadataValue:
    """The last week of each respondent and its forecast with the 80%/95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = sorted(forecast["unique_id"].unique())
    figure, axes = plt.subplots(len(ids), 1, figsize=(8, 2.2 * len(ids)), squeeze=False)
    for ax, uid in zip(axes[:, 0], ids, strict=True):
        past = history[history["unique_id"] == uid].tail(7 * 24)
        ahead = forecast[forecast["unique_id"] == uid]
        ax.plot(past["ds"], past["y"], color="black", linewidth=0.8, label="actual")
        ax.fill_between(ahead["ds"], ahead["yhat_lo_95"], ahead["yhat_hi_95"], alpha=0.2)
        ax.fill_between(ahead["ds"], ahead["yhat_lo_80"], ahead["yhat_hi_80"], alpha=0.3)
        ax.plot(ahead["ds"], ahead["yhat"], color="tab:blue", label="forecast")
        ax.set_title(f"{uid} ({ahead['model'].iloc[0]} v{ahead['model_version'].iloc[0]})")
        ax.set_ylabel("MWh")
    figure.tight_layout()
    return reporting.figure_markdown(figure, alt="Last week and the forecast")
