"""The durable log of every prediction request: what was asked, what was answered, with what model.

One row per request the online API answered (errors included), kept in the asset store at
``<root>/serving/predictions_log/<UTC day>/<segment>.parquet``. Monitoring reads a day with
:func:`read_day`; a prediction can be explained and replayed from its request, features and model
version.

While a candidate is rolled out (:mod:`mlops_assets.core.rollout`), a request may have a second
row: the prediction of the other version, scored after the answer was sent and never sent
(``role`` ``shadow``), with the same ``request_id`` and ``request_json``, its own version,
prediction, features and latency, and no ``response_json``. ``alias`` says which alias the
version held (``champion`` or ``candidate``). Batches written before these two columns existed
read back with them null (an answer, by the champion). Whatever counts traffic, latency or errors
keeps the answers only (:func:`served_rows`).

A crash loses nothing that was acknowledged:

* :meth:`RequestLog.append` returns only once the record is in a local write-ahead log (WAL) and
  flushed to disk (``fdatasync``, see :func:`_sync_data`), and the app sends its response after
  that. One writer thread commits every record queued meanwhile with a single flush (group
  commit), so durability costs one disk flush per batch, not one per request.
* The WAL is a folder of segments, one JSON record per line. The active segment is
  ``<segment>.jsonl.open``, held with an exclusive ``flock`` by the process that writes it; sealing
  renames it to ``<segment>.jsonl``. A segment left open by a dead process (its lock is free) is
  sealed by the next process that starts on the folder, after cutting the torn line a crash may
  leave at its end (that record was never acknowledged).
* A shipper thread turns sealed segments into Parquet files, one per UTC day the segment touches,
  and deletes a segment only once all of its files are written. Shipping again after a crash
  writes the same bytes to the same paths, so a segment is never lost nor counted twice.

Several worker processes may share one WAL folder: each writes its own segments, and the locks keep
them from recovering or shipping a segment another live process holds.

Only the standard library and orjson are imported at module level: the API imports this module at
start-up, and pyarrow is needed only by the shipper and by readers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import itertools
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mlops_assets.core import storage
from mlops_assets.core.rollout import SERVED_ROLE, SHADOW_ROLE

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath

logger = logging.getLogger(__name__)

# Column order of the Parquet files (and of :func:`read_day`'s table).
PREDICTIONS_LOG_COLUMNS: tuple[str, ...] = (
    "request_id",
    "ts",
    "use_case",
    "model_name",
    "model_version",
    "status",
    "latency_ms",
    "prediction",
    "features_missing",
    "error",
    "request_json",
    "response_json",
    "features_json",
    "role",
    "alias",
)

# Columns that batches written before they existed lack: read back as null. A null ``role`` is an
# answer (``served``: only answers were logged then), a null ``alias`` the ``champion``.
LATER_COLUMNS: tuple[str, ...] = ("role", "alias")

# What the app passes to `append`; the three JSON-able values become the `*_json` text columns.
RECORD_KEYS: frozenset[str] = frozenset(c.removesuffix("_json") for c in PREDICTIONS_LOG_COLUMNS)
_STRING_KEYS = ("request_id", "use_case", "model_name", "model_version", "error", "role", "alias")
# The values a record's ``role`` and ``alias`` may take (or None): readers filter on them, so a
# misspelt one would silently count a shadow prediction as an answer.
ROLES = (SERVED_ROLE, SHADOW_ROLE)
ALIASES = ("champion", "candidate")
_FLOAT_KEYS = ("latency_ms", "prediction")
_JSON_KEYS = ("request", "response", "features")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

DATASET_PARTS = ("serving", "predictions_log")
OPEN_SUFFIX = ".jsonl.open"
SEALED_SUFFIX = ".jsonl"
QUARANTINE = "quarantine"

# Bounds one group commit, so that the first record of a burst does not wait for the whole burst.
_MAX_BATCH_RECORDS = 4096

# The longest a record queued without waiting (append_nowait) stays unwritten when no acknowledged
# record comes to carry it to disk.
LAZY_COMMIT_S = 0.5

# Unique across the segments this process creates, whatever the number of logs it opens.
_segment_counter = itertools.count()


def predictions_log_schema() -> pa.Schema:
    """The Arrow schema of the predictions log: one row per request the API answered."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("request_id", pa.string()),
            pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("use_case", pa.string()),
            pa.field("model_name", pa.string()),
            pa.field("model_version", pa.string()),
            pa.field("status", pa.int32()),
            pa.field("latency_ms", pa.float64()),
            pa.field("prediction", pa.float64()),
            pa.field("features_missing", pa.int32(), nullable=False),
            pa.field("error", pa.string()),
            pa.field("request_json", pa.string()),
            pa.field("response_json", pa.string()),
            pa.field("features_json", pa.string()),
            # "served": the answer sent; "shadow": scored beside it, never sent (null: served).
            pa.field("role", pa.string()),
            # The alias the version held when it answered or scored: "champion" or "candidate"
            # (null: champion).
            pa.field("alias", pa.string()),
        ]
    )


def day_folder(root: UPath | Path, day: str) -> UPath | Path:
    """The folder of one UTC day (``YYYY-MM-DD``) of the predictions log."""
    return root.joinpath(*DATASET_PARTS, day)


def batch_path(root: UPath | Path, day: str, segment: str) -> UPath | Path:
    """Where the rows of WAL segment ``segment`` that fall on UTC day ``day`` are stored."""
    return day_folder(root, day) / f"{segment}.parquet"


def read_day(root: UPath | Path, day: str) -> pa.Table:
    """Every request answered on UTC day ``day``, sorted by (``ts``, ``request_id``).

    Empty (with the schema) when nothing was shipped for that day yet.
    """
    import pyarrow as pa

    schema = predictions_log_schema()
    folder = day_folder(root, day)
    try:
        entries = list(folder.iterdir()) if folder.exists() else []
    except FileNotFoundError:
        entries = []
    # Hidden names are temporary files of a write in progress (storage.TEMP_PREFIX), never data.
    files = sorted(
        (p for p in entries if p.name.endswith(".parquet") and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not files:
        return schema.empty_table()
    tables = [_with_later_columns(storage.read_parquet(p)).cast(schema) for p in files]
    return pa.concat_tables(tables).sort_by([("ts", "ascending"), ("request_id", "ascending")])


def _with_later_columns(table: pa.Table) -> pa.Table:
    """``table`` with the log's columns in order, a column added since it was written
    (:data:`LATER_COLUMNS`) as nulls."""
    import pyarrow as pa

    for name in LATER_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table.select(list(PREDICTIONS_LOG_COLUMNS))


def served_rows(log: pa.Table) -> pa.Table:
    """The rows of ``log`` that are answers sent to clients (``role`` null or ``served``), without
    the predictions scored in shadow: what counts traffic, latency, errors and served inputs."""
    import pyarrow.compute as pc

    if "role" not in log.column_names:
        return log
    role = log["role"]
    return log.filter(pc.or_kleene(pc.is_null(role), pc.equal(role, SERVED_ROLE)))


def is_served(row: Mapping[str, Any]) -> bool:
    """Whether one log row (a dict) is an answer sent (``role`` null or ``served``)."""
    return row.get("role") in (None, SERVED_ROLE)


def day_fingerprints(root: UPath | Path) -> dict[str, str]:
    """Per UTC day that has log batches, a fingerprint of its batch files (names and sizes).

    A day's fingerprint changes whenever a batch lands in it, so it serves as that day's data
    version; listing is enough, no file is read.
    """
    import hashlib
    import re

    base = root.joinpath(*DATASET_PARTS)
    if not base.exists():
        return {}
    fingerprints: dict[str, str] = {}
    for folder in sorted(base.iterdir(), key=lambda p: p.name):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", folder.name) or not folder.is_dir():
            continue
        batches = sorted(
            (p.name, p.stat().st_size)
            for p in folder.iterdir()
            if p.name.endswith(".parquet") and not p.name.startswith(".")
        )
        if batches:
            listing = "".join(f"{name}\t{size}\n" for name, size in batches)
            fingerprints[folder.name] = hashlib.sha256(listing.encode()).hexdigest()
    return fingerprints


# -- Records -----------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None: NaN is not JSON, and a reader's
    parser would refuse the whole document for one missing feature."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if type(value) is dict:
        # The common case, a plain dict with text keys, without a call per value (a record's
        # features are ~40 numbers: the calls were most of the cost of logging a request).
        out = {}
        for key, item in value.items():
            kind = type(item)
            if type(key) is not str:
                key = str(key)
            if kind is str or kind is int or item is None or kind is bool:
                out[key] = item
            elif kind is float:
                out[key] = item if math.isfinite(item) else None
            else:
                out[key] = _finite(item)
        return out
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    # NumPy scalars and arrays (features often come from a frame): as the Python values they hold.
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _finite(value.tolist())
    return value


def canonical_json(value: Any) -> str | None:
    """``value`` as compact JSON text with sorted keys (same value, same text); None stays None."""
    return _json_text(_finite(value))


def _json_text(value: Any) -> str | None:
    """:func:`canonical_json` of a value whose floats are already finite."""
    return None if value is None else _dumps(value).decode()


# Datetimes and dataclasses through ``default`` (``str``), as the standard library writes them.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _dumps(value: Any) -> bytes:
    """Finite ``value`` as compact UTF-8 JSON with sorted keys, unknown types as their ``str``.

    orjson writes it 4-5 times quicker than ``json.dumps`` (a record is encoded on the event loop
    for every request); what orjson refuses (an integer beyond 64 bits, a lone surrogate) goes
    through the standard library. Both are read back as the same value.
    """
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False
        ).encode()


def _as_utc_iso(ts: Any) -> str:
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if not isinstance(ts, datetime):
        raise ValueError(f"ts must be an ISO-8601 string or a datetime, got {type(ts).__name__}")
    if ts.tzinfo is None:
        # A naive time would be filed under whatever day the server's clock zone says.
        raise ValueError(f"ts must carry a time zone, got {ts.isoformat()}")
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def _int32(name: str, value: Any) -> int:
    number = int(value)
    if not _INT32_MIN <= number <= _INT32_MAX:
        raise ValueError(f"{name}={number} does not fit the int32 column")
    return number


def _normalize(record: Mapping[str, Any], *, default_ts: bool) -> dict[str, Any]:
    """The record as the WAL keeps it: every key present, typed, ``ts`` as UTC ISO text.

    Raises ValueError for an unknown key or a value of the wrong kind.
    """
    unknown = set(record) - RECORD_KEYS
    if unknown:
        raise ValueError(f"unknown request log fields: {sorted(unknown)}")
    row: dict[str, Any] = {}
    try:
        for key in _STRING_KEYS:
            value = record.get(key)
            row[key] = None if value is None else str(value)
        if row["role"] not in (None, *ROLES):
            raise ValueError(f"role {row['role']!r}: use one of {list(ROLES)} (or none)")
        if row["alias"] not in (None, *ALIASES):
            raise ValueError(f"alias {row['alias']!r}: use one of {list(ALIASES)} (or none)")
        ts = record.get("ts")
        if ts is None:
            if not default_ts:
                raise ValueError("ts is missing")
            # The time of logging is the best stand-in: the row must fall on some day.
            ts = datetime.now(UTC)
        row["ts"] = _as_utc_iso(ts)
        status = record.get("status")
        row["status"] = None if status is None else _int32("status", status)
        for key in _FLOAT_KEYS:
            value = record.get(key)
            row[key] = None if value is None else _finite(float(value))
        missing = record.get("features_missing")
        row["features_missing"] = 0 if missing is None else _int32("features_missing", missing)
        for key in _JSON_KEYS:
            row[key] = _finite(record.get(key))
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"invalid request log record: {exc}") from exc
    return row


def _wal_row(record: Mapping[str, Any], *, default_ts: bool) -> dict[str, Any]:
    """The record as one flat WAL object: exactly the Parquet columns, ``ts`` as UTC ISO text with
    a ``Z``, the three JSON-able values already as canonical JSON text."""
    row = _normalize(record, default_ts=default_ts)
    flat = {key: row[key] for key in PREDICTIONS_LOG_COLUMNS if key in row}
    flat["ts"] = row["ts"].replace("+00:00", "Z")
    for key in _JSON_KEYS:
        flat[f"{key}_json"] = _json_text(row[key])  # already finite (_normalize)
    return flat


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One WAL line (newline-terminated JSON) for ``record``; ValueError if it is malformed.

    The line is flat and holds exactly the Parquet columns, so that shipping a segment is one
    call to Arrow's JSON reader, in C and without the GIL: a Python loop over the lines of a
    minute of traffic held the GIL for about half a second and stalled the API's event loop.
    """
    # JSON escapes control characters, so the line holds no newline but its last byte.
    return _dumps(_wal_row(record, default_ts=True)) + b"\n"


class _CorruptSegment(Exception):
    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


_REQUIRED = ("ts", "features_missing")


def _day_tables(data: bytes) -> dict[str, pa.Table]:
    """A sealed segment's rows as one table per UTC day, rows sorted by (``ts``, ``request_id``).

    Raises _CorruptSegment naming the first line that is not a record this module wrote.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    if data and not data.endswith(b"\n"):
        # Sealed segments end with a newline: recovery cuts a torn tail before sealing.
        raise _CorruptSegment(data.count(b"\n") + 1, "last line has no newline")
    # Not data.strip(): that copies the segment (16 MB) while holding the GIL, which the API's
    # event loop waits for; isspace stops at the first character of a record.
    if not data or data.isspace():
        return {}
    schema = predictions_log_schema()
    try:
        table = pj.read_json(
            # A zero-copy Arrow buffer, read in C++: a Python file object (io.BytesIO) would be
            # read through Python, holding the GIL.
            pa.BufferReader(data),
            # One block for the whole segment: a block must hold the longest line (a demand
            # request carries weeks of history).
            read_options=pj.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data))),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
        if any(table[c].null_count for c in _REQUIRED):
            raise ValueError(f"a line lacks one of {list(_REQUIRED)}")
        table = table.select(list(PREDICTIONS_LOG_COLUMNS)).cast(schema)
    except (pa.ArrowException, ValueError) as exc:
        line, reason = _first_bad_line(data)
        raise _CorruptSegment(line, reason or str(exc)) from exc

    days = pc.strftime(table["ts"], format="%Y-%m-%d")
    tables: dict[str, pa.Table] = {}
    for day in sorted(pc.unique(days).to_pylist()):
        part = table.filter(pc.equal(days, day))
        # A stable sort on a total key: the same segment always gives the same bytes. Rows
        # without a request_id go last, where Arrow's sort (read_day) puts nulls.
        order = pc.sort_indices(
            part,
            sort_keys=[("ts", "ascending", "at_end"), ("request_id", "ascending", "at_end")],
        )
        tables[day] = part.take(order)
    return tables


def _first_bad_line(data: bytes) -> tuple[int | None, str | None]:
    """The number and fault of the first line that is not a WAL record (the slow path, only for
    a segment Arrow refused)."""
    columns = set(PREDICTIONS_LOG_COLUMNS)
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            # A line written before the later columns existed lacks them (read as null).
            if not isinstance(obj, dict) or not (
                columns - set(LATER_COLUMNS) <= set(obj) <= columns
            ):
                raise ValueError("not a request log record (fields differ)")
            record = {k: v for k, v in obj.items() if not k.endswith("_json")}
            _normalize(record, default_ts=False)
            for key in _JSON_KEYS:
                text = obj[f"{key}_json"]
                if text is not None and not isinstance(text, str):
                    raise ValueError(f"{key}_json is not JSON text")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return number, str(exc)
    return None, None


# -- Files -------------------------------------------------------------------------------------


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (it may have been renamed meanwhile
    by the process whose lock we were waiting for)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _try_lock(path: Path, flags: int) -> int | None:
    """``path`` opened and exclusively locked, or None if it is gone or another holder has it."""
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not _same_file(fd, path):
        os.close(fd)
        return None
    return fd


def _sync_data(fd: int) -> None:
    """Flush ``fd``'s written bytes to disk, with the metadata needed to read them back (its
    size): ``fdatasync``, where the system has it (Linux), else ``fsync``.

    A segment only grows by appends, so nothing else of its inode matters after a crash. Its
    modification time is what ``fsync`` adds, and on ext4 that cost a journal commit per flush:
    measured on this machine's disk, 1,500 appends of a 2.8 kB record, ``fsync`` p99 13-15 ms
    against ``fdatasync`` p99 0.4-3.9 ms (p50 0.2 ms both), and the answers wait for it.
    """
    sync = getattr(os, "fdatasync", None)
    (sync or os.fsync)(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sealed_name(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(OPEN_SUFFIX) + SEALED_SUFFIX)


# -- The log -----------------------------------------------------------------------------------

# Called by the writer thread once a record's batch is durable (None) or failed (the exception).
Callback = Callable[[BaseException | None], None]


@dataclass
class _Control:
    """A request to the writer thread, run between batches so that no record is split."""

    action: str  # "rotate" or "stop"
    done: threading.Event = field(default_factory=threading.Event)
    result: Path | None = None
    error: BaseException | None = None


def _ignore(error: BaseException | None) -> None:
    if error is not None:
        logger.warning("a request log record written without waiting was lost: %r", error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the awaiting request was cancelled: nobody to tell
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class RequestLog:
    """The request log of one API process: a local WAL in ``folder``, shipped to ``root``.

    ``root`` None means no asset store: sealed segments stay in ``folder``.
    ``segment_max_bytes`` / ``segment_max_age_s``: a segment is sealed once it is this big, or
    this long after its first record, whichever comes first; its rows reach the store at most
    about ``segment_max_age_s + ship_interval_s`` after they were logged.
    ``fsync`` False skips the disk flushes (tests, throw-away environments): a power cut may then
    lose acknowledged records.

    Call :meth:`start` once, :meth:`append` per request, :meth:`close` at shutdown.
    """

    def __init__(
        self,
        folder: Path,
        root: UPath | Path | None,
        *,
        segment_max_bytes: int = 16 << 20,
        segment_max_age_s: float = 60.0,
        ship_interval_s: float = 5.0,
        fsync: bool = True,
        lazy_commit_s: float = LAZY_COMMIT_S,
    ) -> None:
        self.folder = Path(folder)
        self.lazy_commit_s = lazy_commit_s
        self.root = root
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_s = segment_max_age_s
        self.ship_interval_s = ship_interval_s
        self.fsync = fsync

        self._queue: queue.SimpleQueue[tuple[bytes, Callback] | _Control] = queue.SimpleQueue()
        # Records nobody waits for (append_nowait): they wake no commit of their own, and ride
        # with the next one (or go within lazy_commit_s).
        self._lazy: collections.deque[tuple[bytes, Callback]] = collections.deque()
        # Guards started/closed against appends, so that nothing is queued behind the stop.
        self._state_lock = threading.Lock()
        self._started = False
        self._closed = False
        # One shipping round at a time in this process (the shipper thread, ship(), close()).
        self._ship_lock = threading.Lock()
        self._stop_shipping = threading.Event()
        self._writer: threading.Thread | None = None
        self._shipper: threading.Thread | None = None
        self._last_ship_error: str | None = None
        # Makes a seal (rename + new size) one step for backlog(), which counts both.
        self._segment_lock = threading.Lock()

        # Owned by the writer thread once started.
        self._active: Path | None = None
        self._fd: int | None = None
        self._size = 0
        self._first_write = 0.0

    # -- public API -------------------------------------------------------------------------

    @property
    def last_ship_error(self) -> str | None:
        """Why the last shipping round failed (the segments wait for the next), or None."""
        return self._last_ship_error

    def start(self) -> None:
        """Seal what dead processes left open, open a new active segment, start the threads."""
        with self._state_lock:
            if self._started or self._closed:
                raise RuntimeError("a RequestLog is started once")
            self.folder.mkdir(parents=True, exist_ok=True)
            self._recover()
            self._open_segment()
            self._writer = threading.Thread(
                target=self._writer_loop, name="request-log-writer", daemon=True
            )
            self._shipper = threading.Thread(
                target=self._shipper_loop, name="request-log-shipper", daemon=True
            )
            self._writer.start()
            self._shipper.start()
            self._started = True

    async def append(self, record: Mapping[str, Any]) -> None:
        """Log ``record``; returns once it is durable on local disk (written and fsync-ed).

        Raises ValueError for a malformed record, and the OSError of the write if the disk
        refused it (the record is then not in the log).
        """
        line = encode_record(record)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, error)

        self._enqueue(line, done)
        await future

    def append_blocking(self, record: Mapping[str, Any]) -> None:
        """:meth:`append` for a plain thread: blocks until the record is durable."""
        line = encode_record(record)
        finished = threading.Event()
        outcome: list[BaseException | None] = []

        def done(error: BaseException | None) -> None:
            outcome.append(error)
            finished.set()

        self._enqueue(line, done)
        finished.wait()
        if outcome[0] is not None:
            raise outcome[0]

    def append_nowait(self, record: Mapping[str, Any], on_done: Callback | None = None) -> None:
        """Queue ``record`` without waiting for it to be durable: it is written with the next
        group commit of the records that are waited for (or within ``lazy_commit_s`` when none
        comes), and ``on_done`` (if given) is called from the writer thread with None once it is
        on disk, or with the write's exception. A crash may lose it before then.

        For records that acknowledge nothing to a client (a prediction scored in shadow after the
        answer was sent): the caller does not wait for the disk, and, above all, the record costs
        no flush of its own. Measured with ``bench/serving_latency.py --shadow``: shadow records
        that woke the writer like answers put an extra ``fsync`` in front of the next answer's,
        and the answers' p99 grew by about 10 ms at 200 requests/s.
        Raises ValueError for a malformed record, RuntimeError once the log is closed.
        """
        line = encode_record(record)
        with self._state_lock:
            if not self._started:
                raise RuntimeError("RequestLog.start() was not called")
            if self._closed:
                raise RuntimeError("the request log is closed")
            self._lazy.append((line, on_done or _ignore))

    def rotate(self) -> Path | None:
        """Seal the active segment now if it holds records; returns the sealed file, if any.

        Blocks until the writer thread did it (the records queued before are in the segment).
        """
        return self._control("rotate")

    def ship(self) -> int:
        """Ship every sealed segment of the folder, oldest first; returns how many were shipped.

        Upload failures are not raised: the round stops, the segments stay for the next one and
        :attr:`last_ship_error` says why. A corrupt segment is moved to ``folder/quarantine/``.
        """
        if self.root is None:
            return 0
        with self._ship_lock:
            shipped = 0
            for path in sorted(self.folder.glob(f"*{SEALED_SUFFIX}")):
                try:
                    if self._ship_segment(path):
                        shipped += 1
                except Exception as exc:
                    self._last_ship_error = f"{path.name}: {exc!r}"
                    logger.warning(
                        "could not ship request log segment %s (kept for the next round): %r",
                        path,
                        exc,
                    )
                    return shipped
            self._last_ship_error = None
            return shipped

    def backlog(self) -> int:
        """Segments waiting to be shipped: the sealed ones in the folder (of every process that
        shares it), plus one if this process's active segment holds records."""
        with self._segment_lock:
            sealed = sum(1 for _ in self.folder.glob(f"*{SEALED_SUFFIX}"))
            return sealed + (1 if self._size > 0 else 0)

    def close(self) -> None:
        """Flush and seal the active segment, ship what can be shipped, stop the threads.

        Shipping errors are logged, not raised (the segments stay for the next start).
        Calling it again does nothing.
        """
        stop = _Control("stop")
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            if not self._started:
                return
            self._queue.put(stop)
        assert self._writer is not None and self._shipper is not None
        self._writer.join()
        if stop.error is not None:
            logger.error("could not seal the active request log segment: %r", stop.error)
        self._stop_shipping.set()
        self._shipper.join()
        try:
            self.ship()
        except Exception:
            logger.exception("shipping the request log at close failed")

    # -- writer thread ----------------------------------------------------------------------

    def _enqueue(self, line: bytes, callback: Callback) -> None:
        with self._state_lock:
            if not self._started:
                raise RuntimeError("RequestLog.start() was not called")
            if self._closed:
                raise RuntimeError("the request log is closed")
            self._queue.put((line, callback))

    def _control(self, action: str) -> Path | None:
        with self._state_lock:
            if not self._started:
                raise RuntimeError("RequestLog.start() was not called")
            if self._closed:
                return None
            control = _Control(action)
            self._queue.put(control)
        control.done.wait()
        if control.error is not None:
            raise control.error
        return control.result

    def _writer_loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._wait_timeout())
            except queue.Empty:  # lazy records are due, or the active segment is old enough
                self._commit(self._take_lazy())
                self._rotate_if_due()
                continue
            batch = [first]
            while len(batch) < _MAX_BATCH_RECORDS:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._run_batch(batch):
                return

    def _wait_timeout(self) -> float:
        # Woken at least every lazy_commit_s: lazy records do not wake the writer themselves.
        if self._size == 0:
            return self.lazy_commit_s
        age = max(0.0, self._first_write + self.segment_max_age_s - time.monotonic())
        return min(age, self.lazy_commit_s)

    def _take_lazy(self) -> list[tuple[bytes, Callback]]:
        taken: list[tuple[bytes, Callback]] = []
        while True:
            try:
                taken.append(self._lazy.popleft())
            except IndexError:
                return taken

    def _run_batch(self, batch: list[tuple[bytes, Callback] | _Control]) -> bool:
        """Commit the batch's records (with the lazy ones queued so far), then its controls in
        queue order; True once stopped."""
        pending: list[tuple[bytes, Callback]] = self._take_lazy()
        for item in batch:
            if isinstance(item, _Control):
                # Whatever was queued before the control is in the segment it seals.
                self._commit([*pending, *self._take_lazy()])
                pending = []
                self._run_control(item)
                if item.action == "stop":
                    return True
            else:
                pending.append(item)
        self._commit(pending)
        self._rotate_if_due()
        return False

    def _commit(self, pending: list[tuple[bytes, Callback]]) -> None:
        """Write the records, flush them to disk once, and only then acknowledge them."""
        if not pending:
            return
        data = b"".join(line for line, _ in pending)
        error: BaseException | None = None
        try:
            if self._fd is None:
                self._open_segment()
            assert self._fd is not None
            _write_all(self._fd, data)
            if self.fsync:
                _sync_data(self._fd)
        except Exception as exc:
            error = exc
            self._undo_partial_write()
        else:
            if self._size == 0:
                self._first_write = time.monotonic()
            self._size += len(data)
        for _, callback in pending:
            try:
                callback(error)
            except Exception:
                logger.exception("a request log callback failed")

    def _undo_partial_write(self) -> None:
        # Part of a failed batch may be on disk: cut it, so that the log holds no record that
        # was not acknowledged and the next batch does not start mid-line.
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            # Leave the segment open and unlocked: the next start() cuts its torn tail and seals
            # it. Whole lines of the failed batch may survive there (logged, never acknowledged).
            logger.exception("could not truncate %s after a failed write", self._active)
            os.close(self._fd)
            self._fd, self._active, self._size = None, None, 0

    def _run_control(self, control: _Control) -> None:
        try:
            if control.action == "rotate":
                control.result = self._seal_active()
                self._open_segment_or_log()
            elif control.action == "stop":
                control.result = self._seal_active()
                self._discard_empty_active()
            else:
                raise ValueError(f"unknown control {control.action!r}")
        except Exception as exc:
            control.error = exc
        finally:
            control.done.set()

    def _rotate_if_due(self) -> None:
        if self._size == 0:
            return
        too_big = self._size >= self.segment_max_bytes
        too_old = time.monotonic() - self._first_write >= self.segment_max_age_s
        if too_big or too_old:
            try:
                self._seal_active()
            except Exception:
                logger.exception("could not seal request log segment %s", self._active)
                return
            self._open_segment_or_log()

    def _open_segment(self) -> None:
        now = datetime.now(UTC)
        # Time first: names sort in creation order; pid and counter make them unique.
        name = f"{now:%Y%m%dT%H%M%S%fZ}-{os.getpid()}-{next(_segment_counter):06d}"
        path = self.folder / f"{name}{OPEN_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if self.fsync:
                storage.fsync_dir(self.folder)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._active, self._size = fd, path, 0

    def _open_segment_or_log(self) -> None:
        try:
            self._open_segment()
        except Exception:
            # The next commit tries again, and fails its records if the disk still refuses.
            logger.exception("could not open a new request log segment in %s", self.folder)

    def _seal_active(self) -> Path | None:
        """Rename the active segment to its sealed name; None if it holds no record."""
        if self._fd is None or self._active is None or self._size == 0:
            return None
        sealed = _sealed_name(self._active)
        # Renamed while still locked: no other process can take it for a dead one's leftover.
        with self._segment_lock:
            os.rename(self._active, sealed)
            fd, self._fd, self._active, self._size = self._fd, None, None, 0
        try:
            if self.fsync:
                storage.fsync_dir(self.folder)
        finally:
            os.close(fd)
        return sealed

    def _discard_empty_active(self) -> None:
        if self._fd is None or self._active is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self._active.unlink()
        os.close(self._fd)
        self._fd, self._active, self._size = None, None, 0

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Seal the segments of dead processes: those whose lock nobody holds."""
        for path in sorted(self.folder.glob(f"*{OPEN_SUFFIX}")):
            fd = _try_lock(path, os.O_RDWR)
            if fd is None:  # a live process writes it (or just sealed it)
                continue
            try:
                self._seal_leftover(fd, path)
            finally:
                os.close(fd)

    def _seal_leftover(self, fd: int, path: Path) -> None:
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0)
        keep = data.rfind(b"\n") + 1
        if keep < size:
            # Bytes after the last newline are a record the crash interrupted: never acknowledged.
            logger.warning("cut a torn record of %d bytes at the end of %s", size - keep, path.name)
            os.ftruncate(fd, keep)
            if self.fsync:
                os.fsync(fd)
        if keep == 0:
            path.unlink()
            return
        sealed = _sealed_name(path)
        os.rename(path, sealed)
        if self.fsync:
            storage.fsync_dir(self.folder)
        logger.info("sealed %s, left open by a process that is gone", sealed.name)

    # -- shipping ---------------------------------------------------------------------------

    def _shipper_loop(self) -> None:
        while not self._stop_shipping.wait(self.ship_interval_s):
            try:
                self.ship()
            except Exception:
                logger.exception("request log shipping round failed")

    def _ship_segment(self, path: Path) -> bool:
        """Write the segment's rows to the store, then delete it; False if it was not shipped
        (another process ships it, or it was quarantined)."""
        assert self.root is not None
        # Locked while shipped, so that a worker sharing the folder does not ship it too.
        fd = _try_lock(path, os.O_RDONLY)
        if fd is None:
            return False
        try:
            data = os.pread(fd, os.fstat(fd).st_size, 0)
            try:
                tables = _day_tables(data)
            except _CorruptSegment as corrupt:
                self._quarantine(path, corrupt)
                return False
            segment = path.name.removesuffix(SEALED_SUFFIX)
            for day in sorted(tables):
                storage.write_parquet(batch_path(self.root, day, segment), tables[day])
            # Deleted only once every day's file is written: a crash before this line re-ships
            # the same rows to the same paths.
            path.unlink()
            return True
        finally:
            os.close(fd)

    def _quarantine(self, path: Path, corrupt: _CorruptSegment) -> None:
        folder = self.folder / QUARANTINE
        folder.mkdir(exist_ok=True)
        target = folder / path.name
        os.replace(path, target)
        if self.fsync:
            storage.fsync_dir(self.folder)
        where = f"line {corrupt.line}" if corrupt.line is not None else "its rows"
        logger.error(
            "request log segment %s is corrupt at %s (%s): moved to %s, not shipped; "
            "repair it and move it back to ship it",
            path,
            where,
            corrupt.reason,
            target,
        )
