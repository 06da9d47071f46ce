"""Athlete total lift: cleaning with stated rules, two feature versions in Feast, a random-forest
grid with emissions per grid point, and the promotion gate (seed 000)."""

DEMO_ORDER = 50
