"""Validation: GX suites and plain checks as functions, and as blocking audits of an asset's
staged data."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.core.asset_store import AssetStore, store_resources
from mlops_assets.core.publishing import check_specs, publish
from mlops_assets.core.validation import (
    Expectation,
    ExpectationSuiteSpec,
    check_metadata,
    duplicate_timestamps,
    expect,
    gx_audit,
    hourly_gaps,
    merge_partition_results,
    rule_result,
    run_suite,
    time_gaps,
    time_series_audits,
    to_pandas,
    unique_key_audit,
    unique_keys,
)

SUITE = ExpectationSuiteSpec(
    name="transactions_meet_expectations",
    expectations=[
        expect("column_values_to_not_be_null", column="amount"),
        expect("column_values_to_be_between", column="age", min_value=0, max_value=120),
        expect("column_values_to_be_in_set", column="channel", value_set=["web", "pos"]),
        expect("column_values_to_be_of_type", column="event_ts", type_="Timestamp"),
        expect("table_row_count_to_be_between", min_value=1, max_value=100),
    ],
)


def good_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": [1, 2, 3, 4, 5, 6],
            "amount": [10.0, 20.5, 3.0, 7.25, 99.0, 1.0],
            "age": [18, 35, 64, 120, 0, 41],
            "channel": ["web", "pos", "web", "web", "pos", "pos"],
            "event_ts": pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC"),
        }
    )


def bad_frame() -> pd.DataFrame:
    """Two null amounts (rows 1 and 4) and three ages out of [0, 120] (rows 0, 2 and 5)."""
    frame = good_frame()
    frame["amount"] = [10.0, None, 3.0, 7.25, None, 1.0]
    frame["age"] = [-1, 35, 130, 120, 0, 200]
    return frame


def hours(start: str, periods: int, tz: str = "UTC") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq="h", tz=tz)


# --------------------------------------------------------------------------------------------------
# The declarative suite
# --------------------------------------------------------------------------------------------------


def test_expect_accepts_the_gx_name_with_or_without_its_prefix() -> None:
    short = expect("column_values_to_be_between", column="age", min_value=0)
    full = expect("expect_column_values_to_be_between", column="age", min_value=0)
    assert (
        short == full == Expectation("expect_column_values_to_be_between", "age", {"min_value": 0})
    )
    assert short.gx_kwargs() == {"column": "age", "min_value": 0}
    assert short.label == "expect_column_values_to_be_between(age)"


def test_column_pair_expectations_report_both_columns() -> None:
    pair = expect("column_pair_values_a_to_be_greater_than_b", column_A="hi", column_B="lo")
    assert pair.columns == ("hi", "lo")
    assert pair.label == "expect_column_pair_values_a_to_be_greater_than_b(hi,lo)"


@pytest.mark.parametrize("bad", ["ColumnValuesToNotBeNull", "expect column", "expect_Values"])
def test_expectation_types_must_be_snake_case_gx_names(bad: str) -> None:
    with pytest.raises(ValueError, match="snake_case"):
        Expectation(bad)


def test_suite_names_must_be_usable_as_check_names() -> None:
    with pytest.raises(ValueError, match="suite name"):
        ExpectationSuiteSpec(
            "transactions meet expectations", [expect("table_row_count_to_be_between", min_value=1)]
        )
    with pytest.raises(ValueError, match="no expectations"):
        ExpectationSuiteSpec("empty", [])


def test_module_import_does_not_import_great_expectations() -> None:
    # A fresh interpreter: this test process may already have imported GX for another test.
    import subprocess
    import sys

    code = "import sys, mlops_assets.core.validation; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------------
# run_suite
# --------------------------------------------------------------------------------------------------


def test_good_frame_meets_the_suite() -> None:
    result = run_suite(good_frame(), SUITE)
    assert result.success
    assert result.row_count == 6
    assert [r.success for r in result.results] == [True] * 5
    assert result.failures == ()
    assert result.result_for("table_row_count_to_be_between").observed_value == 6


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_bad_frame_fails_with_exact_counts_and_samples_per_column(engine: str) -> None:
    frame = bad_frame() if engine == "pandas" else pl.from_pandas(bad_frame())
    result = run_suite(frame, SUITE)

    assert not result.success
    assert [r.label for r in result.failures] == [
        "expect_column_values_to_not_be_null(amount)",
        "expect_column_values_to_be_between(age)",
    ]
    nulls = result.result_for("column_values_to_not_be_null", "amount")
    assert nulls.unexpected_count == 2
    assert nulls.unexpected_percent == pytest.approx(100 * 2 / 6)
    assert nulls.samples == (None, None)  # NaN made JSON-safe
    assert nulls.sample_rows == (1, 4)
    ages = result.result_for("column_values_to_be_between", "age")
    assert ages.unexpected_count == 3
    assert ages.unexpected_percent == pytest.approx(50.0)
    assert ages.samples == (-1, 130, 200)
    assert ages.sample_rows == (0, 2, 5)
    assert ages.kwargs == {"min_value": 0, "max_value": 120}
    # Results come back in the order of the suite, whatever order GX evaluates them in.
    assert [r.type for r in result.results] == [e.type for e in SUITE.expectations]
    assert result.unexpected_count == 5


def test_samples_are_capped() -> None:
    frame = pd.DataFrame({"age": list(range(200, 250))})
    suite = ExpectationSuiteSpec(
        "ages", [expect("column_values_to_be_between", column="age", max_value=120)]
    )
    result = run_suite(frame, suite, max_samples=4)
    assert result.results[0].unexpected_count == 50
    assert result.results[0].samples == (200, 201, 202, 203)


def test_a_missing_column_fails_the_expectation_instead_of_crashing() -> None:
    suite = ExpectationSuiteSpec(
        "needs_merchant", [expect("column_values_to_not_be_null", column="merchant")]
    )
    result = run_suite(good_frame(), suite)
    assert not result.success
    assert result.results[0].error is not None
    assert 'column "merchant"' in result.results[0].error


def test_aggregate_expectations_report_the_observed_value() -> None:
    suite = ExpectationSuiteSpec(
        "mean_age", [expect("column_mean_to_be_between", column="age", max_value=10)]
    )
    result = run_suite(good_frame(), suite)
    failed = result.results[0]
    assert not failed.success
    assert failed.unexpected_count is None
    assert failed.observed_value == pytest.approx((18 + 35 + 64 + 120 + 0 + 41) / 6)


def test_unknown_or_misconfigured_expectations_raise_with_the_suite_name() -> None:
    typo = ExpectationSuiteSpec("typo", [expect("column_values_to_be_nul", column="a")])
    with pytest.raises(ValueError, match=r"suite 'typo': unknown GX expectation"):
        run_suite(good_frame(), typo)
    bad_kwarg = ExpectationSuiteSpec(
        "bad_kwarg", [expect("column_values_to_be_between", column="age", min_valu=1)]
    )
    with pytest.raises(ValueError, match=r"invalid expect_column_values_to_be_between\(age\)"):
        run_suite(good_frame(), bad_kwarg)


def test_check_metadata_names_failing_columns_counts_and_samples() -> None:
    metadata = check_metadata(run_suite(bad_frame(), SUITE))
    assert metadata["failing_columns"] == ["age", "amount"]
    assert metadata["unexpected_count:amount"] == 2
    assert metadata["unexpected_count:age"] == 3
    assert "unexpected_count:channel" not in metadata
    assert metadata["samples"]["expect_column_values_to_be_between(age)"] == [-1, 130, 200]
    assert metadata["sample_rows"]["expect_column_values_to_not_be_null(amount)"] == [1, 4]
    table = metadata["failures"].splitlines()
    assert (
        table[2] == "| expect_column_values_to_not_be_null | amount | 2 | 33.33 |  | None, None |"
    )
    assert table[3] == "| expect_column_values_to_be_between | age | 3 | 50.00 |  | -1, 130, 200 |"
    json.dumps(metadata)  # everything is JSON-safe


# --------------------------------------------------------------------------------------------------
# Plain checks
# --------------------------------------------------------------------------------------------------


def test_unique_keys_counts_surplus_rows_and_samples_the_repeated_keys() -> None:
    frame = pd.DataFrame({"tx_id": [1, 2, 2, 3, 3, 3, 4]})
    result = unique_keys(frame, "tx_id")
    assert result.name == "tx_id_is_unique"
    assert not result.success
    check = result.results[0]
    assert check.unexpected_count == 3  # one extra 2, two extra 3s
    assert check.samples == ({"tx_id": 3, "rows": 3}, {"tx_id": 2, "rows": 2})
    assert check.observed_value == {"rows": 7, "distinct_keys": 4}


def test_unique_keys_on_a_composite_key_and_a_polars_frame() -> None:
    frame = pl.DataFrame({"card": ["a", "a", "b", "b"], "day": [1, 2, 1, 1]})
    result = unique_keys(frame, ["card", "day"])
    assert result.name == "card_and_day_are_unique"
    assert result.results[0].unexpected_count == 1
    assert result.results[0].samples == ({"card": "b", "day": 1, "rows": 2},)
    assert unique_keys(frame, ["card", "day"]).results[0].column == "card,day"
    assert unique_keys(pl.DataFrame({"k": [1, 2, 3]}), "k").success


def test_hourly_gaps_per_series_with_the_runs_written_out() -> None:
    a = hours("2024-01-01 00:00", 10).delete([2, 3, 4, 8])  # 02:00-04:00 and 08:00 missing
    b = hours("2024-01-01 05:00", 3)  # complete
    frame = pd.DataFrame({"ts": a.append(b), "region": ["A"] * len(a) + ["B"] * len(b)})
    result = hourly_gaps(frame, "ts", "region")
    assert result.name == "no_missing_hours"
    gaps = result.results[0]
    assert gaps.unexpected_count == 4
    assert gaps.unexpected_percent == pytest.approx(100 * 4 / (10 + 3))
    assert gaps.samples == (
        {
            "region": "A",
            "first_missing": "2024-01-01T02:00:00+00:00",
            "last_missing": "2024-01-01T04:00:00+00:00",
            "missing": 3,
        },
        {
            "region": "A",
            "first_missing": "2024-01-01T08:00:00+00:00",
            "last_missing": "2024-01-01T08:00:00+00:00",
            "missing": 1,
        },
    )
    assert gaps.observed_value["missing_by_series"] == {"A": 4}
    assert gaps.observed_value["expected_slots"] == 13


def test_hourly_gaps_ignore_row_order_and_null_timestamps() -> None:
    ts = [*hours("2024-01-01", 5).delete(1)[::-1], pd.NaT]
    result = hourly_gaps(pd.DataFrame({"ts": ts}), "ts")
    assert result.results[0].unexpected_count == 1
    assert result.results[0].observed_value["null_timestamps"] == 1


@pytest.mark.parametrize(
    ("day", "local_hours"),
    [("2024-03-10", 23), ("2024-11-03", 25)],
    ids=["spring_forward", "fall_back"],
)
def test_dst_days_in_new_york_have_no_false_gaps_or_duplicates(day: str, local_hours: int) -> None:
    local = pd.date_range(
        day, pd.Timestamp(day) + pd.Timedelta(hours=23), freq="h", tz="America/New_York"
    )
    assert len(local) == local_hours  # the day really is a DST day
    for ts in (local, local.tz_convert("UTC")):
        frame = pd.DataFrame({"ts": ts, "respondent": "NYIS"})
        assert hourly_gaps(frame, "ts", "respondent").results[0].unexpected_count == 0
        assert duplicate_timestamps(frame, "ts", "respondent").results[0].unexpected_count == 0
        assert (
            duplicate_timestamps(frame, "ts", "respondent", freq="h").results[0].unexpected_count
            == 0
        )


def test_naive_local_wall_clock_times_would_miscount_dst_days() -> None:
    # Why the checks work in UTC: the same days as naive wall-clock hours show a gap in spring
    # (02:00 never happens) and a duplicate in autumn (01:00 happens twice).
    spring = pd.date_range("2024-03-10", periods=23, freq="h", tz="America/New_York").tz_localize(
        None
    )
    autumn = pd.date_range("2024-11-03", periods=25, freq="h", tz="America/New_York").tz_localize(
        None
    )
    assert hourly_gaps(pd.DataFrame({"ts": spring}), "ts").results[0].unexpected_count == 1
    assert duplicate_timestamps(pd.DataFrame({"ts": autumn}), "ts").results[0].unexpected_count == 1


def test_duplicate_timestamps_counts_surplus_rows_per_series() -> None:
    ts = hours("2024-01-01", 3)
    frame = pd.DataFrame(
        {
            "ts": [ts[0], ts[1], ts[1], ts[1], ts[2], ts[0], ts[0]],
            "unique_id": ["A", "A", "A", "A", "A", "B", "C"],
        }
    )
    result = duplicate_timestamps(frame, "ts", "unique_id")
    assert result.name == "no_duplicate_timestamps"
    check = result.results[0]
    assert check.unexpected_count == 2  # B and C at ts[0] are different series
    assert check.samples == ({"unique_id": "A", "ts": "2024-01-01T01:00:00+00:00", "rows": 3},)


def test_duplicate_timestamps_over_centuries_count_exact_instants() -> None:
    # Nanosecond slots over 300 years overflow a combined (series, slot) int64 sort key; the
    # check must fall back to a two-key sort and still count exactly.
    ts = pd.to_datetime(["1700-01-01", "1700-01-01", "2200-01-01", "2200-01-01"], utc=True)
    frame = pd.DataFrame({"ts": ts, "sid": ["a", "a", "a", "b"]})
    result = duplicate_timestamps(frame, "ts", "sid")
    assert result.results[0].unexpected_count == 1
    assert result.results[0].samples == (
        {"sid": "a", "ts": "1700-01-01T00:00:00+00:00", "rows": 2},
    )


def test_duplicate_hours_are_rows_in_the_same_hour_slot() -> None:
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["2024-01-01 10:00", "2024-01-01 10:30", "2024-01-01 11:00"], utc=True
            )
        }
    )
    assert duplicate_timestamps(frame, "ts").success
    by_hour = duplicate_timestamps(frame, "ts", freq="h")
    assert by_hour.name == "no_duplicate_hours"
    assert by_hour.results[0].unexpected_count == 1
    assert by_hour.results[0].samples == ({"ts": "2024-01-01T10:00:00+00:00", "rows": 2},)


def test_a_window_makes_missing_edge_slots_count() -> None:
    frame = pd.DataFrame({"ts": hours("2024-01-01 03:00", 18)})  # 03:00..20:00 of a 24-hour day
    assert hourly_gaps(frame, "ts").success
    window = hourly_gaps(
        frame, "ts", start=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), end="2024-01-02T00:00Z"
    )
    check = window.results[0]
    assert check.unexpected_count == 6
    assert check.observed_value["expected_slots"] == 24
    assert [(s["first_missing"][11:16], s["last_missing"][11:16]) for s in check.samples] == [
        ("00:00", "02:00"),
        ("21:00", "23:00"),
    ]


def test_time_gaps_with_daily_slots_and_bad_frequencies() -> None:
    days = pd.DataFrame(
        {"day": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-05"], utc=True)}
    )
    result = time_gaps(days, "day", freq="D")
    assert result.name == "no_missing_days"
    assert result.results[0].unexpected_count == 2
    with pytest.raises(ValueError, match="fixed duration"):
        time_gaps(days, "day", freq="MS")


def test_empty_frames_pass_the_plain_checks() -> None:
    empty = pd.DataFrame({"ts": pd.to_datetime([], utc=True), "k": []})
    assert hourly_gaps(empty, "ts").success
    assert duplicate_timestamps(empty, "ts").success
    assert unique_keys(empty, "k").success


def test_missing_columns_raise_a_clear_error() -> None:
    with pytest.raises(KeyError, match="event_ts"):
        hourly_gaps(pd.DataFrame({"ts": hours("2024-01-01", 2)}), "event_ts")


@st.composite
def complete_series_with_holes(draw: st.DrawFn) -> tuple[pd.DataFrame, int]:
    n = draw(st.integers(min_value=3, max_value=300))
    start = draw(st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2040, 1, 1)))
    tz = draw(st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"]))
    ts = pd.date_range(pd.Timestamp(start, tz="UTC").floor("h"), periods=n, freq="h").tz_convert(tz)
    holes = draw(st.sets(st.integers(min_value=1, max_value=n - 2), max_size=n - 2))
    frame = pd.DataFrame({"ts": ts}).drop(index=sorted(holes)).sample(frac=1, random_state=0)
    return frame, len(holes)


@given(complete_series_with_holes())
@settings(max_examples=150, deadline=None)
def test_removing_k_interior_hours_gives_k_gaps(case: tuple[pd.DataFrame, int]) -> None:
    frame, k = case
    assert hourly_gaps(frame, "ts").results[0].unexpected_count == k
    assert hourly_gaps(pl.from_pandas(frame), "ts").results[0].unexpected_count == k


@given(
    n=st.integers(min_value=1, max_value=200),
    series=st.integers(min_value=1, max_value=4),
    picks=st.lists(st.integers(min_value=0, max_value=10_000), max_size=50),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_duplicating_k_rows_gives_k_duplicates(n: int, series: int, picks: list[int]) -> None:
    frame = pd.concat(
        [
            pd.DataFrame({"ts": hours("2024-03-09", n, tz="America/New_York"), "sid": s})
            for s in range(series)
        ],
        ignore_index=True,
    )
    copies = frame.iloc[[p % len(frame) for p in picks]]  # the same row may be copied twice
    doubled = pd.concat([frame, copies], ignore_index=True)
    assert duplicate_timestamps(doubled, "ts", "sid").results[0].unexpected_count == len(picks)
    assert duplicate_timestamps(doubled, "ts", "sid", freq="h").results[0].unexpected_count == len(
        picks
    )
    assert hourly_gaps(doubled, "ts", "sid").results[0].unexpected_count == 0


def test_sample_values_become_json_safe() -> None:
    from mlops_assets.core.validation import jsonable

    assert jsonable(np.datetime64("2024-01-01T05:00:00.000000000")) == "2024-01-01T05:00:00"
    assert jsonable(pd.Timestamp("2024-01-01 05:00", tz="UTC")) == "2024-01-01T05:00:00+00:00"
    assert jsonable(pd.NaT) is None
    assert jsonable(pd.NA) is None
    assert jsonable(np.float64("nan")) is None
    assert jsonable(np.int64(7)) == 7
    assert jsonable("x" * 500) == "x" * 80


def test_to_pandas_concatenates_a_dict_of_partitions() -> None:
    parts = {"2024-01-01": pl.DataFrame({"a": [1]}), "2024-01-02": pd.DataFrame({"a": [2, 3]})}
    assert to_pandas(parts)["a"].tolist() == [1, 2, 3]
    with pytest.raises(TypeError):
        to_pandas([1, 2])


# --------------------------------------------------------------------------------------------------
# Dagster: audits judge the staged data in the asset's step, and stop the graph
# --------------------------------------------------------------------------------------------------

TX = dg.AssetKey(["fraud", "transactions"])


def _io(tmp_path: Path) -> dict:
    return store_resources(str(tmp_path))


def build_graph(frame: pd.DataFrame | pl.DataFrame) -> list[dg.AssetsDefinition]:
    audits = [
        gx_audit(TX, SUITE),
        unique_key_audit(TX, "tx_id"),
        *time_series_audits(TX, "event_ts"),
    ]

    @dg.asset(key=TX, check_specs=check_specs(audits))
    def transactions(context: dg.AssetExecutionContext, asset_store: AssetStore):
        yield from publish(context, asset_store, {TX: {None: frame}}, audits)

    @dg.asset(key=["fraud", "training_set"], ins={"transactions": dg.AssetIn(key=TX)})
    def training_set(transactions: Any) -> pd.DataFrame:
        return to_pandas(transactions)

    return [transactions, training_set]


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_bad_frame_fails_the_blocking_check_and_downstream_is_not_built(tmp_path: Path) -> None:
    result = dg.materialize(build_graph(bad_frame()), resources=_io(tmp_path), raise_on_error=False)

    assert not result.success
    by_name = evaluations(result)
    assert set(by_name) == {
        "transactions_meet_expectations",
        "tx_id_is_unique",
        "no_missing_hours",
        "no_duplicate_hours",
    }
    failed = by_name["transactions_meet_expectations"]
    assert failed.passed is False
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.blocking is True
    assert failed.metadata["failing_columns"].value == ["age", "amount"]
    assert failed.metadata["unexpected_count:amount"].value == 2
    assert failed.metadata["unexpected_count:age"].value == 3
    assert failed.metadata["failing_expectations"].value == [
        "expect_column_values_to_not_be_null(amount)",
        "expect_column_values_to_be_between(age)",
    ]
    assert "| expect_column_values_to_be_between | age | 3 |" in failed.metadata["failures"].value
    assert "2 unexpected" in failed.description
    # The plain checks looked at the same (otherwise sound) frame and passed.
    assert [
        by_name[n].passed for n in ("tx_id_is_unique", "no_missing_hours", "no_duplicate_hours")
    ] == [True] * 3

    # Recorded (the UI shows what was rejected), not published, and nothing built on it.
    assert materialized(result) == {"fraud/transactions"}
    assert not (tmp_path / "fraud" / "transactions.parquet").exists()
    assert not result.is_node_success("fraud__training_set")
    assert "fraud__training_set" not in {e.step_key for e in result.get_step_success_events()}


def test_good_frame_passes_every_check_and_builds_downstream(tmp_path: Path) -> None:
    result = dg.materialize(build_graph(pl.from_pandas(good_frame())), resources=_io(tmp_path))
    assert result.success
    assert all(e.passed for e in evaluations(result).values())
    assert evaluations(result)["transactions_meet_expectations"].metadata["row_count"].value == 6
    assert materialized(result) == {"fraud/transactions", "fraud/training_set"}


DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
CLEAN = dg.AssetKey(["demand", "clean"])
CLEAN_SUITE = ExpectationSuiteSpec(
    "clean_demand_meets_expectations",
    [
        expect("column_values_to_not_be_null", column="y"),
        expect("table_row_count_to_be_between", max_value=48),
    ],
)
CLEAN_AUDITS = [
    gx_audit(CLEAN, CLEAN_SUITE, partitions_def=DAILY),
    *time_series_audits(CLEAN, "ds", "unique_id", partitions_def=DAILY),
]


@dg.asset(
    partitions_def=DAILY,
    key=CLEAN,
    check_specs=check_specs(CLEAN_AUDITS),
)
def demand_clean(context: dg.AssetExecutionContext, asset_store: AssetStore):
    """2024-01-01 is complete; 2024-01-02 lacks 05:00 for respondent B; both have 24 hours each."""
    day = pd.Timestamp(context.partition_key, tz="UTC")
    frames = []
    for respondent in ("A", "B"):
        ts = pd.date_range(day, periods=24, freq="h")
        if context.partition_key == "2024-01-02" and respondent == "B":
            ts = ts.delete(5)
        frames.append(pd.DataFrame({"unique_id": respondent, "ds": ts, "y": 1.0}))
    frame = pd.concat(frames, ignore_index=True)
    yield from publish(context, asset_store, {CLEAN: {context.partition_key: frame}}, CLEAN_AUDITS)


def test_partitioned_audits_judge_only_the_partition_of_the_step(tmp_path: Path) -> None:
    # The audits took the asset's partitions, so the UI shows their results per day.
    assert all(a.spec.partitions_def == DAILY for a in CLEAN_AUDITS)

    first = dg.materialize([demand_clean], resources=_io(tmp_path), partition_key="2024-01-01")
    assert first.success
    assert {e.partition for e in first.get_asset_check_evaluations()} == {"2024-01-01"}
    assert evaluations(first)["clean_demand_meets_expectations"].metadata["row_count"].value == 48

    # The second day is checked alone: 47 rows, not the 95 of both days on disk.
    second = dg.materialize(
        [demand_clean], resources=_io(tmp_path), partition_key="2024-01-02", raise_on_error=False
    )
    by_name = evaluations(second)
    assert {e.partition for e in by_name.values()} == {"2024-01-02"}
    assert by_name["clean_demand_meets_expectations"].passed
    assert by_name["clean_demand_meets_expectations"].metadata["row_count"].value == 47
    gaps = by_name["no_missing_hours"]
    assert not gaps.passed
    assert gaps.metadata["unexpected_count:ds"].value == 1
    assert gaps.metadata["samples"].value["time_gaps(ds)"] == [
        {
            "unique_id": "B",
            "first_missing": "2024-01-02T05:00:00+00:00",
            "last_missing": "2024-01-02T05:00:00+00:00",
            "missing": 1,
        }
    ]
    assert by_name["no_duplicate_hours"].passed
    assert sorted(p.name for p in (tmp_path / "demand" / "clean").iterdir()) == [
        "2024-01-01.parquet"
    ]


def test_cover_partition_counts_hours_missing_at_the_edges_of_the_day(tmp_path: Path) -> None:
    key = dg.AssetKey("readings")
    audits = time_series_audits(key, "ds", cover_partition=True, partitions_def=DAILY)

    @dg.asset(
        key=key,
        partitions_def=DAILY,
        check_specs=check_specs(audits),
    )
    def readings(context: dg.AssetExecutionContext, asset_store: AssetStore):
        day = pd.Timestamp(context.partition_key, tz="UTC")
        frame = pd.DataFrame(
            {"ds": pd.date_range(day + pd.Timedelta(hours=2), periods=20, freq="h")}
        )
        yield from publish(context, asset_store, {key: {context.partition_key: frame}}, audits)

    result = dg.materialize(
        [readings], resources=_io(tmp_path), partition_key="2024-01-03", raise_on_error=False
    )
    gaps = evaluations(result)["no_missing_hours"]
    assert not gaps.passed
    assert gaps.metadata["unexpected_count:ds"].value == 4  # 00:00, 01:00, 22:00, 23:00


def test_audit_names_and_partitions() -> None:
    named = gx_audit(CLEAN, SUITE, partitions_def=DAILY, name="clean_is_sound")
    assert named.name == "clean_is_sound"
    assert named.asset_key == CLEAN
    assert named.spec.partitions_def == DAILY
    assert named.spec.blocking
    assert unique_key_audit(TX, ["card_id", "event_ts"]).name == "card_id_and_event_ts_are_unique"
    assert sorted(a.name for a in time_series_audits(TX, "day", freq="D")) == [
        "no_duplicate_days",
        "no_missing_days",
    ]
    with pytest.raises(ValueError, match="check name"):
        unique_key_audit(TX, "tx_id", name="tx id is unique")


def test_rule_results_and_ranged_results_name_what_failed() -> None:
    ok = rule_result("positive", 3, 0)
    bad = rule_result("positive", 3, 2, [-1, -2], columns=("x",))
    assert ok.success and not bad.success
    assert check_metadata(bad)["unexpected_count:x"] == 2
    merged = merge_partition_results("positive", {"2024-01-01": ok, "2024-01-02": bad})
    assert not merged.success and merged.row_count == 6
    assert [r.label for r in merged.failures] == ["2024-01-02/positive(x)"]
    assert merge_partition_results("positive", {"2024-01-01": ok}) is ok
