"""Two promotion gates of one model at once, replayed with real processes.

The fault: two ``fraud/champion`` runs gated candidates v2 (PR-AUC 0.873) and v3 (0.892), both
scored against champion v1; both promoted, and the last writer (the worse model) served. Here
each gate is a Python process of its own calling ``MlflowTracking.promote`` on a SQLite MLflow
under a temp home (the local profile), with the lock space of the profile: a folder, or,
marked ``stack``, a PostgreSQL database (advisory locks).

The overlap is made deterministic, not left to timing: the first gate stops *inside* the gate
(its decision is held until the test says go), the test checks that the gate's lock is taken,
starts the second gate, waits until that one is at the lock, and only then lets the first one
finish. The second gate reports how long it waited for the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.core.evaluation import PromotionRule
from mlops_assets.core.locks import LockTimeout, named_lock
from mlops_assets.core.profiles import load_settings
from mlops_assets.core.tracking import CHAMPION, GATE_LOCK_PREFIX, MlflowTracking
from mlops_assets_tests.fixtures.processes import ChildProcess

pytestmark = pytest.mark.timeout(300)

MODEL = "race_test.fraud_classifier"
RULE = PromotionRule(metric="pr_auc", higher_is_better=True, min_improvement=0.005)
OLD_CHAMPION = 0.861
WORSE, BETTER = 0.873, 0.892
# How long the first gate keeps the lock after the second one reached it.
HOLD_S = 1.0


def _say(word: str, payload: Any = None) -> None:
    print(f"{word} {json.dumps(payload)}", flush=True)


def gate_in_child() -> None:
    """One gate, run as ``python -c "...; gate_in_child()" <spec json>``.

    ``spec``: ``version``, ``role`` ("first": stops inside the gate until a line arrives on
    stdin; "second": reports reaching the lock and how long it waited for it), and the keyword
    arguments of ``promote`` (``candidate_metrics``, ``champion_metrics``, ``compared_with``).
    """
    from mlops_assets.core import evaluation, tracking

    spec = json.loads(sys.argv[1])
    resource = MlflowTracking.from_settings(load_settings())
    resource.client  # noqa: B018  (connects now: the race is about the gate, not start-up)
    waited: list[float] = []

    if spec["role"] == "first":
        decide = evaluation.decide_promotion

        def held_decision(*args: Any, **kwargs: Any) -> Any:
            # Called by promote inside the lock, after the champion was read again.
            _say("in-gate")
            sys.stdin.readline()
            return decide(*args, **kwargs)

        evaluation.decide_promotion = held_decision
    else:
        take = tracking.named_lock

        @contextlib.contextmanager
        def timed_lock(space: str, name: str, **kwargs: Any):
            _say("at-lock", name)
            began = time.monotonic()
            with take(space, name, **kwargs):
                waited.append(time.monotonic() - began)
                yield

        tracking.named_lock = timed_lock

    decision = resource.promote(MODEL, spec["version"], RULE, **spec["promote"])
    _say(
        "decided",
        {"promote": decision.promote, "reason": decision.reason, "waited": waited},
    )


def _register(tracking: MlflowTracking, pr_auc: float) -> str:
    """A model version whose source run logged ``pr_auc`` (no model files: the gate reads the
    registry and the run's metrics only)."""
    client = tracking.client
    run = client.create_run(tracking.experiment_id("race_test"))
    client.log_metric(run.info.run_id, "pr_auc", pr_auc)
    client.set_terminated(run.info.run_id)
    with contextlib.suppress(Exception):
        client.create_registered_model(MODEL)
    created = client.create_model_version(
        MODEL, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    return str(created.version)


@pytest.fixture
def registry(request: pytest.FixtureRequest, local_home: Path, monkeypatch) -> MlflowTracking:
    """The local profile's MLflow (SQLite under a temp home) holding champion v1 and candidates
    v2 (worse) and v3 (better); its gate locks in a folder, or (parameter "postgres") in a
    PostgreSQL database."""
    kind = getattr(request, "param", "file")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    if kind == "postgres":
        monkeypatch.setenv(
            "MLOPS_POSTGRES_URL", request.getfixturevalue("postgres_database")("gate")
        )
    else:
        monkeypatch.delenv("MLOPS_POSTGRES_URL", raising=False)
    tracking = MlflowTracking.from_settings(load_settings())
    assert tracking.promotion_lock_space().startswith(
        "postgresql" if kind == "postgres" else str(local_home)
    )
    versions = [_register(tracking, value) for value in (OLD_CHAMPION, WORSE, BETTER)]
    assert versions == ["1", "2", "3"]
    tracking.set_alias(MODEL, CHAMPION, "1", reason="the old champion")
    return tracking


def _race(tracking: MlflowTracking, first: dict, second: dict, logs: Path) -> tuple[dict, dict]:
    """Run gate ``first`` and, while it holds the lock, gate ``second``; their decisions."""
    code = "from mlops_assets_tests.core.test_promotion_race import gate_in_child; gate_in_child()"
    started = []
    try:
        a = ChildProcess(
            ["-c", code, json.dumps({**first, "role": "first"})], log=logs / "first.log"
        )
        started.append(a)
        a.expect("in-gate", timeout=120)
        # The first gate is inside: its lock is taken, for this process too.
        space = tracking.promotion_lock_space()
        with pytest.raises(LockTimeout), named_lock(space, GATE_LOCK_PREFIX + MODEL, timeout_s=0):
            pass
        b = ChildProcess(
            ["-c", code, json.dumps({**second, "role": "second"})], log=logs / "second.log"
        )
        started.append(b)
        assert b.expect("at-lock", timeout=120) == f"at-lock {json.dumps(GATE_LOCK_PREFIX + MODEL)}"
        assert b.quiet_for(HOLD_S), "the second gate decided while the first held the lock"
        a.send()
        first_decision = json.loads(a.expect("decided").split(" ", 1)[1])
        second_decision = json.loads(b.expect("decided").split(" ", 1)[1])
        assert a.finish() == 0 and b.finish() == 0
    finally:
        for child in started:
            child.stop()
    assert second_decision["waited"][0] >= HOLD_S  # it waited for the first gate
    return first_decision, second_decision


def _measured(version: str, candidate: float) -> dict:
    """A gate like fraud's: candidate and champion v1 scored on the same fresh holdout."""
    return {
        "version": version,
        "promote": {
            "candidate_metrics": {"pr_auc": candidate},
            "champion_metrics": {"pr_auc": OLD_CHAMPION},
            "compared_with": "1",
        },
    }


def _champion(tracking: MlflowTracking) -> str:
    return str(tracking.champion(MODEL).version)


@pytest.mark.parametrize(
    "registry", ["file", pytest.param("postgres", marks=pytest.mark.stack)], indirect=True
)
def test_the_late_gate_is_refused_when_the_champion_moved_under_it(
    registry: MlflowTracking, tmp_path: Path
) -> None:
    """The user's race: both gates measured against v1. The better one (v3) decides first;
    the worse one (v2) was the last writer, and made itself champion. Now it is refused."""
    first, second = _race(registry, _measured("3", BETTER), _measured("2", WORSE), tmp_path)

    assert first["promote"] and "vs champion v1" in first["reason"]
    assert not second["promote"]
    assert second["reason"] == (
        "champion moved from v1 to v3 during the gate: candidate v2 was measured against v1, "
        "so it must be re-gated against v3"
    )
    assert _champion(registry) == "3"  # the better model serves
    tags = registry.client.get_model_version(MODEL, "2").tags
    assert tags["promotion.decision"] == "kept"
    assert tags["promotion.reason"] == second["reason"]
    assert "vs champion v1" in registry.champion(MODEL).tags["champion.reason"]


def test_a_refused_candidate_re_gated_against_the_new_champion_gets_a_fair_decision(
    registry: MlflowTracking, tmp_path: Path
) -> None:
    """The other order: the worse gate (v2) decides first and promotes; the better one (v3),
    measured against v1, is refused, and re-gated against v2 (scored again) it wins."""
    first, second = _race(registry, _measured("2", WORSE), _measured("3", BETTER), tmp_path)

    assert first["promote"] and _champion(registry) == "2"
    assert not second["promote"]
    assert "champion moved from v1 to v2 during the gate" in second["reason"]

    regated = registry.promote(
        MODEL,
        "3",
        RULE,
        candidate_metrics={"pr_auc": BETTER},
        champion_metrics={"pr_auc": WORSE},
        compared_with="2",
    )
    assert regated.promote and "vs champion v2" in regated.reason
    assert _champion(registry) == "3"


def test_gates_on_logged_metrics_decide_again_against_the_new_champion(
    registry: MlflowTracking, tmp_path: Path
) -> None:
    """Gates that pass no metrics (the gate reads each version's logged ones, inside the lock)
    are never stale: the late gate decides against whoever serves when it gets the lock."""
    first, second = _race(
        registry,
        {"version": "2", "promote": {"compared_with": "1"}},
        {"version": "3", "promote": {"compared_with": "1"}},
        tmp_path,
    )

    assert first["promote"] and "vs champion v1" in first["reason"]
    assert second["promote"]
    assert "0.892 vs champion v2 0.873" in second["reason"]
    assert "champion moved from v1 to v2 during the gate; decided against v2" in second["reason"]
    assert _champion(registry) == "3"


def test_champion_metrics_without_the_version_they_were_measured_on_are_refused(
    registry: MlflowTracking,
) -> None:
    with pytest.raises(ValueError, match="no compared_with"):
        registry.promote(
            MODEL, "3", RULE, candidate_metrics={"pr_auc": 0.9}, champion_metrics={"pr_auc": 0.8}
        )
    assert _champion(registry) == "1"


def test_a_gate_that_cannot_get_the_lock_decides_nothing(
    registry: MlflowTracking, monkeypatch
) -> None:
    from mlops_assets.core.tracking import PromotionLockError

    space = registry.promotion_lock_space()
    impatient = MlflowTracking(
        tracking_uri=registry.tracking_uri, lock_space=space, promotion_lock_timeout_s=0.3
    )
    with (
        named_lock(space, GATE_LOCK_PREFIX + MODEL),
        pytest.raises(PromotionLockError, match=r"waited 0\.3 s for another gate"),
    ):
        impatient.promote(MODEL, "3", RULE)
    assert _champion(registry) == "1"
    assert "promotion.decision" not in registry.client.get_model_version(MODEL, "3").tags


def test_the_default_lock_space_is_next_to_the_sqlite_registry(tmp_path: Path) -> None:
    """Resources made without ``from_settings`` (tests, scripts) still serialize their gates."""
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path}/db/mlflow.db")
    assert tracking.promotion_lock_space() == str(tmp_path / "db" / ".locks")
    server = MlflowTracking(tracking_uri="http://127.0.0.1:5000").promotion_lock_space()
    assert Path(server).parent == Path(tempfile.gettempdir())
    assert Path(server).name.startswith(f"mlops-assets-locks-{os.getuid()}-")


def test_from_settings_locks_in_the_deployments_space(local_home: Path, monkeypatch) -> None:
    import dagster as dg

    monkeypatch.delenv("MLOPS_POSTGRES_URL", raising=False)
    local = MlflowTracking.from_settings(load_settings())
    assert local.promotion_lock_space() == str(local_home / ".locks")
    # On the stack the space is the deployment's PostgreSQL; a password stays out of the UI.
    url = "postgresql://mlops:s3cret@db:5432/mlops"
    monkeypatch.setenv("MLOPS_POSTGRES_URL", url)
    stack = MlflowTracking.from_settings(load_settings())
    assert isinstance(stack.lock_space, dg.EnvVar)
    assert stack.promotion_lock_space() == url
