"""Blocking checks on the housing sales: what the raw table must satisfy before it is published
and any split, encoder or model is built from it (judged on the staged table: see
:mod:`mlops_assets.core.publishing`). The chronological audit of the splits is declared beside
the `splits` asset, whose rule it judges.

`sales_meet_expectations` is a GX suite (:func:`raw_suite`) plus one rule in plain Python, that no
sale is dated in the future (:func:`future_sales`): "today" is read from the clock when the check
runs, never when this module is imported, so a code server that stays up for weeks does not judge
with a stale date. Both plausibility bounds (the highest price, the latest sale date) come from
:mod:`mlops_assets.housing.schema` and can be set per run (`raw_audits`).
"""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from mlops_assets.core import validation
from mlops_assets.core.publishing import Audit, Staged
from mlops_assets.core.validation import ExpectationSuiteSpec, SuiteResult, expect
from mlops_assets.housing import schema

_NOT_NULL = "column_values_to_not_be_null"

#: The name of the rule on sale dates, as the check's metadata lists it (with its column).
FUTURE_RULE = "sale_date_is_not_in_the_future"


def raw_suite(max_price: float = schema.MAX_PRICE) -> ExpectationSuiteSpec:
    """The GX part of `sales_meet_expectations`; ``max_price`` is the highest plausible price."""
    return ExpectationSuiteSpec(
        name="sales_meet_expectations",
        description="Every sale has its key, date, location, type and price; prices, sizes, "
        "counts and condition are in plausible ranges; zipcodes are five digits.",
        expectations=[
            expect("table_columns_to_match_set", column_set=list(schema.RAW_COLUMNS)),
            *(
                expect(_NOT_NULL, column=c)
                for c in (schema.KEY, schema.DATE, *schema.CATEGORICAL, schema.TARGET)
            ),
            # A sale at or below zero is a transfer, not a market price: it would teach the model
            # nothing about prices and break the log target. Above `max_price` it is a typo or a
            # wrong unit (see schema.MAX_PRICE).
            expect(
                "column_values_to_be_between",
                column=schema.TARGET,
                min_value=1,
                max_value=max_price,
            ),
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
            expect(
                "column_values_to_be_between", column="year_built", min_value=1700, max_value=2100
            ),
            expect("column_values_to_be_between", column="condition", min_value=1, max_value=5),
        ],
    )


RAW_SUITE = raw_suite()


def latest_sale_date(latest: date | None = None) -> date:
    """The last day a sale may be dated: ``latest`` if given, else today (UTC, read now) plus
    :data:`schema.FUTURE_SLACK_DAYS`."""
    if latest is not None:
        return latest
    return datetime.now(UTC).date() + timedelta(days=schema.FUTURE_SLACK_DAYS)


def future_sales(table: Any, latest: date) -> SuiteResult:
    """The rule that no sale of ``table`` (an Arrow table of the raw contract) is dated after
    ``latest``: the count of those that are and the first few of their dates. Null dates are
    the not-null expectation's to report, not this rule's."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dates = table.column(schema.DATE)
    if not pa.types.is_date(dates.type):  # the suite's column check reports the wrong type
        dates = dates.cast(pa.date32())
    late = pc.fill_null(pc.greater(dates, pa.scalar(latest, pa.date32())), False)
    count = int(pc.sum(late).as_py() or 0)
    samples = [d.isoformat() for d in dates.filter(late).to_pylist()[: validation.MAX_SAMPLES]]
    result = validation.rule_result(
        FUTURE_RULE, table.num_rows, count, samples, columns=(schema.DATE,)
    )
    [rule] = result.results
    return replace(
        result,
        results=(
            replace(
                rule,
                kwargs={"max_value": latest.isoformat()},
                observed_value=f"after {latest}" if count else None,
            ),
        ),
    )


def raw_audits(
    raw: dg.AssetKey,
    *,
    max_price: float = schema.MAX_PRICE,
    latest: date | None = None,
) -> list[Audit]:
    """`sales_meet_expectations` and `sale_id_is_unique`, judged on the staged sales.

    ``max_price``: the highest plausible price; ``latest``: the last day a sale may be dated
    (``None``: today, read from the clock each time the check runs, see :func:`latest_sale_date`).
    The checks' names and specs do not depend on them, so the asset declares the defaults' and
    judges with the run's.
    """
    suite = raw_suite(max_price)
    bound = (
        f"on or before {latest.isoformat()}"
        if latest is not None
        else f"no later than {schema.FUTURE_SLACK_DAYS} day after the day the check runs (UTC)"
    )
    sales = validation.gx_audit(
        raw,
        suite,
        description=f"{suite.description} Every sale is dated {bound} (`{FUTURE_RULE}`).",
    )

    def evaluate(staged: Staged) -> SuiteResult:
        expectations = sales.evaluate(staged)
        rule = future_sales(staged.tables[raw], latest_sale_date(latest))
        return replace(
            expectations,
            success=expectations.success and rule.success,
            results=(*expectations.results, *rule.results),
        )

    return [Audit(spec=sales.spec, evaluate=evaluate), validation.unique_key_audit(raw, schema.KEY)]
