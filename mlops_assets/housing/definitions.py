"""The housing use case for Dagster: its assets (with their checks), job and weekly schedule, and the
demo step of `mlops demo`."""

from mlops_assets.core.policies import weekly_retraining
from mlops_assets.housing.assets import (
    CASE,
    champion,
    encoders,
    features,
    holdout_report,
    model,
    raw,
    splits,
)
from mlops_assets.use_cases import DemoStep

ASSETS = [raw, splits, encoders, features, model, holdout_report, champion]

# Sundays 2:00 UTC. Stopped by default: the sales come from a file or a fixed generator, and
# the seeded study refits the same model on unchanged data. Turn it on when your source is
# refreshed; only the promotion gate moves the champion, so a retraining that finds nothing
# better changes nothing that serves.
defs = weekly_retraining(
    CASE,
    ASSETS,
    description="Every housing asset: sales, chronological splits, encoders, features, the tuned "
    "model, its holdout report and the promotion gate.",
    hour=2,
)

# What `mlops demo` runs: the whole group on the default 30,000 generated sales, with a short
# study (the default is 20 trials of up to 1,500 rounds) so that the demo stays quick.
# The deployment settings `mlops demo` writes to `mlops.yaml` (when there is none).
demo_run_config = {"housing__model": {"config": {"n_trials": 5, "max_estimators": 300}}}
demo = [
    DemoStep(
        select="housing/raw,housing/splits,housing/encoders,housing/features,housing/model,"
        "housing/holdout_report,housing/champion",
    )
]
