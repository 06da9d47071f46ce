"""Feast definitions of the athletes use case: one feature view per feature version.

`athletes/features` is partitioned by version; each partition (`<data_root>/athletes/features/
v1.parquet`, `.../v2.parquet`) is one snapshot of every clean athlete, stamped with one `event_ts`.
The views' schemas are derived from `mlops_assets/athletes/features.py` (`FEATURES`), so the two
cannot drift apart. Every feature is Float64 (flags are 1.0 / 0.0); the target `total_lift` sits
in the same files but is not a feature.
"""

from feast import Entity, FeatureView, Field, ValueType
from feast.types import Float64, Int64

from mlops_assets.athletes import features, schema
from mlops_assets.core.feature_store import offline_file_source

athlete = Entity(
    name="athlete",
    join_keys=[schema.KEY],
    value_type=ValueType.INT64,
    description="A registered CrossFit Games athlete.",
)


def _view(version: str) -> FeatureView:
    return FeatureView(
        name=f"athlete_features_{version}",
        entities=[athlete],
        ttl=None,  # a snapshot of body and history: it does not expire
        schema=[
            Field(name=schema.KEY, dtype=Int64),
            *(Field(name=name, dtype=Float64) for name in features.FEATURES[version]),
        ],
        source=offline_file_source(
            schema.CASE.name,
            "features",
            partition=version,
            timestamp_field=schema.EVENT_TS,
            description=f"Feature version {version} of every clean athlete, one snapshot.",
        ),
        online=True,
        tags={"use_case": schema.CASE.name, "version": version},
    )


athlete_features_v1 = _view("v1")
athlete_features_v2 = _view("v2")
