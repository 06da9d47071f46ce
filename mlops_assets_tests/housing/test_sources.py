"""The housing raw sources: the synthetic generator and the user's CSV / parquet file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.housing import schema, sources
from mlops_assets.housing.sources import GeneratorConfig, HousingContractError, ReadResult


@pytest.fixture(scope="module")
def sales() -> pa.Table:
    return sources.generate_sales(GeneratorConfig())


@pytest.fixture(scope="module")
def frame(sales: pa.Table) -> pd.DataFrame:
    df = sales.to_pandas()
    df["year"] = pd.to_datetime(df["sale_date"]).dt.year
    return df


@pytest.fixture(scope="module")
def small() -> pa.Table:
    return sources.generate_sales(GeneratorConfig(n_sales=3_000, seed=7))


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------


def test_schema_is_the_raw_contract_exactly(sales: pa.Table) -> None:
    assert sales.schema.equals(schema.raw_schema(), check_metadata=True)
    assert sales.num_rows == 30_000
    assert tuple(sales.column_names) == schema.RAW_COLUMNS


def test_same_config_same_bytes_and_other_seed_other_data(sales: pa.Table) -> None:
    again = sources.generate_sales(GeneratorConfig())
    assert again.equals(sales)
    other = sources.generate_sales(GeneratorConfig(seed=43))
    assert not other.equals(sales)
    assert other.schema.equals(sales.schema)


def test_ids_are_stable_unique_and_sorted_with_dates(sales: pa.Table) -> None:
    ids = sales[schema.KEY].to_pylist()
    assert ids[:3] == ["S0000001", "S0000002", "S0000003"]
    assert ids[-1] == "S0030000"
    assert len(set(ids)) == len(ids)
    keys = list(zip(sales[schema.DATE].to_pylist(), ids, strict=True))
    assert keys == sorted(keys)


def test_only_condo_lots_are_null(sales: pa.Table) -> None:
    nulls = {c: sales[c].null_count for c in sales.column_names}
    condo = pc.equal(sales["property_type"], "condo")
    assert nulls["lot_sqft"] == pc.sum(condo).as_py() > 0
    assert sales.filter(condo)["lot_sqft"].null_count == sales.filter(condo).num_rows
    assert sales.filter(pc.invert(condo))["lot_sqft"].null_count == 0
    assert all(n == 0 for c, n in nulls.items() if c != "lot_sqft"), nulls


def test_every_year_and_plausible_values(frame: pd.DataFrame) -> None:
    years = frame["year"].value_counts().sort_index()
    assert list(years.index) == list(range(schema.FIRST_YEAR, schema.LAST_YEAR + 1))
    assert frame["sale_date"].min() >= date(2012, 1, 1)
    assert frame["sale_date"].max() <= date(2023, 12, 31)
    # Roughly uniform over the years: each year holds 1/12 of the sales, give or take 10%.
    assert years.between(0.9 * 2_500, 1.1 * 2_500).all(), years.to_dict()
    # Mild seasonality: more sales in May-July than in December-February.
    month = pd.to_datetime(frame["sale_date"]).dt.month
    assert month.isin([5, 6, 7]).sum() > 1.5 * month.isin([12, 1, 2]).sum()

    price = frame["price"]
    assert (price > 0).all()
    assert price.min() >= 20_000 and price.max() <= 10_000_000
    assert price.quantile(0.01) >= 50_000 and price.quantile(0.99) <= 5_000_000
    assert 250_000 <= price.median() <= 500_000
    assert (price % 1_000 == 0).all()

    assert set(frame["property_type"]) == set(schema.PROPERTY_TYPES)
    assert frame["beds"].between(1, 6).all() and set(frame["beds"]) == set(range(1, 7))
    assert frame["baths"].between(1, 4.5).all()
    assert ((frame["baths"] * 2) % 1 == 0).all()
    assert frame["condition"].between(1, 5).all() and set(frame["condition"]) == set(range(1, 6))
    assert frame["year_built"].between(1900, 2023).all()
    assert (frame["year_built"] <= frame["year"]).all()
    assert 1_500 <= frame["living_area_sqft"].median() <= 2_100
    assert frame["zipcode"].str.fullmatch(r"\d{5}").all()
    assert frame["zipcode"].str.startswith("0").any()  # Boston: leading zeros matter


def test_rooms_follow_living_area(frame: pd.DataFrame) -> None:
    ranks = frame[["beds", "baths", "living_area_sqft"]].rank()
    assert ranks["beds"].corr(ranks["living_area_sqft"]) > 0.7
    assert ranks["baths"].corr(ranks["beds"]) > 0.7


def test_price_rises_with_living_area_within_each_city(frame: pd.DataFrame) -> None:
    big = frame.groupby("city").filter(lambda g: len(g) >= 1_000)
    assert big["city"].nunique() == 8
    for city, g in big.groupby("city"):
        rho = g["price"].rank().corr(g["living_area_sqft"].rank())
        assert rho > 0.5, (city, rho)
        q1, q3 = g["living_area_sqft"].quantile([0.25, 0.75])
        ratio = g.loc[g.living_area_sqft >= q3, "price"].median() / (
            g.loc[g.living_area_sqft <= q1, "price"].median()
        )
        assert ratio > 1.5, (city, ratio)


def test_cities_have_different_price_levels(frame: pd.DataFrame) -> None:
    median = frame.groupby("city")["price"].median()
    assert median["San Francisco"] > 2 * median["Denver"] > 4 * median["Cleveland"]
    assert median["San Francisco"] > median["Boston"] > median["Phoenix"] > median["Columbus"]
    # Zipcodes within a city carry their own premium.
    boston = frame[frame["city"] == "Boston"]
    by_zip = (boston["price"] / boston["living_area_sqft"]).groupby(boston["zipcode"]).median()
    assert by_zip["02116"] > 1.3 * by_zip["02124"]


def test_condos_are_more_common_in_expensive_cities(frame: pd.DataFrame) -> None:
    share = (frame["property_type"] == "condo").groupby(frame["city"]).mean()
    assert share["San Francisco"] > 0.35 and share["Boston"] > 0.3
    assert share["Phoenix"] < 0.15 and share["Cleveland"] < 0.1


def test_the_market_booms_in_2020_2022(frame: pd.DataFrame) -> None:
    per_sqft = (frame["price"] / frame["living_area_sqft"]).groupby(frame["year"]).median()
    assert per_sqft[2022] > 1.15 * per_sqft[2019]
    # Steady appreciation before: ~4%/yr over 2012-2019 (compounded ~1.3x).
    assert 1.2 < per_sqft[2019] / per_sqft[2012] < 1.5
    # 2023 is flat to slightly down.
    assert 0.93 < per_sqft[2023] / per_sqft[2022] < 1.05
    index = sources.market_index(np.array(["2012-01-01", "2019-07-01", "2022-07-01"], "M8[D]"))
    assert index[0] == pytest.approx(1.0)
    assert index[2] / index[1] > 1.2


def test_rare_categories_exist(frame: pd.DataFrame) -> None:
    city_counts = frame["city"].value_counts()
    zip_counts = frame["zipcode"].value_counts()
    assert (city_counts < 30).sum() >= 1 and city_counts.min() >= 1
    assert (zip_counts < 30).sum() >= 3
    # Every configured zipcode is present, each in exactly one city.
    assert set(zip_counts.index) == {z for c in sources.CITIES for z in c.zipcodes}
    assert (frame.groupby("zipcode")["city"].nunique() == 1).all()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=-(2**63), max_value=2**64 - 1),
    n_sales=st.integers(min_value=1, max_value=400),
)
def test_any_seed_gives_the_contract_sorted(seed: int, n_sales: int) -> None:
    table = sources.generate_sales(GeneratorConfig(n_sales=n_sales, seed=seed))
    assert table.schema.equals(schema.raw_schema())
    assert table.num_rows == n_sales
    ids = table[schema.KEY].to_pylist()
    assert ids == [f"S{i:07d}" for i in range(1, n_sales + 1)]
    days = table[schema.DATE].to_pylist()
    assert days == sorted(days)
    assert date(2012, 1, 1) <= days[0] and days[-1] <= date(2023, 12, 31)
    condo = pc.equal(table["property_type"], "condo")
    assert pc.all(pc.equal(pc.is_null(table["lot_sqft"]), condo)).as_py()
    assert pc.min(table["price"]).as_py() > 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_sales": 0}, ValueError),
        ({"n_sales": 10_000_000}, ValueError),
        ({"n_sales": 1.5}, TypeError),
        ({"seed": "42"}, TypeError),
        ({"seed": True}, TypeError),
    ],
)
def test_config_is_validated(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        GeneratorConfig(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# The file source
# --------------------------------------------------------------------------------------------------


def test_csv_round_trip_keeps_leading_zeros(sales: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    sales.to_pandas().to_csv(path, index=False)
    assert ",02116," in path.read_text()  # pandas writes the zeros; the reader must keep them
    result = sources.read_sales_csv(path)
    assert isinstance(result, ReadResult)
    assert result.extra_columns == []
    assert result.table.schema.equals(schema.raw_schema())
    assert result.table.equals(sales)
    assert "02116" in set(result.table["zipcode"].to_pylist())
    # Spreadsheets write a byte-order mark: it is not part of the first column's name.
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert sources.read_sales_csv(bom).table.equals(sales)


def test_column_order_is_free_and_extra_columns_are_reported(
    small: pa.Table, tmp_path: Path
) -> None:
    df = small.to_pandas()
    df.insert(0, "listing_url", "https://example.com")
    df["agent"] = "A. Gent"
    df = df[["agent", *reversed(schema.RAW_COLUMNS), "listing_url"]]
    path = tmp_path / "shuffled.csv"
    df.to_csv(path, index=False)
    result = sources.read_sales_csv(str(path))
    assert result.extra_columns == ["agent", "listing_url"]
    assert result.table.equals(small)


def test_missing_columns_are_named_with_the_file(small: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "no_price.csv"
    small.to_pandas().drop(columns=["price", "zipcode"]).to_csv(path, index=False)
    with pytest.raises(HousingContractError) as info:
        sources.read_sales_csv(path)
    err = info.value
    assert err.missing_columns == ("zipcode", "price")
    assert str(path) in str(err)
    assert "'price'" in str(err) and "'zipcode'" in str(err)
    assert isinstance(err, ValueError)


def test_bad_values_name_column_count_and_samples(small: pa.Table, tmp_path: Path) -> None:
    df = small.to_pandas().astype({"beds": object, "sale_date": object})
    for i in (2, 10, 11, 40, 41, 42, 500):
        df.loc[i, "beds"] = "abc" if i != 500 else "3 beds"
    df.loc[7, "sale_date"] = "2021-02-30"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(HousingContractError) as info:
        sources.read_sales_csv(path)
    err = info.value
    assert err.bad_values == {"sale_date": 1, "beds": 7}
    # Rows count from 1 (the header excluded): row i + 1 is data frame index i.
    assert err.samples["beds"] == [(3, "abc"), (11, "abc"), (12, "abc"), (41, "abc"), (42, "abc")]
    assert err.samples["sale_date"] == [(8, "2021-02-30")]
    message = str(err)
    assert str(path) in message
    assert "column 'beds' has 7 values that are not integers" in message
    assert "row 3 'abc'" in message and "'3 beds'" not in message  # 5 samples at most
    assert "column 'sale_date' has 1 value" in message and "row 8 '2021-02-30'" in message
    assert err.missing_columns == ()


def test_nulls_and_lenient_spellings_are_not_judged_here(small: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "nulls.csv"
    lines = [",".join(schema.RAW_COLUMNS)]
    lines.append("S1,2015-06-01,Boston,02139,condo,2,1.5,900,,1925,3,450000")
    lines.append("S2,2015-06-02T00:00:00,Boston,02139,single_family,3.0,+2,1800.5,NA,,4,1e6")
    lines.append(",2015-06-03,,,,,,,,,,")
    path.write_text("\n".join(lines) + "\n")
    table = sources.read_sales_csv(path).table
    assert table.schema.equals(schema.raw_schema())
    rows = table.to_pylist()
    assert rows[0]["zipcode"] == "02139" and rows[0]["lot_sqft"] is None
    assert rows[1]["sale_date"] == date(2015, 6, 2)
    assert rows[1]["beds"] == 3 and rows[1]["baths"] == 2.0 and rows[1]["price"] == 1e6
    assert rows[1]["lot_sqft"] is None and rows[1]["year_built"] is None
    assert rows[2]["sale_id"] is None and rows[2]["zipcode"] is None and rows[2]["price"] is None


def test_parquet_follows_the_same_rules(small: pa.Table, tmp_path: Path) -> None:
    # Typed columns, extra column, other order, a numeric zipcode that lost its zeros.
    df = small.to_pandas()
    df["zipcode"] = df["zipcode"].astype(int)
    df["sale_date"] = pd.to_datetime(df["sale_date"])
    df["beds"] = df["beds"].astype("int32")
    df["source"] = "mls"
    path = tmp_path / "sales.parquet"
    df[list(reversed(df.columns))].to_parquet(path, index=False)
    result = sources.read_sales_csv(path)
    assert result.extra_columns == ["source"]
    assert result.table.equals(small)

    text = tmp_path / "text.parquet"
    pq.write_table(small.drop_columns(["price"]).cast(
        pa.schema([pa.field(f.name, pa.string()) for f in small.schema if f.name != "price"])
    ), text)  # fmt: skip
    with pytest.raises(HousingContractError, match="missing column 'price'"):
        sources.read_sales_csv(text)

    # A float zipcode column (pandas with a missing value): NaN is null, fractions are bad.
    floats = [2139.0, float("nan"), 2139.5] + [94110.0] * (small.num_rows - 3)
    pq.write_table(small.set_column(3, "zipcode", pa.array(floats)), tmp_path / "zip.parquet")
    with pytest.raises(HousingContractError) as info:
        sources.read_sales_csv(tmp_path / "zip.parquet")
    assert info.value.samples == {"zipcode": [(3, "2139.5")]}
    floats[2] = 2139.0
    pq.write_table(small.set_column(3, "zipcode", pa.array(floats)), tmp_path / "zip.parquet")
    zips = sources.read_sales_csv(tmp_path / "zip.parquet").table["zipcode"].to_pylist()
    assert zips[:4] == ["02139", None, "02139", "94110"]

    bad = small.set_column(5, "beds", pa.array(["two"] * small.num_rows))
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(HousingContractError) as info:
        sources.read_sales_csv(tmp_path / "bad.parquet")
    assert info.value.bad_values == {"beds": small.num_rows}
    assert info.value.samples["beds"][:2] == [(1, "two"), (2, "two")]


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sources.read_sales_csv(tmp_path / "nope.csv")
    (tmp_path / "sales.xlsx").write_bytes(b"PK")
    with pytest.raises(HousingContractError, match="unsupported file type"):
        sources.read_sales_csv(tmp_path / "sales.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(HousingContractError, match="empty"):
        sources.read_sales_csv(tmp_path / "empty.csv")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2,3\n")
    with pytest.raises(HousingContractError, match="not a readable CSV"):
        sources.read_sales_csv(tmp_path / "ragged.csv")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(HousingContractError, match="not a readable parquet"):
        sources.read_sales_csv(tmp_path / "junk.parquet")


def test_a_file_with_a_header_and_no_sales_is_refused(small: pa.Table, tmp_path: Path) -> None:
    csv = tmp_path / "header.csv"
    csv.write_text(",".join(schema.RAW_COLUMNS) + "\n")
    parquet = tmp_path / "none.parquet"
    pq.write_table(small.slice(0, 0), parquet)
    for path in (csv, parquet):
        with pytest.raises(HousingContractError) as info:
            sources.read_sales_csv(path)
        assert str(info.value) == f"{path}: the file has a header but no sales (no data rows)"
