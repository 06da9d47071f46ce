"""mlops-assets: one production path from raw data to served predictions, as a Dagster asset graph.

Importing the package silences Dagster's notices about its own API (BetaWarning, PreviewWarning,
SupersessionWarning for parameters such as `backfill_policy`): one per use of such a parameter,
~2,000 lines in the demo, raised while the use cases build their definitions and again while runs
execute, and none of them anything the person running a command can act on. Here, because every
process of the project imports the package first: the `mlops` CLI, and every Dagster process
(CLI, webserver's code server, daemon, run worker, step process, Celery worker) through
`mlops_assets.definitions`. Other warnings, the project's own included, are shown as usual.

For the same reason it turns s3fs's listing cache off, in this process and the ones it starts
(:func:`no_s3_listing_cache`), spares Feast's import its run-time type instrumentation
(:func:`feast_without_typeguard`), and shortens every process's exit (:func:`quick_exit`).
"""

import atexit
import gc
import importlib.abc
import json
import os
import sys
import warnings

#: fsspec's setting of the listing cache of every S3 filesystem (``true`` turns it back on).
S3_LISTINGS_CACHE_ENV = "FSSPEC_S3_USE_LISTINGS_CACHE"


def quiet_dagster_warnings() -> None:
    """Ignore Dagster's BetaWarning, PreviewWarning and SupersessionWarning in this process."""
    from dagster import BetaWarning, PreviewWarning, SupersessionWarning

    for category in (BetaWarning, PreviewWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


def no_s3_listing_cache() -> None:
    """Make every S3 filesystem of this process and its children look objects up on S3.

    s3fs keeps a folder's listing for the life of its filesystem object (one per process and
    settings, shared by every library: ours, Feast's dask reads) and answers "no such file" from
    it. A long-lived process (a Celery worker running step after step, the daemon, the
    webserver) that once listed ``fraud/transactions/`` would then never see the day another
    process wrote there since, and the step reading it fails. Without the cache, an object costs
    one HEAD request. fsspec reads the variable when it is imported and its settings when a
    filesystem is made, so both are set: for the children, and for this process if fsspec is in.
    """
    os.environ.setdefault(S3_LISTINGS_CACHE_ENV, "false")
    config = sys.modules.get("fsspec.config")
    if config is not None:
        s3 = config.conf.setdefault("s3", {})
        s3.setdefault("use_listings_cache", json.loads(os.environ[S3_LISTINGS_CACHE_ENV]))


#: ``true`` keeps typeguard's checks on Feast's functions (:func:`feast_without_typeguard`).
FEAST_TYPECHECKS_ENV = "MLOPS_FEAST_TYPECHECKS"


def _unchecked(target=None, **_options):
    """typeguard's ``typechecked`` as a no-op, bare (``@typechecked``) or called with options."""
    return _unchecked if target is None else target


class _FeastImportHook(importlib.abc.MetaPathFinder):
    """Turns typeguard's ``@typechecked`` into a no-op the moment ``feast`` starts importing,
    then leaves ``sys.meta_path``. It finds nothing itself: the usual finders import Feast."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "feast":
            sys.meta_path.remove(self)
            import typeguard

            typeguard.typechecked = _unchecked
        return None


def feast_without_typeguard() -> None:
    """Import Feast in ~2 s instead of ~7 s in this process.

    Feast decorates its classes and functions with typeguard's ``@typechecked``, which (typeguard
    4) re-reads each one's source, rewrites it with checks and compiles it again at import: 5 s of
    every process that reads or writes features (a step, the API, a Celery worker), measured on
    two cores, more than the step's own work. The checks only guard the types of Feast's
    arguments at run time: without them a feature repo with a wrong type still fails, later, on
    Feast's own error. Feast is the only library here that uses typeguard. The ``feast`` command
    does not import this package and keeps them; ``MLOPS_FEAST_TYPECHECKS=true`` keeps them
    here too.
    """
    if os.environ.get(FEAST_TYPECHECKS_ENV, "").lower() in ("1", "true", "yes"):
        return
    if "feast" in sys.modules or any(isinstance(f, _FeastImportHook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _FeastImportHook())


def _collect_then_freeze() -> None:
    gc.collect()
    gc.freeze()


def quick_exit() -> None:
    """End this process ~1.2 s sooner: at exit, collect the garbage there is, then freeze what is
    left out of the garbage collector.

    A Dagster process ends holding ~480,000 objects (Dagster, Polars, pandas, Feast, GX); Python's
    shutdown then runs full collections while it tears the modules down, 1.6 s of CPU at the end of
    every CLI command and every step process on two cores, against 0.4 s this way (measured by
    bench/fraud_day.py's "after the run"). What is garbage at exit is still collected, its
    finalizers run; only objects still reachable when the process ends are left to the operating
    system, which frees their memory (Python does not promise to finalize them either). Runs
    after every exit handler registered later (Dagster's, the thread pools'), before those
    registered earlier (logging's flush, multiprocessing's), as registered on import.
    """
    atexit.register(_collect_then_freeze)


quiet_dagster_warnings()
no_s3_listing_cache()
feast_without_typeguard()
quick_exit()
