"""Hourly electricity demand per balancing authority: ingest, clean, validate, backtest, promote and
forecast (seed 002)."""

DEMO_ORDER = 20
