"""The champion flow every use case runs: candidate against champion, the gate, the alias.

1. :func:`contenders`: the ``candidate`` version (a use case without one fails, naming the asset
   to materialize) and the current ``champion``, unless it is the candidate itself;
2. :func:`score_contenders`: both loaded *by version*, not by alias, and scored by the use case's
   own function on the same data: the versions scored are those the gate is told it compared,
   even if an alias moves meanwhile;
3. :func:`gate`: the promotion rule applied by :meth:`MlflowTracking.promote` (compare-and-set
   under the model's lock), the alias read back, and the metadata every champion materialization
   carries: the decision and its reason, both versions, each contender's metrics.

Use cases whose metrics come from elsewhere (a holdout report asset, a backtest leaderboard, the
runs' own logged metrics) call :func:`gate` directly. Regression use cases take their gate's
setting from :class:`RmseGainConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
from pydantic import Field

from mlops_assets.core.policies import NETWORK_RETRY, data_error
from mlops_assets.core.tracking import CANDIDATE, CHAMPION, Flavor, MlflowTracking

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from mlops_assets.core.evaluation import PromotionDecision, PromotionRule

T = TypeVar("T")

# The contenders' roles (metadata keys `<role>/<metric>`) are the aliases they hold.
CANDIDATE_ROLE = CANDIDATE
CHAMPION_ROLE = CHAMPION


@dataclass(frozen=True)
class Contenders:
    """The versions a gate compares: the candidate, and the current champion (``None`` when
    there is none). A candidate that already serves is scored once: the gate keeps it without a
    comparison."""

    model_name: str
    candidate: ModelVersion
    champion: ModelVersion | None

    @property
    def versions(self) -> dict[str, ModelVersion]:
        """The versions to score, by role, candidate first."""
        roles = {CANDIDATE_ROLE: self.candidate}
        if self.champion is not None and self.champion.version != self.candidate.version:
            roles[CHAMPION_ROLE] = self.champion
        return roles


def contenders(mlflow: MlflowTracking, model_name: str, *, trained_by: str) -> Contenders:
    """The candidate and the current champion of ``model_name``; fails (a data error, not
    retried) when no candidate was registered, naming ``trained_by``, the asset that registers
    it."""
    candidate = mlflow.get_version_by_alias(model_name, CANDIDATE)
    if candidate is None:
        raise data_error(f"{model_name} has no '{CANDIDATE}': materialize {trained_by} first")
    return Contenders(model_name, candidate, mlflow.get_version_by_alias(model_name, CHAMPION))


def score_contenders(
    mlflow: MlflowTracking,
    ring: Contenders,
    score: Callable[[Any], T],
    *,
    flavor: Flavor = "sklearn",
) -> dict[str, T]:
    """``score(model)`` of each contender, loaded by version in ``flavor``: by role, candidate
    first."""
    return {
        role: score(mlflow.load_model_version(ring.model_name, version.version, flavor=flavor))
        for role, version in ring.versions.items()
    }


@dataclass(frozen=True)
class GateOutcome:
    """What the gate decided and which version serves after it."""

    decision: PromotionDecision
    candidate_version: str
    serving: ModelVersion | None  # the champion read back after the gate (None: there is none)
    metrics: Mapping[str, Mapping[str, float]]

    @property
    def champion_version(self) -> str | None:
        return str(self.serving.version) if self.serving is not None else None

    def metadata(self) -> dict[str, Any]:
        """The champion materialization's metadata: ``promotion/decision``, its reason and
        figures, both versions, and ``<role>/<metric>`` for every contender scored."""
        return {
            **self.decision.as_metadata(),
            "candidate_version": self.candidate_version,
            "champion_version": self.champion_version,
            **{f"{role}/{k}": v for role, m in self.metrics.items() for k, v in m.items()},
        }


def gate(
    mlflow: MlflowTracking,
    model_name: str,
    candidate_version: str | int,
    rule: PromotionRule,
    *,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    compared_with: str | int | None = None,
) -> GateOutcome:
    """Apply ``rule`` to ``candidate_version`` of ``model_name`` and read back the champion.

    ``metrics``: by role (``candidate``, and ``champion`` if one was scored), measured by the
    caller on the same data; ``None`` compares the metrics logged in each version's run.
    ``compared_with``: the champion version the caller scored (``None``: there was none); the
    gate refuses to promote on stale evidence if the champion moved since.
    """
    metrics = dict(metrics or {})
    decision = mlflow.promote(
        model_name,
        candidate_version,
        rule,
        candidate_metrics=metrics.get(CANDIDATE_ROLE),
        champion_metrics=metrics.get(CHAMPION_ROLE),
        compared_with=compared_with,
    )
    serving = mlflow.get_version_by_alias(model_name, CHAMPION)
    return GateOutcome(
        decision=decision,
        candidate_version=str(candidate_version),
        serving=serving,
        metrics=metrics,
    )


def gate_contenders(
    mlflow: MlflowTracking,
    ring: Contenders,
    rule: PromotionRule,
    metrics: Mapping[str, Mapping[str, float]],
) -> GateOutcome:
    """:func:`gate` for contenders the caller scored (:func:`score_contenders`)."""
    return gate(
        mlflow,
        ring.model_name,
        ring.candidate.version,
        rule,
        metrics=metrics,
        compared_with=ring.champion.version if ring.champion is not None else None,
    )


class RmseGainConfig(dg.Config):
    """The promotion gate of a regression model: the candidate's RMSE (on the data the use case
    compares them on: a holdout, a validation split, a backtest) must beat the champion's."""

    min_rmse_gain_pct: float = Field(
        default=1.0,
        ge=0,
        description="The candidate's RMSE must be lower than the champion's by more than this "
        "percentage of the champion's RMSE.",
    )

    def rule(self, metric: str = "rmse") -> PromotionRule:
        """Lower ``metric`` wins, by more than ``min_rmse_gain_pct`` % of the champion's."""
        from mlops_assets.core.evaluation import PromotionRule

        return PromotionRule(
            metric=metric,
            higher_is_better=False,
            min_relative_improvement=self.min_rmse_gain_pct / 100,
        )


def sequential_gate(**kwargs: Any) -> dict[str, Any]:
    """The decorator arguments of a partitioned champion asset: promotions are decided one
    partition after the other, in order, never as a batch (a backfill runs one partition per
    run); outages of the registry are retried; its kind is MLflow. ``kwargs`` add to them (the
    freshness policy, ``deps``...)."""
    return {
        "backfill_policy": dg.BackfillPolicy.multi_run(1),
        "retry_policy": NETWORK_RETRY,
        "kinds": {"mlflow"},
        **kwargs,
    }
