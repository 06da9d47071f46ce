"""The heart use case for Dagster: its assets (with their checks), job and weekly schedule, and the
demo step of `mlops demo`."""

from mlops_assets.core.policies import weekly_retraining
from mlops_assets.heart.assets import (
    CASE,
    champion,
    deployment_package,
    features,
    models,
    quality_report,
    raw,
)
from mlops_assets.use_cases import DemoStep

ASSETS = [raw, quality_report, features, models, champion, deployment_package]

# Sundays 3:00 UTC. Stopped by default: the patients come from a file or a fixed generator, and
# the seeded study refits the same model on unchanged data. Turn it on when your source is
# refreshed; only the promotion gate moves the champion, so a retraining that finds nothing
# better changes nothing that serves.
defs = weekly_retraining(
    CASE,
    ASSETS,
    description="Every heart asset: patients, quality report, features, the four models, the "
    "promotion gate and the deployment package.",
    hour=3,
)

# What `mlops demo` runs: the whole group on the default 1,000 generated patients.
demo = [
    DemoStep(
        select="heart/raw,heart/quality_report,heart/features,heart/models,heart/champion,"
        "heart/deployment_package",
    )
]
