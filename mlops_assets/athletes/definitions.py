"""The athletes use case for Dagster: its assets (with their checks), job and schedule, and the demo steps of
`mlops demo`."""

import dagster as dg

from mlops_assets.athletes.assets import (
    CASE,
    athletes_feature_store,
    champion,
    clean,
    features,
    models,
    raw,
)
from mlops_assets.core.policies import weekly_retraining
from mlops_assets.use_cases import DemoStep

ASSETS = [raw, clean, features, athletes_feature_store, models, champion]

# The athletes table is re-read and cleaned by this job; everything after it keeps itself up to
# date (automation conditions): both feature versions, their grids, then the feature store and the
# champion once no grid is training. One job cannot do it all, since the feature versions are
# partitions and the table and champion are not.
#
# Sundays 04:00 UTC. Stopped by default: the table comes from a file or a fixed generator, so a
# refresh of unchanged data retrains identical models. Turn it on when your source is refreshed.
defs = weekly_retraining(
    CASE,
    ASSETS,
    selection=dg.AssetSelection.assets(CASE.key("raw"), CASE.key("clean")),
    description="Re-read and clean the athletes table; features, grids and champion follow.",
    hour=4,
    job_name="athletes_refresh",
    schedule_name="athletes_weekly_refresh",
)

# What `mlops demo` runs: 2,000 generated athletes, both feature versions with a 2 x 2 grid each,
# then the champion over both.
_GRID = {"n_estimators": [30, 80], "max_depths": [6, 0]}
# The deployment settings `mlops demo` writes to `mlops.yaml` (when there is none).
demo_run_config = {
    "athletes__raw": {"config": {"n_athletes": 2000}},
    "athletes__models": {"ops": {"grid_points": {"config": _GRID}}},
}
demo = [
    DemoStep(
        select="athletes/raw,athletes/clean",
    ),
    *(
        DemoStep(
            select="athletes/features,athletes/models",
            partition=version,
        )
        for version in ("v1", "v2")
    ),
    DemoStep(select="athletes/feature_store,athletes/champion"),
]
