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

**Live evidence.** A use case that rolls its candidate out (shadow or canary) may also pass the
gate a :class:`~mlops_assets.core.monitoring.live_comparison.LiveEvidence`: the candidate and the
champion measured on the same live requests once their truth arrived. It can only veto: evidence
that does not allow the promotion keeps the champion (the decision, its reason and the holdout's
own verdict are recorded as for any gate, and the alias does not move); evidence that allows it
leaves the decision to the rule, under the same compare-and-set. Either way the live figures are
the materialization's ``live/*`` metadata and the candidate version's ``live.*`` tags.
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
    from mlops_assets.core.monitoring.live_comparison import LiveEvidence
    from mlops_assets.core.rollout import Rollout

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


def rollout_setting(mlflow: MlflowTracking, model_name: str) -> Rollout | None:
    """How ``model_name``'s candidate is rolled out now (the registered model's ``rollout.*``
    tags): what a gate short of live evidence names in its reason. None when the model is not
    registered or a hand-edited tag does not make a setting."""
    from mlops_assets.core.rollout import RolloutError, rollout_from_tags

    try:
        registered = mlflow.client.get_registered_model(model_name)
    except Exception:
        # Only a hint for the reason: a registry error shows up in the gate itself.
        return None
    try:
        return rollout_from_tags(dict(registered.tags or {}))
    except RolloutError:
        return None


@dataclass(frozen=True)
class GateOutcome:
    """What the gate decided and which version serves after it."""

    decision: PromotionDecision
    candidate_version: str
    serving: ModelVersion | None  # the champion read back after the gate (None: there is none)
    metrics: Mapping[str, Mapping[str, float]]
    live: LiveEvidence | None = None  # the live evidence the gate was given, if any

    @property
    def champion_version(self) -> str | None:
        return str(self.serving.version) if self.serving is not None else None

    def metadata(self) -> dict[str, Any]:
        """The champion materialization's metadata: ``promotion/decision``, its reason and
        figures, both versions, ``<role>/<metric>`` for every contender scored, and the live
        evidence's ``live/*`` when the gate took it."""
        return {
            **self.decision.as_metadata(),
            "candidate_version": self.candidate_version,
            "champion_version": self.champion_version,
            **{f"{role}/{k}": v for role, m in self.metrics.items() for k, v in m.items()},
            **(self.live.metadata() if self.live is not None else {}),
        }


def gate(
    mlflow: MlflowTracking,
    model_name: str,
    candidate_version: str | int,
    rule: PromotionRule,
    *,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    compared_with: str | int | None = None,
    live: LiveEvidence | None = None,
) -> GateOutcome:
    """Apply ``rule`` to ``candidate_version`` of ``model_name`` and read back the champion.

    ``metrics``: by role (``candidate``, and ``champion`` if one was scored), measured by the
    caller on the same data; ``None`` compares the metrics logged in each version's run.
    ``compared_with``: the champion version the caller scored (``None``: there was none); the
    gate refuses to promote on stale evidence if the champion moved since.
    ``live``: the live evidence about this candidate against ``compared_with``
    (see the module docstring): a veto when it does not allow the promotion. Its versions must be
    the gate's (a ``ValueError`` otherwise: evidence about other versions says nothing here).
    """
    metrics = dict(metrics or {})
    if live is not None:
        metrics = _checked_live(mlflow, model_name, candidate_version, compared_with, live, metrics)
    if live is None or live.allows:
        decision = mlflow.promote(
            model_name,
            candidate_version,
            rule,
            candidate_metrics=metrics.get(CANDIDATE_ROLE),
            champion_metrics=metrics.get(CHAMPION_ROLE),
            compared_with=compared_with,
        )
    else:
        decision = _vetoed(mlflow, model_name, str(candidate_version), rule, metrics, live)
    if live is not None:
        for key, value in live.tags().items():
            mlflow.client.set_model_version_tag(model_name, str(candidate_version), key, value)
    serving = mlflow.get_version_by_alias(model_name, CHAMPION)
    return GateOutcome(
        decision=decision,
        candidate_version=str(candidate_version),
        serving=serving,
        metrics=metrics,
        live=live,
    )


def _run_metrics(mlflow: MlflowTracking, model_name: str, version: str) -> dict[str, float]:
    """The metrics logged in the run that produced ``version`` (none for a version without one)."""
    run_id = mlflow.client.get_model_version(model_name, version).run_id
    return dict(mlflow.client.get_run(run_id).data.metrics) if run_id else {}


def _checked_live(
    mlflow: MlflowTracking,
    model_name: str,
    candidate_version: str | int,
    compared_with: str | int | None,
    live: LiveEvidence,
    metrics: dict[str, Mapping[str, float]],
) -> dict[str, Mapping[str, float]]:
    """``metrics`` as the gate applies them with live evidence: the evidence must be about the
    gate's two versions, and run metrics are read here, before the gate, so that
    :meth:`MlflowTracking.promote` treats them as measured against ``compared_with`` and refuses
    if the champion moved meanwhile (the live evidence is about that champion only)."""
    expected = (str(candidate_version), None if compared_with is None else str(compared_with))
    if (live.candidate_version, live.champion_version) != expected:
        raise ValueError(
            f"live evidence about candidate v{live.candidate_version} against champion "
            f"{live.champion_version and 'v' + live.champion_version} cannot decide the gate of "
            f"candidate v{expected[0]} against {expected[1] and 'v' + expected[1]}"
        )
    if compared_with is None:
        return metrics
    if CANDIDATE_ROLE not in metrics:
        metrics[CANDIDATE_ROLE] = _run_metrics(mlflow, model_name, expected[0])
    if CHAMPION_ROLE not in metrics and expected[0] != expected[1]:
        metrics[CHAMPION_ROLE] = _run_metrics(mlflow, model_name, str(compared_with))
    return metrics


def _vetoed(
    mlflow: MlflowTracking,
    model_name: str,
    candidate_version: str,
    rule: PromotionRule,
    metrics: Mapping[str, Mapping[str, float]],
    live: LiveEvidence,
) -> PromotionDecision:
    """The gate's decision when the live evidence refuses: the champion is kept, and the reason
    says why, followed by what the rule alone would have said (so a user sees whether the holdout
    agreed). Recorded on the candidate version as :meth:`MlflowTracking.promote` records its own
    (``promotion.decision``, ``promotion.reason``). No alias moves, so no lock is needed; a
    candidate that already serves decides nothing, as in ``promote``."""
    import dataclasses

    from mlops_assets.core.evaluation import decide_promotion

    current = mlflow.get_version_by_alias(model_name, CHAMPION)
    now = str(current.version) if current is not None else None
    if now == candidate_version:
        return mlflow.promote(
            model_name,
            candidate_version,
            rule,
            candidate_metrics=metrics.get(CANDIDATE_ROLE),
            champion_metrics=metrics.get(CHAMPION_ROLE),
            compared_with=now,
        )
    # The rule as the caller measured it: against the champion the live evidence is about.
    rule_alone = decide_promotion(
        rule,
        metrics.get(CANDIDATE_ROLE),
        metrics.get(CHAMPION_ROLE),
        has_champion=live.champion_version is not None,
        champion_version=live.champion_version,
    )
    moved = (
        f"; the champion has moved to {'v' + now if now else 'none'} since"
        if now != live.champion_version
        else ""
    )
    decision = dataclasses.replace(
        rule_alone,
        promote=False,
        reason=f"kept on live evidence: {live.reason} (the rule alone: {rule_alone.reason}{moved})",
        champion_version=now,
    )
    mlflow.client.set_model_version_tag(model_name, candidate_version, "promotion.decision", "kept")
    mlflow.client.set_model_version_tag(
        model_name, candidate_version, "promotion.reason", decision.reason
    )
    return decision


def gate_contenders(
    mlflow: MlflowTracking,
    ring: Contenders,
    rule: PromotionRule,
    metrics: Mapping[str, Mapping[str, float]],
    *,
    live: LiveEvidence | None = None,
) -> GateOutcome:
    """:func:`gate` for contenders the caller scored (:func:`score_contenders`), with the live
    evidence about them if the use case requires it."""
    return gate(
        mlflow,
        ring.model_name,
        ring.candidate.version,
        rule,
        metrics=metrics,
        compared_with=ring.champion.version if ring.champion is not None else None,
        live=live,
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
