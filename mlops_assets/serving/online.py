"""Online feature reads for the API: Feast's online store (SQLite locally, Redis on the stack).

Feast answers with a status per value; :class:`FeastOnlineReader` keeps it, because "this card was
never seen" (``NOT_FOUND``), "its latest snapshot is older than the view's TTL"
(``OUTSIDE_MAX_AGE``) and "the feature is null" (``NULL_VALUE``) call for different answers, and
``OnlineResponse.to_dict()`` turns all three into None.
"""

from __future__ import annotations

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

    def warm_up(self) -> None:
        """Build the Feast store and read its registry now, not on the first request."""
        store = self._resource.get_store()
        store.list_feature_views(allow_cache=True)

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

    def read(self, features: Sequence[str], entity: Mapping[str, Any]) -> FeatureRow:
        from feast.type_map import feast_value_type_to_python_type

        response = self._resource.get_store().get_online_features(
            features=list(features), entity_rows=[dict(entity)]
        )
        proto = response.proto
        values: dict[str, Any] = {}
        status: dict[str, str] = {}
        for name, result in zip(proto.metadata.feature_names.val, proto.results, strict=True):
            if name in entity:
                continue
            code = _STATUS_NAMES.get(int(result.statuses[0]), "INVALID")
            status[name] = code
            values[name] = (
                feast_value_type_to_python_type(result.values[0]) if code == "PRESENT" else None
            )
        return FeatureRow(values=values, status=status)
