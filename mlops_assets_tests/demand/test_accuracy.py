"""Published demand forecasts against the actuals that arrived later (pure), and the generator's
level shift that the monitoring scenario uses."""

from __future__ import annotations

import hashlib
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_assets.demand import accuracy, generator
from mlops_assets.demand.accuracy import AccuracyError
from mlops_assets.demand.generator import GeneratorConfig

DAY = "2024-05-29"
START = pd.Timestamp(DAY, tz="UTC")
HOUR = pd.Timedelta(hours=1)


def _forecasts(
    respondent: str, issued: pd.Timestamp, values: list[float], version: str = "3", model="hw"
) -> pd.DataFrame:
    """``len(values)`` hourly forecast rows from the origin ``issued``, as demand/forecasts
    writes them."""
    n = len(values)
    return pd.DataFrame(
        {
            "unique_id": [respondent] * n,
            "ds": [issued + i * HOUR for i in range(n)],
            "yhat": values,
            "yhat_lo_80": values,
            "model": [model] * n,
            "model_name": [f"demand_forecaster_{respondent.lower()}"] * n,
            "model_version": [version] * n,
            "issued_at": [issued] * n,
        }
    )


def _actuals(respondent: str, values: list[float | None], start: pd.Timestamp = START):
    return pd.DataFrame(
        {
            "unique_id": [respondent] * len(values),
            "ds": [start + i * HOUR for i in range(len(values))],
            "y": values,
        }
    )


# -- lead hours and joins -----------------------------------------------------------------------


def test_forecast_rows_of_a_day_carry_their_lead_hour_from_each_origin() -> None:
    # Published on the 28th (origin the 29th 00:00, 24 h) and on the 27th with a 36 h horizon
    # (origin the 28th 00:00): the 29th's 00:00-11:00 were forecast twice, 24 hours apart.
    made = pd.concat(
        [
            _forecasts("CISO", START, [1.0] * 24),
            _forecasts("CISO", START - 24 * HOUR, [2.0] * 36, version="2"),
            # A forecast of the next day is not a row of this one.
            _forecasts("CISO", START + 24 * HOUR, [3.0] * 24),
        ]
    )
    rows = accuracy.forecasts_of_day(made, DAY)
    assert len(rows) == 24 + 12
    assert rows["ds"].between(START, START + 23 * HOUR).all()
    latest = rows[rows["model_version"] == "3"]
    assert latest["lead_hour"].tolist() == list(range(1, 25))
    earlier = rows[rows["model_version"] == "2"]
    assert earlier["lead_hour"].tolist() == list(range(25, 37))
    assert earlier["ds"].tolist() == [START + h * HOUR for h in range(12)]


def test_naive_times_are_read_as_utc() -> None:
    made = _forecasts("CISO", START, [1.0] * 3)
    made["ds"] = made["ds"].dt.tz_localize(None)
    made["issued_at"] = made["issued_at"].dt.tz_localize(None)
    assert accuracy.forecasts_of_day(made, DAY)["lead_hour"].tolist() == [1, 2, 3]


def test_a_forecast_issued_after_its_hour_or_off_the_hour_is_refused() -> None:
    late = _forecasts("CISO", START + 2 * HOUR, [1.0] * 3)
    late["ds"] = late["ds"] - 3 * HOUR
    with pytest.raises(AccuracyError, match="not a whole number of hours before"):
        accuracy.forecasts_of_day(late, DAY)
    odd = _forecasts("CISO", START, [1.0] * 3)
    odd["issued_at"] = odd["issued_at"] - pd.Timedelta(minutes=30)
    with pytest.raises(AccuracyError, match="CISO"):
        accuracy.forecasts_of_day(odd, DAY)


def test_repeated_actual_hours_are_refused_rather_than_joined_twice() -> None:
    clean = pd.concat([_actuals("CISO", [1.0, 2.0]), _actuals("CISO", [5.0])])
    with pytest.raises(AccuracyError, match=r"repeat 2 hour rows, e\.g\. CISO 2024-05-29T00:00"):
        accuracy.actuals_of_day(clean, DAY)


def test_errors_per_lead_hour_with_partial_overlap_and_missing_hours() -> None:
    made = pd.concat(
        [
            _forecasts("CISO", START, [110.0, 90.0, 100.0, 130.0]),
            _forecasts("NYIS", START, [50.0, 50.0], version="7", model="sn"),
        ]
    )
    # CISO's hour 2 (lead 3) has no actual yet, and hour 5 has an actual but no forecast; NYIS
    # has no actual at all.
    clean = _actuals("CISO", [100.0, 100.0, None, 100.0, 100.0])
    actuals = accuracy.actuals_of_day(clean, DAY)
    joined = accuracy.join_actuals(accuracy.forecasts_of_day(made, DAY), actuals)
    assert len(joined) == 6  # every forecast row kept, with or without its actual
    promised = {("CISO", "3"): 12.5}
    table = accuracy.lead_hour_accuracy(joined, DAY, promised)

    assert list(table.columns) == list(accuracy.ACCURACY_COLUMNS)
    assert table[["unique_id", "model_version", "lead_hour"]].values.tolist() == [
        ["CISO", "3", 1],
        ["CISO", "3", 2],
        ["CISO", "3", 3],
        ["CISO", "3", 4],
        ["NYIS", "7", 1],
        ["NYIS", "7", 2],
    ]
    ciso = table[table["unique_id"] == "CISO"].set_index("lead_hour")
    assert ciso["forecasts"].tolist() == [1, 1, 1, 1]
    assert ciso["actuals"].tolist() == [1, 1, 0, 1]
    assert ciso.loc[1, ["rmse", "mae", "mape", "bias"]].tolist() == [10.0, 10.0, 10.0, 10.0]
    assert ciso.loc[2, ["rmse", "bias"]].tolist() == [10.0, -10.0]
    assert math.isnan(ciso.loc[3, "rmse"])  # no actual yet: nothing to measure, not 0
    assert ciso.loc[4, "rmse"] == 30.0
    assert (ciso["promised_rmse"] == 12.5).all()
    nyis = table[table["unique_id"] == "NYIS"]
    assert nyis["actuals"].tolist() == [0, 0] and nyis["rmse"].isna().all()
    assert nyis["promised_rmse"].isna().all()  # no promise known for NYIS v7
    assert (table["day"] == DAY).all()

    covered = accuracy.coverage(accuracy.forecasts_of_day(made, DAY), actuals)
    assert covered.to_dict("records") == [
        {
            "unique_id": "CISO",
            "actual_hours": 4,
            "forecast_rows": 4,
            "forecast_hours": 4,
            "hours_without_forecast": 1,
            "forecasts_without_actual": 1,
        },
        {
            "unique_id": "NYIS",
            "actual_hours": 0,
            "forecast_rows": 2,
            "forecast_hours": 2,
            "hours_without_forecast": 0,
            "forecasts_without_actual": 2,
        },
    ]


def test_mape_leaves_out_hours_whose_actual_is_zero_but_rmse_counts_them() -> None:
    # The day's first hour, forecast at lead 1 and at lead 25; its actual is 0.
    made = _forecasts("CISO", START, [5.0, 110.0])
    made["ds"] = [START, START]
    made["issued_at"] = [START, START - 24 * HOUR]
    joined = accuracy.join_actuals(
        accuracy.forecasts_of_day(made, DAY), accuracy.actuals_of_day(_actuals("CISO", [0.0]), DAY)
    )
    table = accuracy.lead_hour_accuracy(joined, DAY, {})
    first = table[table["lead_hour"] == 1].iloc[0]
    assert first["rmse"] == 5.0 and math.isnan(first["mape"])

    two = _forecasts("CISO", START, [5.0, 110.0])
    joined = accuracy.join_actuals(
        accuracy.forecasts_of_day(two, DAY),
        accuracy.actuals_of_day(_actuals("CISO", [0.0, 100.0]), DAY),
    )
    champion = accuracy.champion_accuracy(joined, ["CISO"], {"CISO": ("3", "hw")}, {})
    row = champion.iloc[0]
    assert row["hours"] == 2
    assert row["rmse"] == pytest.approx(math.sqrt((25 + 100) / 2))
    assert row["mape"] == pytest.approx(10.0)  # over the hour with a non-zero actual only


def test_the_champion_is_judged_on_its_own_rows_of_the_day_at_every_lead() -> None:
    made = pd.concat(
        [
            _forecasts("CISO", START, [100.0] * 24, version="4"),  # champion now
            _forecasts("CISO", START - 24 * HOUR, [0.0] * 36, version="3"),  # retired
            _forecasts("ERCO", START, [100.0] * 24, version="1"),
        ]
    )
    actual = [100.0 + (6.0 if h % 2 else -6.0) for h in range(24)]
    joined = accuracy.join_actuals(
        accuracy.forecasts_of_day(made, DAY),
        accuracy.actuals_of_day(
            pd.concat([_actuals("CISO", actual), _actuals("ERCO", actual)]), DAY
        ),
    )
    champions = {"CISO": ("4", "gbm"), "ERCO": ("2", "hw"), "PJM": None}
    promised = {("CISO", "4"): 4.0, ("CISO", "3"): 9.0, ("ERCO", "2"): 5.0}
    table = accuracy.champion_accuracy(joined, ["PJM", "CISO", "ERCO"], champions, promised)
    assert list(table.columns) == list(accuracy.CHAMPION_COLUMNS)
    rows = table.set_index("unique_id")
    assert rows.loc["CISO", ["model_name", "model_version", "model"]].tolist() == [
        "demand_forecaster_ciso",
        "4",
        "gbm",
    ]
    assert rows.loc["CISO", "hours"] == 24  # v3's 12 rows of the day are not the champion's
    assert rows.loc["CISO", "rmse"] == pytest.approx(6.0)
    assert rows.loc["CISO", "ratio"] == pytest.approx(1.5)
    # ERCO's champion (v2) was promoted after v1 published the day's forecasts: nothing of its own
    # to judge yet; PJM has no champion at all.
    assert rows.loc["ERCO", "hours"] == 0 and math.isnan(rows.loc["ERCO", "rmse"])
    assert rows.loc["PJM", "model_version"] is None and rows.loc["PJM", "hours"] == 0

    verdicts = accuracy.champion_verdicts(table, tolerance=0.25, min_hours=20)
    assert verdicts["CISO"].status == "failed"  # 6.0 > 4.0 x 1.25
    assert verdicts["CISO"].value == pytest.approx(6.0)
    assert verdicts["CISO"].threshold == pytest.approx(5.0)
    assert verdicts["ERCO"].status == "insufficient data"
    assert verdicts["PJM"].status == "insufficient data"
    assert "no champion yet" in verdicts["PJM"].reason
    lenient = accuracy.champion_verdicts(table, tolerance=0.5, min_hours=20)
    assert lenient["CISO"].status == "ok"  # 6.0 is not above 4.0 x 1.5
    assert accuracy.champion_verdicts(table, tolerance=0.25, min_hours=25)["CISO"].status == (
        "insufficient data"
    )


def test_one_trigger_names_the_worst_failing_respondent_and_the_reason_the_others() -> None:
    from mlops_assets.core.monitoring.verdicts import performance_verdict

    def judged(live: float, promised: float, hours: int = 24):
        return performance_verdict(
            metric="rmse",
            live=live,
            promised=promised,
            labelled_rows=hours,
            min_labelled_rows=20,
            tolerance=1.0,
            higher_is_better=False,
            relative=True,
        )

    verdicts = {
        "CISO": judged(500.0, 200.0),  # 25% above its threshold of 400
        "NYIS": judged(900.0, 300.0),  # 50% above 600: the worst
        "PJM": judged(100.0, 300.0),
        "ERCO": judged(100.0, 300.0, hours=3),
    }
    versions = {"CISO": "3", "NYIS": "5", "PJM": "1", "ERCO": "2"}
    verdict, named = accuracy.combined_verdict(verdicts, versions)
    assert (verdict.status, named, verdict.value, verdict.threshold) == (
        "failed",
        "NYIS",
        900.0,
        600.0,
    )
    assert verdict.reason.startswith("NYIS v5: rmse 900 is above 600")
    assert "CISO v3: rmse 500 is above 400" in verdict.reason and "PJM v1" in verdict.reason

    trigger, failing = accuracy.retraining_trigger(
        verdicts,
        versions,
        check="champion_performs_as_validated",
        asset="demand/forecast_accuracy",
        day=DAY,
        job="demand_retraining",
    )
    assert failing == ["NYIS", "CISO"]
    assert trigger is not None
    assert (trigger.model_name, trigger.model_version, trigger.day, trigger.partition) == (
        "demand_forecaster_nyis",
        "5",
        DAY,
        DAY,
    )
    assert (trigger.job, trigger.metric, trigger.value, trigger.threshold) == (
        "demand_retraining",
        "rmse",
        900.0,
        600.0,
    )

    quiet = {r: v for r, v in verdicts.items() if v.status != "failed"}
    assert accuracy.retraining_trigger(
        quiet, versions, check="c", asset="a", day=DAY, job="demand_retraining"
    ) == (None, [])
    # Some respondents fine, the others without data: the day passes, as "ok".
    assert accuracy.combined_verdict(quiet, versions)[0].status == "ok"


def test_a_day_with_nothing_to_compare_is_insufficient_data_not_an_error() -> None:
    empty_forecasts = pd.DataFrame({c: [] for c in accuracy.FORECAST_COLUMNS})
    empty_actuals = pd.DataFrame({"unique_id": [], "ds": pd.to_datetime([], utc=True), "y": []})
    made = accuracy.forecasts_of_day(empty_forecasts, DAY)
    actuals = accuracy.actuals_of_day(empty_actuals, DAY)
    joined = accuracy.join_actuals(made, actuals)
    table = accuracy.lead_hour_accuracy(joined, DAY, {})
    assert table.empty and list(table.columns) == list(accuracy.ACCURACY_COLUMNS)
    assert accuracy.coverage(made, actuals).empty
    champions = accuracy.champion_accuracy(joined, [], {}, {})
    verdicts = accuracy.champion_verdicts(champions, tolerance=1.0, min_hours=20)
    verdict, named = accuracy.combined_verdict(verdicts, {})
    assert (verdict.status, named) == ("insufficient data", None)
    assert accuracy.retraining_trigger(verdicts, {}, check="c", asset="a", day=DAY, job="j") == (
        None,
        [],
    )

    # Forecasts published, actuals not arrived yet: every row counted, the champion not judged.
    made = accuracy.forecasts_of_day(_forecasts("CISO", START, [1.0] * 24), DAY)
    joined = accuracy.join_actuals(made, actuals)
    table = accuracy.lead_hour_accuracy(joined, DAY, {("CISO", "3"): 2.0})
    assert table["forecasts"].sum() == 24 and table["actuals"].sum() == 0
    champions = accuracy.champion_accuracy(joined, ["CISO"], {"CISO": ("3", "hw")}, {})
    verdicts = accuracy.champion_verdicts(champions, tolerance=1.0, min_hours=20)
    assert verdicts["CISO"].status == "insufficient data"
    assert "only 0 labelled rows" in verdicts["CISO"].reason


def test_daily_ratio_pools_the_lead_hours_of_each_version() -> None:
    table = pd.DataFrame(
        {
            "day": [DAY, DAY, DAY, "2024-05-28"],
            "unique_id": ["CISO", "CISO", "CISO", "CISO"],
            "model": ["hw"] * 4,
            "model_version": ["3", "3", "3", "3"],
            "lead_hour": [1, 2, 3, 1],
            "forecasts": [1, 3, 1, 1],
            "actuals": [1, 3, 0, 1],
            "rmse": [2.0, 4.0, np.nan, 1.0],
            "mae": [0.0] * 4,
            "mape": [0.0] * 4,
            "bias": [0.0] * 4,
            "promised_rmse": [2.0, 2.0, 2.0, 2.0],
        }
    )
    ratio = accuracy.daily_ratio(table).set_index("day")
    assert ratio.loc[DAY, "series"] == "CISO v3"
    assert ratio.loc[DAY, "hours"] == 4
    assert ratio.loc[DAY, "rmse"] == pytest.approx(math.sqrt((4 + 3 * 16) / 4))
    assert ratio.loc[DAY, "ratio"] == pytest.approx(math.sqrt(13) / 2)
    assert ratio.loc["2024-05-28", "ratio"] == pytest.approx(0.5)


def test_issue_days_cover_the_longest_horizon() -> None:
    days = accuracy.issue_days(DAY)
    assert (days[0], days[-1], len(days)) == ("2024-05-15", "2024-05-28", 14)
    assert accuracy.issue_days("2024-03-01", 2) == ["2024-02-28", "2024-02-29"]


def test_lead_hour_figure_has_a_panel_per_respondent() -> None:
    table = pd.DataFrame(
        {
            "unique_id": ["CISO", "CISO", "NYIS"],
            "model": ["hw", "hw", "sn"],
            "model_version": ["3", "3", "1"],
            "lead_hour": [1, 2, 1],
            "rmse": [1.0, 2.0, 3.0],
            "promised_rmse": [1.5, 1.5, np.nan],
        }
    )
    figure = accuracy.lead_hour_figure(table, title="t")
    assert [ax.get_title() for ax in figure.axes] == ["CISO", "NYIS"]
    ciso = figure.axes[0]
    assert [line.get_label() for line in ciso.get_lines()] == ["v3 hw realized", "v3 promised"]


# -- the generator's level shift ---------------------------------------------------------------

PAIR = ("CISO", "NYIS")


def _values(config: GeneratorConfig, start: date, end: date) -> pd.DataFrame:
    frame = generator.generate(start, end, config).to_pandas()
    return frame.assign(y=frame["value"].astype(float))


def test_without_a_shift_the_series_are_byte_for_byte_those_of_before() -> None:
    # The digest of these days as the generator wrote them before the level shift existed.
    table = generator.generate(date(2024, 5, 27), date(2024, 5, 31), GeneratorConfig(PAIR))
    digest = hashlib.sha256("|".join(table.column("value").to_pylist()).encode()).hexdigest()
    assert digest == "e3d479c5db047daa081011c7a2eacc90ecbfb679850a7ac2a974a05558446318"
    # A shift day with no shift, or a shift of a respondent not asked for, changes nothing.
    for config in (
        GeneratorConfig(PAIR, level_shift_from=date(2024, 5, 28)),
        GeneratorConfig(
            ("CISO", "NYIS", "PJM"),
            level_shift_from=date(2024, 5, 28),
            level_shift=0.3,
            level_shift_respondents=("PJM",),
        ),
    ):
        other = generator.generate(date(2024, 5, 27), date(2024, 5, 31), config)
        assert other.filter([r in PAIR for r in other.column("respondent").to_pylist()]).equals(
            table
        )


def test_a_level_shift_raises_demand_from_its_first_day_on() -> None:
    start, shift_day, end = date(2024, 5, 27), date(2024, 5, 29), date(2024, 5, 31)
    plain = _values(GeneratorConfig(PAIR), start, end)
    shifted = _values(
        GeneratorConfig(
            PAIR, level_shift_from=shift_day, level_shift=0.25, level_shift_respondents=("CISO",)
        ),
        start,
        end,
    )
    after = plain["period"] >= pd.Timestamp(shift_day, tz="UTC")
    moved = after & (plain["respondent"] == "CISO")
    assert plain.loc[~moved, "value"].tolist() == shifted.loc[~moved, "value"].tolist()
    # Whole MWh: the shifted value is the unrounded one times 1.25, rounded once.
    gap = (shifted.loc[moved, "y"] - 1.25 * plain.loc[moved, "y"]).abs()
    assert len(gap) == 48 and gap.max() <= 1.0
    assert (shifted.loc[moved, "y"] > plain.loc[moved, "y"]).all()
    # A day regenerates to the same bytes whatever range generates it.
    alone = generator.generate_day(
        shift_day,
        GeneratorConfig(PAIR, level_shift_from=shift_day, level_shift=0.25),
    ).to_pandas()
    everyone = _values(
        GeneratorConfig(PAIR, level_shift_from=shift_day, level_shift=0.25), start, end
    )
    same_day = everyone[everyone["period"].dt.date == shift_day].drop(columns="y")
    pd.testing.assert_frame_equal(alone, same_day.reset_index(drop=True))


def test_level_shift_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="needs level_shift_from"):
        GeneratorConfig(PAIR, level_shift=0.2)
    with pytest.raises(ValueError, match=r"level_shift must be in \(-1, 10\]"):
        GeneratorConfig(PAIR, level_shift_from=date(2024, 1, 1), level_shift=-1.0)
    with pytest.raises(ValueError, match=r"\['PJM'\] are not among the respondents"):
        GeneratorConfig(
            PAIR,
            level_shift_from=date(2024, 1, 1),
            level_shift=0.1,
            level_shift_respondents=("PJM",),
        )


# -- two weeks of a champion's forecasts, judged at the default tolerance -----------------------


SHIFT_DAY = date(2024, 6, 4)


def _clean(shift_from: date | None) -> pd.DataFrame:
    table = generator.generate(
        date(2024, 4, 30),
        date(2024, 6, 12),
        GeneratorConfig(PAIR, level_shift_from=shift_from, level_shift=0.4 if shift_from else 0.0),
    ).to_pandas()
    return pd.DataFrame(
        {"unique_id": table.respondent, "ds": table.period, "y": table.value.astype(float)}
    )


def _two_weeks() -> dict[str, dict[str, tuple[str, float]]]:
    """A champion per respondent chosen on a backtest as of May 28th, then its forecast of each
    of the next 14 days (refit on the 28 days before, as demand/forecasts does) judged against
    the day's actuals at the default tolerance, without and with a 40% level shift from June 4th:
    per scenario and day, each respondent's status and realized / promised RMSE."""
    from mlops_assets.demand import forecasting

    scenarios = {"quiet": _clean(None), "shifted": _clean(SHIFT_DAY)}
    spec = forecasting.BacktestSpec(n_windows=2)
    cutoff = pd.Timestamp("2024-05-29", tz="UTC")
    quiet = scenarios["quiet"]
    window = quiet[(quiet.ds < cutoff) & (quiet.ds >= cutoff - pd.Timedelta(days=28))]
    board = forecasting.leaderboard(
        forecasting.backtest(window, ["seasonal_naive", "holt_winters"], spec)
    )
    best = board[board["rank"] == 1].set_index("unique_id")
    champions = {r: ("1", best.loc[r, "model"]) for r in PAIR}
    promised = {(r, "1"): float(best.loc[r, "rmse_mean"]) for r in PAIR}
    outcome: dict[str, dict[str, tuple[str, float]]] = {"quiet": {}, "shifted": {}}
    for origin in pd.date_range("2024-05-29", periods=14, freq="D", tz="UTC"):
        day = origin.date().isoformat()
        for name, clean in scenarios.items():
            if name == "shifted" and origin.date() < SHIFT_DAY:
                outcome[name][day] = outcome["quiet"][day]  # the same data until the shift
                continue
            history = clean[(clean.ds < origin) & (clean.ds >= origin - pd.Timedelta(days=28))]
            made = pd.concat(
                [
                    forecasting.forecast(history[history.unique_id == r], champions[r][1], spec)
                    for r in PAIR
                ]
            ).assign(model="m", model_version="1", issued_at=origin)
            joined = accuracy.join_actuals(
                accuracy.forecasts_of_day(made, day), accuracy.actuals_of_day(clean, day)
            )
            served = accuracy.champion_accuracy(joined, list(PAIR), champions, promised)
            verdicts = accuracy.champion_verdicts(
                served,
                tolerance=accuracy.DEFAULT_TOLERANCE,
                min_hours=accuracy.DEFAULT_MIN_HOURS,
            )
            ratio = served.set_index("unique_id")["ratio"]
            outcome[name][day] = {r: (verdicts[r].status, round(ratio[r], 2)) for r in PAIR}
    return outcome


def test_two_quiet_weeks_raise_no_alarm_and_a_level_shift_fails_on_its_first_day() -> None:
    outcome = _two_weeks()
    statuses = {
        name: {day: {s for s, _ in verdicts.values()} for day, verdicts in days.items()}
        for name, days in outcome.items()
    }
    assert len(statuses["quiet"]) == 14
    assert all(s == {"ok"} for s in statuses["quiet"].values()), outcome["quiet"]
    # Both respondents miss the new level on its first day; the refit forecasts of the next days
    # start from the shifted actuals and hold their promise again.
    shift_day = SHIFT_DAY.isoformat()
    assert statuses["shifted"][shift_day] == {"failed"}, outcome["shifted"][shift_day]
    assert all(s == {"ok"} for d, s in statuses["shifted"].items() if d != shift_day)
