"""The promotion gate: the pure decision, and the alias it moves in a real MLflow registry."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.evaluation import Guardrail, PromotionRule, decide_promotion
from mlops_assets.core.profiles import load_settings
from mlops_assets.core.tracking import CHAMPION, MlflowTracking

AUC = PromotionRule(metric="roc_auc", higher_is_better=True, min_improvement=0.01)
RMSE = PromotionRule(metric="rmse", higher_is_better=False)


@pytest.mark.parametrize(
    ("rule", "candidate", "champion", "has_champion", "promote", "reason"),
    [
        (AUC, 0.80, None, False, True, "no champion yet"),
        (AUC, 0.85, 0.80, True, True, "better by 0.05"),
        (AUC, 0.805, 0.80, True, False, "within the margin of 0.01"),
        (AUC, 0.80, 0.80, True, False, "not better"),
        (AUC, 0.70, 0.80, True, False, "not better"),
        (RMSE, 9.0, 10.0, True, True, "better by 1"),
        (RMSE, 11.0, 10.0, True, False, "not better (lower is better)"),
        (AUC, float("nan"), 0.8, True, False, "not evaluated"),
        (AUC, None, None, False, False, "not evaluated"),
        (AUC, 0.75, None, True, True, "has no roc_auc to compare"),
    ],
)
def test_gate_decisions(rule, candidate, champion, has_champion, promote, reason) -> None:
    decision = decide_promotion(
        rule,
        {rule.metric: candidate},
        {rule.metric: champion} if champion is not None else None,
        has_champion=has_champion,
        champion_version="3",
    )
    assert decision.promote is promote
    assert reason in decision.reason
    assert decision.as_metadata()["promotion/decision"] == ("promoted" if promote else "kept")


def test_rule_refuses_a_negative_margin() -> None:
    with pytest.raises(ValueError, match="min_improvement"):
        PromotionRule(metric="rmse", higher_is_better=False, min_improvement=-1)


GUARDED = PromotionRule(
    metric="pr_auc",
    higher_is_better=True,
    min_improvement=0.01,
    guardrails=(Guardrail("recall_at_precision", True, 0.02),),
)


@pytest.mark.parametrize(
    ("candidate", "promote", "reason"),
    [
        ({"pr_auc": 0.70, "recall_at_precision": 0.49}, True, "guardrails held"),
        ({"pr_auc": 0.70, "recall_at_precision": 0.40}, False, "worse by 0.1 (allowed 0.02)"),
        ({"pr_auc": 0.70}, False, "guardrail recall_at_precision is not measured"),
        ({"pr_auc": 0.60, "recall_at_precision": 0.90}, False, "not better"),
    ],
)
def test_guardrail_blocks_a_candidate_that_wins_the_headline_metric(
    candidate: dict, promote: bool, reason: str
) -> None:
    champion = {"pr_auc": 0.65, "recall_at_precision": 0.50}
    decision = decide_promotion(
        GUARDED, candidate, champion, has_champion=True, champion_version="1"
    )
    assert decision.promote is promote
    assert reason in decision.reason


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(a=finite, b=finite, margin=st.floats(min_value=0, max_value=10), higher=st.booleans())
def test_two_models_never_both_beat_each_other(a, b, margin, higher) -> None:
    rule = PromotionRule(metric="m", higher_is_better=higher, min_improvement=margin)
    a_over_b = decide_promotion(rule, {"m": a}, {"m": b}, has_champion=True).promote
    b_over_a = decide_promotion(rule, {"m": b}, {"m": a}, has_champion=True).promote
    assert not (a_over_b and b_over_a)
    if a_over_b:
        assert (a - b if higher else b - a) > margin
    if a == b:
        assert not a_over_b


@pytest.fixture
def tracking(local_home) -> MlflowTracking:
    return MlflowTracking.from_settings(load_settings())


def _register(tracking: MlflowTracking, name: str, auc: float) -> str:
    """Log a tiny model whose run carries ``roc_auc=auc`` and register it as a candidate."""
    import mlflow
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    client = tracking.client
    experiment_id = tracking.experiment_id("gate_test")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "roc_auc", auc)
    with mlflow.start_run(run_id=run.info.run_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    client.set_terminated(run.info.run_id)
    return str(tracking.register(info, name).version)


@pytest.fixture
def fluent_mlflow(tracking: MlflowTracking):
    """MLflow's fluent API (used to log the test models) pointed at the test's backend."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking.tracking_uri)
    yield
    mlflow.set_tracking_uri(before)


def test_gate_moves_champion_only_for_a_better_candidate(
    tracking: MlflowTracking, fluent_mlflow
) -> None:
    name = "gate_test.model"

    v1 = _register(tracking, name, 0.80)
    first = tracking.promote(name, v1, AUC)
    assert first.promote and "no champion yet" in first.reason
    assert str(tracking.champion(name).version) == v1

    v2 = _register(tracking, name, 0.805)
    second = tracking.promote(name, v2, AUC)
    assert not second.promote and second.champion_value == pytest.approx(0.80)
    assert str(tracking.champion(name).version) == v1
    tags = tracking.client.get_model_version(name, v2).tags
    assert tags["promotion.decision"] == "kept"
    assert "within the margin" in tags["promotion.reason"]

    v3 = _register(tracking, name, 0.90)
    third = tracking.promote(name, v3, AUC)
    assert third.promote and math.isclose(third.improvement, 0.10)
    champion = tracking.get_version_by_alias(name, CHAMPION)
    assert str(champion.version) == v3
    assert "better by 0.1" in champion.tags["champion.reason"]

    # The gate run again on the version that serves keeps it and rewrites none of its tags.
    again = tracking.promote(name, v3, AUC, candidate_metrics={"roc_auc": 0.90})
    assert not again.promote and again.reason == f"candidate v{v3} already is the champion"
    assert again.champion_value == again.candidate_value == pytest.approx(0.90)
    assert tracking.client.get_model_version(name, v3).tags["promotion.decision"] == "promoted"


def test_a_relative_margin_scales_with_the_champion() -> None:
    rule = PromotionRule(metric="rmse", higher_is_better=False, min_relative_improvement=0.01)
    assert rule.margin(2_000.0) == pytest.approx(20.0)
    kept = decide_promotion(rule, {"rmse": 1_985.0}, {"rmse": 2_000.0}, has_champion=True)
    assert not kept.promote and "within the margin of 20" in kept.reason
    won = decide_promotion(rule, {"rmse": 1_975.0}, {"rmse": 2_000.0}, has_champion=True)
    assert won.promote
    both = PromotionRule(
        metric="rmse", higher_is_better=False, min_improvement=50, min_relative_improvement=0.01
    )
    assert both.margin(2_000.0) == 50
    with pytest.raises(ValueError, match="min_relative_improvement"):
        PromotionRule(metric="rmse", higher_is_better=False, min_relative_improvement=-0.1)
