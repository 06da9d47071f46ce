"""mlops-assets: one production path from raw data to served predictions, as a Dagster asset graph.

Importing the package silences Dagster's notices about its own API (BetaWarning, PreviewWarning,
SupersessionWarning for parameters such as `backfill_policy`): one per use of such a parameter,
~2,000 lines in the demo, raised while the use cases build their definitions and again while runs
execute, and none of them anything the person running a command can act on. Here, because every
process of the project imports the package first: the `mlops` CLI, and every Dagster process
(CLI, webserver's code server, daemon, run worker, step process, Celery worker) through
`mlops_assets.definitions`. Other warnings, the project's own included, are shown as usual.

For the same reason it turns s3fs's listing cache off, in this process and the ones it starts
(:func:`no_s3_listing_cache`).
"""

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


quiet_dagster_warnings()
no_s3_listing_cache()
