"""The athletes use case's identity (:data:`CASE`) and data contracts.

``raw`` follows the CrossFit Games athletes CSV layout (one row per registered athlete): identity
and team fields, body measures (``height`` in inches, ``weight`` in pounds, as in the source),
benchmark workout results (times in seconds, counts in reps), the four lifts (pounds) and survey
answers (free text, ``|``-separated choices, or "Decline to answer|").

``clean`` keeps the columns the models may use, drops rows the stated rules reject
(:mod:`mlops_assets.athletes.cleaning`) and adds the target ``total_lift`` = deadlift + candj +
snatch + backsq. The lifts themselves are never features: they ARE the target.

Pure definitions, no Dagster; the Arrow schema is built on first use.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from mlops_assets.core.use_case import UseCase

if TYPE_CHECKING:
    import pyarrow as pa

# Its asset keys (`athletes/<name>`), group, op names and the one model it registers.
CASE = UseCase("athletes", model_name="athletes_total_lift")
USE_CASE = CASE.name

KEY = "athlete_id"
TARGET = "total_lift"
EVENT_TS = "event_ts"

IDENTITY = ("name", "region", "team", "affiliate")
BODY = ("gender", "age", "height", "weight")
WORKOUTS = ("fran", "helen", "grace", "filthy50", "fgonebad", "run400", "run5k", "pullups")
LIFTS = ("candj", "snatch", "deadlift", "backsq")
SURVEY = ("eat", "train", "background", "experience", "schedule", "howlong")
RAW_COLUMNS = (KEY, *IDENTITY, *BODY, *WORKOUTS[:7], *LIFTS, WORKOUTS[7], *SURVEY)

_TEXT = {"name", "region", "team", "affiliate", "gender", *SURVEY}


@cache
def raw_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            (
                column,
                pa.int64() if column == KEY else pa.string() if column in _TEXT else pa.float64(),
            )
            for column in RAW_COLUMNS
        ]
    )
