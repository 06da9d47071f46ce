"""The prediction API: FastAPI over the champions of every use case.

    GET  /health               liveness: the process answers
    GET  /ready                readiness: champions loaded, online store reachable, log writable
    GET  /models               per use case: model, version, alias, run, training data versions,
                               input schema, and the rollout of its candidate
    POST /predict/{use_case}   one prediction with the use case's champion (or, in a canary
                               rollout, its candidate: the answer names the version and alias)
    GET  /docs, /redoc         OpenAPI docs, with each use case's request schema (Swagger UI and
                               ReDoc served by the API itself from the fastapi-offline package:
                               no CDN, so they work where browsers have no internet)

Every prediction request, answered or refused, is appended to the durable request log
(:mod:`mlops_assets.serving.request_log`) before its response is sent, with the model version,
the features the model saw and the latency; the log lands in the asset store as the
``serving/predictions_log`` source asset.

Errors are always JSON in FastAPI's validation shape, ``{"detail": [{"loc", "msg", "type"}]}``
(:class:`~mlops_assets.serving.endpoints.ErrorResponse`, declared in the OpenAPI document): 400 for
a body that is not UTF-8 text, 422 for a body that does not match the request model, 404 for an
unknown use case or an id the online store never saw, 413 for an oversized body, 503 with
``Retry-After`` while a use case has no champion or a store it needs does not answer. User input
never causes a 500.

A model whose rollout is active (``rollout.*`` tags of the registered model, a ``candidate``
alias; :mod:`mlops_assets.core.rollout`) is served in shadow or canary
(:mod:`mlops_assets.serving.rollout_runtime`): the other version's prediction is scored after the
answer is sent and logged with role ``shadow``. A candidate that fails never fails a request.
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops_assets.core.profiles import Settings, load_settings
from mlops_assets.core.reporting import json_safe
from mlops_assets.serving.answers import (
    jsonable_body,
    log_request,
    model_fields,
    request_id_of,
    respond,
    started_at,
)
from mlops_assets.serving.body_limit import BodyLimit, BodyReplay
from mlops_assets.serving.champions import CANDIDATE_ALIAS, Champions, LoadedModel
from mlops_assets.serving.config import ServingConfig
from mlops_assets.serving.endpoints import (
    PREDICT_ERRORS,
    SERVED_ALIAS,
    Endpoint,
    Prediction,
    RequestError,
    Services,
    error_detail,
)
from mlops_assets.serving.rollout_runtime import Plan, Rollouts
from mlops_assets.use_cases import USE_CASES

if TYPE_CHECKING:
    from upath import UPath

    from mlops_assets.serving.request_log import RequestLog

log = logging.getLogger(__name__)

PREDICT_PREFIX = "/predict/"


def discover_endpoints(use_cases: tuple[str, ...] = ()) -> dict[str, Endpoint]:
    """The endpoint of every use case whose package has a ``serving`` module (of ``use_cases``
    only, if given; naming a use case that serves nothing is an error)."""
    endpoints: dict[str, Endpoint] = {}
    for name in use_cases or USE_CASES:
        if name not in USE_CASES:
            raise ValueError(f"unknown use case {name!r}: use cases are {list(USE_CASES)}")
        try:
            module = importlib.import_module(f"mlops_assets.{name}.serving")
        except ModuleNotFoundError as exc:
            if exc.name != f"mlops_assets.{name}.serving":
                raise
            if use_cases:
                raise ValueError(f"use case {name!r} declares no online endpoint") from None
            continue
        endpoints[name] = module.ENDPOINT
    return endpoints


def create_app(
    settings: Settings | None = None,
    config: ServingConfig | None = None,
    *,
    endpoints: Mapping[str, Endpoint] | None = None,
    tracking: Any = None,
    online: Any = None,
) -> FastAPI:
    """The app for ``settings`` (the active profile by default).

    ``tracking`` (an ``MlflowTracking``) and ``online`` (an ``OnlineFeatureReader``) default to
    the profile's MLflow registry and Feast online store; tests may pass their own.
    """
    settings = settings or load_settings()
    config = config or ServingConfig.from_env(settings.home)
    served = dict(endpoints) if endpoints is not None else discover_endpoints(config.use_cases)

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI and ReDoc from files of the
    # installed fastapi-offline package (under /static-offline-docs), not from a CDN: with the
    # CDN, a deployment whose browsers have no internet showed blank pages.
    app = FastAPIOffline(
        title="mlops-assets prediction API",
        description=__doc__.split("\n\n", 1)[0],
        version="1",
        lifespan=Startup(settings, config, served, tracking=tracking, online=online),
    )
    # Inside the body limit (middleware added later wraps the earlier): it sees bounded bodies.
    app.add_middleware(PredictFastPath, served=served)
    app.add_middleware(
        BodyLimit, limit=config.max_body_bytes, on_refused=functools.partial(log_refusal, app)
    )
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(StarletteHTTPException, http_error)

    _add_routes(app, served)
    return app


def _add_routes(app: FastAPI, served: Mapping[str, Endpoint]) -> None:
    """The operations routes, one prediction route per served use case, and the answer to the
    use cases this server does not predict for."""
    app.add_api_route(
        "/health", health, tags=["operations"], summary="Liveness: the process answers"
    )
    app.add_api_route(
        "/ready",
        ready,
        tags=["operations"],
        summary="Readiness: champions, online store, log",
        responses={
            503: {"description": "Not ready: `problems` names each missing champion or store."}
        },
    )
    app.add_api_route(
        "/models", models, tags=["operations"], summary="The served models and their lineage"
    )
    # Each use case's route before the catch-all below, which answers the names that have none.
    for use_case, endpoint in served.items():
        app.add_api_route(
            f"{PREDICT_PREFIX}{use_case}",
            _predict_route(endpoint),
            methods=["POST"],
            tags=["predictions"],
            summary=endpoint.summary or f"Predict with the {use_case} champion",
            name=f"predict_{use_case}",
            responses={**PREDICT_ERRORS, **(_example_response(endpoint) or {})},
        )
    app.add_api_route(
        PREDICT_PREFIX + "{use_case}",
        unknown_use_case,
        methods=["POST"],
        tags=["predictions"],
        include_in_schema=False,
    )


# --- what the routes answer with ------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    """What the routes answer with: loaded when the app starts (:class:`Startup`), released when
    it stops, kept as ``app.state.runtime``."""

    served: Mapping[str, Endpoint]
    champions: Champions
    request_log: RequestLog
    services: Services
    # Retry-After of a 503 for a missing champion: the registry is polled every poll_s, so a
    # newly promoted champion serves no sooner.
    no_champion_retry_after_s: int
    rollouts: Rollouts

    async def respond(
        self, request_id: str, use_case: str, started: float, status: int, payload: dict, **kw: Any
    ) -> JSONResponse:
        """Log, then answer (:func:`mlops_assets.serving.answers.respond`)."""
        return await respond(self.request_log, request_id, use_case, started, status, payload, **kw)

    def fixed_champion(self, use_case: str) -> LoadedModel | None:
        """The champion of ``use_case`` when it serves one model whatever the request says (None
        for a keyed endpoint, whose model depends on the request, or an unknown use case)."""
        endpoint = self.served.get(use_case)
        if endpoint is None or endpoint.model_key:
            return None
        return self.champions.get(endpoint.model_name)


def runtime_of(app: FastAPI) -> Runtime:
    """The runtime ``app`` started with (routes are only called between start and stop)."""
    return app.state.runtime


class Startup:
    """The app's lifespan: loads the champions, the online store and the request log when the app
    starts, and stops polling and closes the log when it stops.

    The registry client and the online reader are built on the first start, from the profile
    unless given, and kept for any later start of the same app.
    """

    def __init__(
        self,
        settings: Settings,
        config: ServingConfig,
        served: Mapping[str, Endpoint],
        *,
        tracking: Any = None,
        online: Any = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.served = served
        self.tracking = tracking
        self.online = online

    @asynccontextmanager
    async def __call__(self, app: FastAPI) -> AsyncIterator[None]:
        runtime = await self.start()
        app.state.runtime = runtime
        # Everything loaded so far (MLflow, Feast, the models) lives as long as the process: move
        # it out of the garbage collector's generations, so that a full collection does not scan
        # millions of long-lived objects in the middle of a request (a p99 spike of tens of ms).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            runtime.champions.stop()
            # Shadow scorings are logged: stopped before the log closes.
            await runtime.rollouts.stop()
            await run_in_threadpool(runtime.request_log.close)

    async def start(self) -> Runtime:
        """Load every champion, open the online store and start the request log, then start
        polling the registry for new champions."""
        from mlops_assets.serving.request_log import RequestLog

        # OpenMP (XGBoost's runtime) busy-waits between calls by default: its spinning threads
        # take the cores the event loop needs. It reads this once, when the model's library
        # loads, so it must be set before the first champion does.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        config = self.config
        if self.tracking is None:
            self.tracking = _profile_tracking(self.settings)
        if self.online is None and any(e.needs_online_features for e in self.served.values()):
            self.online = await _profile_online_reader(self.settings)
        champions = Champions(self.tracking, self.served, poll_s=config.poll_s)
        # Every champion and candidate before the first request (each change is logged).
        await run_in_threadpool(champions.refresh)
        request_log = RequestLog(
            Path(config.log_dir),
            _data_root(self.settings),
            segment_max_age_s=config.segment_max_age_s,
            ship_interval_s=config.ship_interval_s,
        )
        request_log.start()
        runtime = Runtime(
            served=self.served,
            champions=champions,
            request_log=request_log,
            services=Services(
                online=self.online, options={"unknown_entities": config.unknown_entities}
            ),
            no_champion_retry_after_s=max(1, math.ceil(config.poll_s)),
            rollouts=Rollouts(
                champions,
                request_log,
                max_pending=config.shadow_max_pending,
                cpu_share=config.shadow_cpu_share,
            ),
        )
        runtime.rollouts.start()
        champions.start_polling()
        return runtime


def _profile_tracking(settings: Settings) -> Any:
    from mlops_assets.core.tracking import MlflowTracking, skip_feast_request_header_provider

    skip_feast_request_header_provider()
    return MlflowTracking.from_settings(settings)


async def _profile_online_reader(settings: Settings) -> Any:
    from mlops_assets.core.feature_store import FeastFeatureStore
    from mlops_assets.serving.online import FeastOnlineReader

    online = FeastOnlineReader(FeastFeatureStore.from_settings(settings))
    await run_in_threadpool(online.warm_up)
    return online


def _data_root(settings: Settings) -> UPath:
    """The asset store's root, where the request log ships its batches
    (``serving/predictions_log``)."""
    from mlops_assets.core.asset_store import AssetStore

    return AssetStore.from_settings(settings).base


# --- operations -----------------------------------------------------------------------------------


async def health() -> dict[str, str]:
    return {"status": "ok"}


async def ready(request: Request) -> JSONResponse:
    body = await readiness(runtime_of(request.app))
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


async def readiness(runtime: Runtime) -> dict[str, Any]:
    """Whether every served model has a champion, the online store answers (where a use case
    needs it) and the request log ships; ``problems`` names what is missing."""
    problems = runtime.champions.missing()
    if any(e.needs_online_features for e in runtime.served.values()):
        online_reader = runtime.services.online
        if online_reader is None:
            problems["online_store"] = "not configured"
        else:
            why = await run_in_threadpool(getattr(online_reader, "ping", lambda: None))
            if why:
                problems["online_store"] = why
    return {
        "ready": not problems,
        "problems": problems,
        "request_log": {
            "backlog_segments": runtime.request_log.backlog(),
            "last_ship_error": runtime.request_log.last_ship_error,
        },
        # Informational: a candidate switched off leaves the champion serving, so the API stays
        # ready; the detail says which candidate and why.
        "rollout": runtime.rollouts.readiness(),
    }


async def models(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request.app)
    entries = runtime.champions.describe()
    for entry in entries:
        entry["rollout"]["counts"] = runtime.rollouts.counts(entry["model_name"])
    return {"alias": SERVED_ALIAS, "models": entries}


# --- predictions ----------------------------------------------------------------------------------


def _predict_route(endpoint: Endpoint) -> Any:
    """The handler of ``POST /predict/<use_case>``, with the endpoint's request model as body."""

    async def route(request: Request, body: Any) -> JSONResponse:
        return await predict(runtime_of(request.app), endpoint, request, body)

    # Set here, not in the signature: with postponed annotations FastAPI would have to resolve
    # the string "endpoint.request" in this module's globals.
    route.__annotations__ = {"request": Request, "body": endpoint.request, "return": JSONResponse}
    route.__name__ = f"predict_{endpoint.use_case}"
    return route


async def predict(
    runtime: Runtime, endpoint: Endpoint, request: Request, body: Any
) -> JSONResponse:
    """Answer one valid request of ``endpoint``: its champion's prediction (or its candidate's, in
    a canary), or why there is none."""
    use_case = endpoint.use_case
    request_id = request_id_of(request)
    request_body = body.model_dump(mode="json")
    answer = functools.partial(
        runtime.respond, request_id, use_case, started_at(request), request_body=request_body
    )
    loaded = champion_for(runtime, endpoint, body)
    if isinstance(loaded, Refusal):
        return await answer(
            loaded.status, loaded.payload, retry_after_s=loaded.retry_after_s, error=loaded.message
        )
    plan = runtime.rollouts.plan(endpoint, loaded, request_id, request_body, runtime.services)
    services = runtime.services if plan is None else plan.services
    if plan is not None and plan.canary:
        response = await _canary_answer(runtime, plan, body, answer)
        if response is not None:
            return response
        # The candidate raised: the champion answers, as without a rollout.
        plan = None
    try:
        prediction = await _predict(endpoint, loaded, body, services)
    except RequestError as exc:
        return await answer(
            exc.status,
            {"detail": exc.detail(), **model_fields(loaded)},
            retry_after_s=exc.retry_after_s,
            loaded=loaded,
            error=exc.message,
        )
    except Exception as exc:  # a bug or a broken dependency, never user input
        log.exception("%s prediction failed", use_case)
        message = f"the {use_case} prediction failed: {type(exc).__name__}"
        return await answer(
            500,
            error_detail([], message, "internal_error"),
            loaded=loaded,
            error=f"{type(exc).__name__}: {exc}",
        )
    payload = {"use_case": use_case, **model_fields(loaded), **prediction.body}
    response = await answer(200, payload, loaded=loaded, prediction=prediction)
    if plan is not None and response.status_code == 200:
        # After the answer is sent: the candidate's scoring never delays it.
        job = plan.shadow_job(body, answered_by_candidate=False)
        response.background = BackgroundTask(runtime.rollouts.score_in_shadow, job)
    return response


async def _canary_answer(
    runtime: Runtime, plan: Plan, body: Any, answer: Any
) -> JSONResponse | None:
    """The candidate's answer to a canary request (the champion scores it in shadow after), or
    None when the candidate raised: the champion then answers (and a candidate that broke, not
    one that refused the request, is switched off)."""
    candidate = plan.candidate.loaded
    started = time.perf_counter()
    try:
        prediction = await _predict(plan.endpoint, candidate, body, plan.services)
    except Exception as exc:  # never a failed request: the champion is there
        runtime.rollouts.canary_failed(plan, exc, (time.perf_counter() - started) * 1000.0)
        return None
    runtime.rollouts.canary_answered(plan)
    payload = {
        "use_case": plan.endpoint.use_case,
        **model_fields(candidate, CANDIDATE_ALIAS),
        **prediction.body,
    }
    response = await answer(
        200, payload, loaded=candidate, prediction=prediction, alias=CANDIDATE_ALIAS
    )
    if response.status_code == 200:
        job = plan.shadow_job(body, answered_by_candidate=True)
        response.background = BackgroundTask(runtime.rollouts.score_in_shadow, job)
    return response


async def _predict(
    endpoint: Endpoint, loaded: LoadedModel, body: Any, services: Services
) -> Prediction:
    if endpoint.blocking:
        # Off the event loop: a model that computes for milliseconds would stall every request.
        return await run_in_threadpool(endpoint.predict, loaded.model, body, services)
    return endpoint.predict(loaded.model, body, services)


class PredictFastPath:
    """Pure ASGI middleware: a ``POST /predict/<use_case>`` whose JSON body is a valid request
    is answered by :func:`predict` directly, without FastAPI's routing, dependency solving and
    exception middleware around it (~0.4 ms of CPU per request, a third of the API's own cost).

    Only a request FastAPI would answer the same way takes this path: a ``Content-Type`` of
    exactly ``application/json``, a body that ``json.loads`` reads (FastAPI's parser) and that
    the endpoint's request model accepts (FastAPI's validation: ``validate_python`` with
    ``from_attributes``); then FastAPI would call the same :func:`predict` with the same model.
    Anything else (an invalid body, another content type, another route or method) goes through
    FastAPI unchanged, so every error answer and its message stay FastAPI's and the app's.
    """

    def __init__(self, app: Any, served: Mapping[str, Endpoint]) -> None:
        self.app = app
        self.routes = {f"{PREDICT_PREFIX}{name}": endpoint for name, endpoint in served.items()}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        endpoint = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.routes.get(scope["path"])
        if endpoint is None or _content_type(scope) != b"application/json":
            await self.app(scope, receive, send)
            return
        # The body limit, outside, hands the body whole, in one message.
        message = await receive()
        if message["type"] != "http.request":
            return  # the client left before its body ended: nobody to answer
        replay = BodyReplay(message.get("body", b""), receive)
        try:
            body = endpoint.request.model_validate(json.loads(replay.body), from_attributes=True)
        except Exception:  # FastAPI reads it again and answers with its own error
            await self.app(scope, replay, send)
            return
        replay.pending = False  # the body was read here: Request.body() is never awaited below
        request = Request(scope, replay)
        response = await predict(runtime_of(scope["app"]), endpoint, request, body)
        await response(scope, replay, send)


def _content_type(scope: dict) -> bytes | None:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value
    return None


@dataclass(frozen=True)
class Refusal:
    """Why a request gets no prediction, as its answer: status, JSON body, log message."""

    status: int
    payload: dict
    message: str
    retry_after_s: int | None = None


def champion_for(runtime: Runtime, endpoint: Endpoint, body: Any) -> LoadedModel | Refusal:
    """The champion that answers ``body``, or a refusal: 404 when a keyed endpoint has no model
    registered for the request's key, 503 while the model has no champion loaded."""
    champions = runtime.champions
    name = endpoint.name_for(body)
    loaded = champions.get(name)
    if loaded is not None:
        return loaded
    use_case = endpoint.use_case
    if endpoint.model_key is not None and name not in champions.names(use_case):
        field = endpoint.model_key
        message = (
            f"no model is registered for {field} {getattr(body, field)!r} (looked for {name!r})"
        )
        return Refusal(404, error_detail(["body", field], message, "not_found"), message)
    why = champions.error(name) or "not loaded yet"
    message = f"{name} has no champion to serve ({why}); materialize {use_case}'s champion"
    return Refusal(
        503,
        error_detail([], message, "no_champion"),
        message,
        # The registry is polled every poll_s: a new champion serves no sooner.
        retry_after_s=runtime.no_champion_retry_after_s,
    )


async def unknown_use_case(use_case: str, request: Request) -> JSONResponse:
    started = started_at(request)
    runtime = runtime_of(request.app)
    known = ", ".join(runtime.served) or "none"
    message = f"unknown use case {use_case!r}: this server predicts for {known}"
    return await runtime.respond(
        request_id_of(request),
        use_case,
        started,
        404,
        error_detail(["path", "use_case"], message, "not_found"),
        request_body=None,
        error=message,
    )


def _example_response(endpoint: Endpoint) -> dict[int | str, dict[str, Any]] | None:
    """The endpoint's example answer, for the OpenAPI docs."""
    if not endpoint.response_example:
        return None
    example = {
        "use_case": endpoint.use_case,
        # A keyed endpoint's name is a template: show it filled with the example's key.
        "model_name": endpoint.model_name.format(
            key=str(endpoint.response_example.get(endpoint.model_key or "", "")).lower()
        ),
        "model_version": "1",
        **endpoint.response_example,
    }
    content = {"application/json": {"example": example}}
    return {200: {"description": "The prediction", "content": content}}


# --- errors ---------------------------------------------------------------------------------------


async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body that does not match the request model: 422, logged for a prediction request."""
    started = started_at(request)
    # JSON has no NaN or Infinity, but Python's reader takes them: echo them as text.
    detail = json_safe(jsonable_encoder(exc.errors(), exclude={"url"}))
    path = request.url.path
    if not path.startswith(PREDICT_PREFIX):
        return JSONResponse({"detail": detail}, status_code=422)
    use_case = path[len(PREDICT_PREFIX) :]
    runtime = runtime_of(request.app)
    loaded = runtime.fixed_champion(use_case)
    message = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in detail
    )
    return await runtime.respond(
        request_id_of(request),
        use_case,
        started,
        422,
        {"detail": detail, **model_fields(loaded)},
        request_body=jsonable_body(exc.body),
        loaded=loaded,
        error=message,
    )


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Errors raised by FastAPI itself (400 for an unreadable body, 405 for a wrong method,
    404 for an unknown path) in the same shape as every other error."""
    started = started_at(request)
    message = str(exc.detail)
    if exc.status_code == 400 and message == "There was an error parsing the body":
        # json.loads fails this way only on bytes that are not text (UTF-8, -16 or -32).
        message = "the request body is not JSON text: it must be UTF-8 encoded JSON"
    kind = {400: "unreadable_body", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    loc = ["body"] if exc.status_code == 400 else []
    payload = error_detail(loc, message, kind)
    path = request.url.path
    if exc.status_code == 400 and path.startswith(PREDICT_PREFIX):
        return await runtime_of(request.app).respond(
            request_id_of(request),
            path[len(PREDICT_PREFIX) :],
            started,
            400,
            payload,
            request_body=None,
            error=message,
        )
    return JSONResponse(payload, status_code=exc.status_code, headers=exc.headers)


async def log_refusal(
    app: FastAPI, scope: dict, status: int, payload: dict, message: str, started: float
) -> None:
    """Log a prediction request the body limit refused (the limit answers it itself)."""
    path = scope.get("path", "")
    if not path.startswith(PREDICT_PREFIX):
        return
    use_case = path[len(PREDICT_PREFIX) :] or "?"
    try:
        await log_request(
            runtime_of(app).request_log,
            uuid.uuid4().hex,
            use_case,
            started,
            status,
            request_body=None,
            response_body=payload,
            error=message,
        )
    except Exception as exc:
        log.error("request log write failed: %s", exc)


def serve(settings: Settings | None = None, config: ServingConfig | None = None) -> int:
    """Run the API with uvicorn in the foreground (``mlops serve``)."""
    import uvicorn

    settings = settings or load_settings()
    config = config or ServingConfig.from_env(settings.home)
    _log_to_stderr()
    app = create_app(settings, config)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        # One line per request costs more than the request itself; the request log has them all.
        access_log=False,
        # Longer than a load balancer's idle timeout (60 s on AWS ALB), so that the balancer, not
        # the server, closes idle connections: a server-side close races the next request.
        timeout_keep_alive=75,
    )
    return 0


def _log_to_stderr() -> None:
    """The app's own lines (a champion loaded or kept, a candidate switched off and why) on
    stderr at INFO, in uvicorn's format (``ERROR:    mlops_assets.serving.champions: ...``):
    without a handler, Python printed the warnings and errors bare, with no level, and dropped
    the rest."""
    from uvicorn.logging import DefaultFormatter

    logger = logging.getLogger("mlops_assets")
    if logger.handlers:  # configured by whoever runs us
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        DefaultFormatter("%(levelprefix)s %(name)s: %(message)s", use_colors=False)
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
