"""The days a fraud feature step (and its leakage audit) reads as history: data begins at the
first day ever ingested, and a day missing after it fails the step naming the days."""

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.core.asset_store import AssetStore
from mlops_assets.fraud import history

KEY = dg.AssetKey(["fraud", "transactions"])


def _store(root: Path, days: list[str]) -> AssetStore:
    """A store whose ``KEY`` has (empty) published files for ``days``."""
    store = AssetStore(root=str(root))
    for day in days:
        path = Path(store.path(KEY, day).path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return store


def test_the_days_before_stop_at_the_partitions_start() -> None:
    assert history.days_before(date(2024, 1, 4), 30, date(2024, 1, 1)) == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
    ]
    assert history.days_before(date(2024, 1, 1), 30, date(2024, 1, 1)) == []


def test_days_before_the_first_ingested_are_where_data_begins(tmp_path: Path) -> None:
    store = _store(tmp_path, ["2024-01-03", "2024-01-04"])
    wanted = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert history.published_days(store, KEY, wanted, reader="x") == ["2024-01-03", "2024-01-04"]
    assert history.published_days(_store(tmp_path / "none", []), KEY, wanted, reader="x") == []


def test_a_hole_after_data_began_fails_naming_the_days(tmp_path: Path) -> None:
    store = _store(tmp_path, ["2024-01-01", "2024-01-04", "2024-01-06"])
    wanted = [f"2024-01-0{d}" for d in range(1, 7)]
    with pytest.raises(dg.Failure) as failure:
        history.published_days(store, KEY, wanted, reader="fraud/card_features for 2024-01-07")
    message = str(failure.value)
    assert "after data began on 2024-01-01" in message
    assert "2024-01-02..2024-01-03, 2024-01-05" in message
    assert "--partition-range 2024-01-02...2024-01-05" in message
    assert failure.value.allow_retries is False
