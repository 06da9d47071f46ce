"""Card-fraud detection (seed 004): bronze payments and late labels → leak-free card and merchant
snapshots → Feast → point-in-time training set → models → champion → batch scores.

The Dagster side is assembled in :mod:`mlops_assets.fraud.definitions`; the pure modules
(``schema``, ``sources``, ``features``, ``training``, ``reports``) import without Dagster.
"""

DEMO_ORDER = 10
