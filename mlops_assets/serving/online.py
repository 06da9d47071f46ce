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

The TTL is measured as Feast measures it for an entity row: back from the time the features must
describe (``as_of``, a fraud request's ``event_ts``), not from the wall clock, and a value written
after that time is not used either (``AFTER_AS_OF``: it would leak the future into the answer).

An online store that does not answer is an :class:`OnlineStoreUnavailable` (a fast 503 with
``Retry-After``), not a slow 500: the serving client of Redis gets short connect and read timeouts
and one immediate retry (a pooled connection that died with a restarted server), instead of
redis-py's three retries with exponential backoff (7 s per request while Redis is down). The
connection pool reconnects by itself, so the API recovers when Redis returns, without a restart.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_assets.serving.endpoints import FeatureRow, OnlineStoreUnavailable

if TYPE_CHECKING:
    from mlops_assets.core.feature_store import FeastFeatureStore

log = logging.getLogger(__name__)

# A read of both fraud views takes ~0.3 ms on Redis: half a second is a dead or hung server, and a
# request waits at most twice that (one retry) before its 503.
READ_TIMEOUT_S = 0.5
# What a 503 tells the client to wait before retrying (the Retry-After header, in seconds).
RETRY_AFTER_S = 1


class FeastOnlineReader:
    """Reads one entity row's latest feature values through the project's Feast resource.

    Reads go through Feast's provider (``Provider.online_read``, one call per feature view),
    not ``FeatureStore.get_online_features``: the same store and key layout, without the response
    assembly that took ~0.8 ms of Python per request (the provider's read of both fraud views
    takes ~0.3 ms on Redis), most of the API's latency budget.

    On Redis, the views of one read go in one round trip: Feast's own Redis store builds the keys
    and hash fields (its key layout, cached per view) and parses the answer, but the ``HMGET`` of
    every view is sent at once on one connection of Feast's client (:func:`_hmget_all`), where
    ``Provider.online_read`` sends one per view. Values
    of the scalar types are taken from their protobuf directly (Feast's conversion of every type
    cost ~0.15 ms a request).
    """

    def __init__(
        self, feature_store: FeastFeatureStore, *, timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        self._resource = feature_store
        self._views: dict[str, Any] = {}
        self._provider: Any = None
        self._timeout_s = timeout_s
        # Feast's Redis store when its batch read is usable (None: one provider read per view).
        self._redis: Any = None
        # Per list of references: the features of each view, in order.
        self._by_view: dict[tuple[str, ...], dict[str, list[str]]] = {}
        # Per (view, features): Feast's feature names with the timestamp field, its hash fields.
        self._redis_fields: dict[tuple[str, tuple[str, ...]], tuple[str, list, list]] = {}
        # Feast's redis-py client, when its HMGETs can be sent on one of its connections.
        self._redis_client: Any = None

    def warm_up(self) -> None:
        """Build the Feast store and provider and read the views now, not on the first request."""
        from feast.infra.provider import get_provider

        store = self._resource.get_store()
        provider = get_provider(store.config)
        client = self._bound_redis_client(provider, store.config)
        self._redis = _redis_batch_store(provider, store.config)
        self._redis_client = _direct_redis_client(client, store.config)
        self._provider = provider
        for view in store.list_feature_views(allow_cache=True):
            self._views[view.name] = view

    def _bound_redis_client(self, provider: Any, config: Any) -> Any:
        """Give the serving Redis client bounded timeouts and a single immediate retry; the
        client (None when the store is not Redis or its client cannot be reached).

        Done on this process's client only: the connection string stays the profile's, because
        materialization writes big batches through it and must not time out after half a second.
        """
        if getattr(config.online_store, "type", None) != "redis":
            return None
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            # Feast's RedisOnlineStore keeps one client per process (created on first use).
            client = provider.online_store._get_client(config.online_store)
            kwargs = client.connection_pool.connection_kwargs
        except AttributeError as exc:  # another Feast layout: reads keep redis-py's defaults
            log.warning("cannot bound the online store's Redis timeouts: %s", exc)
            return None
        kwargs["socket_connect_timeout"] = self._timeout_s
        kwargs["socket_timeout"] = self._timeout_s
        client.set_retry(Retry(NoBackoff(), 1))
        # Connections opened before (none, normally) keep their old timeouts: drop them.
        client.connection_pool.disconnect()
        return client

    def ping(self) -> str | None:
        """None when the online store answers, else why not (for ``GET /ready``)."""
        config = self._resource.store_config
        try:
            if config.online_store == "redis":
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                # No retries with backoff: /ready must answer fast while Redis is down.
                redis.Redis.from_url(
                    config.redis_url,
                    socket_timeout=1,
                    socket_connect_timeout=1,
                    retry=Retry(NoBackoff(), 0),
                ).ping()
            self._resource.get_store().list_feature_views(allow_cache=True)
        except Exception as exc:  # readiness reports, it does not raise
            return f"{type(exc).__name__}: {exc}"
        return None

    def _view(self, name: str) -> Any:
        view = self._views.get(name)
        if view is None:
            view = self._resource.get_store().get_feature_view(name, allow_registry_cache=True)
            self._views[name] = view
        return view

    def read(
        self, features: Sequence[str], entity: Mapping[str, Any], *, as_of: float | None = None
    ) -> FeatureRow:
        """The latest values of ``features`` (``"view:feature"``) for one entity row, as of
        ``as_of`` (epoch seconds; default the clock, with no check for values from the future).

        Raises :class:`OnlineStoreUnavailable` when the online store does not answer.
        """
        try:
            return self._read(features, entity, as_of)
        except Exception as exc:
            if not _is_outage(exc):
                raise
            log.warning("online store read failed: %s: %s", type(exc).__name__, exc)
            raise OnlineStoreUnavailable(
                f"the online feature store does not answer ({type(exc).__name__}: {exc}); "
                f"retry in {RETRY_AFTER_S} s",
                retry_after_s=RETRY_AFTER_S,
            ) from None

    def _read(
        self, features: Sequence[str], entity: Mapping[str, Any], as_of: float | None
    ) -> FeatureRow:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import feast_value_type_to_python_type

        if self._provider is None:
            self.warm_up()
        now = time.time() if as_of is None else as_of
        refs = tuple(features)
        by_view = self._by_view.get(refs)
        if by_view is None:  # the same few lists of references, request after request
            by_view = {}
            for ref in refs:
                view_name, _, feature = ref.partition(":")
                by_view.setdefault(view_name, []).append(feature)
            self._by_view[refs] = by_view
        config = self._resource.get_store().config
        values: dict[str, Any] = {}
        status: dict[str, str] = {}
        views = [(self._view(view_name), names) for view_name, names in by_view.items()]
        keys = [_entity_key(EntityKey, view, entity) for view, _ in views]
        if self._redis is not None:
            answers = self._redis_read(config, views, keys)
        else:
            answers = []
            for (view, names), key in zip(views, keys, strict=True):
                # A copy: Feast's Redis store appends its timestamp field to the list it is given.
                ((written, protos),) = self._provider.online_read(
                    config=config, table=view, entity_keys=[key], requested_features=list(names)
                )
                answers.append((written, protos))
        for (view, names), (written, protos) in zip(views, answers, strict=True):
            protos = protos or {}
            # Feast's Redis store answers a key never written with the epoch and no values.
            never_written = written is not None and written.timestamp() == 0
            if never_written and not any(p.WhichOneof("val") for p in protos.values() if p):
                written = None
            at = None if written is None else written.timestamp()
            ttl = _seconds(view.ttl)
            # The row's time decides for every feature of the view; only a null is per feature.
            if at is None:
                unusable = "NOT_FOUND"
            elif as_of is not None and at > as_of:
                unusable = "AFTER_AS_OF"
            elif ttl and at < now - ttl:
                unusable = "OUTSIDE_MAX_AGE"
            else:
                unusable = None
            if unusable is not None:
                for name in names:
                    status[name] = unusable
                    values[name] = None
                continue
            for name in names:
                proto = protos.get(name)
                kind = None if proto is None else proto.WhichOneof("val")
                if kind is None:
                    status[name] = "NULL_VALUE"
                    values[name] = None
                    continue
                status[name] = "PRESENT"
                if kind in _SCALAR_KINDS:  # what Feast's conversion returns for these
                    values[name] = getattr(proto, kind)
                else:
                    values[name] = feast_value_type_to_python_type(proto)
        return FeatureRow(values=values, status=status)

    def _redis_read(
        self, config: Any, views: list[tuple[Any, list[str]]], keys: list[Any]
    ) -> list[tuple[Any, Any]]:
        """Every view's row of one entity in one Redis pipeline, through Feast's Redis store:
        ``[(written, {feature: ValueProto})]`` per view, as ``online_read`` gives them."""
        store = self._redis
        commands, layouts = [], []
        for (view, names), key in zip(views, keys, strict=True):
            cached = self._redis_fields.get((view.name, tuple(names)))
            if cached is None:
                from feast.infra.online_stores.redis import _versioned_fv_name

                view_name = _versioned_fv_name(view, config)
                # Feast's names (with its timestamp field appended) and hashed field names.
                requested, fields = store._generate_hset_keys_for_features(
                    view, list(names), fv_name_override=view_name
                )
                cached = (view_name, requested, fields)
                self._redis_fields[(view.name, tuple(names))] = cached
            view_name, requested, fields = cached
            (redis_key,) = store._generate_redis_keys_for_entities(config, [key])
            commands.append((redis_key, fields))
            layouts.append((view_name, requested))
        if self._redis_client is not None:
            replies = _hmget_all(self._redis_client, commands)
        else:
            replies = store._read_hash_fields(config, commands)
        return [
            store._get_features_for_entity(reply, view_name, requested)
            for reply, (view_name, requested) in zip(replies, layouts, strict=True)
        ]


# Value kinds Feast's feast_value_type_to_python_type returns unchanged (without a type hint).
_SCALAR_KINDS = frozenset(
    {"double_val", "float_val", "int64_val", "int32_val", "bool_val", "string_val", "bytes_val"}
)


def _entity_key(entity_key_type: Any, view: Any, entity: Mapping[str, Any]) -> Any:
    """Feast's ``EntityKey`` of ``entity`` for ``view`` (its join keys, typed as the view says)."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    columns = view.entity_columns
    values = []
    for column in columns:
        value, value_type = entity[column.name], column.dtype.to_value_type()
        if type(value) is int and value_type == ValueType.INT64:
            # What python_values_to_proto_values gives for a Python int, without its checks.
            values.append(Value(int64_val=value))
        else:
            values.append(python_values_to_proto_values([value], value_type)[0])
    return entity_key_type(join_keys=[c.name for c in columns], entity_values=values)


def _direct_redis_client(client: Any, config: Any) -> Any:
    """``client`` when :func:`_hmget_all` may read through it, else None.

    Only redis-py's plain ``Redis`` (one server, or a Sentinel's master), whose every connection
    reaches the server each key lives on (a cluster's client routes by key), and only while
    Feast reads through it: with ``client: glide`` Feast sends its reads through GLIDE, and its
    redis-py client is there for other calls.
    """
    if client is None or getattr(config.online_store, "client", "redis") != "redis":
        return None
    import redis

    return client if type(client) is redis.Redis else None


def _hmget_all(client: Any, commands: list[tuple[bytes, list]]) -> list[Any]:
    """One ``HMGET`` per ``(key, fields)``, sent together on one of ``client``'s pooled
    connections and read back in order: the bytes redis-py's pipeline sends, without its command
    stack, response callbacks and metrics (0.02-0.03 ms of CPU a request, measured with
    ``bench/serving_cpu.py``). A broken connection is retried as the pipeline retries it (the
    client's ``retry``, reconnecting); an error reply raises ``ResponseError``.
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        packed = connection.pack_commands([("HMGET", key, *fields) for key, fields in commands])

        def send_and_read() -> list[Any]:
            connection.send_packed_command(packed)
            return [connection.read_response() for _ in commands]

        return connection.retry.call_with_retry(
            send_and_read, lambda _error: connection.disconnect()
        )
    except BaseException:
        # An error reply or a failure halfway leaves answers unread on the connection: it must
        # not serve the next read.
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def _redis_batch_store(provider: Any, config: Any) -> Any:
    """Feast's Redis online store when it has the methods :meth:`FeastOnlineReader._redis_read`
    uses (Feast 0.67's), else None: reads then go through the provider, one per view."""
    if getattr(config.online_store, "type", None) != "redis":
        return None
    store = getattr(provider, "online_store", None)
    needed = (
        "_generate_hset_keys_for_features",
        "_generate_redis_keys_for_entities",
        "_read_hash_fields",
        "_get_features_for_entity",
    )
    if store is None or not all(callable(getattr(store, n, None)) for n in needed):
        log.warning("Feast's Redis store has another layout: one online read per view")
        return None
    return store


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is down or unreachable (not that the code is wrong)."""
    if isinstance(exc, OSError | TimeoutError | sqlite3.OperationalError):
        return True
    # redis-py's ConnectionError and TimeoutError derive from RedisError, not from OSError.
    return type(exc).__module__.startswith("redis.") and type(exc).__name__ in (
        "ConnectionError",
        "TimeoutError",
        "BusyLoadingError",
        "MaxConnectionsError",
    )


def _seconds(ttl: Any) -> float | None:
    """A view's TTL in seconds; None for "no TTL" (Feast's 0 or None)."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds()
    return seconds if seconds > 0 else None
