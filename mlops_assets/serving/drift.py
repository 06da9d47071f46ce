"""Drift of the prediction API's inputs: what a served model saw, against what it learnt from.

A use case whose endpoint declares :class:`InputDrift` (heart, housing, athletes: the use cases
served through the API only) is watched by ``serving/input_drift``. For one UTC day of the request
log and each model version that answered:

* **current**: the values the model saw, read back from the log (the request as validated and the
  features the endpoint logged), and its prediction, one row per answered request (status < 400);
* **reference**: that version's own training rows and its predictions on them. The rows are found
  through the lineage its registry version records (the data version of the training input on its
  MLflow run, the split parameters it logged); :func:`stored_training_rows` says whether the store
  still holds exactly those bytes, and when not, what is missing.

Everything here is pure (no Dagster): the asset is glue over :func:`logged_requests`,
:func:`judge_use_case`, :func:`day_outcome`, :func:`write_reports` and :func:`drift_rows`. pandas and the use cases' training code are imported
inside the functions, and the module itself imports only the standard library, because every
endpoint module (which the API imports at start-up) imports :class:`InputDrift`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

# Standard library only at its top, like this module.
from mlops_assets.core.monitoring.drift import TABLE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlops_assets.core.monitoring.drift import DriftSummary, DriftThresholds
    from mlops_assets.core.monitoring.verdicts import Trigger, Verdict
    from mlops_assets.serving.endpoints import Endpoint, ModelInfo

#: The column of the headline prediction, compared like a numeric feature.
PREDICTION = "prediction"

#: The columns of ``serving/input_drift``: one row per use case, model version and feature.
DRIFT_COLUMNS: tuple[str, ...] = (
    "use_case",
    "model_name",
    "model_version",
    *TABLE_COLUMNS,
    "status",
    "current_rows",
    "reference_rows",
    "reference_exact",
)

# Verdicts from the least to the most alarming: the check shows the worst one.
_RANK = {"insufficient data": 0, "ok": 1, "warn": 2, "failed": 3}


class ReferenceUnavailable(Exception):
    """The training rows of a model version cannot be read (the version left the registry, its
    training data is not in the store, a tag it needs is missing). A day judged against nothing is
    "insufficient data", never an alarm: the message says what is missing."""


# --- what a use case declares ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedOn:
    """What the registry says about how one model version was trained: its version tags (the
    Dagster lineage copied from its run, ``feature_version``...), its run's tags (the same
    lineage, for a version registered from a model URI) and the parameters its run logged."""

    model_name: str
    version: str
    run_id: str | None = None
    version_tags: Mapping[str, str] = field(default_factory=dict)
    run_tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    def tag(self, key: str) -> str | None:
        """Tag ``key`` of the version, else of its run; None when neither records it."""
        return self.version_tags.get(key) or self.run_tags.get(key)

    def model_info(self) -> ModelInfo:
        """The registry's view an endpoint's ``prepare`` reads (as the API builds it)."""
        from mlops_assets.serving.endpoints import ModelInfo

        return ModelInfo(
            name=self.model_name,
            version=self.version,
            run_id=self.run_id,
            version_tags=dict(self.version_tags),
            run_tags=dict(self.run_tags),
        )


@dataclass(frozen=True)
class Reference:
    """A model version's training rows, as the drift compares them.

    ``frame``: one row per training row, with at least the ``numeric`` and ``categorical``
    columns in the form a request gives them (extra columns, such as a date the model needs to
    score, are kept for scoring and not compared). ``exact``: the rows are provably the ones the
    version was fitted on (same data version, split parameters recorded); ``note`` says where they
    come from and, when not exact, what is missing.
    """

    frame: pd.DataFrame
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    exact: bool
    note: str


def merged_values(
    request: Mapping[str, Any] | None, features: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The values a model saw for one request: the validated request, overlaid with the features
    the endpoint logged (online or engineered values the request does not carry)."""
    return {**(request or {}), **(features or {})}


@dataclass(frozen=True)
class InputDrift:
    """How ``serving/input_drift`` compares a use case's API inputs with its champion's training
    data (the optional ``drift`` of :class:`~mlops_assets.serving.endpoints.Endpoint`).

    ``training_rows(asset_store, trained)``: the version's training rows
    (:class:`Reference`), or :class:`ReferenceUnavailable` saying what is missing.
    ``score(model, frame)``: the predictions of the version (as the endpoint's ``prepare`` made
    it) on those rows, in the unit of the logged ``prediction``.
    ``current(request, features)``: the values the model saw for one logged request, under the
    reference's column names (default :func:`merged_values`).
    """

    training_rows: Callable[[Any, TrainedOn], Reference]
    score: Callable[[Any, pd.DataFrame], Any]
    current: Callable[[Mapping[str, Any] | None, Mapping[str, Any] | None], Mapping[str, Any]] = (
        merged_values
    )


def drift_endpoints(use_cases: Sequence[str]) -> dict[str, Endpoint]:
    """The endpoints of ``use_cases`` that declare an :class:`InputDrift`, by use case (a use case
    without a ``serving`` module, or whose endpoint declares none, is left out)."""
    found: dict[str, Endpoint] = {}
    for name in use_cases:
        module_name = f"mlops_assets.{name}.serving"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        endpoint = getattr(module, "ENDPOINT", None)
        if getattr(endpoint, "drift", None) is not None:
            found[name] = endpoint
    return found


# --- the registry and the store -------------------------------------------------------------------


def trained_on(tracking: Any, model_name: str, version: str) -> TrainedOn | None:
    """What the registry records of version ``version`` of ``model_name`` (``tracking``: an
    ``MlflowTracking``); None when the version (or the model) is no longer registered."""
    client = tracking.client
    try:
        found = client.get_model_version(model_name, str(version))
    except Exception as exc:
        if getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return None
        raise
    run_id = found.run_id or _source_run_id(client, getattr(found, "model_id", None))
    run_tags: dict[str, str] = {}
    params: dict[str, str] = {}
    if run_id:
        try:
            run = client.get_run(run_id)
        except Exception as exc:
            if getattr(exc, "error_code", None) not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise
        else:
            run_tags, params = dict(run.data.tags), dict(run.data.params)
    return TrainedOn(
        model_name=model_name,
        version=str(version),
        run_id=run_id,
        version_tags=dict(found.tags or {}),
        run_tags=run_tags,
        params=params,
    )


def _source_run_id(client: Any, model_id: str | None) -> str | None:
    """The run that logged model ``model_id``: a version registered from a ``models:/<id>`` URI
    (the athletes' champion) names no run of its own."""
    if not model_id:
        return None
    try:
        return client.get_logged_model(model_id).source_run_id
    except Exception as exc:
        if getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return None
        raise


def partition_input_version(content_hash: str) -> str:
    """The data version Dagster records for an input read as ONE partition: a sha256 over the
    partition's own data version (the content hash), not that hash itself."""
    return hashlib.sha256(content_hash.encode()).hexdigest()


def stored_training_rows(
    store: Any, key: Any, trained: TrainedOn, *, partition: str | None = None
) -> tuple[pd.DataFrame, bool, str]:
    """The published rows of asset ``key`` (its ``partition``), whether they are byte for byte
    the data version the version's run recorded for that input, and a sentence saying so.

    ``store``: the ``AssetStore``. Raises :class:`ReferenceUnavailable` when the store holds no
    data for it. When the recorded version differs (the asset was materialized again since) or was
    never recorded, the rows are today's, and the sentence says that they may not be the ones the
    version learnt from: the store keeps only the latest version of these assets.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_assets.core.tracking import input_data_version_tag

    shown = key.to_user_string() + (f" partition {partition}" if partition else "")
    path = store.path(key, partition)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReferenceUnavailable(
            f"{shown} is not in the store ({path}): the training rows of "
            f"{trained.model_name} v{trained.version} cannot be read"
        ) from None
    content = hashlib.sha256(data).hexdigest()
    actual = partition_input_version(content) if partition else content
    recorded = trained.tag(input_data_version_tag(key))
    frame = pq.read_table(pa.BufferReader(data)).to_pandas()
    version = f"{trained.model_name} v{trained.version}"
    if recorded == actual:
        return frame, True, f"{shown} at data version {content[:12]}, the one {version} read"
    if recorded is None:
        why = (
            f"{version} recorded no data version of {shown} (run tag {input_data_version_tag(key)})"
        )
    else:
        why = (
            f"{version} was trained on data version {recorded[:12]}, which the store no longer "
            f"holds ({shown} was materialized again since)"
        )
    return frame, False, f"{shown} as stored now (data version {content[:12]}): {why}"


# --- the request log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedRequests:
    """The answered requests of one use case and model version on one day: per request, the
    values the model saw and its prediction."""

    use_case: str
    model_name: str
    model_version: str
    values: tuple[Mapping[str, Any], ...]
    predictions: tuple[float | None, ...]

    @property
    def rows(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class LoggedDay:
    """One use case's answered requests of a day, split by model version (sorted by version
    number), and the rows that could not be read back (counted, with the first reason)."""

    use_case: str
    batches: tuple[LoggedRequests, ...]
    unreadable: int = 0
    unreadable_reason: str = ""

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)


def _version_order(version: str) -> tuple[int, float, str]:
    # Versions are numbers in text: "10" after "9".
    try:
        return (0, float(version), version)
    except ValueError:
        return (1, 0.0, version)


def _parse(text: Any, column: str) -> Mapping[str, Any] | None:
    """A logged JSON object, None for a null column; ValueError naming the column otherwise."""
    if text is None:
        return None
    value = json.loads(text)
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"{column} is a JSON {type(value).__name__}, not an object")
    return value


def _answered_rows(log: Any, use_case: str) -> list[Mapping[str, Any]]:
    """The rows of ``use_case`` that were answered, as dicts; an Arrow table is filtered first:
    the day also holds every other use case's traffic (fraud's may be millions of rows), which
    must not become Python objects. Predictions scored in shadow during a rollout (``role``
    ``shadow``) are left out: they answered nobody, and the inputs they saw are already counted
    once, with the answer of their request."""
    from mlops_assets.core.rollout import SERVED_ROLE

    if not hasattr(log, "filter"):
        return [
            r
            for r in log
            if r.get("use_case") == use_case
            and r.get("status") is not None
            and r["status"] < 400
            and r.get("role") in (None, SERVED_ROLE)
        ]
    import pyarrow.compute as pc

    mask = pc.and_(pc.equal(log["use_case"], use_case), pc.less(log["status"], 400))
    if "role" in log.column_names:
        served = pc.or_kleene(pc.is_null(log["role"]), pc.equal(log["role"], SERVED_ROLE))
        mask = pc.and_(mask, served)
    return log.filter(pc.fill_null(mask, False)).to_pylist()


def logged_requests(
    log: pa.Table | Sequence[Mapping[str, Any]],
    use_case: str,
    current: Callable[
        [Mapping[str, Any] | None, Mapping[str, Any] | None], Mapping[str, Any]
    ] = merged_values,
) -> LoggedDay:
    """The answered requests (status < 400) of ``use_case`` in ``log`` (request-log rows:
    ``request_log.PREDICTIONS_LOG_COLUMNS``), per model version.

    A row whose ``request_json`` or ``features_json`` is not a JSON object, whose ``current``
    fails, or that names no model version, is not compared: it is counted in ``unreadable``, and
    the first one's reason is kept, never silently dropped.
    """
    rows = _answered_rows(log, use_case)
    by_version: dict[tuple[str, str], tuple[list[Mapping[str, Any]], list[float | None]]] = {}
    unreadable, reason = 0, ""
    for row in rows:
        try:
            if not row.get("model_version"):
                raise ValueError("the row names no model version")
            request = _parse(row.get("request_json"), "request_json")
            features = _parse(row.get("features_json"), "features_json")
            values = current(request, features)
            if not isinstance(values, Mapping):
                raise ValueError(f"the values seen are a {type(values).__name__}, not a mapping")
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
            unreadable += 1
            if not reason:
                reason = f"request {row.get('request_id')}: {exc}"
            continue
        key = (str(row.get("model_name") or ""), str(row["model_version"]))
        values_list, predictions = by_version.setdefault(key, ([], []))
        values_list.append(values)
        prediction = row.get("prediction")
        predictions.append(None if prediction is None else float(prediction))
    batches = tuple(
        LoggedRequests(use_case, name, version, tuple(values), tuple(predictions))
        for (name, version), (values, predictions) in sorted(
            by_version.items(), key=lambda item: (item[0][0], _version_order(item[0][1]))
        )
    )
    return LoggedDay(use_case, batches, unreadable, reason)


# --- frames ---------------------------------------------------------------------------------------


def category_text(value: Any) -> str | None:
    """A category as one text whatever its number type: a numeric code is written the same as an
    int or a float (3 and 3.0 are both "3"; 2.5 is "2.5"), so that a request's ``thal`` of 3
    meets training's 3.0. Text is kept as text, stripped (a zipcode "02139" keeps its zero); None
    for a missing value (None, NaN, empty text)."""
    # pandas' missing markers (pd.NA, NaT) without importing pandas for them.
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    return text or None


def comparable(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """The ``numeric`` columns of ``frame`` as float64 (NaN for missing and for text that is not a
    number) and the ``categorical`` ones as :func:`category_text` (None for missing), in that
    order; a column absent from ``frame`` is missing in every row."""
    import pandas as pd

    out: dict[str, Any] = {}
    for column in numeric:
        values = frame[column] if column in frame else pd.Series(None, index=frame.index)
        out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
    for column in categorical:
        values = frame[column] if column in frame else pd.Series(None, index=frame.index)
        out[column] = pd.Series(
            [category_text(v) for v in values], index=frame.index, dtype="object"
        )
    return pd.DataFrame(out, index=frame.index, columns=[*numeric, *categorical])


def current_frame(
    batch: LoggedRequests, numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The batch's requests as a frame of the compared columns plus :data:`PREDICTION`, and per
    column the number of requests whose log does not carry it at all (a value logged as null is
    missing, not absent). A column the log never carries is all missing and shows here."""
    import pandas as pd

    columns = [*numeric, *categorical]
    raw = pd.DataFrame(
        [{c: values.get(c) for c in columns} for values in batch.values],
        columns=columns,
        dtype="object",
    )
    absent = {c: sum(1 for values in batch.values if c not in values) for c in columns}
    frame = comparable(raw, numeric, categorical)
    frame[PREDICTION] = pd.Series(batch.predictions, dtype="float64")
    return frame, {c: n for c, n in absent.items() if n}


def reference_frame(reference: Reference, predictions: Any) -> pd.DataFrame:
    """The reference's compared columns plus the version's :data:`PREDICTION` on each row."""
    import numpy as np

    frame = comparable(reference.frame, reference.numeric, reference.categorical).reset_index(
        drop=True
    )
    scores = np.asarray(predictions, dtype="float64").reshape(-1)
    if len(scores) != len(frame):
        raise ValueError(
            f"the model scored {len(scores)} rows of a reference of {len(frame)}: "
            "a score must give one prediction per row"
        )
    frame[PREDICTION] = scores
    return frame


# --- judging one version --------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionDrift:
    """The drift of one model version's inputs on one day, and its verdict.

    ``summary`` is None when nothing could be compared (too few requests, the version or its
    training rows gone); ``reference`` and the frames are kept for the HTML report.
    """

    use_case: str
    model_name: str
    model_version: str
    current_rows: int
    verdict: Verdict
    summary: DriftSummary | None = None
    reference: Reference | None = None
    reference_data: pd.DataFrame | None = None
    current_data: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.use_case} v{self.model_version}"

    @property
    def numeric(self) -> tuple[str, ...]:
        return (*self.reference.numeric, PREDICTION) if self.reference else (PREDICTION,)

    @property
    def categorical(self) -> tuple[str, ...]:
        return self.reference.categorical if self.reference else ()


def insufficient(reason: str) -> Verdict:
    """The verdict of a day with nothing to judge: it passes, and never retrains."""
    from mlops_assets.core.monitoring.verdicts import INSUFFICIENT_DATA, Verdict

    return Verdict(INSUFFICIENT_DATA, reason, "psi", None, None)


def load_reference(
    endpoint: Endpoint, drift: InputDrift, tracking: Any, store: Any, model_name: str, version: str
) -> tuple[Reference, pd.DataFrame]:
    """Version ``version``'s training rows and its predictions on them, the version loaded from
    the registry by number (never by alias: the alias may have moved since it served) and
    prepared as the API prepares it. :class:`ReferenceUnavailable` when the version is gone, its
    endpoint refuses it, or its training rows are not in the store."""
    trained = trained_on(tracking, model_name, version)
    if trained is None:
        raise ReferenceUnavailable(f"{model_name} v{version} is no longer in the registry")
    model = tracking.load_model_version(model_name, version, flavor=endpoint.flavor)
    if endpoint.prepare is not None:
        try:
            model = endpoint.prepare(model, trained.model_info())
        except ValueError as exc:
            raise ReferenceUnavailable(
                f"the endpoint refuses {model_name} v{version}: {exc}"
            ) from exc
    reference = drift.training_rows(store, trained)
    return reference, reference_frame(reference, drift.score(model, reference.frame))


def judge_version(
    batch: LoggedRequests,
    load: Callable[[], tuple[Reference, pd.DataFrame]],
    *,
    thresholds: DriftThresholds,
    fail_on: str,
    sample_rows: int | None = None,
) -> VersionDrift:
    """The drift of ``batch`` against the reference ``load`` gives (called only when the batch
    has enough requests, so a quiet day costs no model load), judged by
    :func:`~mlops_assets.core.monitoring.verdicts.drift_verdict`."""
    from mlops_assets.core.monitoring.drift import assess_drift
    from mlops_assets.core.monitoring.verdicts import drift_verdict

    base = VersionDrift(
        batch.use_case,
        batch.model_name,
        batch.model_version,
        batch.rows,
        insufficient(""),
    )
    label = base.label
    if batch.rows < thresholds.min_rows:
        return replace(
            base,
            verdict=insufficient(
                f"{label}: {batch.rows:,} answered requests, fewer than the "
                f"{thresholds.min_rows:,} needed to judge drift"
            ),
        )
    try:
        reference, reference_data = load()
    except ReferenceUnavailable as exc:
        return replace(base, verdict=insufficient(f"{label}: no reference, {exc}"))
    current, absent = current_frame(batch, reference.numeric, reference.categorical)
    notes = [f"reference: {reference.note}"]
    if absent:
        shown = ", ".join(f"{c} ({n:,})" for c, n in sorted(absent.items()))
        notes.append(f"features the log does not carry, by requests lacking them: {shown}")
    summary = assess_drift(
        reference_data,
        current,
        numeric=[*reference.numeric, PREDICTION],
        categorical=list(reference.categorical),
        thresholds=thresholds,
        **({} if sample_rows is None else {"sample_rows": sample_rows}),
    )
    verdict = drift_verdict(summary, fail_on=fail_on, thresholds=thresholds)
    verdict = replace(verdict, reason=f"{label}: {verdict.reason}")
    return replace(
        base,
        verdict=verdict,
        summary=summary,
        reference=reference,
        reference_data=reference_data,
        current_data=current,
        notes=tuple(notes),
    )


def worst(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The most alarming verdict (failed, warn, ok, insufficient data); ties go to the last one
    (versions come in number order: the latest version's)."""
    chosen = None
    for verdict in verdicts:
        if chosen is None or _RANK[verdict.status] >= _RANK[chosen.status]:
            chosen = verdict
    return chosen


def worst_version(judged: Sequence[VersionDrift]) -> VersionDrift | None:
    """The version whose verdict is the most alarming (the latest one on a tie)."""
    chosen = None
    for version in judged:
        if chosen is None or _RANK[version.verdict.status] >= _RANK[chosen.verdict.status]:
            chosen = version
    return chosen


def report_version(judged: Sequence[VersionDrift]) -> VersionDrift | None:
    """The version a use case's HTML report shows: of those compared, the one that answered the
    most requests (the latest on a tie)."""
    compared = [v for v in judged if v.summary is not None and v.summary.table is not None]
    if not compared:
        return None
    return max(compared, key=lambda v: (v.current_rows, _version_order(v.model_version)))


# --- the table ------------------------------------------------------------------------------------


def drift_rows(judged: Sequence[VersionDrift]) -> pd.DataFrame:
    """The asset's table: one row per use case, model version and feature compared (the
    prediction included), with the version's verdict in ``status``; a version that could not be
    compared has one row, its feature null. Sorted by use case, version number, then PSI (worst
    first) as :func:`~mlops_assets.core.monitoring.drift.drift_table` orders features."""
    import pandas as pd

    records: list[dict[str, Any]] = []
    for version in judged:
        base = {
            "use_case": version.use_case,
            "model_name": version.model_name,
            "model_version": version.model_version,
            "status": version.verdict.status,
            "current_rows": version.current_rows,
            "reference_rows": version.summary.reference_rows if version.summary else 0,
            "reference_exact": bool(version.reference.exact) if version.reference else None,
        }
        table = version.summary.table if version.summary is not None else None
        if table is None or table.empty:
            records.append(base)
            continue
        for row in table.to_dict("records"):
            records.append(
                {
                    **base,
                    **{c: row.get(c) for c in TABLE_COLUMNS},
                }
            )
    frame = pd.DataFrame.from_records(records, columns=list(DRIFT_COLUMNS))
    types = {
        "use_case": "object",
        "model_name": "object",
        "model_version": "object",
        "feature": "object",
        "kind": "object",
        "psi": "float64",
        "test": "object",
        "statistic": "float64",
        "p_value": "float64",
        "drifted": "boolean",
        "severity": "object",
        "status": "object",
        "current_rows": "int64",
        "reference_rows": "int64",
        "reference_exact": "boolean",
    }
    return frame.astype(types)


def judge_use_case(
    day: LoggedDay,
    endpoint: Endpoint,
    *,
    tracking: Any,
    store: Any,
    thresholds: DriftThresholds,
    fail_on: str,
    sample_rows: int | None = None,
) -> list[VersionDrift]:
    """Every model version of one use case's day, judged against its own training rows (each
    version's reference is loaded once, and only when it answered enough requests)."""
    drift = endpoint.drift
    if drift is None:
        raise ValueError(f"the endpoint of {endpoint.use_case} declares no input drift")
    return [
        judge_version(
            batch,
            lambda batch=batch: load_reference(
                endpoint, drift, tracking, store, batch.model_name, batch.model_version
            ),
            thresholds=thresholds,
            fail_on=fail_on,
            sample_rows=sample_rows,
        )
        for batch in day.batches
    ]


# --- the day: one verdict, the triggers, the reports -----------------------------------------------


@dataclass(frozen=True)
class DayOutcome:
    """What a day's drift concludes: the check's verdict (the worst use case's status, every use
    case's reason), each use case's verdict, and one retraining trigger per failing use case."""

    verdict: Verdict
    by_use_case: dict[str, Verdict]
    triggers: tuple[Trigger, ...]


def day_outcome(
    judged: Mapping[str, Sequence[VersionDrift]],
    unreadable: Mapping[str, tuple[int, str]],
    *,
    day: str,
    jobs: Mapping[str, str],
    check: str,
    asset: str,
) -> DayOutcome:
    """The verdict of the day over every use case of ``judged`` (use case -> its versions).

    A use case's verdict is its worst version's (the latest on a tie); a use case without an
    answered request says so ("insufficient data"). A failed use case asks for its retraining job
    (``jobs``, unpartitioned) for the version it judged: one trigger per use case, whatever the
    number of its versions that failed. Rows the log could not read back are named in the reason.
    """
    by_use_case: dict[str, Verdict] = {}
    chosen: dict[str, VersionDrift] = {}
    for use_case in sorted(judged):
        count, why = unreadable.get(use_case, (0, ""))
        lost = f" ({count:,} logged requests unreadable, first: {why})" if count else ""
        version = worst_version(judged[use_case])
        if version is None:
            by_use_case[use_case] = insufficient(f"{use_case}: no answered request on {day}{lost}")
            continue
        chosen[use_case] = version
        verdict = version.verdict
        by_use_case[use_case] = replace(verdict, reason=verdict.reason + lost) if lost else verdict
    triggers = []
    for use_case, verdict in by_use_case.items():
        job = jobs.get(use_case)
        version = chosen.get(use_case)
        if job is None or version is None:
            continue
        trigger = verdict.trigger(
            check=check,
            asset=asset,
            model_name=version.model_name,
            model_version=version.model_version,
            day=day,
            job=job,
            partition=None,
        )
        if trigger is not None:
            triggers.append(trigger)
    overall = worst(list(by_use_case.values()))
    if overall is None:
        overall = insufficient(f"no use case served through the API declares input drift ({day})")
    else:
        reason = "; ".join(v.reason for v in by_use_case.values())
        overall = replace(overall, reason=reason)
    return DayOutcome(overall, by_use_case, tuple(triggers))


def write_reports(
    folder: Any,
    judged: Mapping[str, Sequence[VersionDrift]],
    *,
    day: str,
    tmp_dir: Any = None,
    thresholds: DriftThresholds | None = None,
    sample_rows: int | None = None,
) -> dict[str, Any]:
    """One Evidently HTML report per use case that could be compared, at
    ``folder/<use case>.html``; returns their paths by use case. The report shows the version that
    answered the most requests (the table has every version). Written to a temporary file and
    renamed (an upload on S3): a reader never sees half a report."""
    from mlops_assets.core import storage
    from mlops_assets.core.monitoring.drift import drift_report_html

    paths: dict[str, Any] = {}
    for use_case in sorted(judged):
        version = report_version(judged[use_case])
        if version is None or version.reference_data is None or version.current_data is None:
            continue
        html = drift_report_html(
            version.reference_data,
            version.current_data,
            numeric=list(version.numeric),
            categorical=list(version.categorical),
            title=f"{version.label}: API inputs of {day} against its training rows",
            **({} if thresholds is None else {"thresholds": thresholds}),
            **({} if sample_rows is None else {"sample_rows": sample_rows}),
        )
        path = folder / f"{use_case}.html"
        storage.atomic_write_bytes(path, html, tmp_dir=tmp_dir)
        paths[use_case] = path
    return paths
