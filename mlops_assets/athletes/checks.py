"""Blocking checks after cleaning (the seed's "data validation step"): a batch whose clean table
breaks them is quarantined instead of published, and no feature or model is built from it
(judged on the staged table: see :mod:`mlops_assets.core.publishing`)."""

import dagster as dg

from mlops_assets.athletes import schema
from mlops_assets.core import validation
from mlops_assets.core.publishing import Audit
from mlops_assets.core.validation import ExpectationSuiteSpec, expect

CLEAN_SUITE = ExpectationSuiteSpec(
    name="clean_athletes_meet_expectations",
    description="What the cleaning rules promise: adults with plausible bodies and lifts, the "
    "survey answered, and a positive total lift for every athlete.",
    expectations=[
        *(
            expect("column_values_to_not_be_null", column=c)
            for c in (schema.KEY, "gender", "age", "height", "weight", *schema.LIFTS, schema.TARGET)
        ),
        expect("column_values_to_be_in_set", column="gender", value_set=["Male", "Female"]),
        expect("column_values_to_be_between", column="age", min_value=18, max_value=100),
        expect(
            "column_values_to_be_between",
            column="height",
            min_value=48,
            max_value=96,
            strict_min=True,
            strict_max=True,
        ),
        expect(
            "column_values_to_be_between",
            column="weight",
            min_value=0,
            max_value=1500,
            strict_max=True,
        ),
        expect(
            "column_values_to_be_between",
            column="deadlift",
            min_value=0,
            max_value=1105,
            strict_min=True,
        ),
        expect(
            "column_values_to_be_between",
            column="candj",
            min_value=0,
            max_value=395,
            strict_min=True,
        ),
        expect(
            "column_values_to_be_between",
            column="snatch",
            min_value=0,
            max_value=496,
            strict_min=True,
        ),
        expect(
            "column_values_to_be_between",
            column="backsq",
            min_value=0,
            max_value=1069,
            strict_min=True,
        ),
        expect("column_values_to_be_between", column=schema.TARGET, min_value=0, strict_min=True),
    ],
)


def clean_audits(clean: dg.AssetKey) -> list[Audit]:
    """`clean_athletes_meet_expectations` and `athlete_id_is_unique`, on the staged table."""
    return [
        validation.gx_audit(clean, CLEAN_SUITE),
        validation.unique_key_audit(clean, schema.KEY),
    ]
