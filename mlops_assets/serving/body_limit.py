"""The request body limit: an oversized body is refused with a 413 before the app reads it.

A client must not make the API hold an unbounded body in memory; a refusal of a prediction request
is still logged (``on_refused``), like every other answer of ``/predict``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse

from mlops_assets.serving.endpoints import error_detail

#: ``on_refused(scope, status, payload, message, started)``: told of each refused request.
OnRefused = Callable[[dict, int, dict, str, float], Awaitable[None]]


class BodyLimit:
    """Pure ASGI middleware: refuse bodies over ``limit`` bytes with a 413 before reading them
    (by Content-Length), or as soon as a chunked body passes the limit.

    The body is read here, up to the limit, and handed to the app whole. Raising from inside the
    app's ``receive`` instead does not work: FastAPI catches any error while it reads a body and
    answers 400 "There was an error parsing the body", so a large chunked body got a 400.
    """

    def __init__(self, app: Any, limit: int, on_refused: OnRefused) -> None:
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
        await self.app(scope, BodyReplay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: dict, send: Callable, size: int, started: float) -> None:
        message = f"the request body ({size} bytes or more) is larger than the limit of {self.limit} bytes"
        payload = error_detail(["body"], message, "too_large")
        response = JSONResponse(payload, status_code=413)
        await self.on_refused(scope, 413, payload, message, started)
        await response(scope, _no_receive, send)


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


class BodyReplay:
    """An ASGI ``receive`` that hands a body already read, whole, in one message, then defers to
    the original ``receive`` (the disconnect, when it comes)."""

    def __init__(self, body: bytes, receive: Callable) -> None:
        self.body = body
        self._receive = receive
        #: Whether the body is still to be handed; False once it was, or once the app's caller
        #: used it itself.
        self.pending = True

    async def __call__(self) -> dict:
        if self.pending:
            self.pending = False
            return {"type": "http.request", "body": self.body, "more_body": False}
        return await self._receive()
