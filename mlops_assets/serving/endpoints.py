"""What a use case serves online: the contract between a use case's ``serving.py`` and the app.

A use case that serves predictions exports ``ENDPOINT``, an :class:`Endpoint`: the registered model
it serves (by alias ``champion``), the pydantic model of a request, and ``predict``, which turns one
validated request into a :class:`Prediction` with the loaded model. The app does the rest: loading
and swapping champions, online features, the request log, error responses.

Only pydantic (and the standard library) is imported here: the app imports every endpoint at
start-up, and the heavy libraries are the models' business, imported when they load.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from mlops_assets.core.use_case import UseCase
    from mlops_assets.serving.drift import InputDrift

Flavor = Literal["sklearn", "xgboost", "pyfunc"]

# The alias the app serves; only the promotion gate moves it (DESIGN section 5).
SERVED_ALIAS = "champion"


@dataclass(frozen=True)
class ModelInfo:
    """The registry's view of one loaded model version: what ``prepare`` may read (a version tag
    such as the athletes' ``feature_version``) and what ``GET /models`` shows."""

    name: str
    version: str
    run_id: str | None
    version_tags: Mapping[str, str] = field(default_factory=dict)
    run_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """One answer.

    ``body``: the use case's response fields (JSON-able), e.g. ``{"fraud_probability": 0.12}``.
    ``value``: the headline number (a probability, a price, a lift), kept in the request log for
    monitoring; None where there is no single number (a forecast path).
    ``features``: the values the model saw beyond the request itself (online features, engineered
    features), logged with the request so that a prediction can be explained and replayed.
    """

    body: Mapping[str, Any]
    value: float | None
    features: Mapping[str, Any] | None = None


def logged_features(values: Mapping[str, float]) -> dict[str, float | None]:
    """Feature values as :attr:`Prediction.features` keeps them: a missing value (NaN, what the
    models are fed) as None, so that the log says "missing" rather than a number."""
    return {name: None if value != value else value for name, value in values.items()}


# --- request types shared by the use cases ------------------------------------------------------

# The years a request may name. Every model puts a moment into a pandas frame, and pandas represents
# 1677-09-22 to 2262-04-11 only: a request outside it crashed the prediction (a 500). The bound is
# checked on the year, before any conversion to UTC (year 1 with a +01:00 offset overflows
# Python's own datetime), and is narrower than pandas' so that no offset can push it out.
MIN_YEAR = 1900
MAX_YEAR = 2199
ERA = f"between {MIN_YEAR}-01-01 and {MAX_YEAR}-12-31"

# ISO 8601 / RFC 3339 date and time with its UTC offset. pydantic alone also takes a number of
# seconds (``0`` is 1970) or digits in a string: a payment time must be written as a time.
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})$"
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_NAIVE_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$")

# JSON numbers only, never true/false or a text of digits: pydantic's lax mode reads ``true`` as 1
# and ``"4"`` as 4, so ``{"sex": true}`` was answered 200. Not pydantic's strict mode: it refuses
# ``4.0`` for an integer, which JSON Schema (and every client that writes codes as floats) takes.


def _json_number(value: Any, kind: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PydanticCustomError(
            f"{kind}_type",
            "Input should be a valid {what}, not {shown}",
            {"what": "integer" if kind == "int" else "number", "shown": _shown(value)},
        )
    return value


Integer = Annotated[int, BeforeValidator(lambda v: _json_number(v, "int"))]
Number = Annotated[float, BeforeValidator(lambda v: _json_number(v, "float"))]

# The largest id Feast (and numpy's int64) can key on: a larger one failed the online read (a 500).
MAX_ENTITY_ID = 2**63 - 1


def _iso_datetime_text(value: Any) -> Any:
    # A datetime object only comes from Python callers (tests, batch code), never from JSON.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError(
            "must be an ISO 8601 date and time with its UTC offset, such as "
            f"'2024-05-01T13:00:00Z' (got {_shown(value)})"
        )
    return value


def _iso_date_or_datetime_text(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not (
        _ISO_DATE.match(value) or _ISO_DATETIME.match(value) or _ISO_NAIVE_DATETIME.match(value)
    ):
        raise ValueError(
            "must be an ISO 8601 date such as '2023-05-01' or a date and time such as "
            f"'2023-05-01T13:00:00Z' (got {_shown(value)})"
        )
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def in_era(value: date) -> date:
    """``value`` if its year is one the models can represent, else ValueError saying which."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be {ERA}; {value.isoformat()} is outside the dates served")
    return value


# A moment of the real world as a request gives it: an ISO 8601 text with its UTC offset, in the
# years served. The JSON schema stays ``{"type": "string", "format": "date-time"}``.
Moment = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_datetime_text),
    AfterValidator(in_era),
    Field(strict=False),
]
# A calendar day or a moment (with or without offset), in the years served.
DayOrMoment = Annotated[
    date | datetime,
    BeforeValidator(_iso_date_or_datetime_text),
    AfterValidator(in_era),
]


# --- errors -------------------------------------------------------------------------------------


class ErrorItem(BaseModel):
    """One thing wrong with a request: where, what, and its kind."""

    loc: list[str | int] = Field(
        description="Where: ['body', field, ...] for a request field, [] for the server."
    )
    msg: str = Field(description="What is wrong, in words.")
    type: str = Field(description="The kind of error (value_error, not_found, unavailable...).")


class ErrorResponse(BaseModel):
    """Every error answer: FastAPI's validation-error shape, with the request's id."""

    detail: list[ErrorItem]
    request_id: str | None = Field(
        default=None, description="The id of the request in the request log (predictions only)."
    )


def _error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# The error answers of ``POST /predict/<use_case>`` besides 422 (which FastAPI documents itself).
PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error_doc("The body is not readable as JSON text (bytes that are not UTF-8)."),
    404: _error_doc("An id the model or the online store does not know (named in loc)."),
    413: _error_doc("The body is larger than the server's limit (MLOPS_SERVING_MAX_BODY_BYTES)."),
    503: {
        **_error_doc(
            "The use case has no champion yet, or a store it needs (online features, the request "
            "log) does not answer; retry after the Retry-After header's seconds."
        ),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 1},
                "required": True,
            }
        },
    },
}


def error_detail(loc: list[str], message: str, kind: str) -> dict[str, list[dict[str, Any]]]:
    """An error answer in FastAPI's validation-error shape: ``{"detail": [{"loc", "msg", "type"}]}``."""
    return {"detail": [{"loc": loc, "msg": message, "type": kind}]}


class RequestError(Exception):
    """Input the request model cannot refuse by its types alone (a card the online store does not
    know, a value out of the model's domain): answered with ``status`` (a 4xx) and a message that
    names ``field``, in FastAPI's validation-error shape."""

    def __init__(
        self,
        field: str | None,
        message: str,
        *,
        status: int = 422,
        kind: str = "value_error",
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status
        self.kind = kind
        # For a 503: when to try again (sent as the Retry-After header).
        self.retry_after_s = retry_after_s

    def detail(self) -> list[dict[str, Any]]:
        loc = ["body", self.field] if self.field else ["body"]
        return error_detail(loc, self.message, self.kind)["detail"]


@dataclass(frozen=True)
class FeatureRow:
    """The online feature values of one entity row, with Feast's status of each.

    ``values[name]`` is None unless ``status[name] == "PRESENT"``; statuses are Feast's field
    statuses: ``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND`` (the key was never materialized) and
    ``OUTSIDE_MAX_AGE`` (the latest value is older than the view's TTL, measured back from the
    request's time), plus ``AFTER_AS_OF`` (the latest value was written after the request's time:
    using it would leak the future).
    """

    values: dict[str, Any]
    status: dict[str, str]

    def missing(self) -> list[str]:
        """Names of the features that have no usable value."""
        return [name for name, status in self.status.items() if status != "PRESENT"]


class OnlineStoreUnavailable(RequestError):
    """The online store does not answer (Redis down, a timeout): a 503 with Retry-After, never a
    500, since nothing is wrong with the request and a retry may succeed."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(None, message, status=503, kind="unavailable", retry_after_s=retry_after_s)


class OnlineFeatureReader(Protocol):
    """Reads the latest online feature values of one entity row (``"view:feature"`` references).

    ``as_of`` (epoch seconds): the moment the features must describe (a fraud request's
    ``event_ts``). A value written after it is ``AFTER_AS_OF`` (it would leak the future), one
    older than the view's TTL before it ``OUTSIDE_MAX_AGE``; None: the wall clock, no future check.
    """

    def read(
        self, features: Sequence[str], entity: Mapping[str, Any], *, as_of: float | None = None
    ) -> FeatureRow: ...


@dataclass(frozen=True)
class Services:
    """What ``predict`` may use besides the model: the online store (None when the app runs
    without one) and the settings of the serving profile."""

    online: OnlineFeatureReader | None
    options: Mapping[str, str] = field(default_factory=dict)


def request_config(example: Mapping[str, Any], **kwargs: Any) -> ConfigDict:
    """The pydantic config of a request body: unknown fields are refused (a misspelt field is an
    error, never a value silently ignored), and ``example`` is what the OpenAPI document shows.
    ``kwargs``: more of pydantic's settings (``allow_inf_nan=False``...)."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [dict(example)]}, **kwargs)


@dataclass(frozen=True)
class Endpoint:
    """One use case's online predictions.

    ``model_name`` is the registered model; with ``model_key`` it is a template and the request
    field ``model_key`` picks the model (``demand_forecaster_{key}``: one model per respondent),
    and ``model_names`` lists the registered names at start-up.
    ``prepare(model, info)`` runs once per loaded model version (compile a fast scorer, read a
    version tag) and its result is what ``predict`` gets as ``model``; it may raise to refuse a
    version (the app then keeps serving the previous one).
    ``blocking``: ``predict`` takes long enough (a forecast refits its model) that it must run in a
    worker thread instead of the event loop.
    ``drift``: how ``serving/input_drift`` compares the inputs the API logs with the served
    version's training data (:class:`~mlops_assets.serving.drift.InputDrift`); None: not watched
    there (a use case with monitoring of its own).
    ``entity_key``: the request field that names the entity a canary rollout routes by (fraud's
    ``card_id``): every request of a card goes to the same version, so a card's answers do not
    flip between two models. None: the request itself is the entity (the hash of its canonical
    JSON), so the same request always goes to the same version (see
    :func:`mlops_assets.serving.rollout_runtime.entity_of`).
    """

    use_case: str
    model_name: str
    request: type[BaseModel]
    predict: Callable[[Any, Any, Services], Prediction]
    flavor: Flavor = "sklearn"
    prepare: Callable[[Any, ModelInfo], Any] | None = None
    model_key: str | None = None
    model_names: Callable[[Any], list[str]] | None = None
    needs_online_features: bool = False
    blocking: bool = False
    summary: str = ""
    response_example: Mapping[str, Any] = field(default_factory=dict)
    drift: InputDrift | None = None
    entity_key: str | None = None

    def __post_init__(self) -> None:
        for role, key in (("entity_key", self.entity_key), ("model_key", self.model_key)):
            if key is not None and key not in self.request.model_fields:
                raise ValueError(
                    f"the {self.use_case} endpoint's {role} {key!r} is not a field of "
                    f"{self.request.__name__}"
                )

    @classmethod
    def of(cls, case: UseCase, **kwargs: Any) -> Endpoint:
        """The endpoint of ``case``: its name, and the model it registers (``model_name``)."""
        return cls(use_case=case.name, model_name=case.model_name, **kwargs)

    def name_for(self, request: Any) -> str:
        """The registered model that answers ``request``."""
        if self.model_key is None:
            return self.model_name
        return self.model_name.format(key=getattr(request, self.model_key))
