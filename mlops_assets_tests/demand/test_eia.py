"""The EIA API v2 client, against the local fake EIA server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.demand import eia, schema
from mlops_assets.demand.eia import (
    EiaClientConfig,
    EiaError,
    api_key_from_env,
    fetch_demand,
    parse_period,
)
from mlops_assets_tests.fixtures.fake_eia import FakeEia

KEY = "s3cr3t-KEY-123"
START = datetime(2024, 1, 1, tzinfo=UTC)
END = START + timedelta(days=3)
HOUR = timedelta(hours=1)


@pytest.fixture
def fake() -> Iterator[FakeEia]:
    with FakeEia(api_key=KEY) as server:
        server.add_series(
            ["CISO", "ERCO", "PJM"], START - timedelta(days=1), END + timedelta(days=1)
        )
        yield server


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry delays the client asked for, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(eia, "_sleep", recorded.append)
    return recorded


def _config(fake: FakeEia, **overrides: object) -> EiaClientConfig:
    options: dict[str, object] = {
        "api_key": KEY,
        "base_url": fake.base_url,
        "page_size": 5000,
        "max_retries": 3,
        "backoff_seconds": 0.001,
        "timeout_seconds": 5.0,
    }
    options.update(overrides)
    return EiaClientConfig(**options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Paging, schema, range
# --------------------------------------------------------------------------------------------------


def test_pages_until_total_and_returns_every_row_sorted(fake: FakeEia) -> None:
    table = fetch_demand(["PJM", "CISO", "ERCO"], START, END, _config(fake, page_size=20))

    assert table.num_rows == 3 * 72
    rows = table.to_pylist()
    keys = [(r["respondent"], r["period"]) for r in rows]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    for respondent in ("CISO", "ERCO", "PJM"):
        periods = [p for r, p in keys if r == respondent]
        assert periods == [START + i * HOUR for i in range(72)]
    # ceil(216 / 20) = 11 pages, at offsets 0, 20, ..., 200, each asking for 20 rows.
    assert len(fake.requests) == math.ceil(216 / 20) == 11
    assert [r.param("offset") for r in fake.requests] == [str(20 * i) for i in range(11)]
    assert {r.param("length") for r in fake.requests} == {"20"}


def test_sends_the_documented_query(fake: FakeEia) -> None:
    fetch_demand(["CISO", "ERCO"], START, END, _config(fake))

    (request,) = fake.requests
    assert request.path == "/v2/electricity/rto/region-data/data/"
    assert request.query == {
        "api_key": [KEY],
        "frequency": ["hourly"],
        "data[0]": ["value"],
        "facets[respondent][]": ["CISO", "ERCO"],
        "facets[type][]": ["D"],
        "start": ["2024-01-01T00"],
        "end": ["2024-01-03T23"],
        "sort[0][column]": ["period"],
        "sort[0][direction]": ["asc"],
        "sort[1][column]": ["respondent"],
        "sort[1][direction]": ["asc"],
        "offset": ["0"],
        "length": ["5000"],
    }


def test_returns_exactly_the_raw_schema_and_values(fake: FakeEia) -> None:
    table = fetch_demand(["CISO"], START, START + 2 * HOUR, _config(fake))

    assert table.schema == schema.raw_schema()
    assert table.schema.field("period").type == pa.timestamp("us", tz="UTC")
    expected = [
        {
            "respondent": "CISO",
            "period": START + i * HOUR,
            "type": "D",
            "value": row["value"],
            "value_units": schema.VALUE_UNITS,
        }
        for i, row in enumerate(
            r for r in fake.rows["CISO"] if r["period"] in ("2024-01-01T00", "2024-01-01T01")
        )
    ]
    assert table.to_pylist() == expected
    assert all(isinstance(row["value"], str) and row["value"].isdigit() for row in expected)


def test_end_is_exclusive_and_start_inclusive(fake: FakeEia) -> None:
    start = datetime(2024, 1, 2, 5, tzinfo=UTC)
    end = datetime(2024, 1, 2, 8, tzinfo=UTC)

    table = fetch_demand(["ERCO"], start, end, _config(fake))

    assert table.column("period").to_pylist() == [start, start + HOUR, start + 2 * HOUR]
    assert fake.requests[0].param("start") == "2024-01-02T05"
    assert fake.requests[0].param("end") == "2024-01-02T07"


def test_non_utc_bounds_are_converted_to_utc(fake: FakeEia) -> None:
    eastern = timezone(timedelta(hours=-5))
    start = datetime(2024, 1, 2, 0, tzinfo=eastern)  # 05:00 UTC

    table = fetch_demand(["CISO"], start, start + HOUR, _config(fake))

    assert table.column("period").to_pylist() == [datetime(2024, 1, 2, 5, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2024, 1, 1), datetime(2024, 1, 2), "tz-aware"),
        (START + timedelta(minutes=30), END, "on the hour"),
        (END, START, "before end"),
    ],
)
def test_bad_arguments_raise_value_error(
    fake: FakeEia, start: datetime, end: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fetch_demand(["CISO"], start, end, _config(fake))
    assert fake.requests == []


@pytest.mark.parametrize(
    ("respondents", "message"),
    [([], "at least one respondent"), ("CISO", "sequence of codes"), (["CISO", " PJM"], "' PJM'")],
)
def test_bad_respondents_raise_value_error(
    fake: FakeEia, respondents: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fetch_demand(respondents, START, END, _config(fake))
    assert fake.requests == []


def test_config_is_validated_and_hides_the_key() -> None:
    assert KEY not in repr(EiaClientConfig(api_key=KEY))
    with pytest.raises(ValueError, match="page_size"):
        EiaClientConfig(api_key=KEY, page_size=5001)
    with pytest.raises(ValueError, match="EIA_API_KEY"):
        EiaClientConfig(api_key="  ")


def test_uses_the_given_session_and_leaves_it_open(fake: FakeEia) -> None:
    import requests

    with requests.Session() as session:
        fetch_demand(["CISO"], START, START + HOUR, _config(fake), session=session)
        fetch_demand(["CISO"], START, START + HOUR, _config(fake), session=session)
    assert len(fake.requests) == 2


# --------------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------------


def test_retries_server_errors_then_succeeds(fake: FakeEia, sleeps: list[float]) -> None:
    fake.fail_next(status=500, times=2)
    messages: list[str] = []

    table = fetch_demand(
        ["CISO"], START, END, _config(fake, backoff_seconds=0.5), on_retry=messages.append
    )

    assert table.num_rows == 72
    assert [r.status for r in fake.requests] == [500, 500, 200]
    assert sleeps == [0.5, 1.0]  # backoff * 2**attempt
    assert len(messages) == 2
    assert "HTTP 500" in messages[0] and "retry 1 of 3" in messages[0]
    assert all(KEY not in m for m in messages)


def test_retry_after_is_honoured(fake: FakeEia, sleeps: list[float]) -> None:
    fake.fail_next(status=429, retry_after=0)
    fake.fail_next(status=503, retry_after=2)

    table = fetch_demand(["CISO"], START, END, _config(fake, backoff_seconds=30.0))

    assert table.num_rows == 72
    assert [r.status for r in fake.requests] == [429, 503, 200]
    assert sleeps == [0.0, 2.0]  # the server's wish, not the 30 s backoff


def test_retry_delays_are_capped() -> None:
    assert eia._retry_delay(10, None, 1.0) == eia.MAX_RETRY_DELAY_SECONDS
    assert eia._retry_delay(0, 3600.0, 1.0) == eia.MAX_RETRY_DELAY_SECONDS
    assert eia._retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert eia._retry_after_seconds("soon") is None


def test_server_errors_forever_raise_after_all_attempts(fake: FakeEia, sleeps: list[float]) -> None:
    fake.fail_next(status=502, times=100)

    with pytest.raises(EiaError) as caught:
        fetch_demand(["CISO", "ERCO"], START, END, _config(fake, max_retries=4))

    message = str(caught.value)
    assert "after 5 attempts" in message
    assert "HTTP 502" in message
    assert "'CISO', 'ERCO'" in message and "2024-01-01 00:00 UTC" in message
    assert caught.value.status_code == 502
    assert len(fake.requests) == 4 + 1
    assert len(sleeps) == 4


def test_connection_errors_and_timeouts_are_retried(fake: FakeEia, sleeps: list[float]) -> None:
    fake.drop_connection_next()
    fake.slow_next(1.0)

    table = fetch_demand(["CISO"], START, START + HOUR, _config(fake, timeout_seconds=0.2))

    assert table.num_rows == 1
    assert len(fake.requests) == 3
    assert len(sleeps) == 2


def test_connection_errors_forever_do_not_leak_the_key(sleeps: list[float]) -> None:
    with FakeEia(api_key=KEY) as server:
        base_url = server.base_url
    # The server is gone: every attempt is refused.
    config = EiaClientConfig(api_key=KEY, base_url=base_url, max_retries=2, backoff_seconds=0)

    with pytest.raises(EiaError, match="after 3 attempts") as caught:
        fetch_demand(["CISO"], START, END, config)

    message = str(caught.value)
    assert "ConnectionError" in message and "/v2/electricity/rto/region-data/data/?..." in message
    assert "Connection refused" in message
    assert KEY not in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None


# --------------------------------------------------------------------------------------------------
# Errors that are not retried
# --------------------------------------------------------------------------------------------------


def test_a_rejected_key_names_the_variable_and_not_the_key(fake: FakeEia) -> None:
    config = EiaClientConfig(api_key="wrong-key-xyz", base_url=fake.base_url, backoff_seconds=0)

    with pytest.raises(EiaError) as caught:
        fetch_demand(["CISO"], START, END, config)

    message = str(caught.value)
    assert "EIA_API_KEY" in message and "rejected" in message
    assert "API_KEY_INVALID" in message
    assert "wrong-key-xyz" not in message
    assert caught.value.status_code == 403
    assert len(fake.requests) == 1  # not retried
    assert fake.requests[0].param("api_key") == "wrong-key-xyz"  # but it was sent


def test_401_is_a_rejected_key_too(fake: FakeEia) -> None:
    fake.respond_next(401, {"error": {"code": "API_KEY_MISSING", "message": "No api_key."}})

    with pytest.raises(EiaError, match="check EIA_API_KEY"):
        fetch_demand(["CISO"], START, END, _config(fake))


def test_a_bad_parameter_quotes_eia_and_is_not_retried(fake: FakeEia) -> None:
    fake.respond_next(400, {"error": "Invalid facet 'respondent' value."})

    with pytest.raises(EiaError) as caught:
        fetch_demand(["CISO"], START, END, _config(fake))

    assert "HTTP 400" in str(caught.value)
    assert "Invalid facet 'respondent' value." in str(caught.value)
    assert len(fake.requests) == 1


def test_an_unknown_respondent_is_named(fake: FakeEia) -> None:
    with pytest.raises(EiaError) as caught:
        fetch_demand(["CISO", "XXXX"], START, END, _config(fake))

    message = str(caught.value)
    assert "no demand for respondent 'XXXX'" in message
    assert "'CISO'" not in message
    assert "2024-01-01 00:00 UTC" in message and "2024-01-04 00:00 UTC" in message
    assert "respondent code right" in message


def test_malformed_json_names_respondent_and_offset(fake: FakeEia) -> None:
    fake.malformed_next()

    with pytest.raises(EiaError) as caught:
        fetch_demand(["CISO"], START, END, _config(fake))

    message = str(caught.value)
    assert "malformed JSON" in message
    assert "'CISO'" in message and "offset 0" in message
    assert '{"response": ' in message
    assert len(fake.requests) == 1


def test_malformed_json_on_a_later_page_names_its_offset(fake: FakeEia) -> None:
    def break_the_second_page(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        if not fake.requests[1:]:  # while serving the first page, script the second one
            fake.malformed_next()
        return rows

    fake.rows_override = break_the_second_page

    with pytest.raises(EiaError, match=r"malformed JSON for respondent 'CISO' .* at offset 50"):
        fetch_demand(["CISO"], START, END, _config(fake, page_size=50))
    assert len(fake.requests) == 2


def test_missing_response_data_quotes_the_body_without_the_key(fake: FakeEia) -> None:
    fake.respond_next(200, {"request": {"params": {"api_key": KEY}}, "apiVersion": "2.1.8"})

    with pytest.raises(EiaError) as caught:
        fetch_demand(["CISO"], START, END, _config(fake))

    message = str(caught.value)
    assert "no response.data" in message and "offset 0" in message
    assert '"api_key": "***"' in message
    assert KEY not in message


def test_a_short_page_is_an_error(fake: FakeEia) -> None:
    fake.respond_next(200, {"response": {"total": "72", "data": []}})

    with pytest.raises(EiaError, match=r"sent 0 rows at offset 0 .* expected 72"):
        fetch_demand(["CISO"], START, END, _config(fake))


def test_a_total_that_changes_between_pages_is_an_error(fake: FakeEia) -> None:
    calls = 0

    def grow(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        nonlocal calls
        calls += 1
        return rows if calls == 1 else [*rows, dict(rows[-1])]

    fake.rows_override = grow

    with pytest.raises(EiaError, match="changed during the download, from 72 to 73 at offset 50"):
        fetch_demand(["CISO"], START, END, _config(fake, page_size=50))


@pytest.mark.parametrize(
    ("row_change", "message"),
    [
        ({"period": None}, "without a period"),
        ({"period": "yesterday"}, "unreadable period 'yesterday'"),
        ({"period": "2023-12-31T23"}, "outside the requested"),
        ({"respondent": "MISO"}, "respondent 'MISO', which was not asked for"),
        ({"type": "DF"}, "type 'DF'"),
        ({"value": "999"}, "two different values for respondent 'CISO' at 2024-01-01 05:00 UTC"),
    ],
)
def test_rows_that_were_not_asked_for_are_errors(
    fake: FakeEia, row_change: dict[str, object], message: str
) -> None:
    def inject(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        base = next(r for r in rows if r["period"] == "2024-01-01T05")
        return [*rows, {**base, **row_change}]

    fake.rows_override = inject

    with pytest.raises(EiaError, match=message):
        fetch_demand(["CISO"], START, END, _config(fake))


# --------------------------------------------------------------------------------------------------
# Values are kept as sent
# --------------------------------------------------------------------------------------------------


def test_values_are_kept_as_text_and_nulls_as_null(fake: FakeEia) -> None:
    fake.set_value("CISO", START, "n/a")
    fake.set_value("CISO", START + HOUR, None)
    fake.set_value("CISO", START + 2 * HOUR, 21783)
    fake.set_value("CISO", START + 3 * HOUR, 21783.0)
    fake.set_value("CISO", START + 4 * HOUR, 21783.25)
    fake.set_value("CISO", START + 5 * HOUR, " 1,234 ")
    fake.set_value("CISO", START + 6 * HOUR, -5)

    table = fetch_demand(["CISO"], START, START + 7 * HOUR, _config(fake))

    assert table.column("value").to_pylist() == [
        "n/a",
        None,
        "21783",
        "21783",
        "21783.25",
        " 1,234 ",
        "-5",
    ]


def test_an_exact_duplicate_row_is_kept_and_reported_by_clean(fake: FakeEia) -> None:
    from mlops_assets.demand import cleaning

    # The 04:00 hour sent three times with the same value, across two pages.
    fake.rows_override = lambda rows: [*rows, dict(rows[4]), dict(rows[4])]

    table = fetch_demand(["CISO"], START, START + 6 * HOUR, _config(fake, page_size=4))

    hours = [START + i * HOUR for i in range(6)]
    assert table.column("period").to_pylist() == [*hours[:4], *[hours[4]] * 3, hours[5]]
    repeats = [r["value"] for r in table.to_pylist() if r["period"] == hours[4]]
    assert len(repeats) == 3 and len(set(repeats)) == 1
    _, report = cleaning.to_clean(table, start=START, end=START + 6 * HOUR)
    assert report["duplicate_hours"] == 2 and report["status"] == "invalid"


def _local_hourly_answer(periods: list[str]) -> dict[str, object]:
    rows = [
        {
            "period": p,
            "respondent": "CISO",
            "type": "D",
            "value": "100",
            "value-units": "megawatthours",
        }
        for p in periods
    ]
    return {"response": {"total": str(len(rows)), "frequency": "local-hourly", "data": rows}}


def test_local_hours_without_an_offset_are_refused(fake: FakeEia) -> None:
    fake.respond_next(200, _local_hourly_answer(["2024-01-01T00", "2024-01-01T01"]))

    with pytest.raises(EiaError) as caught:
        fetch_demand(["CISO"], START, START + 2 * HOUR, _config(fake))

    message = str(caught.value)
    assert "'CISO'" in message and "'2024-01-01T00'" in message
    assert "local-hourly" in message and "offset" in message


def test_local_hours_with_their_offset_are_converted_to_utc(fake: FakeEia) -> None:
    fake.respond_next(200, _local_hourly_answer(["2023-12-31T16-08", "2023-12-31T17-08"]))

    table = fetch_demand(["CISO"], START, START + 2 * HOUR, _config(fake))

    assert table.column("period").to_pylist() == [START, START + HOUR]


def test_value_text_of_json_values() -> None:
    assert eia._value_text(1e20) == "100000000000000000000"
    assert eia._value_text(0.1) == "0.1"
    assert eia._value_text(True) == "true"
    assert eia._value_text([1]) == "[1]"


# --------------------------------------------------------------------------------------------------
# parse_period and the API key
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T05", datetime(2024, 1, 1, 5, tzinfo=UTC)),
        ("2024-01-01T05Z", datetime(2024, 1, 1, 5, tzinfo=UTC)),
        ("2024-01-01T00-05", datetime(2024, 1, 1, 5, tzinfo=UTC)),
        # The DST fall-back night in New York: 01:00 happens twice, an hour apart in UTC.
        ("2024-11-03T01-04", datetime(2024, 11, 3, 5, tzinfo=UTC)),
        ("2024-11-03T01-05", datetime(2024, 11, 3, 6, tzinfo=UTC)),
        ("2024-03-10T03-07", datetime(2024, 3, 10, 10, tzinfo=UTC)),
        ("2024-01-01T05+05:30", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),
        ("2024-01-01T05+0530", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),
        ("2024-12-31T23-01", datetime(2025, 1, 1, 0, tzinfo=UTC)),
    ],
)
def test_parse_period(text: str, expected: datetime) -> None:
    parsed = parse_period(text)
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-01-01",
        "2024-01-01T5",
        "2024-01-01 05",
        "2024-01-01T05:00",
        "2024-13-01T05",
        "2024-02-30T05",
        "2024-01-01T24",
        "2024-01-01T05-24",
        "2024-01-01T05-0",
        " 2024-01-01T05",
        "2024-01-01T05\n",
        "٢٠٢٤-01-01T05",  # Arabic-Indic digits
        "junk",
    ],
)
def test_parse_period_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError, match="not an EIA hourly period") as caught:
        parse_period(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T05Z", datetime(2024, 1, 1, 5, tzinfo=UTC)),
        ("2024-01-01T05+00:00", datetime(2024, 1, 1, 5, tzinfo=UTC)),
        ("2024-01-01T00-05", datetime(2024, 1, 1, 5, tzinfo=UTC)),
    ],
)
def test_parse_period_of_local_hours_needs_an_offset(text: str, expected: datetime) -> None:
    assert parse_period(text, offsetless_is_utc=False) == expected
    with pytest.raises(eia.LocalHourError, match="without a UTC offset: '2024-01-01T05'"):
        parse_period("2024-01-01T05", offsetless_is_utc=False)


def test_parse_period_rejects_non_strings() -> None:
    with pytest.raises(ValueError):
        parse_period(None)  # type: ignore[arg-type]


_UTC_HOURS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(minute=0, second=0, microsecond=0))
# Every offset in use (whole hours, half and quarter hours), west and east of Greenwich.
_OFFSETS = st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: timedelta(minutes=15 * q))


@given(moment=_UTC_HOURS, offset=_OFFSETS)
def test_parse_period_round_trips_local_hours(moment: datetime, offset: timedelta) -> None:
    local = moment.astimezone(timezone(offset))
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    # EIA writes whole-hour offsets as "-04"; others need their minutes.
    suffix = f"{sign}{hh:02d}" + (f":{mm:02d}" if mm else "")
    # The local text names the local hour; its minutes come back from the offset's minutes.
    text = local.strftime("%Y-%m-%dT%H") + suffix

    assert parse_period(text) == moment - timedelta(minutes=local.minute)
    assert parse_period(moment.strftime("%Y-%m-%dT%H")) == moment


def test_api_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EIA_API_KEY", f"  {KEY}\n")
    assert api_key_from_env() == KEY
    monkeypatch.setenv("MY_EIA_KEY", "other")
    assert api_key_from_env("MY_EIA_KEY") == "other"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_api_key_from_env_missing(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("EIA_API_KEY", raising=False)
    else:
        monkeypatch.setenv("EIA_API_KEY", value)
    with pytest.raises(EiaError, match=r"^EIA_API_KEY is not set: "):
        api_key_from_env()
