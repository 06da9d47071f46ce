"""Where the housing use case's raw data comes from: a synthetic generator, or the user's file.

**The generator** (:func:`generate_sales`) plays home sales from 2012-01-01 to 2023-12-31 in a fixed
world of nine cities (see :data:`CITIES`): a few expensive coastal ones, a few mid-priced, two
cheap, and one small town with only a handful of sales a year. Each city has its own zipcodes, each
with its own premium, its mix of property types (condos are common where land is dear), its housing
stock (old in Boston, new in Phoenix) and its lot sizes. A sale's price is

    city level x zipcode premium x (living area / 1,800)^0.8 x type x condition x age
    x lot x market trend x lognormal noise (12%)

rounded to the nearest 1,000 USD. The market trend is the same everywhere: about +4%/yr from 2012
to 2019, a boom of about +25% from mid-2020 to mid-2022, then flat to slightly down to the end
of 2023. Sales are spread
evenly over the years with more of them in spring and summer. Rare categories are built in (the
small town, and one zipcode in each of three cities, with fewer than 30 sales in the default 30k),
so that downstream encoders must handle rare and unseen values. Everything is drawn from one
``numpy`` stream seeded from ``GeneratorConfig.seed`` alone: the same config gives the same bytes.

**The file source** (:func:`read_sales_csv`) reads a user's CSV (or parquet) file with the columns
of :func:`mlops_assets.housing.schema.raw_schema` and coerces it to that schema, failing with a
:class:`HousingContractError` that names the file, the column, the count and a few sample rows
when a column is missing, a value cannot be converted or there is no row at all (the rules of
:mod:`mlops_assets.core.contracts`; only the zipcode's are the use case's own). Nulls, duplicates and out-of-range values
are not judged here: the downstream checks report them.

Pure code: no Dagster import; numpy, pandas and pyarrow are imported inside the functions, so that
importing this module (which the code location does at load) costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.core import contracts, synthetic
from mlops_assets.housing import schema

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# --------------------------------------------------------------------------------------------------
# The world the generator plays in
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """A city of the synthetic world.

    ``level`` is the price (USD, January 2012) of a typical home: a 1,800 sqft single-family house
    in average condition (3), about 20 years old, in a zipcode of premium 1. ``share`` is the
    city's weight in the sales volume; ``zipcodes`` maps each zipcode to ``(weight within the city,
    price premium)``; ``type_mix`` weighs :data:`schema.PROPERTY_TYPES`; ``built`` is the mean
    year of construction of its houses (condos are newer); ``lot_scale`` scales lot sizes.
    """

    name: str
    level: float
    share: float
    zipcodes: dict[str, tuple[float, float]]
    type_mix: tuple[float, float, float, float]
    built: float
    lot_scale: float


#: The cities, in a fixed order (the generator indexes them). Shares are weights, not fractions.
CITIES: tuple[City, ...] = (
    City("San Francisco", 1_100_000, 0.12, {
        "94110": (1.2, 1.00), "94114": (0.9, 1.20), "94117": (0.9, 1.10),
        "94121": (0.8, 0.95), "94123": (0.7, 1.35), "94124": (0.8, 0.72),
    }, (0.30, 0.45, 0.15, 0.10), 1942, 0.45),
    City("Boston", 650_000, 0.12, {
        "02108": (0.6, 1.35), "02116": (1.0, 1.30), "02127": (1.0, 1.05), "02130": (1.2, 1.00),
        "02124": (1.2, 0.78), "02136": (0.9, 0.82), "02199": (0.025, 1.60),
    }, (0.30, 0.40, 0.10, 0.20), 1932, 0.60),
    City("Seattle", 520_000, 0.13, {
        "98103": (1.2, 1.05), "98105": (0.9, 1.15), "98112": (0.6, 1.40), "98118": (1.0, 0.80),
        "98126": (0.8, 0.85), "98199": (0.6, 1.15), "98134": (0.015, 0.90),
    }, (0.50, 0.30, 0.15, 0.05), 1965, 0.80),
    City("Denver", 330_000, 0.14, {
        "80202": (0.6, 1.15), "80204": (0.8, 0.95), "80205": (1.0, 1.00), "80206": (0.7, 1.30),
        "80211": (0.9, 1.10), "80219": (1.1, 0.78), "80220": (0.9, 1.05), "80249": (0.7, 0.82),
    }, (0.60, 0.20, 0.15, 0.05), 1970, 1.00),
    City("Austin", 300_000, 0.15, {
        "78701": (0.5, 1.30), "78704": (1.0, 1.25), "78745": (1.2, 0.90), "78748": (0.9, 0.85),
        "78753": (1.0, 0.75), "78759": (0.9, 1.05),
    }, (0.65, 0.15, 0.15, 0.05), 1992, 1.20),
    City("Phoenix", 210_000, 0.16, {
        "85003": (0.5, 1.10), "85016": (0.9, 1.25), "85018": (0.7, 1.40), "85032": (1.0, 0.95),
        "85033": (1.2, 0.72), "85041": (1.1, 0.80), "85044": (0.9, 1.05),
    }, (0.75, 0.10, 0.12, 0.03), 1988, 1.10),
    City("Columbus", 160_000, 0.10, {
        "43201": (0.9, 1.15), "43206": (0.8, 1.10), "43211": (0.9, 0.75), "43214": (0.9, 1.05),
        "43229": (1.0, 0.88),
    }, (0.75, 0.08, 0.10, 0.07), 1963, 1.20),
    City("Cleveland", 120_000, 0.08, {
        "44102": (1.0, 0.92), "44105": (0.9, 0.75), "44109": (1.0, 0.88), "44113": (0.6, 1.35),
        "44135": (0.8, 0.98), "44127": (0.02, 0.70),
    }, (0.75, 0.05, 0.05, 0.15), 1945, 1.00),
    # The small town: ~20 sales in the default 30k, a category every encoder must survive.
    City("Provincetown", 700_000, 0.0007, {"02657": (1.0, 1.00)},
         (0.50, 0.50, 0.00, 0.00), 1940, 1.30),
)  # fmt: skip

# Per property type (schema order: single_family, condo, townhouse, multi_family): median living
# area (sqft), price factor, median lot (sqft, before the city's scale; condos have none).
_TYPE_AREA = (2_000.0, 1_050.0, 1_550.0, 2_700.0)
_TYPE_FACTOR = (1.00, 0.85, 0.92, 0.95)
_TYPE_LOT = (6_500.0, float("nan"), 2_000.0, 5_000.0)
_TYPE_BUILT_SHIFT = (0.0, 25.0, 15.0, -10.0)  # condos and townhouses are newer stock
_CONDO = schema.PROPERTY_TYPES.index("condo")
_AREA_SIGMA = 0.35
_AREA_RANGE = (350.0, 8_000.0)
_AREA_ELASTICITY = 0.8
_LOT_SIGMA = 0.5
_LOT_ELASTICITY = 0.06
_BUILT_SIGMA = 25.0
_OLDEST = 1900
# Condition 1..5: price factors, and the thresholds on a latent N(0, 1) (older homes score lower)
# that give roughly 4/14/50/24/8 % of sales.
_CONDITION_FACTOR = (0.75, 0.88, 1.00, 1.07, 1.15)
_CONDITION_CUTS = (-1.75, -1.0, 0.35, 1.4)
_CONDITION_AGE_SLOPE = 0.012  # per year away from 40 years old
_NOISE_SIGMA = 0.12
# More sales in spring and summer (January .. December).
_MONTH_WEIGHTS = (0.60, 0.65, 0.90, 1.10, 1.25, 1.30, 1.25, 1.15, 1.00, 0.90, 0.75, 0.70)
# The market: log-linear between knots (date, index); the index is 1 in January 2012.
_TREND_KNOTS = (
    ("2012-01-01", 1.0),
    ("2020-01-01", 1.04**8),  # steady ~4%/yr appreciation
    ("2020-07-01", 1.04**8 * 1.02),  # a pause in the spring of 2020
    ("2022-06-30", 1.04**8 * 1.02 * 1.23),  # the boom: ~+25% in all
    ("2023-12-31", 1.04**8 * 1.02 * 1.23 * 0.97),  # flat to slightly down
)
_REFERENCE_AREA = 1_800.0
_ID_DIGITS = 7
_STREAM = 0x40A5E  # SeedSequence salt of the generator's stream
#: The most sales one table can hold: ids carry 7 digits.
MAX_SALES = 10**_ID_DIGITS - 1


@dataclass(frozen=True)
class GeneratorConfig:
    """How many sales to generate and the seed that fixes every draw.

    ``n_sales`` is exact (at most 9,999,999: ids carry 7 digits); ``seed`` is any integer.
    """

    n_sales: int = 30_000
    seed: int = 42

    def __post_init__(self) -> None:
        # The asset's run config is validated by Dagster; this is for configs built by hand.
        synthetic.check_count("n_sales", self.n_sales, high=MAX_SALES)
        synthetic.check_seed(self.seed)


def generate_sales(config: GeneratorConfig | None = None) -> pa.Table:
    """``config.n_sales`` home sales between 2012-01-01 and 2023-12-31.

    The table follows ``schema.raw_schema()`` exactly and is sorted by ``(sale_date, sale_id)``;
    ``sale_id`` is ``S`` and 7 digits, numbered from ``S0000001`` in date order. Condos have a null
    ``lot_sqft``; no other value is null. The same config always gives the same table.
    """
    import numpy as np
    import pyarrow as pa

    config = config or GeneratorConfig()
    n = config.n_sales
    rng = synthetic.stream(config.seed, _STREAM)
    # Every draw below happens whatever the values, so the stream stays aligned.

    # When: a day of the period, weighted by its month.
    days = np.arange(
        np.datetime64(f"{schema.FIRST_YEAR}-01-01"),
        np.datetime64(f"{schema.LAST_YEAR + 1}-01-01"),
    )
    month = days.astype("datetime64[M]").astype(np.int64) % 12
    day = days[synthetic.draw(rng, np.asarray(_MONTH_WEIGHTS)[month], n)]
    sale_year = day.astype("datetime64[Y]").astype(np.int64) + 1970

    # Where: a city, then one of its zipcodes.
    city = synthetic.draw(rng, np.array([c.share for c in CITIES]), n)
    zip_u = rng.random(n)
    zip_code = np.empty(n, dtype=np.int64)
    premium = np.empty(n)
    zip_names: list[str] = []
    for k, c in enumerate(CITIES):
        weights = np.array([w for w, _ in c.zipcodes.values()])
        at = city == k
        pick = synthetic.draw_at(weights, zip_u[at])
        zip_code[at] = len(zip_names) + pick
        premium[at] = np.array([p for _, p in c.zipcodes.values()])[pick]
        zip_names += list(c.zipcodes)

    # What: the property type (by city), its size, rooms, lot, age and condition.
    mix = np.array([c.type_mix for c in CITIES])
    ptype = synthetic.draw_rows(rng, mix[city])
    area = np.asarray(_TYPE_AREA)[ptype] * np.exp(_AREA_SIGMA * rng.standard_normal(n))
    area = np.round(np.clip(area, *_AREA_RANGE), -1)
    beds = np.clip(np.round(0.5 + area / 700.0 + 0.6 * rng.standard_normal(n)), 1, 6).astype(
        np.int64
    )
    baths = np.clip(np.round(2 * (0.55 * beds + 0.35 + 0.4 * rng.standard_normal(n))) / 2, 1, 4.5)
    lot_scale = np.array([c.lot_scale for c in CITIES])[city]
    lot = np.asarray(_TYPE_LOT)[ptype] * lot_scale * np.exp(_LOT_SIGMA * rng.standard_normal(n))
    lot = np.round(np.maximum(lot, 500.0), -1)  # NaN (condos) stays NaN
    built = (
        np.array([c.built for c in CITIES])[city]
        + np.asarray(_TYPE_BUILT_SHIFT)[ptype]
        + _BUILT_SIGMA * rng.standard_normal(n)
    )
    # A house built "in the future" is reflected back into the past, so new builds do not pile up
    # on the sale year.
    age = np.clip(np.abs(sale_year - np.round(built)), 0, sale_year - _OLDEST)
    year_built = (sale_year - age).astype(np.int64)
    latent = rng.standard_normal(n) - _CONDITION_AGE_SLOPE * (age - 40.0)
    condition = (np.searchsorted(np.asarray(_CONDITION_CUTS), latent) + 1).astype(np.int64)

    # How much.
    level = np.array([c.level for c in CITIES])[city]
    lot_effect = np.where(
        ptype == _CONDO,
        1.0,
        (np.nan_to_num(lot, nan=1.0) / (6_500.0 * lot_scale)) ** _LOT_ELASTICITY,
    )
    price = (
        level
        * premium
        * (area / _REFERENCE_AREA) ** _AREA_ELASTICITY
        * np.asarray(_TYPE_FACTOR)[ptype]
        * np.asarray(_CONDITION_FACTOR)[condition - 1]
        * _age_effect(age)
        * lot_effect
        * market_index(day)
        * np.exp(_NOISE_SIGMA * rng.standard_normal(n))
    )
    price = np.maximum(np.round(price, -3), 1_000.0)

    # Sorted by date, ties in a random order; ids are then numbered in that order.
    tie = rng.permutation(n)
    order = np.lexsort((tie, day))
    columns: dict[str, Any] = {
        schema.KEY: pa.array([f"S{i:0{_ID_DIGITS}d}" for i in range(1, n + 1)], pa.string()),
        schema.DATE: pa.array(day[order].astype(np.int64).astype(np.int32), pa.date32()),
        "city": _labels_of([c.name for c in CITIES], city[order]),
        "zipcode": _labels_of(zip_names, zip_code[order]),
        "property_type": _labels_of(schema.PROPERTY_TYPES, ptype[order]),
        "beds": pa.array(beds[order], pa.int64()),
        "baths": pa.array(baths[order], pa.float64()),
        "living_area_sqft": pa.array(area[order], pa.float64()),
        "lot_sqft": pa.array(lot[order], pa.float64(), from_pandas=True),  # NaN -> null
        "year_built": pa.array(year_built[order], pa.int64()),
        "condition": pa.array(condition[order], pa.int64()),
        schema.TARGET: pa.array(price[order], pa.float64()),
    }
    raw = schema.raw_schema()
    return pa.Table.from_arrays([columns[f.name] for f in raw], schema=raw)


def market_index(day: np.ndarray) -> np.ndarray:
    """The market's price index on each ``datetime64[D]`` day (1.0 on 2012-01-01)."""
    import numpy as np

    knots = np.array([np.datetime64(d) for d, _ in _TREND_KNOTS]).astype(np.int64)
    log_index = np.log([v for _, v in _TREND_KNOTS])
    return np.exp(np.interp(np.asarray(day, "datetime64[D]").astype(np.int64), knots, log_index))


def _age_effect(age: np.ndarray) -> np.ndarray:
    import numpy as np

    # New homes sell at a premium that fades over ~20 years; very old (historic) homes recover a bit.
    return 0.85 + 0.20 * np.exp(-age / 20.0) + 0.05 * (age >= 90)


def _labels_of(values: Any, codes: np.ndarray) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    indices = pa.array(codes.astype(np.int32, copy=False))
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(values), pa.string())).cast(
        pa.string()
    )


# --------------------------------------------------------------------------------------------------
# The file source: the user's own data
# --------------------------------------------------------------------------------------------------

FILE_FORMATS = (".csv", ".parquet")

_ZIP_DIGITS = 5


class HousingContractError(contracts.ContractError):
    """A user's file cannot be read as the raw housing contract.

    The message names the file and every problem: the missing columns, and for each column with
    values that cannot be converted, how many there are and up to five ``(row, text)`` samples
    (rows count from 1, the header excluded). The same facts are attributes: ``path``,
    ``missing_columns``, ``bad_values`` (column -> count) and ``samples`` (column -> pairs); see
    :class:`mlops_assets.core.contracts.ContractError`.
    """


@dataclass(frozen=True)
class ReadResult:
    """A user's file coerced to ``schema.raw_schema()``: every row, in file order.

    ``extra_columns`` are the file's columns that are not in the contract, in file order: dropped
    from ``table`` and listed so the caller can say so.
    """

    table: pa.Table
    extra_columns: list[str] = field(default_factory=list)


def read_sales_csv(path: str | Path) -> ReadResult:
    """Read a user's home sales (``.csv`` or ``.parquet``) and coerce them to the raw contract.

    Column names must match the contract exactly; their order is free; extra columns are dropped
    and reported. A CSV is read as text, then each column converted: ``zipcode`` and the other
    text columns stay text as written (``"02139"`` keeps its zero), dates must be ISO
    (``2021-06-30``, a time of day is ignored), integers may be written ``3`` or ``3.0``. Empty
    cells (and ``NA``, ``NaN``, ``null``... in number and date columns) become nulls; whether a
    column may hold nulls is not judged here. In a parquet file, typed columns are cast (an
    integer ``zipcode`` is zero-padded back to 5 digits) and text columns follow the CSV rules.
    The rules are those of :mod:`mlops_assets.core.contracts`.

    Raises :class:`FileNotFoundError` when there is no such file, and :class:`HousingContractError`
    when the suffix is neither, the file cannot be parsed, a column is missing, values cannot
    be converted, or the file holds no sales (a header only).
    """
    read = contracts.read_user_file(
        Path(path),
        schema.raw_schema(),
        rules={"zipcode": contracts.ColumnRule(_to_zipcode, ("a zipcode", "zipcodes"))},
        error=HousingContractError,
    )
    if read.table.num_rows == 0:
        # Published, an empty table would fail every step downstream with a library's error
        # (a split with no rows, an encoder fitted on nothing): refuse it here, naming the file.
        raise HousingContractError(str(path), ["the file has a header but no sales (no data rows)"])
    return ReadResult(read.table, list(read.extra_columns))


def _to_zipcode(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """A zipcode as text; one stored as a number has lost its leading zeros: pad it back."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        return contracts.to_text(arr, target)
    number = contracts.nan_as_null(arr)
    if pa.types.is_floating(arr.type):
        ok = pc.and_(pc.is_finite(number), pc.equal(pc.floor(number), number))
        ok = pc.and_(ok, pc.less(pc.abs(number), 2.0**53))
    else:
        ok = pc.is_valid(number)
    whole = contracts.keep(number, ok).cast(pa.int64(), safe=False)
    ok = pc.and_(ok, pc.greater_equal(whole, 0))
    padded = pc.utf8_lpad(contracts.keep(whole, ok).cast(target), _ZIP_DIGITS, "0")
    return padded, contracts.failed(number, ok)
