"""Blocking checks on the housing sales: what the raw table must satisfy before it is published
and any split, encoder or model is built from it (judged on the staged table: see
:mod:`mlops_assets.core.publishing`). The chronological audit of the splits is declared beside
the `splits` asset, whose rule it judges."""

import dagster as dg

from mlops_assets.core import validation
from mlops_assets.core.publishing import Audit
from mlops_assets.core.validation import ExpectationSuiteSpec, expect
from mlops_assets.housing import schema

_NOT_NULL = "column_values_to_not_be_null"

RAW_SUITE = ExpectationSuiteSpec(
    name="sales_meet_expectations",
    description="Every sale has its key, date, location, type and price; sizes, counts and "
    "condition are in physical ranges; zipcodes are five digits.",
    expectations=[
        expect("table_columns_to_match_set", column_set=list(schema.RAW_COLUMNS)),
        *(
            expect(_NOT_NULL, column=c)
            for c in (schema.KEY, schema.DATE, *schema.CATEGORICAL, schema.TARGET)
        ),
        # A sale at or below zero is a transfer, not a market price: it would teach the model
        # nothing about prices and break the log target.
        expect("column_values_to_be_between", column=schema.TARGET, min_value=1, strict_min=False),
        expect(
            "column_values_to_be_in_set",
            column="property_type",
            value_set=list(schema.PROPERTY_TYPES),
        ),
        expect("column_values_to_match_regex", column="zipcode", regex=r"^\d{5}$"),
        expect("column_values_to_be_between", column="beds", min_value=0, max_value=20),
        expect("column_values_to_be_between", column="baths", min_value=0, max_value=20),
        expect(
            "column_values_to_be_between",
            column="living_area_sqft",
            min_value=100,
            max_value=50_000,
        ),
        expect("column_values_to_be_between", column="lot_sqft", min_value=0),
        expect("column_values_to_be_between", column="year_built", min_value=1700, max_value=2100),
        expect("column_values_to_be_between", column="condition", min_value=1, max_value=5),
    ],
)


def raw_audits(raw: dg.AssetKey) -> list[Audit]:
    """`sales_meet_expectations` and `sale_id_is_unique`, judged on the staged sales."""
    return [validation.gx_audit(raw, RAW_SUITE), validation.unique_key_audit(raw, schema.KEY)]
