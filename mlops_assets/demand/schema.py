"""The demand use case's identity (:data:`CASE`: its asset keys, group and the prefix of its
registered models) and its data contracts.

* ``raw`` (bronze): what the source said, one row per respondent and hour. ``value`` is kept as
  the text the source sent (the EIA API sends numbers as strings, and sometimes nulls or junk),
  so that nothing is lost or silently coerced before ``clean`` parses it and says what was wrong.
* ``clean``: the modelling contract of statsforecast/mlforecast: ``unique_id`` (the respondent),
  ``ds`` (the start of the UTC hour) and ``y`` (demand in MWh), sorted by ``unique_id, ds``.
* ``cv_results``, ``leaderboard`` and ``forecasts``: see :mod:`mlops_assets.demand.forecasting`.

Pure definitions, no Dagster; the Arrow schemas are built on first use so that the code location
does not pay for pyarrow at load.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from mlops_assets.core.use_case import UseCase

if TYPE_CHECKING:
    import pyarrow as pa

# One registered model per respondent: `model_name` is the prefix of their names.
CASE = UseCase("demand", model_name="demand_forecaster_")
USE_CASE = CASE.name

# Balancing authorities of the EIA-930 data (EIA calls them "respondents"): California ISO, ERCOT,
# PJM, Midcontinent ISO and New York ISO. The generator knows these and any other code.
RESPONDENTS: tuple[str, ...] = ("CISO", "ERCO", "PJM", "MISO", "NYIS")

# EIA's type code for demand ("D"); the API also serves forecasts (DF), generation and interchange.
DEMAND_TYPE = "D"
VALUE_UNITS = "megawatthours"

RAW_COLUMNS = ("respondent", "period", "type", "value", "value_units")
CLEAN_COLUMNS = ("unique_id", "ds", "y")

# Hourly demand of one balancing authority in MWh. The largest US authority (PJM) peaks near
# 160 GWh per hour; a value outside these bounds is a unit or parsing error, not demand.
MIN_PLAUSIBLE_MWH = 0.0
MAX_PLAUSIBLE_MWH = 500_000.0


def model_name(respondent: str) -> str:
    """The registered MLflow model of a respondent's forecaster: ``demand_forecaster_ciso``.

    The code is lower-cased (EIA spells it in upper case): the serving API picks the model from
    the respondent a client sends, in whichever case it comes."""
    return CASE.model_name + respondent.lower()


@cache
def raw_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("respondent", pa.string()),
            ("period", pa.timestamp("us", tz="UTC")),
            ("type", pa.string()),
            ("value", pa.string()),
            ("value_units", pa.string()),
        ]
    )


@cache
def clean_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("unique_id", pa.string()),
            ("ds", pa.timestamp("us", tz="UTC")),
            ("y", pa.float64()),
        ]
    )
