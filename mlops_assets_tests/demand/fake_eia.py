"""A local fake of the EIA API v2 route of hourly region data, for tests.

:class:`FakeEia` serves ``GET /v2/electricity/rto/region-data/data/`` on ``127.0.0.1`` (a free
port, an ``http.server`` in a daemon thread) with the documented response format: ``total`` as a
string, rows with ``period``, ``respondent``, ``respondent-name``, ``type``, ``type-name``,
``value`` (a string) and ``value-units``, the ``request`` echo (api key included, as EIA does), and
EIA's error bodies (403 ``{"error": {"code": "API_KEY_INVALID", ...}}`` for a bad key, 400
``{"error": "..."}`` for a bad parameter). It honours the respondent and type facets, the inclusive
``start``/``end`` hours, ``offset``/``length`` and sorts by period then respondent.

Faults are scripted: :meth:`FakeEia.fail_next`, :meth:`FakeEia.malformed_next`,
:meth:`FakeEia.respond_next`, :meth:`FakeEia.drop_connection_next` and :meth:`FakeEia.slow_next`
queue answers given (in order) before normal behaviour resumes; ``rows_override`` rewrites the
matching rows of every request (to inject junk, nulls, duplicates or rows nobody asked for). Every
request is recorded in :attr:`FakeEia.requests`.

Usage::

    with FakeEia(api_key="k") as eia:
        eia.add_series(["CISO"], start, end)
        fetch_demand(["CISO"], start, end, EiaClientConfig(api_key="k", base_url=eia.base_url))
"""

from __future__ import annotations

import json
import math
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROUTE = "/v2/electricity/rto/region-data/data/"

# Plausible levels of hourly demand (MWh) of the usual respondents; others get a level from a hash.
_LEVELS = {"CISO": 25_000, "ERCO": 45_000, "PJM": 90_000, "MISO": 75_000, "NYIS": 17_000}
_NAMES = {
    "CISO": "California Independent System Operator",
    "ERCO": "Electric Reliability Council of Texas, Inc.",
    "PJM": "PJM Interconnection, LLC",
    "MISO": "Midcontinent Independent System Operator, Inc.",
    "NYIS": "New York Independent System Operator",
}
_TYPE_NAMES = {"D": "Demand", "DF": "Day-ahead demand forecast", "NG": "Net generation"}
_HOUR = timedelta(hours=1)
# The truncated body of malformed_next(): a response cut off mid-stream.
MALFORMED_BODY = b'{"response": '


def format_period(moment: datetime) -> str:
    """EIA's ``hourly`` period text of a UTC hour: ``2024-01-01T05``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def demand_row(respondent: str, moment: datetime, value: Any, type_: str = "D") -> dict[str, Any]:
    """One row in EIA's format (``value`` as given: a string, a number or ``None``)."""
    return {
        "period": format_period(moment),
        "respondent": respondent,
        "respondent-name": _NAMES.get(respondent, f"{respondent} balancing authority"),
        "type": type_,
        "type-name": _TYPE_NAMES.get(type_, type_),
        "value": value,
        "value-units": "megawatthours",
    }


def plausible_value(respondent: str, moment: datetime) -> str:
    """A deterministic demand figure: the respondent's level, a daily cycle peaking in the evening."""
    level = _LEVELS.get(respondent, 5_000 + zlib.crc32(respondent.encode()) % 20_000)
    hour = moment.astimezone(UTC).hour
    return str(round(level * (1 + 0.2 * math.sin((hour - 14) / 24 * 2 * math.pi))))


@dataclass
class RecordedRequest:
    """One request the fake received: its path, parsed query and the status it answered."""

    path: str
    query: dict[str, list[str]]
    status: int = 0

    def param(self, name: str) -> str | None:
        """The single value of query parameter ``name`` (``None`` when absent)."""
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class _Scripted:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    delay: float = 0.0  # wait this long, then behave normally


class FakeEia:
    """A fake EIA API v2 server (see the module docstring); a context manager, or start()/stop()."""

    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        #: respondent -> its rows in EIA's format; edit freely (the server reads it per request).
        self.rows: dict[str, list[dict[str, Any]]] = {}
        #: Called with the matching, sorted rows of each request; what it returns is served
        #: (``total`` and paging included), bypassing facets and range.
        self.rows_override: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
        #: Every request received, in order.
        self.requests: list[RecordedRequest] = []
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeEia:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False  # stop() must not wait for a slow_next() sleeper
        # A client that gave up (timeout) makes the late answer fail: not the test's business.
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        # A short poll interval: stop() waits up to one interval for the serving loop to notice.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="fake-eia",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeEia:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v2``, the ``base_url`` of an EiaClientConfig."""
        assert self._server is not None, "FakeEia is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v2"

    # -- data ------------------------------------------------------------------------------------

    def add_series(self, respondents: Iterable[str], start: datetime, end: datetime) -> None:
        """Plausible hourly demand rows for ``start <= period < end`` (UTC hours), values as text."""
        for respondent in respondents:
            series = self.rows.setdefault(respondent, [])
            moment = start.astimezone(UTC)
            while moment < end:
                series.append(demand_row(respondent, moment, plausible_value(respondent, moment)))
                moment += _HOUR

    def set_value(self, respondent: str, moment: datetime, value: Any) -> None:
        """Replace the value of one existing row (e.g. with ``"n/a"`` or ``None``)."""
        period = format_period(moment)
        for row in self.rows[respondent]:
            if row["period"] == period:
                row["value"] = value
                return
        raise KeyError(f"no row {respondent} {period}")

    # -- faults ----------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        *,
        retry_after: float | str | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (an EIA-like error body by default)."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        if body is None:
            body = {"error": f"fake EIA scripted failure {status}"}
        for _ in range(times):
            self.respond_next(status, body, headers=headers)

    def malformed_next(self, times: int = 1) -> None:
        """Answer the next ``times`` requests with 200 and a truncated JSON body."""
        for _ in range(times):
            self.respond_next(200, MALFORMED_BODY)

    def respond_next(
        self, status: int, body: Any, *, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next request with ``status`` and ``body`` (bytes/str as is, else as JSON)."""
        if isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = json.dumps(body).encode()
        with self._lock:
            self._script.append(_Scripted(status=status, body=raw, headers=dict(headers or {})))

    def drop_connection_next(self, times: int = 1) -> None:
        """Close the next ``times`` connections without an answer (a connection error)."""
        with self._lock:
            self._script.extend(_Scripted(drop=True) for _ in range(times))

    def slow_next(self, seconds: float, times: int = 1) -> None:
        """Delay the next ``times`` answers by ``seconds`` (to trigger client timeouts)."""
        with self._lock:
            self._script.extend(_Scripted(delay=seconds) for _ in range(times))

    # -- serving ---------------------------------------------------------------------------------

    def _next_scripted(self) -> _Scripted | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _answer(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body that EIA would give for ``query``."""
        params = {k: (v if k.endswith("[]") else v[-1]) for k, v in query.items()}
        key = query.get("api_key", [""])[-1]
        if key != self.api_key:
            return 403, {
                "error": {
                    "code": "API_KEY_INVALID" if key else "API_KEY_MISSING",
                    "message": "An invalid api_key was supplied.  Please register at "
                    "https://www.eia.gov/opendata/register.php for an API key.",
                }
            }
        frequency = params.get("frequency", "")
        if frequency != "hourly":
            return 400, {"error": f"Invalid frequency '{frequency}' provided."}
        try:
            offset = int(params.get("offset", "0"))
            length = int(params.get("length", "5000"))
        except ValueError:
            return 400, {"error": "offset and length must be integers."}
        if offset < 0 or not 0 <= length <= 5000:
            return 400, {"error": f"Invalid offset {offset} or length {length}."}
        bounds: list[str | None] = []
        for name in ("start", "end"):
            text = params.get(name)
            if text is not None:
                try:
                    datetime.strptime(text, "%Y-%m-%dT%H")
                except ValueError:
                    return 400, {"error": f"Invalid {name} '{text}' for frequency hourly."}
            bounds.append(text)
        respondents = query.get("facets[respondent][]")
        types = query.get("facets[type][]")

        matching = [
            row
            for respondent, series in self.rows.items()
            if respondents is None or respondent in respondents
            for row in series
            if (types is None or row.get("type") in types)
            # Period texts of one format compare as their hours do; both bounds are inclusive.
            and (bounds[0] is None or str(row.get("period")) >= bounds[0])
            and (bounds[1] is None or str(row.get("period")) <= bounds[1])
        ]
        matching.sort(key=lambda row: (str(row.get("period")), str(row.get("respondent"))))
        if self.rows_override is not None:
            matching = self.rows_override(matching)
        return 200, {
            "response": {
                "total": str(len(matching)),
                "dateFormat": 'YYYY-MM-DD"T"HH24',
                "frequency": "hourly",
                "data": matching[offset : offset + length],
                "description": "Hourly demand, day-ahead demand forecast, net generation, and "
                "interchange by balancing authority.",
            },
            "request": {"command": ROUTE, "params": params},
            "apiVersion": "2.1.8",
            "ExcelAddInVersion": "2.1.0",
        }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeEia  # set on the subclass made by FakeEia.start()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        recorded = RecordedRequest(url.path, parse_qs(url.query, keep_blank_values=True))
        self.fake._record(recorded)
        scripted = self.fake._next_scripted()
        if scripted is not None and scripted.drop:
            self.close_connection = True
            return
        if scripted is not None and scripted.delay:
            time.sleep(scripted.delay)
            scripted = None
        if scripted is not None:
            status, body, headers = scripted.status, scripted.body, scripted.headers
        elif url.path.rstrip("/") != ROUTE.rstrip("/"):
            status, headers = 404, {}
            body = json.dumps({"error": f"No route found for {url.path}"}).encode()
        else:
            status, answer = self.fake._answer(recorded.query)
            body, headers = json.dumps(answer).encode(), {}
        recorded.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests keep stderr for their own output."""
