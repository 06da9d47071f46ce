"""Feast definitions of the fraud use case: the card and merchant snapshots of `fraud/*_features`.

Each snapshot row describes a card's (merchant's) activity in the windows that end one second
before one of its transactions, stamped with that transaction's `event_ts`. Online, the latest
snapshot per card and merchant is served; offline, `core/pit.py` joins them as of each event.
The schema is derived from the data contract in `mlops_assets/fraud/schema.py`, so the two
cannot drift apart.
"""

import pyarrow as pa
from feast import Entity, FeatureView, Field, ValueType
from feast.types import Float64, Int64

from mlops_assets.core.feature_store import offline_file_source
from mlops_assets.fraud import schema

_FEAST_TYPES = {pa.int64(): Int64, pa.float64(): Float64}


def _fields(arrow_schema: pa.Schema, key: str) -> list[Field]:
    skip = {"tx_id", "event_ts"}
    return [
        Field(name=f.name, dtype=_FEAST_TYPES[f.type])
        for f in arrow_schema
        if f.name not in skip and (f.name == key or not f.name.endswith("_id"))
    ]


card = Entity(
    name="card",
    join_keys=["card_id"],
    value_type=ValueType.INT64,
    description="A payment card.",
)
merchant = Entity(
    name="merchant",
    join_keys=["merchant_id"],
    value_type=ValueType.INT64,
    description="A merchant accepting card payments.",
)

# A snapshot older than the longest window says nothing about the card's recent activity.
_TTL = schema.LOOKBACK

card_features = FeatureView(
    name="card_features",
    entities=[card],
    ttl=_TTL,
    schema=_fields(schema.CARD_FEATURES, "card_id"),
    source=offline_file_source(
        schema.USE_CASE,
        "card_features",
        description="One row per transaction: the card's activity in the windows before it.",
    ),
    online=True,
    tags={"use_case": schema.USE_CASE},
)

merchant_features = FeatureView(
    name="merchant_features",
    entities=[merchant],
    ttl=_TTL,
    schema=_fields(schema.MERCHANT_FEATURES, "merchant_id"),
    source=offline_file_source(
        schema.USE_CASE,
        "merchant_features",
        description=(
            "One row per transaction: the merchant's activity and the fraud labels known before it."
        ),
    ),
    online=True,
    tags={"use_case": schema.USE_CASE},
)
