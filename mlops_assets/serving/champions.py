"""The models the API serves: each endpoint's champion, loaded by alias and swapped when it moves.

The registry is the source of truth. :meth:`Champions.refresh` resolves ``<name>@champion`` to a
version and, when the version differs from the one loaded, loads that version (by number, so a
move in between cannot mix two versions), runs the endpoint's ``prepare``, and only then swaps it
in with one reference assignment. A request holds the :class:`LoadedModel` it started with, so
requests in flight finish on the old version and none is dropped or fails during a swap. A version
that fails to load or prepare is reported and the previous one keeps serving.

The same poll follows each model's rollout (:mod:`mlops_assets.core.rollout`): the ``rollout.*``
tags of the registered model and its ``candidate`` alias. While the mode is active and the
candidate is another version than the champion, that version is loaded like a champion (by number,
through the endpoint's ``prepare``) and kept beside it (:meth:`Champions.candidate`). A candidate
that fails to load, or that raises when it scores (:meth:`Champions.switch_off`), is switched off
for that version and that setting: it is not tried again until the ``candidate`` alias moves or
the rollout tags change, and the champion serves alone meanwhile. Each model's rollout, as
followed, is :meth:`Champions.rollout_status`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_assets.core.rollout import Rollout, RolloutError, rollout_from_tags
from mlops_assets.serving.endpoints import SERVED_ALIAS, Endpoint, ModelInfo

if TYPE_CHECKING:
    from mlops_assets.core.tracking import MlflowTracking

log = logging.getLogger(__name__)

# The alias of the version being rolled out (DESIGN section 5: the latest trained).
CANDIDATE_ALIAS = "candidate"

# The longest wait before a version that failed to load is tried again.
MAX_BACKOFF_S = 300.0

# Run tags that tell where a model came from (core/tracking.py writes them).
_LINEAGE_PREFIXES = ("dagster.", "training_set.", "mlops.")


@dataclass(frozen=True)
class LoadedModel:
    """One served model version, ready to predict."""

    endpoint: Endpoint
    info: ModelInfo
    model: Any
    loaded_at: datetime
    load_seconds: float
    signature: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` shows of it."""
        tags = self.info.run_tags
        lineage = {k: v for k, v in sorted(tags.items()) if k.startswith(_LINEAGE_PREFIXES)}
        data_versions = {
            k.removeprefix("dagster.input.").removesuffix(".data_version"): v
            for k, v in lineage.items()
            if k.startswith("dagster.input.") and k.endswith(".data_version")
        }
        if "training_set.data_version" in tags:
            data_versions["training_set"] = tags["training_set.data_version"]
        return {
            "use_case": self.endpoint.use_case,
            "model_name": self.info.name,
            "version": self.info.version,
            "alias": SERVED_ALIAS,
            "run_id": self.info.run_id,
            "loaded_at": self.loaded_at.isoformat(),
            "load_seconds": round(self.load_seconds, 3),
            "training_data_versions": data_versions,
            "lineage": lineage,
            "input_schema": self.endpoint.request.model_json_schema(),
            "signature": self.signature,
            "notes": getattr(self.model, "scorer_note", None),
        }


@dataclass(frozen=True)
class Candidate:
    """The candidate of one registered model while its rollout is active: the loaded version and
    the setting it serves under (mode and share)."""

    loaded: LoadedModel
    rollout: Rollout


@dataclass(frozen=True)
class RolloutStatus:
    """A registered model's rollout as the API follows it: the setting read from the registry,
    the candidate version, and ``state``, with ``reason`` saying why:

    * ``off``: the mode is ``off`` (or the share 0): the champion serves alone;
    * ``no candidate``: the mode is active but no version has the ``candidate`` alias;
    * ``idle``: the candidate is the champion itself (just promoted): nothing to compare;
    * ``active``: the candidate is loaded and sees its share of requests or entities;
    * ``switched off``: the candidate failed to load or raised when scoring; the champion serves
      alone until the alias moves or the setting changes;
    * ``invalid``: the rollout tags do not make a setting (a hand-edited tag);
    * ``unknown``: the registry has not answered yet.

    ``last_error``: the last registry look-up that failed (the previous state holds meanwhile).
    """

    state: str = "off"
    rollout: Rollout | None = field(default_factory=Rollout)  # None: no setting could be read
    candidate_version: str | None = None
    reason: str = ""
    last_error: str | None = None

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` and ``GET /ready`` show of it."""
        rollout = self.rollout
        return {
            "mode": rollout.mode if rollout else None,
            "share": rollout.share if rollout else None,
            "candidate_version": self.candidate_version,
            "state": self.state,
            "reason": self.reason,
            "updated_at": (rollout.updated_at or None) if rollout else None,
            "setting_reason": (rollout.reason or None) if rollout else None,
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class _SwitchedOff:
    """A candidate version switched off under one setting, and why."""

    version: str
    rollout: Rollout
    reason: str


@dataclass
class _State:
    models: dict[str, LoadedModel] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    known: dict[str, list[str]] = field(default_factory=dict)  # use case -> registered names


class Champions:
    """The champion of every endpoint, kept current by polling the registry."""

    def __init__(
        self,
        tracking: MlflowTracking,
        endpoints: Mapping[str, Endpoint],
        *,
        poll_s: float = 10.0,
        alias: str = SERVED_ALIAS,
    ) -> None:
        self._tracking = tracking
        self._endpoints = dict(endpoints)
        self._poll_s = poll_s
        self._alias = alias
        self._state = _State()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # (name, version) -> (failed attempts, monotonic time of the next attempt)
        self._backoff: dict[tuple[str, str], tuple[int, float]] = {}
        self.swaps = 0
        # The rollouts: replaced whole (copy on write) under _rollout_lock, read without a lock.
        # Not the refresh lock: a request that switches a candidate off must not wait for a poll
        # that is loading a model.
        self._rollout_lock = threading.Lock()
        self._candidates: dict[str, Candidate] = {}
        self._rollouts: dict[str, RolloutStatus] = {}
        self._switched_off: dict[str, _SwitchedOff] = {}

    # -- reading (any thread, lock-free) -------------------------------------------------------

    def get(self, name: str) -> LoadedModel | None:
        return self._state.models.get(name)

    def names(self, use_case: str) -> list[str]:
        """The registered model names of ``use_case`` known at the last refresh."""
        return list(self._state.known.get(use_case, []))

    def error(self, name: str) -> str | None:
        return self._state.errors.get(name)

    def candidate(self, name: str) -> Candidate | None:
        """The candidate of model ``name`` while its rollout is active and it serves; None when
        the champion serves alone."""
        return self._candidates.get(name)

    def rollout_status(self, name: str) -> RolloutStatus:
        """The rollout of model ``name`` as followed (``off`` before the first poll read it)."""
        return self._rollouts.get(name) or RolloutStatus("off", Rollout(), None, "no rollout set")

    def rollouts(self) -> dict[str, RolloutStatus]:
        """The rollout of every served model whose mode is not ``off``, by model name."""
        return {
            name: status
            for name, status in sorted(self._rollouts.items())
            if status.rollout is None or status.rollout.active
        }

    def switch_off(self, name: str, version: str, reason: str) -> bool:
        """Stop serving candidate ``version`` of ``name`` (it raised when scoring): the champion
        serves alone until the ``candidate`` alias moves or the rollout tags change.

        True when this call switched it off (it logs why, once); False when it was no longer the
        candidate (already switched off, or replaced by a poll).
        """
        with self._rollout_lock:
            current = self._candidates.get(name)
            if current is None or current.loaded.info.version != str(version):
                return False
            self._candidates = {k: v for k, v in self._candidates.items() if k != name}
            self._switched_off = {
                **self._switched_off,
                name: _SwitchedOff(str(version), current.rollout, reason),
            }
            self._set_rollout(
                name,
                RolloutStatus("switched off", current.rollout, str(version), reason),
            )
        log.error(
            "%s: candidate v%s switched off: %s; the champion serves alone until the candidate "
            "alias moves or the rollout setting changes",
            name,
            version,
            reason,
        )
        return True

    def missing(self) -> dict[str, str]:
        """Each served model without a loaded champion, with why (what ``GET /ready`` reports)."""
        state = self._state
        return {
            name: state.errors.get(name) or "not loaded"
            for use_case, endpoint in self._endpoints.items()
            for name in state.known.get(use_case) or [endpoint.model_name]
            if name not in state.models
        }

    def describe(self) -> list[dict[str, Any]]:
        state = self._state
        out: list[dict[str, Any]] = []
        for use_case, endpoint in self._endpoints.items():
            names = state.known.get(use_case) or [endpoint.model_name]
            for name in names:
                loaded = state.models.get(name)
                if loaded is not None:
                    entry = loaded.describe()
                    if name in state.errors:
                        entry["last_error"] = state.errors[name]
                else:
                    entry = {
                        "use_case": use_case,
                        "model_name": name,
                        "version": None,
                        "alias": self._alias,
                        "status": "no champion loaded",
                        "last_error": state.errors.get(name),
                        "input_schema": endpoint.request.model_json_schema(),
                    }
                entry["rollout"] = self.rollout_status(name).describe()
                out.append(entry)
        return out

    # -- refreshing ----------------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Load every champion whose alias points at a version other than the loaded one.

        Also follows each model's rollout (:meth:`_refresh_rollout`).

        Returns one line per change (``"fraud_classifier: v3 -> v4"``, ``"fraud_classifier:
        candidate v5 in shadow at share 1"``). Errors are kept per model
        (``error(name)``) and never raised: a registry hiccup must not stop the server.
        """
        with self._refresh_lock:
            changes: list[str] = []
            known: dict[str, list[str]] = {}
            for use_case, endpoint in self._endpoints.items():
                try:
                    names = (
                        endpoint.model_names(self._tracking)
                        if endpoint.model_names is not None
                        else [endpoint.model_name]
                    )
                except Exception as exc:
                    names = self._state.known.get(use_case, [])
                    self._set_error(endpoint.model_name, f"listing models failed: {exc}")
                else:
                    if endpoint.model_names is not None:  # the listing's error is over
                        self._clear_error(endpoint.model_name)
                known[use_case] = sorted(names)
                for name in names:
                    change = self._refresh_one(endpoint, name)
                    if change:
                        changes.append(change)
                    change = self._refresh_rollout(endpoint, name)
                    if change:
                        changes.append(change)
            self._state.known = known
            return changes

    def _refresh_one(self, endpoint: Endpoint, name: str) -> str | None:
        current = self._state.models.get(name)
        try:
            version = self._tracking.get_version_by_alias(name, self._alias)
        except Exception as exc:
            self._set_error(name, f"registry look-up failed: {exc}")
            return None
        if version is None:
            if current is None:
                self._set_error(name, f"no version has the alias {self._alias!r} yet")
            return None
        if current is not None and current.info.version == str(version.version):
            self._clear_error(name)
            return None
        key = (name, str(version.version))
        attempts, next_try = self._backoff.get(key, (0, 0.0))
        if time.monotonic() < next_try:
            return None
        try:
            loaded = self._load(endpoint, name, version)
        except Exception as exc:
            # A version that cannot be loaded is retried (the cause may be passing: a storage
            # hiccup), but ever less often: doubling from one poll period up to MAX_BACKOFF_S.
            delay = min(self._poll_s * 2**attempts, MAX_BACKOFF_S)
            self._backoff[key] = (attempts + 1, time.monotonic() + delay)
            message = f"v{version.version} could not be loaded: {type(exc).__name__}: {exc}"
            log.error(
                "%s: %s; still serving %s; next attempt in %.0f s",
                name,
                message,
                _v(current),
                delay,
            )
            self._set_error(name, message)
            return None
        self._backoff.pop(key, None)
        self._state.models = {**self._state.models, name: loaded}
        self._clear_error(name)
        self.swaps += current is not None
        change = f"{name}: {_v(current)} -> v{loaded.info.version}"
        log.info("champion %s (loaded in %.2f s)", change, loaded.load_seconds)
        return change

    # -- the rollout ---------------------------------------------------------------------------

    def _refresh_rollout(self, endpoint: Endpoint, name: str) -> str | None:
        """Follow the rollout tags and the ``candidate`` alias of ``name``: load, keep, switch or
        drop its candidate. Returns a line when a candidate starts serving, or serves under a
        new setting."""
        previous = self._rollouts.get(name)
        try:
            registered = self._tracking.client.get_registered_model(name)
        except Exception as exc:
            if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
                self._drop_candidate(name, RolloutStatus(reason=f"{name} is not registered"))
                return None
            # A registry hiccup changes nothing: the candidate (if any) keeps its share.
            message = f"registry look-up failed: {type(exc).__name__}: {exc}"
            if previous is None or previous.last_error != message:
                log.warning("%s: reading the rollout failed: %s", name, message)
            base = previous or RolloutStatus(
                "unknown", None, reason="the registry has not answered"
            )
            with self._rollout_lock:
                self._set_rollout(name, replace(base, last_error=message))
            return None
        tags = dict(getattr(registered, "tags", None) or {})
        aliases = {k: str(v) for k, v in dict(getattr(registered, "aliases", None) or {}).items()}
        try:
            rollout = rollout_from_tags(tags)
        except RolloutError as exc:
            status = RolloutStatus("invalid", None, aliases.get(CANDIDATE_ALIAS), str(exc))
            if previous is None or previous.reason != status.reason:
                log.error("%s: rollout tags ignored, the champion serves alone: %s", name, exc)
            self._drop_candidate(name, status)
            return None
        version = aliases.get(CANDIDATE_ALIAS)
        champion = self._state.models.get(name)
        if not rollout.active:
            self._drop_candidate(
                name,
                RolloutStatus(
                    "off",
                    rollout,
                    version,
                    "the champion serves alone"
                    + (f" ({rollout.mode} at share 0)" if rollout.mode != "off" else ""),
                ),
            )
            return None
        if version is None:
            self._drop_candidate(
                name,
                RolloutStatus(
                    "no candidate",
                    rollout,
                    None,
                    f"no version has the alias {CANDIDATE_ALIAS!r}: the champion serves alone",
                ),
            )
            return None
        if champion is not None and champion.info.version == version:
            self._drop_candidate(
                name,
                RolloutStatus(
                    "idle", rollout, version, f"v{version} is the champion: nothing to compare"
                ),
            )
            return None
        off = self._switched_off.get(name)
        if off is not None and off.version == version and off.rollout == rollout:
            with self._rollout_lock:
                self._candidates = {k: v for k, v in self._candidates.items() if k != name}
                self._set_rollout(name, RolloutStatus("switched off", rollout, version, off.reason))
            return None
        current = self._candidates.get(name)
        if current is not None and current.loaded.info.version == version:
            if current.rollout == rollout:
                return None
            with self._rollout_lock:
                if self._candidates.get(name) is not current:  # switched off meanwhile
                    return None
                self._candidates = {**self._candidates, name: Candidate(current.loaded, rollout)}
                self._set_rollout(name, _active(rollout, version))
            change = f"{name}: candidate v{version} in {rollout.mode} at share {rollout.share:g}"
            log.info("%s (the loaded candidate, under a new setting)", change)
            return change
        try:
            found = self._tracking.client.get_model_version(name, version)
            loaded = self._load(endpoint, name, found)
        except Exception as exc:
            reason = f"v{version} could not be loaded: {type(exc).__name__}: {exc}"
            with self._rollout_lock:
                self._candidates = {k: v for k, v in self._candidates.items() if k != name}
                self._switched_off = {
                    **self._switched_off,
                    name: _SwitchedOff(version, rollout, reason),
                }
                self._set_rollout(name, RolloutStatus("switched off", rollout, version, reason))
            log.error(
                "%s: candidate %s; switched off until the candidate alias moves or the rollout "
                "setting changes; the champion serves alone",
                name,
                reason,
            )
            return None
        with self._rollout_lock:
            self._candidates = {**self._candidates, name: Candidate(loaded, rollout)}
            self._switched_off = {k: v for k, v in self._switched_off.items() if k != name}
            self._set_rollout(name, _active(rollout, version))
        change = f"{name}: candidate v{version} in {rollout.mode} at share {rollout.share:g}"
        log.info("%s (loaded in %.2f s)", change, loaded.load_seconds)
        return change

    def _drop_candidate(self, name: str, status: RolloutStatus) -> None:
        """No candidate serves for ``name`` (the mode is off, the alias is gone, it is the
        champion): release it, and forget a switch-off (a later setting re-arms the candidate)."""
        with self._rollout_lock:
            dropped = self._candidates.get(name)
            if dropped is not None:
                self._candidates = {k: v for k, v in self._candidates.items() if k != name}
            if name in self._switched_off:
                self._switched_off = {k: v for k, v in self._switched_off.items() if k != name}
            self._set_rollout(name, status)
        if dropped is not None:
            log.info(
                "%s: candidate v%s no longer served (%s)",
                name,
                dropped.loaded.info.version,
                status.reason,
            )

    def _set_rollout(self, name: str, status: RolloutStatus) -> None:
        # Callers hold _rollout_lock.
        self._rollouts = {**self._rollouts, name: status}

    def _load(self, endpoint: Endpoint, name: str, version: Any) -> LoadedModel:
        started = time.perf_counter()
        client = self._tracking.client
        run_tags: dict[str, str] = {}
        if version.run_id:
            run_tags = dict(client.get_run(version.run_id).data.tags)
        info = ModelInfo(
            name=name,
            version=str(version.version),
            run_id=version.run_id,
            version_tags=dict(version.tags or {}),
            run_tags=run_tags,
        )
        raw = self._tracking.load_model_version(name, info.version, flavor=endpoint.flavor)
        model = endpoint.prepare(raw, info) if endpoint.prepare is not None else raw
        return LoadedModel(
            endpoint=endpoint,
            info=info,
            model=model,
            loaded_at=datetime.now(UTC),
            load_seconds=time.perf_counter() - started,
            signature=_signature_of(raw),
        )

    def _set_error(self, name: str, message: str) -> None:
        self._state.errors = {**self._state.errors, name: message}

    def _clear_error(self, name: str) -> None:
        if name in self._state.errors:
            self._state.errors = {k: v for k, v in self._state.errors.items() if k != name}

    # -- polling -------------------------------------------------------------------------------

    def start_polling(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="champion-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.refresh()
            except Exception:  # the poller must outlive any one failure
                log.exception("refreshing the champions failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def _active(rollout: Rollout, version: str) -> RolloutStatus:
    what = "requests" if rollout.mode == "shadow" else "entities"
    verb = "scored in shadow" if rollout.mode == "shadow" else "answered by it"
    return RolloutStatus(
        "active",
        rollout,
        version,
        f"v{version} in {rollout.mode}: {rollout.share:.0%} of {what} {verb}",
    )


def _v(loaded: LoadedModel | None) -> str:
    return f"v{loaded.info.version}" if loaded is not None else "none"


def _signature_of(model: Any) -> dict[str, Any] | None:
    """The MLflow signature of a pyfunc model, as a dict (other flavors do not carry it)."""
    metadata = getattr(model, "metadata", None)
    signature = getattr(metadata, "signature", None)
    return signature.to_dict() if signature is not None else None
