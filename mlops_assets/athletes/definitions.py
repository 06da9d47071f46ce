"""The athletes use case for Dagster: its assets, checks and job, and the demo steps of
`mlops demo`."""

import dagster as dg

from mlops_assets.athletes.assets import (
    athletes_feature_store,
    champion,
    clean,
    features,
    models,
    raw,
)
from mlops_assets.athletes.checks import athletes_checks
from mlops_assets.use_cases import DemoStep

ASSETS = [raw, clean, features, athletes_feature_store, models, champion]

defs = dg.Definitions(assets=ASSETS, asset_checks=athletes_checks)

# What `mlops demo` runs: 2,000 generated athletes, both feature versions with a 2 x 2 grid each,
# then the champion over both.
_GRID = {"n_estimators": [30, 80], "max_depths": [6, 0]}
demo = [
    DemoStep(
        select="athletes/raw,athletes/clean",
        config={"ops": {"athletes__raw": {"config": {"n_athletes": 2000}}}},
    ),
    *(
        DemoStep(
            select="athletes/features,athletes/models",
            partition=version,
            config={"ops": {"athletes__models": {"ops": {"grid_points": {"config": _GRID}}}}},
        )
        for version in ("v1", "v2")
    ),
    DemoStep(select="athletes/feature_store,athletes/champion"),
]
