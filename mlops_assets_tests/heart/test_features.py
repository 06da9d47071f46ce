"""The heart models' engineered features, on known rows, edges, missing inputs and properties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.heart import schema, sources
from mlops_assets.heart.features import AGE_GROUPS, ENGINEERED, engineer_features

CLEVELAND = Path(__file__).parent / "data" / "processed.cleveland.data"

FIRST = {
    "age": 63.0,
    "sex": 1.0,
    "cp": 1.0,
    "trestbps": 145.0,
    "chol": 233.0,
    "fbs": 1.0,
    "restecg": 2.0,
    "thalach": 150.0,
    "exang": 0.0,
    "oldpeak": 2.3,
    "slope": 3.0,
    "ca": 0.0,
    "thal": 6.0,
}


def one(**inputs: object) -> pd.Series:
    return engineer_features(pd.DataFrame([inputs])).iloc[0]


def test_the_first_cleveland_row() -> None:
    row = one(**FIRST)
    assert row["age_group"] == "elderly"
    assert row["chol_age_ratio"] == pytest.approx(233 / 63)
    assert row["heart_rate_reserve"] == -7.0
    assert row["risk_score"] == pytest.approx(46.13)
    assert row["age_sex_interaction"] == 63.0
    assert row["cp_exang_interaction"] == 0.0
    # The inputs pass through unchanged, the features come after them.
    assert list(row.index) == [*FIRST, *ENGINEERED]
    assert row[list(FIRST)].tolist() == list(FIRST.values())


def test_the_real_file_end_to_end() -> None:
    frame = sources.read_uci_file(CLEVELAND).to_pandas()
    out = engineer_features(frame)
    assert len(out) == 303
    assert out["age_group"].value_counts().to_dict() == {
        "young": int((frame["age"] < 40).sum()),
        "middle_aged": int(frame["age"].between(40, 49.999).sum()),
        "senior": int(frame["age"].between(50, 59.999).sum()),
        "elderly": int((frame["age"] >= 60).sum()),
    }
    # No input of these features is missing in the Cleveland file: neither are they.
    assert out[list(ENGINEERED)].notna().all().all()
    second = out.iloc[1]  # 67, male, cp 4, bps 160, chol 286, thalach 108, exang 1, oldpeak 1.5
    assert second["age_group"] == "elderly"
    assert second["heart_rate_reserve"] == 108 - (220 - 67)
    assert second["risk_score"] == pytest.approx(6.7 + 2.86 + 16.0 + 15.0)
    assert second["cp_exang_interaction"] == 4.0
    assert second["age_sex_interaction"] == 67.0


@pytest.mark.parametrize(
    ("age", "group"),
    [
        (29.0, "young"),
        (39.9, "young"),
        (40.0, "middle_aged"),
        (49.99, "middle_aged"),
        (50.0, "senior"),
        (59.9, "senior"),
        (60.0, "elderly"),
        (77.0, "elderly"),
    ],
)
def test_age_group_edges(age: float, group: str) -> None:
    assert one(**{**FIRST, "age": age})["age_group"] == group


def test_a_missing_age() -> None:
    row = one(**{**FIRST, "age": np.nan})
    assert row["age_group"] is None
    for column in ("chol_age_ratio", "heart_rate_reserve", "risk_score", "age_sex_interaction"):
        assert math.isnan(row[column]), column
    assert row["cp_exang_interaction"] == 0.0  # does not need the age


def test_an_age_of_zero_gives_no_ratio() -> None:
    row = one(**{**FIRST, "age": 0.0})
    assert math.isnan(row["chol_age_ratio"])
    assert row["heart_rate_reserve"] == 150 - 220


def test_a_column_missing_altogether() -> None:
    inputs = {k: v for k, v in FIRST.items() if k not in ("chol", "exang")}
    row = one(**inputs)
    assert "chol" not in row.index
    assert math.isnan(row["chol_age_ratio"])
    assert math.isnan(row["risk_score"])
    assert math.isnan(row["cp_exang_interaction"])
    assert row["heart_rate_reserve"] == -7.0
    assert row["age_group"] == "elderly"


def test_text_that_is_not_a_number_counts_as_missing() -> None:
    frame = pd.DataFrame([{**FIRST, "chol": "x"}, {**FIRST, "age": "x"}, {**FIRST, "age": "45"}])
    out = engineer_features(frame)
    assert math.isnan(out.loc[0, "chol_age_ratio"])
    assert math.isnan(out.loc[0, "risk_score"])
    assert out.loc[0, "heart_rate_reserve"] == -7.0
    assert out.loc[1, "age_group"] is None
    assert math.isnan(out.loc[1, "age_sex_interaction"])
    assert out.loc[2, "age_group"] == "middle_aged"
    assert out.loc[2, "chol_age_ratio"] == pytest.approx(233 / 45)
    # The text stays in the input columns as it was.
    assert out.loc[0, "chol"] == "x"


def test_the_input_is_not_changed_and_the_index_is_kept() -> None:
    frame = pd.DataFrame([FIRST, {**FIRST, "age": 45.0}], index=["b", "a"])
    before = frame.copy()
    out = engineer_features(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert list(frame.columns) == list(FIRST)
    assert list(out.index) == ["b", "a"]
    assert out.loc["a", "age_group"] == "middle_aged"
    assert out.loc["b", "age_group"] == "elderly"


def test_an_empty_frame() -> None:
    out = engineer_features(pd.DataFrame(columns=list(schema.INPUTS)))
    assert len(out) == 0
    assert list(out.columns) == [*schema.INPUTS, *ENGINEERED]


def test_the_generated_patients_all_have_features() -> None:
    frame = sources.generate_patients(sources.GeneratorConfig(n_patients=200)).to_pandas()
    out = engineer_features(frame)
    assert set(out["age_group"]) <= set(AGE_GROUPS)
    assert out[list(ENGINEERED)].notna().all().all()
    expected = frame["thalach"] - (220 - frame["age"])
    pd.testing.assert_series_equal(out["heart_rate_reserve"], expected, check_names=False)


finite_positive = st.floats(min_value=1.0, max_value=120.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    age=finite_positive,
    chol=st.floats(min_value=50.0, max_value=700.0, allow_nan=False),
    thalach=st.floats(min_value=50.0, max_value=250.0, allow_nan=False),
    sex=st.sampled_from([0.0, 1.0]),
    cp=st.sampled_from([1.0, 2.0, 3.0, 4.0]),
    exang=st.sampled_from([0.0, 1.0]),
)
def test_features_follow_their_definitions(
    age: float, chol: float, thalach: float, sex: float, cp: float, exang: float
) -> None:
    row = one(**{**FIRST, "age": age, "chol": chol, "thalach": thalach, "sex": sex, "cp": cp,
                 "exang": exang})  # fmt: skip
    assert row["chol_age_ratio"] == pytest.approx(chol / age)
    assert row["heart_rate_reserve"] == pytest.approx(thalach - (220 - age))
    assert row["age_sex_interaction"] == pytest.approx(age * sex)
    assert row["cp_exang_interaction"] == cp * exang
    expected = age * 0.1 + chol * 0.01 + 145.0 * 0.1 + 2.3 * 10
    assert row["risk_score"] == pytest.approx(expected)
    assert row["age_group"] in AGE_GROUPS
    assert row["age_group"] == AGE_GROUPS[sum(age >= edge for edge in (40, 50, 60))]
