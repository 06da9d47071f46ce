"""The fraud use case's data contracts: columns, types and the windows of the features.

Bronze is two event streams, keyed by ``tx_id``:

* ``transactions``: one row per card payment, at ``event_ts`` (UTC, second resolution);
* ``labels``: one row per transaction once its outcome is known: ``is_fraud`` becomes available
  at ``label_available_ts`` (a chargeback arrives days after the payment).

Silver holds one feature snapshot per transaction, for the card and for the merchant, computed
from the history strictly before the transaction (see :mod:`mlops_assets.fraud.features`).

Pure definitions, no Dagster. The Arrow schemas (``TRANSACTIONS``, ``LABELS``,
``CARD_FEATURES``, ``MERCHANT_FEATURES``) are built on first access: the code location imports
this module for the names and windows, and should not pay for pyarrow at load.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from mlops_assets.core.use_case import UseCase

if TYPE_CHECKING:
    import pyarrow as pa

# Its asset keys (`fraud/<name>`), group, op names and the model it registers.
CASE = UseCase("fraud", model_name="fraud_classifier")
USE_CASE = CASE.name

# Column names of the bronze contracts, without pyarrow (the GX suites are declared at load).
TRANSACTION_COLUMNS = (
    "tx_id",
    "event_ts",
    "card_id",
    "merchant_id",
    "amount",
    "merchant_category",
    "channel",
    "country",
)
LABEL_COLUMNS = ("tx_id", "event_ts", "is_fraud", "label_available_ts")


def _transactions(pa: Any) -> pa.Schema:
    UTC_TS = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("tx_id", pa.string()),
            ("event_ts", UTC_TS),
            ("card_id", pa.int64()),
            ("merchant_id", pa.int64()),
            ("amount", pa.float64()),
            ("merchant_category", pa.string()),
            ("channel", pa.string()),
            ("country", pa.string()),
        ]
    )


def _labels(pa: Any) -> pa.Schema:
    UTC_TS = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("tx_id", pa.string()),
            ("event_ts", UTC_TS),
            ("is_fraud", pa.int8()),
            ("label_available_ts", UTC_TS),
        ]
    )


CHANNELS = ("pos", "ecom", "contactless", "atm")
MERCHANT_CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "electronics",
    "travel",
    "fashion",
    "digital_goods",
    "pharmacy",
    "entertainment",
    "utilities",
)

# Rolling windows of the features. Each ends one second before the transaction it describes.
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
FRAUD_WINDOWS = ("1d", "7d", "30d")
# The longest window: how far back a day's features read bronze.
LOOKBACK = max(WINDOWS.values())

CARD_AGGREGATES = ("tx_count", "amount_sum", "amount_mean", "amount_max", "distinct_merchants")
MERCHANT_AGGREGATES = ("tx_count", "amount_sum", "amount_mean", "amount_max")


def card_feature_columns() -> list[str]:
    return [f"card_{agg}_{w}" for w in WINDOWS for agg in CARD_AGGREGATES]


def merchant_feature_columns() -> list[str]:
    return [f"merchant_{agg}_{w}" for w in WINDOWS for agg in MERCHANT_AGGREGATES] + [
        f"merchant_fraud_count_{w}" for w in FRAUD_WINDOWS
    ]


def _feature_schema(pa: Any, key: str, columns: list[str]) -> pa.Schema:
    counts = ("_tx_count_", "_distinct_merchants_", "_fraud_count_")
    UTC_TS = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [("tx_id", pa.string()), (key, pa.int64()), ("event_ts", UTC_TS)]
        + [(c, pa.int64() if any(m in c for m in counts) else pa.float64()) for c in columns]
    )


_SCHEMAS = {
    "TRANSACTIONS": _transactions,
    "LABELS": _labels,
    # One snapshot per transaction: the card's (merchant's) activity in the windows before it.
    "CARD_FEATURES": lambda pa: _feature_schema(pa, "card_id", card_feature_columns()),
    "MERCHANT_FEATURES": lambda pa: _feature_schema(pa, "merchant_id", merchant_feature_columns()),
    "UTC_TS": lambda pa: pa.timestamp("us", tz="UTC"),
}


@cache
def _build(name: str) -> Any:
    import pyarrow

    return _SCHEMAS[name](pyarrow)


def __getattr__(name: str) -> Any:
    if name in _SCHEMAS:
        built = _build(name)
        # The names above and the Arrow schemas are one contract.
        expected = {"TRANSACTIONS": TRANSACTION_COLUMNS, "LABELS": LABEL_COLUMNS}.get(name)
        if expected is not None and tuple(built.names) != expected:
            raise RuntimeError(f"schema.{name} and its column list disagree")
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
