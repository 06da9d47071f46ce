"""Shadow and canary serving in the API: which version answers a request, and the other
version's prediction, scored after the answer is sent and within a budget.

The rollout of each model is followed by the champions' poller
(:meth:`~mlops_assets.serving.champions.Champions.candidate`); here, per request:

* **shadow**: a ``share`` of requests, chosen by a stable hash of the request id
  (:func:`mlops_assets.core.rollout.selected`), is scored by the candidate too. The champion
  answers, and its answer is logged and sent first; only then is the candidate's scoring handed to
  the shadow queue. The answer and its latency are the champion's.
* **canary**: a ``share`` of entities (:func:`entity_of`: the endpoint's ``entity_key``, such as
  fraud's ``card_id``; else the request itself) is answered by the candidate, through the same
  validated request and the same ``predict``. The champion scores those requests in shadow, so
  that both versions are compared on the same requests. If the candidate raises, the champion
  answers the request as if there were no rollout.

Both predictions of a request go to the request log with the same ``request_id``: the answer with
role ``served``, the other with role ``shadow`` (:mod:`mlops_assets.serving.request_log`). A
candidate that raises (anything but a :class:`~mlops_assets.serving.endpoints.RequestError`, which
is about the request) is switched off at once: it never fails a request, and it stops being tried.

**Where shadow work runs, and its budget.** Shadow work must never delay answers. Scorings wait
in a queue that one consumer task of the event loop drains, one scoring per turn of the loop, so
that the requests that arrived meanwhile are served between two scorings. An endpoint whose
``predict`` may run on the loop (fraud: a compiled scorer on features already read, tens of
microseconds) is scored there; a ``blocking`` one (demand refits a model per request) on one
worker thread of its own. Why not every scoring on a thread: a first version did that, and
``bench/serving_latency.py --shadow`` on a loaded 2-core machine (load average about 7) gave the
answers a p50 of 578 ms against 22 ms without shadow: a thread kept busy by a stream of short
scorings holds the GIL whenever the event loop comes back from a system call, for up to the
interpreter's 5 ms switch interval each time. On the loop, the same scoring costs about 0.15 ms
once, between two requests.

A scoring is admitted only while (a) fewer than ``max_pending`` scorings wait or run, and (b) the
CPU time spent scoring in shadow stays within ``cpu_share`` of one core (a token bucket of CPU
seconds, measured with ``time.thread_time``). One that does not fit is skipped and counted
(``GET /models``, ``GET /ready``): a slow candidate loses shadow coverage, never the champion its
latency. The shadow record is queued to the log without waiting for its disk flush, and without
a flush of its own: it rides with the next answers' group commit
(:meth:`~mlops_assets.serving.request_log.RequestLog.append_nowait`).

**Same features.** Both versions of a request see the same online features: the first scoring's
reads are kept for the request (:class:`RecordedReads`) and the second one gets them back instead
of reading the store again, so the comparison is like for like and a shadow scoring costs no
store round trip. A read the second version makes with other references (a candidate on another
feature version) goes to the store.

No heavy library at module level: the app imports this module at start-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_assets.core.rollout import SHADOW_ROLE, selected
from mlops_assets.serving.champions import CANDIDATE_ALIAS
from mlops_assets.serving.endpoints import (
    SERVED_ALIAS,
    Endpoint,
    FeatureRow,
    Prediction,
    RequestError,
    Services,
)

if TYPE_CHECKING:
    from mlops_assets.serving.champions import Candidate, Champions, LoadedModel
    from mlops_assets.serving.request_log import RequestLog

log = logging.getLogger(__name__)

SHADOW_THREAD = "rollout-shadow"
# The CPU seconds shadow scorings may spend at once before its share of a core applies: enough
# for a burst of fast scorings, too little for a slow candidate to hog the GIL for long.
BURST_CPU_S = 0.1


# --- which version answers ----------------------------------------------------------------------


def entity_of(endpoint: Endpoint, request_body: Mapping[str, Any]) -> str:
    """The entity a canary routes ``request_body`` (the validated request, as JSON) by.

    With an ``entity_key`` (fraud: ``card_id``), its value: every payment of a card is answered
    by the same version, whatever else it carries. Without one (heart, housing: a request names
    no patient or home; demand: the respondent picks the model itself), the request's canonical
    JSON (sorted keys, compact): the same request always goes to the same version, so a retry
    gets the same answer.
    """
    if endpoint.entity_key is not None:
        return str(request_body.get(endpoint.entity_key))
    return json.dumps(request_body, sort_keys=True, separators=(",", ":"), default=str)


class RecordedReads:
    """The online reads of one request, kept so that the second version scoring the request gets
    the very rows the first one read (same features, no second round trip). A read of other
    references or another entity goes to the store, and is kept too.

    Keyed on the references and the entity, not on ``as_of``: a request without a time is read
    "as of now", and the second scoring, a few milliseconds later, must see what the answer saw.
    """

    def __init__(self, online: Any) -> None:
        self._online = online
        self._rows: dict[tuple[tuple[str, ...], str], FeatureRow] = {}

    def read(
        self, features: Sequence[str], entity: Mapping[str, Any], *, as_of: float | None = None
    ) -> FeatureRow:
        key = (tuple(features), repr(sorted(entity.items())))
        row = self._rows.get(key)
        if row is None:
            row = self._online.read(features, entity, as_of=as_of)
            self._rows[key] = row
        return row


@dataclass(frozen=True)
class Plan:
    """How one request is served under an active rollout: ``mode`` ``shadow`` (the champion
    answers, the candidate scores after) or ``canary`` (the candidate answers, the champion
    scores after), and the services both scorings share (:class:`RecordedReads`)."""

    mode: str
    endpoint: Endpoint
    champion: LoadedModel
    candidate: Candidate
    services: Services
    request_id: str
    request_body: Any

    @property
    def canary(self) -> bool:
        return self.mode == "canary"

    def shadow_job(self, body: Any, *, answered_by_candidate: bool) -> ShadowJob:
        """The scoring of the version that did not answer."""
        loaded, alias = (
            (self.champion, SERVED_ALIAS)
            if answered_by_candidate
            else (self.candidate.loaded, CANDIDATE_ALIAS)
        )
        return ShadowJob(
            endpoint=self.endpoint,
            loaded=loaded,
            alias=alias,
            request_id=self.request_id,
            request_body=self.request_body,
            body=body,
            services=self.services,
        )


@dataclass(frozen=True)
class ShadowJob:
    """One prediction to score after the answer: ``loaded`` (holding ``alias``) on the request."""

    endpoint: Endpoint
    loaded: LoadedModel
    alias: str
    request_id: str
    request_body: Any
    body: Any
    services: Services


# --- counts -------------------------------------------------------------------------------------


@dataclass
class RolloutCounts:
    """What happened to one model's rollout since the API started."""

    shadow_scored: int = 0  # shadow predictions logged
    shadow_errors: int = 0  # shadow scorings that raised or refused the request
    shadow_skipped_queue_full: int = 0  # not scored: max_pending scorings waited already
    shadow_skipped_cpu_budget: int = 0  # not scored: shadow work had used its share of a core
    canary_answered: int = 0  # answers sent by the candidate
    canary_fallbacks: int = 0  # canary requests the champion answered: the candidate raised
    log_failures: int = 0  # shadow records the log could not write


class RolloutStats:
    """:class:`RolloutCounts` per model name, counted from the event loop and the worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, RolloutCounts] = {}

    def add(self, name: str, what: str, n: int = 1) -> None:
        with self._lock:
            counts = self._counts.setdefault(name, RolloutCounts())
            setattr(counts, what, getattr(counts, what) + n)

    def of(self, name: str) -> dict[str, int]:
        with self._lock:
            return asdict(self._counts.get(name) or RolloutCounts())


# --- the budget -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """One admitted shadow scoring, and the CPU seconds its admission took from the budget."""

    debit: float


class ShadowBudget:
    """Admits a shadow scoring while fewer than ``max_pending`` wait or run and shadow work
    has CPU time left: a token bucket that fills at ``cpu_share`` CPU seconds per second, up to
    ``burst_s``. Each admission takes the recent mean cost of a scoring from the bucket, and its
    measured cost is settled when it ends (so a burst of admissions cannot overdraw it)."""

    def __init__(self, max_pending: int, cpu_share: float, *, burst_s: float = BURST_CPU_S) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        if not 0 < cpu_share <= 1:
            raise ValueError(f"cpu_share must be in (0, 1], got {cpu_share}")
        self.max_pending = max_pending
        self.cpu_share = cpu_share
        self.burst_s = burst_s
        self._lock = threading.Lock()
        self._pending = 0
        self._credit = burst_s
        self._stamp = time.monotonic()
        self._mean_cost = 0.0

    @property
    def pending(self) -> int:
        return self._pending

    def admit(self) -> Ticket | str:
        """A :class:`Ticket` when a scoring may start (to :meth:`settle` when it ends), else why
        not: ``"queue_full"`` or ``"cpu_budget"``."""
        with self._lock:
            now = time.monotonic()
            self._credit = min(self.burst_s, self._credit + (now - self._stamp) * self.cpu_share)
            self._stamp = now
            if self._pending >= self.max_pending:
                return "queue_full"
            if self._credit <= 0:
                return "cpu_budget"
            self._pending += 1
            self._credit -= self._mean_cost
            return Ticket(self._mean_cost)

    def settle(self, ticket: Ticket, cpu_s: float) -> None:
        """The scoring of ``ticket`` ended, having used ``cpu_s`` CPU seconds."""
        with self._lock:
            self._pending -= 1
            self._credit += ticket.debit - cpu_s
            # A slowly moving mean: one odd scoring neither starves nor floods the queue.
            self._mean_cost = cpu_s if self._mean_cost == 0 else 0.9 * self._mean_cost + 0.1 * cpu_s

    def cancel(self, ticket: Ticket) -> None:
        """The scoring of ``ticket`` never ran."""
        with self._lock:
            self._pending -= 1
            self._credit += ticket.debit


# --- the rollouts of the app ------------------------------------------------------------------------


class Rollouts:
    """The request side of the rollouts: plans each request, runs the shadow scorings, keeps the
    counts. One per app (``Runtime.rollouts``): :meth:`start` on the event loop at start-up,
    :meth:`stop` at shutdown."""

    def __init__(
        self,
        champions: Champions,
        request_log: RequestLog,
        *,
        max_pending: int = 32,
        cpu_share: float = 0.25,
    ) -> None:
        self.champions = champions
        self.request_log = request_log
        self.budget = ShadowBudget(max_pending, cpu_share)
        self.stats = RolloutStats()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._queue: asyncio.Queue[tuple[ShadowJob, Ticket]] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._closed = False

    # -- planning (event loop) -------------------------------------------------------------------

    def plan(
        self,
        endpoint: Endpoint,
        champion: LoadedModel,
        request_id: str,
        request_body: Any,
        services: Services,
    ) -> Plan | None:
        """How the request is served: None when the champion answers alone (no active rollout,
        or the request is outside the share)."""
        candidate = self.champions.candidate(champion.info.name)
        if candidate is None:
            return None
        rollout = candidate.rollout
        if rollout.mode == "canary":
            chosen = selected(entity_of(endpoint, request_body), rollout.share)
        else:
            chosen = selected(request_id, rollout.share)
        if not chosen:
            return None
        if services.online is not None:
            services = replace(services, online=RecordedReads(services.online))
        return Plan(
            mode=rollout.mode,
            endpoint=endpoint,
            champion=champion,
            candidate=candidate,
            services=services,
            request_id=request_id,
            request_body=request_body,
        )

    def canary_answered(self, plan: Plan) -> None:
        self.stats.add(plan.champion.info.name, "canary_answered")

    def canary_failed(self, plan: Plan, exc: BaseException, latency_ms: float) -> None:
        """The candidate raised on a canary request (the champion answers it instead): log its
        attempt as a shadow record, and switch it off unless the request was at fault."""
        name = plan.champion.info.name
        self.stats.add(name, "canary_fallbacks")
        status, error = _outcome(exc)
        loaded = plan.candidate.loaded
        if not isinstance(exc, RequestError):
            self.champions.switch_off(
                name,
                loaded.info.version,
                f"raised on canary request {plan.request_id}: {error}",
            )
        self._log(
            shadow_record(
                plan.endpoint.use_case,
                plan.request_id,
                plan.request_body,
                loaded,
                CANDIDATE_ALIAS,
                None,
                status=status,
                error=error,
                latency_ms=latency_ms,
            ),
            name,
        )

    # -- shadow scoring --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the consumer of the shadow queue (called on the event loop, at start-up)."""
        if self._consumer is None:
            self._queue = asyncio.Queue()
            self._consumer = asyncio.get_running_loop().create_task(
                self._consume(), name="rollout-shadow-consumer"
            )

    async def score_in_shadow(self, job: ShadowJob) -> None:
        """Queue ``job`` for scoring, or skip it (counted) when over budget. Runs after the
        answer was sent (a background task of the response) and never waits for the scoring."""
        name = job.loaded.info.name
        if self._queue is None or self._closed:  # not started, or stopping
            self.stats.add(name, "shadow_skipped_queue_full")
            return
        ticket = self.budget.admit()
        if isinstance(ticket, str):
            self.stats.add(name, f"shadow_skipped_{ticket}")
            return
        self._queue.put_nowait((job, ticket))

    async def _consume(self) -> None:
        """Score the queued jobs one at a time, yielding to the loop between two."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            job, ticket = await self._queue.get()
            if job.endpoint.blocking:
                # A model that computes for a long time: on the worker thread, never the loop.
                await loop.run_in_executor(self._worker(), self._run, job, ticket)
            else:
                self._run(job, ticket)
            # Requests that arrived during the scoring are served before the next one.
            await asyncio.sleep(0)

    def _worker(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                # One thread: blocking shadow scorings never compete with each other.
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=SHADOW_THREAD
                )
            return self._executor

    def _run(self, job: ShadowJob, ticket: Ticket) -> None:
        """Score ``job`` and log it (on the loop, or the worker thread). Never raises."""
        cpu_started = time.thread_time()
        name = job.loaded.info.name
        try:
            started = time.perf_counter()
            prediction: Prediction | None = None
            status, error = 200, None
            try:
                prediction = job.endpoint.predict(job.loaded.model, job.body, job.services)
            except Exception as exc:
                status, error = _outcome(exc)
                if job.alias == CANDIDATE_ALIAS and not isinstance(exc, RequestError):
                    self.champions.switch_off(
                        name,
                        job.loaded.info.version,
                        f"raised on request {job.request_id} in shadow: {error}",
                    )
                elif not isinstance(exc, RequestError):
                    log.error(
                        "%s champion v%s raised scoring canary request %s in shadow: %s",
                        name,
                        job.loaded.info.version,
                        job.request_id,
                        error,
                    )
            latency_ms = (time.perf_counter() - started) * 1000.0
            self.stats.add(name, "shadow_scored" if status == 200 else "shadow_errors")
            record = shadow_record(
                job.endpoint.use_case,
                job.request_id,
                job.request_body,
                job.loaded,
                job.alias,
                prediction,
                status=status,
                error=error,
                latency_ms=latency_ms,
            )
            self._log(record, name)
        except Exception:  # the consumer must outlive any one scoring
            log.exception("shadow scoring of request %s failed", job.request_id)
        finally:
            self.budget.settle(ticket, time.thread_time() - cpu_started)

    def _log(self, record: dict[str, Any], name: str) -> None:
        def done(error: BaseException | None) -> None:
            if error is not None:
                self.stats.add(name, "log_failures")
                log.warning("a shadow record of %s was not logged: %r", name, error)

        try:
            self.request_log.append_nowait(record, done)
        except Exception as exc:  # a closed log, a record it refuses: counted, never raised
            done(exc)

    # -- reporting and stopping ------------------------------------------------------------------

    def counts(self, name: str) -> dict[str, int]:
        return self.stats.of(name)

    def readiness(self) -> dict[str, Any]:
        """The ``rollout`` detail of ``GET /ready``: each model whose rollout is not off (its
        state says whether the candidate serves, and why not), the counts, and the shadow
        queue's budget. Informational: a switched-off candidate never makes the API unready."""
        return {
            "models": {
                name: {**status.describe(), "counts": self.counts(name)}
                for name, status in self.champions.rollouts().items()
            },
            "shadow": {
                "pending": self.budget.pending,
                "max_pending": self.budget.max_pending,
                "cpu_share": self.budget.cpu_share,
            },
        }

    async def stop(self) -> None:
        """Stop scoring in shadow: the scoring in progress ends (and is logged), those waiting
        are dropped (counted as skipped). Call before closing the request log."""
        self._closed = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        while self._queue is not None and not self._queue.empty():
            job, ticket = self._queue.get_nowait()
            self.budget.cancel(ticket)
            self.stats.add(job.loaded.info.name, "shadow_skipped_queue_full")
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)


def _outcome(exc: BaseException) -> tuple[int, str]:
    """The status and error a failed scoring is logged with: a refusal of the request keeps its
    own (a 404 for an unknown card), anything else is a 500."""
    if isinstance(exc, RequestError):
        return exc.status, exc.message
    return 500, f"{type(exc).__name__}: {exc}"


def shadow_record(
    use_case: str,
    request_id: str,
    request_body: Any,
    loaded: LoadedModel,
    alias: str,
    prediction: Prediction | None,
    *,
    status: int,
    error: str | None,
    latency_ms: float,
) -> dict[str, Any]:
    """The request-log record of a prediction scored in shadow: the request's id and body, the
    version's own prediction, features and latency, no response (nothing was sent)."""
    features = prediction.features if prediction is not None else None
    return {
        "request_id": request_id,
        "ts": datetime.now(UTC).isoformat(),
        "use_case": use_case,
        "model_name": loaded.info.name,
        "model_version": loaded.info.version,
        "status": status,
        "latency_ms": latency_ms,
        "prediction": prediction.value if prediction is not None else None,
        "features_missing": sum(v is None for v in features.values()) if features else 0,
        "error": error,
        "request": request_body,
        "response": None,
        "features": features,
        "role": SHADOW_ROLE,
        "alias": alias,
    }
