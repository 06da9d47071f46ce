"""Answers to prediction requests: each one is appended to the request log before it is sent.

A prediction the log does not hold was never made, as far as monitoring and audits can tell: so
:func:`respond` writes the record first (with the model version, the features the model saw and
the latency) and only then answers; if the log cannot be written, the client gets a 503 instead of
a prediction nobody can account for. Every answer carries its request id (the client's
``x-request-id`` if usable, else a fresh one), which is also the record's id.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from mlops_assets.core.rollout import SERVED_ROLE
from mlops_assets.serving.endpoints import SERVED_ALIAS, Prediction, error_detail

if TYPE_CHECKING:
    from mlops_assets.serving.champions import LoadedModel
    from mlops_assets.serving.request_log import RequestLog

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
# Retry-After (seconds) of a 503 that names no better time (the request log cannot be written).
LOG_RETRY_AFTER_S = 1


def request_id_of(request: Request) -> str:
    """The client's request id when it is a sensible one (printable, at most 64 characters),
    else a fresh one: the id ends up in the log and in a header, so it must be safe in both."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex


def started_at(request: Request) -> float:
    """When the request began (``time.perf_counter``): set by the body limit as the body started
    to arrive, so that the logged latency includes reading it; now for a request without a body."""
    return getattr(request.state, "started", None) or time.perf_counter()


async def log_request(
    request_log: RequestLog,
    request_id: str,
    use_case: str,
    started: float,
    status: int,
    *,
    request_body: Any,
    response_body: Any,
    loaded: LoadedModel | None = None,
    prediction: Prediction | None = None,
    error: str | None = None,
    alias: str = SERVED_ALIAS,
) -> None:
    """Append the record of one answered or refused request to ``request_log`` (durably).

    ``alias``: the alias the answering version holds (``candidate`` for a canary answer); only
    recorded when a model was chosen.
    """
    features = prediction.features if prediction is not None else None
    record = {
        "role": SERVED_ROLE,
        "alias": alias if loaded is not None else None,
        "request_id": request_id,
        # A datetime, not its text: the log writes it as UTC text itself (no parse back).
        "ts": datetime.now(UTC),
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
    await request_log.append(record)


async def respond(
    request_log: RequestLog,
    request_id: str,
    use_case: str,
    started: float,
    status: int,
    payload: dict,
    *,
    retry_after_s: int | None = None,
    **log_fields: Any,
) -> JSONResponse:
    """Log, then answer: a response is only sent once its record is durable.

    ``log_fields`` are the other fields of :func:`log_request` (``request_body``, ``loaded``,
    ``prediction``, ``error``, ``alias``).
    """
    payload = {**payload, "request_id": request_id}
    headers = {REQUEST_ID_HEADER: request_id}
    try:
        await log_request(
            request_log, request_id, use_case, started, status, response_body=payload, **log_fields
        )
    except Exception as exc:
        log.error("request log write failed: %s", exc)
        message = "the request log cannot be written, so no prediction is acknowledged"
        payload = {**error_detail([], message, "unavailable"), "request_id": request_id}
        status = 503
        retry_after_s = LOG_RETRY_AFTER_S
    if status == 503:
        # A 503 is temporary by definition: say when to come back, so that clients back off
        # instead of hammering a store that is down.
        headers["retry-after"] = str(retry_after_s or LOG_RETRY_AFTER_S)
    return JSONResponse(payload, status_code=status, headers=headers)


def model_fields(loaded: LoadedModel | None, alias: str = SERVED_ALIAS) -> dict[str, str]:
    """The model an answer comes from (every answer after a model was chosen names it): its
    name, version, and the alias it holds (``candidate`` when a canary answered)."""
    if loaded is None:
        return {}
    return {
        "model_name": loaded.info.name,
        "model_version": loaded.info.version,
        "model_alias": alias,
    }


def jsonable_body(body: Any) -> Any:
    """What the client sent, for the log: JSON as parsed, bytes as text (cut to 4 kB)."""
    if isinstance(body, bytes | bytearray):
        return body[:4096].decode("utf-8", errors="replace")
    try:
        return jsonable_encoder(body)
    except Exception:
        return repr(body)[:4096]
