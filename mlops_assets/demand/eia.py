"""The EIA API v2 client of the demand use case: hourly demand per balancing authority.

The U.S. Energy Information Administration publishes the EIA-930 data: for every balancing
authority ("respondent": CISO, ERCO, PJM, ...) and every UTC hour, the electricity demand in
megawatt-hours. :func:`fetch_demand` downloads the demand rows (type ``D``) of some respondents over
a half-open UTC range and returns them as the ``raw`` contract of
:mod:`mlops_assets.demand.schema`: what EIA said, one row per respondent and hour, the value kept
as the text EIA sent (parsing it, and judging nulls and junk, is the clean step's job).

It either returns *everything* that was asked for, or raises :class:`EiaError` with a message a
person can act on (which respondents, which range, what went wrong, how many attempts were made).
It never returns a partial download: the caller writes only after a success, so a failed run
leaves no half-written partition behind.

How it talks to EIA (``GET {base_url}/electricity/rto/region-data/data/``):

* one query for all respondents, sorted by period then respondent, paged with ``offset`` and
  ``length`` until the ``total`` that EIA announced is read; a page shorter than announced, or a
  ``total`` that changes between pages (EIA republished data mid-download), is an error rather than
  a silent gap or duplicate;
* a ``period`` without a UTC offset is a UTC hour only because ``frequency=hourly`` says so: an
  answer that declares another frequency (``local-hourly``) with offset-less periods is refused,
  naming the respondent and the period, rather than stored as if the local hours were UTC;
* an hour sent twice with the same value is kept twice (the clean step's ``no_duplicate_hours``
  check then reports it, with the count); two different values for one hour are an error;
* HTTP 429, 5xx, connection errors and timeouts are retried with exponential backoff
  (``backoff_seconds * 2**attempt``, or the server's ``Retry-After``, capped at
  :data:`MAX_RETRY_DELAY_SECONDS`); a rejected key (401/403) or another 4xx is not retried: it
  would fail the same way again;
* the API key travels as the ``api_key`` query parameter, as EIA requires, and is scrubbed from
  every message and error this module produces (EIA even echoes it back in its responses).

Pure Python, no Dagster; ``requests`` and ``pyarrow`` are imported on first use so that the code
location loads fast.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from mlops_assets.demand.schema import DEMAND_TYPE, raw_schema

if TYPE_CHECKING:
    import pyarrow as pa
    import requests

DEFAULT_BASE_URL = "https://api.eia.gov/v2"
DEFAULT_API_KEY_VAR = "EIA_API_KEY"
#: The route of the EIA-930 hourly data (demand, forecast, generation, interchange per region).
REGION_DATA_ROUTE = "electricity/rto/region-data/data/"
#: EIA serves at most 5000 rows per JSON response.
MAX_PAGE_SIZE = 5000
#: The longest wait between two attempts, whatever the backoff or ``Retry-After`` says: a server
#: asking for more is treated as asking for this, so that a run never hangs for hours.
MAX_RETRY_DELAY_SECONDS = 60.0

_HOUR = timedelta(hours=1)
# How much of a body an error message quotes: enough to recognise an HTML error page or a
# truncated JSON, short enough to read in a log line.
_SNIPPET_CHARS = 200
# "2024-01-01T05" (UTC, frequency=hourly) or "2024-11-03T01-04" / "2024-11-03T01+05:30"
# (local time with its UTC offset, frequency=local-hourly); "Z" is accepted as an explicit UTC.
_PERIOD_RE = re.compile(
    r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<h>\d{2})"
    r"(?:(?P<z>Z)|(?P<sign>[+-])(?P<oh>\d{2})(?::?(?P<om>\d{2}))?)?",
    re.ASCII,  # \d must not match other scripts' digits, which int() would happily read
)

# The query string of a URL quoted in an exception text, up to a blank, quote or parenthesis.
_QUERY_RE = re.compile(r"\?[^\s'\"()]+")

# Replaced in tests by a recorder, so that retry delays are observable without waiting for them.
_sleep: Callable[[float], None] = time.sleep


class EiaError(Exception):
    """A failure to get demand from EIA, worded for the person who reads the run's log.

    The message names the respondent(s), the time range and what went wrong; it never contains the
    API key. ``status_code`` is the HTTP status of the last answer, when there was one.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        #: An outage (429, 5xx, connection lost) that outlasted the retries: trying again later
        #: may work. Everything else (a rejected key, a bad request, bad data) fails the same way.
        self.transient = transient


@dataclass(frozen=True)
class EiaClientConfig:
    """How to reach EIA and how hard to try.

    ``api_key``: the key of https://www.eia.gov/opendata/register.php (kept out of ``repr`` so that
    it does not end up in a log). ``page_size``: rows per request, at most 5000 (EIA's limit).
    ``max_retries``: retries per request on 429, 5xx, connection errors and timeouts, so a request
    is attempted up to ``max_retries + 1`` times. ``backoff_seconds``: the first retry waits this
    long, each next one twice as long (unless EIA says ``Retry-After``).
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    page_size: int = MAX_PAGE_SIZE
    max_retries: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_key.strip():
            raise ValueError(f"the EIA api_key is empty: set {DEFAULT_API_KEY_VAR}")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {self.page_size}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_seconds < 0:
            raise ValueError(f"backoff_seconds must be >= 0, got {self.backoff_seconds}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")


def api_key_from_env(var: str = DEFAULT_API_KEY_VAR) -> str:
    """The EIA API key from the environment variable ``var``, stripped of surrounding blanks.

    Raises :class:`EiaError` when the variable is missing or blank, saying where to get a key.
    """
    key = os.environ.get(var, "").strip()
    if not key:
        raise EiaError(
            f"{var} is not set: the demand use case downloads from the EIA API, which needs a "
            f"free key (register at https://www.eia.gov/opendata/register.php) in {var}"
        )
    return key


class LocalHourError(ValueError):
    """A local hour without its UTC offset: which UTC hour it is cannot be known."""


def parse_period(text: str, *, offsetless_is_utc: bool = True) -> datetime:
    """The UTC start of the hour that an EIA ``period`` names, as a tz-aware datetime.

    ``"2024-01-01T05"`` is a UTC hour (``frequency=hourly``). ``"2024-11-03T01-04"`` is a local
    hour with its UTC offset (``frequency=local-hourly``): on a DST fall-back night
    ``"2024-11-03T01-04"`` and ``"2024-11-03T01-05"`` are two different UTC hours (05:00 and 06:00).
    ``"...Z"`` and ``"...+00:00"`` are explicit UTC. With ``offsetless_is_utc=False`` (the
    periods are known to be local hours), a period without ``Z`` or an offset raises
    :class:`LocalHourError`: read as UTC it would shift every hour by the local offset.
    Raises ``ValueError`` quoting ``text`` for anything else.
    """
    match = _PERIOD_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an EIA hourly period: {text!r}")
    if not offsetless_is_utc and not (match["sign"] or match["z"]):
        raise LocalHourError(
            f"local hour without a UTC offset: {text!r} (expected e.g. {text + '-05'!r} or "
            f"{text + 'Z'!r})"
        )
    try:
        if match["sign"]:
            offset = timedelta(hours=int(match["oh"]), minutes=int(match["om"] or 0))
            tz = timezone(-offset if match["sign"] == "-" else offset)
        else:
            tz = UTC
        local = datetime(
            int(match["y"]), int(match["m"]), int(match["d"]), int(match["h"]), tzinfo=tz
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # month 13, hour 24, offset >= 24h, year 0 ...
        raise ValueError(f"not an EIA hourly period: {text!r} ({exc})") from None


def fetch_demand(
    respondents: Sequence[str],
    start: datetime,
    end: datetime,
    config: EiaClientConfig,
    *,
    session: requests.Session | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> pa.Table:
    """Every hourly demand row of ``respondents`` with ``start <= period < end``, from EIA.

    ``start`` and ``end`` are tz-aware and on the hour (any zone; they are converted to UTC).
    Returns a table with exactly :func:`~mlops_assets.demand.schema.raw_schema`, sorted by
    ``(respondent, period)``, one row per row EIA sent (hours EIA does not have are absent, not
    null: gaps are the clean step's business; an hour EIA sent twice with the same value is there
    twice, for the clean step's ``no_duplicate_hours`` check to report). ``value`` is the text EIA
    sent (a JSON number becomes its decimal text, ``21783.0`` becoming ``"21783"``); a null stays
    null.

    Raises :class:`EiaError`, and returns nothing, when EIA rejects the key or the request, keeps
    failing after ``config.max_retries`` retries, answers something that is not the documented
    format, sends a row that was not asked for (another respondent or type, a period outside the
    range, unreadable or a local hour without its offset, two different values for one hour), or
    has no row at all for one of the respondents. ``ValueError`` for bad arguments (no
    respondent, naive or misaligned datetimes).

    ``session``: a ``requests.Session`` to use (one is created and closed otherwise).
    ``on_retry``: called with a one-line, key-free message before each retry (e.g. a logger).
    """
    wanted = _check_respondents(respondents)
    start_utc, end_utc = _check_range(start, end)
    where = _describe(wanted, start_utc, end_utc)

    if session is None:
        import requests

        with requests.Session() as own_session:
            rows = _download(own_session, wanted, start_utc, end_utc, config, where, on_retry)
    else:
        rows = _download(session, wanted, start_utc, end_utc, config, where, on_retry)

    seen = {respondent for respondent, _ in rows}
    missing = [r for r in wanted if r not in seen]
    if missing:
        names = ", ".join(repr(r) for r in missing)
        raise EiaError(
            f"EIA returned no demand for respondent{'s' if len(missing) > 1 else ''} {names} "
            f"between {_fmt(start_utc)} and {_fmt(end_utc)} (end exclusive): is the respondent "
            f"code right? (EIA publishes hourly demand with a delay of about a day, so a range "
            f"that is too recent is empty too)"
        )
    return _to_table(rows)


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


def _check_respondents(respondents: Sequence[str]) -> list[str]:
    if isinstance(respondents, str):  # "CISO" would otherwise be read as C, I, S, O
        raise ValueError(f"respondents must be a sequence of codes, got the string {respondents!r}")
    wanted = list(dict.fromkeys(respondents))  # unique, in the caller's order
    if not wanted:
        raise ValueError("fetch_demand needs at least one respondent")
    for code in wanted:
        if not isinstance(code, str) or not code.strip() or code != code.strip():
            raise ValueError(f"not a respondent code: {code!r}")
    return wanted


def _check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    bounds = []
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be tz-aware (UTC), got the naive {value.isoformat()}")
        utc = value.astimezone(UTC)
        if utc.minute or utc.second or utc.microsecond:
            raise ValueError(f"{name} must be on the hour, got {utc.isoformat()}")
        bounds.append(utc)
    if bounds[0] >= bounds[1]:
        raise ValueError(f"start must be before end, got {start.isoformat()} >= {end.isoformat()}")
    return bounds[0], bounds[1]


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _describe(wanted: list[str], start: datetime, end: datetime) -> str:
    who = ", ".join(repr(r) for r in wanted)
    noun = "respondent" if len(wanted) == 1 else "respondents"
    return f"{noun} {who} from {_fmt(start)} to {_fmt(end)} (end exclusive)"


# --------------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------------

# (respondent, period) -> every (value text or None, value units or None) sent for that hour, all
# equal: an exact repeat is kept (and reported downstream), a different value is an error.
_Rows = dict[tuple[str, datetime], list[tuple[str | None, str | None]]]


def _download(
    session: requests.Session,
    wanted: list[str],
    start: datetime,
    end: datetime,
    config: EiaClientConfig,
    where: str,
    on_retry: Callable[[str], None] | None,
) -> _Rows:
    url = f"{config.base_url.rstrip('/')}/{REGION_DATA_ROUTE}"
    # A list of pairs, not a dict: the facet parameters repeat once per respondent.
    base_params: list[tuple[str, str]] = [
        ("api_key", config.api_key),
        ("frequency", "hourly"),
        ("data[0]", "value"),
        *[("facets[respondent][]", r) for r in wanted],
        ("facets[type][]", DEMAND_TYPE),
        ("start", start.strftime("%Y-%m-%dT%H")),
        # EIA's end is inclusive, at the resolution of the frequency: the last hour wanted.
        ("end", (end - _HOUR).strftime("%Y-%m-%dT%H")),
        # A total order, so that offset paging neither skips nor repeats a row.
        ("sort[0][column]", "period"),
        ("sort[0][direction]", "asc"),
        ("sort[1][column]", "respondent"),
        ("sort[1][direction]", "asc"),
    ]
    wanted_set = set(wanted)
    rows: _Rows = {}
    total: int | None = None
    offset = 0
    while True:
        params = [*base_params, ("offset", str(offset)), ("length", str(config.page_size))]
        body = _get_with_retries(
            session, url, params, config, f"{where}, offset {offset}", on_retry
        )
        page_total, data, frequency = _parse_page(body, config.api_key, where, offset)
        if total is None:
            total = page_total
        elif page_total != total:
            # EIA republished rows mid-download: offsets now point elsewhere, so rows already read
            # may be repeated or missed. Better to fail and let the run be retried.
            raise EiaError(
                f"EIA's row count for {where} changed during the download, from {total} to "
                f"{page_total} at offset {offset}: the data was being updated; retry the run"
            )
        expected = min(config.page_size, total - offset)
        if len(data) != expected:
            raise EiaError(
                f"EIA sent {len(data)} rows at offset {offset} for {where}, expected {expected} "
                f"(total {total}, page size {config.page_size}): the download would be incomplete"
            )
        # Offset-less periods are UTC hours only in an hourly answer (the frequency asked for);
        # an answer that says it holds local hours must carry their offsets.
        offsetless_is_utc = frequency in (None, "hourly")
        for index, row in enumerate(data):
            _add_row(
                rows,
                row,
                wanted_set,
                start,
                end,
                f"row {offset + index} of {where}",
                offsetless_is_utc=offsetless_is_utc,
                frequency=frequency,
            )
        offset += len(data)
        if offset >= total:
            return rows


def _get_with_retries(
    session: requests.Session,
    url: str,
    params: list[tuple[str, str]],
    config: EiaClientConfig,
    what: str,
    on_retry: Callable[[str], None] | None,
) -> bytes:
    """The body of a 200 answer, retrying what may pass on a second try; EiaError otherwise."""
    import requests

    key = config.api_key
    attempts = config.max_retries + 1
    problem = ""
    status: int | None = None
    for attempt in range(attempts):
        retry_after: float | None = None
        try:
            response = session.get(url, params=params, timeout=config.timeout_seconds)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            problem = f"{type(exc).__name__}: {_exception_text(exc, key)}"
            status = None
        else:
            status = response.status_code
            if status == 200:
                return response.content
            detail = _error_text(response.content, key)
            if status in (401, 403):
                raise EiaError(
                    f"EIA rejected the API key (HTTP {status}: {detail}) while fetching {what}: "
                    f"check {DEFAULT_API_KEY_VAR}",
                    status_code=status,
                )
            if status != 429 and status < 500:
                # A bad parameter, a moved route...: the same request would fail the same way.
                raise EiaError(
                    f"EIA refused the request for {what} (HTTP {status}): {detail}",
                    status_code=status,
                )
            problem = f"HTTP {status}: {detail}"
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        if attempt + 1 == attempts:
            break
        delay = _retry_delay(attempt, retry_after, config.backoff_seconds)
        if on_retry is not None:
            on_retry(
                f"EIA request for {what} failed ({problem}); retry {attempt + 1} of "
                f"{config.max_retries} in {delay:.1f} s"
            )
        _sleep(delay)
    raise EiaError(
        f"EIA request for {what} failed after {attempts} attempt{'s' if attempts > 1 else ''}; "
        f"last error: {problem}",
        status_code=status,
        transient=True,
    )


def _retry_delay(attempt: int, retry_after: float | None, backoff_seconds: float) -> float:
    """Seconds to wait before retry ``attempt + 1``: the server's wish, else exponential backoff."""
    delay = retry_after if retry_after is not None else backoff_seconds * 2**attempt
    return min(max(delay, 0.0), MAX_RETRY_DELAY_SECONDS)


def _retry_after_seconds(header: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; ``None`` if absent or unreadable."""
    if header is None or not header.strip():
        return None
    header = header.strip()
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _redact(text: str, key: str) -> str:
    for form in {key, quote(key, safe=""), quote_plus(key)}:
        if form:
            text = text.replace(form, "***")
    return text


def _exception_text(exc: Exception, key: str) -> str:
    """A requests exception's text without the query string of its URL, which holds the key (and
    is too long to read); what is left still says the host, the route and the cause."""
    return _redact(_QUERY_RE.sub("?...", str(exc)), key)


def _snippet(body: bytes, key: str) -> str:
    return _redact(body.decode("utf-8", errors="replace")[:_SNIPPET_CHARS], key)


def _error_text(body: bytes, key: str) -> str:
    """EIA's own words from an error body: ``{"error": "text"}`` or ``{"error": {code, message}}``."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        parts = [str(error[k]) for k in ("code", "message") if error.get(k)]
        text = ": ".join(parts) if parts else json.dumps(error)
    elif error:
        text = str(error)
    else:
        text = body.decode("utf-8", errors="replace").strip() or "(empty body)"
    return _redact(text[:_SNIPPET_CHARS], key)


def _parse_page(
    body: bytes, key: str, where: str, offset: int
) -> tuple[int, list[Any], str | None]:
    """``(total, data, frequency)`` of a 200 answer (``frequency`` as EIA declared it, ``None``
    when absent), or EiaError quoting the start of the body."""
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise EiaError(
            f"EIA sent malformed JSON for {where} at offset {offset} ({exc.__class__.__name__}: "
            f"{exc}); body starts with: {_snippet(body, key)!r}"
        ) from None
    response = parsed.get("response") if isinstance(parsed, dict) else None
    data = response.get("data") if isinstance(response, dict) else None
    if not isinstance(data, list):
        hint = ""
        if isinstance(parsed, dict) and parsed.get("error"):
            hint = f" (EIA says: {_error_text(body, key)})"
        raise EiaError(
            f"EIA's answer for {where} at offset {offset} has no response.data list{hint}; "
            f"body starts with: {_snippet(body, key)!r}"
        )
    total = response.get("total")
    try:
        # EIA sends the total as a string ("8760"); accept a JSON integer too, but not 8760.5.
        if isinstance(total, bool) or not isinstance(total, str | int):
            raise ValueError
        count = int(total)
        if count < 0:
            raise ValueError
    except ValueError:
        raise EiaError(
            f"EIA's answer for {where} at offset {offset} has no valid response.total "
            f"(got {total!r}); body starts with: {_snippet(body, key)!r}"
        ) from None
    frequency = response.get("frequency")
    return count, data, frequency if isinstance(frequency, str) else None


def _add_row(
    rows: _Rows,
    row: Any,
    wanted: set[str],
    start: datetime,
    end: datetime,
    what: str,
    *,
    offsetless_is_utc: bool = True,
    frequency: str | None = None,
) -> None:
    """Check one EIA row against the request and store it under ``(respondent, period)``."""
    if not isinstance(row, dict):
        raise EiaError(f"EIA sent {row!r} as {what}, not an object")
    respondent = row.get("respondent")
    if respondent not in wanted:
        raise EiaError(
            f"EIA sent a row of respondent {respondent!r}, which was not asked for, as {what}"
        )
    kind = row.get("type")
    if kind != DEMAND_TYPE:
        raise EiaError(
            f"EIA sent a row of type {kind!r} (not {DEMAND_TYPE!r}, demand) for respondent "
            f"{respondent!r} as {what}"
        )
    text = row.get("period")
    if text is None:
        raise EiaError(f"EIA sent a row without a period for respondent {respondent!r} as {what}")
    try:
        period = parse_period(text, offsetless_is_utc=offsetless_is_utc)
    except LocalHourError:
        raise EiaError(
            f"EIA sent period {text!r} for respondent {respondent!r} as {what}: the answer says "
            f"frequency {frequency!r}, so this is a local hour, and without its UTC offset "
            f"(e.g. {text + '-05'!r}) it cannot be placed on a UTC hour; refusing rather than "
            f"storing it as UTC"
        ) from None
    except ValueError:
        raise EiaError(
            f"EIA sent an unreadable period {text!r} for respondent {respondent!r} as {what}"
        ) from None
    if not start <= period < end or period.minute:
        raise EiaError(
            f"EIA sent period {text!r} for respondent {respondent!r}, outside the requested UTC "
            f"hours, as {what}"
        )
    units = row.get("value-units")
    value = (_value_text(row.get("value")), None if units is None else str(units))
    sent = rows.setdefault((respondent, period), [])
    # An exact repeat is kept: raw is what EIA said, and the clean step's `no_duplicate_hours`
    # check reports it with its count (dropping it here would hide a fault of the source). Two
    # different values for one hour cannot both be right, and keeping either would be a guess.
    if sent and sent[0] != value:
        raise EiaError(
            f"EIA sent two different values for respondent {respondent!r} at {_fmt(period)} "
            f"({sent[0][0]!r} and {value[0]!r}) as {what}"
        )
    sent.append(value)


def _value_text(value: Any) -> str | None:
    """The value as EIA sent it: text stays text, a number becomes its shortest decimal text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int; keep the JSON spelling
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))  # 21783.0 -> "21783", as EIA usually writes it
        return repr(value)
    return json.dumps(value)  # a list or an object: junk, but kept for the clean step to report


def _to_table(rows: _Rows) -> pa.Table:
    import pyarrow as pa

    # One row per row EIA sent: an hour sent twice appears twice.
    keys = [key for key in sorted(rows) for _ in rows[key]]
    values = [value for key in sorted(rows) for value in rows[key]]
    return pa.Table.from_pydict(
        {
            "respondent": [respondent for respondent, _ in keys],
            "period": [period for _, period in keys],
            "type": [DEMAND_TYPE] * len(keys),
            "value": [value for value, _ in values],
            "value_units": [units for _, units in values],
        },
        schema=raw_schema(),
    )
