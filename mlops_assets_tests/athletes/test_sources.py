"""The athletes generator and the user-file reader."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pv
import pytest

from mlops_assets.athletes import cleaning, schema
from mlops_assets.athletes.sources import (
    JUNK_KINDS,
    AthletesContractError,
    GeneratorConfig,
    generate_athletes,
    junk_count,
    read_athletes_csv,
)

N = 2_000


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_athletes(GeneratorConfig(n_athletes=N, seed=7))


def test_schema_and_ids(table: pa.Table) -> None:
    assert table.schema == schema.raw_schema()
    assert table.column(schema.KEY).to_pylist() == list(range(1, N + 1))


def test_same_config_same_table_other_seed_other_table(table: pa.Table) -> None:
    assert table.equals(generate_athletes(GeneratorConfig(n_athletes=N, seed=7)))
    assert not table.equals(generate_athletes(GeneratorConfig(n_athletes=N, seed=8)))


def test_realistic_values(table: pa.Table) -> None:
    df = table.to_pandas()
    ok, _ = cleaning.clean(df)
    assert 0.65 < (ok["gender"] == "Male").mean() < 0.75
    men, women = ok[ok["gender"] == "Male"], ok[ok["gender"] == "Female"]
    assert 370 < men["deadlift"].median() < 430
    assert 0.5 < women["deadlift"].median() / men["deadlift"].median() < 0.7
    assert women["weight"].median() < men["weight"].median()
    # Heavier athletes lift more; most athletes did not log a workout.
    assert men["deadlift"].corr(men["weight"]) > 0.25
    assert df["helen"].isna().mean() > 0.5
    assert (df["howlong"] == "Decline to answer|").any()
    assert df["experience"].str.startswith("I began CrossFit with a coach").mean() > 0.4


def test_junk_share_is_deterministic_and_caught_by_the_value_rules(table: pa.Table) -> None:
    assert junk_count(N) == 60
    _, report = cleaning.clean(table.to_pandas())
    value_rules = {r.name for r in cleaning.RULES} - {"survey"}
    assert sum(report["removed"][name] for name in value_rules) == junk_count(N)
    df = table.to_pandas()
    assert (df["weight"] == 2000).sum() == pytest.approx(junk_count(N) / len(JUNK_KINDS), abs=1)
    assert (df["gender"] == "--").sum() >= 1


def test_read_csv_round_trip_and_extra_columns(table: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "athletes.csv"
    pv.write_csv(table.slice(0, 50).append_column("extra", pa.array(["x"] * 50)), path)
    read = read_athletes_csv(path)
    assert read.schema == schema.raw_schema()
    assert read.equals(table.slice(0, 50))


def test_read_csv_errors_name_columns_and_samples(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    header = [c for c in schema.RAW_COLUMNS if c != "snatch"]
    row = ["abc" if c == "weight" else "1" for c in header]
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    with pytest.raises(AthletesContractError) as err:
        read_athletes_csv(path)
    assert err.value.missing_columns == ("snatch",)
    assert err.value.bad_values == {"weight": 1}
    assert err.value.samples["weight"] == [(1, "abc")]


def test_a_header_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "athletes.csv"
    path.write_text(",".join(schema.RAW_COLUMNS) + "\n")
    with pytest.raises(AthletesContractError, match="no rows"):
        read_athletes_csv(path)


def test_cleaning_that_leaves_nothing_names_the_rules_and_counts(table: pa.Table) -> None:
    frame = table.slice(0, 3).to_pandas()
    frame["age"] = [12.0, 15.0, 30.0]
    frame["weight"] = [150.0, 150.0, 2000.0]
    out, report = cleaning.clean(frame)
    assert out.empty
    message = cleaning.nothing_left(report)
    assert message is not None and "removed all 3 rows" in message
    assert "weight (weight is below 1500 lb): 1 removed" in message
    assert "age (age is at least 18): 2 removed" in message
    assert "height" not in message
    _, kept = cleaning.clean(table.to_pandas())
    assert cleaning.nothing_left(kept) is None
