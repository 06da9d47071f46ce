"""The use-case kit: what every use case declares once, and the raw-source plumbing they share.

A use case is a folder ``mlops_assets/<name>/``. It declares a :class:`UseCase` in its data
contract (``schema.py``: ``CASE = UseCase("heart", model_name="heart_disease")``) and takes from
it its asset keys (``CASE.key("raw")`` is ``heart/raw``, stored at ``<root>/heart/raw.parquet``),
its group, the op names of its deployment settings and the name its model is registered under,
so that the assets, the serving module and the tests all read the same strings.

The rest of the kit: :mod:`.raw_sources` (a generator or the user's file), :mod:`.synthetic`
(sampling helpers of the generators), :mod:`.champion` (the champion flow every use case calls),
:mod:`.asset_store` (where data lives), :mod:`mlops_assets.serving.endpoints` (what a use case
serves).

Pure Python at import (no Dagster): the use cases' data contracts and serving modules import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg


@dataclass(frozen=True)
class UseCase:
    """One use case's identity: its name (folder, asset-key prefix, Dagster group, MLflow
    experiment) and the registered model it trains (for one model per entity, the prefix of
    their names: ``model_name + entity``)."""

    name: str
    model_name: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.islower():
            raise ValueError(f"a use case's name is a lower-case identifier, not {self.name!r}")

    @property
    def group(self) -> str:
        """The Dagster group of its assets."""
        return self.name

    def key(self, name: str) -> dg.AssetKey:
        """The key of asset ``name``: ``<use case>/<name>``, stored under
        ``<root>/<use case>/<name>``."""
        import dagster as dg

        return dg.AssetKey([self.name, name])

    def asset(self, name: str, **kwargs: Any) -> Callable[..., dg.AssetsDefinition]:
        """``@dg.asset`` for asset ``name`` of this use case: keyed ``<use case>/<name>``, in its
        group; ``kwargs`` are Dagster's (``partitions_def``, ``ins``, ``deps``, policies...).
        A partitioned use case binds its partitions once:
        ``daily_asset = functools.partial(CASE.asset, partitions_def=DAILY)``."""
        import dagster as dg

        return dg.asset(key=self.key(name), group_name=self.group, **kwargs)

    def op(self, name: str) -> str:
        """The op name of asset ``name`` (``<use case>__<name>``): where its settings live in the
        deployment's ``mlops.yaml`` (:func:`mlops_assets.core.run_config.deployment_defaults`)."""
        return f"{self.name}__{name}"
