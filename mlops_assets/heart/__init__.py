"""Heart-disease classification: data quality report, shared feature engineering, four models
compared by cross-validation, the promotion gate and a deployment package (seed 001)."""

DEMO_ORDER = 40
