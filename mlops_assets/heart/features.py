"""The six engineered features of the heart models, computed by ONE function that training and
serving both call.

The seed's API once failed with "feature names seen at fit time, yet now missing: age_group,
..." because training engineered features that serving did not. Here
:func:`engineer_features` is the first step of every model's sklearn Pipeline
(:mod:`mlops_assets.heart.training`), so the logged model applies it to whatever raw inputs it is
given, in training, in batch and behind the API alike.

* ``age_group``: young (< 40), middle_aged (40-49), senior (50-59), elderly (60+);
* ``chol_age_ratio``: cholesterol / age, a metabolic indicator;
* ``heart_rate_reserve``: max heart rate reached - (220 - age), exercise capacity left;
* ``risk_score``: age * 0.1 + chol * 0.01 + trestbps * 0.1 + oldpeak * 10, the seed's composite;
* ``age_sex_interaction``: age * sex;
* ``cp_exang_interaction``: chest-pain type * exercise-induced angina.

A missing input gives a missing feature (NaN, or None for the age group), never an error: the
models' imputers decide what to do with it, as they do for missing inputs. pandas is imported
inside the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

ENGINEERED = (
    "age_group",
    "chol_age_ratio",
    "heart_rate_reserve",
    "risk_score",
    "age_sex_interaction",
    "cp_exang_interaction",
)
AGE_GROUPS = ("young", "middle_aged", "senior", "elderly")
_AGE_EDGES = (40, 50, 60)


def engineer_features(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the six engineered columns added (a copy; the input is not changed).

    Needs the columns age, sex, cp, trestbps, chol, thalach, exang and oldpeak; a column that is
    absent altogether is treated as missing in every row. Values are coerced to numbers; text
    that is not a number counts as missing.
    """
    import numpy as np
    import pandas as pd

    out = frame.copy()

    def column(name: str) -> pd.Series:
        if name not in frame:
            return pd.Series(np.nan, index=frame.index, dtype="float64")
        return pd.to_numeric(frame[name], errors="coerce").astype("float64")

    age, sex, cp, trestbps = column("age"), column("sex"), column("cp"), column("trestbps")
    chol, thalach, exang, oldpeak = (
        column("chol"),
        column("thalach"),
        column("exang"),
        column("oldpeak"),
    )
    group = pd.Series(
        np.select(
            [age < _AGE_EDGES[0], age < _AGE_EDGES[1], age < _AGE_EDGES[2], age >= _AGE_EDGES[2]],
            list(AGE_GROUPS),
            default="",
        ),
        index=frame.index,
        dtype="object",
    )
    out["age_group"] = group.where(age.notna(), None)
    # An age of 0 would divide by zero: it is an entry error, so the ratio is missing.
    out["chol_age_ratio"] = chol / age.where(age > 0)
    out["heart_rate_reserve"] = thalach - (220 - age)
    out["risk_score"] = age * 0.1 + chol * 0.01 + trestbps * 0.1 + oldpeak * 10
    out["age_sex_interaction"] = age * sex
    out["cp_exang_interaction"] = cp * exang
    return out
