"""The fraud use case for Dagster: its assets, checks and job, and the demo steps of `mlops demo`."""

import dagster as dg

from mlops_assets.fraud.assets import (
    bronze,
    card_features,
    champion,
    fraud_feature_store,
    merchant_features,
    model,
    scores,
    training_set,
)
from mlops_assets.fraud.checks import fraud_checks
from mlops_assets.use_cases import DemoStep

ASSETS = [
    bronze,
    card_features,
    merchant_features,
    fraud_feature_store,
    training_set,
    model,
    champion,
    scores,
]

fraud_daily = dg.define_asset_job(
    "fraud_daily",
    selection=dg.AssetSelection.groups("fraud"),
    description="Every fraud asset for one day: bronze, features, Feast, training set, models, "
    "champion and scores.",
)

defs = dg.Definitions(assets=ASSETS, asset_checks=fraud_checks, jobs=[fraud_daily])

# What `mlops demo` runs: three weeks of bronze and features in one single-run backfill, then
# the training set, models, champion and scores of the last day. Small volumes keep it quick.
DEMO_FIRST_DAY, DEMO_LAST_DAY = "2024-01-01", "2024-01-22"
DEMO_BRONZE = {"n_cards": 5_000, "n_merchants": 500, "tx_per_day": 4_000, "fraud_rate": 0.02}
demo = [
    DemoStep(
        select="fraud/transactions,fraud/labels,fraud/card_features,fraud/merchant_features,"
        "fraud/feature_store",
        partition_range=f"{DEMO_FIRST_DAY}...{DEMO_LAST_DAY}",
        config={"ops": {"bronze": {"config": DEMO_BRONZE}}},
    ),
    DemoStep(
        select="fraud/training_set,fraud/model,fraud/champion,fraud/scores",
        partition=DEMO_LAST_DAY,
    ),
]
