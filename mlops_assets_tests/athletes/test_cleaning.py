"""The stated cleaning rules, each on a hand-made frame."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlops_assets.athletes import cleaning, schema

SURVEY_OK = {
    "eat": "I eat whatever is convenient|",
    "train": "I record my workouts|",
    "background": "I played college sports|",
    "experience": "I began CrossFit with a coach (e.g. at an affiliate)|",
    "schedule": "I usually only do 1 workout a day|",
    "howlong": "1-2 years|",
}


def athlete(athlete_id: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in schema.RAW_COLUMNS}
    row.update(
        athlete_id=athlete_id,
        name="A B",
        gender="Male",
        age=30.0,
        height=70.0,
        weight=190.0,
        candj=200.0,
        snatch=150.0,
        deadlift=400.0,
        backsq=300.0,
        fran=250.0,
        **SURVEY_OK,
    )
    row.update(changes)
    return row


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(schema.RAW_COLUMNS))


BREAKS_ONE_RULE = {
    "weight": {"weight": 1500.0},
    "gender": {"gender": "--"},
    "age": {"age": 17.0},
    "height": {"height": 48.0},
    "deadlift": {"gender": "Female", "deadlift": 637.0},
    "candj": {"candj": 396.0},
    "snatch": {"snatch": 0.0},
    "backsq": {"backsq": 1070.0},
    "survey": {"eat": "Decline to answer|"},
}


def test_rules_are_ordered_and_stated() -> None:
    assert [r.name for r in cleaning.RULES] == list(BREAKS_ONE_RULE)
    assert all(r.description for r in cleaning.RULES)


@pytest.mark.parametrize("rule", list(BREAKS_ONE_RULE))
def test_a_row_breaking_one_rule_is_removed_and_counted_under_it(rule: str) -> None:
    out, report = cleaning.clean(frame(athlete(2), athlete(1, **BREAKS_ONE_RULE[rule])))
    assert out["athlete_id"].tolist() == [2]
    assert report["removed"] == {r.name: int(r.name == rule) for r in cleaning.RULES}
    assert (report["rows_in"], report["rows_out"]) == (2, 1)


@pytest.mark.parametrize(
    ("changes", "kept"),
    [
        ({"height": 48.0}, False),
        ({"height": 48.5}, True),
        ({"height": 95.5}, True),
        ({"height": 96.0}, False),
        ({"gender": "Female", "deadlift": 636.0}, True),
        ({"gender": "Female", "deadlift": 637.0}, False),
        ({"deadlift": 1105.0}, True),
        ({"deadlift": 1106.0}, False),
        ({"deadlift": -45.0}, False),
        ({"candj": 395.0}, True),
        ({"snatch": 496.0}, True),
        ({"snatch": 497.0}, False),
        ({"backsq": 1069.0}, True),
        ({"age": 18.0}, True),
        ({"weight": 1499.0}, True),
        ({"weight": None}, False),
        ({"gender": None}, False),
        ({"deadlift": None}, False),
        ({"train": None}, True),  # train is not required
        ({"howlong": None}, False),
    ],
)
def test_boundaries(changes: dict[str, Any], kept: bool) -> None:
    out, _ = cleaning.clean(frame(athlete(1, **changes)))
    assert len(out) == int(kept)


def test_first_broken_rule_wins_and_counts_add_up() -> None:
    raw = frame(
        athlete(5, weight=2000.0, age=5.0),  # weight first
        athlete(4, age=5.0, snatch=-1.0),  # age first
        athlete(3, experience="Decline to answer|", schedule=None),
        athlete(2),
        athlete(1, howlong="Decline to answer|", train="Decline to answer|"),
    )
    out, report = cleaning.clean(raw)
    assert out["athlete_id"].tolist() == [2]
    assert report["removed"]["weight"] == 1
    assert report["removed"]["age"] == 1
    assert report["removed"]["survey"] == 2
    assert report["declined_answers"] == 3
    assert report["rows_in"] - report["rows_out"] == sum(report["removed"].values())


def test_clean_frame_columns_target_and_order() -> None:
    raw = frame(athlete(3, deadlift=405.0), athlete(1, candj=100.0, snatch=80.5))
    out, _ = cleaning.clean(raw)
    assert tuple(out.columns) == cleaning.CLEAN_COLUMNS
    assert not set(schema.IDENTITY) & set(out.columns)
    assert "train" not in out.columns
    assert out["athlete_id"].tolist() == [1, 3]
    assert out["total_lift"].tolist() == [400.0 + 100.0 + 80.5 + 300.0, 405.0 + 200 + 150 + 300]


def test_declined_answers_become_null() -> None:
    raw = frame(athlete(1, train="Decline to answer|"))
    out, report = cleaning.clean(raw)
    assert len(out) == 1 and report["declined_answers"] == 1


def test_deterministic_whatever_the_row_order() -> None:
    raw = frame(*(athlete(i, weight=150.0 + i) for i in range(1, 8)), athlete(9, age=3.0))
    a, ra = cleaning.clean(raw)
    b, rb = cleaning.clean(raw.iloc[::-1])
    pd.testing.assert_frame_equal(a, b)
    assert ra == rb
