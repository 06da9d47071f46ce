"""The training set of day D: the labelled transactions of a window of days, each joined with the
card and merchant snapshots as of its own time (point-in-time correct).

* **Which days**: the ``window_days`` days ending ``maturity_days`` before D: the labels of the
  last days may still change (a chargeback arrives days after the payment).
* **Which labels**: those known by the end of D, never later; a payment without one is left out
  (counted in the metadata).
* **The join**: Feast's feature views applied point in time (:mod:`mlops_assets.core.pit`), the
  one join batch scoring uses too. A row joined with a snapshot taken after its transaction is a
  leak: such a version is written, for inspection, but never made current.

Each day's set is a versioned dataset in the asset store (``dt=<day>/run_id=<run>/``, with
``_LATEST`` and ``_CURRENT``); the models and the promotion gate read the current version
(:func:`load_current`).

Polars, pandas and the join are imported inside functions: the code location imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    import polars as pl

    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.feature_store import FeastFeatureStore
    from mlops_assets.core.pit import FeatureSource
    from mlops_assets.core.storage import DatasetVersion

SNAPSHOT_VIEWS = ("card_features", "merchant_features")
# What a training set is made of, by asset name (bronze, then the snapshots).
INPUTS = ("transactions", "labels", *SNAPSHOT_VIEWS)

LEAKAGE_CHECK = "snapshots_precede_events"
FRAUD_SHARE_CHECK = "fraud_share_within_bounds"


def window(day: str, *, window_days: int, maturity_days: int) -> list[str]:
    """The transaction days of the training set of ``day``, oldest first."""
    last = date.fromisoformat(day) - timedelta(days=maturity_days)
    return [
        (last - timedelta(days=offset)).isoformat() for offset in range(window_days - 1, -1, -1)
    ]


def label_cutoff(day: str) -> datetime:
    """The end of ``day`` (UTC): labels that became available later were not known on D."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)


def join_snapshots(
    feature_store: FeastFeatureStore,
    transactions: pl.DataFrame,
    snapshots: Mapping[str, pl.DataFrame],
) -> tuple[pl.DataFrame, list[FeatureSource]]:
    """Each transaction with the card and merchant ``snapshots`` (by view) as of its own time,
    joined as Feast's feature views define them; and the sources joined, for the leak count.
    Training and batch scoring both use this one join."""
    from mlops_assets.core import pit

    sources = [
        pit.FeatureSource.from_feature_store(feature_store, view, snapshots[view])
        for view in SNAPSHOT_VIEWS
    ]
    return pit.point_in_time_join(transactions.sort("event_ts", "tx_id"), sources), sources


@dataclass(frozen=True)
class TrainingSet:
    """A day's training set and what the asset reports about it."""

    frame: pl.DataFrame
    days: list[str]
    cutoff: datetime
    # Rows joined with a snapshot taken after their transaction: any makes the set unusable.
    leaks: int
    # Transactions of the window left out for want of a label known by the cutoff.
    unlabelled: int

    @property
    def leak_free(self) -> bool:
        return self.leaks == 0

    @property
    def fraud_share(self) -> float:
        return float(self.frame["is_fraud"].mean()) if self.frame.height else 0.0


def build(
    feature_store: FeastFeatureStore, frames: Mapping[str, pl.DataFrame], day: str, days: list[str]
) -> TrainingSet:
    """The training set of ``day`` from ``frames`` (each of :data:`INPUTS` over ``days``)."""
    import polars as pl

    from mlops_assets.core import pit

    cutoff = label_cutoff(day)
    labels = frames["labels"].filter(pl.col("label_available_ts") < cutoff)
    entities = frames["transactions"].join(
        labels.select("tx_id", "is_fraud", "label_available_ts"), on="tx_id", how="inner"
    )
    joined, sources = join_snapshots(feature_store, entities, frames)
    return TrainingSet(
        frame=joined,
        days=days,
        cutoff=cutoff,
        leaks=pit.leaking_rows(joined, sources),
        unlabelled=frames["transactions"].height - entities.height,
    )


def save(
    store: AssetStore,
    key: dg.AssetKey,
    training_set: TrainingSet,
    day: str,
    run_id: str,
    source_versions: Mapping[str, Mapping[str, str]],
) -> DatasetVersion:
    """Write ``training_set`` as a new version of ``day`` (named by the run), with its lineage in
    the manifest; make it current only if no row leaks."""
    dataset = store.versioned(key)
    lineage = {
        "days": training_set.days,
        "source_data_versions": {name: dict(v) for name, v in source_versions.items()},
        "label_cutoff": training_set.cutoff.isoformat(),
    }
    version = dataset.write(day, run_id, training_set.frame, extra=lineage)
    if training_set.leak_free:
        dataset.promote(version)
    return version


def load_current(store: AssetStore, key: dg.AssetKey, day: str) -> tuple[pl.DataFrame, dict]:
    """The approved (``_CURRENT``) training set of ``day`` and its manifest."""
    import polars as pl

    dataset = store.versioned(key)
    version = dataset.current(day)
    if version is None:
        raise dg.Failure(
            f"no approved training set for {day}: materialize {key.to_user_string()} for it "
            "(a version whose leakage check failed is never made current)",
            allow_retries=False,
        )
    return pl.from_arrow(dataset.read(version)), asdict(version)


# -- what the asset reports ---------------------------------------------------------------------


def check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The checks the training set asset emits itself: the leak blocks what is built on it."""
    return [
        dg.AssetCheckSpec(LEAKAGE_CHECK, asset=key, blocking=True),
        dg.AssetCheckSpec(FRAUD_SHARE_CHECK, asset=key),
    ]


def check_results(
    training_set: TrainingSet, fraud_share_bounds: tuple[float, float]
) -> list[dg.AssetCheckResult]:
    """No snapshot from the future (blocking); the fraud share within bounds (a warning: a
    share far off says the labels or the window are wrong, not that the set is unusable)."""
    low, high = fraud_share_bounds
    share = training_set.fraud_share
    return [
        dg.AssetCheckResult(
            check_name=LEAKAGE_CHECK,
            passed=training_set.leak_free,
            metadata={"rows_with_future_snapshots": training_set.leaks},
            description="Every snapshot joined to a transaction was taken at or before it.",
        ),
        dg.AssetCheckResult(
            check_name=FRAUD_SHARE_CHECK,
            passed=low <= share <= high,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"fraud_share": share, "bounds": [low, high]},
        ),
    ]


def metadata(training_set: TrainingSet, version: DatasetVersion) -> dict[str, Any]:
    """The materialization's metadata: the version written, whether it became current, the
    window, what was left out, and the inspection report (:mod:`mlops_assets.fraud.reports`)."""
    from mlops_assets.fraud import reports

    report = reports.inspect_training_set(training_set.frame.to_pandas())
    days = training_set.days
    return {
        "dagster/row_count": training_set.frame.height,
        "data_version": version.data_version,
        "version": version.relative_dir,
        "current": training_set.leak_free,
        "transaction_days": f"{days[0]} .. {days[-1]}",
        "unlabelled_excluded": training_set.unlabelled,
        "fraud_share": training_set.fraud_share,
        **{f"inspection/{k}": v for k, v in report.items()},
    }
