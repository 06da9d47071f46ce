"""Your own demand files (``source: files``) as the raw contract: columns, time zones, errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.demand import cleaning, schema
from mlops_assets.demand.sources import FilesError, read_files

DAY = date(2024, 5, 1)
NEXT = date(2024, 5, 2)


def _hour(h: int) -> datetime:
    return datetime(2024, 5, 1, h, tzinfo=UTC)


def _csv(root: Path, text: str, day: date = DAY) -> Path:
    path = root / f"{day.isoformat()}.csv"
    path.write_text(text)
    return path


def test_times_with_offsets_and_eia_periods_become_utc_hours(tmp_path: Path) -> None:
    _csv(
        tmp_path,
        "respondent,period,value,note\n"
        "CISO,2024-04-30T17:00:00-07:00,100,a\n"  # Pacific daylight time
        "CISO,2024-05-01T01:00Z,101,a\n"
        "CISO,2024-05-01 02:00+00:00,102,a\n"
        "CISO,2024-05-01T03,103,a\n"  # EIA's hourly period: UTC by definition
        "CISO,2024-04-30T23-05,104,a\n"  # EIA's local-hourly period with its offset
        "CISO,2024-05-01T05:00Z,NA,a\n"
        "CISO,2024-05-01T05:00Z, 1,5 ,a\n".replace(" 1,5 ", '" 1,5 "')
        + "XXXX,2024-05-01T06:00Z,7,a\n",
    )

    read = read_files(tmp_path, ["CISO"], DAY, NEXT)

    assert read.table.schema == schema.raw_schema()
    rows = read.table.to_pylist()
    assert [r["period"] for r in rows] == [_hour(h) for h in (0, 1, 2, 3, 4, 5, 5)]
    assert [r["value"] for r in rows] == ["100", "101", "102", "103", "104", None, " 1,5 "]
    assert {r["type"] for r in rows} == {"D"}
    assert read.extra_columns == ("note",) and read.ignored_rows == {"XXXX": 1}
    # The same clean step as EIA's data: the junk value is named, the duplicate kept.
    with pytest.raises(cleaning.CleanError, match="' 1,5 '"):
        cleaning.to_clean(read.table)


def test_parquet_with_a_zone_and_numeric_values(tmp_path: Path) -> None:
    periods = pd.date_range("2024-04-30T20:00", periods=3, freq="h", tz="America/New_York")
    frame = pd.DataFrame(
        {"respondent": "NYIS", "hour": periods, "value": [17000.0, 17000.5, float("nan")]}
    )
    frame.to_parquet(tmp_path / "2024-05-01.parquet")

    table = read_files(tmp_path, ["NYIS"], DAY, NEXT).table

    assert table.column("period").to_pylist() == [_hour(0), _hour(1), _hour(2)]
    assert table.column("value").to_pylist() == ["17000", "17000.5", None]
    clean, report = cleaning.to_clean(table)
    assert clean.column("y").to_pylist() == [17000.0, 17000.5]
    assert report["null_values"] == 1


@pytest.mark.parametrize(
    ("period", "shown"),
    [
        ("2024-05-01 05:00", "'2024-05-01 05:00'"),  # a local hour? a UTC hour? unknowable
        ("2024-05-01T05:00:00", "'2024-05-01T05:00:00'"),
        ("2024-05-01T05:30Z", "'2024-05-01T05:30Z'"),  # not the start of an hour
        ("yesterday", "'yesterday'"),
        ("1714539600", "'1714539600'"),  # epoch seconds? milliseconds?
    ],
)
def test_times_without_an_offset_or_unreadable_are_refused(
    tmp_path: Path, period: str, shown: str
) -> None:
    path = _csv(tmp_path, f"respondent,period,value\nCISO,2024-05-01T04:00Z,1\nCISO,{period},2\n")

    with pytest.raises(FilesError) as caught:
        read_files(tmp_path, ["CISO"], DAY, NEXT)

    message = str(caught.value)
    assert message.startswith(f"{path}: column 'period' has 1 value that is not an hour with a UTC")
    assert f"row 2 {shown}" in message
    assert caught.value.bad_values == {"period": 1}


def test_a_naive_parquet_timestamp_is_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"respondent": ["CISO"] * 2, "period": pd.date_range("2024-05-01", periods=2, freq="h")}
    ).assign(value="1")
    frame.to_parquet(tmp_path / "2024-05-01.parquet")

    with pytest.raises(FilesError, match="column 'period' has 2 values that are not hours with"):
        read_files(tmp_path, ["CISO"], DAY, NEXT)


def test_missing_files_columns_and_respondents_are_named(tmp_path: Path) -> None:
    with pytest.raises(FilesError, match=r"no demand file for 2024-05-01: looked for .*\.csv or"):
        read_files(tmp_path, ["CISO"], DAY, NEXT)

    path = _csv(tmp_path, "respondent,time,value\nCISO,2024-05-01T00Z,1\n")
    with pytest.raises(FilesError) as caught:
        read_files(tmp_path, ["CISO"], DAY, NEXT)
    assert str(caught.value).startswith(f"{path}: missing column 'period'")
    assert caught.value.missing_columns == ("period",)

    _csv(tmp_path, "respondent,period,value\nCISO,2024-05-01T00Z,1\n")
    with pytest.raises(FilesError, match=r"no row for respondent\(s\) \['ERCO'\]"):
        read_files(tmp_path, ["CISO", "ERCO"], DAY, NEXT)

    (tmp_path / "2024-05-01.parquet").write_bytes(b"")
    with pytest.raises(FilesError, match=r"both a \.parquet and a \.csv"):
        read_files(tmp_path, ["CISO"], DAY, NEXT)


def test_hours_outside_the_files_utc_day_are_refused(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "respondent,period,value\nCISO,2024-05-01T23:00Z,1\nCISO,2024-05-01T23:00-07:00,2\n",
    )

    with pytest.raises(FilesError) as caught:
        read_files(tmp_path, ["CISO"], DAY, NEXT)

    assert str(caught.value).startswith(
        f"{path}: column 'period' has 1 hour(s) outside the UTC day 2024-05-01"
    )
    assert "CISO 2024-05-02T06:00Z" in str(caught.value)
