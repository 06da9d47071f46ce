"""The deployment's run configuration: settings every run of an asset starts from, whoever
launches it (the UI, `dagster asset materialize`, a schedule, a sensor, a backfill).

Run config is per run in Dagster: a day materialized from the UI without pasting the JSON used
for the days before it gets the code's defaults, so one deployment would mix, say, two synthetic
card populations, and features across days would mean nothing. Settings that describe the
deployment (where the data comes from, how big the synthetic population is, the training window)
therefore live in one file, ``mlops.yaml`` in ``MLOPS_HOME`` (``MLOPS_RUN_CONFIG`` names another),
in Dagster's own run-config shape, so a ``--config-json`` can be moved into it as it is::

    ops:
      bronze:                 # fraud/transactions and fraud/labels
        config: {n_cards: 5000, tx_per_day: 4000}
      athletes__models:       # a graph-backed asset: its inner ops
        ops:
          grid_points:
            config: {n_estimators: [50], max_depth: [4]}

Its values become the *defaults* of the config classes (:func:`deployment_defaults`), so the
UI's launchpad shows them, every launcher uses them, and a run can still override a value for
itself. The file is read when the code location loads (reload the location in the UI after
editing it); a malformed file, an unknown op or setting, or a value of the wrong type stops the
load with a message naming the file and the setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from mlops_assets.core.profiles import ENV_VARS, load_settings

C = TypeVar("C", bound=type[dg.Config])

# Every op path a config class claimed, so that an op in the file that none claimed (a typo)
# is reported instead of silently ignored.
_CLAIMED: set[tuple[str, ...]] = set()


class RunConfigError(ValueError):
    """The deployment's run-config file is malformed or names a setting that does not exist."""


@cache
def _read(path: str) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not path or not file.is_file():
        return {}
    try:
        loaded = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RunConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict) or set(loaded) - {"ops"}:
        raise RunConfigError(
            f"{path}: expected a mapping with one key, `ops` (Dagster's run-config shape)"
        )
    ops = loaded.get("ops") or {}
    if not isinstance(ops, dict):
        raise RunConfigError(f"{path}: `ops` must map op names to their config")
    return ops


def run_config_path() -> str:
    """The file of the active deployment (``MLOPS_RUN_CONFIG``, default ``<home>/mlops.yaml``)."""
    return load_settings().run_config


def _section(ops: Mapping[str, Any], op_path: tuple[str, ...], path: str) -> dict[str, Any]:
    node: Any = {"ops": ops}
    for name in op_path:
        node = (node.get("ops") or {}).get(name) if isinstance(node, dict) else None
        if node is None:
            return {}
    if not isinstance(node, dict) or not isinstance(node.get("config", {}), dict):
        raise RunConfigError(f"{path}: ops.{'.ops.'.join(op_path)} must hold a `config` mapping")
    return dict(node.get("config") or {})


def deployment_defaults(*op_path: str) -> Callable[[C], C]:
    """Class decorator: the defaults of a ``dagster.Config`` class become the values the
    deployment's file sets for ``op_path`` (the op's name, and for an op inside a graph-backed
    asset the graph's name first), validated by the class itself.

    Apply it to the config class before the asset that uses it is defined: Dagster builds the
    run-config schema (and so the launchpad's defaults) from the class.
    """

    def apply(cls: C) -> C:
        _CLAIMED.add(op_path)
        path = run_config_path()
        overrides = _section(_read(path), op_path, path)
        if not overrides:
            return cls
        where = f"{path}: ops.{'.ops.'.join(op_path)}.config"
        unknown = sorted(set(overrides) - set(cls.model_fields))
        if unknown:
            raise RunConfigError(
                f"{where} has no setting {', '.join(unknown)}; "
                f"its settings are {', '.join(cls.model_fields)}"
            )
        import pydantic

        try:
            validated = cls(**overrides)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise RunConfigError(f"{where}: {problems}") from exc
        fields = {
            name: (cls.model_fields[name].annotation, _with_default(cls, name, validated))
            for name in overrides
        }
        # A subclass with the same name: Dagster names the config type after the class.
        derived = pydantic.create_model(
            cls.__name__, __base__=cls, __module__=cls.__module__, **fields
        )
        derived.__doc__ = cls.__doc__
        derived.__qualname__ = cls.__qualname__
        return derived  # type: ignore[return-value]

    return apply


def _with_default(cls: type[dg.Config], name: str, validated: dg.Config) -> Any:
    from copy import copy

    field = copy(cls.model_fields[name])
    field.default = getattr(validated, name)
    field.default_factory = None
    return field


def unclaimed_ops() -> list[str]:
    """Op paths set in the deployment's file that no config class takes (typos, removed ops)."""
    path = run_config_path()
    ops = _read(path)
    found: list[tuple[str, ...]] = []

    def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for name, body in (node or {}).items():
            here = (*prefix, name)
            if isinstance(body, dict) and "config" in body:
                found.append(here)
            if isinstance(body, dict) and isinstance(body.get("ops"), dict):
                walk(body["ops"], here)

    walk(ops, ())
    return [".ops.".join(p) for p in found if p not in _CLAIMED]


def check_file() -> None:
    """Fail the code location's load if the file sets ops that nothing reads."""
    unclaimed = unclaimed_ops()
    if unclaimed:
        raise RunConfigError(
            f"{run_config_path()} sets ops that no asset has: {', '.join(unclaimed)} "
            "(op names are those of run config, e.g. `bronze`, `demand__raw`; "
            f"{ENV_VARS['run_config']} names the file)"
        )


def write_if_absent(path: str | Path, ops: Mapping[str, Any], header: str) -> bool:
    """Write ``ops`` as the deployment's file at ``path`` unless one exists; returns whether it
    was written. Written whole (temporary file, then rename)."""
    import os
    import tempfile

    import yaml

    path = Path(path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    text += yaml.safe_dump({"ops": dict(ops)}, sort_keys=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    _read.cache_clear()
    return True
