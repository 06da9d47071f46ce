"""Home sale prices: chronological splits, encoders fitted on the past, a tuned XGBoost bundled
with its encoders, a holdout report and the promotion gate (seed 003)."""

DEMO_ORDER = 30
