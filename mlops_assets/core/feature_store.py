"""The Feast resource: the feature registry, the online store and materialization into it.

Feature definitions live in ``feature_repo/`` (one module per use case: ``feature_repo/fraud.py``
holds the fraud entities and feature views). This resource turns the active profile into a Feast
``RepoConfig`` (file registry + SQLite online store locally; SQL registry on PostgreSQL + Redis in
the stack; offline parquet on disk or S3 following ``data_root``), and offers what the assets and
the serving app need:

* ``apply``: register the definitions of the repo (all, or one use case) in the registry;
* ``materialize`` / ``materialize_incremental``: load the latest values of a time window from the
  offline parquet into the online store;
* ``get_online_features``: the latest values per entity key, for online prediction;
* ``feature_view_metadata``: entity join keys, timestamp field, source path, TTL and feature
  dtypes of a feature view, which the point-in-time engine (``core/pit.py``) joins by. It needs
  neither the online store nor the registry.

``import feast`` costs ~10 s here, so this module imports Feast (and pandas) only inside functions:
the code location imports it at load time.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlparse

import dagster as dg
from pydantic import Field, PrivateAttr

from mlops_assets.core.profiles import (
    ENV_VARS,
    ProfileError,
    Settings,
    load_settings,
    redact_url,
)
from mlops_assets.core.storage import file_lock

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.infra.offline_stores.file_source import FileSource
    from feast.repo_config import RepoConfig

    from mlops_assets.core.online_writes import ViewMaterialization

REDIS_URL_ENV = ENV_VARS["redis_url"]
REGISTRY_ENV = ENV_VARS["feast_registry"]
REPO_ENV = ENV_VARS["feast_repo_path"]

# Seconds to wait for Redis / PostgreSQL to accept a connection. Without a bound a stopped
# server makes a step (or an online request) hang until the OS gives up, minutes later.
CONNECT_TIMEOUT_S = 5

_SQL_REGISTRY_SCHEMES = (
    "postgresql",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "mysql",
    "sqlite",
)


class FeatureStoreUnavailableError(ProfileError):
    """The registry or the online store named by the profile does not answer."""


# --------------------------------------------------------------------------------------------
# Offline source paths: where a use case's feature snapshots live for the active profile.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfflineLocation:
    """Where the offline parquet of a profile lives: its data root and S3 endpoint (if any)."""

    data_root: str
    s3_endpoint_url: str


# Set while the resource executes the feature_repo modules, so that their sources follow the
# resource's data_root even when it was built from settings other than the process environment
# (tests, or two profiles in one process). Unset (the `feast` CLI), the environment decides.
_ACTIVE_LOCATION: contextvars.ContextVar[OfflineLocation | None] = contextvars.ContextVar(
    "mlops_feast_offline_location", default=None
)


def _current_location() -> OfflineLocation:
    location = _ACTIVE_LOCATION.get()
    if location is None:
        settings = load_settings()
        location = OfflineLocation(settings.data_root, settings.s3_endpoint_url)
    return location


def offline_source_path(use_case: str, asset: str, *, partition: str | None = None) -> str:
    """The folder of parquet files that holds asset ``[use_case, asset]`` for the active profile.

    ``offline_source_path("fraud", "card_features")`` is ``<data_root>/fraud/card_features/``: a
    local folder or an ``s3://bucket/...`` prefix, the same place the parquet IO manager writes the
    asset (asset keys mirror storage paths). The trailing slash says "every parquet file in here".
    With ``partition``, the one file of that partition instead:
    ``<data_root>/<use_case>/<asset>/<partition>.parquet``.
    """
    root = _current_location().data_root.rstrip("/")
    if partition is not None:
        return f"{root}/{use_case}/{asset}/{partition}.parquet"
    return f"{root}/{use_case}/{asset}/"


def offline_file_source(
    use_case: str,
    asset: str,
    *,
    timestamp_field: str = "event_ts",
    created_timestamp_column: str = "",
    description: str = "",
    field_mapping: Mapping[str, str] | None = None,
    partition: str | None = None,
) -> FileSource:
    """A Feast ``FileSource`` over asset ``[use_case, asset]`` for the active profile.

    Feature-repo modules call this instead of writing paths, so one definition serves both
    profiles. On S3 it also carries the endpoint (MinIO, moto) as ``s3_endpoint_override``, which
    Feast's file offline store hands to s3fs/pyarrow: the registered source is then self-contained
    and a reader without ``AWS_ENDPOINT_URL`` in its environment still finds the bucket.

    With ``partition``, the source is the one file of that partition of the asset
    (:func:`offline_source_path`), named ``<use_case>__<asset>__<partition>`` and tagged with it.
    """
    from feast import FileSource
    from feast.data_format import ParquetFormat

    location = _current_location()
    on_s3 = location.data_root.startswith("s3://")
    tags = {"use_case": use_case, "asset_key": f"{use_case}/{asset}"}
    if partition is not None:
        tags["partition"] = partition
    return FileSource(
        name=f"{use_case}__{asset}" + (f"__{partition}" if partition is not None else ""),
        path=offline_source_path(use_case, asset, partition=partition),
        file_format=ParquetFormat(),
        timestamp_field=timestamp_field,
        created_timestamp_column=created_timestamp_column,
        field_mapping=dict(field_mapping) if field_mapping else None,
        s3_endpoint_override=location.s3_endpoint_url
        if on_s3 and location.s3_endpoint_url
        else None,
        description=description,
        tags=tags,
    )


# --------------------------------------------------------------------------------------------
# Feature-view metadata for the point-in-time engine.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureViewMetadata:
    """What the point-in-time engine needs to join a feature view as Feast would.

    For each entity row at time ``t``, the value of the view is the latest row of ``source_path``
    with the same ``join_keys`` and ``timestamp_field <= t``, ignored when older than ``t - ttl``
    (``ttl`` None: values never expire). Ties on the timestamp are broken by
    ``created_timestamp_column`` when there is one.
    """

    name: str
    use_case: str | None
    entities: tuple[str, ...]
    join_keys: tuple[str, ...]
    timestamp_field: str
    created_timestamp_column: str | None
    source_path: str
    s3_endpoint_url: str | None
    ttl: timedelta | None
    features: tuple[tuple[str, str], ...]
    """(feature name, Feast dtype name such as ``Float64``), in definition order."""
    field_mapping: tuple[tuple[str, str], ...] = ()
    """(source column, feature name) renames applied when reading the source."""
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]

    @property
    def dtypes(self) -> dict[str, str]:
        return dict(self.features)


def _metadata_of(fv: Any, join_keys: Sequence[str], use_case: str | None) -> FeatureViewMetadata:
    source = fv.batch_source
    ttl = fv.ttl if fv.ttl else None  # Feast stores "no expiry" as a zero TTL
    return FeatureViewMetadata(
        name=fv.name,
        use_case=use_case,
        entities=tuple(fv.entities),
        join_keys=tuple(join_keys),
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        source_path=getattr(source, "path", ""),
        s3_endpoint_url=getattr(source, "s3_endpoint_override", None) or None,
        ttl=ttl,
        features=tuple((f.name, str(f.dtype)) for f in fv.features),
        field_mapping=tuple(sorted((source.field_mapping or {}).items())),
        tags=tuple(sorted((fv.tags or {}).items())),
    )


# --------------------------------------------------------------------------------------------
# Parsing the feature repo.
# --------------------------------------------------------------------------------------------


@dataclass
class FeatureRepoContents:
    """The Feast objects defined in ``feature_repo/``, and the use case (module) of each."""

    objects: list[Any] = field(default_factory=list)
    use_case_of: dict[int, str] = field(default_factory=dict)  # id(object) -> module stem

    @property
    def use_cases(self) -> list[str]:
        return sorted(set(self.use_case_of.values()))

    def of_use_case(self, use_case: str | None) -> list[Any]:
        if use_case is None:
            return list(self.objects)
        if use_case not in self.use_cases:
            modules = ", ".join(self.use_cases) or "none"
            raise KeyError(f"feature_repo has no use case {use_case!r} (modules: {modules})")
        return [o for o in self.objects if self.use_case_of[id(o)] == use_case]

    def feature_views(self, use_case: str | None = None) -> list[Any]:
        from feast import FeatureView

        return [o for o in self.of_use_case(use_case) if isinstance(o, FeatureView)]

    def entities(self) -> dict[str, Any]:
        from feast import Entity

        return {o.name: o for o in self.objects if isinstance(o, Entity)}


def _repo_modules(repo_path: Path) -> list[Path]:
    """One module per use case: ``*.py`` at the top of the repo; ``_``-prefixed ones are private."""
    if not repo_path.is_dir():
        raise ProfileError(
            f"{REPO_ENV}={str(repo_path)!r} is not a folder (the Feast feature repo)"
        )
    return sorted(p for p in repo_path.glob("*.py") if not p.name.startswith("_"))


def parse_feature_repo(repo_path: str | Path, location: OfflineLocation) -> FeatureRepoContents:
    """Execute every use-case module of ``repo_path`` and collect its Feast objects.

    Feast's own ``parse_repo`` imports modules by a name relative to the *current directory* and
    caches them in ``sys.modules``; a Dagster process must not ``chdir``, and the definitions depend
    on the profile (source paths), so each module is executed afresh under a name of its own.
    """
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView
    from feast.data_source import DataSource

    kinds = (Entity, FeatureView, OnDemandFeatureView, FeatureService, DataSource)
    repo = Path(repo_path).resolve()
    digest = hashlib.sha1(f"{repo}|{location}".encode()).hexdigest()[:10]
    contents = FeatureRepoContents()
    seen: set[int] = set()
    defined_in: dict[tuple[str, str], str] = {}  # (kind, name) -> use case
    token = _ACTIVE_LOCATION.set(location)
    try:
        for module_path in _repo_modules(repo):
            use_case = module_path.stem
            module_name = f"_mlops_feature_repo_{digest}.{use_case}"
            spec = importlib.util.spec_from_file_location(module_name, module_path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
            spec.loader.exec_module(module)
            for value in vars(module).values():
                # Identity, not equality: an object imported into a second module is the same one.
                if not isinstance(value, kinds) or id(value) in seen:
                    continue
                kind = next(k.__name__ for k in kinds if isinstance(value, k))
                if (kind, value.name) in defined_in:
                    # One Feast project holds every use case: a second definition of a name
                    # would silently replace the first in the registry.
                    raise ValueError(
                        f"{kind} {value.name!r} is defined twice in {repo} "
                        f"({defined_in[kind, value.name]}.py and {use_case}.py)"
                    )
                defined_in[kind, value.name] = use_case
                seen.add(id(value))
                contents.objects.append(value)
                contents.use_case_of[id(value)] = use_case
    finally:
        _ACTIVE_LOCATION.reset(token)
    return contents


# --------------------------------------------------------------------------------------------
# One FeatureStore per process.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreConfig:
    """Everything the Feast ``RepoConfig`` is built from; equal keys share one FeatureStore."""

    repo_path: str
    project: str
    registry: str
    online_store: str
    online_store_path: str
    redis_url: str
    data_root: str
    s3_endpoint_url: str

    @property
    def location(self) -> OfflineLocation:
        return OfflineLocation(self.data_root, self.s3_endpoint_url)

    @property
    def registry_is_sql(self) -> bool:
        return urlparse(self.registry).scheme in _SQL_REGISTRY_SCHEMES

    @property
    def registry_is_local_file(self) -> bool:
        return not self.registry_is_sql and not urlparse(self.registry).scheme


# Two FeatureStore objects used in turn in one process clear each other's process-wide caches and
# every call slows to several ms (DESIGN "Known traps"), so stores and parsed repos are shared.
_STORES: dict[StoreConfig, FeatureStore] = {}
_REPOS: dict[tuple[str, OfflineLocation], FeatureRepoContents] = {}
_CACHE_LOCK = threading.Lock()


def redis_connection_string(redis_url: str) -> str:
    """Feast's Redis ``connection_string`` (``host:port,db=N,...``) for a ``redis://`` URL."""
    parsed = urlparse(redis_url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ProfileError(f"{REDIS_URL_ENV}={redis_url!r} is not a redis://host:port/db URL")
    params: dict[str, Any] = {"db": int(parsed.path.strip("/") or 0)}
    if parsed.username:
        params["username"] = unquote(parsed.username)
    if parsed.password:
        params["password"] = unquote(parsed.password)
    if parsed.scheme == "rediss":
        params["ssl"] = True
    params["socket_connect_timeout"] = CONNECT_TIMEOUT_S
    for key, value in parse_qsl(parsed.query):
        # URL options are text; numbers and booleans must reach redis-py as such.
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
        params[key] = value
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    for key, value in params.items():
        # Feast splits on "," and json-decodes each value: strings are quoted so that a numeric
        # password stays a string.
        encoded = json.dumps(value)
        if "," in encoded:
            raise ProfileError(f"{REDIS_URL_ENV}: a ',' in {key!r} cannot be passed to Feast")
        parts.append(f"{key}={encoded}")
    return ",".join(parts)


def _registry_config(key: StoreConfig) -> dict[str, Any]:
    if key.registry_is_sql:
        url = key.registry
        if url.startswith("postgresql://"):
            # SQLAlchemy would pick psycopg2 for a bare scheme; we ship psycopg v3.
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        engine_kwargs: dict[str, Any] = {"echo": False, "pool_pre_ping": True}
        if url.startswith("postgresql"):
            engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        return {
            "registry_type": "sql",
            "path": url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": engine_kwargs,
        }
    # A file: a local path, or an s3:// object (Feast reads FEAST_S3_ENDPOINT_URL for that).
    return {"registry_type": "file", "path": key.registry, "cache_ttl_seconds": 60}


def build_repo_config(key: StoreConfig) -> RepoConfig:
    """The Feast ``RepoConfig`` for ``key`` (``feature_repo/feature_store.yaml`` is its twin)."""
    from feast.repo_config import RepoConfig

    if key.online_store == "redis":
        online: dict[str, Any] = {
            "type": "redis",
            "connection_string": redis_connection_string(key.redis_url),
        }
    elif key.online_store == "sqlite":
        online = {"type": "sqlite", "path": key.online_store_path}
    else:
        raise ProfileError(
            f"{ENV_VARS['feast_online_store']}={key.online_store!r}: use 'sqlite' or 'redis'"
        )
    return RepoConfig(
        project=key.project,
        provider="local",
        registry=_registry_config(key),
        online_store=online,
        # The file (Dask) offline store only serves materialization here: training sets are
        # joined by core/pit.py, not by get_historical_features (DESIGN section 5).
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        # Pull every row of the window and keep the latest per key in pandas: deterministic, where
        # the "latest only" pull de-duplicates inside Dask across partitions. Measured the same
        # speed here (400k rows, 50k keys: ~6 s either way; writing ~8k keys/s dominates).
        materialization={"pull_latest_features": False},
        repo_path=Path(key.repo_path),
    )


def _feature_store(key: StoreConfig) -> FeatureStore:
    store = _STORES.get(key)
    if store is not None:
        return store
    with _CACHE_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _build_store(key)
            _STORES[key] = store
    return store


def _build_store(key: StoreConfig) -> FeatureStore:
    from feast import FeatureStore

    if key.registry_is_local_file:
        Path(key.registry).parent.mkdir(parents=True, exist_ok=True)
    if key.online_store == "sqlite":
        Path(key.online_store_path).parent.mkdir(parents=True, exist_ok=True)
    if key.registry.startswith("s3://") and key.s3_endpoint_url:
        # Feast's S3 registry takes its endpoint from this variable only.
        os.environ.setdefault("FEAST_S3_ENDPOINT_URL", key.s3_endpoint_url)
    with _explained_errors(key):
        store = FeatureStore(repo_path=key.repo_path, config=build_repo_config(key))
        # The SQL registry connects (and creates its tables) here: fail now, with the setting.
        _ = store.registry
    return store


def _parsed_repo(key: StoreConfig) -> FeatureRepoContents:
    cache_key = (str(Path(key.repo_path).resolve()), key.location)
    repo = _REPOS.get(cache_key)
    if repo is None:
        with _CACHE_LOCK:
            repo = _REPOS.get(cache_key)
            if repo is None:
                repo = parse_feature_repo(key.repo_path, key.location)
                _REPOS[cache_key] = repo
    return repo


def clear_caches() -> None:
    """Forget every FeatureStore and parsed repo of this process (tests, or after repo edits)."""
    with _CACHE_LOCK:
        _STORES.clear()
        _REPOS.clear()


@contextlib.contextmanager
def _explained_errors(key: StoreConfig) -> Iterator[None]:
    """Turn "connection refused" deep inside Feast into an error that names the setting to fix."""
    try:
        yield
    except FeatureStoreUnavailableError:
        raise
    except Exception as exc:
        module = type(exc).__module__
        if module.startswith("redis") and _is_connection_error(exc):
            raise FeatureStoreUnavailableError(
                f"the Feast online store (Redis at {redact_url(key.redis_url)}) does not answer: "
                f"{str(exc).rstrip('.')}. Start Redis or point {REDIS_URL_ENV} at one."
            ) from exc
        if module.startswith(("sqlalchemy", "psycopg")) and _is_connection_error(exc):
            raise FeatureStoreUnavailableError(
                f"the Feast registry database ({redact_url(key.registry)}) does not answer: "
                f"{str(exc).splitlines()[0].rstrip('.')}. Start it or point {REGISTRY_ENV} at one."
            ) from exc
        raise


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectionError", "TimeoutError", "OperationalError", "InterfaceError"})


def _incremental_start(fv: Any) -> datetime:
    """Where Feast's ``materialize_incremental`` starts a view: the end of its last interval,
    else ``now - ttl``, else (a zero TTL) a year ago; a view with no TTL must have one."""
    start = fv.most_recent_end_time
    if start is None:
        if fv.ttl is None:
            raise ValueError(
                f"no start time for feature view {fv.name}: materialize_incremental needs a ttl "
                "or an earlier materialize"
            )
        start = datetime.now(UTC) - (fv.ttl if fv.ttl.total_seconds() > 0 else timedelta(weeks=52))
    return start if start.tzinfo else start.replace(tzinfo=UTC)


def _utc(ts: datetime, what: str) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"{what}={ts!r} is naive; pass a tz-aware UTC datetime")
    return ts.astimezone(UTC)


@contextlib.contextmanager
def _registry_write_lock(key: StoreConfig, store: FeatureStore) -> Iterator[None]:
    """Serialize writers of a file registry across processes, and start from its latest state.

    Feast rewrites the whole registry file read-modify-write with no lock, from an in-memory copy:
    two parallel steps interleave and silently drop each other's changes. (Feast reloads a file
    whose mtime moved, but only when it reads, which races with the other writer.) So: lock,
    reload, write. The SQL registry does row-level writes and needs neither.
    """
    if not key.registry_is_local_file:
        yield
        return
    with file_lock(Path(f"{key.registry}.lock")):
        store.refresh_registry()
        yield


# --------------------------------------------------------------------------------------------
# The resource.
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> str:
    """A config value, resolving an ``EnvVar`` when the resource is used outside a Dagster run."""
    return value.get_value() if isinstance(value, dg.EnvVar) else value


class FeastFeatureStore(dg.ConfigurableResource):
    """The feature store: Feast registry, online store, and materialization into it.

    Build it with ``FeastFeatureStore.from_settings(load_settings())``; every field follows the
    active profile. All instances with the same fields share one Feast ``FeatureStore`` per process.
    """

    repo_path: str = Field(
        description="The Feast repo folder (feature_repo/): one module per use case."
    )
    project: str = Field(default="mlops_assets", description="Feast project name.")
    registry: str = Field(
        description="Registry: a file path (local), s3:// object, or a SQLAlchemy URL "
        "(postgresql+psycopg://...) for the SQL registry."
    )
    online_store: str = Field(default="sqlite", description="'sqlite' or 'redis'.")
    online_store_path: str = Field(
        default="", description="SQLite online store file (sqlite only)."
    )
    redis_url: str = Field(default="", description="redis://host:port/db (redis only).")
    data_root: str = Field(
        description="Root of the offline parquet: a folder or s3://bucket/prefix."
    )
    s3_endpoint_url: str = Field(default="", description="S3 endpoint (MinIO) for s3:// data.")
    vectorised_online_writes: bool = Field(
        default=True,
        description="Materialize into Redis or SQLite with the vectorised writer "
        "(core/online_writes.py: the same keys, rows and bytes as Feast, several times faster); "
        "False: Feast's own materialization.",
    )

    _config: StoreConfig | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> FeastFeatureStore:
        """The resource for a profile's settings.

        Locally the SQLite online store sits next to the data (``<data_root>/feast/online.db``);
        connection URLs that carry a password are passed as ``EnvVar`` so the UI never shows it.
        """
        if settings.data_on_s3:
            online_path = str(Path(settings.home) / ".data" / "feast" / "online.db")
        else:
            online_path = str(Path(settings.data_root) / "feast" / "online.db")

        def secret(name: str) -> Any:
            value = getattr(settings, name)
            env = ENV_VARS[name]
            if urlparse(value).password and os.environ.get(env, "").strip() == value:
                return dg.EnvVar(env)
            return value

        return cls(
            repo_path=settings.feast_repo_path,
            project=settings.feast_project,
            registry=secret("feast_registry"),
            online_store=settings.feast_online_store,
            online_store_path=online_path,
            redis_url=secret("redis_url"),
            data_root=settings.data_root,
            s3_endpoint_url=settings.s3_endpoint_url,
        )

    # -- plumbing --------------------------------------------------------------------------

    @property
    def store_config(self) -> StoreConfig:
        """The resolved configuration (``EnvVar`` fields read); equal configs share one store."""
        if self._config is None:
            self._config = StoreConfig(
                repo_path=str(Path(self.repo_path).resolve()),
                project=self.project,
                registry=_plain(self.registry),
                online_store=self.online_store,
                online_store_path=self.online_store_path,
                redis_url=_plain(self.redis_url),
                data_root=self.data_root,
                s3_endpoint_url=self.s3_endpoint_url,
            )
        return self._config

    def get_store(self) -> FeatureStore:
        """The process's Feast ``FeatureStore`` for this configuration (built on first use)."""
        return _feature_store(self.store_config)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A process that runs step after step (a Celery worker, the in-process executor) keeps
        # its FeatureStore, which re-reads the registry only every `cache_ttl_seconds`: another
        # process may have applied views since, and this step must see them, as a step in a
        # process of its own would. No store yet (a fresh process): nothing to refresh.
        store = _STORES.get(self.store_config)
        if store is not None:
            store.refresh_registry()

    def repo_contents(self) -> FeatureRepoContents:
        """The entities, sources and feature views ``feature_repo/`` defines for this profile."""
        return _parsed_repo(self.store_config)

    def feature_view_names(self, use_case: str | None = None) -> list[str]:
        """Names of the feature views defined in the repo (of one use case, if given)."""
        return [fv.name for fv in self.repo_contents().feature_views(use_case)]

    # -- registry --------------------------------------------------------------------------

    def apply(
        self, objects: Sequence[Any] | None = None, *, use_case: str | None = None
    ) -> list[str]:
        """Register feature definitions in the registry and prepare the online store for them.

        With no ``objects``, the definitions of ``feature_repo/`` (only ``use_case``'s module, if
        given). Idempotent: applying unchanged definitions changes nothing that readers see, and
        keeps the materialization history. Objects removed from the repo are not deleted.
        Returns the names of the objects applied.
        """
        if objects is None:
            objects = self.repo_contents().of_use_case(use_case)
        objects = list(objects)
        key = self.store_config
        with _explained_errors(key):
            store = self.get_store()
            with _registry_write_lock(key, store):
                store.apply(objects)
        return [obj.name for obj in objects]

    def feature_view_metadata(
        self, name: str, *, from_registry: bool = False
    ) -> FeatureViewMetadata:
        """Join keys, timestamp field, source path, TTL and feature dtypes of feature view ``name``.

        Read from the repo's definitions for the active profile, so it needs neither the online
        store nor the registry; a view known only to the registry (or ``from_registry=True``: what
        was last applied) is read from the registry.
        """
        repo = self.repo_contents()
        entities = repo.entities()
        for fv in [] if from_registry else repo.feature_views():
            if fv.name == name:
                if not fv.features:
                    break  # schema left to Feast's inference: only the applied view knows it
                join_keys = [entities[e].join_key if e in entities else e for e in fv.entities]
                if fv.entity_columns:
                    join_keys = [c.name for c in fv.entity_columns]
                return _metadata_of(fv, join_keys, repo.use_case_of.get(id(fv)))
        return self._registry_metadata(name)

    def _registry_metadata(self, name: str) -> FeatureViewMetadata:
        from feast.errors import FeatureViewNotFoundException

        with _explained_errors(self.store_config):
            store = self.get_store()
            try:
                fv = store.get_feature_view(name, allow_registry_cache=True)
            except FeatureViewNotFoundException:
                known = ", ".join(self.feature_view_names()) or "none"
                raise KeyError(
                    f"no feature view {name!r} in feature_repo ({known}) or in the registry"
                ) from None
            join_keys = [c.name for c in fv.entity_columns] or [
                store.get_entity(e, allow_registry_cache=True).join_key for e in fv.entities
            ]
        use_case = (fv.tags or {}).get("use_case") or (fv.batch_source.tags or {}).get("use_case")
        return _metadata_of(fv, join_keys, use_case)

    # -- online store ----------------------------------------------------------------------

    def materialize(
        self,
        start: datetime,
        end: datetime,
        feature_views: Sequence[str] | None = None,
        *,
        use_case: str | None = None,
    ) -> list[str]:
        """Load into the online store, per entity key, the latest feature row with a timestamp in
        ``[start, end]``. Keys with no row in the window keep their previous online value.

        Into Redis or SQLite, the views are read in Polars and written by
        ``core/online_writes.py``: the keys, rows and bytes Feast writes, several times faster
        (``vectorised_online_writes=False``: Feast's own path). The interval is recorded in the
        registry either way.

        ``feature_views`` (names) or ``use_case`` narrow it; by default every registered view.
        Returns the names of the views materialized.
        """
        start, end = _utc(start, "start"), _utc(end, "end")
        if start > end:
            raise ValueError(f"start {start} is after end {end}")
        names = self._views_to_materialize(feature_views, use_case)
        if names == []:
            return []  # Feast reads an empty list as "every view"
        key = self.store_config
        with _explained_errors(key):
            store = self.get_store()
            # Materialization records its interval in the registry: the same write hazard as apply.
            with _registry_write_lock(key, store):
                if self._writes_vectorised(store):
                    self._materialize_vectorised(store, names, start, end)
                else:
                    store.materialize(start, end, feature_views=names)
                return names or [fv.name for fv in store.list_feature_views(allow_cache=True)]

    def materialize_incremental(
        self,
        end: datetime,
        feature_views: Sequence[str] | None = None,
        *,
        use_case: str | None = None,
    ) -> list[str]:
        """Like ``materialize``, from the end of each view's last materialization (or ``end - ttl``
        for a view never materialized) up to ``end``."""
        end = _utc(end, "end")
        names = self._views_to_materialize(feature_views, use_case)
        if names == []:
            return []
        key = self.store_config
        with _explained_errors(key):
            store = self.get_store()
            with _registry_write_lock(key, store):
                if self._writes_vectorised(store):
                    self._materialize_vectorised(store, names, None, end)
                else:
                    store.materialize_incremental(end, feature_views=names)
                return names or [fv.name for fv in store.list_feature_views(allow_cache=True)]

    def _writes_vectorised(self, store: FeatureStore) -> bool:
        return self.vectorised_online_writes and store.config.online_store.type in (
            "redis",
            "sqlite",
        )

    def _materialize_vectorised(
        self,
        store: FeatureStore,
        names: list[str] | None,
        start: datetime | None,
        end: datetime,
    ) -> list[ViewMaterialization]:
        """Feast's ``materialize`` (``start`` None: ``materialize_incremental``), view by view,
        with the vectorised writer (Redis or SQLite).

        The views and their order are Feast's own choice (online and enabled views, by default
        all; an unknown name raises as in Feast). Each interval is recorded in the registry as
        Feast records it, so ``materialize_incremental`` and the ``feast`` CLI carry on from
        it. A view the writer does not handle (a stream or on-demand view, a dtype outside the
        scalar ones) is materialized by Feast itself.
        """
        from feast import FeatureView

        from mlops_assets.core.online_writes import UnsupportedViewError, materialize_view

        # The method Feast's own `materialize` resolves the names with (Feast 0.67).
        views = store._get_feature_views_to_materialize(names)
        # SQLite: write on the provider's connection, the one Feast reads and writes on (Redis:
        # a client of the writer's own, as before).
        online_store = (
            store._get_provider().online_store
            if store.config.online_store.type == "sqlite"
            else None
        )
        done = []
        for fv in views:
            try:
                if type(fv) is not FeatureView:
                    raise UnsupportedViewError(f"{fv.name} is a {type(fv).__name__}")
                fv_start = start if start is not None else _incremental_start(fv)
                done.append(
                    materialize_view(store.config, fv, fv_start, end, online_store=online_store)
                )
            except UnsupportedViewError:
                # Feast's own path, which records the interval itself.
                if start is None:
                    store.materialize_incremental(end, feature_views=[fv.name])
                else:
                    store.materialize(start, end, feature_views=[fv.name])
            else:
                store.registry.apply_materialization(fv, store.project, fv_start, end)
        return done

    def _views_to_materialize(
        self, feature_views: Sequence[str] | None, use_case: str | None
    ) -> list[str] | None:
        if feature_views is not None and use_case is not None:
            raise ValueError("pass feature_views or use_case, not both")
        if use_case is not None:
            return self.feature_view_names(use_case)
        return list(feature_views) if feature_views is not None else None

    def get_online_features(
        self, features: Sequence[str], entity_rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, list[Any]]:
        """The latest materialized values of ``features`` (``"view:feature"``) for each entity row.

        Returns one list per column (entity keys first, then features), in the order of
        ``entity_rows``; a key with no online value gets ``None``.
        """
        with _explained_errors(self.store_config):
            response = self.get_store().get_online_features(
                features=list(features), entity_rows=[dict(r) for r in entity_rows]
            )
            return response.to_dict()
