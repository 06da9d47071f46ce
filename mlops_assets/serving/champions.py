"""The models the API serves: each endpoint's champion, loaded by alias and swapped when it moves.

The registry is the source of truth. :meth:`Champions.refresh` resolves ``<name>@champion`` to a
version and, when the version differs from the one loaded, loads that version (by number, so a
move in between cannot mix two versions), runs the endpoint's ``prepare``, and only then swaps it
in with one reference assignment. A request holds the :class:`LoadedModel` it started with, so
requests in flight finish on the old version and none is dropped or fails during a swap. A version
that fails to load or prepare is reported and the previous one keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_assets.serving.endpoints import SERVED_ALIAS, Endpoint, ModelInfo

if TYPE_CHECKING:
    from mlops_assets.core.tracking import MlflowTracking

log = logging.getLogger(__name__)

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

    # -- reading (any thread, lock-free) -------------------------------------------------------

    def get(self, name: str) -> LoadedModel | None:
        return self._state.models.get(name)

    def names(self, use_case: str) -> list[str]:
        """The registered model names of ``use_case`` known at the last refresh."""
        return list(self._state.known.get(use_case, []))

    def error(self, name: str) -> str | None:
        return self._state.errors.get(name)

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
                    out.append(entry)
                else:
                    out.append(
                        {
                            "use_case": use_case,
                            "model_name": name,
                            "version": None,
                            "alias": self._alias,
                            "status": "no champion loaded",
                            "last_error": state.errors.get(name),
                            "input_schema": endpoint.request.model_json_schema(),
                        }
                    )
        return out

    # -- refreshing ----------------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Load every champion whose alias points at a version other than the loaded one.

        Returns one line per change (``"fraud_classifier: v3 -> v4"``). Errors are kept per model
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


def _v(loaded: LoadedModel | None) -> str:
    return f"v{loaded.info.version}" if loaded is not None else "none"


def _signature_of(model: Any) -> dict[str, Any] | None:
    """The MLflow signature of a pyfunc model, as a dict (other flavors do not carry it)."""
    metadata = getattr(model, "metadata", None)
    signature = getattr(metadata, "signature", None)
    return signature.to_dict() if signature is not None else None
