"""The fraud API's scoring of one payment: online features as the model saw them in training,
unknown cards refused (or scored as new, by choice), and requests validated before scoring."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.fraud import schema
from mlops_assets.fraud.serving import (
    CARD_FEATURES,
    ENDPOINT,
    MERCHANT_FEATURES,
    ONLINE_FEATURES,
    FraudModel,
    FraudRequest,
    predict,
    prepare,
)
from mlops_assets.serving.endpoints import (
    FeatureRow,
    ModelInfo,
    RequestError,
    Services,
)
from mlops_assets_tests.fixtures.fraud_online import FRAUD_REQUEST
from mlops_assets_tests.fixtures.served_models import fit_fraud_pipeline

CARD = schema.card_feature_columns()
MERCHANT = schema.merchant_feature_columns()
ZERO_WHEN_EMPTY = ("_tx_count_", "_amount_sum_", "_distinct_merchants_", "_fraud_count_")


def present_value(name: str) -> Any:
    """A stored value as Feast hands it back: counts as ints, amounts as floats."""
    if any(m in name for m in ("_tx_count_", "_distinct_merchants_", "_fraud_count_")):
        return 2
    return 12.5


class FakeOnline:
    """An online store of one card and one merchant, with Feast's status per feature."""

    def __init__(
        self,
        card: str | Mapping[str, str] = "PRESENT",
        merchant: str | Mapping[str, str] = "PRESENT",
    ) -> None:
        self.status = {
            **{c: card if isinstance(card, str) else card.get(c, "PRESENT") for c in CARD},
            **{
                m: merchant if isinstance(merchant, str) else merchant.get(m, "PRESENT")
                for m in MERCHANT
            },
        }
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.as_of: list[float | None] = []

    def read(
        self, features: Sequence[str], entity: Mapping[str, Any], *, as_of: float | None = None
    ) -> FeatureRow:
        self.calls.append((list(features), dict(entity)))
        self.as_of.append(as_of)
        names = [f.split(":", 1)[1] for f in features]  # Feast answers with bare names
        return FeatureRow(
            values={n: present_value(n) if self.status[n] == "PRESENT" else None for n in names},
            status={n: self.status[n] for n in names},
        )


class RecordingModel:
    """A model that remembers the rows it scored."""

    def __init__(self, probability: float = 0.25) -> None:
        self.categories: dict[str, frozenset[str]] = {}  # no unseen category to report
        self.probability = probability
        self.rows: list[dict[str, Any]] = []

    def score(self, row: dict[str, Any]) -> float:
        self.rows.append(dict(row))
        return self.probability


def request(**overrides: Any) -> FraudRequest:
    return FraudRequest.model_validate({**FRAUD_REQUEST, **overrides})


def services(online: Any, **options: str) -> Services:
    return Services(online=online, options=options)


def test_present_features_are_scored_as_floats_with_the_request() -> None:
    online, model = FakeOnline(), RecordingModel(0.25)

    prediction = predict(model, request(), services(online))  # type: ignore[arg-type]

    assert online.calls == [(ONLINE_FEATURES, {"card_id": 3, "merchant_id": 5})]
    # The features are read as of the payment, not of the wall clock.
    assert online.as_of == [datetime(2026, 11, 22, 2, 14, tzinfo=UTC).timestamp()]
    assert ONLINE_FEATURES == CARD_FEATURES + MERCHANT_FEATURES
    (row,) = model.rows
    features = {name: row[name] for name in CARD + MERCHANT}
    assert features == {name: float(present_value(name)) for name in CARD + MERCHANT}
    assert all(type(v) is float for v in features.values())
    assert {k: v for k, v in row.items() if k not in features} == {
        "amount": 120.5,
        "merchant_category": "electronics",
        "channel": "ecom",
        "country": "FR",
        "event_ts": datetime(2026, 11, 22, 2, 14, tzinfo=UTC),
    }
    assert prediction.value == 0.25
    assert prediction.body == {
        "tx_id": "t-1",
        "fraud_probability": 0.25,
        "event_ts": "2026-11-22T02:14:00+00:00",
        "online_features": {"card": "present", "merchant": "present"},
    }
    assert prediction.features == features


@pytest.mark.parametrize(
    ("missing", "field", "entity_id"),
    [("card", "card_id", 3), ("merchant", "merchant_id", 5)],
)
@pytest.mark.parametrize("options", [{}, {"unknown_entities": "reject"}])
def test_an_entity_the_store_never_saw_is_a_404_by_default(
    missing: str, field: str, entity_id: int, options: dict[str, str]
) -> None:
    online, model = FakeOnline(**{missing: "NOT_FOUND"}), RecordingModel()

    with pytest.raises(RequestError) as raised:
        predict(model, request(), services(online, **options))  # type: ignore[arg-type]

    error = raised.value
    assert (error.field, error.status, error.kind) == (field, 404, "not_found")
    assert error.message.startswith(f"{field} {entity_id} has no features in the online store")
    assert "MLOPS_SERVING_UNKNOWN_ENTITIES=no_history" in error.message
    assert error.detail()[0]["loc"] == ["body", field]
    assert model.rows == []


def assert_scored_as_without_history(row: Mapping[str, Any], names: list[str]) -> None:
    for name in names:
        if any(m in name for m in ZERO_WHEN_EMPTY):
            assert row[name] == 0.0, name
        else:  # a mean or a maximum of an empty window is unknown, never zero
            assert math.isnan(row[name]), name


def test_an_unknown_card_is_scored_without_history_when_the_policy_says_so() -> None:
    online, model = FakeOnline(card="NOT_FOUND"), RecordingModel()

    prediction = predict(
        model,  # type: ignore[arg-type]
        request(),
        services(online, unknown_entities="no_history"),
    )

    (row,) = model.rows
    assert_scored_as_without_history(row, CARD)
    assert {n for n in CARD if row[n] == 0.0} == {
        n for n in CARD if "_tx_count_" in n or "_amount_sum_" in n or "_distinct_" in n
    }
    assert all(row[n] == float(present_value(n)) for n in MERCHANT)
    assert prediction.body["online_features"] == {"card": "unknown", "merchant": "present"}


def test_an_unknown_merchant_without_history_has_zero_fraud_counts() -> None:
    online, model = FakeOnline(merchant="NOT_FOUND"), RecordingModel()

    predict(model, request(), services(online, unknown_entities="no_history"))  # type: ignore[arg-type]

    (row,) = model.rows
    assert_scored_as_without_history(row, MERCHANT)
    assert [row[f"merchant_fraud_count_{w}"] for w in schema.FRAUD_WINDOWS] == [0.0, 0.0, 0.0]


def test_a_snapshot_older_than_the_ttl_is_scored_as_no_recent_activity() -> None:
    online, model = FakeOnline(card="OUTSIDE_MAX_AGE", merchant="OUTSIDE_MAX_AGE"), RecordingModel()

    # The default policy: stale is not unknown, so no 404.
    prediction = predict(model, request(), services(online))  # type: ignore[arg-type]

    (row,) = model.rows
    assert_scored_as_without_history(row, CARD + MERCHANT)
    assert prediction.body["online_features"] == {"card": "stale", "merchant": "stale"}


def test_a_snapshot_written_after_the_payment_is_not_used() -> None:
    online = FakeOnline(card="AFTER_AS_OF", merchant="PRESENT")
    model = RecordingModel()

    prediction = predict(model, request(), services(online))  # type: ignore[arg-type]

    (row,) = model.rows
    # Every card feature is missing, counts included: the card had activity, only not known as of
    # the payment, so nothing is zero-filled (that would be a guess) and no future value leaks.
    assert all(math.isnan(row[name]) for name in CARD)
    assert row["merchant_tx_count_1d"] == 2.0
    assert prediction.body["online_features"] == {"card": "future", "merchant": "present"}


def test_a_null_feature_is_missing_not_zero() -> None:
    nulls = {"card_amount_mean_1d": "NULL_VALUE", "card_tx_count_1h": "NULL_VALUE"}
    online, model = FakeOnline(card=nulls), RecordingModel()

    prediction = predict(model, request(), services(online))  # type: ignore[arg-type]

    (row,) = model.rows
    assert math.isnan(row["card_amount_mean_1d"])
    assert math.isnan(row["card_tx_count_1h"])  # null is not an empty window: not filled
    assert row["card_amount_sum_1h"] == 12.5
    # A null is a real answer of the store (an empty window's mean): the row is present.
    assert prediction.body["online_features"] == {"card": "present", "merchant": "present"}


def test_a_row_mixing_statuses_is_summarized_as_partial() -> None:
    online = FakeOnline(card={"card_tx_count_30d": "OUTSIDE_MAX_AGE"})

    prediction = predict(RecordingModel(), request(), services(online))  # type: ignore[arg-type]

    assert prediction.body["online_features"] == {"card": "partial", "merchant": "present"}


def test_missing_features_are_logged_as_none_never_nan() -> None:
    online = FakeOnline(card="OUTSIDE_MAX_AGE", merchant={"merchant_amount_max_7d": "NULL_VALUE"})

    prediction = predict(RecordingModel(), request(), services(online))  # type: ignore[arg-type]

    logged = prediction.features
    assert logged is not None
    assert set(logged) == set(CARD + MERCHANT)
    assert {n for n, v in logged.items() if v is None} == {
        "card_amount_mean_1h",
        "card_amount_mean_1d",
        "card_amount_mean_7d",
        "card_amount_mean_30d",
        "card_amount_max_1h",
        "card_amount_max_1d",
        "card_amount_max_7d",
        "card_amount_max_30d",
        "merchant_amount_max_7d",
    }
    assert logged["card_tx_count_1d"] == 0.0
    json.dumps(logged, allow_nan=False)  # the request log's JSON refuses NaN


def test_no_online_store_is_a_503() -> None:
    model = RecordingModel()

    with pytest.raises(RequestError) as raised:
        predict(model, request(), Services(online=None))  # type: ignore[arg-type]

    assert raised.value.status == 503
    assert raised.value.field is None
    assert raised.value.detail()[0]["loc"] == ["body"]
    assert "online feature store" in raised.value.message
    assert model.rows == []


def test_the_event_time_defaults_to_now_in_utc() -> None:
    model = RecordingModel()
    body = {k: v for k, v in FRAUD_REQUEST.items() if k != "event_ts"}

    before = datetime.now(UTC)
    prediction = predict(model, FraudRequest(**body), services(FakeOnline()))  # type: ignore[arg-type]
    after = datetime.now(UTC)

    event_ts = model.rows[0]["event_ts"]
    assert event_ts.utcoffset() == timedelta(0)
    assert before <= event_ts <= after
    assert prediction.body["event_ts"] == event_ts.isoformat()


def test_an_event_time_with_an_offset_is_answered_in_utc() -> None:
    model = RecordingModel()
    paris = datetime(2026, 11, 22, 3, 14, tzinfo=timezone(timedelta(hours=1)))

    prediction = predict(model, request(event_ts=paris), services(FakeOnline()))  # type: ignore[arg-type]

    assert prediction.body["event_ts"] == "2026-11-22T02:14:00+00:00"
    assert model.rows[0]["event_ts"] == paris


# -- with a real model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fraud_model() -> FraudModel:
    return prepare(fit_fraud_pipeline(), ModelInfo("fraud_classifier", "1", None))


def test_a_prepared_champion_scores_as_its_pipeline_and_reports_unseen_categories(
    fraud_model: FraudModel,
) -> None:
    from mlops_assets.fraud.training import MODEL_INPUT_COLUMNS

    assert fraud_model.categories["country"] == frozenset({"DE", "FR", "US", "XX"})

    seen = predict(fraud_model, request(country="FR"), services(FakeOnline()))
    unseen = predict(fraud_model, request(country="ZZ"), services(FakeOnline()))

    assert "unseen_categories" not in seen.body
    assert unseen.body["unseen_categories"] == {"country": "ZZ"}
    for prediction, country in ((seen, "FR"), (unseen, "ZZ")):
        row = {
            **(prediction.features or {}),
            "amount": 120.5,
            "merchant_category": "electronics",
            "channel": "ecom",
            "country": country,
            "event_ts": datetime(2026, 11, 22, 2, 14, tzinfo=UTC),
        }
        frame = pd.DataFrame([row], columns=MODEL_INPUT_COLUMNS)
        expected = float(fraud_model.pipeline.predict_proba(frame)[0, 1])
        assert prediction.value == pytest.approx(expected, abs=1e-9)
        assert 0.0 < prediction.value < 1.0
        assert prediction.body["fraud_probability"] == prediction.value


def test_the_endpoint_declares_what_the_app_needs() -> None:
    assert ENDPOINT.use_case == "fraud"
    assert ENDPOINT.model_name == "fraud_classifier"
    assert ENDPOINT.request is FraudRequest
    assert ENDPOINT.predict is predict
    assert ENDPOINT.prepare is prepare
    assert ENDPOINT.needs_online_features is True


# -- the request model ---------------------------------------------------------------------------


def test_a_valid_request_parses_to_typed_values() -> None:
    parsed = request()

    assert parsed.card_id == 3
    assert parsed.event_ts == datetime(2026, 11, 22, 2, 14, tzinfo=UTC)
    assert FraudRequest(**{k: v for k, v in FRAUD_REQUEST.items() if k != "tx_id"}).tx_id is None


@pytest.mark.parametrize(
    ("change", "field", "error_type"),
    [
        ({"terminal": "T-9"}, "terminal", "extra_forbidden"),
        ({"channel": "web"}, "channel", "literal_error"),
        ({"merchant_category": "casino"}, "merchant_category", "literal_error"),
        ({"country": "fr"}, "country", "string_pattern_mismatch"),
        ({"country": "FRA"}, "country", "string_pattern_mismatch"),
        # No offset, or not a text: an ISO 8601 time with its offset is required.
        ({"event_ts": "2026-11-22T02:14:00"}, "event_ts", "value_error"),
        ({"event_ts": 0}, "event_ts", "value_error"),
        ({"event_ts": "1700000000"}, "event_ts", "value_error"),
        # Outside the years the model can place in time (pandas' range crashed the scoring).
        ({"event_ts": "0079-11-03T13:06:33Z"}, "event_ts", "value_error"),
        ({"event_ts": "2262-04-12T00:00:00Z"}, "event_ts", "value_error"),
        ({"event_ts": "9999-12-31T23:59:59Z"}, "event_ts", "value_error"),
        ({"amount": 0}, "amount", "greater_than"),
        ({"amount": float("nan")}, "amount", "finite_number"),
        ({"amount": True}, "amount", "float_type"),
        ({"card_id": -1}, "card_id", "greater_than_equal"),
        ({"card_id": 2**63}, "card_id", "less_than_equal"),
        ({"merchant_id": 2**64}, "merchant_id", "less_than_equal"),
        ({"card_id": True}, "card_id", "int_type"),
        ({"card_id": "3"}, "card_id", "int_type"),  # a text of digits is not a number
    ],
)
def test_a_malformed_request_is_refused_naming_its_field(
    change: dict[str, Any], field: str, error_type: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        FraudRequest.model_validate({**FRAUD_REQUEST, **change})

    assert [(e["loc"], e["type"]) for e in raised.value.errors()] == [((field,), error_type)]
