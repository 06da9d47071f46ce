"""Blocking checks on the heart patients: what the raw table must satisfy before it is published
and features or models are built from it (judged on the staged table: see
:mod:`mlops_assets.core.publishing`)."""

import dagster as dg

from mlops_assets.core import validation
from mlops_assets.core.publishing import Audit, Staged, audit
from mlops_assets.core.validation import ExpectationSuiteSpec, expect
from mlops_assets.heart import schema

RAW_SUITE = ExpectationSuiteSpec(
    name="patients_meet_expectations",
    description="Every patient has an id, age, sex and diagnosis (`target`); the severity `num` "
    "is 0-4 where the file gives it; every present value is in its physiological range and "
    "`thal` is one of its codes (missing values are allowed where the UCI files have them).",
    expectations=[
        expect("table_columns_to_match_ordered_list", column_list=list(schema.RAW_COLUMNS)),
        # `num` is not required: a CSV with a header and `target` only (the Kaggle layout, which
        # the README lists as supported) does not say the severity, and the reader leaves it
        # null rather than inventing one. `target` is never null: it is read, or derived from
        # `num` (a missing `num` in a file that has the column gives a null `target`, caught
        # here), and where both are given the reader refused a disagreement.
        *(
            expect("column_values_to_not_be_null", column=c)
            for c in (schema.KEY, "age", "sex", schema.TARGET)
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

# What makes two rows the same patient: every clinical column (the 13 inputs and the diagnosis).
PATIENT_COLUMNS = (*schema.INPUTS, schema.DIAGNOSIS, schema.TARGET)


def repeated_patients(table) -> validation.SuiteResult:
    """Rows that repeat an earlier row on every clinical column (``record_id`` aside).

    ``unexpected_count`` is the number of surplus copies; each sample lists the ``record_id`` of
    one group of copies. Nulls compare equal (a copy keeps its missing ``ca``).
    """
    import polars as pl

    frame = pl.from_arrow(table).select(schema.KEY, *PATIENT_COLUMNS)
    groups = (
        frame.group_by(PATIENT_COLUMNS, maintain_order=True)
        .agg(pl.col(schema.KEY).sort())
        .filter(pl.col(schema.KEY).list.len() > 1)
    )
    ids = groups[schema.KEY].to_list()
    return validation.rule_result(
        "patients_repeated_on_every_clinical_column",
        frame.height,
        sum(len(g) - 1 for g in ids),
        [f"record_id {', '.join(map(str, g))} are one patient" for g in ids],
        columns=PATIENT_COLUMNS,
    )


def raw_audits(raw: dg.AssetKey) -> list[Audit]:
    """`patients_meet_expectations`, `record_id_is_unique` and `patients_are_not_repeated`,
    judged on the staged table."""

    def not_repeated(staged: Staged) -> validation.SuiteResult:
        return repeated_patients(staged.tables[raw])

    return [
        validation.gx_audit(raw, RAW_SUITE),
        validation.unique_key_audit(raw, schema.KEY),
        # Blocking, not a warning. `record_id` is the line number, so `record_id_is_unique` can
        # never see a patient copied twice. Two real patients equal on all 14 clinical values
        # (cholesterol, blood pressure, maximum heart rate, ST depression...) are practically
        # impossible, so a repeat is a copy: a file appended to itself, an oversampled export.
        # Copies land on both sides of the cross-validation folds and of the holdout, so the
        # reported ROC-AUC measures memory, not skill. Remove the copies from the file.
        audit(
            raw,
            "patients_are_not_repeated",
            not_repeated,
            description="No two rows are the same patient: rows equal on every clinical column "
            "(the 13 inputs and the diagnosis) are copies, which would sit on both sides of "
            "the cross-validation and inflate the models' scores.",
        ),
    ]
