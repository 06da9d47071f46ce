"""THE inference path of the housing model, shared by batch scoring and the online API, and the
MLflow pyfunc that bundles everything a prediction needs.

    prepared = prepare_records(records, encoders)       # validate, coerce, report
    prices, prepared = predict_records(model, records)  # prepare -> features -> XGBoost -> USD
    mlflow.pyfunc.load_model(uri).predict(records)      # the same, through HousingPriceModel

:func:`predict_records` is the one function that turns raw records into prices; the batch asset,
the API and :meth:`HousingPriceModel.predict` all call it, so they cannot drift apart.

Requests are raw records (:data:`schema.FEATURE_INPUTS`): a list of JSON objects or a DataFrame.
:func:`prepare_records` is lenient where a guess is safe and strict where it is not:

* a missing field (other than ``sale_date``) becomes null and is listed in ``missing_fields``
  (XGBoost routes missing values itself); a field the model does not use (``sale_id``,
  ``price``, ...) is dropped and listed in ``extra_fields``;
* a number sent as text (``"3"``, ``" 1200.5 "``) is converted and its field listed in
  ``coerced_fields``; a value that is not empty and is not a number (``"three"``, ``"1,200"``,
  ``true``, ``[1]``), or is not finite, is an error: text is never silently turned into NaN;
* categories are text; surrounding whitespace is stripped and an empty string is null. A category
  given as an integral number is turned into its text. **Zipcodes**: a US ZIP code is always five
  digits, so an all-digit zipcode shorter than five (the number ``2139``, or ``"2139"`` after a
  spreadsheet round trip) can only be one that lost its leading zeros: it is left-padded
  (``"02139"``) and ``zipcode`` is listed in ``coerced_fields``. A padded zipcode that the
  encoders never saw is still reported as unseen;
* a category not seen in training is allowed (the encoders' unseen row) and listed in ``unseen``;
* ``sale_date`` is required in every row (the model needs the time): an ISO 8601 date or time
  (``"2023-05-01"``, ``"2023-05-01T10:00:00Z"``; times with an offset are converted to UTC), a
  ``date``/``datetime``, or a datetime column.

Everything wrong in a batch is reported at once in one :class:`InferenceError` (HTTP 422): each
problem names the row (its position in the batch, from 0), the field, the value and the reason.

The MLflow bundle (:class:`HousingPriceModel`) holds the encoder table as plain records, the
training column order, the booster as XGBoost JSON bytes and metadata: nothing that pickles a live
XGBoost object or a pandas version's internals. It is pickled by reference to this module, so the
process that loads it needs this package importable (the API runs from this project). Its
signature declares the output (``predicted_price``, double) and **no input schema**: MLflow's
schema enforcement would reject missing, extra and text-number fields before
:func:`prepare_records` could accept them or explain them in its own words.

Imported by the housing assets and the API only (it imports mlflow and pandas at the top).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np
import pandas as pd  # at the top: MLflow resolves predict's type hints when logging

from mlops_assets.housing import encoding, schema

if TYPE_CHECKING:
    import xgboost as xgb
    from mlflow.models import ModelSignature

PREDICTION = "predicted_price"

# Problems an InferenceError lists (and its message shows) at most; a broken column of a large
# batch would otherwise make one entry per row.
MAX_PROBLEMS = 100
_MESSAGE_PROBLEMS = 10

ZIPCODE_DIGITS = 5

# What a logged bundle needs to be loaded and run again, pinned to the installed versions.
REQUIREMENTS: tuple[str, ...] = ("mlflow", "xgboost", "pandas", "numpy", "cloudpickle")


class InferenceError(ValueError):
    """The batch cannot be scored; ``problems`` says why, one dict per problem
    (``field``, ``row``, ``value``, ``reason``; ``field``/``row`` are None where they do not
    apply). ``status_code`` 422: the request is well-formed JSON with unusable content."""

    status_code: int = 422

    def __init__(self, problems: list[dict[str, Any]], *, total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = total if total is not None else len(self.problems)
        lines = [_describe(p) for p in self.problems[:_MESSAGE_PROBLEMS]]
        more = self.total - len(lines)
        message = "; ".join(lines)
        if more > 0:
            message += f"; and {more} more problem{'s' if more > 1 else ''}"
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        """A JSON body for an API response."""
        return {"detail": str(self), "problems": self.problems, "total_problems": self.total}


def _describe(problem: Mapping[str, Any]) -> str:
    where = f"row {problem['row']}: " if problem.get("row") is not None else ""
    if problem.get("field") is not None:
        subject = problem["field"]
        if problem.get("value") is not None:
            subject += f"={problem['value']!r}"
    elif problem.get("value") is not None:
        subject = repr(problem["value"])
    else:
        subject = ""
    return f"{where}{subject} {problem['reason']}".strip().replace("  ", " ")


def _jsonable(value: Any) -> Any:
    """``value`` as it is where JSON can hold it, else its ``repr`` (for a problem entry)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, date):
        # As the client wrote it ('0001-01-01'), not as Python's repr (datetime.date(1, 1, 1)).
        return value.isoformat()
    if isinstance(value, list | dict):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return repr(value)
        return value
    return repr(value)


@dataclass
class PreparedBatch:
    """Records made ready for :func:`encoding.build_features`, and what was done to them.

    ``frame``: the :data:`schema.FEATURE_INPUTS` columns, in order: ``sale_date`` naive
    ``datetime64``, categoricals ``str`` or None, numerics float64 (NaN where missing); index of
    the input frame, or ``0..n-1`` for a list. ``missing_fields``: inputs absent from at least one
    record (in :data:`schema.FEATURE_INPUTS` order); ``extra_fields``: fields the model does not
    use, dropped (sorted); ``coerced_fields``: fields with a value converted from another type
    (numbers sent as text, categories sent as numbers, zipcodes padded); ``unseen``: categories
    not seen in training, per categorical (see :func:`encoding.unseen_categories`).
    """

    frame: pd.DataFrame
    missing_fields: list[str] = field(default_factory=list)
    extra_fields: list[str] = field(default_factory=list)
    coerced_fields: list[str] = field(default_factory=list)
    unseen: dict[str, list[str]] = field(default_factory=dict)

    def notes(self) -> dict[str, Any]:
        """What was done to the batch, JSON-ready: for logs and for API clients."""
        return {
            "rows": len(self.frame),
            "missing_fields": list(self.missing_fields),
            "extra_fields": list(self.extra_fields),
            "coerced_fields": list(self.coerced_fields),
            "unseen_categories": {k: list(v) for k, v in self.unseen.items()},
        }


class _Problems:
    """Collects problems (bounded by MAX_PROBLEMS) and their total count."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.total = 0

    def add(self, field: str | None, row: int | None, value: Any, reason: str) -> None:
        self.total += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(
                {"field": field, "row": row, "value": _jsonable(value), "reason": reason}
            )

    def add_rows(self, field: str, mask: np.ndarray, values: np.ndarray, reason: str) -> None:
        rows = np.flatnonzero(mask)
        room = max(MAX_PROBLEMS - len(self.items), 0)
        for row in rows[:room]:
            self.items.append(
                {"field": field, "row": int(row), "value": _jsonable(values[row]), "reason": reason}
            )
        self.total += len(rows)

    def raise_if_any(self) -> None:
        if self.total:
            order = {name: i for i, name in enumerate(schema.FEATURE_INPUTS)}
            self.items.sort(
                key=lambda p: (
                    -1 if p["row"] is None else p["row"],
                    order.get(p["field"], len(order)),
                )
            )
            raise InferenceError(self.items, total=self.total)


# --- preparing records ------------------------------------------------------------------------


def _to_frame(records: Any) -> tuple[pd.DataFrame, list[str]]:
    """The records as a DataFrame, and the inputs absent from at least one record."""
    if isinstance(records, pd.DataFrame):
        if len(records) == 0:
            raise InferenceError([_batch_problem("the batch is empty: send at least one record")])
        if records.columns.duplicated().any():
            repeated = sorted({str(c) for c in records.columns[records.columns.duplicated()]})
            raise InferenceError([_batch_problem(f"the batch repeats the columns {repeated}")])
        missing = [c for c in schema.FEATURE_INPUTS if c not in records.columns]
        return records, missing
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Sequence):
        kind = type(records).__name__
        raise InferenceError(
            [
                _batch_problem(
                    f"expected a list of records (JSON objects) or a DataFrame, got {kind}"
                )
            ]
        )
    if len(records) == 0:
        raise InferenceError([_batch_problem("the batch is empty: send at least one record")])
    problems = _Problems()
    for row, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems.add(None, row, record, "is not a record (a JSON object of field: value)")
    problems.raise_if_any()
    missing = [c for c in schema.FEATURE_INPUTS if any(c not in r for r in records)]
    frame = pd.DataFrame.from_records([dict(r) for r in records])
    return frame, missing


def _batch_problem(reason: str) -> dict[str, Any]:
    return {"field": None, "row": None, "value": None, "reason": reason}


def _object_values(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=object)


def _is_null(value: Any) -> bool:
    """None, NaN, NaT, pd.NA (a list or a dict is not null)."""
    return value is None or (
        not isinstance(value, str) and pd.api.types.is_scalar(value) and bool(pd.isna(value))
    )


def _prepare_numeric(name: str, column: pd.Series, problems: _Problems) -> tuple[np.ndarray, bool]:
    """float64 values of a numeric field, and whether some arrived as text."""
    if pd.api.types.is_bool_dtype(column.dtype):
        values = _object_values(column)
        problems.add_rows(name, ~pd.isna(column).to_numpy(), values, "is a boolean, not a number")
        return np.full(len(column), np.nan), False
    if pd.api.types.is_numeric_dtype(column.dtype):
        numbers = column.to_numpy(dtype="float64", na_value=np.nan)
        problems.add_rows(name, np.isinf(numbers), numbers, "is not a finite number")
        return numbers, False
    values = _object_values(column)
    is_bool = np.fromiter((isinstance(v, bool | np.bool_) for v in values), bool, len(values))
    is_text = np.fromiter((isinstance(v, str) for v in values), bool, len(values))
    cleaned = values.copy()
    cleaned[is_text] = [v.strip() for v in values[is_text]]
    empty = is_text & (cleaned == "")
    cleaned[empty | is_bool] = None
    was_null = pd.isna(pd.Series(cleaned, dtype=object)).to_numpy()
    numbers = pd.to_numeric(pd.Series(cleaned, dtype=object), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    not_number = ~was_null & np.isnan(numbers)
    problems.add_rows(name, is_bool, values, "is a boolean, not a number")
    problems.add_rows(name, not_number, values, "is not a number")
    problems.add_rows(name, np.isinf(numbers), values, "is not a finite number")
    coerced = bool((is_text & ~empty & ~not_number).any())
    return numbers, coerced


def _category_text(name: str, value: Any) -> tuple[str | None, bool, str | None]:
    """(text or None, converted?, reason it is unusable or None) of one category value."""
    if _is_null(value):
        return None, False, None
    if isinstance(value, bool | np.bool_):
        return None, False, "is a boolean, not text"
    converted = False
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None, False, None
    elif isinstance(value, int | np.integer) or (
        isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value)
    ):
        text, converted = str(int(value)), True
    else:
        return None, False, "is not text"
    if name == "zipcode" and text.isdigit() and len(text) < ZIPCODE_DIGITS:
        text, converted = text.zfill(ZIPCODE_DIGITS), True
    return text, converted, None


def _prepare_categorical(
    name: str, column: pd.Series, problems: _Problems
) -> tuple[np.ndarray, bool]:
    """``str``/None values of a categorical field, and whether some were converted."""
    values = _object_values(column)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        # Fast path, all text (the batch case): strip, "" -> None, pad short zipcodes.
        text = pd.Series(values, dtype=object).str.strip()
        converted = False
        if name == "zipcode":
            short = (text.str.len() < ZIPCODE_DIGITS) & text.str.isdigit() & (text != "")
            if short.any():
                text = text.where(~short, text.str.zfill(ZIPCODE_DIGITS))
                converted = True
        return text.where(text != "", None).to_numpy(dtype=object), converted
    out = np.empty(len(values), dtype=object)
    converted = False
    for row, value in enumerate(values):
        text, changed, reason = _category_text(name, value)
        if reason is not None:
            problems.add(name, row, value, reason)
        out[row] = text
        converted |= changed
    return out, converted


def _beyond_pandas(value: Any) -> bool:
    """Whether ``value`` is a date (an object, or a text starting ``YYYY-MM-DD``) that pandas
    cannot represent: before 1677-09-22 or after 2262-04-11."""
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[D]").item()  # a date, or an int when out of range
        if not isinstance(value, date):
            return True
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip()[:10])
        except ValueError:
            return False
    if not isinstance(value, date):
        return False
    day = value.date() if isinstance(value, datetime) else value
    return not pd.Timestamp.min.date() < day < pd.Timestamp.max.date()


def _prepare_dates(column: pd.Series, problems: _Problems) -> pd.Series:
    """Naive datetime64 sale dates (UTC where an offset was given); nulls and values that are not
    dates are problems."""
    name = schema.DATE
    hint = "(expected an ISO 8601 date such as '2023-05-01')"
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        dates = encoding.sale_dates(column.reset_index(drop=True))
        nothing = np.full(len(column), None, dtype=object)
        problems.add_rows(name, dates.isna().to_numpy(), nothing, "is missing " + hint)
        return dates
    values = _object_values(column)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "date", "datetime", "datetime64", "empty"):
        # Fast path (the batch case): every non-null value is of a usable type.
        series = pd.Series(values, dtype=object)
        null = series.isna().to_numpy()
        if kind == "string":
            null |= (series.str.strip() == "").to_numpy()
        wrong_type = np.zeros(len(values), dtype=bool)
    else:
        null = np.fromiter(
            (_is_null(v) or (isinstance(v, str) and not v.strip()) for v in values), bool
        )
        wrong_type = np.fromiter(
            (
                not n
                and (
                    isinstance(v, bool | np.bool_) or not isinstance(v, str | date | np.datetime64)
                )
                for v, n in zip(values, null, strict=True)
            ),
            bool,
        )
    candidates = values.copy()
    candidates[null | wrong_type] = None
    parsed = pd.to_datetime(
        pd.Series(candidates, dtype=object), errors="coerce", utc=True, format="ISO8601"
    )
    unparsed = ~null & ~wrong_type & parsed.isna().to_numpy()
    # A real date that pandas cannot hold (before 1677-09-22 or after 2262-04-11) is a date all
    # the same: say it is out of range, not "not a date".
    out_of_range = unparsed & np.fromiter((_beyond_pandas(v) for v in values), bool, len(values))
    nothing = np.full(len(values), None, dtype=object)
    problems.add_rows(name, null, nothing, "is missing " + hint)
    problems.add_rows(
        name,
        out_of_range,
        values,
        f"is outside the dates the model can read ({pd.Timestamp.min:%Y-%m-%d} to "
        f"{pd.Timestamp.max:%Y-%m-%d})",
    )
    problems.add_rows(
        name, wrong_type | (unparsed & ~out_of_range), values, "is not a date " + hint
    )
    return parsed.dt.tz_localize(None)


def prepare_records(
    records: Sequence[Mapping[str, Any]] | pd.DataFrame, encoders: pd.DataFrame
) -> PreparedBatch:
    """Validate and type raw records (a list of JSON objects or a DataFrame) for the model.

    See the module's docstring for what is accepted, converted and refused. Raises
    :class:`InferenceError` listing every problem of the batch.
    """
    frame, missing = _to_frame(records)
    extra = sorted({str(c) for c in frame.columns} - set(schema.FEATURE_INPUTS))
    if schema.DATE not in frame.columns:
        hint = "(an ISO 8601 date such as '2023-05-01'): the model needs the time of the sale"
        raise InferenceError(
            [{"field": schema.DATE, "row": None, "value": None, "reason": f"is missing {hint}"}]
        )
    problems = _Problems()
    columns: dict[str, Any] = {}
    coerced: list[str] = []
    columns[schema.DATE] = _prepare_dates(frame[schema.DATE], problems).to_numpy()
    # A field left out is missing in every row: None for a category, NaN for a number.
    kinds = (
        (schema.CATEGORICAL, _prepare_categorical, np.full(len(frame), None, dtype=object)),
        (schema.NUMERIC, _prepare_numeric, np.full(len(frame), np.nan)),
    )
    for names, prepare, absent in kinds:
        for name in names:
            if name not in frame.columns:
                columns[name] = absent.copy()
                continue
            columns[name], changed = prepare(name, frame[name], problems)
            if changed:
                coerced.append(name)
    problems.raise_if_any()
    index = frame.index if isinstance(records, pd.DataFrame) else pd.RangeIndex(len(frame))
    prepared = pd.DataFrame({name: columns[name] for name in schema.FEATURE_INPUTS}, index=index)
    prepared = prepared.astype(
        {**dict.fromkeys(schema.CATEGORICAL, object), **dict.fromkeys(schema.NUMERIC, "float64")}
    )
    return PreparedBatch(
        frame=prepared,
        missing_fields=missing,
        extra_fields=extra,
        coerced_fields=[c for c in schema.FEATURE_INPUTS if c in coerced],
        unseen=encoding.unseen_categories(prepared, encoders),
    )


# --- the bundle -------------------------------------------------------------------------------


class HousingPriceModel(mlflow.pyfunc.PythonModel):
    """The fitted housing model with everything a prediction needs.

    * ``encoder_records``: the encoder table as plain records (``encoders`` rebuilds the typed
      DataFrame);
    * ``feature_columns``: the training column order, stored so that a change of
      :data:`encoding.FEATURE_COLUMNS` cannot silently reorder what the booster sees;
    * ``booster_json``: the booster as XGBoost JSON (``save_raw("json")``), rebuilt into an
      ``xgboost.Booster`` on first use (``booster``) and never pickled live;
    * ``metadata``: a dict (training data version, spec, metrics...).

    ``predict`` returns ``predicted_price`` (USD, float64) per record, in the records' order.
    """

    def __init__(
        self,
        booster_json: bytes,
        encoders: pd.DataFrame,
        *,
        feature_columns: Sequence[str] = encoding.FEATURE_COLUMNS,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        encoding.check_encoders(encoders)
        table = encoders[list(encoding.ENCODER_COLUMNS)]
        self.encoder_records: list[dict[str, Any]] = [
            {
                "feature": str(f),
                "category": None if _is_null(c) else str(c),
                "count": int(n),
                "frequency": float(q),
                "encoding": float(e),
            }
            for f, c, n, q, e in table.itertuples(index=False, name=None)
        ]
        self.feature_columns: tuple[str, ...] = tuple(feature_columns)
        self.booster_json = bytes(booster_json)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._booster: xgb.Booster | None = None
        self._encoders: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for live in ("_booster", "_encoders", "_lock"):
            state.pop(live, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._booster = None
        self._encoders = None
        self._lock = threading.Lock()

    @property
    def encoders(self) -> pd.DataFrame:
        """The encoder table (a copy of the bundled one, typed as :func:`encoding.fit_encoders`
        returns it)."""
        if self._encoders is None:
            table = pd.DataFrame.from_records(
                self.encoder_records, columns=list(encoding.ENCODER_COLUMNS)
            )
            self._encoders = table.astype(
                {
                    "feature": object,
                    "category": object,
                    "count": "int64",
                    "frequency": "float64",
                    "encoding": "float64",
                }
            )
        return self._encoders.copy()

    @property
    def booster(self) -> xgb.Booster:
        """The ``xgboost.Booster``, loaded from ``booster_json`` on first use."""
        if self._booster is None:
            with self._lock:
                if self._booster is None:
                    import xgboost as xgb

                    booster = xgb.Booster()
                    booster.load_model(bytearray(self.booster_json))
                    self._booster = booster
        return self._booster

    def load_context(self, context: Any) -> None:
        """Load the booster when MLflow loads the model, so a served model's first request does
        not pay for it."""
        _ = self.booster

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """``predicted_price`` (USD) of each raw record of ``model_input`` (a DataFrame or a list
        of JSON objects), through :func:`predict_records`; index of a DataFrame input."""
        prices, prepared = predict_records(self, model_input)
        return pd.DataFrame({PREDICTION: prices}, index=prepared.frame.index, dtype="float64")


def predict_records(
    model: HousingPriceModel, records: Sequence[Mapping[str, Any]] | pd.DataFrame
) -> tuple[np.ndarray, PreparedBatch]:
    """THE inference path: :func:`prepare_records` -> :func:`encoding.build_features` (table
    encodings, no out-of-fold) -> the booster -> :func:`encoding.price_from_target`.

    Returns the prices (USD, float64, in the records' order) and the prepared batch (its
    ``notes()`` say what was missing, dropped, converted or unseen). Raises
    :class:`InferenceError` for a batch that cannot be scored.
    """
    import xgboost as xgb

    encoders = model.encoders
    prepared = prepare_records(records, encoders)
    features = encoding.build_features(prepared.frame, encoders)
    absent = [c for c in model.feature_columns if c not in features.columns]
    if absent:
        raise RuntimeError(
            f"the model was trained on the columns {absent}, which this code no longer builds"
        )
    columns = list(model.feature_columns)
    matrix = xgb.DMatrix(
        features[columns].to_numpy(dtype="float64"), feature_names=columns, missing=np.nan
    )
    return encoding.price_from_target(model.booster.predict(matrix)), prepared


def bundle(
    booster_or_regressor: Any, encoders: pd.DataFrame, *, metadata: Mapping[str, Any]
) -> HousingPriceModel:
    """A :class:`HousingPriceModel` of a fitted ``xgboost.Booster`` or ``XGBRegressor`` trained
    on ``log(price)`` over :data:`encoding.FEATURE_COLUMNS`, with its encoder table.

    Raises ValueError when the booster was trained on other columns (by name, or by count when it
    has no names).
    """
    import xgboost as xgb

    if isinstance(booster_or_regressor, xgb.Booster):
        booster = booster_or_regressor
    elif hasattr(booster_or_regressor, "get_booster"):
        booster = booster_or_regressor.get_booster()
    else:
        raise TypeError(
            f"expected an xgboost.Booster or XGBRegressor, got {type(booster_or_regressor)}"
        )
    columns = list(encoding.FEATURE_COLUMNS)
    if booster.feature_names is not None and list(booster.feature_names) != columns:
        raise ValueError(
            f"the booster was trained on the columns {booster.feature_names}, not on "
            f"FEATURE_COLUMNS {columns}"
        )
    if booster.num_features() != len(columns):
        raise ValueError(
            f"the booster has {booster.num_features()} features; FEATURE_COLUMNS has {len(columns)}"
        )
    return HousingPriceModel(
        bytes(booster.save_raw("json")),
        encoders,
        feature_columns=columns,
        metadata=dict(metadata),
    )


def log_bundle(
    run: Any,
    model: Any,
    encoders: pd.DataFrame,
    raw_sample: pd.DataFrame,
    *,
    name: str,
    metadata: Mapping[str, Any],
) -> Any:
    """Log ``model`` bundled with ``encoders`` (:func:`bundle`) as the pyfunc ``name`` of
    ``run`` (a :class:`~mlops_assets.core.tracking.TrackedRun`), with its signature, an input
    example from ``raw_sample`` and the pinned requirements; returns the logged model's info."""
    signature, example = signature_and_example(raw_sample)
    return run.log_model(
        bundle(model, encoders, metadata=metadata),
        name=name,
        input_example=example,
        signature=signature,
        flavor="pyfunc",
        pip_requirements=pip_requirements(),
    )


def pip_requirements() -> list[str]:
    """``name==version`` of :data:`REQUIREMENTS`, as installed here."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]


def signature_and_example(
    raw_sample: pd.DataFrame, *, rows: int = 3
) -> tuple[ModelSignature, pd.DataFrame]:
    """An MLflow signature (outputs ``predicted_price`` double, **no input schema**: see the
    module's docstring) and an input example: the first ``rows`` rows of ``raw_sample``, its
    :data:`schema.FEATURE_INPUTS` only, ``sale_date`` as ISO date text so the example is plain
    JSON, index ``0..n-1``."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    missing = [c for c in schema.FEATURE_INPUTS if c not in raw_sample]
    if missing:
        raise ValueError(f"the sample lacks the columns {missing}")
    if len(raw_sample) == 0:
        raise ValueError("the sample is empty: an input example needs at least one row")
    example = raw_sample[list(schema.FEATURE_INPUTS)].head(rows).reset_index(drop=True).copy()
    dates = encoding.sale_dates(example[schema.DATE])
    example[schema.DATE] = dates.dt.strftime("%Y-%m-%d").astype(object)
    outputs = Schema([ColSpec("double", PREDICTION)])
    return ModelSignature(inputs=None, outputs=outputs), example
