"""The housing use case's identity (:data:`CASE`) and data contracts.

``raw``: one row per home sale, keyed by ``sale_id``. ``price`` (USD) is the target; everything
else is known when a home is listed, so a buyer-facing API can send it. Categorical columns are
text; the encoders (:mod:`mlops_assets.housing.encoding`) turn them into numbers fitted on the
training period only.

Pure definitions, no Dagster; the Arrow schema is built on first use, so the code location does not
pay for pyarrow at load.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from mlops_assets.core.use_case import UseCase

if TYPE_CHECKING:
    import pyarrow as pa

# Its asset keys (`housing/<name>`), group, op names and the one model it registers.
CASE = UseCase("housing", model_name="housing_price")
USE_CASE = CASE.name

KEY = "sale_id"
DATE = "sale_date"
TARGET = "price"
CATEGORICAL = ("city", "zipcode", "property_type")
NUMERIC = ("beds", "baths", "living_area_sqft", "lot_sqft", "year_built", "condition")
# What a request to the model carries: every column a seller knows, nothing about the price.
FEATURE_INPUTS = (DATE, *CATEGORICAL, *NUMERIC)
RAW_COLUMNS = (KEY, *FEATURE_INPUTS, TARGET)

PROPERTY_TYPES = ("single_family", "condo", "townhouse", "multi_family")
FIRST_YEAR, LAST_YEAR = 2012, 2023

# Plausibility bounds of the contract (judged by the blocking checks of `raw`, see
# :mod:`mlops_assets.housing.checks`; both can be set in the asset's config).
#: The highest plausible sale price (USD). The dearest home sale on record is about 240 M USD
#: (New York, 2019): a billion refuses no real sale, and refuses a price with extra zeros or in
#: the wrong unit (1e12). A user whose prices are in a currency of smaller unit raises it.
MAX_PRICE = 1_000_000_000.0
#: A sale may be dated at most this many days after today (UTC, read when the check runs): a sale
#: recorded today where the day has already begun (time zones ahead of UTC) is not refused.
FUTURE_SLACK_DAYS = 1


@cache
def raw_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            (KEY, pa.string()),
            (DATE, pa.date32()),
            ("city", pa.string()),
            ("zipcode", pa.string()),
            ("property_type", pa.string()),
            ("beds", pa.int64()),
            ("baths", pa.float64()),
            ("living_area_sqft", pa.float64()),
            ("lot_sqft", pa.float64()),
            ("year_built", pa.int64()),
            ("condition", pa.int64()),
            (TARGET, pa.float64()),
        ]
    )
