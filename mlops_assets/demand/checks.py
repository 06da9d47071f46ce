"""Blocking checks of demand: what a day must satisfy before it is published and any model
trains on it or forecasts from it (judged on the staged day: see
:mod:`mlops_assets.core.publishing`). A failure names the respondent, the hours and the count.
"""

import dagster as dg

from mlops_assets.core import validation
from mlops_assets.core.publishing import Audit, Staged, audit
from mlops_assets.core.validation import ExpectationSuiteSpec, expect
from mlops_assets.demand import schema

CLEAN_SUITE = ExpectationSuiteSpec(
    name="demand_values_are_plausible",
    description="Every row names its respondent and hour, and its demand is a number between "
    f"{schema.MIN_PLAUSIBLE_MWH:,.0f} and {schema.MAX_PLAUSIBLE_MWH:,.0f} MWh: a negative or huge "
    "value is a unit or parsing error, not demand.",
    expectations=[
        expect("table_columns_to_match_ordered_list", column_list=list(schema.CLEAN_COLUMNS)),
        *(expect("column_values_to_not_be_null", column=c) for c in schema.CLEAN_COLUMNS),
        expect(
            "column_values_to_be_between",
            column="y",
            min_value=schema.MIN_PLAUSIBLE_MWH,
            max_value=schema.MAX_PLAUSIBLE_MWH,
        ),
    ],
)


def raw_audits(raw: dg.AssetKey, partitions_def: dg.PartitionsDefinition) -> list[Audit]:
    """`values_are_numbers`: every value the source sent is a finite number or empty."""
    from mlops_assets.demand import cleaning

    def values_are_numbers(staged: Staged) -> validation.SuiteResult:
        table = staged.tables[raw]
        junk, samples = cleaning.non_numeric_values(table)
        return validation.rule_result(
            "values_are_numbers", table.num_rows, junk, samples, columns=("value",)
        )

    return [
        audit(
            raw,
            "values_are_numbers",
            values_are_numbers,
            description="Every demand value the source sent is a finite number or empty.",
            partitions_def=partitions_def,
        )
    ]


def clean_audits(clean: dg.AssetKey, partitions_def: dg.PartitionsDefinition) -> list[Audit]:
    """`no_missing_hours`, `no_duplicate_hours` and `demand_values_are_plausible`.

    Each respondent has exactly one row per UTC hour of the day: the whole day is expected, so a
    respondent whose day starts late or ends early fails too. UTC makes daylight-saving days
    ordinary 24-hour days; a source that sent local times shows up here as a duplicate (fall
    back) or a gap (spring forward).
    """
    return [
        *validation.time_series_audits(
            clean, "ds", "unique_id", partitions_def=partitions_def, cover_partition=True
        ),
        validation.gx_audit(clean, CLEAN_SUITE, partitions_def=partitions_def),
    ]
