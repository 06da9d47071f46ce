"""Champion and candidate on the same live requests, pure: pairing a request's served record with
its shadow record, agreement and correlation of the scores, the metric of each on the labelled
ones, and the verdict the promotion gate takes as live evidence."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core.monitoring import live_comparison as lc
from mlops_assets.core.monitoring.live_comparison import Agreement

DAY = "2025-03-01"


def _at(minute: int, day: str = DAY) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(minutes=minute)


def _record(
    request_id: str,
    minute: int,
    version: str,
    prediction: float | None,
    *,
    role: str | None = "served",
    alias: str | None = "champion",
    status: int = 200,
    use_case: str = "fraud",
    model_name: str = "fraud_classifier",
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "ts": _at(minute),
        "use_case": use_case,
        "model_name": model_name,
        "model_version": version,
        "status": status,
        "prediction": prediction,
        "request_json": f'{{"id": "{request_id}"}}',
        "role": role,
        "alias": alias,
    }


def _log(records: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        records,
        schema={
            "request_id": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            "use_case": pl.String,
            "model_name": pl.String,
            "model_version": pl.String,
            "status": pl.Int32,
            "prediction": pl.Float64,
            "request_json": pl.String,
            "role": pl.String,
            "alias": pl.String,
        },
    )


def _shadowed(rid: str, minute: int, champion: float, candidate: float, **kw) -> list[dict]:
    """Shadow mode: the champion (v1) answers, the candidate (v2) scores beside it."""
    return [
        _record(rid, minute, "1", champion, **kw),
        _record(rid, minute, "2", candidate, role="shadow", alias="candidate", **kw),
    ]


def _canary(rid: str, minute: int, champion: float, candidate: float, **kw) -> list[dict]:
    """Canary mode: the candidate (v2) answers, the champion (v1) scores beside it."""
    return [
        _record(rid, minute, "2", candidate, alias="candidate", **kw),
        _record(rid, minute, "1", champion, role="shadow", alias="champion", **kw),
    ]


# -- which rows are answers ---------------------------------------------------------------------


def test_served_rows_keep_the_answers_and_drop_the_shadow_predictions() -> None:
    log = _log(
        [
            *_shadowed("a", 1, 0.1, 0.9),
            _record("b", 2, "1", 0.3, role=None, alias=None),  # an old batch's row: an answer
        ]
    )
    served = lc.served_rows(log)
    assert served.select("request_id", "model_version").rows() == [("a", "1"), ("b", "1")]
    # A batch written before the role column existed holds answers only.
    assert lc.served_rows(log.drop("role")).height == 3


def test_missing_role_and_alias_read_as_the_champions_answer() -> None:
    filled = lc.with_roles(_log([_record("a", 1, "1", 0.2, role=None, alias=None)]).drop("alias"))
    assert filled.select("role", "alias").row(0) == ("served", "champion")


# -- pairing ------------------------------------------------------------------------------------


def test_shadow_and_canary_requests_pair_champion_with_candidate_whoever_answered() -> None:
    log = _log(
        [
            *_canary("c", 5, champion=0.4, candidate=0.8),
            *_shadowed("a", 1, champion=0.1, candidate=0.7),
            _record("lone", 2, "1", 0.5),  # outside the rollout's share: one record, no pair
        ]
    )
    pairs = lc.paired_requests({DAY: log})
    assert pairs.columns == list(lc.PAIR_SCHEMA_NAMES)
    assert pairs.select(
        "request_id",
        "champion_version",
        "candidate_version",
        "answered_by",
        "champion_score",
        "candidate_score",
    ).rows() == [
        ("a", "1", "2", "champion", 0.1, 0.7),
        ("c", "1", "2", "candidate", 0.4, 0.8),
    ]
    assert pairs["day"].to_list() == [DAY, DAY]
    assert pairs["ts"].to_list() == [_at(1), _at(5)]


def test_records_of_one_alias_or_of_other_requests_never_pair() -> None:
    log = _log(
        [
            # Both records held by the champion alias: not a champion/candidate comparison.
            _record("same", 1, "1", 0.2),
            _record("same", 1, "1", 0.3, role="shadow", alias="champion"),
            # A shadow record whose answer is in another use case's rows: not the same request.
            _record("x", 2, "1", 0.2, use_case="heart", model_name="heart_disease"),
            _record("x", 2, "2", 0.4, role="shadow", alias="candidate"),
        ]
    )
    assert lc.paired_requests({DAY: log}).is_empty()
    # An old batch (no role, no alias) holds only the champion's answers.
    old = _log([_record("o", 1, "1", 0.2)]).drop("role", "alias")
    assert lc.paired_requests({DAY: old, "2025-03-02": old.clear()}).is_empty()
    assert lc.paired_requests({}).columns == list(lc.PAIR_SCHEMA_NAMES)


def test_a_failed_shadow_scoring_is_a_pair_that_is_not_compared() -> None:
    log = _log(
        [
            *_shadowed("a", 1, champion=0.2, candidate=0.1),
            _record("b", 2, "1", 0.3),
            _record("b", 2, "2", None, role="shadow", alias="candidate", status=500),
        ]
    )
    [row] = lc.comparison_table(
        lc.paired_requests({DAY: log}), lambda _: Agreement.decision(0.5)
    ).to_dicts()
    assert row_values(row) == {
        "requests": 2,
        "scored": 1,
        "answered_by_candidate": 0,
        "champion_failures": 0,
        "candidate_failures": 1,
        "agreement": 1.0,
        "mean_abs_diff": pytest.approx(0.1),
    }
    # One scored request: no correlation.
    assert math.isnan(row["pearson"]) and math.isnan(row["spearman"])


def row_values(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "requests",
        "scored",
        "answered_by_candidate",
        "champion_failures",
        "candidate_failures",
        "agreement",
        "mean_abs_diff",
    )
    return {k: row[k] for k in keys}


# -- agreement and correlation ------------------------------------------------------------------


def test_the_comparison_table_per_day_and_pair_of_versions() -> None:
    champion = [0.1, 0.6, 0.8, 0.3]
    candidate = [0.2, 0.4, 0.9, 0.35]
    day1 = _log(
        [
            *_shadowed("a", 1, champion[0], candidate[0]),
            *_shadowed("b", 2, champion[1], candidate[1]),
            *_canary("c", 3, champion[2], candidate[2]),
            *_canary("d", 4, champion[3], candidate[3]),
            # housing: a price, compared within a relative tolerance
            *_shadowed("h1", 5, 100.0, 104.0, use_case="housing", model_name="housing_price"),
            *_shadowed("h2", 6, 200.0, 250.0, use_case="housing", model_name="housing_price"),
        ]
    )
    rules = {"fraud": Agreement.decision(0.5), "housing": Agreement.within(0.05)}
    table = lc.comparison_table(lc.paired_requests({DAY: day1}), rules.__getitem__)
    assert table.columns == list(lc.COMPARISON_COLUMNS)
    fraud, housing = table.to_dicts()
    assert (fraud["use_case"], fraud["champion_version"], fraud["candidate_version"]) == (
        "fraud",
        "1",
        "2",
    )
    # Decisions at 0.5: (no, no), (yes, no), (yes, yes), (no, no): 3 of 4 agree.
    assert fraud["agreement"] == 0.75
    assert fraud["agreement_rule"] == "same decision at 0.5"
    assert fraud["answered_by_candidate"] == 2
    assert fraud["pearson"] == pytest.approx(np.corrcoef(champion, candidate)[0, 1])
    assert fraud["spearman"] == pytest.approx(1.0)  # the same order of the four requests
    assert fraud["mean_abs_diff"] == pytest.approx((0.1 + 0.2 + 0.1 + 0.05) / 4)
    # 104 is within 5% of 104 from 100 (4 <= 5.2); 250 is not from 200 (50 > 12.5).
    assert (housing["use_case"], housing["agreement"], housing["agreement_rule"]) == (
        "housing",
        0.5,
        "within 5%",
    )
    assert housing["mean_abs_diff"] == pytest.approx(27.0)


def test_groups_sort_versions_as_numbers_and_days_apart() -> None:
    log = {
        "2025-03-02": _log([*_shadowed("z", 1, 0.1, 0.2)]),
        DAY: _log(
            [
                _record("a", 1, "10", 0.1),
                _record("a", 1, "11", 0.2, role="shadow", alias="candidate"),
                *_shadowed("b", 2, 0.3, 0.4),
            ]
        ),
    }
    table = lc.comparison_table(lc.paired_requests(log), lambda _: Agreement.decision(0.5))
    assert table.select("day", "champion_version", "candidate_version").rows() == [
        (DAY, "1", "2"),
        (DAY, "10", "11"),
        ("2025-03-02", "1", "2"),
    ]


def test_an_empty_day_gives_the_columns_and_no_row() -> None:
    table = lc.comparison_table(lc.paired_requests({}), lambda _: Agreement.decision(0.5))
    assert table.is_empty() and table.columns == list(lc.COMPARISON_COLUMNS)
    assert table.schema["agreement"] == pl.Float64 and table.schema["requests"] == pl.Int64


def test_constant_scores_have_no_correlation_and_bad_rules_are_refused() -> None:
    metrics = lc.score_agreement([0.2, 0.2, 0.2], [0.1, 0.5, 0.9], Agreement.decision(0.5))
    assert math.isnan(metrics["pearson"]) and math.isnan(metrics["spearman"])
    assert metrics["agreement"] == pytest.approx(1 / 3)  # only 0.1 is below 0.5 with 0.2
    assert all(math.isnan(v) for v in lc.score_agreement([], [], Agreement.within(0.1)).values())
    with pytest.raises(ValueError, match="relative tolerance must be >= 0"):
        Agreement.within(-0.1)
    with pytest.raises(ValueError, match="use 'decision' or 'tolerance'"):
        Agreement("vote", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one pair per request"):
        lc.score_agreement([0.1, 0.2], [0.1], Agreement.decision(0.5))
    with pytest.raises(ValueError, match="finite"):
        lc.score_agreement([0.1, math.nan], [0.1, 0.2], Agreement.decision(0.5))


score = st.floats(min_value=0, max_value=1, allow_nan=False, width=32)
scores = st.lists(score, min_size=1, max_size=60)
prices = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32), min_size=1, max_size=60
)
rules = st.one_of(
    st.floats(min_value=0, max_value=1).map(Agreement.decision),
    st.floats(min_value=0, max_value=0.5).map(Agreement.within),
)


@settings(max_examples=200, deadline=None)
@given(values=st.one_of(scores, prices), rule=rules)
def test_a_model_always_agrees_with_itself(values: list[float], rule: Agreement) -> None:
    metrics = lc.score_agreement(values, values, rule)
    assert metrics["agreement"] == 1.0
    assert metrics["mean_abs_diff"] == 0.0
    if len(set(values)) > 1:
        assert metrics["pearson"] == pytest.approx(1.0)
        assert metrics["spearman"] == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), rule=rules)
def test_the_comparison_is_symmetric_and_bounded(data: st.DataObject, rule: Agreement) -> None:
    a = data.draw(scores)
    b = data.draw(st.lists(score, min_size=len(a), max_size=len(a)))
    forward, backward = lc.score_agreement(a, b, rule), lc.score_agreement(b, a, rule)
    for key in forward:
        assert forward[key] == pytest.approx(backward[key], nan_ok=True), key
    assert 0.0 <= forward["agreement"] <= 1.0 and forward["mean_abs_diff"] >= 0.0
    for key in ("pearson", "spearman"):
        assert math.isnan(forward[key]) or -1.0 <= forward[key] <= 1.0


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(min_value=0.01, max_value=1), min_size=2, max_size=40, unique=True)
)
def test_spearman_only_sees_the_order_of_the_scores(values: list[float]) -> None:
    squashed = [v**3 for v in values]  # the same order, other distances
    metrics = lc.score_agreement(values, squashed, Agreement.within(0.0))
    assert metrics["spearman"] == pytest.approx(1.0)


# -- on the truth that arrived later ------------------------------------------------------------


def _accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(((scores >= 0.5) == (labels == 1)).mean()) if len(labels) else math.nan


def test_labelled_comparison_measures_both_versions_on_the_same_labelled_requests() -> None:
    log = _log(
        [
            *_shadowed("a", 1, champion=0.9, candidate=0.8),  # fraud: both right
            *_shadowed("b", 2, champion=0.7, candidate=0.2),  # genuine: only the candidate
            *_shadowed("c", 3, champion=0.6, candidate=0.3),  # label not known yet
            _record("d", 4, "1", 0.1),  # genuine, candidate failed: not compared
            _record("d", 4, "2", None, role="shadow", alias="candidate", status=500),
        ]
    )
    pairs = lc.paired_requests({DAY: log}).with_columns(
        pl.Series("label", [1, 0, None, 0], dtype=pl.Int8)
    )
    [row] = lc.labelled_comparison(pairs, _accuracy).to_dicts()
    assert (row["labelled"], row["champion_value"], row["candidate_value"]) == (2, 0.5, 1.0)
    assert lc.labelled_comparison(pairs.clear(), _accuracy).columns == [
        *lc.KEYS,
        *lc.LABELLED_COLUMNS,
    ]


def test_end_of_day_is_the_next_utc_midnight() -> None:
    assert lc.end_of_day("2025-02-28") == datetime(2025, 3, 1, tzinfo=UTC)


# -- the gate's verdict -------------------------------------------------------------------------


def _judge(**kw) -> lc.LiveEvidence:
    args = {
        "metric": "pr_auc",
        "higher_is_better": True,
        "candidate_version": "5",
        "champion_version": "4",
        "labelled": 500,
        "champion_value": 0.40,
        "candidate_value": 0.45,
        "min_labelled": 300,
        "min_gain": 0.02,
        "days": ("2025-03-01", "2025-03-02", "2025-03-03"),
    }
    return lc.judge_live_evidence(**(args | kw))


def test_live_evidence_allows_a_candidate_better_by_the_margin_on_enough_labels() -> None:
    evidence = _judge()
    assert evidence.allows and evidence.decision == "promote"
    assert evidence.reason == (
        "live pr_auc 0.4500 (v5) vs 0.4000 (v4) on the same 500 labelled requests over "
        "2025-03-01 .. 2025-03-03: better by 0.0500 (required 0.02)"
    )
    assert evidence.metadata() == {
        "live/decision": "promote",
        "live/reason": evidence.reason,
        "live/metric": "pr_auc",
        "live/labelled": 500,
        "live/min_labelled": 300,
        "live/champion_pr_auc": 0.40,
        "live/candidate_pr_auc": 0.45,
        "live/min_gain": 0.02,
        "live/champion_version": "4",
        "live/candidate_version": "5",
        "live/days": "2025-03-01 .. 2025-03-03",
    }
    assert evidence.tags() == {
        "live.decision": "promote",
        "live.reason": evidence.reason,
        "live.labelled": "500",
        "live.champion_pr_auc": "0.4",
        "live.candidate_pr_auc": "0.45",
        "live.champion_version": "4",
        "live.days": "2025-03-01 .. 2025-03-03",
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"labelled": 0, "champion_value": None, "candidate_value": None, "note": "rollout off"},
            "only 0 labelled request(s) scored by candidate v5 beside champion v4 over "
            "2025-03-01 .. 2025-03-03, fewer than the 300 required (rollout off)",
        ),
        (
            {"champion_value": math.nan},
            "live pr_auc cannot be measured on the 500 labelled requests scored by candidate v5 "
            "beside champion v4 over 2025-03-01 .. 2025-03-03 (a single class among their labels)",
        ),
        (
            {"candidate_value": 0.41},
            "live pr_auc 0.4100 (v5) vs 0.4000 (v4) on the same 500 labelled requests over "
            "2025-03-01 .. 2025-03-03: gain +0.0100, below the required 0.02 (or not better)",
        ),
        (
            {"candidate_value": 0.40, "min_gain": 0.0},
            "live pr_auc 0.4000 (v5) vs 0.4000 (v4) on the same 500 labelled requests over "
            "2025-03-01 .. 2025-03-03: gain +0.0000, below the required 0 (or not better)",
        ),
    ],
)
def test_live_evidence_refuses_too_few_labels_no_measure_or_no_gain(change, reason) -> None:
    evidence = _judge(**change)
    assert not evidence.allows and evidence.decision == "keep"
    assert evidence.reason == reason


def test_lower_is_better_metrics_gain_downwards() -> None:
    evidence = _judge(metric="rmse", higher_is_better=False, champion_value=10.0, candidate_value=9)
    assert evidence.allows and "better by 1.0000" in evidence.reason


def test_without_a_champion_or_against_itself_there_is_nothing_to_compare() -> None:
    first = _judge(champion_version=None, labelled=0, champion_value=None)
    assert first.allows and first.reason.startswith("no champion yet")
    assert (
        first.tags()["live.champion_version"] == "" and first.tags()["live.champion_pr_auc"] == ""
    )
    itself = _judge(champion_version="5", labelled=0)
    assert itself.allows and itself.reason == "candidate v5 already is the champion"
    with pytest.raises(ValueError, match="must be >= 0"):
        _judge(min_gain=-0.1)
