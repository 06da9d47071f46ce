"""The prediction API: FastAPI over the champions of every use case.

    GET  /health               liveness: the process answers
    GET  /ready                readiness: champions loaded, online store reachable, log writable
    GET  /models               per use case: model, version, alias, run, training data versions,
                               input schema
    POST /predict/{use_case}   one prediction with the use case's champion
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
"""

from __future__ import annotations

import gc
import importlib
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops_assets.core.profiles import Settings, load_settings
from mlops_assets.serving.champions import Champions, LoadedModel
from mlops_assets.serving.config import ServingConfig
from mlops_assets.serving.endpoints import (
    PREDICT_ERRORS,
    Endpoint,
    RequestError,
    Services,
    error_detail,
)
from mlops_assets.use_cases import USE_CASES

log = logging.getLogger(__name__)

PREDICT_PREFIX = "/predict/"
_REQUEST_ID_HEADER = "x-request-id"
# Retry-After (seconds) of a 503 that names no better time (the request log cannot be written).
_LOG_RETRY_AFTER_S = 1


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


class _BodyLimit:
    """Pure ASGI middleware: refuse bodies over ``limit`` bytes with a 413 before reading them
    (by Content-Length), or as soon as a chunked body passes the limit.

    The body is read here, up to the limit, and handed to the app whole. Raising from inside the
    app's ``receive`` instead does not work: FastAPI catches any error while it reads a body and
    answers 400 "There was an error parsing the body", so a large chunked body got a 400.
    """

    def __init__(self, app: Any, limit: int, on_refused: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.limit = limit
        self.on_refused = on_refused

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})["started"] = started
        length = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        if length is not None and length > self.limit:
            await self._refuse(scope, send, length, started)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body ended: nobody to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                await self._refuse(scope, send, received, started)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, send: Callable, size: int, started: float) -> None:
        message = f"the request body ({size} bytes or more) is larger than the limit of {self.limit} bytes"
        payload = error_detail(["body"], message, "too_large")
        response = JSONResponse(payload, status_code=413)
        await self.on_refused(scope, 413, payload, message, started)
        await response(scope, _no_receive, send)


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from mlops_assets.core.storage import make_upath
        from mlops_assets.serving.request_log import RequestLog

        nonlocal tracking, online
        # OpenMP (XGBoost's runtime) busy-waits between calls by default: its spinning threads
        # take the cores the event loop needs. It reads this once, when the model's library
        # loads, so it must be set before the first champion does.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if tracking is None:
            from mlops_assets.core.tracking import (
                MlflowTracking,
                skip_feast_request_header_provider,
            )

            skip_feast_request_header_provider()
            tracking = MlflowTracking.from_settings(settings)
        if online is None and any(e.needs_online_features for e in served.values()):
            from mlops_assets.core.feature_store import FeastFeatureStore
            from mlops_assets.serving.online import FeastOnlineReader

            online = FeastOnlineReader(FeastFeatureStore.from_settings(settings))
            await run_in_threadpool(online.warm_up)
        champions = Champions(tracking, served, poll_s=config.poll_s)
        for change in await run_in_threadpool(champions.refresh):
            log.info("loaded %s", change)
        request_log = RequestLog(
            Path(config.log_dir),
            make_upath(
                settings.data_root,
                settings.s3_endpoint_url if settings.data_on_s3 else "",
                settings.aws_region,
            ),
            segment_max_age_s=config.segment_max_age_s,
            ship_interval_s=config.ship_interval_s,
        )
        request_log.start()
        app.state.champions = champions
        app.state.request_log = request_log
        app.state.services = Services(
            online=online, options={"unknown_entities": config.unknown_entities}
        )
        champions.start_polling()
        # Everything loaded so far (MLflow, Feast, the models) lives as long as the process: move
        # it out of the garbage collector's generations, so that a full collection does not scan
        # millions of long-lived objects in the middle of a request (a p99 spike of tens of ms).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            champions.stop()
            await run_in_threadpool(request_log.close)

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI and ReDoc from files of the
    # installed fastapi-offline package (under /static-offline-docs), not from a CDN: with the
    # CDN, a deployment whose browsers have no internet showed blank pages.
    app = FastAPIOffline(
        title="mlops-assets prediction API",
        description=__doc__.split("\n\n", 1)[0],
        version="1",
        lifespan=lifespan,
    )

    # The registry is polled every poll_s: a newly promoted champion serves no sooner.
    app.state.no_champion_retry_after_s = max(1, math.ceil(config.poll_s))

    async def write_log(
        *,
        request_id: str,
        use_case: str,
        started: float,
        status: int,
        request_body: Any,
        response_body: Any,
        loaded: LoadedModel | None = None,
        prediction: Any = None,
        error: str | None = None,
    ) -> None:
        features = prediction.features if prediction is not None else None
        record = {
            "request_id": request_id,
            "ts": datetime.now(UTC).isoformat(),
            "use_case": use_case,
            "model_name": loaded.info.name if loaded else None,
            "model_version": loaded.info.version if loaded else None,
            "status": status,
            "latency_ms": (time.perf_counter() - started) * 1000.0,
            "prediction": prediction.value if prediction is not None else None,
            "features_missing": sum(v is None for v in features.values()) if features else 0,
            "error": error,
            "request": request_body,
            "response": response_body,
            "features": features,
        }
        await app.state.request_log.append(record)

    async def respond(
        request_id: str,
        use_case: str,
        started: float,
        status: int,
        payload: dict,
        *,
        retry_after_s: int | None = None,
        **log_fields: Any,
    ) -> JSONResponse:
        """Log, then answer: a response is only sent once its record is durable."""
        payload = {**payload, "request_id": request_id}
        headers = {_REQUEST_ID_HEADER: request_id}
        try:
            await write_log(
                request_id=request_id,
                use_case=use_case,
                started=started,
                status=status,
                response_body=payload,
                **log_fields,
            )
        except Exception as exc:
            log.error("request log write failed: %s", exc)
            message = "the request log cannot be written, so no prediction is acknowledged"
            payload = {**error_detail([], message, "unavailable"), "request_id": request_id}
            status = 503
            retry_after_s = _LOG_RETRY_AFTER_S
        if status == 503:
            # A 503 is temporary by definition: say when to come back, so that clients back off
            # instead of hammering a store that is down.
            headers["retry-after"] = str(retry_after_s or _LOG_RETRY_AFTER_S)
        return JSONResponse(payload, status_code=status, headers=headers)

    async def on_refused(
        scope: dict, status: int, payload: dict, message: str, started: float
    ) -> None:
        path = scope.get("path", "")
        if path.startswith(PREDICT_PREFIX):
            try:
                await write_log(
                    request_id=uuid.uuid4().hex,
                    use_case=path[len(PREDICT_PREFIX) :] or "?",
                    started=started,
                    status=status,
                    request_body=None,
                    response_body=payload,
                    error=message,
                )
            except Exception as exc:
                log.error("request log write failed: %s", exc)

    app.add_middleware(_BodyLimit, limit=config.max_body_bytes, on_refused=on_refused)

    def request_id_of(request: Request) -> str:
        given = request.headers.get(_REQUEST_ID_HEADER, "")
        return given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        started = getattr(request.state, "started", time.perf_counter())
        # JSON has no NaN or Infinity, but Python's reader takes them: echo them as text.
        detail = _json_safe(jsonable_encoder(exc.errors(), exclude={"url"}))
        path = request.url.path
        if not path.startswith(PREDICT_PREFIX):
            return JSONResponse({"detail": detail}, status_code=422)
        use_case = path[len(PREDICT_PREFIX) :]
        endpoint = served.get(use_case)
        loaded = (
            app.state.champions.get(endpoint.model_name)
            if endpoint and not endpoint.model_key
            else None
        )
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in detail
        )
        return await respond(
            request_id_of(request),
            use_case,
            started,
            422,
            {"detail": detail, **_model_fields(loaded)},
            request_body=_jsonable_body(exc.body),
            loaded=loaded,
            error=message,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Errors raised by FastAPI itself (400 for an unreadable body, 405 for a wrong method,
        404 for an unknown path) in the same shape as every other error."""
        started = getattr(request.state, "started", time.perf_counter())
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
            return await respond(
                request_id_of(request),
                path[len(PREDICT_PREFIX) :],
                started,
                400,
                payload,
                request_body=None,
                error=message,
            )
        return JSONResponse(payload, status_code=exc.status_code, headers=exc.headers)

    @app.get("/health", tags=["operations"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["operations"],
        summary="Readiness: champions, online store, log",
        responses={
            503: {"description": "Not ready: `problems` names each missing champion or store."}
        },
    )
    async def ready() -> JSONResponse:
        champions: Champions = app.state.champions
        problems: dict[str, str] = {}
        for use_case, endpoint in served.items():
            names = champions.names(use_case) or [endpoint.model_name]
            for name in names:
                if champions.get(name) is None:
                    problems[name] = champions.error(name) or "not loaded"
        if any(e.needs_online_features for e in served.values()):
            online_reader = app.state.services.online
            if online_reader is None:
                problems["online_store"] = "not configured"
            else:
                why = await run_in_threadpool(getattr(online_reader, "ping", lambda: None))
                if why:
                    problems["online_store"] = why
        request_log = app.state.request_log
        body = {
            "ready": not problems,
            "problems": problems,
            "request_log": {
                "backlog_segments": request_log.backlog(),
                "last_ship_error": request_log.last_ship_error,
            },
        }
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/models", tags=["operations"], summary="The served models and their lineage")
    async def models() -> dict[str, Any]:
        return {"alias": "champion", "models": app.state.champions.describe()}

    for use_case, endpoint in served.items():
        app.add_api_route(
            f"{PREDICT_PREFIX}{use_case}",
            _predict_route(app, endpoint, respond, request_id_of),
            methods=["POST"],
            tags=["predictions"],
            summary=endpoint.summary or f"Predict with the {use_case} champion",
            name=f"predict_{use_case}",
            responses={**PREDICT_ERRORS, **(_example_response(endpoint) or {})},
        )

    @app.post(PREDICT_PREFIX + "{use_case}", tags=["predictions"], include_in_schema=False)
    async def unknown_use_case(use_case: str, request: Request) -> JSONResponse:
        started = getattr(request.state, "started", None) or time.perf_counter()
        known = ", ".join(served) or "none"
        message = f"unknown use case {use_case!r}: this server predicts for {known}"
        return await respond(
            request_id_of(request),
            use_case,
            started,
            404,
            error_detail(["path", "use_case"], message, "not_found"),
            request_body=None,
            error=message,
        )

    return app


def _predict_route(
    app: FastAPI,
    endpoint: Endpoint,
    respond: Callable[..., Awaitable[JSONResponse]],
    request_id_of: Callable[[Request], str],
) -> Callable[..., Awaitable[JSONResponse]]:
    """The handler of ``POST /predict/<use_case>``, with the endpoint's request model as body."""
    use_case = endpoint.use_case

    async def predict(request: Request, body: endpoint.request) -> JSONResponse:  # type: ignore[name-defined]
        started = getattr(request.state, "started", None) or time.perf_counter()
        request_id = request_id_of(request)
        champions: Champions = app.state.champions
        request_body = body.model_dump(mode="json")
        name = endpoint.name_for(body)
        loaded = champions.get(name)
        common = {"request_body": request_body}
        if loaded is None:
            if endpoint.model_key is not None and name not in champions.names(use_case):
                field = endpoint.model_key
                value = getattr(body, field)
                message = f"no model is registered for {field} {value!r} (looked for {name!r})"
                return await respond(
                    request_id,
                    use_case,
                    started,
                    404,
                    error_detail(["body", field], message, "not_found"),
                    error=message,
                    **common,
                )
            why = champions.error(name) or "not loaded yet"
            message = f"{name} has no champion to serve ({why}); materialize {use_case}'s champion"
            return await respond(
                request_id,
                use_case,
                started,
                503,
                error_detail([], message, "no_champion"),
                # The registry is polled every poll_s: a new champion serves no sooner.
                retry_after_s=app.state.no_champion_retry_after_s,
                error=message,
                **common,
            )
        services: Services = app.state.services
        try:
            if endpoint.blocking:
                prediction = await run_in_threadpool(endpoint.predict, loaded.model, body, services)
            else:
                prediction = endpoint.predict(loaded.model, body, services)
        except RequestError as exc:
            return await respond(
                request_id,
                use_case,
                started,
                exc.status,
                {"detail": exc.detail(), **_model_fields(loaded)},
                retry_after_s=exc.retry_after_s,
                loaded=loaded,
                error=exc.message,
                **common,
            )
        except Exception as exc:  # a bug or a broken dependency, never user input
            log.exception("%s prediction failed", use_case)
            message = f"the {use_case} prediction failed: {type(exc).__name__}"
            return await respond(
                request_id,
                use_case,
                started,
                500,
                error_detail([], message, "internal_error"),
                loaded=loaded,
                error=f"{type(exc).__name__}: {exc}",
                **common,
            )
        payload = {
            "use_case": use_case,
            "model_name": loaded.info.name,
            "model_version": loaded.info.version,
            **prediction.body,
        }
        return await respond(
            request_id,
            use_case,
            started,
            200,
            payload,
            loaded=loaded,
            prediction=prediction,
            **common,
        )

    # Set here, not in the signature: with postponed annotations FastAPI would have to resolve
    # the string "endpoint.request" in this module's globals.
    predict.__annotations__ = {"request": Request, "body": endpoint.request, "return": JSONResponse}
    predict.__name__ = f"predict_{use_case}"
    return predict


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


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as its text ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _model_fields(loaded: LoadedModel | None) -> dict[str, str]:
    """The model an answer comes from (every answer after a model was chosen names it)."""
    if loaded is None:
        return {}
    return {"model_name": loaded.info.name, "model_version": loaded.info.version}


def _jsonable_body(body: Any) -> Any:
    """What the client sent, for the log: JSON as parsed, bytes as text (cut to 4 kB)."""
    if isinstance(body, bytes | bytearray):
        return body[:4096].decode("utf-8", errors="replace")
    try:
        return jsonable_encoder(body)
    except Exception:
        return repr(body)[:4096]


def serve(settings: Settings | None = None, config: ServingConfig | None = None) -> int:
    """Run the API with uvicorn in the foreground (``mlops serve``)."""
    import uvicorn

    settings = settings or load_settings()
    config = config or ServingConfig.from_env(settings.home)
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
