"""Blocking checks on the housing sales: what the raw table must satisfy before any split,
encoder or model is built from it. The chronological check of the splits is emitted by the
`splits` asset itself."""

from mlops_assets.core import validation
from mlops_assets.core.validation import ExpectationSuiteSpec, expect
from mlops_assets.housing import schema
from mlops_assets.housing.assets import housing_key

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

sales_meet_expectations = validation.build_gx_asset_check(housing_key("raw"), RAW_SUITE)
sale_id_is_unique = validation.build_unique_key_check(housing_key("raw"), schema.KEY)

housing_checks = [sales_meet_expectations, sale_id_is_unique]
