"""Blocking checks on the heart patients: what the raw table must satisfy before it is published
and features or models are built from it (judged on the staged table: see
:mod:`mlops_assets.core.publishing`)."""

import dagster as dg

from mlops_assets.core import validation
from mlops_assets.core.publishing import Audit
from mlops_assets.core.validation import ExpectationSuiteSpec, expect
from mlops_assets.heart import schema

RAW_SUITE = ExpectationSuiteSpec(
    name="patients_meet_expectations",
    description="Every patient has an id, age, sex and diagnosis; the diagnosis is 0-4 and "
    "its binarisation agrees with it; every present value is in its physiological range and "
    "`thal` is one of its codes (missing values are allowed where the UCI files have them).",
    expectations=[
        expect("table_columns_to_match_ordered_list", column_list=list(schema.RAW_COLUMNS)),
        *(
            expect("column_values_to_not_be_null", column=c)
            for c in (schema.KEY, "age", "sex", schema.DIAGNOSIS, schema.TARGET)
        ),
        expect("column_values_to_be_between", column=schema.DIAGNOSIS, min_value=0, max_value=4),
        expect("column_values_to_be_in_set", column=schema.TARGET, value_set=[0, 1]),
        *(
            expect("column_values_to_be_between", column=c, min_value=low, max_value=high)
            for c, (low, high) in schema.RANGES.items()
        ),
        expect("column_values_to_be_in_set", column="thal", value_set=list(schema.THAL_CODES)),
    ],
)


def raw_audits(raw: dg.AssetKey) -> list[Audit]:
    """`patients_meet_expectations` and `record_id_is_unique`, judged on the staged table."""
    return [validation.gx_audit(raw, RAW_SUITE), validation.unique_key_audit(raw, schema.KEY)]
