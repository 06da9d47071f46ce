"""Demand backtest of every model: wall time, memory and the leaderboard at two years of data.

Budget (2-core machine): the default backtest (``BacktestSpec()``: 3 origins 24 h apart, 24-hour
horizon, statistical models on their last 28 days) of all models for 5 respondents x 731 days of
hourly data in at most 3 minutes.

The named alternative, in the same run: the cheap statistical models (seasonal_naive,
holt_winters, mstl) backtested on the same origins with ``input_hours=None``, i.e. on all the
history before each origin (up to two years) instead of the last 28 days: what the default's
training window costs or saves in time and accuracy. AutoARIMA is left out of it: its default
search is minutes per fit on 56 days of hourly data here, and even the restricted one grows with
the series; gbm already trains on all history in the default.

What is measured: wall time of each model's ``cross_validation`` inside ``forecasting.backtest``
(``attrs["diagnostics"]``) and of the whole call; memory is the process's RSS high-water mark
(``getrusage(RUSAGE_SELF).ru_maxrss``: imports, the generated data and every library's native
allocations included; tracemalloc would miss the C++ and XGBoost heaps), shown next to the RSS
before the backtest. Interval coverage (share of actuals inside the 80% and 95% intervals) is
computed here from ``cv_results``.

    .venv/bin/python bench/demand_backtest.py [--days 731] [--respondents CISO,ERCO,PJM,MISO,NYIS]
    .venv/bin/python bench/demand_backtest.py --quick        # 2 respondents x 60 days
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.demand import forecasting
from mlops_assets.demand.generator import GeneratorConfig, generate
from mlops_assets.demand.schema import RESPONDENTS

START = date(2023, 1, 1)
BUDGET_S = 180.0
ALTERNATIVE_MODELS = ("seasonal_naive", "holt_winters", "mstl")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def make_clean(respondents: tuple[str, ...], days: int, seed: int) -> pd.DataFrame:
    table = generate(
        START, START + timedelta(days=days), GeneratorConfig(respondents=respondents, seed=seed)
    ).to_pandas()
    return pd.DataFrame(
        {"unique_id": table.respondent, "ds": table.period, "y": table.value.astype(float)}
    )


def run(
    label: str, clean: pd.DataFrame, models: tuple[str, ...], spec: forecasting.BacktestSpec
) -> tuple[pd.DataFrame, float]:
    rss_before = rss_gb()
    began = time.perf_counter()
    cv = forecasting.backtest(clean, models, spec)
    wall = time.perf_counter() - began
    print(
        f"\n== {label}: {len(models)} models, {cv.unique_id.nunique()} series, "
        f"{spec.n_windows} origins x {spec.horizon} h, input_hours={spec.input_hours}"
    )
    print(f"{'model':<16} {'wall s':>8} {'warnings':>9}  first warning")
    for model, d in cv.attrs["diagnostics"].items():
        first = d["warning_messages"][0][:60] if d["warning_messages"] else ""
        print(f"{model:<16} {d['seconds']:>8.1f} {d['warnings']:>9}  {first}")
    print(
        f"{'total':<16} {wall:>8.1f}   (RSS before {rss_before:.2f} GB, process peak RSS "
        f"{peak_rss_gb():.2f} GB)"
    )
    return cv, wall


def summary(cv: pd.DataFrame) -> pd.DataFrame:
    """Per model over all series: mean RMSE skill vs the baseline, wins, mean MAPE, coverage."""
    board = forecasting.leaderboard(cv)
    inside = {
        level: (cv.y >= cv[f"yhat_lo_{level}"]) & (cv.y <= cv[f"yhat_hi_{level}"])
        for level in forecasting.LEVELS
    }
    coverage = pd.DataFrame(
        {f"coverage_{lv}": inside[lv].groupby(cv.model).mean() for lv in forecasting.LEVELS}
    )
    table = board.groupby("model").agg(
        mean_rank=("rank", "mean"),
        mape_mean=("mape_mean", "mean"),
        skill_mean=("skill_vs_baseline", "mean"),
        wins=("beats_baseline", "sum"),
        series=("unique_id", "size"),
    )
    return table.join(coverage).sort_values(["mean_rank", "skill_mean"])


def print_summary(title: str, table: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(
        f"{'model':<16} {'mean rank':>9} {'MAPE %':>7} {'skill':>7} {'beats SN':>9} "
        f"{'cov80':>6} {'cov95':>6}"
    )
    for model, r in table.iterrows():
        print(
            f"{model:<16} {r.mean_rank:>9.1f} {r.mape_mean:>7.2f} {r.skill_mean:>7.3f} "
            f"{int(r.wins):>4}/{int(r.series):<4} {r.coverage_80:>6.2f} {r.coverage_95:>6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=731)
    parser.add_argument("--respondents", default=",".join(RESPONDENTS))
    parser.add_argument("--seed", type=int, default=42, help="the generator's seed")
    parser.add_argument("--quick", action="store_true", help="2 respondents x 60 days")
    parser.add_argument("--skip-alternative", action="store_true")
    args = parser.parse_args()
    respondents = tuple(args.respondents.split(","))
    days = args.days
    if args.quick:
        respondents, days = respondents[:2], 60

    spec = forecasting.BacktestSpec()
    began = time.perf_counter()
    clean = make_clean(respondents, days, args.seed)
    print(
        f"demand backtest, {os.cpu_count()} cores, {len(respondents)} respondents x {days} days "
        f"= {len(clean):,} hourly rows (generated in {time.perf_counter() - began:.1f} s; "
        f"load average {os.getloadavg()[0]:.1f}); {spec}"
    )

    cv, wall = run("default spec, all models", clean, forecasting.MODELS, spec)
    verdict = "within" if wall <= BUDGET_S else "OVER"
    print(f"budget: {wall:.1f} s for the whole backtest, {verdict} the {BUDGET_S:.0f} s budget")

    board = forecasting.leaderboard(cv)
    print("\nleaderboard (per respondent, by mean RMSE over the origins; MWh, MAPE in %)")
    print(
        board.to_string(
            index=False,
            formatters={
                "rmse_mean": "{:.0f}".format,
                "rmse_std": "{:.0f}".format,
                "mae_mean": "{:.0f}".format,
                "mape_mean": "{:.2f}".format,
                "skill_vs_baseline": "{:+.3f}".format,
            },
        )
    )
    print_summary("per model over the respondents (default spec)", summary(cv))

    if args.skip_alternative:
        return
    alternative = replace(spec, input_hours=None)
    cv_all, wall_all = run(
        "alternative: all history (input_hours=None), cheap statistical models",
        clean,
        ALTERNATIVE_MODELS,
        alternative,
    )
    same = cv[cv.model.isin(ALTERNATIVE_MODELS)]
    both = pd.concat(
        [same.assign(model=same.model + "@28d"), cv_all.assign(model=cv_all.model + "@all")],
        ignore_index=True,
    )
    both.loc[both.model == "seasonal_naive@28d", "model"] = forecasting.BASELINE
    both = both[both.model != "seasonal_naive@all"]
    print_summary(
        "last 28 days vs all history (same origins; seasonal_naive is the same either way)",
        summary(both),
    )
    default_s = sum(cv.attrs["diagnostics"][m]["seconds"] for m in ALTERNATIVE_MODELS)
    identical = np.array_equal(
        cv.loc[cv.model == forecasting.BASELINE, "yhat"].to_numpy(),
        cv_all.loc[cv_all.model == forecasting.BASELINE, "yhat"].to_numpy(),
    )
    print(
        f"time of {', '.join(ALTERNATIVE_MODELS)}: {default_s:.1f} s on 28 days vs "
        f"{wall_all:.1f} s on all history; seasonal_naive forecasts identical: {identical}"
    )
    print(f"(process peak RSS {peak_rss_gb():.2f} GB; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
