"""mlops-assets: one production path from raw data to served predictions, as a Dagster asset graph.

Importing the package silences Dagster's notices about its own API (BetaWarning, PreviewWarning,
SupersessionWarning for parameters such as `backfill_policy`): one per use of such a parameter,
~2,000 lines in the demo, raised while the use cases build their definitions and again while runs
execute, and none of them anything the person running a command can act on. Here, because every
process of the project imports the package first: the `mlops` CLI, and every Dagster process
(CLI, webserver's code server, daemon, run worker, step process) through
`mlops_assets.definitions`. Other warnings, the project's own included, are shown as usual.
"""

import warnings


def quiet_dagster_warnings() -> None:
    """Ignore Dagster's BetaWarning, PreviewWarning and SupersessionWarning in this process."""
    from dagster import BetaWarning, PreviewWarning, SupersessionWarning

    for category in (BetaWarning, PreviewWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


quiet_dagster_warnings()
