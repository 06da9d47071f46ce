"""The user-file contract: small hand-made CSV and parquet files read and coerced to an Arrow schema,
with every problem named (file, column, count, samples)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_assets.core import contracts
from mlops_assets.core.contracts import Coerced, ColumnRule, ContractError

UTC_US = pa.timestamp("us", tz="UTC")
CONTRACT = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("n", pa.int64()),
        pa.field("small", pa.int8()),
        pa.field("x", pa.float64()),
        pa.field("day", pa.date32()),
        pa.field("ts", UTC_US),
        pa.field("flag", pa.bool_()),
    ]
)
HEADER = "id,n,small,x,day,ts,flag"


def _csv(tmp_path: Path, *lines: str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(path: Path, **kwargs: object) -> Coerced:
    return contracts.read_user_file(path, CONTRACT, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Each type, from CSV text
# --------------------------------------------------------------------------------------------------


def test_every_type_is_converted_from_csv_text(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        HEADER,
        "a,3,-128,1.5,2021-06-30,2024-01-03 10:00:00,true",
        " b ,+4, 127 ,1e3,2021-06-30T23:59:00,2024-01-03T11:00:00+01:00,0",
        "02139,5.0,0,.5,2021-06-30 08:00,2024-01-03T10:00:00.000000Z,Yes",
    )
    read = _read(path)
    assert read.extra_columns == ()
    assert read.table.schema.equals(CONTRACT)
    ten = datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert read.table.to_pydict() == {
        "id": ["a", " b ", "02139"],  # text as written: not trimmed, zeros kept
        "n": [3, 4, 5],
        "small": [-128, 127, 0],
        "x": [1.5, 1000.0, 0.5],
        "day": [date(2021, 6, 30)] * 3,
        "ts": [ten, ten, ten],
        "flag": [True, False, True],
    }


def test_null_tokens_are_nulls_except_in_text_columns(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        HEADER,
        "NA,NA,null,NaN,NaT,None,N/A",
        '"",,  ,nan,NULL,none,',
        "null, NA ,,  NaN  ,,,",
    )
    table = _read(path).table
    assert table["id"].to_pylist() == ["NA", None, "null"]  # "NA" may be Namibia
    for name in CONTRACT.names[1:]:
        assert table[name].null_count == 3, name


def test_an_empty_text_cell_is_null_and_a_blank_one_is_not(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER, ",1,1,1,,,", " ,1,1,1,,,")
    assert _read(path).table["id"].to_pylist() == [None, " "]


# --------------------------------------------------------------------------------------------------
# Columns: missing, repeated, extra, order
# --------------------------------------------------------------------------------------------------


def test_order_is_free_and_extra_columns_are_dropped_and_reported(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "note,flag,ts,day,x,small,n,id,other",
        "hello,1,2024-01-03,2021-06-30,2,1,1,a,z",
    )
    read = _read(path)
    assert read.extra_columns == ("note", "other")
    assert read.table.column_names == CONTRACT.names
    assert read.table["ts"].to_pylist() == [datetime(2024, 1, 3, tzinfo=UTC)]


def test_missing_columns_are_named_with_the_file(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,n,small,day,flag,junk", "a,1,1,2021-06-30,1,z")
    with pytest.raises(ContractError) as info:
        _read(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == str(path)
    assert err.missing_columns == ("x", "ts")
    assert err.columns == ("x", "ts")
    assert err.bad_values == {} and err.samples == {}
    assert str(err) == (
        f"{path}: missing columns 'x', 'ts' (the file has 'id', 'n', 'small', 'day', 'flag', 'junk')"
    )


def test_repeated_contract_columns_are_an_error_repeated_extra_ones_are_not() -> None:
    table = pa.table([["a"], ["1"], ["b"], ["z"], ["z"]], names=["id", "n", "id", "q", "q"])
    contract = pa.schema([("id", pa.string()), ("n", pa.int64())])
    with pytest.raises(ContractError) as info:
        contracts.coerce(table, contract, source="t.csv")
    assert info.value.repeated_columns == ("id",)
    assert info.value.columns == ("id",)
    assert str(info.value) == "t.csv: repeated columns 'id'"

    once = pa.table([["1"], ["z"], ["a"], ["z"]], names=["n", "q", "id", "q"])
    ok = contracts.coerce(once, contract, source="t")
    assert ok.extra_columns == ("q",)
    assert ok.table.to_pydict() == {"id": ["a"], "n": [1]}


# --------------------------------------------------------------------------------------------------
# Bad values: counts and samples
# --------------------------------------------------------------------------------------------------


def test_bad_values_are_counted_with_row_samples(tmp_path: Path) -> None:
    rows = [HEADER]
    for i in range(1, 9):
        n = "abc" if i in (2, 3, 5, 6, 7, 8) else str(i)
        day = "2021-02-30" if i == 4 else "2021-02-28"
        rows.append(f"r{i},{n},1,1,{day},2024-01-03,1")
    path = _csv(tmp_path, *rows)
    with pytest.raises(ContractError) as info:
        _read(path)
    err = info.value
    assert err.bad_values == {"n": 6, "day": 1}
    assert err.columns == ("n", "day")
    assert err.samples == {
        "n": [(2, "abc"), (3, "abc"), (5, "abc"), (6, "abc"), (7, "abc")],  # 5 at most
        "day": [(4, "2021-02-30")],
    }
    assert str(err) == (
        f"{path}: column 'n' has 6 values that are not integers: "
        "row 2 'abc', row 3 'abc', row 5 'abc', row 6 'abc', row 7 'abc'; "
        "column 'day' has 1 value that is not an ISO date (YYYY-MM-DD): row 4 '2021-02-30'"
    )


def test_distinct_examples_without_rows(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        HEADER,
        'a,1,1," 1,5 ",1,1,1',
        "b,1,1,1,1,1,1",
        'c,1,1," 1,5 ",1,1,1',
        "d,1,1,x,1,1,1",
        "e,1,1,y,1,1,1",
    )
    with pytest.raises(ContractError) as info:
        _read(path, samples=contracts.Samples(count=2, distinct=True, rows=False))
    err = info.value
    assert err.bad_values["x"] == 4
    assert err.samples["x"] == [(1, " 1,5 "), (4, "x")]  # as written, first distinct ones
    assert "column 'x' has 4 values that are not numbers (e.g. ' 1,5 ', 'x')" in str(err)


@pytest.mark.parametrize(
    ("column", "text", "expected"),
    [
        ("n", "1.5", "not an integer"),
        ("n", "1" * 19, "not an integer"),  # beyond int64: refused, not wrapped
        ("n", "1e3", "not an integer"),
        ("small", "128", r"not an integer in [-128, 127]"),
        ("small", "-129", r"not an integer in [-128, 127]"),
        ("x", "1,5", "not a number"),
        ("x", "inf", "not a number"),
        ("day", "30/06/2021", "not an ISO date (YYYY-MM-DD)"),
        ("day", "2021-13-01", "not an ISO date (YYYY-MM-DD)"),
        ("ts", "yesterday", "not a timestamp"),
        ("ts", "2024-13-03 10:00", "not a timestamp"),
        ("flag", "maybe", "not a boolean"),
    ],
)
def test_one_bad_value_of_each_type(tmp_path: Path, column: str, text: str, expected: str) -> None:
    good = {"id": "a", "n": "1", "small": "1", "x": "1", "day": "", "ts": "", "flag": ""}
    path = _csv(
        tmp_path,
        HEADER,
        ",".join(good.values()),
        ",".join(f'"{v}"' for v in {**good, column: text}.values()),
    )
    with pytest.raises(ContractError) as info:
        _read(path)
    assert info.value.bad_values == {column: 1}
    assert info.value.samples == {column: [(2, text)]}
    assert f"column '{column}' has 1 value that is {expected}: row 2 '{text}'" in str(info.value)


def test_long_samples_are_cut(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER, f"a,{'z' * 100},1,1,,,")
    with pytest.raises(ContractError) as info:
        _read(path)
    assert info.value.samples["n"] == [(1, "z" * 40)]


# --------------------------------------------------------------------------------------------------
# Parquet: typed casts
# --------------------------------------------------------------------------------------------------


def test_parquet_typed_columns_are_cast(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "flag": np.array([1, 0, 1], dtype=np.int16),
            "id": pd.Categorical(["a", "b", "a"]),
            "n": [1.0, np.nan, 3.0],  # pandas turns an int column with a gap into floats
            "small": np.array([1, 2, 3], dtype=np.uint64),
            "x": np.array([1, 2, 3], dtype=np.int32),
            "day": pd.to_datetime(
                ["2021-06-30 10:00", "2021-07-01", "2021-07-02"], format="ISO8601"
            ),
            "ts": pd.to_datetime(["2024-01-03 10:00", "2024-01-03 11:00", "2024-01-03 12:00"]),
            "extra": ["x", "y", "z"],
        }
    )
    path = tmp_path / "f.parquet"
    frame.to_parquet(path, index=False)
    read = _read(path)
    assert read.extra_columns == ("extra",)
    assert read.table.schema.equals(CONTRACT)
    assert read.table.to_pydict() == {
        "id": ["a", "b", "a"],
        "n": [1, None, 3],
        "small": [1, 2, 3],
        "x": [1.0, 2.0, 3.0],
        "day": [date(2021, 6, 30), date(2021, 7, 1), date(2021, 7, 2)],
        "ts": [datetime(2024, 1, 3, h, tzinfo=UTC) for h in (10, 11, 12)],  # naive = UTC
        "flag": [True, False, True],
    }


def test_parquet_values_that_do_not_fit_are_bad(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": pa.array([[1], [2]], pa.list_(pa.int64())),  # nothing sensible as text
            "n": pa.array([1.0, 2.5]),
            "small": pa.array([1, 300], pa.int64()),
            "x": pa.array([1.0, float("inf")]),
            "day": pa.array([1, 2], pa.int64()),
            "ts": pa.array([1_704_276_000, None], pa.int64()),  # epoch seconds? refused
            "flag": pa.array([1, 2], pa.int8()),
        }
    )
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(ContractError) as info:
        _read(path)
    err = info.value
    assert err.bad_values == {"id": 2, "n": 1, "small": 1, "x": 1, "day": 2, "ts": 1, "flag": 1}
    assert err.samples["n"] == [(2, "2.5")]
    assert err.samples["small"] == [(2, "300")]
    assert err.samples["ts"] == [(1, "1704276000")]
    assert err.samples["id"] == [(1, "[1]"), (2, "[2]")]


def test_parquet_text_columns_follow_the_csv_rules(tmp_path: Path) -> None:
    table = pa.table({name: pa.array(["NA", ""], pa.string()) for name in CONTRACT.names})
    path = tmp_path / "text.parquet"
    pq.write_table(table, path)
    read = _read(path).table
    assert read["id"].to_pylist() == ["NA", None]
    assert all(read[name].null_count == 2 for name in CONTRACT.names[1:])


def test_timestamps_out_of_range_are_bad_and_shown_as_numbers() -> None:
    far = pa.array([0, 10**13], pa.timestamp("s"))  # year ~318,857: no microseconds for it
    contract = pa.schema([("ts", UTC_US)])
    with pytest.raises(ContractError) as info:
        contracts.coerce(pa.table({"ts": far}), contract, source="t")
    assert info.value.bad_values == {"ts": 2}
    assert info.value.samples["ts"] == [(1, "0"), (2, str(10**13))]


# --------------------------------------------------------------------------------------------------
# A use case's own rules, its own error type
# --------------------------------------------------------------------------------------------------


class _MyError(ContractError):
    pass


def test_a_column_rule_and_an_error_type_of_the_use_case() -> None:
    def shout(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
        import pyarrow.compute as pc

        values, _ = contracts.to_text(arr, target)
        ok = pc.not_equal(values, "bad")
        return contracts.keep(pc.utf8_upper(values), ok), contracts.failed(values, ok)

    contract = pa.schema([("code", pa.string())])
    rules = {"code": ColumnRule(shout, ("a code", "codes"))}
    table = pa.table({"code": ["a", "b", None]})
    assert contracts.coerce(table, contract, source="t", rules=rules).table["code"].to_pylist() == [
        "A",
        "B",
        None,
    ]
    with pytest.raises(_MyError, match=r"^src: column 'code' has 1 value that is not a code"):
        contracts.coerce(
            pa.table({"code": ["a", "bad"]}), contract, source="src", rules=rules, error=_MyError
        )


# --------------------------------------------------------------------------------------------------
# Unreadable files
# --------------------------------------------------------------------------------------------------


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        _read(tmp_path / "nope.csv")
    (tmp_path / "f.xlsx").write_bytes(b"PK")
    with pytest.raises(ContractError, match=r"unsupported file type '\.xlsx'"):
        _read(tmp_path / "f.xlsx")
    with pytest.raises(ContractError, match="empty"):
        _read(_csv(tmp_path, "", name="empty.csv"))
    with pytest.raises(ContractError, match=r"ragged.csv: not a readable CSV"):
        _read(_csv(tmp_path, "a,b", "1,2,3", name="ragged.csv"))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ContractError, match="not a readable parquet"):
        _read(tmp_path / "junk.parquet")


def test_format_and_source_can_be_given(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,n", "a,x", name="upload.bin")
    contract = pa.schema([("id", pa.string()), ("n", pa.int64())])
    with pytest.raises(ContractError) as info:
        contracts.read_user_file(path, contract, fmt="csv", source="uploads/today.csv")
    assert str(info.value).startswith("uploads/today.csv: column 'n' has 1 value")
    assert info.value.path == "uploads/today.csv"


def test_a_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfid,n\r\na,1\r\n")
    contract = pa.schema([("id", pa.string()), ("n", pa.int64())])
    assert contracts.read_user_file(path, contract).table.to_pydict() == {"id": ["a"], "n": [1]}


def test_importing_the_module_loads_no_heavy_library() -> None:
    code = (
        "import sys, mlops_assets.core.contracts; "
        "print([m for m in ('pyarrow', 'pandas', 'numpy', 'polars') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
