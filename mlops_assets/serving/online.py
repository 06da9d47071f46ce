"""Online feature reads for the API: Feast's online store (SQLite locally, Redis on the stack).

Each value comes back with a status, because "this card was never seen" (``NOT_FOUND``), "its
latest snapshot is older than the view's TTL" (``OUTSIDE_MAX_AGE``) and "the feature is null"
(``NULL_VALUE``) call for different answers, and ``OnlineResponse.to_dict()`` turns all three into
None. Feast's own statuses cannot be taken as they are (seen with Feast 0.67):

* its Redis store reports a key that was never written as ``PRESENT`` with no value and no event
  timestamp (the SQLite store says ``NOT_FOUND``);
* neither store applies the view's TTL on read: a 40-day-old snapshot of a view with a 30-day TTL
  comes back ``PRESENT``.

So :class:`FeastOnlineReader` derives the status from the value and its event timestamp, with the
TTL of each view read from the registry, and the same request gets the same answer on both stores.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_assets.serving.endpoints import FeatureRow

if TYPE_CHECKING:
    from mlops_assets.core.feature_store import FeastFeatureStore

_STATUS_NAMES = {0: "INVALID", 1: "PRESENT", 2: "NULL_VALUE", 3: "NOT_FOUND", 4: "OUTSIDE_MAX_AGE"}


class FeastOnlineReader:
    """Reads one entity row's latest feature values through the project's Feast resource."""

    def __init__(self, feature_store: FeastFeatureStore) -> None:
        self._resource = feature_store
        self._ttl_s: dict[str, float | None] = {}

    def warm_up(self) -> None:
        """Build the Feast store and read the views' TTLs now, not on the first request."""
        for view in self._resource.get_store().list_feature_views(allow_cache=True):
            self._ttl_s[view.name] = _seconds(view.ttl)

    def ping(self) -> str | None:
        """None when the online store answers, else why not (for ``GET /ready``)."""
        config = self._resource.store_config
        try:
            if config.online_store == "redis":
                import redis

                redis.Redis.from_url(config.redis_url, socket_timeout=1).ping()
            self._resource.get_store().list_feature_views(allow_cache=True)
        except Exception as exc:  # readiness reports, it does not raise
            return f"{type(exc).__name__}: {exc}"
        return None

    def _ttl(self, view: str) -> float | None:
        if view not in self._ttl_s:
            fv = self._resource.get_store().get_feature_view(view, allow_registry_cache=True)
            self._ttl_s[view] = _seconds(fv.ttl)
        return self._ttl_s[view]

    def read(
        self, features: Sequence[str], entity: Mapping[str, Any], *, now: float | None = None
    ) -> FeatureRow:
        """The latest values of ``features`` (``"view:feature"``) for one entity row; ``now``
        (epoch seconds, default the clock) is what the TTL is measured against."""
        from feast.type_map import feast_value_type_to_python_type

        view_of = {ref.split(":", 1)[1]: ref.split(":", 1)[0] for ref in features}
        response = self._resource.get_store().get_online_features(
            features=list(features), entity_rows=[dict(entity)]
        )
        now = time.time() if now is None else now
        values: dict[str, Any] = {}
        status: dict[str, str] = {}
        proto = response.proto
        for name, result in zip(proto.metadata.feature_names.val, proto.results, strict=True):
            if name in entity:
                continue
            value = result.values[0]
            stamp = result.event_timestamps[0]
            written_at = stamp.seconds + stamp.nanos / 1e9
            has_value = value.WhichOneof("val") is not None
            code = _STATUS_NAMES.get(int(result.statuses[0]), "INVALID")
            if code == "PRESENT":
                ttl = self._ttl(view_of[name]) if name in view_of else None
                if not has_value and written_at == 0:
                    code = "NOT_FOUND"
                elif ttl and written_at < now - ttl:
                    code = "OUTSIDE_MAX_AGE"
                elif not has_value:
                    code = "NULL_VALUE"
            status[name] = code
            values[name] = feast_value_type_to_python_type(value) if code == "PRESENT" else None
        return FeatureRow(values=values, status=status)


def _seconds(ttl: Any) -> float | None:
    """A view's TTL in seconds; None for "no TTL" (Feast's 0 or None)."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds()
    return seconds if seconds > 0 else None
