"""The stated cleaning of the raw athletes: which rows go, why, and the target.

The rules follow the classic cleaning of the CrossFit Games athletes data set, in order
(:data:`RULES`). Before they run, every survey answer ``"Decline to answer|"`` becomes null
(:data:`DECLINE`). A row is kept only if it passes every rule; in the report a removed row counts
under the **first** rule it breaks, so the counts add up to ``rows_in - rows_out``. Comparisons
with a missing value fail: a row with no weight, no age or a missing lift is removed by that rule.

:func:`clean` then keeps :data:`CLEAN_COLUMNS` (no identity fields, no free-text ``train``), adds
``total_lift`` = deadlift + candj + snatch + backsq and sorts by ``athlete_id``.

Pure code: pandas is only imported where needed (type hints aside).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.athletes import schema

if TYPE_CHECKING:
    import pandas as pd

DECLINE = "Decline to answer|"
#: The survey answers a clean row must have (after "Decline to answer|" became null).
REQUIRED_SURVEY = ("background", "experience", "schedule", "howlong", "eat")
#: The columns of the clean frame, in order (``total_lift`` last).
CLEAN_COLUMNS = (
    schema.KEY,
    *schema.BODY,
    *schema.WORKOUTS,
    *schema.LIFTS,
    *REQUIRED_SURVEY,
    schema.TARGET,
)


@dataclass(frozen=True)
class Rule:
    """A stated cleaning rule: ``predicate(frame)`` is a boolean Series, True where a row passes."""

    name: str
    description: str
    predicate: Callable[[pd.DataFrame], pd.Series]


def _within(column: str, high: float) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda df: (df[column] > 0) & (df[column] <= high)


def _deadlift(df: pd.DataFrame) -> pd.Series:
    ok = (df["deadlift"] > 0) & (df["deadlift"] <= 1105)
    return ok & ((df["gender"] != "Female") | (df["deadlift"] <= 636))


RULES: tuple[Rule, ...] = (
    Rule("weight", "weight is below 1500 lb", lambda df: df["weight"] < 1500),
    Rule(
        "gender",
        'gender is given and not "--"',
        lambda df: df["gender"].notna() & (df["gender"] != "--"),
    ),
    Rule("age", "age is at least 18", lambda df: df["age"] >= 18),
    Rule(
        "height",
        "height is strictly between 48 and 96 in",
        lambda df: (df["height"] > 48) & (df["height"] < 96),
    ),
    Rule("deadlift", "0 < deadlift <= 1105 lb (women: <= 636 lb)", _deadlift),
    Rule("candj", "0 < clean and jerk <= 395 lb", _within("candj", 395)),
    Rule("snatch", "0 < snatch <= 496 lb", _within("snatch", 496)),
    Rule("backsq", "0 < back squat <= 1069 lb", _within("backsq", 1069)),
    Rule(
        "survey",
        "background, experience, schedule, howlong and eat are answered "
        '("Decline to answer|" counts as no answer)',
        lambda df: df[list(REQUIRED_SURVEY)].notna().all(axis=1),
    ),
)


def clean(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The clean frame (:data:`CLEAN_COLUMNS`, sorted by ``athlete_id``) and a report.

    The report is ``{"rows_in", "rows_out", "declined_answers", "removed": {rule: count}}``;
    ``removed`` lists every rule of :data:`RULES` in order, a row counted under the first rule it
    breaks. Deterministic: the same frame gives the same result whatever its row order.
    """
    df = raw.sort_values(schema.KEY, kind="stable").reset_index(drop=True).copy()
    declined = 0
    for column in schema.SURVEY:
        if column in df.columns:
            is_declined = df[column] == DECLINE
            declined += int(is_declined.sum())
            df[column] = df[column].where(~is_declined, None)

    keep = _all_true(len(df))
    removed: dict[str, int] = {}
    for rule in RULES:
        passes = rule.predicate(df).fillna(False).to_numpy(dtype=bool)
        breaks = keep & ~passes
        removed[rule.name] = int(breaks.sum())
        keep &= passes

    out = df.loc[keep].reset_index(drop=True)
    out[schema.TARGET] = (out["deadlift"] + out["candj"] + out["snatch"] + out["backsq"]).astype(
        "float64"
    )
    out = out[list(CLEAN_COLUMNS)]
    report = {
        "rows_in": len(df),
        "rows_out": len(out),
        "declined_answers": declined,
        "removed": removed,
    }
    return out, report


def nothing_left(report: dict[str, Any]) -> str | None:
    """Why the cleaning left no row, naming each rule that removed rows and how many; ``None``
    when rows are left.

    A clean table with no row is not a result: features and models built on it would be empty
    (or fail far from the cause), and an eager automation would pass it on. Rows all removed
    mean the file is not what the rules expect (other units, a column of another meaning, every
    survey answer declined), which only the user can fix.
    """
    if report["rows_out"]:
        return None
    described = {rule.name: rule.description for rule in RULES}
    removed = "; ".join(
        f"{name} ({described[name]}): {count} removed"
        for name, count in report["removed"].items()
        if count
    )
    return (
        f"the cleaning rules removed all {report['rows_in']} rows, so there is nothing to "
        f"publish: {removed or 'no rows came in'}. Check the file's units and columns against "
        "the rules."
    )


def _all_true(n: int) -> Any:
    import numpy as np

    return np.ones(n, dtype=bool)
