"""The athletes' feature versions, built from the clean frame (:mod:`mlops_assets.athletes.cleaning`).

One row per athlete, stamped with one snapshot time (``event_ts``, tz-aware UTC) for Feast.

* ``v1``: the body only: age, height (in), weight (lb) and ``is_male`` (1.0 / 0.0).
* ``v2``: v1, ``bmi`` (703 x lb / in^2), the eight benchmark workouts as logged (NaN when the
  athlete did not log one) and three experience features from the survey: ``began_with_coach``
  and ``has_level1`` (1.0 / 0.0 from ``experience``) and ``years_training``, the ordinal of
  ``howlong`` (0 = "Less than 6 months" .. 4 = "4+ years"; NaN when unknown).

The lifts are never features: their sum is the target ``total_lift``, kept as the last column of
the output for training (it is not a Feast feature). Every feature is ``float64``.

Pure code: pandas is imported inside the functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mlops_assets.athletes import schema
from mlops_assets.athletes.sources import BEGAN_WITH_COACH, HOWLONG, LEVEL1

if TYPE_CHECKING:
    import pandas as pd

VERSIONS = ("v1", "v2")

_V1 = ("age", "height", "weight", "is_male")
#: The features of each version, in output order.
FEATURES: dict[str, tuple[str, ...]] = {
    "v1": _V1,
    "v2": (*_V1, "bmi", *schema.WORKOUTS, "began_with_coach", "has_level1", "years_training"),
}

_BMI_FACTOR = 703.0


def build_features(clean: pd.DataFrame, version: str, *, event_ts: datetime) -> pd.DataFrame:
    """``athlete_id``, ``event_ts`` (the given snapshot time, UTC), ``FEATURES[version]`` in order,
    then ``total_lift``; one row per row of ``clean``, sorted by ``athlete_id``.

    Raises ``ValueError`` for an unknown version or a naive ``event_ts``.
    """
    import pandas as pd

    if version not in FEATURES:
        raise ValueError(f"unknown feature version {version!r}: expected one of {list(VERSIONS)}")
    if event_ts.tzinfo is None:
        raise ValueError(f"event_ts={event_ts!r} is naive; pass a tz-aware datetime")

    df = clean.sort_values(schema.KEY, kind="stable").reset_index(drop=True)
    out = pd.DataFrame({schema.KEY: df[schema.KEY].astype("int64")})
    out[schema.EVENT_TS] = pd.Series(
        pd.Timestamp(event_ts).tz_convert("UTC"), index=out.index
    ).astype("datetime64[ns, UTC]")

    columns: dict[str, pd.Series] = {
        "age": df["age"],
        "height": df["height"],
        "weight": df["weight"],
        "is_male": (df["gender"] == "Male").astype("float64"),
    }
    if version == "v2":
        columns["bmi"] = _BMI_FACTOR * df["weight"] / df["height"] ** 2
        for workout in schema.WORKOUTS:
            columns[workout] = df[workout]
        experience = df["experience"].fillna("")
        columns["began_with_coach"] = experience.str.contains(BEGAN_WITH_COACH, regex=False)
        columns["has_level1"] = experience.str.contains(LEVEL1, regex=False)
        columns["years_training"] = df["howlong"].map(_years_training)
    for name in FEATURES[version]:
        out[name] = columns[name].astype("float64").to_numpy()
    out[schema.TARGET] = df[schema.TARGET].astype("float64").to_numpy()
    return out


def _years_training(answer: object) -> float:
    """The ordinal of the first ``howlong`` choice that is a known one, NaN if none."""
    if not isinstance(answer, str):
        return float("nan")
    for choice in answer.split("|"):
        if f"{choice}|" in HOWLONG:
            return float(HOWLONG.index(f"{choice}|"))
    return float("nan")
