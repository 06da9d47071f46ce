"""Input drift: PSI on hand-made samples with the expected values written out, its invariants
under hypothesis, the two-sample tests against SciPy, the day's verdict and the HTML report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, ks_2samp

from mlops_assets.core.monitoring.drift import (
    INSUFFICIENT_DATA,
    PSI_FLOOR,
    TABLE_COLUMNS,
    DriftThresholds,
    assess_drift,
    drift_report_html,
    drift_table,
    population_stability_index,
)
from mlops_assets.core.monitoring.plots import drift_figure


def term(current: float, reference: float) -> float:
    """One bin's PSI term, shares floored like the implementation says."""
    c, r = max(current, PSI_FLOOR), max(reference, PSI_FLOOR)
    return (c - r) * math.log(c / r)


# --- population_stability_index: hand-made ------------------------------------------------------


def test_categorical_psi_sums_the_terms_of_each_category() -> None:
    reference = ["a"] * 50 + ["b"] * 50
    current = ["a"] * 75 + ["b"] * 25
    expected = 0.25 * math.log(1.5) + (-0.25) * math.log(0.5)
    assert population_stability_index(reference, current, categorical=True) == pytest.approx(
        expected, rel=1e-12
    )
    assert expected == pytest.approx(0.274653, abs=1e-6)


def test_a_category_the_reference_never_saw_counts_with_a_floored_share() -> None:
    reference = ["a"] * 100
    current = ["a"] * 50 + ["new"] * 50
    expected = term(0.5, 1.0) + term(0.5, 0.0)
    assert expected == pytest.approx(0.5 * math.log(2) + (0.5 - 1e-4) * math.log(5000))
    assert population_stability_index(reference, current, categorical=True) == pytest.approx(
        expected, rel=1e-12
    )


def test_numeric_psi_bins_at_the_reference_quantiles() -> None:
    # Quartiles of 0..99 are 24.75, 49.5 and 74.25: 25 reference rows per bin.
    reference = np.arange(100.0)
    current = np.array([0.0] * 50 + [99.0] * 50)  # first and last bin only
    expected = term(0.5, 0.25) + term(0, 0.25) + term(0, 0.25) + term(0.5, 0.25)
    assert population_stability_index(reference, current, bins=4) == pytest.approx(expected)


def test_values_beyond_the_reference_range_fall_in_the_outer_bins() -> None:
    reference = np.arange(100.0)
    above = population_stability_index(reference, np.full(40, 1e9), bins=4)
    below = population_stability_index(reference, np.full(40, -1e9), bins=4)
    expected = 3 * term(0, 0.25) + term(1.0, 0.25)
    assert above == pytest.approx(expected)
    assert below == pytest.approx(expected)


def test_a_value_equal_to_an_edge_belongs_to_the_bin_above() -> None:
    # The median of [0, 1, 1, 2, 3] is 1: bins x < 1 (1 row of 5) and x >= 1 (4 rows of 5).
    value = population_stability_index([0.0, 1.0, 1.0, 2.0, 3.0], [1.0] * 4, bins=2)
    assert value == pytest.approx(term(0, 0.2) + term(1.0, 0.8))


def test_duplicate_quantiles_of_a_mostly_zero_feature_merge_into_one_bin() -> None:
    # 90 zeros: the 10 %..80 % quantiles are all 0 and the 90 % one is 0.1, so the bins are
    # x < 0 (empty), 0 <= x < 0.1 (90 %) and x >= 0.1 (10 %).
    reference = np.r_[np.zeros(90), np.arange(1.0, 11.0)]
    current = np.r_[np.zeros(50), np.full(50, 5.0)]
    expected = term(0, 0) + term(0.5, 0.9) + term(0.5, 0.1)
    assert population_stability_index(reference, current, bins=10) == pytest.approx(expected)


def test_missing_values_are_a_bin_of_their_own() -> None:
    reference = np.arange(100.0)
    current = np.r_[np.arange(100.0), np.full(100, np.nan)]
    expected = 4 * term(0.125, 0.25) + term(0.5, 0.0)
    assert population_stability_index(reference, current, bins=4) == pytest.approx(expected)
    categorical = population_stability_index(["a", "b"] * 5, ["a", None] * 5, categorical=True)
    assert categorical == pytest.approx(term(0.5, 0.5) + term(0, 0.5) + term(0.5, 0))


def test_nullable_integers_and_categoricals_are_read_like_plain_values() -> None:
    plain = population_stability_index(np.arange(100.0), [1.0, 2.0, np.nan, 70.0], bins=4)
    nullable = pd.Series([1, 2, None, 70], dtype="Int64")
    assert population_stability_index(pd.Series(np.arange(100)), nullable, bins=4) == plain
    # Unused categories of a pandas Categorical are no bin (they would add 0 anyway).
    cats = pd.Categorical(["a", "b", "b"], categories=["a", "b", "unused"])
    assert population_stability_index(["a", "b", "b"], cats, categorical=True) == 0.0


def test_psi_of_an_empty_side_is_nan_and_bins_below_two_are_refused() -> None:
    assert math.isnan(population_stability_index([], [1.0, 2.0]))
    assert math.isnan(population_stability_index(["a"], [], categorical=True))
    with pytest.raises(ValueError, match="bins must be at least 2"):
        population_stability_index([1.0], [1.0], bins=1)
    with pytest.raises(ValueError, match="must be numeric"):
        population_stability_index(["x", "y"], ["x"])


# --- population_stability_index: invariants ------------------------------------------------------

values = st.lists(
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(float("nan"))),
    min_size=1,
    max_size=60,
)
labels = st.lists(st.one_of(st.sampled_from("abcde"), st.none()), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(reference=values, current=values, bins=st.integers(2, 12))
def test_numeric_psi_is_never_negative(reference: list, current: list, bins: int) -> None:
    assert population_stability_index(reference, current, bins=bins) >= 0.0


@settings(max_examples=150, deadline=None)
@given(reference=labels, current=labels)
def test_categorical_psi_is_never_negative_and_symmetric(reference: list, current: list) -> None:
    forward = population_stability_index(reference, current, categorical=True)
    backward = population_stability_index(current, reference, categorical=True)
    assert forward >= 0.0
    # Same bins both ways (every category of either side), so the formula's symmetry holds.
    assert forward == pytest.approx(backward, rel=1e-12, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(sample=values, bins=st.integers(2, 12), seed=st.integers(0, 2**32 - 1))
def test_psi_of_a_sample_against_itself_is_zero_in_any_order(
    sample: list, bins: int, seed: int
) -> None:
    shuffled = np.random.default_rng(seed).permutation(np.array(sample))
    assert population_stability_index(sample, shuffled, bins=bins) == 0.0
    as_text = [None if math.isnan(v) else str(v) for v in sample]
    assert population_stability_index(as_text, as_text[::-1], categorical=True) == 0.0


@settings(max_examples=100, deadline=None)
@given(
    reference=st.lists(st.integers(-1000, 1000), min_size=1, max_size=60),
    current=st.lists(st.integers(-1000, 1000), min_size=1, max_size=60),
    bins=st.integers(2, 12),
)
def test_psi_depends_on_ranks_not_on_units(reference: list, current: list, bins: int) -> None:
    # Doubling is exact in floating point, so every value keeps its side of every edge.
    ref, cur = np.array(reference, float), np.array(current, float)
    assert population_stability_index(ref * 2, cur * 2, bins=bins) == population_stability_index(
        ref, cur, bins=bins
    )


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_psi_grows_with_a_mean_shift_and_reads_as_an_effect_size(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference, current = rng.normal(size=5000), rng.normal(size=5000)
    shifts = [0.0, 0.25, 0.5, 1.0, 2.0]
    psi = [population_stability_index(reference, current + shift) for shift in shifts]
    assert psi == sorted(psi) and len(set(psi)) == len(psi)
    # For a normal, PSI of a shift of d standard deviations is about d**2 (less the binning):
    # half a standard deviation is about the "error" threshold.
    assert psi[0] < 0.02
    assert 0.15 < psi[2] < 0.3


# --- drift_table ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0, 1.0, 300),
            "count": pd.array(rng.poisson(2.0, 300), dtype="Int64"),
            "channel": rng.choice(["pos", "ecom", "atm"], 300),
            "country": rng.choice(["FR", "DE"], 300),
        }
    )
    current = pd.DataFrame(
        {
            "amount": rng.lognormal(3.6, 1.0, 400),
            "count": pd.array(rng.poisson(2.0, 400), dtype="Int64"),
            "channel": rng.choice(["pos", "ecom", "atm", "crypto"], 400),
            "country": rng.choice(["FR", "DE"], 400),
        }
    )
    current.loc[[3, 10, 11], "amount"] = np.nan
    current.loc[5, "count"] = pd.NA
    current.loc[[0, 1], "channel"] = None
    return reference, current


def test_drift_table_has_one_row_per_feature_worst_first(frames) -> None:
    reference, current = frames
    table = drift_table(reference, current, numeric=["amount", "count"], categorical=["channel"])
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["psi"].is_monotonic_decreasing
    assert set(table["feature"]) == {"amount", "count", "channel"}
    by_feature = table.set_index("feature")
    assert by_feature.loc["amount", ["kind", "test"]].tolist() == ["numeric", "ks"]
    assert by_feature.loc["channel", ["kind", "test"]].tolist() == ["categorical", "chisquare"]
    for feature, row in by_feature.iterrows():
        expected = DriftThresholds().severity(row["psi"])
        assert row["severity"] == expected, feature
        assert row["drifted"] == (row["psi"] >= 0.1)
    # The lognormal's location moved by 0.6 of its scale: far past the error threshold.
    assert by_feature.loc["amount", "severity"] == "error"
    assert by_feature.loc["count", "severity"] == "ok"


def test_drift_table_psi_uses_every_row_with_missing_values_binned(frames) -> None:
    reference, current = frames
    table = drift_table(reference, current, numeric=["amount"], categorical=["channel"])
    psi = table.set_index("feature")["psi"]
    assert psi["amount"] == population_stability_index(reference["amount"], current["amount"])
    assert psi["channel"] == population_stability_index(
        reference["channel"], current["channel"], categorical=True
    )


def test_ks_matches_scipy_on_the_values_present(frames) -> None:
    reference, current = frames
    table = drift_table(reference, current, numeric=["amount", "count"], categorical=[])
    for feature in ("amount", "count"):
        expected = ks_2samp(
            reference[feature].dropna().astype(float), current[feature].dropna().astype(float)
        )
        row = table.set_index("feature").loc[feature]
        assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
        assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_matches_scipy_with_an_unseen_category(frames) -> None:
    reference, current = frames
    table = drift_table(reference, current, numeric=[], categorical=["channel", "country"])
    counts = pd.DataFrame(
        {"ref": reference["channel"].value_counts(), "cur": current["channel"].value_counts()}
    ).fillna(0)
    assert "crypto" in counts.index and counts.loc["crypto", "ref"] == 0
    expected = chi2_contingency(counts.to_numpy().T, correction=False)
    row = table.set_index("feature").loc["channel"]
    assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_treats_the_reference_as_a_sample_unlike_evidentlys() -> None:
    """Why the categorical test is SciPy's: Evidently's "chisquare" takes the reference's shares
    as exact, so a small reference of the same distribution looks like drift."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    reference = pd.DataFrame({"c": ["a"] * 45 + ["b"] * 55})
    current = pd.DataFrame({"c": ["a"] * 5000 + ["b"] * 5000})
    ours = drift_table(reference, current, numeric=[], categorical=["c"])["p_value"].item()
    assert ours == pytest.approx(chi2_contingency([[45, 55], [5000, 5000]], False).pvalue)
    assert ours > 0.3
    definition = DataDefinition(categorical_columns=["c"])
    snapshot = Report([ValueDrift(column="c", method="chisquare")]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    assert snapshot.dict()["metrics"][0]["value"] < 1e-10


def test_a_feature_missing_on_one_side_has_a_psi_but_no_test() -> None:
    reference = pd.DataFrame({"x": np.arange(50.0), "c": ["a", "b"] * 25})
    current = pd.DataFrame({"x": np.full(50, np.nan), "c": [None] * 50})
    table = drift_table(reference, current, numeric=["x"], categorical=["c"]).set_index("feature")
    assert table.loc["x", "psi"] == pytest.approx(term(1.0, 0.0) + 10 * term(0.0, 0.1))
    assert table.loc["c", "psi"] == pytest.approx(2 * term(0.0, 0.5) + term(1.0, 0.0))
    assert table[["statistic", "p_value"]].isna().all().all()
    assert table["severity"].tolist() == ["error", "error"]


def test_tests_run_on_a_fixed_sample_while_psi_keeps_every_row(frames) -> None:
    reference, current = frames
    kwargs = dict(numeric=["amount"], categorical=["channel"])
    full = drift_table(reference, current, **kwargs)
    sampled = drift_table(reference, current, sample_rows=100, **kwargs)
    again = drift_table(reference, current, sample_rows=100, **kwargs)
    pd.testing.assert_frame_equal(sampled, again)
    pd.testing.assert_series_equal(full["psi"], sampled["psi"])
    assert not np.allclose(full["statistic"], sampled["statistic"])


def test_drift_table_refuses_a_wrong_feature_list_or_an_empty_side(frames) -> None:
    reference, current = frames
    with pytest.raises(ValueError, match="listed twice"):
        drift_table(reference, current, numeric=["amount"], categorical=["amount"])
    with pytest.raises(ValueError, match="no features"):
        drift_table(reference, current, numeric=[], categorical=[])
    with pytest.raises(KeyError, match="current has no column"):
        drift_table(reference, current.drop(columns="amount"), numeric=["amount"], categorical=[])
    with pytest.raises(ValueError, match="insufficient data"):
        drift_table(reference, current.iloc[:0], numeric=["amount"], categorical=[])


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="psi_warn <= psi_error"):
        DriftThresholds(psi_warn=0.3, psi_error=0.2)
    with pytest.raises(ValueError, match="min_rows"):
        DriftThresholds(min_rows=0)


# --- assess_drift --------------------------------------------------------------------------------


def channels(share_of_a: float, rows: int = 400) -> pd.DataFrame:
    a = round(rows * share_of_a)
    return pd.DataFrame({"channel": ["a"] * a + ["b"] * (rows - a), "country": ["FR"] * rows})


@pytest.mark.parametrize(
    ("share", "status", "reason"),
    [
        (0.75, "error", "1 of 2 features drifted; worst channel PSI 0.275 >= 0.25"),
        (0.70, "warn", "1 of 2 features drifted; worst channel PSI 0.169 >= 0.1"),
        (0.55, "ok", "0 of 2 features drifted; worst channel PSI 0.01 < 0.1"),
    ],
)
def test_the_verdict_names_the_worst_feature(share: float, status: str, reason: str) -> None:
    summary = assess_drift(
        channels(0.5), channels(share), numeric=[], categorical=["channel", "country"]
    )
    assert (summary.status, summary.reason) == (status, reason)
    assert summary.worst_feature == "channel"
    assert summary.worst_psi == summary.table["psi"].max()
    assert (summary.reference_rows, summary.current_rows) == (400, 400)
    assert summary.table["feature"].tolist() == ["channel", "country"]


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "reason"),
    [
        (400, 199, "insufficient data: 199 current rows, fewer than the 200 needed"),
        (150, 400, "insufficient data: 150 reference rows, fewer than the 200 needed"),
        (0, 0, "insufficient data: 0 current rows and 0 reference rows, fewer than the 200"),
    ],
)
def test_too_few_rows_say_insufficient_data(
    reference_rows: int, current_rows: int, reason: str
) -> None:
    summary = assess_drift(
        channels(0.5, reference_rows),
        channels(0.9, current_rows),
        numeric=[],
        categorical=["channel"],
    )
    assert summary.status == INSUFFICIENT_DATA
    assert summary.reason.startswith(reason)
    assert summary.table is None and summary.worst_feature is None and summary.worst_psi is None
    assert (summary.reference_rows, summary.current_rows) == (reference_rows, current_rows)


def test_a_day_without_traffic_needs_no_columns_at_all() -> None:
    summary = assess_drift(
        channels(0.5), pd.DataFrame(), numeric=["amount"], categorical=["channel"]
    )
    assert summary.status == INSUFFICIENT_DATA and summary.current_rows == 0


# --- drift_report_html and drift_figure ----------------------------------------------------------


def test_the_report_is_one_deterministic_page_saying_what_it_compared(frames) -> None:
    reference, current = frames
    current = current.assign(empty=np.nan)
    reference = reference.assign(empty=1.0)
    kwargs = dict(
        numeric=["amount", "count", "empty"],
        categorical=["channel"],
        title="fraud <drift> 2025-01-02",
        sample_rows=350,
    )
    page = drift_report_html(reference, current, **kwargs)
    assert page == drift_report_html(reference, current, **kwargs)
    text = page.decode()
    assert text.lstrip().startswith("<!DOCTYPE html>")
    assert "<title>fraud &lt;drift&gt; 2025-01-02</title>" in text
    assert "reference: 300 rows" in text
    assert "current: a fixed sample of 350 of 400 rows" in text
    assert "not drawn, no value on one side: empty" in text
    assert "<script src=" not in text  # self-contained: nothing fetched when opened


def test_drift_figure_draws_the_worst_twenty_worst_on_top() -> None:
    table = pd.DataFrame(
        {"feature": [f"f{i:02d}" for i in range(25)], "psi": np.linspace(0.5, 0.0, 25)}
    ).assign(severity=lambda t: [DriftThresholds().severity(p) for p in t["psi"]])
    ax = drift_figure(table, DriftThresholds(), title="drift").axes[0]
    names = [label.get_text() for label in ax.get_yticklabels()]
    assert len(names) == 20 and names[-1] == "f00" and names[0] == "f19"
    assert sorted(line.get_xdata()[0] for line in ax.get_lines()) == [0.1, 0.25]
    empty = drift_figure(None, DriftThresholds(), title="drift").axes[0]
    assert [t.get_text() for t in empty.texts] == ["insufficient data"]
