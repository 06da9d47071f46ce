"""Blocking checks on ``demand/clean``: what a day of demand must satisfy before any model trains
on it or forecasts from it. A failure names the respondent, the hours and the count.

The check on ``raw`` (every value is a number) is emitted by the ``raw`` asset itself, per run.
"""

from mlops_assets.core import validation
from mlops_assets.core.validation import ExpectationSuiteSpec, expect
from mlops_assets.demand import schema
from mlops_assets.demand.assets import DAILY, demand_key

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

# Each respondent has exactly one row per UTC hour of the day: the whole day is expected, so a
# respondent whose day starts late or ends early fails too. UTC makes daylight-saving days
# ordinary 24-hour days; a source that sent local times shows up here as a duplicate (fall back)
# or a gap (spring forward).
clean_hours = validation.build_time_series_checks(
    demand_key("clean"), "ds", "unique_id", partitions_def=DAILY, cover_partition=True
)
clean_values = validation.build_gx_asset_check(
    demand_key("clean"), CLEAN_SUITE, partitions_def=DAILY
)

demand_checks = [clean_hours, clean_values]
