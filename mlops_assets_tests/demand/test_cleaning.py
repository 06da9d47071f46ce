"""The offline generator, raw → clean, and the integrity report on crafted bad series."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core import validation
from mlops_assets.demand import cleaning, generator, schema
from mlops_assets.demand.cleaning import CleanError
from mlops_assets.demand.generator import GeneratorConfig

CONFIG = GeneratorConfig(respondents=("CISO", "PJM"))


def _raw(rows: list[tuple[str, datetime, str | None]]) -> pa.Table:
    return pa.table(
        {
            "respondent": [r for r, _, _ in rows],
            "period": [p for _, p, _ in rows],
            "type": ["D"] * len(rows),
            "value": [v for _, _, v in rows],
            "value_units": [schema.VALUE_UNITS] * len(rows),
        },
        schema=schema.raw_schema(),
    )


def _hours(day: date, n: int = 24) -> list[datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [start + timedelta(hours=h) for h in range(n)]


# -- generator --------------------------------------------------------------------------------


def test_generator_follows_the_raw_contract_and_is_deterministic() -> None:
    table = generator.generate(date(2024, 3, 1), date(2024, 3, 4), CONFIG)
    assert table.schema == schema.raw_schema()
    assert table.num_rows == 2 * 3 * 24
    again = generator.generate(date(2024, 3, 1), date(2024, 3, 4), CONFIG)
    assert table.equals(again)
    frame = table.to_pandas()
    assert frame.groupby("respondent").period.is_monotonic_increasing.all()
    assert frame["value"].astype(float).between(1_000, schema.MAX_PLAUSIBLE_MWH).all()


@settings(max_examples=15, deadline=None)
@given(
    offset=st.integers(min_value=0, max_value=700),
    before=st.integers(min_value=0, max_value=5),
    after=st.integers(min_value=1, max_value=5),
)
def test_a_day_is_the_same_whatever_range_generates_it(offset: int, before: int, after: int):
    day = date(2023, 1, 1) + timedelta(days=offset)
    alone = generator.generate_day(day, CONFIG).to_pandas()
    wide = generator.generate(day - timedelta(days=before), day + timedelta(days=after), CONFIG)
    inside = wide.to_pandas()
    inside = inside[inside.period.dt.date == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, inside)


def _mean_profile(respondent: str, days: list[date]) -> pd.Series:
    config = GeneratorConfig(respondents=(respondent,), noise=0.0)
    frame = pl.concat([pl.from_arrow(generator.generate_day(d, config)) for d in days])
    frame = frame.with_columns(y=pl.col("value").cast(pl.Float64), hour=pl.col("period").dt.hour())
    return (
        frame.group_by("hour").agg(pl.col("y").mean()).sort("hour").to_pandas().set_index("hour").y
    )


def test_daily_shape_follows_local_time_across_daylight_saving() -> None:
    # Los Angeles: the evening peak (18:00 local) is 02:00 UTC in winter and 01:00 UTC in summer.
    winter = _mean_profile("CISO", [date(2024, 1, 8) + timedelta(days=i) for i in range(5)])
    summer = _mean_profile("CISO", [date(2024, 7, 8) + timedelta(days=i) for i in range(5)])
    zone = ZoneInfo("America/Los_Angeles")
    assert datetime(2024, 1, 8, int(winter.idxmin()), tzinfo=UTC).astimezone(zone).hour == 3
    assert datetime(2024, 7, 8, int(summer.idxmin()), tzinfo=UTC).astimezone(zone).hour == 3
    assert winter.idxmin() == summer.idxmin() + 1


def test_weekends_and_holidays_are_lighter() -> None:
    config = GeneratorConfig(respondents=("PJM",), noise=0.0)

    def total(day: date) -> float:
        return float(generator.demand_of_day("PJM", day, config).sum())

    wednesday, sunday = date(2024, 10, 9), date(2024, 10, 13)
    assert total(sunday) < 0.93 * total(wednesday)
    thanksgiving = date(2024, 11, 28)
    assert thanksgiving in generator.us_holidays(2024)
    assert total(thanksgiving) < 0.93 * total(date(2024, 11, 27))


def test_summer_peaks_above_spring_where_cooling_dominates() -> None:
    config = GeneratorConfig(respondents=("ERCO",), noise=0.0)
    july = sum(generator.demand_of_day("ERCO", date(2024, 7, d), config).sum() for d in (8, 9, 10))
    april = sum(generator.demand_of_day("ERCO", date(2024, 4, d), config).sum() for d in (8, 9, 10))
    assert july > 1.15 * april


def test_unknown_respondents_are_generated_deterministically() -> None:
    config = GeneratorConfig(respondents=("XYZ",))
    a = generator.generate_day(date(2024, 2, 1), config)
    assert a.equals(generator.generate_day(date(2024, 2, 1), config))
    assert set(a.column("respondent").to_pylist()) == {"XYZ"}


def test_generator_rejects_bad_configs() -> None:
    with pytest.raises(ValueError, match="repeat"):
        GeneratorConfig(respondents=("CISO", "CISO"))
    with pytest.raises(ValueError, match="at least one"):
        GeneratorConfig(respondents=())
    with pytest.raises(ValueError, match="empty range"):
        generator.generate(date(2024, 1, 2), date(2024, 1, 2), CONFIG)


# -- raw → clean ------------------------------------------------------------------------------


def test_clean_is_typed_sorted_and_valid_on_generated_data() -> None:
    raw = generator.generate(date(2024, 3, 9), date(2024, 3, 12), CONFIG)
    clean, report = cleaning.to_clean(raw)
    assert clean.schema == schema.clean_schema()
    frame = clean.to_pandas()
    assert list(frame.columns) == ["unique_id", "ds", "y"]
    assert frame.equals(frame.sort_values(["unique_id", "ds"], ignore_index=True))
    assert frame["y"].tolist() == [float(v) for v in raw.column("value").to_pylist()]
    assert report["status"] == "valid"
    assert report["rows"] == 2 * 3 * 24
    assert (
        report["first_hour"] == "2024-03-09T00:00Z" and report["last_hour"] == "2024-03-11T23:00Z"
    )
    assert report["by_respondent"]["PJM"]["rows"] == 72


def test_a_value_that_is_not_a_number_names_respondent_hour_and_text() -> None:
    hours = _hours(date(2024, 1, 1))
    rows = [("CISO", h, "21000") for h in hours]
    rows[5] = ("CISO", hours[5], "n/a")
    rows[6] = ("CISO", hours[6], "inf")
    with pytest.raises(CleanError) as error:
        cleaning.to_clean(_raw(rows))
    message = str(error.value)
    assert "2 value(s) that are not numbers" in message
    assert "'CISO'" in message and "2024-01-01T05:00Z" in message and "'n/a'" in message
    assert cleaning.non_numeric_values(_raw(rows))[0] == 2


def test_missing_columns_and_foreign_types_are_refused() -> None:
    rows = [("CISO", h, "1") for h in _hours(date(2024, 1, 1), 2)]
    with pytest.raises(CleanError, match="value_units"):
        cleaning.to_clean(_raw(rows).drop_columns(["value_units"]))
    forecast_rows = _raw(rows).set_column(2, "type", pa.array(["DF", "DF"]))
    with pytest.raises(CleanError, match="not demand"):
        cleaning.to_clean(forecast_rows)


def test_empty_values_become_reported_missing_hours_not_zeros() -> None:
    hours = _hours(date(2024, 1, 1))
    rows = [("NYIS", h, "17000") for h in hours]
    rows[3] = ("NYIS", hours[3], None)
    clean, report = cleaning.to_clean(_raw(rows))
    assert clean.num_rows == 23
    assert report["null_values"] == 1
    assert report["null_samples"] == [
        {"respondent": "NYIS", "hour": "2024-01-01T03:00Z", "value": None}
    ]
    assert report["missing_hours"] == 1
    assert report["missing_samples"][0]["first_missing"].startswith("2024-01-01T03:00")
    assert report["status"] == "invalid"


def _local_day_as_if_utc(day: date, zone: str) -> list[datetime]:
    """The hours of a local day, with their local wall-clock time mislabelled as UTC: what a
    source that drops the time zone produces."""
    tz = ZoneInfo(zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz).astimezone(UTC)
    instants = [
        start + timedelta(hours=h) for h in range(int((end - start).total_seconds() // 3600))
    ]
    return [i.astimezone(tz).replace(tzinfo=UTC) for i in instants]


def test_a_fall_back_day_in_local_time_shows_a_duplicate_hour() -> None:
    periods = _local_day_as_if_utc(date(2024, 11, 3), "America/New_York")
    assert len(periods) == 25
    clean, report = cleaning.to_clean(_raw([("NYIS", p, "15000") for p in periods]))
    assert clean.num_rows == 25  # kept, not silently dropped
    assert report["duplicate_hours"] == 1
    assert report["duplicate_samples"] == [
        {"unique_id": "NYIS", "ds": "2024-11-03T01:00:00+00:00", "rows": 2}
    ]


def test_a_spring_forward_day_in_local_time_shows_a_missing_hour() -> None:
    periods = _local_day_as_if_utc(date(2024, 3, 10), "America/New_York")
    assert len(periods) == 23
    clean, _ = cleaning.to_clean(_raw([("NYIS", p, "15000") for p in periods]))
    report = cleaning.integrity_report(
        pl.from_arrow(clean),
        start=datetime(2024, 3, 10, tzinfo=UTC),
        end=datetime(2024, 3, 11, tzinfo=UTC),
    )
    assert report["missing_hours"] == 1
    assert report["missing_samples"][0]["first_missing"].startswith("2024-03-10T02:00")


def test_the_same_day_in_utc_is_clean_on_both_daylight_saving_days() -> None:
    for day in (date(2024, 3, 10), date(2024, 11, 3)):
        clean, report = cleaning.to_clean(generator.generate_day(day, CONFIG))
        assert report["status"] == "valid", day
        assert clean.num_rows == 48


def test_implausible_values_are_kept_and_reported() -> None:
    hours = _hours(date(2024, 1, 1), 4)
    rows = [("ERCO", hours[0], "-5"), ("ERCO", hours[1], "45000"), ("ERCO", hours[2], "9e9")]
    rows.append(("ERCO", hours[3], "45000"))
    clean, report = cleaning.to_clean(_raw(rows))
    assert clean.num_rows == 4
    assert report["implausible_values"] == 2
    assert [s["y"] for s in report["implausible_samples"]] == [-5.0, 9e9]


def test_the_clean_suite_fails_on_implausible_values() -> None:
    from mlops_assets.demand.checks import CLEAN_SUITE

    hours = _hours(date(2024, 1, 1), 3)
    clean, _ = cleaning.to_clean(
        _raw([("PJM", hours[0], "90000"), ("PJM", hours[1], "-1"), ("PJM", hours[2], "1e7")])
    )
    result = validation.run_suite(clean.to_pandas(), CLEAN_SUITE)
    assert not result.success
    between = result.result_for("expect_column_values_to_be_between", "y")
    assert between.unexpected_count == 2
