"""The heart use case for Dagster: its assets, checks and job, and the demo step of
`mlops demo`."""

import dagster as dg

from mlops_assets.heart.assets import (
    champion,
    deployment_package,
    features,
    models,
    quality_report,
    raw,
)
from mlops_assets.heart.checks import heart_checks
from mlops_assets.use_cases import DemoStep

ASSETS = [raw, quality_report, features, models, champion, deployment_package]

heart_training = dg.define_asset_job(
    "heart_training",
    selection=dg.AssetSelection.groups("heart"),
    description="Every heart asset: patients, quality report, features, the four models, the "
    "promotion gate and the deployment package.",
)

defs = dg.Definitions(assets=ASSETS, asset_checks=heart_checks, jobs=[heart_training])

# What `mlops demo` runs: the whole group on the default 1,000 generated patients.
demo = [
    DemoStep(
        select="heart/raw,heart/quality_report,heart/features,heart/models,heart/champion,"
        "heart/deployment_package",
    )
]
