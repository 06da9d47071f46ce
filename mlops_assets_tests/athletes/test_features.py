"""The athletes' feature versions, and the Feast views built from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from mlops_assets.athletes import cleaning, features, schema
from mlops_assets.athletes.sources import GeneratorConfig, generate_athletes

TS = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    out, _ = cleaning.clean(generate_athletes(GeneratorConfig(n_athletes=600)).to_pandas())
    return out


def test_versions_and_feature_lists() -> None:
    assert features.VERSIONS == ("v1", "v2") == tuple(features.FEATURES)
    assert features.FEATURES["v1"] == ("age", "height", "weight", "is_male")
    v1, v2 = features.FEATURES["v1"], features.FEATURES["v2"]
    assert v2[: len(v1)] == v1
    assert set(schema.WORKOUTS) < set(v2)
    assert {"bmi", "began_with_coach", "has_level1", "years_training"} < set(v2)
    for names in features.FEATURES.values():
        assert not set(names) & {*schema.LIFTS, schema.TARGET}


@pytest.mark.parametrize("version", features.VERSIONS)
def test_output_columns_and_snapshot_time(clean: pd.DataFrame, version: str) -> None:
    out = features.build_features(clean, version, event_ts=TS)
    expected = [schema.KEY, schema.EVENT_TS, *features.FEATURES[version], schema.TARGET]
    assert list(out.columns) == expected
    assert str(out[schema.EVENT_TS].dtype) == "datetime64[ns, UTC]"
    assert (out[schema.EVENT_TS] == pd.Timestamp(TS)).all()
    assert out[schema.KEY].tolist() == sorted(clean[schema.KEY])
    assert all(str(out[c].dtype) == "float64" for c in features.FEATURES[version])
    assert out[schema.TARGET].tolist() == clean.sort_values(schema.KEY)[schema.TARGET].tolist()


def test_values_on_known_rows() -> None:
    clean = pd.DataFrame(
        {
            "athlete_id": [2, 1],
            "gender": ["Female", "Male"],
            "age": [25.0, 40.0],
            "height": [64.0, 70.0],
            "weight": [128.0, 200.0],
            **{w: [float("nan"), 100.0 + k] for k, w in enumerate(schema.WORKOUTS)},
            **{lift: [1.0, 2.0] for lift in schema.LIFTS},
            "background": ["x|", "y|"],
            "experience": [
                "I began CrossFit by trying it alone (without a coach)|",
                "I began CrossFit with a coach (e.g. at an affiliate)|"
                "I have completed the CrossFit Level 1 certificate course|",
            ],
            "schedule": ["s|", "s|"],
            "howlong": ["Less than 6 months|", "4+ years|"],
            "eat": ["e|", "e|"],
            "total_lift": [4.0, 8.0],
        }
    )
    est = timezone(timedelta(hours=-5))
    out = features.build_features(clean, "v2", event_ts=datetime(2024, 1, 1, 7, tzinfo=est))
    assert (out[schema.EVENT_TS] == pd.Timestamp("2024-01-01 12:00", tz="UTC")).all()
    first, second = out.iloc[0], out.iloc[1]
    assert first["athlete_id"] == 1 and first["is_male"] == 1.0 and second["is_male"] == 0.0
    assert first["bmi"] == pytest.approx(703 * 200 / 70**2)
    assert second["bmi"] == pytest.approx(703 * 128 / 64**2)
    assert (first["began_with_coach"], first["has_level1"], first["years_training"]) == (1, 1, 4)
    assert (second["began_with_coach"], second["has_level1"], second["years_training"]) == (0, 0, 0)
    assert first["fran"] == 100.0 and pd.isna(second["fran"])
    assert out["total_lift"].tolist() == [8.0, 4.0]


def test_unknown_version_and_naive_time(clean: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown feature version"):
        features.build_features(clean, "v3", event_ts=TS)
    with pytest.raises(ValueError, match="naive"):
        features.build_features(clean, "v1", event_ts=datetime(2024, 1, 1))


def test_feast_views_follow_the_feature_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_assets.core import feature_store
    from mlops_assets.core.feature_store import OfflineLocation, offline_source_path

    token = feature_store._ACTIVE_LOCATION.set(OfflineLocation("/data/root/", ""))
    try:
        assert offline_source_path("fraud", "card_features") == "/data/root/fraud/card_features/"
        assert (
            offline_source_path("athletes", "features", partition="v2")
            == "/data/root/athletes/features/v2.parquet"
        )
        import importlib

        import feature_repo.athletes as repo

        repo = importlib.reload(repo)  # built under this location
    finally:
        feature_store._ACTIVE_LOCATION.reset(token)

    assert repo.athlete.join_key == schema.KEY
    for version in features.VERSIONS:
        view = getattr(repo, f"athlete_features_{version}")
        assert view.name == f"athlete_features_{version}"
        assert [f.name for f in view.features] == list(features.FEATURES[version])
        assert view.batch_source.path == f"/data/root/athletes/features/{version}.parquet"
        assert view.batch_source.timestamp_field == schema.EVENT_TS
        assert view.tags == {"use_case": "athletes", "version": version}
        assert view.online
