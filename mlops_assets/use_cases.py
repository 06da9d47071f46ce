"""The registry of use cases: which folders of ``mlops_assets`` hold one, and how to load them.

A use case is a package ``mlops_assets/<name>/`` whose ``definitions.py`` exports

* ``defs``: a ``dagster.Definitions`` with its assets, checks, jobs, schedules and sensors;
* ``demo``: a list of :class:`DemoStep`, the CLI materializations that run every asset of the use
  case on tiny data (what ``mlops demo`` runs, in order);
* optionally ``demo_run_config``: the ops' settings of that tiny data, in run-config shape, which
  ``mlops demo`` writes into the deployment's ``mlops.yaml`` (see
  :mod:`mlops_assets.core.run_config`) so that later runs, from the UI or the CLI, use them too.

Adding a use case is adding its folder and its name below; nothing else changes. Use cases are
imported lazily, one module each, so a broken use case names itself in the error.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from types import ModuleType

import dagster as dg

# Names of the use-case packages, in the order the demo runs them.
USE_CASES: tuple[str, ...] = ("fraud", "demand", "housing", "heart", "athletes")


@dataclass(frozen=True)
class DemoStep:
    """One ``dagster asset materialize`` call: an asset selection and, if partitioned, a partition
    or a partition range (``--partition-range``)."""

    select: str
    partition: str | None = None
    partition_range: str | None = None
    config: dict = field(default_factory=dict)

    def cli_args(self) -> list[str]:
        # In one process: on two cores, a subprocess per step (4-5 s each, plus re-importing
        # Feast, GX and MLflow) costs more than the steps themselves.
        config = {"execution": {"config": {"in_process": {}}}, **self.config}
        args = ["--select", self.select, "--config-json", json.dumps(config)]
        if self.partition:
            args += ["--partition", self.partition]
        if self.partition_range:
            args += ["--partition-range", self.partition_range]
        return args


def load_use_case(name: str) -> ModuleType:
    module = importlib.import_module(f"mlops_assets.{name}.definitions")
    if not isinstance(getattr(module, "defs", None), dg.Definitions):
        raise TypeError(
            f"use case {name!r} must export `defs: dagster.Definitions` in definitions.py"
        )
    return module


def use_case_definitions(names: tuple[str, ...] = USE_CASES) -> list[dg.Definitions]:
    return [load_use_case(name).defs for name in names]


def demo_steps(names: tuple[str, ...] = USE_CASES) -> list[tuple[str, DemoStep]]:
    return [(name, step) for name in names for step in getattr(load_use_case(name), "demo", [])]


def demo_run_config(names: tuple[str, ...] = USE_CASES) -> dict:
    """The ops' settings of every use case's demo, merged (op names are unique in the location)."""
    merged: dict = {}
    for name in names:
        merged.update(getattr(load_use_case(name), "demo_run_config", {}))
    return merged
