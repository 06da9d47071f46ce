"""What a use case serves online: the contract between a use case's ``serving.py`` and the app.

A use case that serves predictions exports ``ENDPOINT``, an :class:`Endpoint`: the registered model
it serves (by alias ``champion``), the pydantic model of a request, and ``predict``, which turns one
validated request into a :class:`Prediction` with the loaded model. The app does the rest: loading
and swapping champions, online features, the request log, error responses.

Only pydantic (and the standard library) is imported here: the app imports every endpoint at
start-up, and the heavy libraries are the models' business, imported when they load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from pydantic import BaseModel

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


def error_detail(loc: list[str], message: str, kind: str) -> dict[str, list[dict[str, Any]]]:
    """An error answer in FastAPI's validation-error shape: ``{"detail": [{"loc", "msg", "type"}]}``."""
    return {"detail": [{"loc": loc, "msg": message, "type": kind}]}


class RequestError(Exception):
    """Input the request model cannot refuse by its types alone (a card the online store does not
    know, a value out of the model's domain): answered with ``status`` (a 4xx) and a message that
    names ``field``, in FastAPI's validation-error shape."""

    def __init__(
        self, field: str | None, message: str, *, status: int = 422, kind: str = "value_error"
    ) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status
        self.kind = kind

    def detail(self) -> list[dict[str, Any]]:
        loc = ["body", self.field] if self.field else ["body"]
        return error_detail(loc, self.message, self.kind)["detail"]


@dataclass(frozen=True)
class FeatureRow:
    """The online feature values of one entity row, with Feast's status of each.

    ``values[name]`` is None unless ``status[name] == "PRESENT"``; statuses are Feast's field
    statuses: ``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND`` (the key was never materialized) and
    ``OUTSIDE_MAX_AGE`` (the latest value is older than the view's TTL).
    """

    values: dict[str, Any]
    status: dict[str, str]

    def missing(self) -> list[str]:
        """Names of the features that have no usable value."""
        return [name for name, status in self.status.items() if status != "PRESENT"]


class OnlineFeatureReader(Protocol):
    """Reads the latest online feature values of one entity row (``"view:feature"`` references)."""

    def read(self, features: Sequence[str], entity: Mapping[str, Any]) -> FeatureRow: ...


@dataclass(frozen=True)
class Services:
    """What ``predict`` may use besides the model: the online store (None when the app runs
    without one) and the settings of the serving profile."""

    online: OnlineFeatureReader | None
    options: Mapping[str, str] = field(default_factory=dict)


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

    def name_for(self, request: Any) -> str:
        """The registered model that answers ``request``."""
        if self.model_key is None:
            return self.model_name
        return self.model_name.format(key=getattr(request, self.model_key))
