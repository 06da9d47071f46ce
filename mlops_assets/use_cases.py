"""The registry of use cases: which folders of ``mlops_assets`` hold one, and how to load them.

A use case is a package ``mlops_assets/<name>/`` whose ``definitions.py`` exports

* ``defs``: a ``dagster.Definitions`` with its assets, checks, jobs, schedules and sensors;
* ``demo``: a list of :class:`DemoStep`, the CLI materializations that run every asset of the use
  case on tiny data, and the sensor ticks that react to them (what ``mlops demo`` runs, in order);
* optionally ``demo_run_config``: the ops' settings of that tiny data, in run-config shape, which
  ``mlops demo`` writes into the deployment's ``mlops.yaml`` (see
  :mod:`mlops_assets.core.run_config`) so that later runs, from the UI or the CLI, use them too.

:data:`USE_CASES` is found, not listed: every package folder with a ``definitions.py`` (the
platform's own packages, :data:`PLATFORM`, aside). Its order is the demo's: a use case may set
``DEMO_ORDER = <int>`` in its ``__init__.py`` (default :data:`DEFAULT_DEMO_ORDER`; ties by name),
read from the file's syntax tree, so finding the use cases imports none of them. Adding a use
case is adding its folder (``mlops new-use-case NAME`` writes a working one); nothing else
changes: the code location, ``mlops demo`` and the prediction API all read this registry. Use
cases are imported lazily, one module each, so a broken use case names itself in the error.
"""

from __future__ import annotations

import ast
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import dagster as dg

PACKAGE_DIR = Path(__file__).resolve().parent
# Packages of the platform, never use cases (``serving`` has a ``definitions.py`` of its own).
PLATFORM = frozenset({"core", "serving", "tooling"})
DEFAULT_DEMO_ORDER = 100


def demo_order(package: Path) -> int:
    """The ``DEMO_ORDER = <int>`` of a use case's ``__init__.py`` (:data:`DEFAULT_DEMO_ORDER`
    without one), read from its syntax tree: nothing of the use case is imported."""
    init = package / "__init__.py"
    for node in ast.parse(init.read_text(encoding="utf-8"), filename=str(init)).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "DEMO_ORDER" for t in targets):
            try:
                order = ast.literal_eval(value)
            except (ValueError, TypeError):
                order = None
            if not isinstance(order, int) or isinstance(order, bool):
                raise TypeError(f"{init}: DEMO_ORDER must be a literal int")
            return order
    return DEFAULT_DEMO_ORDER


def discover_use_cases(root: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """The use-case packages under ``root``, in demo order: folders with an ``__init__.py`` and
    a ``definitions.py``, except the platform's (:data:`PLATFORM`)."""
    found = [
        folder
        for folder in root.iterdir()
        if folder.name not in PLATFORM
        and folder.name.isidentifier()
        and (folder / "__init__.py").is_file()
        and (folder / "definitions.py").is_file()
    ]
    return tuple(f.name for f in sorted(found, key=lambda f: (demo_order(f), f.name)))


# Names of the use-case packages, in the order the demo runs them.
USE_CASES: tuple[str, ...] = discover_use_cases()


@dataclass(frozen=True)
class DemoStep:
    """One step of ``mlops demo``: either a ``dagster asset materialize`` call (``select``: an
    asset selection and, if partitioned, a ``partition`` or a ``partition_range``) or one tick of
    a sensor (``sensor``: its name), evaluated as the daemon would and whose requested runs are
    executed there and then (:mod:`mlops_assets.tooling.sensor_tick`).

    A sensor step shows what the deployment does on its own, with the daemon running, on the
    demo's data: e.g. the retraining a failed monitor asks for, with the tags naming the trigger,
    rather than a materialization that only looks like it.
    """

    select: str | None = None
    partition: str | None = None
    partition_range: str | None = None
    config: dict = field(default_factory=dict)
    sensor: str | None = None

    def __post_init__(self) -> None:
        if (self.select is None) == (self.sensor is None):
            raise ValueError(
                "a DemoStep is either a materialization (select=...) or a sensor tick "
                f"(sensor=...), exactly one of them: select={self.select!r}, "
                f"sensor={self.sensor!r}"
            )
        if self.sensor is not None and (self.partition or self.partition_range or self.config):
            # The sensor decides the partitions and config of the runs it requests.
            raise ValueError(
                f"the sensor step {self.sensor!r} takes no partition, partition range or config: "
                "its sensor's run requests name them"
            )
        if self.partition and self.partition_range:
            raise ValueError(f"the step {self.select!r} has both a partition and a partition range")

    def describe(self) -> str:
        """What ``mlops demo`` prints before the step: the selection, or the sensor's tick."""
        return f"sensor {self.sensor} (one tick)" if self.sensor else str(self.select)

    def cli_args(self) -> list[str]:
        """The arguments of ``dagster asset materialize`` for a materialization step."""
        if self.select is None:
            raise ValueError(f"the sensor step {self.sensor!r} is no materialization")
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
