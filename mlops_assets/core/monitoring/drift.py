"""Input drift: how far a day's inputs moved from what the champion was trained on.

For every feature (and the prediction, when the caller lists it) the day's rows (``current``) are
compared with the reference (the champion's training set):

* a **population stability index** (PSI), computed here with numpy on all rows of both sides:
  numeric features are cut at the reference's quantiles (``bins`` bins holding about equal shares
  of the reference, duplicate edges merged, outer bins open-ended), categorical features get one
  bin per category seen on either side (a category the model never saw counts), and missing
  values are a bin of their own on both kinds (a feature that stops arriving is drift). PSI is an
  effect size: 0 for identical distributions, about 0.1 for a shift worth a look, 0.25 and more
  for a population the model was not trained on. Evidently's own ``psi`` bins differently
  (equal-width Sturges bins over both samples, nulls dropped), so its values differ from ours;
  ours follows the credit-scoring convention the thresholds come from;
* a **two-sample test** beside it: Kolmogorov-Smirnov for numeric features (the p-value from
  Evidently 0.7's ``ValueDrift(method="ks")``, all features in one ``Report`` run; the D statistic
  from numpy) and a chi-square test of homogeneity for categorical ones (SciPy, see
  :func:`_chi_square` for why not Evidently's).

**The decision rests on PSI, not on the p-value.** With tens of thousands of rows a day every
p-value is tiny for shifts nobody cares about; a p-value says whether a difference exists, PSI
says how big it is. The p-value is shown, never decisive. The tests run on a deterministic sample
of at most ``sample_rows`` rows of each side (the same rows for the same inputs), because their
cost grows with the rows and their verdict would not change; PSI always uses every row.

Evidently telemetry: Evidently 0.7 sends usage events only from its UI service and its legacy
collector (``evidently.telemetry``, off with ``DO_NOT_TRACK``); ``Report.run`` and the HTML
rendering used here send nothing, so nothing needs switching off and no environment is changed.

Pure: no Dagster. numpy, pandas, SciPy and Evidently are imported inside the functions, since
asset modules import this one while the code location loads.
"""

from __future__ import annotations

import html as html_lib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

INSUFFICIENT_DATA = "insufficient data"
# A bin empty on one side would put ln(0) into the PSI: proportions are floored at 1e-4 (0.01 %
# of the rows), so a category that vanished or appeared scores high but finite.
PSI_FLOOR = 1e-4
# Rows of each side the two-sample tests and the HTML report look at (PSI uses all rows).
# 20,000 rows resolve a KS distance of about 0.015 and draw the same histograms as a million;
# the cost of Evidently's run grows with them (2.7 s for 41 features at 20k, 4.6 s at 50k).
TEST_SAMPLE_ROWS = 20_000
# The sample is drawn with a fixed seed: the same inputs give the same rows, tests and report.
_SAMPLE_SEED = 0
TABLE_COLUMNS = (
    "feature",
    "kind",
    "psi",
    "test",
    "statistic",
    "p_value",
    "drifted",
    "severity",
)


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted, and how much data a comparison needs.

    The PSI thresholds are the usual ones: below 0.1 the population is stable, from 0.1 it moved
    enough to look at (``warn``), from 0.25 the model is scoring a population it was not trained
    on (``error``).
    """

    psi_warn: float = 0.1  # PSI at or above: drifted, severity warn
    psi_error: float = 0.25  # PSI at or above: drifted, severity error
    min_rows: int = 200  # fewer current (or reference) rows: "insufficient data"
    bins: int = 10  # quantile bins of the reference for numeric PSI

    def __post_init__(self) -> None:
        if not 0 < self.psi_warn <= self.psi_error:
            raise ValueError(
                f"need 0 < psi_warn <= psi_error, not psi_warn={self.psi_warn}, "
                f"psi_error={self.psi_error}"
            )
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be at least 1, not {self.min_rows}")
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, not {self.bins}")

    def severity(self, psi: float) -> str:
        """``"error"``, ``"warn"`` or ``"ok"`` for one PSI value."""
        if psi >= self.psi_error:
            return "error"
        if psi >= self.psi_warn:
            return "warn"
        return "ok"


# --- population stability index ------------------------------------------------------------------


def _as_float(values: Any, name: str) -> np.ndarray:
    """Numeric values as a float64 array, missing values as NaN (no copy for float64 columns)."""
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if not pd.api.types.is_numeric_dtype(series.dtype):
        try:
            series = pd.to_numeric(series, errors="raise")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric, not {series.dtype}: {exc}") from exc
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of ``bins`` quantile bins of the reference's finite values, deduplicated.

    Only inner edges: the outer bins are open-ended, so current values beyond the reference's
    range still land in a bin (the first or the last) instead of being dropped.
    """
    import numpy as np

    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        return np.empty(0)
    return np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin (a value equal to an edge belongs to the bin above it), then the NaN count."""
    import numpy as np

    # numpy orders NaN after every number, so searchsorted puts NaN in the last bin: count them
    # once, move them to a bin of their own, and no masked copy of a million rows is needed.
    index = np.searchsorted(edges, values, side="right")
    counts = np.bincount(index, minlength=len(edges) + 1)
    missing = int(np.isnan(values).sum())
    counts[len(edges)] -= missing
    return np.append(counts, missing)


def _category_counts(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Rows per category seen on either side (same order on both), then the missing count."""
    import numpy as np
    import pandas as pd

    counted = []
    for values in (reference, current):
        series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
        by_value = series.value_counts(dropna=True, sort=False)
        # Categorical columns list their unused categories with a count of 0: they are no bin.
        counted.append(
            ({k: int(v) for k, v in by_value.items() if v > 0}, int(series.isna().sum()))
        )
    (ref, ref_missing), (cur, cur_missing) = counted
    # A fixed order (not value_counts' order) so the same data always sums in the same order.
    keys = sorted(ref.keys() | cur.keys(), key=lambda k: (type(k).__name__, str(k)))
    ref_counts = np.array([ref.get(k, 0) for k in keys] + [ref_missing], dtype=np.int64)
    cur_counts = np.array([cur.get(k, 0) for k in keys] + [cur_missing], dtype=np.int64)
    return ref_counts, cur_counts, keys


def _psi_of_counts(reference: np.ndarray, current: np.ndarray) -> float:
    import numpy as np

    if reference.sum() == 0 or current.sum() == 0:
        return math.nan
    ref = np.maximum(reference / reference.sum(), PSI_FLOOR)
    cur = np.maximum(current / current.sum(), PSI_FLOOR)
    # Each term is >= 0 ((c - r) and ln(c / r) share their sign), so PSI >= 0, and 0 exactly
    # when every bin holds the same share on both sides.
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def population_stability_index(
    reference: Any, current: Any, *, categorical: bool = False, bins: int = 10
) -> float:
    """How far the distribution of ``current`` moved from ``reference``: sum((c - r) * ln(c / r))
    over the bins' shares r (reference) and c (current).

    Numeric: the bins are the reference's ``bins`` quantiles (duplicate edges merged, so a
    feature that is mostly 0 gets fewer bins; outer bins open-ended; ±inf fall in them).
    Categorical (``categorical=True``): one bin per category of either side, so a category the
    reference never had counts. Missing values (None/NaN) are one more bin on both kinds. Shares
    are floored at 1e-4 so an empty bin gives a large, finite term. NaN when either side has no
    rows. Symmetric in its formula; not exactly in its arguments, since the reference sets the
    numeric bins.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, not {bins}")
    if categorical:
        ref_counts, cur_counts, _ = _category_counts(reference, current)
        return _psi_of_counts(ref_counts, cur_counts)
    ref = _as_float(reference, "reference")
    cur = _as_float(current, "current")
    edges = _quantile_edges(ref, bins)
    return _psi_of_counts(_bin_counts(ref, edges), _bin_counts(cur, edges))


# --- two-sample tests ----------------------------------------------------------------------------


def _sample(frame: pd.DataFrame, columns: list[str], rows: int) -> pd.DataFrame:
    """At most ``rows`` rows of ``columns``: all of them, or a fixed-seed sample in frame order."""
    import numpy as np

    if len(frame) <= rows:
        return frame[columns]
    picked = np.random.default_rng(_SAMPLE_SEED).choice(len(frame), size=rows, replace=False)
    # Rows first, columns second: never a copy of every row of the (wide, long) day.
    return frame.iloc[np.sort(picked)][columns]


def _ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov D: the largest gap between the two empirical CDFs."""
    import numpy as np

    ref, cur = np.sort(reference), np.sort(current)
    both = np.concatenate([ref, cur])
    gap = np.searchsorted(ref, both, side="right") / len(ref) - np.searchsorted(
        cur, both, side="right"
    ) / len(cur)
    return float(np.abs(gap).max())


def _evidently_ks_p_values(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]
) -> dict[str, float]:
    """KS p-value per numeric column, from one Evidently ``Report`` of ``ValueDrift`` metrics."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=columns)
    report = Report([ValueDrift(column=column, method="ks") for column in columns])
    snapshot = report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    # ValueDrift's value is the drift score: the p-value for "ks".
    return {
        metric["config"]["column"]: float(metric["value"]) for metric in snapshot.dict()["metrics"]
    }


def _chi_square(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Chi-square test that both samples come from one categorical distribution: (stat, p).

    SciPy's test of homogeneity on the 2 x k table of counts (missing values left out, like the
    KS test leaves them out; PSI counts them). Not Evidently's ``chisquare``: it is a
    goodness-of-fit test that takes the reference's shares as the exact truth, ignoring that the
    reference is a sample too, so its statistic is inflated by about 1 + current/reference rows
    (x21 for 1M rows against 50k): it gave p = 2e-6 for two samples of one uniform 3-category
    distribution, and p = 0 with a divide-by-zero warning when a category is new.
    """
    import numpy as np
    from scipy.stats import chi2_contingency

    ref_counts, cur_counts, _ = _category_counts(reference, current)
    table = np.vstack([ref_counts[:-1], cur_counts[:-1]])
    if table[0].sum() == 0 or table[1].sum() == 0:
        return math.nan, math.nan
    if table.shape[1] < 2:
        return 0.0, 1.0  # one category on both sides: nothing can differ
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


# --- the table -----------------------------------------------------------------------------------


def _features(
    numeric: Sequence[str], categorical: Sequence[str], frames: Sequence[pd.DataFrame] = ()
) -> list[str]:
    numeric, categorical = list(numeric), list(categorical)
    features = numeric + categorical
    if not features:
        raise ValueError("no features to compare: numeric and categorical are both empty")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise ValueError(f"features listed twice (or as numeric and categorical): {repeated}")
    for name, frame in zip(("reference", "current"), frames, strict=False):
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise KeyError(f"{name} has no column(s) {missing}")
    return features


def drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    thresholds: DriftThresholds = DriftThresholds(),
    sample_rows: int = TEST_SAMPLE_ROWS,
) -> pd.DataFrame:
    """One row per feature: its PSI, its two-sample test and whether it drifted.

    Columns ``feature``, ``kind`` (numeric/categorical), ``psi`` (all rows), ``test`` (``ks``
    or ``chisquare``), ``statistic`` (KS D or chi-square), ``p_value`` (on the sample of at most
    ``sample_rows`` rows of each side; NaN when a side has no value to test), ``drifted`` (PSI
    at or above ``psi_warn``) and ``severity`` (``ok``/``warn``/``error`` by PSI alone). Sorted
    by PSI, largest first, then by feature. Both frames need rows: a day without any goes through
    :func:`assess_drift`, which says "insufficient data" instead.
    """
    import numpy as np
    import pandas as pd

    features = _features(numeric, categorical, (reference, current))
    if len(reference) == 0 or len(current) == 0:
        raise ValueError(
            f"cannot compare {len(current)} current row(s) with {len(reference)} reference "
            "row(s); assess_drift reports this as insufficient data"
        )
    if sample_rows < 1:
        raise ValueError(f"sample_rows must be at least 1, not {sample_rows}")
    ref_sample = _sample(reference, features, sample_rows)
    cur_sample = _sample(current, features, sample_rows)

    rows: list[dict[str, Any]] = []
    testable: list[str] = []
    for feature in numeric:
        psi = population_stability_index(
            _as_float(reference[feature], feature),
            _as_float(current[feature], feature),
            bins=thresholds.bins,
        )
        ref_values = _as_float(ref_sample[feature], feature)
        cur_values = _as_float(cur_sample[feature], feature)
        ref_values = ref_values[np.isfinite(ref_values)]
        cur_values = cur_values[np.isfinite(cur_values)]
        statistic = math.nan
        if ref_values.size and cur_values.size:
            statistic = _ks_statistic(ref_values, cur_values)
            testable.append(feature)
        rows.append(dict(feature=feature, kind="numeric", psi=psi, test="ks", statistic=statistic))
    p_values: dict[str, float] = {}
    if testable:
        # Evidently drops NaN and ±inf itself; it gets floats so nullable integers work too.
        p_values = _evidently_ks_p_values(
            pd.DataFrame({f: _as_float(ref_sample[f], f) for f in testable}),
            pd.DataFrame({f: _as_float(cur_sample[f], f) for f in testable}),
            testable,
        )
    for row in rows:
        row["p_value"] = p_values.get(row["feature"], math.nan)
    for feature in categorical:
        psi = population_stability_index(reference[feature], current[feature], categorical=True)
        statistic, p_value = _chi_square(ref_sample[feature], cur_sample[feature])
        rows.append(
            dict(
                feature=feature,
                kind="categorical",
                psi=psi,
                test="chisquare",
                statistic=statistic,
                p_value=p_value,
            )
        )
    for row in rows:
        row["drifted"] = bool(row["psi"] >= thresholds.psi_warn)
        row["severity"] = thresholds.severity(row["psi"])
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table = table.astype(
        {"psi": "float64", "statistic": "float64", "p_value": "float64", "drifted": "bool"}
    )
    return table.sort_values(
        ["psi", "feature"], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)


# --- the verdict ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftSummary:
    """The day's drift in one status and one sentence, with the table it rests on."""

    status: str  # "ok" | "warn" | "error" | "insufficient data"
    reason: str  # a sentence: "3 of 39 features drifted; worst amount PSI 0.41 >= 0.25"
    table: pd.DataFrame | None  # drift_table, None when insufficient data
    reference_rows: int
    current_rows: int
    worst_feature: str | None
    worst_psi: float | None


def _short(value: float) -> str:
    return f"{value:.3g}"


def assess_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    thresholds: DriftThresholds = DriftThresholds(),
    sample_rows: int = TEST_SAMPLE_ROWS,
) -> DriftSummary:
    """Did the day's inputs drift? ``error`` when a feature's PSI reaches ``psi_error``,
    ``warn`` when one reaches ``psi_warn``, ``ok`` otherwise, with the sentence saying which
    feature and how far.

    "insufficient data" (no table) when either side has fewer than ``min_rows`` rows: a day with
    no traffic, or a champion without a reference, must not alarm. A misconfigured feature list
    still raises, whatever the rows.
    """
    _features(numeric, categorical)
    ref_rows, cur_rows = len(reference), len(current)
    short = [
        f"{rows} {name} row{'s' if rows != 1 else ''}"
        for name, rows in (("current", cur_rows), ("reference", ref_rows))
        if rows < thresholds.min_rows
    ]
    if short:
        return DriftSummary(
            status=INSUFFICIENT_DATA,
            reason=f"insufficient data: {' and '.join(short)}, fewer than the "
            f"{thresholds.min_rows} needed to compare distributions",
            table=None,
            reference_rows=ref_rows,
            current_rows=cur_rows,
            worst_feature=None,
            worst_psi=None,
        )
    table = drift_table(
        reference,
        current,
        numeric=numeric,
        categorical=categorical,
        thresholds=thresholds,
        sample_rows=sample_rows,
    )
    worst = table.iloc[0]
    worst_psi = float(worst["psi"])
    drifted = int(table["drifted"].sum())
    status = thresholds.severity(worst_psi)
    limit = {"error": thresholds.psi_error, "warn": thresholds.psi_warn}.get(status)
    comparison = f">= {_short(limit)}" if limit is not None else f"< {_short(thresholds.psi_warn)}"
    return DriftSummary(
        status=status,
        reason=f"{drifted} of {len(table)} features drifted; worst {worst['feature']} PSI "
        f"{_short(worst_psi)} {comparison}",
        table=table,
        reference_rows=ref_rows,
        current_rows=cur_rows,
        worst_feature=str(worst["feature"]),
        worst_psi=worst_psi,
    )


# --- the HTML report -----------------------------------------------------------------------------

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _stable_ids(page: str) -> str:
    """Evidently's page with its random ids (one uuid4 for the page, one uuid7 per widget)
    replaced by numbered ones, so the same data gives the same bytes.

    Only the ids of the page's data block are renumbered (each everywhere it is referenced),
    never a uuid-looking string inside the embedded JavaScript library.
    """
    page_id = re.search(r"var (metric_[0-9a-f]{32}) =", page)
    if page_id is None:  # another Evidently layout: leave the page as it is
        return page
    start = page_id.start()
    end = page.find("</script>", start)
    block = page[start:end]
    ids = dict.fromkeys(re.findall(rf'"id": "({_UUID})"', block))
    numbered = {old: f"00000000-0000-4000-8000-{k:012x}" for k, old in enumerate(ids)}
    block = re.sub(_UUID, lambda m: numbered.get(m.group(0), m.group(0)), block)
    page = page[:start] + block + page[end:]
    return page.replace(page_id.group(1), "metric_report")


def drift_report_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    title: str,
    thresholds: DriftThresholds = DriftThresholds(),
    sample_rows: int = TEST_SAMPLE_ROWS,
) -> bytes:
    """Evidently's drift report of the day: one self-contained HTML page (about 4 MB: the
    JavaScript and fonts are embedded, nothing is fetched when it opens).

    One ``ValueDrift`` per feature, judged by Evidently's PSI against ``psi_warn``, with the two
    distributions drawn; on the same deterministic samples as the tests of :func:`drift_table`
    (the page says how many rows). Evidently's PSI bins differ from ours (see the module), so a
    feature near the threshold can be flagged on one side and not the other: the check decides on
    :func:`assess_drift`. A feature with no value on one side is left out and named. The same data
    gives the same bytes (Evidently's random ids are renumbered). Both frames need rows.
    """
    import numpy as np
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    features = _features(numeric, categorical, (reference, current))
    if len(reference) == 0 or len(current) == 0:
        raise ValueError(
            f"cannot draw a drift report of {len(current)} current row(s) against "
            f"{len(reference)} reference row(s)"
        )
    samples = []
    for frame in (reference, current):
        sample = _sample(frame, features, sample_rows)
        samples.append(
            pd.DataFrame(
                {f: _as_float(sample[f], f) for f in numeric}
                | {f: sample[f].to_numpy() for f in categorical}
            )
        )
    ref_sample, cur_sample = samples

    # Evidently refuses a column that is empty once missing values are dropped.
    def has_values(values: pd.Series) -> bool:
        if values.name in numeric:
            return bool(np.isfinite(values.to_numpy()).any())  # Evidently drops ±inf too
        return bool(values.notna().any())

    empty = [f for f in features if not (has_values(ref_sample[f]) and has_values(cur_sample[f]))]
    drawn = [f for f in features if f not in empty]
    if not drawn:
        raise ValueError(f"every feature has no value on one side: {empty}")
    definition = DataDefinition(
        numerical_columns=[f for f in numeric if f in drawn],
        categorical_columns=[f for f in categorical if f in drawn],
    )
    report = Report(
        [ValueDrift(column=f, method="psi", threshold=thresholds.psi_warn) for f in drawn]
    )
    snapshot = report.run(
        Dataset.from_pandas(cur_sample[drawn], data_definition=definition),
        Dataset.from_pandas(ref_sample[drawn], data_definition=definition),
    )
    page = _stable_ids(snapshot.get_html_str(as_iframe=False))

    def rows(name: str, total: int, sampled: int) -> str:
        if sampled == total:
            return f"{name}: {total:,} rows"
        return f"{name}: a fixed sample of {sampled:,} of {total:,} rows"

    notes = [
        rows("reference", len(reference), len(ref_sample)),
        rows("current", len(current), len(cur_sample)),
        f"Evidently's PSI per feature against {_short(thresholds.psi_warn)} (its bins differ "
        "from the monitoring table's quantile bins; the check decides on the table)",
    ]
    if empty:
        notes.append(f"not drawn, no value on one side: {', '.join(empty)}")
    header = (
        '<header style="font-family: sans-serif; margin: 16px 24px">'
        f"<h2>{html_lib.escape(title)}</h2>"
        + "".join(f"<div>{html_lib.escape(note)}</div>" for note in notes)
        + "</header>"
    )
    page = page.replace("</head>", f"<title>{html_lib.escape(title)}</title>\n</head>", 1)
    page = page.replace("<body>", "<body>\n" + header, 1)
    return page.encode("utf-8")
