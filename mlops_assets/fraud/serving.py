"""The fraud API: score one card payment with the champion, from the request and Feast's online
store.

A request carries what the payment terminal knows (card, merchant, amount, category, channel,
country, time). The card's and the merchant's recent activity come from the online store, the
latest snapshots that ``fraud/feature_store`` materialized (Redis on the stack profile).

Online features are read as of the payment's ``event_ts`` (the request time when left out), as
Feast's TTL works for an entity row: a snapshot is used when it was written at most the views' TTL
(30 days) before the payment and not after it. The answer's ``online_features`` says, per view,
whether its features were ``present`` (used), ``stale``, ``future``, ``unknown`` or ``partial``.

Missing online features, handled as the model saw them in training:

* the key has a snapshot older than the views' TTL before the payment (``stale``): nothing
  happened in any window, so counts and sums are 0 and means and maxima are missing, which is
  exactly how the training set describes a card or merchant with no recent history; the pipeline
  imputes the missing values (median plus a missing-indicator column);
* the key's snapshot was written after the payment (``future``, a payment replayed or sent late):
  it describes activity that had not happened yet, so using it would leak the future; every
  feature is missing (not even the counts are known to be zero) and imputed as in training;
* a feature is null (``NULL_VALUE``, the mean of an empty window): missing, as in training;
* the key was never materialized (``NOT_FOUND``): by default a 404 naming ``card_id`` or
  ``merchant_id``, because an id the feature pipeline has never seen is more often a wrong id
  or an online store that was not materialized than a brand-new card. Set
  ``MLOPS_SERVING_UNKNOWN_ENTITIES=no_history`` to score such a payment as one without history
  (the first payment of a new card, as the training set holds it).

Never a silent zero for a value that is unknown: only window counts and sums, whose true value
for an empty window is zero, are filled.

Limitation, stated: a snapshot describes the windows that ended just before the key's latest
payment seen by the daily feature pipeline, not the windows ending now. A streaming update of the
online store (Feast push sources) would close that gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from mlops_assets.fraud import schema
from mlops_assets.serving.endpoints import (
    ERA,
    MAX_ENTITY_ID,
    Endpoint,
    FeatureRow,
    Integer,
    ModelInfo,
    Moment,
    Number,
    Prediction,
    RequestError,
    Services,
    logged_features,
    request_config,
)

MODEL_NAME = schema.CASE.model_name
UNKNOWN_ENTITIES_OPTION = "unknown_entities"  # MLOPS_SERVING_UNKNOWN_ENTITIES: reject | no_history

CARD_FEATURES = [f"card_features:{c}" for c in schema.card_feature_columns()]
MERCHANT_FEATURES = [f"merchant_features:{c}" for c in schema.merchant_feature_columns()]
ONLINE_FEATURES = CARD_FEATURES + MERCHANT_FEATURES
_CARD_NAMES = frozenset(schema.card_feature_columns())
_MERCHANT_NAMES = frozenset(schema.merchant_feature_columns())
# Aggregates whose value over an empty window is known to be zero.
_ZERO_WHEN_EMPTY = ("_tx_count_", "_amount_sum_", "_distinct_merchants_", "_fraud_count_")


class FraudRequest(BaseModel):
    """One card payment, as the terminal reports it."""

    model_config = request_config(
        {
            "tx_id": "t-000123",
            "card_id": 42,
            "merchant_id": 7,
            "amount": 59.9,
            "merchant_category": "electronics",
            "channel": "ecom",
            "country": "US",
            "event_ts": "2026-11-22T02:14:00Z",
        },
    )

    tx_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="The payment's id, echoed back."
    )
    # Integer and Number: JSON true/false are not numbers (pydantic's lax mode reads them as 1, 0).
    card_id: Integer = Field(
        ge=0,
        le=MAX_ENTITY_ID,
        description="The card; its recent activity is read online.",
    )
    merchant_id: Integer = Field(
        ge=0,
        le=MAX_ENTITY_ID,
        description="The merchant; its recent activity is read online.",
    )
    amount: Number = Field(gt=0, le=1_000_000, allow_inf_nan=False, description="Amount, in USD.")
    merchant_category: Literal[schema.MERCHANT_CATEGORIES] = Field(  # type: ignore[valid-type]
        description="The merchant's category."
    )
    channel: Literal[schema.CHANNELS] = Field(description="How the card was used.")  # type: ignore[valid-type]
    country: str = Field(
        pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2 country of the merchant."
    )
    event_ts: Moment | None = Field(
        default=None,
        description="When the payment happened: an ISO 8601 date and time with its UTC offset "
        f"('2026-11-22T02:14:00Z'), {ERA}; the time of the request when left out. The hour of "
        "the day is a model input, and the online features are read as of this time.",
    )


@dataclass(frozen=True)
class FraudModel:
    """A loaded champion: the pipeline, its compiled scorer when the proof held, and the
    categories it was trained on (to report unseen ones)."""

    pipeline: Any
    scorer: Any | None
    scorer_note: str
    categories: dict[str, frozenset[str]]

    def score(self, row: dict[str, Any]) -> float:
        if self.scorer is not None:
            return float(self.scorer.score_row(row))
        import pandas as pd

        from mlops_assets.fraud.training import MODEL_INPUT_COLUMNS

        frame = pd.DataFrame([row], columns=MODEL_INPUT_COLUMNS)
        return float(self.pipeline.predict_proba(frame)[0, 1])


def prepare(pipeline: Any, info: ModelInfo) -> FraudModel:
    """Compile the champion's scorer (proven equal to the pipeline on probe rows, else the
    pipeline itself serves) and note its training categories."""
    from mlops_assets.fraud.scoring import verified_scorer
    from mlops_assets.fraud.training import CATEGORICAL_FEATURES

    scorer, note = verified_scorer(pipeline)
    categories: dict[str, frozenset[str]] = {}
    try:
        encoder = (
            pipeline.named_steps["preprocess"]
            .named_transformers_["categorical"]
            .named_steps["one_hot"]
        )
        for column, values in zip(CATEGORICAL_FEATURES, encoder.categories_, strict=True):
            categories[column] = frozenset(str(v) for v in values)
    except (AttributeError, KeyError, ValueError):
        pass  # another layout: unseen categories are then not reported
    return FraudModel(pipeline=pipeline, scorer=scorer, scorer_note=note, categories=categories)


def _fill(row: FeatureRow, key: str, key_value: int, policy: str) -> dict[str, float]:
    statuses = set(row.status.values())
    if statuses == {"NOT_FOUND"} and policy != "no_history":
        raise RequestError(
            key,
            f"{key} {key_value} has no features in the online store: the feature pipeline never "
            "saw it (a wrong id, or fraud/feature_store was not materialized). Set "
            "MLOPS_SERVING_UNKNOWN_ENTITIES=no_history to score unknown ids as having no history.",
            status=404,
            kind="not_found",
        )
    values: dict[str, float] = {}
    for name, value in row.values.items():
        # AFTER_AS_OF is not zero-filled: the card had activity, only not known as of the payment.
        if row.status[name] == "PRESENT" and value is not None:
            values[name] = float(value)
        elif row.status[name] in ("OUTSIDE_MAX_AGE", "NOT_FOUND") and any(
            m in name for m in _ZERO_WHEN_EMPTY
        ):
            values[name] = 0.0
        else:
            values[name] = math.nan
    return values


def predict(model: FraudModel, request: FraudRequest, services: Services) -> Prediction:
    """The fraud probability of one payment, with the online features it was scored on."""
    if services.online is None:
        raise RequestError(
            None, "fraud scoring needs the online feature store, and none is configured", status=503
        )
    policy = services.options.get(UNKNOWN_ENTITIES_OPTION, "reject")
    event_ts = request.event_ts or datetime.now(UTC)
    # One read for both views, as of the payment: the TTL is measured back from event_ts (as
    # Feast does for an entity row), and a snapshot written after it is not used.
    both = services.online.read(
        ONLINE_FEATURES,
        {"card_id": request.card_id, "merchant_id": request.merchant_id},
        as_of=event_ts.timestamp(),
    )
    card, merchant = _split(both, _CARD_NAMES), _split(both, _MERCHANT_NAMES)
    features = {
        **_fill(card, "card_id", request.card_id, policy),
        **_fill(merchant, "merchant_id", request.merchant_id, policy),
    }
    row = {
        **features,
        "amount": request.amount,
        "merchant_category": request.merchant_category,
        "channel": request.channel,
        "country": request.country,
        "event_ts": event_ts,
    }
    probability = model.score(row)
    unseen = {
        column: row[column]
        for column, known in model.categories.items()
        if row[column] is not None and row[column] not in known
    }
    status = {
        "card": _summary(card),
        "merchant": _summary(merchant),
    }
    body: dict[str, Any] = {
        "tx_id": request.tx_id,
        "fraud_probability": probability,
        "event_ts": event_ts.astimezone(UTC).isoformat(),
        "online_features": status,
    }
    if unseen:
        body["unseen_categories"] = unseen
    return Prediction(body=body, value=probability, features=logged_features(features))


def _split(row: FeatureRow, names: frozenset[str]) -> FeatureRow:
    return FeatureRow(
        values={k: v for k, v in row.values.items() if k in names},
        status={k: v for k, v in row.status.items() if k in names},
    )


def _summary(row: FeatureRow) -> str:
    """One word for a view's row: ``present`` (used), ``stale`` (written more than the TTL before
    the payment), ``future`` (written after the payment: not used), ``unknown`` (never
    materialized) or ``partial``."""
    statuses = set(row.status.values()) - {"NULL_VALUE"}
    if statuses <= {"PRESENT"}:
        return "present"
    if statuses == {"OUTSIDE_MAX_AGE"}:
        return "stale"
    if statuses == {"AFTER_AS_OF"}:
        return "future"
    if statuses == {"NOT_FOUND"}:
        return "unknown"
    return "partial"


ENDPOINT = Endpoint.of(
    schema.CASE,
    request=FraudRequest,
    predict=predict,
    prepare=prepare,
    flavor="sklearn",
    needs_online_features=True,
    # A canary routes by card: all of a card's payments are scored by one version, so a
    # cardholder's answers never flip between two models from one payment to the next.
    entity_key="card_id",
    summary="The probability that a card payment is fraud, from the payment and the card's and "
    "merchant's recent activity in the online store.",
)
