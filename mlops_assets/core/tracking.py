"""MLflow tracking for assets: one MLflow run per materialization, models, registry and aliases.

Every model asset trains inside ``MlflowTracking.start_run(context, use_case=...)``. The run is
tagged with where it came from in Dagster (run id, asset key, partition, code version and the data
versions of the asset's inputs), so a model in the registry can be traced back to the exact data
and code that produced it, and the asset's materialization links forward to the run.

Aliases carry the business meaning of a version: ``candidate`` is the latest trained model,
``champion`` is the one that serves. Only the promotion gate moves ``champion``, and it moves it
compare-and-set: under a lock per model name shared by the whole deployment
(``mlops_assets.core.locks``), it re-reads the champion, decides, and moves the alias, so two
gates running at once can never both replace the same old champion. A rollback
(:meth:`MlflowTracking.rollback`) and a move by hand (``set_alias``) take the same lock.

Every move of ``champion`` is kept in the registered model's tag ``champion.history`` (which
version, which one it replaced, when, by a promotion, a rollback or by hand, and why): a rollback
without a target goes back to the version that served before the current champion came in. The
model's rollout mode (:mod:`mlops_assets.core.rollout`) is kept in tags of the registered model
too (``set_rollout``, ``get_rollout``).

Failures of MLflow (a server that does not answer, a 4xx/5xx, a broken database) are raised as
``TrackingError``: a Dagster ``Failure`` whose message says what failed and which setting
(``MLFLOW_TRACKING_URI``) points at the backend. A registration either completes (version READY,
alias set) or leaves no model version behind.

The code location imports this module, so mlflow, sklearn and pandas are imported inside the
methods that need them, never at module level (``import mlflow`` alone takes seconds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import dagster as dg
from pydantic import Field, PrivateAttr

from mlops_assets.core.locks import LockTimeout, lock_space, named_lock
from mlops_assets.core.profiles import ENV_VARS, redact_url
from mlops_assets.core.rollout import MODE_TAG, SHARE_TAG, Rollout, rollout_from_tags
from mlops_assets.core.storage import file_lock, user_cache_dir

if TYPE_CHECKING:
    from pathlib import PurePath

    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo
    from upath import UPath

    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.evaluation import PromotionDecision, PromotionRule
    from mlops_assets.core.profiles import Settings

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

CANDIDATE = "candidate"
CHAMPION = "champion"

# The named lock (mlops_assets.core.locks) that serializes the promotion gates of one model,
# and every other write of what it serves: rollbacks, moves by hand, its rollout mode.
GATE_LOCK_PREFIX = "mlflow.champion."

# The registered model's tag that keeps the moves of its champion alias: a JSON list of
# {"version", "previous", "at", "kind", "reason"}, oldest first.
HISTORY_TAG = "champion.history"
# Where a history that no longer parses (a hand-edited tag) is set aside when the next move
# starts a new one: the move is not blocked, and nothing that was recorded is lost.
UNREADABLE_HISTORY_TAG = "champion.history.unreadable"
HistoryKind = Literal["promotion", "rollback", "manual"]
# The longest value of a registered model's tag. MLflow's validator allows 100,000 characters
# (MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH), but the column registered_model_tags.value is still
# VARCHAR(5000) in MLflow's database schema (only model_version_tags.value was widened to TEXT,
# migration bda7b8c39065): SQLite ignores the length, PostgreSQL (the stack profile's MLflow)
# refuses a longer value. The test suite checks this against the installed MLflow.
HISTORY_TAG_LIMIT = 5000
# The reason kept in a history entry is cut to this many characters (the full reason is the
# version's tag ``champion.reason``): a dozen entries always fit, about 25 with a gate's usual
# reason (some 100 characters).
HISTORY_REASON_CHARS = 300
# Version tag on the champion a rollback left: why, and for which version.
ROLLBACK_REASON_TAG = "rollback.reason"

_log = logging.getLogger(__name__)

# Run tags that tie an MLflow run to the Dagster materialization that produced it.
# MLflow's own tag for nested runs.
TAG_PARENT_RUN_ID = "mlflow.parentRunId"
TAG_RUN_ID = "dagster.run_id"
TAG_JOB_NAME = "dagster.job_name"
TAG_ASSET_KEY = "dagster.asset_key"
TAG_PARTITION_KEY = "dagster.partition_key"
TAG_PARTITION_RANGE = "dagster.partition_key_range"
TAG_CODE_VERSION = "dagster.code_version"
# The versioned training set a model was trained on (``dt=<partition>/run_id=<run>``) and its
# data version, for use cases whose training set is a versioned dataset (fraud).
TAG_TRAINING_SET_VERSION = "training_set.version"
TAG_TRAINING_SET_DATA_VERSION = "training_set.data_version"
TAG_USE_CASE = "mlops.use_case"
# Where Dagster keeps the data version of a materialization (dagster._core.definitions.data_version).
DAGSTER_DATA_VERSION_TAG = "dagster/data_version"

# MLflow's standard source tags (mlflow.utils.mlflow_tags): the UI's "Source" column shows the
# name, with the type's icon, and the run page shows the commit next to it.
TAG_SOURCE_NAME = "mlflow.source.name"
TAG_SOURCE_TYPE = "mlflow.source.type"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
#: The process that opened a run (``<host>:<pid>``), and the one that ended it when its own died.
TAG_PROCESS = "mlops.process"
TAG_ENDED_BY = "mlops.ended_by"
# A run opened by a Dagster step is a job in MLflow's vocabulary (SourceType.JOB); without
# Databricks job tags the UI shows the source name as it is.
SOURCE_TYPE_JOB = "JOB"
# The commit of the code, for images built without their .git (the Dockerfile sets it at build).
GIT_COMMIT_ENV = "MLOPS_GIT_COMMIT"

# The input tag that says what a dataset was for (mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT):
# the UI shows it as a badge next to the dataset, in the runs table and on the run page.
DATASET_CONTEXT_TAG = "mlflow.data.context"
DatasetContext = Literal["training", "evaluation"]
DATASET_CONTEXTS: tuple[str, ...] = ("training", "evaluation")
# MLflow refuses a dataset digest longer than this (MAX_DATASET_DIGEST_SIZE): a data version (a
# sha256, 64 hex characters) is cut to its first 36 as the digest, and kept whole in the profile.
DATASET_DIGEST_CHARS = 36


def input_data_version_tag(asset_key: dg.AssetKey) -> str:
    """The run tag holding the data version of input ``asset_key``."""
    return f"dagster.input.{asset_key.to_user_string()}.data_version"


Flavor = Literal["sklearn", "pyfunc", "xgboost"]

# Packages a logged model needs to be loaded again, per flavor. They are pinned to the versions
# installed here: without explicit requirements MLflow infers them by loading the model in a
# subprocess, which took 19-34 s per model on this machine (about 5 s with them).
_FLAVOR_PACKAGES: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn", "cloudpickle", "numpy", "pandas", "scipy"),
    "xgboost": ("xgboost", "scikit-learn", "numpy", "pandas", "scipy"),
    "pyfunc": ("cloudpickle", "numpy", "pandas"),
}

# Distributions that are never model requirements, even when an estimator's class comes from them.
_NOT_REQUIREMENTS = frozenset({"mlops-assets", "mlflow", "mlflow-skinny"})

_READY = "READY"
_FAILED_REGISTRATION = "FAILED_REGISTRATION"


class TrackingError(dg.Failure):
    """MLflow could not do what an asset asked of it; the message names the backend setting."""

    def __init__(self, message: str, *, tracking_uri: str | None = None) -> None:
        metadata = {"env_var": TRACKING_URI_ENV}
        if tracking_uri:
            metadata["tracking_uri"] = redact_url(tracking_uri)
        super().__init__(description=message, metadata=metadata)


class PromotionLockError(dg.Failure):
    """The promotion gate could not take its model's lock: another gate kept it past the timeout,
    or the lock space (PostgreSQL, the locks folder) could not be reached. Nothing was decided
    and no alias moved; Dagster may retry the step."""

    def __init__(self, message: str, *, space: str) -> None:
        super().__init__(description=message, metadata={"lock_space": redact_url(space)})


class RegistryError(ValueError):
    """What was asked of the registry cannot be done as asked: a model or version that does not
    exist, a rollback with nowhere to go, a tag that does not parse. Nothing was changed; the
    message says what to ask instead."""


@dataclass(frozen=True)
class RollbackResult:
    """A rollback that happened: ``champion`` of ``name`` moved from ``from_version`` back to
    ``to_version``, for ``reason``."""

    name: str
    from_version: str
    to_version: str
    reason: str


def _now() -> str:
    """UTC now, ISO 8601 to the second, as the history and the rollout tags keep it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _clip(text: str, limit: int = HISTORY_REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_history(text: str | None) -> list[dict[str, Any]]:
    """The entries of a ``champion.history`` tag value, oldest first (``[]`` without one).

    Raises ``ValueError`` for a value that is not the JSON list of entries the registry writes.
    """
    if not text:
        return []
    entries = json.loads(text)
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("version"), str) for e in entries
    ):
        raise ValueError("not a JSON list of entries with a version")
    return entries


def history_value(entries: Sequence[Mapping[str, Any]], limit: int = HISTORY_TAG_LIMIT) -> str:
    """The ``champion.history`` tag value of ``entries``: compact JSON of the newest entries that
    fit in ``limit`` characters. The oldest are dropped, whole: the value is always valid JSON."""
    kept = [dict(e) for e in entries]
    while True:
        # ASCII only (json's default): characters and bytes agree, whatever the database counts.
        text = json.dumps(kept, separators=(",", ":"))
        if len(text) <= limit or not kept:
            return text
        kept.pop(0)


def as_version(version: str | int) -> str:
    """A version as the registry spells it: ``3`` for 3, "3" or "v3"."""
    text = str(version).strip()
    text = text[1:] if text[:1] in ("v", "V") else text
    if not text.isdigit() or int(text) < 1:
        raise RegistryError(f"{version!r} is not a model version: versions are 1, 2, 3...")
    return str(int(text))


def _plain(value: Any) -> str:
    """A config value, resolving an ``EnvVar`` when the resource is used outside a Dagster run."""
    return value.get_value() if isinstance(value, dg.EnvVar) else value


def _shown(version: str | None) -> str:
    return f"v{version}" if version is not None else "no champion"


# --- SQLite backend: create and migrate the database once ---------------------------------------

# Processes creating a fresh MLflow SQLite database at the same time leave it permanently broken
# (half-run migrations). Each URI is prepared once per process, and across processes under a file
# lock next to the database.
_ENSURED_BACKENDS: set[str] = set()
_ENSURE_LOCK = threading.Lock()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other schemes and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).absolute()


def _ensure_sqlite_backend(uri: str, artifact_root: str) -> None:
    path = sqlite_path(uri)
    if path is None:
        return
    with file_lock(path.with_name(path.name + ".lock")):
        import mlflow.store.db.utils as db_utils
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        if not path.exists():
            _copy_empty_schema(path)
        engine = db_utils.create_sqlalchemy_engine_with_retry(uri)
        # An existing database of an older MLflow is migrated here, once, under the lock;
        # SqlAlchemyStore itself only refuses to open it.
        outdated = db_utils._all_tables_exist(engine) and (
            db_utils._get_schema_version(engine) != db_utils._get_latest_schema_revision()
        )
        if outdated:
            db_utils._upgrade_db(engine)
        engine.dispose()
        # Creates the tables of a fresh database and the "Default" experiment, which would
        # otherwise race between processes on its unique name.
        SqlAlchemyStore(uri, artifact_root)


def _copy_empty_schema(path: Path) -> None:
    """Start a new SQLite backend from a copy of MLflow's tables, made once per MLflow version in
    the user's cache: creating them runs every Alembic migration, 3-5 s per new home (each test,
    each first command of a deployment), against milliseconds for the copy. The copy holds no
    experiment: ``SqlAlchemyStore`` then creates "Default" with this backend's artifact root.
    Anything wrong with the cache leaves MLflow to create the tables itself."""
    import shutil

    import mlflow.store.db.utils as db_utils

    revision = db_utils._get_latest_schema_revision()
    template = user_cache_dir("mlflow") / f"tables-{revision}.db"
    try:
        if not template.exists():
            template.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(template.with_name(template.name + ".lock")):
                if not template.exists():
                    fd, scratch = tempfile.mkstemp(dir=template.parent, suffix=".db.tmp")
                    os.close(fd)
                    engine = db_utils.create_sqlalchemy_engine_with_retry(f"sqlite:///{scratch}")
                    try:
                        db_utils._initialize_tables(engine)
                        engine.dispose()
                        os.replace(scratch, template)
                    finally:
                        engine.dispose()
                        Path(scratch).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch_copy = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.copyfile(template, scratch_copy)
        os.replace(scratch_copy, path)
    except OSError as exc:
        _log.debug("no MLflow schema template (%s): MLflow creates the tables", exc)


# --- Dagster lineage ----------------------------------------------------------------------------


def lineage_tags(
    context: dg.AssetExecutionContext, asset_key: dg.AssetKey | None = None
) -> dict[str, str]:
    """The MLflow run tags that say which Dagster materialization a run belongs to.

    The input data versions are the ones Dagster itself records as the provenance of this
    materialization (the ``dagster/input_data_version/<key>`` tags of the output event): for an
    unpartitioned input, or an input read without partitions, that is the input's own data version;
    for a partitioned input it is Dagster's hash over the data versions of the partitions read.
    Inputs that were never materialized or observed get no tag.
    """
    key = asset_key or context.asset_key
    tags = {
        TAG_RUN_ID: context.run.run_id,
        TAG_JOB_NAME: context.job_name,
        TAG_ASSET_KEY: key.to_user_string(),
    }
    if context.has_partition_key:
        tags[TAG_PARTITION_KEY] = str(context.partition_key)
    elif context.has_partition_key_range:
        key_range = context.partition_key_range
        tags[TAG_PARTITION_RANGE] = f"{key_range.start}...{key_range.end}"

    assets_def = context.assets_def
    code_version = assets_def.code_versions_by_key.get(key)
    if code_version is not None:
        tags[TAG_CODE_VERSION] = code_version

    # The step context is where Dagster keeps the input versions it writes into the output's
    # provenance; asking it (instead of the latest materialization of each input) gives the same
    # values, including the partition-aware hash for partitioned inputs.
    step_context = context.get_step_execution_context()
    for parent in sorted(assets_def.asset_deps.get(key, ()), key=lambda k: k.to_user_string()):
        if parent == key:  # a self-dependency is history, not an input
            continue
        info = step_context.maybe_fetch_and_get_input_asset_version_info(parent)
        if info is not None and info.data_version is not None:
            tags[input_data_version_tag(parent)] = info.data_version.value
    return tags


# --- where the code came from: MLflow's source tags ---------------------------------------------


def git_commit() -> str | None:
    """The git commit of the code this process runs: ``$MLOPS_GIT_COMMIT`` when set (images are
    built without their ``.git``, so the build records it there), else ``HEAD`` of the checkout
    this package is imported from, else None. Never raises: a run is not failed for its commit."""
    pinned = os.environ.get(GIT_COMMIT_ENV, "").strip()
    return pinned or _checkout_commit()


@functools.cache
def _checkout_commit() -> str | None:
    """``git rev-parse HEAD`` of the repository whose root holds this package, once per process
    (the code a process runs does not change under it). None when the package is not imported
    from a git checkout (installed in site-packages, whatever repository encloses that), when git
    is missing, or when it refuses (e.g. a checkout owned by another user)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # a file in a worktree, a folder in a clone
        return None
    try:
        found = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = found.stdout.split()
    if found.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return None
    return lines[1]


def source_name(context: dg.OpExecutionContext, asset_key: dg.AssetKey) -> str:
    """``<module>:<function>`` of the step's compute function (the code that trained a model),
    or the asset key where the context has no op (an asset invoked directly)."""
    try:
        # What the decorator wrapped; an OpDefinition built on a bare callable has no such
        # attribute (the AttributeError below), a directly invoked asset no op_def.
        function = context.op_def.compute_fn.decorated_fn
        return f"{function.__module__}:{function.__qualname__}"
    except (dg.DagsterError, AttributeError):
        return asset_key.to_user_string()


def _this_process() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def source_tags(context: dg.OpExecutionContext, asset_key: dg.AssetKey) -> dict[str, str]:
    """MLflow's standard source tags of a run opened by ``context``'s step: the function that
    trained it (``mlflow.source.name``), ``JOB`` as its type and the git commit of the code when
    it is known (:func:`git_commit`). The asset's code version is ``dagster.code_version``."""
    tags = {TAG_SOURCE_NAME: source_name(context, asset_key), TAG_SOURCE_TYPE: SOURCE_TYPE_JOB}
    commit = git_commit()
    if commit:
        tags[TAG_GIT_COMMIT] = commit
    return tags


# --- datasets: what a run read, as MLflow shows it ----------------------------------------------


# Characters left as they are in the path of a file URI: RFC 3986 allows them there, and the
# store's own names use them (``dt=2024-01-10/run_id=...``), which must stay readable and
# searchable. Everything else (a space, ``%``, ``#``, ``?``) is percent-encoded.
_URI_PATH_SAFE = "/:=@!$&'()*+,;~"


def dataset_uri(location: UPath | PurePath | str) -> str:
    """The URI of data in the asset store: ``s3://bucket/key`` as stored, ``file:///abs/path``
    for a local path (what MLflow's dataset sources ``s3`` and ``local`` hold)."""
    from urllib.parse import quote

    text = str(location)
    if "://" in text:
        return text
    return "file://" + quote(Path(text).absolute().as_posix(), safe=_URI_PATH_SAFE)


def _dataset_source(uri: str) -> tuple[str, str]:
    """``(source_type, source JSON)`` of a URI, as MLflow's own dataset sources serialize it, so
    the UI recognises it (``local``, ``s3``, ``http``) and ``mlflow.data.get_source`` loads it."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        return "http", json.dumps({"url": uri})
    return ("local" if scheme in ("", "file") else scheme), json.dumps({"uri": uri})


# MLflow's column types (mlflow.types.DataType) of the dtype names of pandas, numpy and polars,
# matched on the lower-cased name's start; anything else is ``any``.
_MLFLOW_TYPES: tuple[tuple[str, str], ...] = (
    ("bool", "boolean"),
    ("int8", "integer"),
    ("int16", "integer"),
    ("int32", "integer"),
    ("uint8", "integer"),
    ("uint16", "integer"),
    ("int", "long"),
    ("uint", "long"),
    ("float32", "float"),
    ("float", "double"),
    ("decimal", "double"),
    ("datetime", "datetime"),
    ("date", "datetime"),
    ("timestamp", "datetime"),
    ("str", "string"),
    ("utf8", "string"),
    ("object", "string"),
    ("category", "string"),
    ("categorical", "string"),
    ("enum", "string"),
    ("binary", "binary"),
    ("bytes", "binary"),
)


def _mlflow_type(dtype: str) -> str:
    name = dtype.strip().lower()
    return next((kind for prefix, kind in _MLFLOW_TYPES if name.startswith(prefix)), "any")


def frame_schema(frame: Any) -> dict[str, str]:
    """Column -> dtype name of a pandas or polars frame, from its dtypes alone (no value is
    read): the ``schema`` of :meth:`TrackedRun.log_dataset`."""
    if type(frame).__module__.startswith("polars"):
        return {str(column): str(dtype) for column, dtype in frame.schema.items()}
    return {str(column): str(dtype) for column, dtype in frame.dtypes.items()}


def _schema_json(schema: Mapping[str, str]) -> str:
    """The dataset schema as MLflow writes it (``{"mlflow_colspec": [...]}``), the types mapped
    from dtype names; what the run page's dataset drawer lists."""
    columns = [
        {"type": _mlflow_type(str(dtype)), "name": str(column), "required": True}
        for column, dtype in schema.items()
    ]
    return json.dumps({"mlflow_colspec": columns})


@dataclass(frozen=True)
class RunDataset:
    """One dataset input of an MLflow run, as read back: its name, what it was for
    (``training``/``evaluation``), where it lives, its full data version and row count."""

    name: str
    context: str | None
    source: str
    data_version: str
    rows: int | None

    def line(self) -> str:
        rows = f", {self.rows} rows" if self.rows is not None else ""
        return f"`{self.source}` data version `{self.data_version}`{rows} ({self.name})"


def run_datasets(run: Any) -> list[RunDataset]:
    """The dataset inputs of an MLflow ``Run`` (``client.get_run``), sorted by context then name.
    The data version is the profile's (whole), else the digest."""
    found = []
    for dataset_input in run.inputs.dataset_inputs if run.inputs else ():
        dataset = dataset_input.dataset
        context = next(
            (t.value for t in dataset_input.tags or () if t.key == DATASET_CONTEXT_TAG), None
        )
        try:
            profile = json.loads(dataset.profile) if dataset.profile else {}
            source = json.loads(dataset.source)
        except ValueError:  # written by something else than log_dataset
            profile, source = {}, {}
        found.append(
            RunDataset(
                name=dataset.name,
                context=context,
                source=str(source.get("uri") or source.get("url") or dataset.source),
                data_version=str(profile.get("data_version") or dataset.digest),
                rows=profile.get("rows"),
            )
        )
    return sorted(found, key=lambda d: (d.context or "", d.name))


def partition_data_version(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> str | None:
    """The data version of the latest materialization of partition ``partition`` of ``key``
    (the content hash the IO manager recorded), or None when it was never materialized."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return (records[0].asset_materialization.tags or {}).get(DAGSTER_DATA_VERSION_TAG)


# --- pip requirements ---------------------------------------------------------------------------


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _estimator_distributions(model: Any) -> set[str]:
    """Distributions whose classes appear inside a sklearn-style model (e.g. xgboost in a Pipeline)."""
    objects = [model]
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        with contextlib.suppress(Exception):
            objects.extend(get_params(deep=True).values())
    roots = {type(obj).__module__.split(".", 1)[0] for obj in objects}
    roots -= {"builtins", "__main__"}
    by_module = _packages_distributions()
    return {dist for root in roots for dist in by_module.get(root, ())}


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    # Scans every installed distribution's file list: seconds on a loaded machine, paid at every
    # log_model without the cache. What is installed does not change while a process runs.
    return importlib.metadata.packages_distributions()


def default_pip_requirements(flavor: Flavor, model: Any = None) -> list[str]:
    """Pinned requirements (``name==version``) to load a model of ``flavor`` again.

    The flavor's own packages plus any third-party package whose estimator sits inside ``model``,
    each at the version installed in this environment, sorted so the list is reproducible.
    """
    if flavor not in _FLAVOR_PACKAGES:
        raise ValueError(f"unknown model flavor {flavor!r}; use one of {sorted(_FLAVOR_PACKAGES)}")
    names = set(_FLAVOR_PACKAGES[flavor])
    if model is not None:
        names |= _estimator_distributions(model)
    pins = []
    for name in sorted(names - _NOT_REQUIREMENTS, key=str.lower):
        version = _installed_version(name)
        if version is not None:
            pins.append(f"{name}=={version}")
    return pins


# --- global MLflow state, for the fluent calls that only read it --------------------------------

_FLUENT_LOCK = threading.RLock()


@contextlib.contextmanager
def _global_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI at ``uri`` for the duration, then restore it.

    ``Model.log`` resolves the tracking URI from global state only. mlflow's own helper for this
    restores ``None`` by deleting ``MLFLOW_TRACKING_URI`` from the environment, so both the module
    variable and the environment variable are saved and restored here.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _FLUENT_LOCK:
        saved_global = tracking_utils._tracking_uri
        saved_env = os.environ.get(TRACKING_URI_ENV)
        mlflow.set_tracking_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_global)
            if saved_env is None:
                os.environ.pop(TRACKING_URI_ENV, None)
            else:
                os.environ[TRACKING_URI_ENV] = saved_env


def skip_feast_request_header_provider() -> None:
    """Load MLflow's request-header plugins without Feast's, unless Feast is already imported.

    Feast registers an ``mlflow.request_header_provider`` entry point, so MLflow's first REST call
    in a process imports all of Feast (8-14 s here) just to find a provider that adds a header
    only inside Feast's own MLflow token scope, which this project never opens. Every step that
    talks to a tracking server would pay that. Where Feast is imported anyway, its provider is
    cheap and is left alone.
    """
    if "mlflow.tracking.request_header.registry" in sys.modules or "feast" in sys.modules:
        return
    import mlflow.utils.plugins as plugins

    original = plugins.get_entry_points

    def without_feast(group: str) -> list[importlib.metadata.EntryPoint]:
        return [ep for ep in original(group) if not ep.value.startswith("feast.")]

    plugins.get_entry_points = without_feast
    try:
        import mlflow.tracking.request_header.registry  # noqa: F401  (registers on import)
    finally:
        plugins.get_entry_points = original


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


# The promotion locks this thread holds, as (lock space, model name): see ``_gate_lock``.
_HELD_LOCKS = threading.local()


def _champion_before(name: str, current: str, history: Sequence[Mapping[str, Any]]) -> str:
    """The version that served before ``current`` came in, by the champion history: the
    ``previous`` of the latest entry that brought ``current`` in by a promotion or by hand.

    A rollback entry is skipped: its ``previous`` is the version rolled back *from*, and
    following it would undo the rollback instead of going further back. Entries of moves that
    never happened (a process that died between the history and the alias) bring in another
    version than the one that serves, so they are never followed either.
    """
    for entry in reversed(history):
        if entry.get("version") != current or entry.get("kind") == "rollback":
            continue
        previous = entry.get("previous")
        if previous is None:
            raise RegistryError(
                f"v{current} was the first champion of model {name!r} (since {entry.get('at')}): "
                "there is no earlier champion to roll back to; pass --to VERSION"
            )
        return str(previous)
    raise RegistryError(
        f"the champion history of model {name!r} does not say what served before v{current} "
        "(it came in before the history was kept, or by a rollback whose origin the history no "
        "longer holds): pass --to VERSION"
    )


# --- the resource -------------------------------------------------------------------------------


class MlflowTracking(dg.ConfigurableResource):
    """MLflow tracking and model registry for assets.

    Opens one MLflow run per asset materialization (per partition), tagged with its Dagster
    lineage; logs params, metrics, figures and models; registers model versions and moves aliases.
    """

    tracking_uri: str = Field(
        description="Where runs are recorded: sqlite:///… (local profile) or http(s)://… (server)."
    )
    registry_uri: str = Field(
        default="", description="Where models are registered; empty means the tracking URI."
    )
    artifact_root: str = Field(
        default="",
        description=(
            "Artifact location of new experiments, for database backends without a server "
            "(e.g. <home>/.mlflow/artifacts). Empty: the server decides, or, for SQLite, "
            "an 'artifacts' folder next to the database."
        ),
    )
    experiment_prefix: str = Field(
        default="mlops-assets", description="Experiments are named <prefix>/<use case>."
    )
    registration_timeout_s: float = Field(
        default=300.0, description="How long to wait for a new model version to become READY."
    )
    lock_space: str = Field(
        default="",
        description=(
            "Where the promotion gate's per-model lock lives (mlops_assets.core.locks): the "
            "deployment's PostgreSQL URL (stack profile) or a folder (local: <home>/.locks); "
            "from_settings fills it. Empty: a '.locks' folder next to the SQLite registry, or, "
            "for a registry behind a server, a folder in this machine's temp dir, which "
            "serializes only the gates of this machine."
        ),
    )
    promotion_lock_timeout_s: float = Field(
        default=300.0,
        description=(
            "How long a gate waits for another gate of the same model (which holds the lock for "
            "a few registry calls) before failing the step."
        ),
    )

    _client: Any = PrivateAttr(default=None)
    _experiment_ids: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowTracking:
        """The resource of a deployment profile (see ``mlops_assets.core.profiles``).

        The gate's lock space is the deployment's (``lock_space(settings)``); a PostgreSQL URL
        that carries a password is passed as an ``EnvVar``, so the UI never shows it.
        """
        space: Any = lock_space(settings)
        env = ENV_VARS["postgres_url"]
        if (
            space == settings.postgres_url
            and urlparse(space).password
            and os.environ.get(env, "").strip() == space
        ):
            space = dg.EnvVar(env)
        return cls(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.mlflow_artifact_root,
            lock_space=space,
        )

    # --- backend and client ---------------------------------------------------------------------

    @property
    def effective_registry_uri(self) -> str:
        return self.registry_uri or self.tracking_uri

    @property
    def is_server(self) -> bool:
        return urlparse(self.tracking_uri).scheme in ("http", "https")

    def effective_artifact_root(self) -> str:
        """The artifact root new experiments get; empty when the tracking server decides."""
        if self.artifact_root:
            root = self.artifact_root
            if "://" not in root:  # a local path: MLflow wants an absolute file URI
                root = Path(root).expanduser().absolute().as_uri()
            return root.rstrip("/")
        db_path = sqlite_path(self.tracking_uri)
        if db_path is not None:
            # Without this MLflow would default to ./mlruns under whatever the working directory is.
            return (db_path.parent / "artifacts").as_uri()
        return ""

    def ensure_backend(self) -> None:
        """Create and migrate SQLite databases once (idempotent, safe across processes).

        Tracking servers manage their own database, so nothing is done for http(s) URIs.
        """
        for uri in dict.fromkeys((self.tracking_uri, self.effective_registry_uri)):
            if sqlite_path(uri) is None or uri in _ENSURED_BACKENDS:
                continue
            with _ENSURE_LOCK:
                if uri in _ENSURED_BACKENDS:
                    continue
                with self._mlflow_errors("create or migrate the SQLite database"):
                    _ensure_sqlite_backend(uri, self.effective_artifact_root())
                _ENSURED_BACKENDS.add(uri)

    @property
    def client(self) -> MlflowClient:
        """An MlflowClient bound to this resource's URIs (not to MLflow's global state)."""
        if self._client is None:
            self.ensure_backend()
            from mlflow import MlflowClient

            if self.is_server or urlparse(self.effective_registry_uri).scheme in ("http", "https"):
                skip_feast_request_header_provider()

            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.effective_registry_uri
            )
        return self._client

    @contextlib.contextmanager
    def _mlflow_errors(self, action: str, *, registry: bool = False) -> Iterator[None]:
        """Turn any failure of MLflow inside the block into a ``TrackingError`` saying ``action``."""
        try:
            yield
        except (TrackingError, RegistryError):
            raise
        except Exception as exc:
            uri = self.effective_registry_uri if registry else self.tracking_uri
            where = f"{TRACKING_URI_ENV}={redact_url(self.tracking_uri)}"
            if registry and self.registry_uri:
                where += f", registry URI {redact_url(self.registry_uri)}"
            text = str(exc).strip()
            detail = text.splitlines()[0].rstrip(".") if text else "(no message)"
            hint = ""
            if "Connection refused" in text or "Max retries exceeded" in text:
                hint = " Is the MLflow tracking server running and reachable at that address?"
            raise TrackingError(
                f"MLflow could not {action} ({where}): {type(exc).__name__}: {detail}.{hint}",
                tracking_uri=uri,
            ) from exc

    # --- experiments and runs -------------------------------------------------------------------

    def experiment_name(self, use_case: str) -> str:
        return f"{self.experiment_prefix}/{use_case}"

    def experiment_id(self, use_case: str) -> str:
        """The id of the use case's experiment, created (or restored) on first use."""
        name = self.experiment_name(use_case)
        if name in self._experiment_ids:
            return self._experiment_ids[name]
        client = self.client
        with self._mlflow_errors(f"get or create experiment {name!r}"):
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                root = self.effective_artifact_root()
                try:
                    experiment_id = client.create_experiment(
                        name, artifact_location=f"{root}/{name}" if root else None
                    )
                except Exception as exc:
                    # Another process created it between our lookup and create.
                    if _error_code(exc) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                        raise
                    experiment = client.get_experiment_by_name(name)
                    experiment_id = experiment.experiment_id
            else:
                experiment_id = experiment.experiment_id
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                # A deleted experiment keeps its name; runs cannot be created in it until restored.
                client.restore_experiment(experiment_id)
        self._experiment_ids[name] = experiment_id
        return experiment_id

    @contextlib.contextmanager
    def start_run(
        self,
        context: dg.AssetExecutionContext,
        *,
        use_case: str,
        run_name: str | None = None,
        asset_key: dg.AssetKey | None = None,
        tags: Mapping[str, str] | None = None,
        parent: TrackedRun | None = None,
    ) -> Iterator[TrackedRun]:
        """Open the MLflow run of this materialization; it ends FINISHED, or FAILED on an error.

        ``asset_key`` is needed only in a multi-asset. ``parent`` makes it a nested run (e.g. one
        trial of a tuning study under the study's run), shown under its parent in the MLflow UI.
        An exception of the body ends the run as FAILED (KILLED when the step is interrupted) and
        is re-raised unchanged.

        The run carries MLflow's source tags (:func:`source_tags`: the function that trained it,
        ``JOB``, the git commit) and the Dagster lineage (:func:`lineage_tags`); what it read is
        logged by the body with :meth:`TrackedRun.log_dataset`.
        """
        key = asset_key or context.asset_key
        run_tags = {
            TAG_USE_CASE: use_case,
            **source_tags(context, key),
            **lineage_tags(context, key),
            **(tags or {}),
        }
        if parent is not None:
            run_tags[TAG_PARENT_RUN_ID] = parent.run_id
        if run_name is None:
            partition = run_tags.get(TAG_PARTITION_KEY) or run_tags.get(TAG_PARTITION_RANGE)
            run_name = key.to_user_string() + (f" {partition}" if partition else "")
        run_tags[TAG_PROCESS] = _this_process()
        experiment_id = self.experiment_id(use_case)
        self._end_runs_of_lost_attempts(context, experiment_id, run_tags)
        with self._mlflow_errors(f"start a run for asset {key.to_user_string()}"):
            run = self.client.create_run(experiment_id, tags=run_tags, run_name=run_name)
        tracked = TrackedRun(self, run.info.run_id, experiment_id, run_tags)
        context.log.info(f"MLflow run {tracked.run_id}: {tracked.url}")
        try:
            yield tracked
        except BaseException as exc:
            status = "FAILED" if isinstance(exc, Exception) else "KILLED"
            try:
                self.client.set_terminated(tracked.run_id, status=status)
            except Exception as end_exc:  # the body's error is the one that matters
                context.log.warning(
                    f"could not mark MLflow run {tracked.run_id} {status}: {end_exc}"
                )
            raise
        with self._mlflow_errors(f"finish run {tracked.run_id}"):
            self.client.set_terminated(tracked.run_id, status="FINISHED")

    def _end_runs_of_lost_attempts(
        self, context: dg.AssetExecutionContext, experiment_id: str, run_tags: Mapping[str, str]
    ) -> None:
        """Mark KILLED the MLflow runs that an earlier attempt of this very step left RUNNING.

        A step's process that dies (``kill -9``, the out-of-memory killer, a Celery worker lost
        mid-step and the step redelivered to another) cannot end its runs. Within one Dagster run
        an asset is one step, and a step's attempts never overlap, so a RUNNING run of the same
        Dagster run and asset opened by another process is such an orphan.
        """
        dagster_run, asset = run_tags.get(TAG_RUN_ID), run_tags.get(TAG_ASSET_KEY)
        if not dagster_run or not asset:
            return
        query = (
            f"tags.`{TAG_RUN_ID}` = '{dagster_run}' AND tags.`{TAG_ASSET_KEY}` = '{asset}' "
            "AND attributes.status = 'RUNNING'"
        )
        with self._mlflow_errors(f"look for lost attempts of {asset}"):
            runs = self.client.search_runs([experiment_id], filter_string=query, max_results=100)
        for run in runs:
            if run.data.tags.get(TAG_PROCESS) == run_tags[TAG_PROCESS]:
                continue  # this process's own (a parent run of nested ones)
            with self._mlflow_errors(f"end run {run.info.run_id} of a lost attempt"):
                self.client.set_tag(run.info.run_id, TAG_ENDED_BY, run_tags[TAG_PROCESS])
                self.client.set_terminated(run.info.run_id, status="KILLED")
            context.log.warning(
                f"MLflow run {run.info.run_id} of an earlier attempt of this step "
                f"({run.data.tags.get(TAG_PROCESS, 'unknown process')}) was left RUNNING by a "
                "process that died: marked KILLED"
            )

    # --- registry -------------------------------------------------------------------------------

    def register(
        self,
        model: ModelInfo | str,
        name: str,
        *,
        alias: str | None = CANDIDATE,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Register ``model`` (a logged ``ModelInfo`` or a model URI) as a new version of ``name``.

        The version is READY and carries ``alias`` when this returns. If anything fails after the
        version was created, the version is deleted and ``TrackingError`` raised, so the registry
        never holds a version that is half registered. The Dagster lineage tags of the source run
        are copied onto the version, so the registry alone tells where a version came from.
        """
        if isinstance(model, str):
            model_uri, model_id, run_id = model, _model_id_of(model), None
        else:
            model_uri, model_id, run_id = model.model_uri, model.model_id, model.run_id
        client = self.client
        with self._mlflow_errors(f"register {model_uri} as model {name!r}", registry=True):
            version_tags = dict(self._lineage_of_run(run_id)) if run_id else {}
            version_tags.update(tags or {})
            try:
                client.create_registered_model(name)
            except Exception as exc:
                if _error_code(exc) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                    raise
            # A database registry resolves a models:/<model_id> source through MLflow's global
            # tracking URI, not this client's (a TODO in MLflow's SqlAlchemyStore); a server
            # resolves it on its own side.
            scope = (
                contextlib.nullcontext()
                if self.is_server
                else _global_tracking_uri(self.tracking_uri)
            )
            with scope:
                created = client.create_model_version(
                    name,
                    source=model_uri,
                    run_id=run_id,
                    tags=version_tags,
                    model_id=model_id,
                    await_creation_for=0,  # we wait ourselves, so a timeout can clean up
                )
        version = str(created.version)
        try:
            self._wait_until_ready(name, version)
            if alias == CHAMPION:
                # A version registered straight as the champion is a move like any other: under
                # the model's lock, and in its history.
                with self._gate_lock(name):
                    self._move_champion(
                        name, version, kind="manual", reason="registered as the champion"
                    )
            elif alias:
                client.set_registered_model_alias(name, alias, version)
            return client.get_model_version(name, version)
        except BaseException as exc:
            cleanup = self._delete_version(name, version)
            if not isinstance(exc, Exception):
                raise
            step = f"setting alias {alias!r}" if alias else "waiting for it to become READY"
            raise TrackingError(
                f"MLflow registered version {version} of model {name!r} but {step} failed "
                f"({TRACKING_URI_ENV}={redact_url(self.tracking_uri)}): "
                f"{type(exc).__name__}: {exc}. {cleanup}",
                tracking_uri=self.effective_registry_uri,
            ) from exc

    def _lineage_of_run(self, run_id: str) -> dict[str, str]:
        run = self.client.get_run(run_id)
        return {k: v for k, v in run.data.tags.items() if k.startswith(("dagster.", "mlops."))}

    def _wait_until_ready(self, name: str, version: str) -> None:
        deadline = time.monotonic() + self.registration_timeout_s
        delay = 0.05
        while True:
            status = str(self.client.get_model_version(name, version).status)
            if status == _READY:
                return
            if status == _FAILED_REGISTRATION:
                raise RuntimeError(f"model version {name}/{version} ended in {status}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"model version {name}/{version} still {status} after "
                    f"{self.registration_timeout_s:.0f} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _delete_version(self, name: str, version: str) -> str:
        """Delete a version that must not stay registered; say what happened, never raise."""
        try:
            self.client.delete_model_version(name, version)
        except Exception as exc:
            return (
                f"Deleting version {version} failed too ({type(exc).__name__}: {exc}); "
                f"delete it by hand before anything reads model {name!r}."
            )
        return f"Version {version} was deleted again; no alias was moved."

    def set_alias(self, name: str, alias: str, version: str | int, *, reason: str = "") -> None:
        """Point ``alias`` of model ``name`` at ``version``; ``reason`` is kept on the version.

        Moving ``champion`` this way is a move by hand: it takes the model's promotion lock and
        is recorded in the champion history with kind ``manual``.
        """
        if alias == CHAMPION:
            with self._gate_lock(name):
                self._move_champion(name, str(version), kind="manual", reason=reason)
            return
        with self._mlflow_errors(f"set alias {alias!r} of model {name!r}", registry=True):
            if reason:
                self.client.set_model_version_tag(name, str(version), f"{alias}.reason", reason)
            self.client.set_registered_model_alias(name, alias, str(version))

    def _move_champion(
        self,
        name: str,
        version: str,
        *,
        kind: HistoryKind,
        reason: str,
        version_reason: str | None = None,
    ) -> str | None:
        """Point ``champion`` of ``name`` at ``version`` and record the move in the history;
        returns the version it replaced (None: there was none). The caller holds the model's
        lock (``_gate_lock``), so nothing else moves the alias or writes the history meanwhile.

        ``reason`` goes into the history entry; ``version_reason`` (default: ``reason``) is kept
        on the version as ``champion.reason``. Moving the alias to the version it already points
        at records nothing.
        """
        client = self.client
        with self._mlflow_errors(f"move alias {CHAMPION!r} of model {name!r}", registry=True):
            registered = client.get_registered_model(name)
            previous = registered.aliases.get(CHAMPION)
            previous = None if previous is None else str(previous)
            client.get_model_version(name, version)  # a version that does not exist fails here
            tag_reason = reason if version_reason is None else version_reason
            if tag_reason:
                client.set_model_version_tag(name, version, f"{CHAMPION}.reason", tag_reason)
            if previous == version:
                client.set_registered_model_alias(name, CHAMPION, version)
                return previous
            old_value = registered.tags.get(HISTORY_TAG)
            try:
                entries = parse_history(old_value)
            except ValueError as exc:
                # A hand-edited history must not block a promotion or a rollback: it is set
                # aside, whole, and a new history starts with this move.
                _log.warning(
                    "the %s tag of model %r does not parse (%s); kept as %s, a new history "
                    "starts now",
                    HISTORY_TAG,
                    name,
                    exc,
                    UNREADABLE_HISTORY_TAG,
                )
                client.set_registered_model_tag(name, UNREADABLE_HISTORY_TAG, old_value)
                entries = []
            entries.append(
                {
                    "version": version,
                    "previous": previous,
                    "at": _now(),
                    "kind": kind,
                    "reason": _clip(reason),
                }
            )
            # The history is written BEFORE the alias moves. A process that dies in between
            # leaves an entry for a move that did not happen, which the history itself shows:
            # the next move records the champion it really replaced as its ``previous``, and a
            # rollback looks only for the entry that brought in the version that serves, so the
            # stray entry is never followed. The other order would leave a champion nobody can
            # account for: a move with no when, no why and no kind, and a rollback that follows
            # an older entry of the same version to the wrong "previous" champion.
            client.set_registered_model_tag(name, HISTORY_TAG, history_value(entries))
            try:
                client.set_registered_model_alias(name, CHAMPION, version)
            except BaseException:
                # The move failed and we are still here: take the entry back.
                with contextlib.suppress(Exception):
                    if old_value is None:
                        client.delete_registered_model_tag(name, HISTORY_TAG)
                    else:
                        client.set_registered_model_tag(name, HISTORY_TAG, old_value)
                raise
        return previous

    def _registered_model(self, name: str) -> Any:
        """The registered model ``name`` (aliases, tags); ``RegistryError`` when there is none."""
        try:
            return self.client.get_registered_model(name)
        except Exception as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(
                    f"model {name!r} is not registered in {redact_url(self.effective_registry_uri)}"
                ) from None
            raise

    def champion_history(self, name: str) -> list[dict[str, Any]]:
        """The moves of model ``name``'s champion alias, oldest first: ``version``, ``previous``
        (None for the first champion), ``at`` (UTC, ISO 8601), ``kind`` (promotion, rollback or
        manual) and ``reason``. Empty when the alias never moved since histories are kept.

        Raises ``RegistryError`` for a model that is not registered or a history that does not
        parse.
        """
        with self._mlflow_errors(f"read the champion history of model {name!r}", registry=True):
            registered = self._registered_model(name)
        try:
            return parse_history(registered.tags.get(HISTORY_TAG))
        except ValueError as exc:
            raise RegistryError(
                f"the tag {HISTORY_TAG} of model {name!r} is not a champion history ({exc}); "
                "the next move of the alias sets it aside and starts a new one"
            ) from None

    def _servable_version(self, name: str, version: str, role: str) -> None:
        """Refuse (``RegistryError``) a rollback target that is not a READY version of ``name``."""
        try:
            found = self.client.get_model_version(name, version)
        except Exception as exc:
            if _error_code(exc) not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            found = None
        if found is None:
            try:
                quoted = name.replace("'", "\\'")
                found_versions = self.client.search_model_versions(f"name = '{quoted}'")
                existing = sorted((int(v.version) for v in found_versions), reverse=True)
                shown = ", ".join(f"v{v}" for v in existing[:10]) or "none"
            except Exception:  # the list only helps the message; the refusal stands without it
                shown = "(could not be listed)"
            raise RegistryError(
                f"{role} v{version} of model {name!r} does not exist (deleted, or never "
                f"registered); its versions are: {shown}"
            )
        if str(found.status) != _READY:
            raise RegistryError(
                f"{role} v{version} of model {name!r} is {found.status}, not READY: it cannot serve"
            )

    def rollback(
        self,
        name: str,
        *,
        to: str | int | None = None,
        reason: str,
        expect: str | int | None = None,
    ) -> RollbackResult:
        """Move ``champion`` of model ``name`` back: to version ``to``, or, without it, to the
        version that served before the current champion came in (by a promotion or by hand,
        according to the champion history). Repeated rollbacks without ``to`` walk back through
        the promotions (v3, then v2, then v1); one that reaches the first recorded champion, or a
        champion the history does not account for, is refused and asks for ``to``.

        Recorded like a promotion: the history gets a ``rollback`` entry with ``reason``; the
        new champion's ``champion.reason`` is "rollback from vX: <reason>"; the version left gets
        ``rollback.reason`` ("rolled back to vY: <reason>"). The API follows within its poll
        interval, as it follows a promotion.

        Compare-and-set under the model's promotion lock, like ``promote``: the champion is read
        inside it, so a rollback never undoes a move it did not see. ``expect``: the champion the
        caller means to roll back; refused if another serves by the time the lock is held.

        Raises ``RegistryError`` (nothing moved) for a blank reason, a model without champion,
        a target that does not exist, is not READY or already serves, or no previous champion
        on record; ``PromotionLockError`` when the lock is not free in time.
        """
        reason = (reason or "").strip()
        if not reason:
            raise RegistryError(
                f"a rollback of model {name!r} needs a reason: it is kept in the champion history "
                "and on both versions"
            )
        target = None if to is None else as_version(to)
        expected = None if expect is None else as_version(expect)
        with (
            self._gate_lock(name),
            self._mlflow_errors(f"roll back model {name!r}", registry=True),
        ):
            registered = self._registered_model(name)
            current = registered.aliases.get(CHAMPION)
            if current is None:
                raise RegistryError(
                    f"model {name!r} has no champion: there is nothing to roll back"
                )
            current = str(current)
            if expected is not None and expected != current:
                raise RegistryError(
                    f"the champion of model {name!r} is v{current}, not v{expected}: it moved "
                    "since you looked; nothing was rolled back"
                )
            if target is None:
                try:
                    history = parse_history(registered.tags.get(HISTORY_TAG))
                except ValueError:
                    raise RegistryError(
                        f"the tag {HISTORY_TAG} of model {name!r} is not a champion history (it "
                        "was edited by hand?): it cannot say what served before "
                        f"v{current}; pass --to VERSION"
                    ) from None
                target = _champion_before(name, current, history)
                self._servable_version(name, target, "the previous champion")
            else:
                if target == current:
                    raise RegistryError(
                        f"v{target} already is the champion of model {name!r}: nothing to roll back"
                    )
                self._servable_version(name, target, "the rollback target")
            self._move_champion(
                name,
                target,
                kind="rollback",
                reason=reason,
                version_reason=f"rollback from v{current}: {reason}",
            )
            # After the move, so that this tag never claims a rollback that did not happen.
            self.client.set_model_version_tag(
                name, current, ROLLBACK_REASON_TAG, f"rolled back to v{target}: {reason}"
            )
        return RollbackResult(name=name, from_version=current, to_version=target, reason=reason)

    # --- rollout mode ---------------------------------------------------------------------------

    def set_rollout(self, name: str, rollout: Rollout) -> Rollout:
        """Set how the candidate of model ``name`` reaches requests (``rollout.*`` tags of the
        registered model); returns the setting read back. ``RegistryError`` for a model that is
        not registered.

        The tags are written one by one (the registry has no batch write for them), in an order
        that keeps every state in between no wider than the old or the new setting: entering
        canary, the share is written before the mode; otherwise the mode before the share. So a
        reader in between never sees a canary answering more entities than either setting says.
        Under the model's promotion lock: two settings at once never mix.
        """
        tags = rollout.tags()
        first, second = (SHARE_TAG, MODE_TAG) if rollout.mode == "canary" else (MODE_TAG, SHARE_TAG)
        order = [first, second, *(k for k in tags if k not in (first, second))]
        with (
            self._gate_lock(name),
            self._mlflow_errors(f"set the rollout of model {name!r}", registry=True),
        ):
            self._registered_model(name)
            for key in order:
                self.client.set_registered_model_tag(name, key, tags[key])
        return self.get_rollout(name)

    def get_rollout(self, name: str) -> Rollout:
        """How the candidate of model ``name`` reaches requests (``off`` when never set).

        ``RegistryError`` for a model that is not registered; ``RolloutError`` for tags that make
        no setting (edited by hand).
        """
        with self._mlflow_errors(f"read the rollout of model {name!r}", registry=True):
            registered = self._registered_model(name)
        return rollout_from_tags(registered.tags)

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version ``alias`` points at; None when the model or the alias does not exist."""
        with self._mlflow_errors(f"look up alias {alias!r} of model {name!r}", registry=True):
            try:
                registered = self.client.get_registered_model(name)
            except Exception as exc:
                if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                    return None
                raise
            # The alias map of the registered model tells "no such alias" apart from real errors;
            # MLflow's get_model_version_by_alias reports both as one exception.
            version = registered.aliases.get(alias)
            if version is None:
                return None
            return self.client.get_model_version(name, str(version))

    def champion(self, name: str) -> ModelVersion | None:
        """The version that serves (alias ``champion``), or None before the first promotion."""
        return self.get_version_by_alias(name, CHAMPION)

    def promote(
        self,
        name: str,
        version: str | int,
        rule: PromotionRule,
        *,
        candidate_metrics: Mapping[str, float] | None = None,
        champion_metrics: Mapping[str, float] | None = None,
        compared_with: str | int | None = None,
    ) -> PromotionDecision:
        """The promotion gate: move ``champion`` to ``version`` if it beats the current champion.

        Metrics are the ones given (e.g. both models scored on the same fresh holdout) or, when
        not given, those logged in each version's source run. The decision and its reason are
        kept as tags on the candidate version (``promotion.decision``, ``promotion.reason``)
        whether or not it was promoted, and as ``champion.reason`` on the new champion.

        ``compared_with`` is the champion version the caller saw when it measured the metrics it
        passes (None: there was no champion), so callers that pass ``candidate_metrics`` or
        ``champion_metrics`` must give it; passing ``champion_metrics`` without it is a
        ``ValueError``.

        The gate is compare-and-set. Gates of one model are serialized by a named lock of the
        deployment (``lock_space``); inside it the champion is read again, the decision made, and
        the alias moved, so two gates can never both replace the same old champion. If the
        champion is no longer ``compared_with`` (another gate moved it while this one scored):

        * metrics measured by the caller are evidence about the old champion only, so the
          candidate is not promoted on them, whichever way they point; the decision is "kept",
          and its reason says the champion moved from vX to vY during the gate and the candidate
          must be re-gated against vY. Scoring vY here would mean loading models and data the
          caller owns, under a lock every gate of the model waits on.
        * with metrics read from the runs (none passed), the gate simply decides against the new
          champion's logged metrics: they are read inside the lock, so they are never stale; the
          reason notes the move.

        Raises ``PromotionLockError`` when the lock is not free within
        ``promotion_lock_timeout_s`` or its space cannot be reached; nothing is decided then.
        """
        from mlops_assets.core.evaluation import PromotionDecision, decide_promotion

        version = str(version)
        seen = None if compared_with is None else str(compared_with)
        measured = candidate_metrics is not None or champion_metrics is not None
        if champion_metrics is not None and seen is None:
            raise ValueError(
                f"promote({name!r}, {version!r}) got champion_metrics but no compared_with: say "
                "which champion version they were measured on, so the gate can tell whether the "
                "champion moved since"
            )
        with self._gate_lock(name):
            # Everything below reads and writes the registry as one step: no other gate of
            # this model runs between the read of the champion and the move of the alias.
            current = self.champion(name)
            now = str(current.version) if current is not None else None
            if now == version:
                # Re-running the gate on the version that serves decides nothing and records
                # nothing.
                value = (candidate_metrics or {}).get(rule.metric)
                return PromotionDecision(
                    promote=False,
                    reason=f"candidate v{version} already is the champion",
                    metric=rule.metric,
                    candidate_value=value,
                    champion_value=value,
                    champion_version=version,
                )
            moved = now != seen
            if measured and moved:
                # Refused, not decided again: see the docstring.
                measured_on = f"against {_shown(seen)}" if seen else "with no champion to compare"
                against_now = f" against {_shown(now)}" if now else ""
                value = (candidate_metrics or {}).get(rule.metric)
                decision = PromotionDecision(
                    promote=False,
                    reason=(
                        f"champion moved from {_shown(seen)} to {_shown(now)} during the gate: "
                        f"candidate v{version} was measured {measured_on}, so it must be "
                        f"re-gated{against_now}"
                    ),
                    metric=rule.metric,
                    candidate_value=value,
                    champion_value=None,
                    champion_version=now,
                )
            else:
                with self._mlflow_errors(f"read the metrics of model {name!r}", registry=True):
                    if candidate_metrics is None:
                        candidate_metrics = self._version_metrics(name, version)
                    if champion_metrics is None and now is not None:
                        champion_metrics = self._version_metrics(name, now)
                decision = decide_promotion(
                    rule,
                    candidate_metrics,
                    champion_metrics,
                    has_champion=now is not None,
                    champion_version=now,
                )
                if compared_with is not None and moved:
                    note = (
                        f" (champion moved from {_shown(seen)} to {_shown(now)} during the gate; "
                        f"decided against {_shown(now)})"
                    )
                    decision = dataclasses.replace(decision, reason=decision.reason + note)
            with self._mlflow_errors(
                f"record the promotion decision of {name!r} v{version}", registry=True
            ):
                self.client.set_model_version_tag(
                    name, version, "promotion.decision", "promoted" if decision.promote else "kept"
                )
                self.client.set_model_version_tag(
                    name, version, "promotion.reason", decision.reason
                )
            if decision.promote:
                self._move_champion(name, version, kind="promotion", reason=decision.reason)
        return decision

    def promotion_lock_space(self) -> str:
        """Where the gate's lock lives: ``lock_space`` when set; else a ``.locks`` folder next to
        a SQLite registry (every process on that database shares it); else, for a registry
        behind a server, a folder of this machine's temp dir, per user and registry."""
        space = _plain(self.lock_space)
        if space:
            return space
        db_path = sqlite_path(self.effective_registry_uri)
        if db_path is not None:
            return str(db_path.parent / ".locks")
        digest = hashlib.sha256(self.effective_registry_uri.encode()).hexdigest()[:12]
        return str(Path(tempfile.gettempdir()) / f"mlops-assets-locks-{os.getuid()}-{digest}")

    @contextlib.contextmanager
    def _gate_lock(self, name: str) -> Iterator[None]:
        """Hold the promotion lock of model ``name`` for the block (see ``promote``).

        Re-entrant within a thread: a write that takes the lock (``set_alias`` of the champion)
        may run inside a block that holds it already (the gate). The lock itself is not: a
        second ``flock`` of the same file, or advisory lock on another connection, would wait
        for the first one forever.
        """
        space = self.promotion_lock_space()
        key = (space, name)
        held = _HELD_LOCKS.__dict__.setdefault("keys", set())
        if key in held:
            yield
            return
        timeout = self.promotion_lock_timeout_s
        with contextlib.ExitStack() as stack:
            # Only taking the lock is translated here; the block's own errors pass unchanged.
            try:
                stack.enter_context(named_lock(space, GATE_LOCK_PREFIX + name, timeout_s=timeout))
            except LockTimeout as exc:
                raise PromotionLockError(
                    f"the promotion gate of model {name!r} waited {timeout:g} s for another gate "
                    f"of the same model, which still holds the lock in {redact_url(space)} "
                    "(a gate holds it for a few registry calls: look for a stuck run). Nothing "
                    "was decided.",
                    space=space,
                ) from exc
            except Exception as exc:
                text = str(exc).strip()
                detail = text.splitlines()[0].rstrip(".") if text else "(no message)"
                raise PromotionLockError(
                    f"the promotion gate of model {name!r} could not take its lock in "
                    f"{redact_url(space)} ({type(exc).__name__}: {detail}); the lock space is "
                    f"the deployment's {ENV_VARS['postgres_url']} on the stack profile, "
                    f"<{ENV_VARS['home']}>/.locks on the local one. Nothing was decided.",
                    space=space,
                ) from exc
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)

    def _version_metrics(self, name: str, version: str) -> dict[str, float]:
        run_id = self.client.get_model_version(name, version).run_id
        return dict(self.client.get_run(run_id).data.metrics) if run_id else {}

    def load_model(self, name: str, alias: str, *, flavor: Flavor = "sklearn") -> Any:
        """The model behind ``models:/<name>@<alias>``, in ``flavor`` (an sklearn Pipeline by
        default; ``"pyfunc"`` for a custom ``PythonModel``).

        Resolved through this resource's registry, not MLflow's global one.
        """
        version = self.get_version_by_alias(name, alias)
        if version is None:
            raise TrackingError(
                f"model {name!r} has no alias {alias!r}", tracking_uri=self.tracking_uri
            )
        return self.load_model_version(name, version.version, flavor=flavor)

    def load_model_version(
        self, name: str, version: str | int, *, flavor: Flavor = "sklearn"
    ) -> Any:
        """Version ``version`` of model ``name``, in ``flavor``.

        Loading a version, not an alias, is what a server that resolved the alias itself needs:
        the alias may move between the look-up and the download.
        """
        with self._mlflow_errors(f"load model {name} v{version}", registry=True):
            import mlflow.pyfunc
            import mlflow.sklearn
            import mlflow.xgboost

            loaders = {
                "sklearn": mlflow.sklearn.load_model,
                "xgboost": mlflow.xgboost.load_model,
                "pyfunc": mlflow.pyfunc.load_model,
            }
            uri = self.client.get_model_version_download_uri(name, str(version))
            with _global_tracking_uri(self.tracking_uri):
                return loaders[flavor](uri)

    def download_model(self, name: str, version: str | int, destination: Path) -> Path:
        """Copy the files of model ``name`` version ``version`` into the local folder
        ``destination``; returns the folder holding the ``MLmodel`` file."""
        import mlflow.artifacts

        with self._mlflow_errors(f"download model {name} v{version}", registry=True):
            uri = self.client.get_model_version_download_uri(name, str(version))
            with _global_tracking_uri(self.tracking_uri):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=str(destination)
                )
        return Path(local)

    # --- links and metadata ---------------------------------------------------------------------

    def run_url(self, run_id: str, experiment_id: str | None = None) -> str:
        """Where a person finds the run.

        For a tracking server, the run's page in its UI. A SQLite backend has no UI of its own,
        so this is the ``runs:/`` URI; ``ui_hint`` says how to browse it.
        """
        if not self.is_server:
            return f"runs:/{run_id}"
        if experiment_id is None:
            with self._mlflow_errors(f"read run {run_id}"):
                experiment_id = self.client.get_run(run_id).info.experiment_id
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def ui_hint(self, run_id: str, experiment_id: str) -> str:
        """How to open a run of a backend without a server in the MLflow UI."""
        return (
            f"mlflow ui --backend-store-uri {redact_url(self.tracking_uri)}, then open "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"
        )

    def model_metadata(
        self,
        run_id: str,
        *,
        experiment_id: str | None = None,
        model_version: ModelVersion | None = None,
        alias: str | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> dict[str, dg.MetadataValue]:
        """Materialization metadata of a model asset: MLflow run, model version, alias, metrics,
        and the lineage the run recorded, so the Dagster UI links the same chain as MLflow's:

        * ``training_data`` / ``evaluation_data``: each dataset input of that context, its URI,
          full data version and rows (:meth:`TrackedRun.log_dataset`);
        * ``input_data_versions``: the version of each input asset Dagster recorded for this
          step (its ``dagster/input_data_version/<key>`` tags: an unpartitioned input's data
          version; for a partitioned one, Dagster's hash over the versions of the partitions
          read, which is why it differs from the partition's own version in ``training_data``);
        * ``code_version`` (the asset's, ``dagster.code_version``) and ``git_commit``;
        * ``lineage_command``: ``mlops lineage model <name>@<version>``, the CLI call that walks
          the whole chain from this version down to the source partitions.
        """
        with self._mlflow_errors(f"read run {run_id}"):
            run = self.client.get_run(run_id)
        experiment_id = experiment_id or run.info.experiment_id
        url = self.run_url(run_id, experiment_id)
        metadata: dict[str, dg.MetadataValue] = {
            "mlflow_run_id": dg.MetadataValue.text(run_id),
            "mlflow_run_url": dg.MetadataValue.url(url)
            if self.is_server
            else dg.MetadataValue.text(url),
            "mlflow_tracking_uri": dg.MetadataValue.text(redact_url(self.tracking_uri)),
        }
        if not self.is_server:
            metadata["mlflow_ui"] = dg.MetadataValue.text(self.ui_hint(run_id, experiment_id))
        if model_version is not None:
            aliases = [alias] if alias else list(getattr(model_version, "aliases", []) or [])
            metadata["model_name"] = dg.MetadataValue.text(model_version.name)
            metadata["model_version"] = dg.MetadataValue.int(int(model_version.version))
            metadata["model_uri"] = dg.MetadataValue.text(
                f"models:/{model_version.name}/{model_version.version}"
            )
            if aliases:
                metadata["model_alias"] = dg.MetadataValue.text(", ".join(sorted(aliases)))
            metadata["lineage_command"] = dg.MetadataValue.text(
                f"mlops lineage model {model_version.name}@{model_version.version}"
            )
        metadata.update(run_lineage_metadata(run))
        for key, value in sorted((metrics or {}).items()):
            metadata[f"metric/{key}"] = dg.MetadataValue.float(float(value))
        return metadata


def run_lineage_metadata(run: Any) -> dict[str, dg.MetadataValue]:
    """The lineage an MLflow ``Run`` recorded, as Dagster metadata (see ``model_metadata``);
    an entry the run lacks is left out."""
    tags = run.data.tags
    metadata: dict[str, dg.MetadataValue] = {}
    datasets = run_datasets(run)
    for context in DATASET_CONTEXTS:
        lines = [f"- {d.line()}" for d in datasets if d.context == context]
        if lines:
            metadata[f"{context}_data"] = dg.MetadataValue.md("\n".join(lines))
    prefix, suffix = "dagster.input.", ".data_version"
    inputs = {
        key[len(prefix) : -len(suffix)]: value
        for key, value in sorted(tags.items())
        if key.startswith(prefix) and key.endswith(suffix)
    }
    if inputs:
        metadata["input_data_versions"] = dg.MetadataValue.json(inputs)
    if tags.get(TAG_CODE_VERSION):
        metadata["code_version"] = dg.MetadataValue.text(tags[TAG_CODE_VERSION])
    if tags.get(TAG_GIT_COMMIT):
        metadata["git_commit"] = dg.MetadataValue.text(tags[TAG_GIT_COMMIT])
    if tags.get(TAG_SOURCE_NAME):
        metadata["mlflow_source"] = dg.MetadataValue.text(tags[TAG_SOURCE_NAME])
    return metadata


# --- binary classifiers: their pyfunc returns the probability of the positive class ------------
#
# A user who loads a classifier with ``mlflow.pyfunc.load_model(uri).predict(rows)`` wants the
# probability of the positive class, as batch scoring, the promotion gate and the API compute it,
# not MLflow's default for the sklearn flavor (``predict``: 0/1 labels at a 0.5 threshold that no
# use case decides on). So a binary classifier logged with the sklearn flavor gets a pyfunc flavor
# whose loader is this module: ``mlflow.sklearn.load_model`` still returns the fitted estimator
# (what the assets and the API load), while ``mlflow.pyfunc.load_model`` returns
# :class:`PositiveClassProbability` around the same pickle. This module is recorded in the
# MLmodel file of every such model: renaming it or ``_load_pyfunc`` breaks their pyfunc loading.
# The signature (:func:`classifier_signature`) declares the output and no input schema.

_LOADER_MODULE = __name__


def is_binary_classifier(model: Any) -> bool:
    """Whether ``model`` is a fitted scikit-learn-style classifier of exactly two classes with
    ``predict_proba`` (a Pipeline ending in one counts): the models whose pyfunc returns the
    probability of the positive class."""
    try:
        from sklearn.base import is_classifier

        classes = getattr(model, "classes_", None)  # an unfitted Pipeline raises: no classes
    except Exception:
        return False
    return (
        classes is not None
        and len(classes) == 2
        and callable(getattr(model, "predict_proba", None))
        and is_classifier(model)
    )


class PositiveClassProbability:
    """The pyfunc of a binary classifier: ``predict(rows)`` is ``P(classes_[1])`` per row, a
    float64 array in the rows' order (``model.predict_proba(rows)[:, 1]``).

    Rows are read by column name, as the estimator was fitted (``feature_names_in_``); other
    columns are ignored, and a missing one raises ``ValueError`` naming it. ``get_raw_model()``
    is the estimator itself.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_raw_model(self) -> Any:
        """The fitted estimator (what ``mlflow.sklearn.load_model`` returns)."""
        return self.model

    def predict(self, data: Any, params: Mapping[str, Any] | None = None) -> Any:
        """P(positive class) of each row of ``data`` (a DataFrame, records or one record)."""
        import numpy as np
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            is_record = isinstance(data, Mapping) and not any(
                isinstance(v, list | tuple | np.ndarray | pd.Series) for v in data.values()
            )
            data = pd.DataFrame([data] if is_record else data)
        columns = getattr(self.model, "feature_names_in_", None)
        if columns is not None:
            columns = [str(c) for c in columns]
            missing = [c for c in columns if c not in data.columns]
            if missing:
                raise ValueError(
                    f"cannot score: {len(missing)} model-input column(s) missing: "
                    f"{', '.join(missing)}"
                )
            data = data[columns]
        return np.asarray(self.model.predict_proba(data)[:, 1], dtype=np.float64)


def _load_pyfunc(path: str) -> PositiveClassProbability:
    """MLflow's pyfunc loader for the models logged with :class:`PositiveClassProbability`:
    the sklearn flavor's own pickle (``path``), wrapped."""
    import mlflow.sklearn

    # The sklearn flavor's loader reads the serialization format from the MLmodel file next to
    # ``path``; its wrapper is discarded for ours.
    return PositiveClassProbability(mlflow.sklearn._load_pyfunc(path).get_raw_model())


class _PositiveProbabilitySklearn:
    """``mlflow.sklearn`` as ``Model.log`` uses a flavor module, except that the pyfunc flavor
    loads through :func:`_load_pyfunc`; the ``sklearn`` flavor and its pickle are unchanged."""

    __name__ = "mlflow.sklearn"  # the flavor MLflow records for the LoggedModel

    @staticmethod
    def save_model(path: str, mlflow_model: Any, **kwargs: Any) -> None:
        import mlflow.pyfunc
        import mlflow.sklearn
        from mlflow.models.model import MLMODEL_FILE_NAME

        mlflow.sklearn.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        conf = mlflow_model.flavors[mlflow.pyfunc.FLAVOR_NAME]
        conf[mlflow.pyfunc.MAIN] = _LOADER_MODULE
        conf.pop("predict_fn", None)  # ours is ``predict``
        mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))


def classifier_signature(model: Any, input_example: Any) -> Any:
    """The MLflow signature of a binary classifier's pyfunc: one float64 per row (the
    probability of the positive class) out, and **no input schema**.

    No input schema on purpose. The rows of a training set type the same column differently
    with the data (a count is int64 without nulls and float64 with them once polars hands it to
    pandas; a JSON payload brings ints for floats; a time is tz-aware, naive or ISO text), and
    MLflow enforces a declared type strictly: int64 is "unsafe" for ``double``, ``long`` refuses
    NaN, ``datetime`` refuses tz-aware values. Declaring such columns ``Any`` is accepted but
    checked value by value, which made ``predict`` 14x slower (60k fraud rows: 2.4 s against
    0.17 s). The estimator's first steps coerce every column and name a bad one, and
    :class:`PositiveClassProbability` names a missing one; the input example shows the columns.
    Housing's and demand's pyfuncs make the same choice.

    ``input_example`` is scored here, so a model that cannot read its own example fails when it
    is logged rather than at its first user.
    """
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    scores = PositiveClassProbability(model).predict(input_example)
    if not np.all((scores >= 0.0) & (scores <= 1.0)):
        raise ValueError("the classifier's probabilities of its input example are not in [0, 1]")
    return ModelSignature(inputs=None, outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))]))


def _model_id_of(model_uri: str) -> str | None:
    """The LoggedModel id of a ``models:/<model_id>`` URI (not of ``models:/<name>/<version>``)."""
    prefix = "models:/"
    if model_uri.startswith(prefix):
        rest = model_uri[len(prefix) :]
        if rest and "/" not in rest and "@" not in rest:
            return rest
    return None


class TrackedRun:
    """The MLflow run of one materialization, as ``MlflowTracking.start_run`` yields it."""

    def __init__(
        self, tracking: MlflowTracking, run_id: str, experiment_id: str, tags: Mapping[str, str]
    ) -> None:
        self.tracking = tracking
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tags = dict(tags)
        # The latest value of every metric logged through this object, for the asset's metadata.
        self.metrics: dict[str, float] = {}

    @property
    def url(self) -> str:
        return self.tracking.run_url(self.run_id, self.experiment_id)

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return self.tracking._mlflow_errors(f"{action} in run {self.run_id}")

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's inputs (hyperparameters, windows, sizes); values become strings."""
        from mlflow.entities import Param

        if not params:
            return
        with self._errors("log params"):
            self.tracking.client.log_batch(
                self.run_id, params=[Param(str(k), str(v)) for k, v in sorted(params.items())]
            )

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """Record the run's results; the latest values also go into ``model_metadata``."""
        from mlflow.entities import Metric

        if not metrics:
            return
        timestamp = int(time.time() * 1000)
        values = {str(k): float(v) for k, v in metrics.items()}
        with self._errors("log metrics"):
            self.tracking.client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, timestamp, step) for k, v in sorted(values.items())],
            )
        self.metrics.update({k: v for k, v in values.items() if not math.isnan(v)})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        with self._errors("set tags"):
            self.tracking.client.log_batch(
                self.run_id, tags=[RunTag(str(k), str(v)) for k, v in sorted(tags.items())]
            )
        self.tags.update(tags)

    def log_dataset(
        self,
        *,
        name: str,
        source: str,
        digest: str,
        context: DatasetContext,
        rows: int | None = None,
        schema: Mapping[str, str] | None = None,
        selection: str | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> None:
        """Record data this run read as an MLflow dataset input: the run page's "Datasets" and
        the runs table's "Datasets" column show it with its ``context`` badge (``training`` for
        what the model was fitted on, ``evaluation`` for the rows that measured it).

        Nothing is loaded or profiled: ``source`` is the data's URI (:func:`dataset_uri`), and
        ``digest`` its data version (the content hash the asset store and Dagster record), cut
        to MLflow's 36 characters as the digest and kept whole in the profile. ``rows``: how
        many rows were used; ``schema``: column -> dtype name (:func:`frame_schema`).

        ``selection`` says which rows of the source were used when not all of them (``split ==
        eval``, ``last 20% by event_ts``): it is appended to the name, ``<name> [<selection>]``,
        because MLflow keeps one dataset per (name, digest) in an experiment, with the source,
        profile and schema it was first logged with; so a name must always mean the same rows.
        ``profile``: more facts about those rows (a boundary, a seed), into the profile.
        """
        from mlflow.entities import Dataset, DatasetInput, InputTag

        if context not in DATASET_CONTEXTS:
            raise ValueError(f"dataset context {context!r}: use one of {DATASET_CONTEXTS}")
        if not digest:
            raise ValueError(f"dataset {name!r} has no data version: it cannot be identified")
        source_type, source_json = _dataset_source(source)
        facts: dict[str, Any] = {"data_version": digest}
        if rows is not None:
            facts["rows"] = int(rows)
        if selection:
            facts["selection"] = selection
        facts.update(profile or {})
        dataset = Dataset(
            name=f"{name} [{selection}]" if selection else name,
            digest=digest[:DATASET_DIGEST_CHARS],
            source_type=source_type,
            source=source_json,
            schema=_schema_json(schema) if schema else None,
            profile=json.dumps(facts, sort_keys=True, default=str),
        )
        with self._errors(f"log dataset {dataset.name!r}"):
            self.tracking.client.log_inputs(
                self.run_id,
                datasets=[DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT_TAG, context)])],
            )

    def log_input_asset(
        self,
        step: dg.OpExecutionContext,
        store: AssetStore,
        key: dg.AssetKey,
        *,
        context: DatasetContext,
        partition: str | None = None,
        rows: int | None = None,
        schema: Mapping[str, str] | None = None,
        selection: str | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> bool:
        """:meth:`log_dataset` of an input asset of ``step``'s materialization, read whole
        (unpartitioned) or as its one ``partition``: its parquet in the asset store as the
        source and its data version as the digest, so MLflow and Dagster name the same data.
        The version of an unpartitioned input is the one Dagster recorded for this step (the
        run's ``dagster.input.<key>.data_version`` tag); that of a partition is the partition's
        own, from its latest materialization (Dagster's input tag for a partitioned input is a
        hash over the versions of the partitions read, which names no file).

        Returns False, logging a warning, when no data version of ``key`` is known (not an
        input of the asset, or never materialized): the training is not failed for its lineage.
        """
        if partition is None:
            version = self.tags.get(input_data_version_tag(key))
        else:
            version = partition_data_version(step.instance, key, partition)
        name = key.to_user_string() + (f" {partition}" if partition is not None else "")
        if not version:
            _log.warning(
                "MLflow run %s: no data version of input %s, so it is not logged as a dataset",
                self.run_id,
                name,
            )
            return False
        self.log_dataset(
            name=name,
            source=dataset_uri(store.path(key, partition)),
            digest=version,
            context=context,
            rows=rows,
            schema=schema,
            selection=selection,
            profile=profile,
        )
        return True

    def log_input_split(
        self,
        step: dg.OpExecutionContext,
        store: AssetStore,
        key: dg.AssetKey,
        *,
        split: str,
        rows: int,
        evaluation_rows: int,
        parts: tuple[str, str] = ("training part", "holdout"),
        partition: str | None = None,
        schema: Mapping[str, str] | None = None,
    ) -> None:
        """:meth:`log_input_asset` twice for one input split in two: the rows fitted on
        (``training``) and the rows held out (``evaluation``), each named by ``parts`` and by
        ``split``, the rule that picks them (MLflow keeps one dataset per name and digest, so the
        name must say which rows)."""
        for used_for, part, count in (
            ("training", parts[0], rows - evaluation_rows),
            ("evaluation", parts[1], evaluation_rows),
        ):
            self.log_input_asset(
                step,
                store,
                key,
                context=used_for,
                partition=partition,
                rows=count,
                schema=schema,
                selection=f"{part}: {split}",
            )

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Store a matplotlib (or plotly) figure as an artifact, e.g. ``plots/pr_curve.png``."""
        with self._errors(f"log figure {artifact_file}"):
            self.tracking.client.log_figure(self.run_id, figure, artifact_file)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """Store a JSON/YAML document (by extension) as an artifact, e.g. ``report.json``."""
        with self._errors(f"log {artifact_file}"):
            self.tracking.client.log_dict(self.run_id, dict(data), artifact_file)

    def log_model(
        self,
        model: Any,
        *,
        name: str,
        input_example: Any,
        flavor: Flavor = "sklearn",
        pip_requirements: Sequence[str] | None = None,
        signature: Any = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        """Log ``model`` in this run with a signature, an input example and pinned requirements.

        ``pip_requirements`` defaults to ``default_pip_requirements(flavor, model)``; they are
        always explicit because inferring them costs 20-30 s per model. The signature is inferred
        from ``input_example`` and the model's predictions on it (for pyfunc, MLflow infers it from
        the input example). Returns MLflow's ``ModelInfo``; ``register`` takes it.

        A binary classifier (:func:`is_binary_classifier`) logged with the sklearn flavor gets a
        pyfunc that returns the probability of the positive class
        (:class:`PositiveClassProbability`) and, unless ``signature`` is given,
        :func:`classifier_signature` (a float64 per row out, no input schema), so
        ``mlflow.pyfunc.load_model(uri).predict(rows)`` takes the rows of its training set;
        ``mlflow.sklearn.load_model`` still returns the estimator.
        """
        from mlflow.entities import LoggedModelStatus
        from mlflow.models import Model, infer_signature

        if flavor not in _FLAVOR_PACKAGES:
            raise ValueError(
                f"unknown model flavor {flavor!r}; use one of {sorted(_FLAVOR_PACKAGES)}"
            )
        requirements = (
            list(pip_requirements)
            if pip_requirements is not None
            else default_pip_requirements(flavor, model)
        )
        positive_probability = flavor == "sklearn" and is_binary_classifier(model)
        if signature is None and positive_probability:
            signature = classifier_signature(model, input_example)
        elif signature is None and flavor != "pyfunc":
            signature = infer_signature(input_example, model.predict(input_example))

        flavor_module: Any
        if flavor == "sklearn":
            import mlflow.sklearn as flavor_module

            if positive_probability:
                flavor_module = _PositiveProbabilitySklearn

            # cloudpickle, not MLflow's default skops: skops refuses to load any type it does not
            # trust (a random forest's tree type already fails), so every new estimator would need
            # its own allow-list. The registry is ours and written only by our own runs.
            flavor_kwargs: dict[str, Any] = {
                "sk_model": model,
                "serialization_format": "cloudpickle",
            }
        elif flavor == "xgboost":
            import mlflow.xgboost as flavor_module

            flavor_kwargs = {"xgb_model": model}
        else:
            import mlflow.pyfunc as flavor_module

            flavor_kwargs = {"python_model": model}

        client = self.tracking.client
        with self._errors(f"log model {name!r}"):
            # The LoggedModel is created here, in this run's experiment: left to MLflow it would
            # go to whatever experiment the process-global state (or MLFLOW_EXPERIMENT_ID) names.
            logged = client.create_logged_model(
                self.experiment_id,
                name=name,
                source_run_id=self.run_id,
                tags={
                    **{k: v for k, v in self.tags.items() if k.startswith("dagster.")},
                    **(tags or {}),
                },
            )
            try:
                with _global_tracking_uri(self.tracking.tracking_uri):
                    info = Model.log(
                        artifact_path=None,  # deprecated in MLflow 3, but still positional
                        name=name,
                        flavor=flavor_module,
                        run_id=self.run_id,
                        model_id=logged.model_id,
                        signature=signature,
                        input_example=input_example,
                        pip_requirements=requirements,
                        **flavor_kwargs,
                    )
            except Exception:
                with contextlib.suppress(Exception):
                    client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
                raise
        return info
