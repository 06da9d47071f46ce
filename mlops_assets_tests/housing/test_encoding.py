"""Housing encoders (a table fitted on train only), out-of-fold target encodings and the model
matrix: values checked by hand, determinism, and the leakage property of the out-of-fold path."""

from __future__ import annotations

import io
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.housing import schema
from mlops_assets.housing.encoding import (
    ENCODER_COLUMNS,
    FEATURE_COLUMNS,
    EncoderSpec,
    build_features,
    encoders_fingerprint,
    fit_encoders,
    out_of_fold_encodings,
    price_from_target,
    target,
    unseen_categories,
)


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Raw-contract rows; fields not given take a plain default."""
    base = {
        "sale_date": date(2020, 6, 15),
        "city": "Springfield",
        "zipcode": "02139",
        "property_type": "condo",
        "beds": 3,
        "baths": 2.0,
        "living_area_sqft": 1500.0,
        "lot_sqft": None,
        "year_built": 1990,
        "condition": 3,
        "price": 400_000.0,
    }
    out = [{"sale_id": f"s{i:04d}", **base, **row} for i, row in enumerate(rows)]
    return pd.DataFrame(out, columns=list(schema.RAW_COLUMNS))


def _random_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 365 * 11, n)
    return pd.DataFrame(
        {
            "sale_id": [f"s{i:05d}" for i in range(n)],
            "sale_date": [date(2012, 1, 1) + pd.Timedelta(days=int(d)) for d in days],
            "city": rng.choice(["Ashford", "Brookline", "Cedar Falls", "Dover"], n),
            "zipcode": rng.choice(["02139", "02140", "02141", "10001", "94105"], n),
            "property_type": rng.choice(list(schema.PROPERTY_TYPES), n),
            "beds": rng.integers(1, 6, n),
            "baths": rng.integers(2, 8, n) / 2,
            "living_area_sqft": rng.uniform(500, 4000, n),
            "lot_sqft": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(1000, 20000, n)),
            "year_built": rng.integers(1900, 2024, n),
            "condition": rng.integers(1, 6, n),
            "price": rng.uniform(1e5, 2e6, n),
        }
    )


# --- the spec and the target ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"smoothing": -1.0},
        {"smoothing": float("nan")},
        {"smoothing": "20"},
        {"n_folds": 1},
        {"n_folds": 2.5},
        {"n_folds": True},
        {"seed": -1},
        {"seed": 1.0},
    ],
)
def test_encoder_spec_is_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        EncoderSpec(**bad)
    assert EncoderSpec() == EncoderSpec(smoothing=20.0, n_folds=5, seed=0)
    assert EncoderSpec(smoothing=0).smoothing == 0


def test_target_is_log_price_and_back() -> None:
    frame = _frame([{"price": 100_000.0}, {"price": math.e * 1e5}])
    y = target(frame)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, [math.log(1e5), math.log(1e5) + 1.0])
    np.testing.assert_allclose(price_from_target(y), [1e5, math.e * 1e5])
    for bad in (0.0, -5.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="log"):
            target(_frame([{"price": 1.0}, {"price": bad}]))


# --- the encoder table --------------------------------------------------------------------------


@pytest.fixture
def hand() -> pd.DataFrame:
    """Five sales: Ashford x3, Brookline x2; condo x4, townhouse x1; two zipcodes."""
    return _frame(
        [
            {"city": "Ashford", "zipcode": "02139", "property_type": "condo", "price": 100.0},
            {"city": "Ashford", "zipcode": "02139", "property_type": "condo", "price": 200.0},
            {"city": "Ashford", "zipcode": "02140", "property_type": "condo", "price": 400.0},
            {"city": "Brookline", "zipcode": "02140", "property_type": "townhouse", "price": 800.0},
            {"city": "Brookline", "zipcode": "02140", "property_type": "condo", "price": 1600.0},
        ]
    )


def test_encoder_table_holds_the_smoothed_log_price_means(hand: pd.DataFrame) -> None:
    table = fit_encoders(hand, EncoderSpec(smoothing=2.0))
    ln = math.log
    prior = (ln(100) + ln(200) + ln(400) + ln(800) + ln(1600)) / 5
    assert prior == pytest.approx(ln(400))  # prices double each row: the mean is the middle one

    def smoothed(logs: list[float]) -> float:
        return (sum(logs) + 2.0 * prior) / (len(logs) + 2.0)

    expected = pd.DataFrame(
        [
            ("city", "Ashford", 3, 3 / 5, smoothed([ln(100), ln(200), ln(400)])),
            ("city", "Brookline", 2, 2 / 5, smoothed([ln(800), ln(1600)])),
            ("city", None, 0, 0.0, prior),
            ("property_type", "condo", 4, 4 / 5, smoothed([ln(100), ln(200), ln(400), ln(1600)])),
            ("property_type", "townhouse", 1, 1 / 5, smoothed([ln(800)])),
            ("property_type", None, 0, 0.0, prior),
            ("zipcode", "02139", 2, 2 / 5, smoothed([ln(100), ln(200)])),
            ("zipcode", "02140", 3, 3 / 5, smoothed([ln(400), ln(800), ln(1600)])),
            ("zipcode", None, 0, 0.0, prior),
        ],
        columns=list(ENCODER_COLUMNS),
    )
    assert list(table.columns) == list(ENCODER_COLUMNS)
    assert table.dtypes.astype(str).to_dict() == {
        "feature": "object",
        "category": "object",
        "count": "int64",
        "frequency": "float64",
        "encoding": "float64",
    }
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=1e-13)
    # Ashford by hand: logs sum to 3 ln 200; (3 ln 200 + 2 ln 400) / 5.
    assert table.encoding[0] == pytest.approx((3 * ln(200) + 2 * ln(400)) / 5, rel=1e-14)
    # No smoothing: the plain mean.
    plain = fit_encoders(hand, EncoderSpec(smoothing=0.0))
    assert plain.encoding[1] == pytest.approx((ln(800) + ln(1600)) / 2, rel=1e-14)


def test_frequencies_sum_to_one_and_the_unseen_row_is_last_and_the_prior() -> None:
    train = _random_frame(400)
    table = fit_encoders(train, EncoderSpec())
    prior = float(np.mean(np.log(train.price)))
    assert table.feature.tolist() == sorted(table.feature)
    for feature, rows in table.groupby("feature", sort=False):
        seen = rows.iloc[:-1]
        unseen = rows.iloc[-1]
        assert seen.category.notna().all() and pd.isna(unseen.category)
        assert seen.category.tolist() == sorted(train[feature].unique())
        assert seen.frequency.sum() == pytest.approx(1.0, abs=1e-12)
        assert seen["count"].sum() == len(train)
        assert (unseen["count"], unseen.frequency) == (0, 0.0)
        assert unseen.encoding == pytest.approx(prior, rel=1e-14)
    assert table.index.tolist() == list(range(len(table)))


def test_null_categories_count_in_the_total_but_get_no_row() -> None:
    train = _frame([{"city": "Ashford"}, {"city": None}, {"city": "Ashford"}, {"city": "Dover"}])
    table = fit_encoders(train, EncoderSpec())
    city = table[table.feature == "city"]
    assert city.category.tolist()[:2] == ["Ashford", "Dover"] and pd.isna(city.category.iloc[2])
    assert city.frequency.tolist() == [0.5, 0.25, 0.0]


def _parquet(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_the_table_does_not_depend_on_the_order_or_index_of_train() -> None:
    train = _random_frame(500, seed=3)
    spec = EncoderSpec(smoothing=7.5)
    table = fit_encoders(train, spec)
    shuffled = train.sample(frac=1.0, random_state=11)
    reindexed = shuffled.set_index(pd.Index(np.arange(len(train)) * 7 + 1000))
    for other in (shuffled, reindexed):
        again = fit_encoders(other, spec)
        assert _parquet(again) == _parquet(table)
        assert encoders_fingerprint(again) == encoders_fingerprint(table)
    # The fingerprint survives a parquet round trip and sees any change of a value.
    stored = pd.read_parquet(io.BytesIO(_parquet(table)))
    assert encoders_fingerprint(stored) == encoders_fingerprint(table)
    nudged = table.copy()
    nudged.loc[0, "encoding"] = np.nextafter(nudged.loc[0, "encoding"], np.inf)
    assert encoders_fingerprint(nudged) != encoders_fingerprint(table)


def test_fit_needs_train_rows_with_positive_prices() -> None:
    with pytest.raises(ValueError, match="empty"):
        fit_encoders(_frame([]), EncoderSpec())
    with pytest.raises(ValueError, match="lacks"):
        fit_encoders(_frame([{}]).drop(columns="city"), EncoderSpec())
    with pytest.raises(ValueError, match="not positive"):
        fit_encoders(_frame([{"price": -1.0}]), EncoderSpec())


# --- out-of-fold encodings --------------------------------------------------------------------


def _folds(train: pd.DataFrame, spec: EncoderSpec) -> np.ndarray:
    """The fold of each row (positions of ``train``), as out_of_fold_encodings draws them."""
    from sklearn.model_selection import KFold

    order = np.argsort(train.sale_id.to_numpy(dtype=object), kind="stable")
    fold = np.empty(len(train), dtype=int)
    splits = KFold(spec.n_folds, shuffle=True, random_state=spec.seed).split(order)
    for k, (_, held) in enumerate(splits):
        fold[order[held]] = k
    return fold


def test_out_of_fold_encodings_are_the_table_fitted_on_the_other_folds() -> None:
    train = _random_frame(300, seed=5)
    spec = EncoderSpec(smoothing=4.0, n_folds=4, seed=2)
    oof = out_of_fold_encodings(train, spec)
    assert list(oof.columns) == [f"{c}_encoding" for c in schema.CATEGORICAL]
    assert oof.index.equals(train.index) and (oof.dtypes == "float64").all()
    fold = _folds(train, spec)
    assert sorted(np.bincount(fold)) == [75, 75, 75, 75]
    for k in range(spec.n_folds):
        held, rest = train[fold == k], train[fold != k]
        from_rest = build_features(held, fit_encoders(rest, spec))
        pd.testing.assert_frame_equal(oof[fold == k], from_rest[oof.columns], check_exact=True)
    # Not the plain table: a row's own price is out of its encoding.
    table_encoded = build_features(train, fit_encoders(train, spec))[oof.columns]
    assert not np.allclose(oof.to_numpy(), table_encoded.to_numpy())


def test_out_of_fold_folds_follow_sale_id_not_the_row_order() -> None:
    train = _random_frame(200, seed=8)
    oof = out_of_fold_encodings(train, EncoderSpec())
    shuffled = train.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(
        out_of_fold_encodings(shuffled, EncoderSpec()).loc[train.index], oof, check_exact=True
    )
    with pytest.raises(ValueError, match="at least n_folds=5"):
        out_of_fold_encodings(train.head(4), EncoderSpec())


def test_a_category_absent_from_the_other_folds_gets_their_prior() -> None:
    train = _random_frame(100, seed=9)
    train.loc[17, "city"] = "Only Once"
    spec = EncoderSpec(n_folds=5, seed=0)
    oof = out_of_fold_encodings(train, spec)
    fold = _folds(train, spec)
    others = train[fold != fold[17]]
    assert oof.loc[17, "city_encoding"] == pytest.approx(np.mean(np.log(others.price)), rel=1e-14)


_LEAK_TRAIN = _random_frame(60, seed=21)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    row=st.integers(0, len(_LEAK_TRAIN) - 1),
    factor=st.sampled_from([0.1, 0.5, 2.0, 10.0]),
    smoothing=st.sampled_from([1.0, 20.0]),
    seed=st.integers(0, 3),
)
def test_a_rows_own_price_never_reaches_its_own_encoding(
    row: int, factor: float, smoothing: float, seed: int
) -> None:
    spec = EncoderSpec(smoothing=smoothing, n_folds=3, seed=seed)
    before = out_of_fold_encodings(_LEAK_TRAIN, spec)
    changed = _LEAK_TRAIN.copy()
    changed.loc[row, "price"] *= factor
    after = out_of_fold_encodings(changed, spec)
    fold = _folds(_LEAK_TRAIN, spec)
    same_fold = fold == fold[row]
    # The row itself, and its fold, were encoded without it: nothing moves.
    pd.testing.assert_frame_equal(after[same_fold], before[same_fold], check_exact=True)
    # Every other fold learned from it (its prior moved, and its category's mean).
    moved = (after[~same_fold] != before[~same_fold]).all(axis=1)
    assert moved.all()


# --- the model matrix -------------------------------------------------------------------------


def test_build_features_columns_values_and_unseen_categories() -> None:
    train = _random_frame(300, seed=4)
    table = fit_encoders(train, EncoderSpec())
    prior = float(table.encoding.iloc[-1])
    frame = _frame(
        [
            {"sale_date": date(2012, 1, 31), "year_built": 1950, "city": "Ashford"},
            {"sale_date": date(2013, 3, 1), "year_built": 2015, "city": "Atlantis"},
            {"sale_date": date(2023, 12, 31), "year_built": 2023, "city": None, "beds": None},
        ]
    ).set_index(pd.Index([10, 20, 30]))
    features = build_features(frame, table)
    assert tuple(features.columns) == FEATURE_COLUMNS
    assert (features.dtypes == "float64").all()
    assert features.index.tolist() == [10, 20, 30]
    assert features.sale_year.tolist() == [2012, 2013, 2023]
    assert features.sale_month.tolist() == [1, 3, 12]
    assert features.months_since_start.tolist() == [0, 14, 143]
    # Built after the sale (a pre-sale): age 0, never negative.
    assert features.age.tolist() == [62, 0, 0]
    assert np.isnan(features.beds[30]) and np.isnan(features.lot_sqft).all()
    ashford = table[(table.feature == "city") & (table.category == "Ashford")].iloc[0]
    assert features.city_frequency[10] == ashford.frequency
    assert features.city_encoding[10] == ashford.encoding
    # Unseen and null categories: the unseen row.
    for index in (20, 30):
        assert features.city_frequency[index] == 0.0
        assert features.city_encoding[index] == pytest.approx(prior, rel=1e-15)
    assert unseen_categories(frame, table) == {"city": ["Atlantis"]}
    unseen = _frame([{"city": "Zed", "zipcode": "99999"}, {"city": "Ab"}, {"city": "Zed"}])
    assert unseen_categories(unseen, table) == {"city": ["Ab", "Zed"], "zipcode": ["99999"]}
    assert unseen_categories(train, table) == {}


def test_build_features_takes_training_encodings_from_oof() -> None:
    train = _random_frame(120, seed=6)
    spec = EncoderSpec()
    table = fit_encoders(train, spec)
    oof = out_of_fold_encodings(train, spec)
    features = build_features(train, table, oof=oof)
    for cat in schema.CATEGORICAL:
        np.testing.assert_array_equal(features[f"{cat}_encoding"], oof[f"{cat}_encoding"])
    plain = build_features(train, table)
    np.testing.assert_array_equal(features.city_frequency, plain.city_frequency)
    # A subset of the training rows aligns by index.
    subset = train.iloc[::3]
    np.testing.assert_array_equal(
        build_features(subset, table, oof=oof).city_encoding, oof.city_encoding.iloc[::3]
    )
    with pytest.raises(ValueError, match="training rows only"):
        build_features(_frame([{}]).set_index(pd.Index([10_000])), table, oof=oof)
    with pytest.raises(ValueError, match="lacks the columns"):
        build_features(train.drop(columns="beds"), table)
    with pytest.raises(ValueError, match="unseen"):
        build_features(train, table[table.category.notna()])
