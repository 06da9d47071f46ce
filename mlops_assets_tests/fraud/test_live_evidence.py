"""Fraud's live evidence: shadow predictions never count as answers in the live performance; the
champion and the candidate meet their labels on the same payments; and the promotion gate, when
configured to, refuses without live evidence and promotes with it (a real registry, the real
`fraud/champion` asset through `dagster.materialize`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sklearn.metrics import average_precision_score

from mlops_assets.core import storage
from mlops_assets.core.profiles import load_settings
from mlops_assets.definitions import resources_for
from mlops_assets.fraud import monitoring, rollout, training
from mlops_assets.fraud.assets import MODEL_NAME
from mlops_assets.fraud.definitions import ASSETS
from mlops_assets.fraud.schema import CASE
from mlops_assets.serving.request_log import batch_path, predictions_log_schema
from mlops_assets_tests.fixtures.fraud_data import make_training_set
from mlops_assets_tests.fixtures.runs import failures, metadata
from mlops_assets_tests.fixtures.served_models import register

DAY = "2025-03-10"
BEFORE = "2025-03-09"
AS_OF = datetime(2025, 3, 11, tzinfo=UTC)


def _at(day: str, minute: int) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(minutes=minute)


def _record(rid: str, ts: datetime, tx_id: str | None, version: str, prediction: float | None,
            *, role: str | None = "served", alias: str | None = "champion",
            status: int = 200) -> dict[str, Any]:  # fmt: skip
    return {
        "request_id": rid,
        "ts": ts,
        "use_case": "fraud",
        "model_name": MODEL_NAME,
        "model_version": version,
        "status": status,
        "latency_ms": 1.0,
        "prediction": prediction,
        "features_missing": 0,
        "error": None,
        "request_json": json.dumps({"tx_id": tx_id} if tx_id else {"amount": 1.0}),
        "response_json": None if role == "shadow" else "{}",
        "features_json": None,
        "role": role,
        "alias": alias,
    }


def _shadowed(rid: str, ts: datetime, tx_id: str | None, champion: float, candidate: float,
              *, versions: tuple[str, str] = ("1", "2")) -> list[dict[str, Any]]:  # fmt: skip
    """Shadow mode: the champion answers, the candidate scores the same request after it."""
    return [
        _record(rid, ts, tx_id, versions[0], champion),
        _record(rid, ts + timedelta(milliseconds=3), tx_id, versions[1], candidate,
                role="shadow", alias="candidate"),
    ]  # fmt: skip


def _log(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=predictions_log_schema())


def _labels(rows: list[tuple[str, int, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "tx_id": pl.String,
            "is_fraud": pl.Int8,
            "label_available_ts": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )


# -- shadow predictions are not answers ---------------------------------------------------------


def test_live_performance_counts_the_answers_never_the_shadow_predictions() -> None:
    log = _log(
        [
            *_shadowed("r1", _at(DAY, 1), "t1", champion=0.9, candidate=0.1),
            *_shadowed("r2", _at(DAY, 2), "t2", champion=0.2, candidate=0.8),
            # Canary: the candidate answered, the champion scored beside it.
            _record("r3", _at(DAY, 3), "t3", "2", 0.7, alias="candidate"),
            _record("r3", _at(DAY, 3), "t3", "1", 0.6, role="shadow", alias="champion"),
        ]
    )
    rows = monitoring.api_rows({DAY: log})
    assert rows.select("tx_id", "model_version", "fraud_probability").rows() == [
        ("t1", "1", 0.9),
        ("t2", "1", 0.2),
        ("t3", "2", 0.7),
    ]
    labels = _labels([("t1", 1, AS_OF), ("t2", 0, AS_OF), ("t3", 1, AS_OF)])
    table = monitoring.performance_table(monitoring.with_labels(rows, labels, AS_OF), AS_OF)
    assert table[["model_version", "rows", "labelled", "positives"]].to_dict("records") == [
        {"model_version": "1", "rows": 2, "labelled": 2, "positives": 1},
        {"model_version": "2", "rows": 1, "labelled": 1, "positives": 1},
    ]
    # The champion's answers ranked the fraud first: had the shadow scores counted, v1 would
    # have had four rows and v2's score of t1 (0.1) would have spoiled it.
    assert table["pr_auc"].iloc[0] == 1.0


# -- champion and candidate meet their labels ---------------------------------------------------


def test_labelled_pairs_count_a_payment_once_with_the_labels_known_at_the_end_of_the_day() -> None:
    log = _log(
        [
            *_shadowed("r1", _at(DAY, 1), "t1", 0.3, 0.4),
            # The terminal retried t1: its last answer counts, once.
            *_shadowed("r2", _at(DAY, 9), "t1", 0.5, 0.6),
            *_shadowed("r3", _at(DAY, 2), "t2", 0.2, 0.1),
            *_shadowed("r4", _at(DAY, 3), "t3", 0.7, 0.9),  # chargeback after as_of: unknown
            *_shadowed("r5", _at(DAY, 4), None, 0.1, 0.2),  # no tx_id: never labelled
        ]
    )
    from mlops_assets.core.monitoring.live_comparison import paired_requests

    pairs = paired_requests({DAY: log})
    labels = _labels(
        [("t1", 1, AS_OF), ("t2", 0, AS_OF - timedelta(days=1)),
         ("t3", 1, AS_OF + timedelta(microseconds=1))]
    )  # fmt: skip
    labelled = rollout.labelled_pairs(pairs, labels, AS_OF)
    assert labelled.select("tx_id", "request_id", "champion_score", "label").rows() == [
        ("t2", "r3", 0.2, 0),
        ("t3", "r4", 0.7, None),
        (None, "r5", 0.1, None),
        ("t1", "r2", 0.5, 1),
    ]
    evidence = rollout.gate_evidence(
        labelled,
        candidate_version="2",
        champion_version="1",
        days=[DAY],
        min_labelled=2,
        min_gain=0.0,
    )
    # Both rank t1 above t2: a tie at 1.0 is no reason to change models.
    assert (evidence.labelled, evidence.champion_value, evidence.candidate_value) == (2, 1.0, 1.0)
    assert not evidence.allows and "not better" in evidence.reason


def test_only_the_gated_versions_count_as_evidence() -> None:
    from mlops_assets.core.monitoring.live_comparison import paired_requests

    log = _log(
        [
            *_shadowed("a", _at(DAY, 1), "t1", 0.1, 0.9),
            *_shadowed("b", _at(DAY, 2), "t2", 0.9, 0.1),
            # An older candidate (v3) shadowed the same champion: not evidence about v2.
            *_shadowed("c", _at(DAY, 3), "t3", 0.2, 0.3, versions=("1", "3")),
        ]
    )
    labels = _labels([("t1", 1, AS_OF), ("t2", 0, AS_OF), ("t3", 0, AS_OF)])
    labelled = rollout.labelled_pairs(paired_requests({DAY: log}), labels, AS_OF)
    evidence = rollout.gate_evidence(
        labelled, candidate_version="2", champion_version="1", days=[DAY],
        min_labelled=2, min_gain=0.1,
    )  # fmt: skip
    assert evidence.labelled == 2
    assert (evidence.champion_value, evidence.candidate_value) == (0.5, 1.0)
    assert evidence.allows, evidence.reason
    none = rollout.gate_evidence(
        labelled, candidate_version="4", champion_version="1", days=[DAY],
        min_labelled=1, min_gain=0.0, rollout=rollout.Rollout.of("off"),
    )  # fmt: skip
    assert not none.allows
    assert none.reason.endswith(
        "fewer than the 1 required (no request was scored by both; the rollout mode is off)"
    )


# -- the promotion gate -------------------------------------------------------------------------

N_LIVE = 120
UNKNOWN = 20  # the last requests' chargebacks land after the gate's day: not labelled yet


def _weak_and_strong_models() -> tuple[Any, Any]:
    """A champion fitted on shuffled labels (it learned nothing) and a candidate fitted on the
    real ones: the candidate wins the holdout."""
    frame = make_training_set(1500, seed=1)
    x, y = frame[training.MODEL_INPUT_COLUMNS], frame[training.LABEL]
    shuffled = y.sample(frac=1.0, random_state=0).to_numpy()
    weak = training.build_pipeline("logreg", seed=0).fit(x, shuffled)
    strong = training.build_pipeline("logreg", seed=0).fit(x, y)
    return weak, strong


def _live_traffic(store_root: Path, asset_store: Any) -> dict[str, np.ndarray]:
    """Shadow traffic over two days: the candidate (v2) ranks the frauds well, the champion (v1)
    does not; the labels of the last requests arrive after the gate's day. Returns the labelled
    requests' labels and both scores (what the gate must measure)."""
    rng = np.random.default_rng(7)
    label = (np.arange(N_LIVE) % 4 == 0).astype(int)
    champion = rng.uniform(0, 1, N_LIVE).round(4)
    candidate = np.clip(0.55 * label + 0.45 * rng.uniform(0, 1, N_LIVE), 0, 1).round(4)
    by_day: dict[str, list] = {BEFORE: [], DAY: []}
    labels = []
    for i in range(N_LIVE):
        day = BEFORE if i < N_LIVE // 2 else DAY
        ts = _at(day, i)
        tx = f"live{i:04d}"
        by_day[day] += _shadowed(f"req{i:04d}", ts, tx, float(champion[i]), float(candidate[i]))
        available = (
            AS_OF - timedelta(hours=1) if i < N_LIVE - UNKNOWN else AS_OF + timedelta(days=1)
        )
        labels.append((tx, int(label[i]), available))
    # A champion answer without shadow (outside the shadow share) is no evidence.
    by_day[DAY].append(_record("alone", _at(DAY, 500), "live9999", "1", 0.99))
    for day, records in by_day.items():
        storage.write_parquet(
            batch_path(store_root, day, "20250309T000000Z-1-000000"), _log(records)
        )
    frame = _labels(labels)
    asset_store.write_partitions(
        CASE.key("labels"),
        {day: frame.filter(pl.col("tx_id").is_in([r[0] for r in labels[a:b]]))
         for day, (a, b) in {BEFORE: (0, N_LIVE // 2), DAY: (N_LIVE // 2, N_LIVE)}.items()},
    )  # fmt: skip
    known = slice(0, N_LIVE - UNKNOWN)
    return {"label": label[known], "champion": champion[known], "candidate": candidate[known]}


def _gate(resources: dict, instance: dg.DagsterInstance, **config: Any):
    result = dg.materialize(
        ASSETS,
        selection=[CASE.key("champion")],
        resources=resources,
        instance=instance,
        partition_key=DAY,
        run_config={"ops": {"fraud__champion": {"config": config}}},
        raise_on_error=False,
    )
    assert result.success, failures(result)
    return metadata(result, "fraud/champion")


LIVE = {"live_evidence": True, "min_live_labelled": 80, "live_lookback_days": 1}


@pytest.mark.timeout(600)
def test_the_gate_refuses_without_live_evidence_and_promotes_with_it(local_home: Path) -> None:
    resources = resources_for(load_settings())
    tracking, asset_store = resources["mlflow"], resources["asset_store"]
    frame = make_training_set(3000, seed=0)
    dataset = asset_store.versioned(CASE.key("training_set"))
    dataset.promote(dataset.write(DAY, "run-test", frame))
    weak, strong = _weak_and_strong_models()
    assert register(tracking, MODEL_NAME, weak, alias="champion") == "1"
    assert register(tracking, MODEL_NAME, strong, alias="candidate") == "2"

    def tags() -> dict[str, str]:
        return dict(tracking.client.get_model_version(MODEL_NAME, "2").tags)

    def champion() -> str:
        return str(tracking.get_version_by_alias(MODEL_NAME, "champion").version)

    with dg.instance_for_test() as instance:
        # 1. Rollout off: no request was scored by both. The holdout alone would promote.
        refused = _gate(resources, instance, **LIVE)
        assert champion() == "1"
        assert refused["promotion/decision"] == "kept"
        assert refused["live/decision"] == "keep"
        assert refused["live/labelled"] == 0 and refused["live/champion_pr_auc"] is None
        assert refused["live/reason"] == (
            f"only 0 labelled request(s) scored by candidate v2 beside champion v1 over {BEFORE} "
            f".. {DAY}, fewer than the 80 required (no request was scored by both; the rollout "
            "mode is off)"
        )
        assert refused["promotion/reason"].startswith(
            f"kept on live evidence: {refused['live/reason']} (the rule alone: pr_auc "
        )
        # What the holdout alone said is kept beside the veto: it would have promoted.
        assert re.search(
            r"\(the rule alone: pr_auc \S+ vs champion v1 \S+: better by ",
            refused["promotion/reason"],
        )
        assert refused["candidate/pr_auc"] > refused["champion/pr_auc"] + 0.1
        assert tags()["live.decision"] == "keep" and tags()["promotion.decision"] == "kept"
        assert tags()["live.labelled"] == "0" and tags()["live.candidate_pr_auc"] == ""

        # 2. Shadow traffic, but fewer labelled requests than required.
        live = _live_traffic(local_home / ".data", asset_store)
        labelled = len(live["label"])
        few = _gate(resources, instance, **(LIVE | {"min_live_labelled": labelled + 1}))
        assert champion() == "1" and few["live/decision"] == "keep"
        assert few["live/labelled"] == labelled == N_LIVE - UNKNOWN
        assert few["live/reason"].startswith(
            f"only {labelled} labelled request(s) scored by candidate v2 beside champion v1"
        )
        assert few["live/reason"].endswith(
            f"({N_LIVE} payment(s) scored by both, {labelled} labelled so far)"
        )

        # 3. Enough live evidence, but the holdout rule still applies: its margin is not met.
        expected = {
            side: average_precision_score(live["label"], live[side])
            for side in ("champion", "candidate")
        }
        strict = _gate(resources, instance, **(LIVE | {"min_pr_auc_gain": 0.99}))
        assert champion() == "1"
        assert strict["live/decision"] == "promote"
        assert strict["promotion/decision"] == "kept"
        assert "within the margin of 0.99" in strict["promotion/reason"]

        # 4. Enough labelled shadow requests where the candidate is better: promoted.
        promoted = _gate(resources, instance, **LIVE)
        assert champion() == "2"
        assert promoted["promotion/decision"] == "promoted"
        assert promoted["live/decision"] == "promote"
        assert promoted["live/labelled"] == labelled
        assert promoted["live/champion_pr_auc"] == pytest.approx(expected["champion"])
        assert promoted["live/candidate_pr_auc"] == pytest.approx(expected["candidate"])
        assert expected["candidate"] > expected["champion"] + 0.3
        assert promoted["live/days"] == f"{BEFORE} .. {DAY}"
        assert promoted["live/reason"] == (
            f"live pr_auc {expected['candidate']:.4f} (v2) vs {expected['champion']:.4f} (v1) on "
            f"the same {labelled} labelled requests over {BEFORE} .. {DAY}: better by "
            f"{expected['candidate'] - expected['champion']:.4f} (required 0)"
        )
        version_tags = tags()
        assert version_tags["live.decision"] == "promote"
        assert version_tags["promotion.decision"] == "promoted"
        assert version_tags["live.labelled"] == str(labelled)
        assert float(version_tags["live.candidate_pr_auc"]) == pytest.approx(
            expected["candidate"], abs=1e-5
        )
        assert float(version_tags["live.champion_pr_auc"]) == pytest.approx(
            expected["champion"], abs=1e-5
        )
        assert version_tags["live.champion_version"] == "1"


@pytest.mark.timeout(300)
def test_live_evidence_of_other_versions_cannot_decide_a_gate(local_home: Path) -> None:
    from mlops_assets.core import champion as champion_flow
    from mlops_assets.core.monitoring.live_comparison import judge_live_evidence
    from mlops_assets.fraud import promotion

    tracking = resources_for(load_settings())["mlflow"]
    weak, strong = _weak_and_strong_models()
    register(tracking, MODEL_NAME, weak, alias="champion")
    register(tracking, MODEL_NAME, strong, alias="candidate")
    about_v3 = judge_live_evidence(
        metric="pr_auc", higher_is_better=True, candidate_version="3", champion_version="1",
        labelled=500, champion_value=0.1, candidate_value=0.9, min_labelled=1, min_gain=0.0,
    )  # fmt: skip
    rule = promotion.rule(min_pr_auc_gain=0.0, max_recall_loss=1.0)
    with pytest.raises(ValueError, match="about candidate v3 against champion v1 cannot decide"):
        champion_flow.gate(tracking, MODEL_NAME, "2", rule, compared_with="1", live=about_v3)
    assert str(tracking.get_version_by_alias(MODEL_NAME, "champion").version) == "1"
    assert "live.decision" not in tracking.client.get_model_version(MODEL_NAME, "2").tags
