"""Encoders and the model matrix of the housing use case.

Categorical columns (:data:`schema.CATEGORICAL`) become two numbers each: how common the category
was in the training period (``<cat>_frequency``) and a smoothed mean of ``log(price)`` of its sales
(``<cat>_encoding``, a *target encoding*). The encoders are a **table**, one row per (feature,
category), so they can be stored as parquet, read by a person, hashed into a data version and
bundled with the model (:mod:`mlops_assets.housing.inference`):

=========  =======  ==========================================================================
column     dtype    meaning
=========  =======  ==========================================================================
feature    str      a name of :data:`schema.CATEGORICAL`
category   str      a category seen in train; null on the feature's *unseen* row, which every
                    category not seen in train (and a null) maps to
count      int64    train rows with that category (0 on the unseen row)
frequency  float64  ``count / train rows`` (0.0 on the unseen row)
encoding   float64  ``(n * mean + m * prior) / (n + m)`` of ``log(price)``, ``m`` =
                    :attr:`EncoderSpec.smoothing`, ``prior`` = mean ``log(price)`` of train; the
                    unseen row holds ``prior``
=========  =======  ==========================================================================

Rows are sorted by ``feature`` then ``category`` (Python string order), the unseen row **last**
in each feature; the index is ``0..n-1``. The table is deterministic: the same train rows in any
order give the same table, to the bit (sums run over rows in a canonical order; the prior is an
exactly rounded sum).

Leakage: :func:`fit_encoders` receives the *training* rows only, so evaluation and holdout prices
can never reach it; the caller splits first. Inside train, a row's own price must not feed its
own feature either, or the model learns to trust an encoding that will be weaker on new homes:
training rows therefore take their ``_encoding`` columns from :func:`out_of_fold_encodings` (each
row encoded from the other folds only), and every other row (validation, holdout, requests) from
the table.

A category value is compared as text: a null stays null (the unseen row), anything else is
``str(value)``. Cleaning what a client sends (whitespace, zipcodes that lost their leading zeros)
is the job of :func:`mlops_assets.housing.inference.prepare_records`.

Pure pandas/NumPy/scikit-learn, imported inside the functions (the Dagster code location imports
this module's names and must load fast).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.housing import schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ENCODER_COLUMNS = ("feature", "category", "count", "frequency", "encoding")

# ``months_since_start`` counts months from this one (the first month of the data).
START_YEAR, START_MONTH = schema.FIRST_YEAR, 1

DERIVED = ("age", "sale_year", "sale_month", "months_since_start")

# THE training column order. A bundled model stores its own copy (see ``inference``), so a change
# here cannot silently reorder the columns a logged model sees.
FEATURE_COLUMNS: tuple[str, ...] = (
    *schema.NUMERIC,
    *DERIVED,
    *(f"{cat}_{kind}" for cat in schema.CATEGORICAL for kind in ("frequency", "encoding")),
)


@dataclass(frozen=True)
class EncoderSpec:
    """How categories are encoded.

    ``smoothing``: the weight ``m`` of the prior, in rows: a category seen ``m`` times sits halfway
    between its own mean and the prior (0 = no smoothing). ``n_folds``/``seed``: the
    ``KFold(n_folds, shuffle=True, random_state=seed)`` of :func:`out_of_fold_encodings`.
    """

    smoothing: float = 20.0
    n_folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.smoothing, bool) or not isinstance(self.smoothing, int | float):
            raise ValueError(f"smoothing must be a number, got {self.smoothing!r}")
        if not math.isfinite(self.smoothing) or self.smoothing < 0:
            raise ValueError(f"smoothing must be finite and >= 0, got {self.smoothing!r}")
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int):
            raise ValueError(f"n_folds must be an int, got {self.n_folds!r}")
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {self.n_folds}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")


# --- target -----------------------------------------------------------------------------------


def target(frame: pd.DataFrame) -> np.ndarray:
    """``log(price)`` of each row (float64): what the model is trained on.

    Raises ValueError when a price is missing, not finite or not positive.
    """
    import numpy as np
    import pandas as pd

    if schema.TARGET not in frame:
        raise ValueError(f"the frame has no {schema.TARGET!r} column")
    price = pd.to_numeric(frame[schema.TARGET], errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(price) | (price <= 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} prices are missing, not finite or not positive "
            f"(first at row {first}: {frame[schema.TARGET].iloc[first]!r}); log(price) needs > 0"
        )
    return np.log(price)


def price_from_target(values: Any) -> np.ndarray:
    """The price (USD, float64) of model outputs on the :func:`target` scale: ``exp``."""
    import numpy as np

    return np.exp(np.asarray(values, dtype="float64"))


# --- encoders ---------------------------------------------------------------------------------


def category_values(values: Any) -> np.ndarray:
    """``values`` as an object array of ``str`` (``str(value)``) and ``None`` for nulls: the form
    in which categories are fitted and looked up."""
    import numpy as np
    import pandas as pd

    series = pd.Series(values, copy=False).astype(object)
    null = series.isna().to_numpy()
    out = np.empty(len(series), dtype=object)
    out[~null] = [v if isinstance(v, str) else str(v) for v in series.to_numpy()[~null]]
    out[null] = None
    return out


def _check_train(train: pd.DataFrame) -> None:
    missing = [c for c in (*schema.CATEGORICAL, schema.TARGET) if c not in train]
    if missing:
        raise ValueError(f"train lacks the columns {missing}")
    if len(train) == 0:
        raise ValueError("train is empty: encoders need training rows")


def _category_stats(categories: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Per category (nulls left out): ``n`` rows and the ``total`` of ``y``, summed over rows
    sorted by (category, y) so that the sums do not depend on the row order. Sorted by category."""
    import numpy as np
    import pandas as pd

    seen = np.array([c is not None for c in categories], dtype=bool)
    frame = pd.DataFrame({"category": categories[seen], "y": y[seen]})
    frame = frame.sort_values(["category", "y"], kind="mergesort")
    return (
        frame.groupby("category", sort=True)["y"]
        .agg(n="count", total="sum")
        .astype({"n": "int64", "total": "float64"})
    )


def _prior(y: np.ndarray) -> float:
    """The mean of ``y``, exactly rounded (``math.fsum``): the same for any order of the rows."""
    return math.fsum(y.tolist()) / len(y)


def _smoothed(total: Any, n: Any, prior: float, smoothing: float) -> Any:
    """``(n * mean + m * prior) / (n + m)`` with ``n * mean = total``."""
    return (total + smoothing * prior) / (n + smoothing)


def fit_encoders(train: pd.DataFrame, spec: EncoderSpec) -> pd.DataFrame:
    """The encoder table (see the module's docstring) fitted on ``train``.

    ``train`` must be the training rows only (the caller splits before fitting, so no evaluation
    or holdout price can reach the encoders). It needs the :data:`schema.CATEGORICAL` columns and
    ``price`` (positive). A null category is not a category: its rows count in the train total
    (the frequency denominator and the prior) but get no row of their own, and look up the unseen
    row, as at inference.
    """
    import numpy as np
    import pandas as pd

    _check_train(train)
    spec = spec if isinstance(spec, EncoderSpec) else EncoderSpec(**spec)
    y = target(train)
    rows = len(train)
    prior = _prior(y)
    parts = []
    for feature in sorted(schema.CATEGORICAL):
        stats = _category_stats(category_values(train[feature]), y)
        n = stats["n"].to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "feature": feature,
                    "category": stats.index.to_numpy(dtype=object),
                    "count": n,
                    "frequency": n / rows,
                    "encoding": _smoothed(stats["total"].to_numpy(), n, prior, spec.smoothing),
                }
            )
        )
        parts.append(
            pd.DataFrame(
                {
                    "feature": [feature],
                    "category": np.array([None], dtype=object),
                    "count": [0],
                    "frequency": [0.0],
                    "encoding": [prior],
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    dtypes = {"feature": object, "category": object, "count": "int64", "frequency": "float64"}
    return table.astype({**dtypes, "encoding": "float64"})[list(ENCODER_COLUMNS)]


def check_encoders(encoders: pd.DataFrame) -> None:
    """Raise ValueError unless ``encoders`` has the table's columns and, for every categorical,
    exactly one unseen (null category) row and no duplicated category."""
    missing = [c for c in ENCODER_COLUMNS if c not in encoders]
    if missing:
        raise ValueError(f"the encoder table lacks the columns {missing}")
    for feature in schema.CATEGORICAL:
        rows = encoders[encoders["feature"] == feature]
        unseen = int(rows["category"].isna().sum())
        if unseen != 1:
            raise ValueError(
                f"the encoder table has {unseen} unseen (null category) rows for {feature!r}; "
                "it needs exactly one"
            )
        duplicated = rows["category"].dropna().duplicated()
        if duplicated.any():
            raise ValueError(
                f"the encoder table repeats {feature!r} categories "
                f"{sorted(rows['category'].dropna()[duplicated].unique())[:5]}"
            )


def _stable_order(train: pd.DataFrame) -> np.ndarray:
    """Positions of ``train``'s rows in a stable order: by ``sale_id`` when the frame has it (so
    the folds do not depend on the order the rows arrive in), else as they come."""
    import numpy as np

    if schema.KEY in train:
        keys = category_values(train[schema.KEY])
        keys = np.array(["" if k is None else k for k in keys], dtype=object)
        return np.argsort(keys, kind="stable")
    return np.arange(len(train))


def out_of_fold_encodings(train: pd.DataFrame, spec: EncoderSpec) -> pd.DataFrame:
    """``<cat>_encoding`` of every training row computed from the *other* folds only.

    The rows are put in a stable order (by ``sale_id`` when present, else as given) and split by
    ``KFold(spec.n_folds, shuffle=True, random_state=spec.seed)``. For each fold, the categories
    are encoded as :func:`fit_encoders` does, from the rows of the other folds with *their* prior
    (mean ``log(price)``) and the same smoothing; a category absent from the other folds, or null,
    gets that prior. A row's own price therefore never feeds its own feature.

    Returns a float64 frame with one ``<cat>_encoding`` column per categorical, index of ``train``.
    """
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import KFold

    _check_train(train)
    spec = spec if isinstance(spec, EncoderSpec) else EncoderSpec(**spec)
    if len(train) < spec.n_folds:
        raise ValueError(
            f"out-of-fold encodings need at least n_folds={spec.n_folds} rows; train has "
            f"{len(train)}"
        )
    order = _stable_order(train)
    y = target(train)[order]
    categories = {c: category_values(train[c])[order] for c in schema.CATEGORICAL}
    out = {c: np.empty(len(train), dtype="float64") for c in schema.CATEGORICAL}
    folds = KFold(n_splits=spec.n_folds, shuffle=True, random_state=spec.seed)
    for fit_rows, held_rows in folds.split(np.zeros((len(train), 1))):
        prior = _prior(y[fit_rows])
        for feature, values in categories.items():
            stats = _category_stats(values[fit_rows], y[fit_rows])
            encoded = _smoothed(
                stats["total"].to_numpy(), stats["n"].to_numpy(), prior, spec.smoothing
            )
            index = pd.Index(stats.index.to_numpy(dtype=object)).get_indexer(values[held_rows])
            out[feature][held_rows] = np.where(index >= 0, encoded[np.maximum(index, 0)], prior)
    # Back from the stable order to the order of ``train``.
    result = np.empty((len(train), len(schema.CATEGORICAL)), dtype="float64")
    for j, feature in enumerate(schema.CATEGORICAL):
        result[order, j] = out[feature]
    return pd.DataFrame(
        result, index=train.index, columns=[f"{c}_encoding" for c in schema.CATEGORICAL]
    )


def unseen_categories(frame: pd.DataFrame, encoders: pd.DataFrame) -> dict[str, list[str]]:
    """Per categorical of ``frame``, its non-null values that ``encoders`` did not see in train,
    sorted; a categorical with none (or absent from ``frame``) is left out, so ``{}`` means every
    category was seen."""
    out: dict[str, list[str]] = {}
    for feature in schema.CATEGORICAL:
        if feature not in frame:
            continue
        rows = encoders[encoders["feature"] == feature]
        known = set(rows["category"].dropna())
        values = {v for v in category_values(frame[feature]) if v is not None}
        unseen = sorted(values - known)
        if unseen:
            out[feature] = unseen
    return out


# --- the model matrix -------------------------------------------------------------------------


def sale_dates(values: Any) -> pd.Series:
    """``values`` as naive ``datetime64`` (tz-aware times converted to UTC first)."""
    import pandas as pd

    dates = pd.to_datetime(pd.Series(values, copy=False))
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    return dates


def _lookup(values: np.ndarray, rows: pd.DataFrame, column: str) -> np.ndarray:
    """``column`` of the encoder ``rows`` (one feature's) for each category of ``values``; the
    unseen row's for nulls and categories it does not hold."""
    import numpy as np
    import pandas as pd

    seen = rows[rows["category"].notna()]
    fallback = float(rows.loc[rows["category"].isna(), column].iloc[0])
    index = pd.Index(seen["category"].to_numpy(dtype=object)).get_indexer(values)
    known = seen[column].to_numpy(dtype="float64")
    if len(known) == 0:
        return np.full(len(values), fallback, dtype="float64")
    return np.where(index >= 0, known[np.maximum(index, 0)], fallback)


def build_features(
    frame: pd.DataFrame, encoders: pd.DataFrame, *, oof: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The model matrix of ``frame``: exactly :data:`FEATURE_COLUMNS`, in order, float64, with the
    index of ``frame``.

    ``frame`` needs :data:`schema.FEATURE_INPUTS` (``price`` is not used). Numerics are taken as
    they are (nulls stay NaN, which XGBoost handles); ``age`` = sale year - ``year_built``, clipped
    at 0; ``months_since_start`` counts from 2012-01. Categories are looked up in ``encoders``
    (nulls and categories not seen in train take the unseen row). With ``oof`` (training rows:
    :func:`out_of_fold_encodings` of this same frame) the ``<cat>_encoding`` columns come from it
    instead of the table.
    """
    import numpy as np
    import pandas as pd

    missing = [c for c in schema.FEATURE_INPUTS if c not in frame]
    if missing:
        raise ValueError(f"the frame lacks the columns {missing}")
    check_encoders(encoders)
    columns: dict[str, np.ndarray] = {}
    for name in schema.NUMERIC:
        columns[name] = pd.to_numeric(frame[name]).to_numpy(dtype="float64", na_value=np.nan)
    dates = sale_dates(frame[schema.DATE])
    year = dates.dt.year.to_numpy(dtype="float64", na_value=np.nan)
    month = dates.dt.month.to_numpy(dtype="float64", na_value=np.nan)
    columns["age"] = np.clip(year - columns["year_built"], 0.0, None)
    columns["sale_year"] = year
    columns["sale_month"] = month
    columns["months_since_start"] = (year - START_YEAR) * 12 + (month - START_MONTH)
    if oof is not None:
        oof = _aligned_oof(oof, frame)
    for feature in schema.CATEGORICAL:
        rows = encoders[encoders["feature"] == feature]
        values = category_values(frame[feature])
        columns[f"{feature}_frequency"] = _lookup(values, rows, "frequency")
        if oof is not None:
            columns[f"{feature}_encoding"] = oof[f"{feature}_encoding"].to_numpy(dtype="float64")
        else:
            columns[f"{feature}_encoding"] = _lookup(values, rows, "encoding")
    return pd.DataFrame(
        {name: columns[name] for name in FEATURE_COLUMNS}, index=frame.index, dtype="float64"
    )


def _aligned_oof(oof: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    wanted = [f"{c}_encoding" for c in schema.CATEGORICAL]
    missing = [c for c in wanted if c not in oof]
    if missing:
        raise ValueError(f"oof lacks the columns {missing}")
    if oof.index.equals(frame.index):
        return oof
    if not (oof.index.is_unique and frame.index.is_unique):
        raise ValueError("oof and frame have different, non-unique indexes: cannot align them")
    absent = frame.index.difference(oof.index)
    if len(absent):
        raise ValueError(
            f"oof has no encodings for {len(absent)} rows of frame (e.g. index {absent[0]!r}): "
            "out-of-fold encodings exist for training rows only"
        )
    return oof.reindex(frame.index)


def encoders_fingerprint(encoders: pd.DataFrame) -> str:
    """A SHA-256 of the encoder table's content (columns, order, values to the bit): a data
    version for the encoders that does not depend on a parquet writer's version."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for column in ENCODER_COLUMNS:
        digest.update(column.encode() + b"\0")
        values = encoders[column].to_numpy()
        if column in ("feature", "category"):
            for value in values:
                null = value is None or value != value  # None, NaN
                digest.update(b"\1" if null else b"\2" + str(value).encode() + b"\0")
        else:
            dtype = "int64" if column == "count" else "float64"
            digest.update(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return digest.hexdigest()
