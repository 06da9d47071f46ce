"""The champion's history, rollback and the rollout mode, on the local profile's registry.

A SQLite MLflow under a temp home (the local profile), with the profile's lock space (a folder).
Versions are registered without model files: the history, a rollback and the rollout mode read
and write the registry only. One test replays a rollback racing a promotion gate with a real
second process, as ``test_promotion_race`` does for two gates.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.core.evaluation import PromotionRule
from mlops_assets.core.locks import LockTimeout, named_lock
from mlops_assets.core.profiles import load_settings
from mlops_assets.core.rollout import MODE_TAG, SHARE_TAG, Rollout
from mlops_assets.core.tracking import (
    CANDIDATE,
    CHAMPION,
    GATE_LOCK_PREFIX,
    HISTORY_REASON_CHARS,
    HISTORY_TAG,
    HISTORY_TAG_LIMIT,
    ROLLBACK_REASON_TAG,
    UNREADABLE_HISTORY_TAG,
    MlflowTracking,
    RegistryError,
    TrackingError,
    history_value,
)
from mlops_assets_tests.fixtures.processes import ChildProcess

pytestmark = pytest.mark.timeout(300)

MODEL = "rollback_test.fraud_classifier"
RULE = PromotionRule(metric="pr_auc", higher_is_better=True, min_improvement=0.005)


def register_version(tracking: MlflowTracking, pr_auc: float, name: str = MODEL) -> str:
    """A version of ``name`` whose source run logged ``pr_auc`` (no model files)."""
    client = tracking.client
    run = client.create_run(tracking.experiment_id("rollback_test"))
    client.log_metric(run.info.run_id, "pr_auc", pr_auc)
    client.set_terminated(run.info.run_id)
    with contextlib.suppress(Exception):
        client.create_registered_model(name)
    created = client.create_model_version(
        name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    return str(created.version)


def create_empty_registry(folder: Path) -> Path:
    """An MLflow SQLite database in ``folder`` with its tables made, to copy into each test's
    home (:func:`local_registry`): creating them takes seconds, copying the file milliseconds."""
    MlflowTracking(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").ensure_backend()
    return folder / "mlflow.db"


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_empty_registry(tmp_path_factory.mktemp("empty_registry"))


def local_registry(home: Path, empty: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowTracking:
    """The local profile's registry in ``home`` (its SQLite database a copy of ``empty``; the
    gate's locks in <home>/.locks), as ``mlops`` itself opens it."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLOPS_POSTGRES_URL", raising=False)
    (home / ".mlflow").mkdir(exist_ok=True)
    shutil.copyfile(empty, home / ".mlflow" / "mlflow.db")
    return MlflowTracking.from_settings(load_settings())


@pytest.fixture
def tracking(
    local_home: Path, empty_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> MlflowTracking:
    """The local profile's registry (SQLite under a temp home, locks in <home>/.locks)."""
    resource = local_registry(local_home, empty_registry, monkeypatch)
    assert resource.promotion_lock_space() == str(local_home / ".locks")
    return resource


@pytest.fixture
def promoted(tracking: MlflowTracking) -> MlflowTracking:
    """v1, v2 and v3 of MODEL, each promoted by the gate in turn (v3 serves)."""
    for pr_auc in (0.80, 0.85, 0.90):
        version = register_version(tracking, pr_auc)
        assert tracking.promote(MODEL, version, RULE).promote
    assert _champion(tracking) == "3"
    return tracking


def _champion(tracking: MlflowTracking, name: str = MODEL) -> str | None:
    version = tracking.champion(name)
    return None if version is None else str(version.version)


def _moves(tracking: MlflowTracking) -> list[tuple[str | None, str, str]]:
    return [(e["previous"], e["version"], e["kind"]) for e in tracking.champion_history(MODEL)]


# --- the history ---------------------------------------------------------------------------------


def test_the_gate_and_moves_by_hand_append_to_the_champion_history(
    tracking: MlflowTracking,
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    v1 = register_version(tracking, 0.80)
    assert tracking.promote(MODEL, v1, RULE).promote
    v2 = register_version(tracking, 0.85)
    gate = tracking.promote(MODEL, v2, RULE)
    assert gate.promote
    v3 = register_version(tracking, 0.851)  # within the margin: kept, no move, no entry
    assert not tracking.promote(MODEL, v3, RULE).promote
    tracking.set_alias(MODEL, CHAMPION, v3, reason="hotfix: v2 mislabels refunds")
    tracking.set_alias(MODEL, CHAMPION, v3, reason="same version again")  # no move, no entry
    tracking.set_alias(MODEL, CANDIDATE, v1)  # another alias: not the champion's history

    history = tracking.champion_history(MODEL)
    assert [(e["previous"], e["version"], e["kind"]) for e in history] == [
        (None, "1", "promotion"),
        ("1", "2", "promotion"),
        ("2", "3", "manual"),
    ]
    assert history[0]["reason"].startswith("no champion yet")
    assert history[1]["reason"] == gate.reason
    assert history[2]["reason"] == "hotfix: v2 mislabels refunds"
    for entry in history:
        at = datetime.fromisoformat(entry["at"])
        assert at.utcoffset().total_seconds() == 0
        assert before <= at <= datetime.now(UTC)
        assert entry["at"] == at.isoformat(timespec="seconds")
    # The tag is compact JSON in the registered model.
    raw = tracking.client.get_registered_model(MODEL).tags[HISTORY_TAG]
    assert json.loads(raw) == history


def test_a_version_registered_as_champion_is_a_recorded_move(tracking: MlflowTracking) -> None:
    client = tracking.client
    run = client.create_run(tracking.experiment_id("rollback_test"))
    client.set_terminated(run.info.run_id)
    registered = tracking.register(f"runs:/{run.info.run_id}/model", MODEL, alias=CHAMPION)

    assert str(registered.version) == "1" and _champion(tracking) == "1"
    [entry] = tracking.champion_history(MODEL)
    assert {k: v for k, v in entry.items() if k != "at"} == {
        "version": "1",
        "previous": None,
        "kind": "manual",
        "reason": "registered as the champion",
    }


def test_the_history_keeps_the_newest_moves_within_the_tag_limit(
    tracking: MlflowTracking,
) -> None:
    v1, v2 = register_version(tracking, 0.8), register_version(tracking, 0.9)
    long_reason = "r" * (HISTORY_REASON_CHARS + 200)  # cut to HISTORY_REASON_CHARS in the history
    moves = 30
    for i in range(moves):
        tracking.set_alias(MODEL, CHAMPION, (v1, v2)[i % 2], reason=f"{i:02d} {long_reason}")

    raw = tracking.client.get_registered_model(MODEL).tags[HISTORY_TAG]
    assert len(raw) <= HISTORY_TAG_LIMIT
    history = json.loads(raw)  # whole entries were dropped, never a cut in the JSON
    assert 5 < len(history) < moves
    # The newest are kept, in order, and each one replaced the one before it.
    assert [e["reason"][:2] for e in history] == [
        f"{i:02d}" for i in range(moves - len(history), moves)
    ]
    assert all(len(e["reason"]) == HISTORY_REASON_CHARS for e in history)
    assert all(e["reason"].endswith("\u2026") for e in history)
    assert all(b["previous"] == a["version"] for a, b in itertools.pairwise(history))
    assert history[-1]["version"] == _champion(tracking) == v2
    # The full reason stays on the version.
    assert (
        tracking.client.get_model_version(MODEL, v2).tags["champion.reason"].endswith(long_reason)
    )


@pytest.mark.stack
def test_on_a_postgresql_registry_the_history_fits_where_a_longer_tag_is_refused(
    postgres_database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL enforces the tag column's length, which SQLite ignores: the limit is real, and
    the history keeps under it. The gate's lock is an advisory lock of the same database, as on
    the stack profile."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    url = postgres_database("history")
    tracking = MlflowTracking(
        tracking_uri=url.replace("postgresql://", "postgresql+psycopg://", 1), lock_space=url
    )
    v1, v2 = register_version(tracking, 0.8), register_version(tracking, 0.9)
    with pytest.raises(Exception, match=r"value too long for type character varying\(5000\)"):
        tracking.client.set_registered_model_tag(MODEL, "too_long", "x" * (HISTORY_TAG_LIMIT + 1))

    for i in range(24):
        tracking.set_alias(MODEL, CHAMPION, (v1, v2)[i % 2], reason=f"{i:02d} " + "r" * 400)
    raw = tracking.client.get_registered_model(MODEL).tags[HISTORY_TAG]
    assert HISTORY_TAG_LIMIT - 500 < len(raw) <= HISTORY_TAG_LIMIT
    assert json.loads(raw)[-1]["reason"].startswith("23 ")
    assert tracking.rollback(MODEL, reason="v2 is bad").to_version == v1


def test_history_value_drops_the_oldest_entries_whole() -> None:
    entries = [{"version": str(i), "previous": None, "reason": "x" * 50} for i in range(100)]
    text = history_value(entries, limit=1000)
    kept = json.loads(text)
    assert len(text) <= 1000
    assert [e["version"] for e in kept] == [str(i) for i in range(100 - len(kept), 100)]
    # One more entry would not have fitted.
    assert len(history_value(entries[-len(kept) - 1 :], limit=10**6)) > 1000


def test_the_limit_is_the_registry_databases_for_registered_model_tags() -> None:
    """MLflow validates 100,000 characters, but its database column holds 5,000: the history must
    fit the smaller (PostgreSQL enforces it). Fails when an MLflow upgrade changes either."""
    from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelTag
    from mlflow.utils.validation import MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH

    column = SqlRegisteredModelTag.__table__.c.value.type.length
    assert min(column, MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH) == HISTORY_TAG_LIMIT == 5000


def test_a_history_edited_by_hand_is_set_aside_and_never_blocks_a_move(
    tracking: MlflowTracking,
) -> None:
    v1, v2 = register_version(tracking, 0.8), register_version(tracking, 0.9)
    tracking.set_alias(MODEL, CHAMPION, v1)
    tracking.client.set_registered_model_tag(MODEL, HISTORY_TAG, "v1 then v2, see wiki")

    with pytest.raises(RegistryError, match=f"{HISTORY_TAG} of model .* is not a champion history"):
        tracking.champion_history(MODEL)
    with pytest.raises(RegistryError, match=r"is not a champion history .* pass --to VERSION"):
        tracking.rollback(MODEL, reason="v1 is bad")
    tracking.set_alias(MODEL, CHAMPION, v2, reason="after the edit")

    assert _champion(tracking) == v2
    assert _moves(tracking) == [("1", "2", "manual")]
    tags = tracking.client.get_registered_model(MODEL).tags
    assert tags[UNREADABLE_HISTORY_TAG] == "v1 then v2, see wiki"


def test_a_failed_alias_move_takes_its_history_entry_back(
    tracking: MlflowTracking, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2 = register_version(tracking, 0.8), register_version(tracking, 0.9)
    tracking.set_alias(MODEL, CHAMPION, v1)
    before = tracking.client.get_registered_model(MODEL).tags[HISTORY_TAG]

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the registry went away")

    monkeypatch.setattr(tracking.client, "set_registered_model_alias", refuse)
    with pytest.raises(TrackingError, match="ConnectionError: the registry went away"):
        tracking.set_alias(MODEL, CHAMPION, v2)
    monkeypatch.undo()

    assert _champion(tracking) == v1
    assert tracking.client.get_registered_model(MODEL).tags[HISTORY_TAG] == before


# --- rollback ------------------------------------------------------------------------------------


def test_rollbacks_walk_back_through_the_promotions_then_ask_for_a_version(
    promoted: MlflowTracking,
) -> None:
    first = promoted.rollback(MODEL, reason="v3 flags every card in Lisbon")
    assert (first.name, first.from_version, first.to_version) == (MODEL, "3", "2")
    assert first.reason == "v3 flags every card in Lisbon"
    assert _champion(promoted) == "2"

    # A second rollback goes further back (it does not undo the first one).
    second = promoted.rollback(MODEL, reason="v2 has the same bug")
    assert (second.from_version, second.to_version) == ("2", "1")
    assert _champion(promoted) == "1"

    # v1 was the first champion: nowhere further to go; nothing moves, nothing is recorded.
    with pytest.raises(RegistryError, match=r"v1 was the first champion.*pass --to VERSION"):
        promoted.rollback(MODEL, reason="and v1?")
    assert _champion(promoted) == "1"
    assert _moves(promoted) == [
        (None, "1", "promotion"),
        ("1", "2", "promotion"),
        ("2", "3", "promotion"),
        ("3", "2", "rollback"),
        ("2", "1", "rollback"),
    ]

    # With --to, forward again; then a rollback undoes what brought v3 in (its promotion from v2).
    promoted.rollback(MODEL, to="v3", reason="the Lisbon alert was a test feed")
    assert _champion(promoted) == "3"
    assert promoted.rollback(MODEL, reason="it was not").to_version == "2"


def test_a_rollback_is_recorded_like_a_promotion(promoted: MlflowTracking) -> None:
    promoted.rollback(MODEL, reason="  chargebacks doubled since v3  ")

    entry = promoted.champion_history(MODEL)[-1]
    assert (entry["previous"], entry["version"], entry["kind"]) == ("3", "2", "rollback")
    assert entry["reason"] == "chargebacks doubled since v3"
    client = promoted.client
    assert client.get_model_version(MODEL, "2").tags["champion.reason"] == (
        "rollback from v3: chargebacks doubled since v3"
    )
    left = client.get_model_version(MODEL, "3").tags
    assert left[ROLLBACK_REASON_TAG] == "rolled back to v2: chargebacks doubled since v3"
    assert left["promotion.decision"] == "promoted"  # the gate's decision stays as it was


def test_a_rollback_to_a_version_that_does_not_exist_is_refused_naming_it(
    promoted: MlflowTracking,
) -> None:
    with pytest.raises(RegistryError) as refused:
        promoted.rollback(MODEL, to="7", reason="back to the good one")
    assert str(refused.value) == (
        f"the rollback target v7 of model {MODEL!r} does not exist (deleted, or never "
        "registered); its versions are: v3, v2, v1"
    )

    promoted.client.delete_model_version(MODEL, "1")
    with pytest.raises(RegistryError, match=r"target v1 of model .* does not exist.*v3, v2$"):
        promoted.rollback(MODEL, to=1, reason="back to the good one")
    with pytest.raises(RegistryError, match="v3 already is the champion"):
        promoted.rollback(MODEL, to="3", reason="no-op")
    with pytest.raises(RegistryError, match="'latest' is not a model version"):
        promoted.rollback(MODEL, to="latest", reason="no-op")
    assert _champion(promoted) == "3"
    assert len(promoted.champion_history(MODEL)) == 3


def test_a_deleted_previous_champion_is_refused_and_named(promoted: MlflowTracking) -> None:
    promoted.client.delete_model_version(MODEL, "2")
    with pytest.raises(RegistryError, match=r"the previous champion v2 of model .* does not exist"):
        promoted.rollback(MODEL, reason="v3 is bad")
    assert promoted.rollback(MODEL, to="1", reason="v3 is bad").to_version == "1"


@pytest.mark.parametrize("reason", ["", "   \n"])
def test_a_rollback_without_a_reason_is_refused(promoted: MlflowTracking, reason: str) -> None:
    with pytest.raises(RegistryError, match="needs a reason"):
        promoted.rollback(MODEL, reason=reason)
    assert _champion(promoted) == "3"


def test_a_model_without_champion_has_nothing_to_roll_back(tracking: MlflowTracking) -> None:
    register_version(tracking, 0.8)
    with pytest.raises(RegistryError, match=f"model {MODEL!r} has no champion: there is nothing"):
        tracking.rollback(MODEL, reason="panic")
    with pytest.raises(RegistryError, match="model 'no_such_model' is not registered in sqlite"):
        tracking.rollback("no_such_model", reason="panic")


def test_a_champion_the_history_does_not_account_for_asks_for_a_version(
    tracking: MlflowTracking,
) -> None:
    v1, v2 = register_version(tracking, 0.8), register_version(tracking, 0.9)
    # Moved before histories were kept (straight through MLflow's client).
    tracking.client.set_registered_model_alias(MODEL, CHAMPION, v2)
    with pytest.raises(RegistryError, match=r"does not say what served before v2.*--to VERSION"):
        tracking.rollback(MODEL, reason="v2 is bad")
    assert tracking.rollback(MODEL, to=v1, reason="v2 is bad").from_version == v2


def test_an_entry_of_a_move_that_never_happened_is_not_followed(promoted: MlflowTracking) -> None:
    """A process that died between writing the history and moving the alias leaves an entry
    that brings in a version which never served; the rollback skips it."""
    history = promoted.champion_history(MODEL)
    v4 = register_version(promoted, 0.95)
    stray = {"version": v4, "previous": "3", "at": history[-1]["at"], "kind": "promotion"}
    promoted.client.set_registered_model_tag(
        MODEL, HISTORY_TAG, history_value([*history, {**stray, "reason": "died"}])
    )
    assert promoted.rollback(MODEL, reason="v3 is bad").to_version == "2"
    assert _moves(promoted)[-1] == ("3", "2", "rollback")


def test_a_rollback_refuses_when_the_champion_is_not_the_one_expected(
    promoted: MlflowTracking,
) -> None:
    with pytest.raises(RegistryError, match=r"champion of model .* is v3, not v2: it moved since"):
        promoted.rollback(MODEL, reason="v2 is bad", expect="2")
    assert promoted.rollback(MODEL, reason="v3 is bad", expect="v3").to_version == "2"


# --- a rollback racing a promotion gate ---------------------------------------------------------


def _say(word: str, payload: Any = None) -> None:
    print(f"{word} {json.dumps(payload)}", flush=True)


def gate_held_in_child() -> None:
    """A promotion gate of MODEL's ``sys.argv[1]`` version, run as ``python -c``: it stops inside
    the lock (after reading the champion, before deciding) until a line arrives on stdin."""
    from mlops_assets.core import evaluation

    resource = MlflowTracking.from_settings(load_settings())
    resource.client  # noqa: B018  (connects now)
    decide = evaluation.decide_promotion

    def held_decision(*args: Any, **kwargs: Any) -> Any:
        _say("in-gate")
        sys.stdin.readline()
        return decide(*args, **kwargs)

    evaluation.decide_promotion = held_decision
    decision = resource.promote(MODEL, sys.argv[1], RULE)
    _say("decided", {"promote": decision.promote})


def test_a_rollback_waits_for_the_gate_and_acts_on_the_champion_it_promoted(
    tracking: MlflowTracking, tmp_path: Path
) -> None:
    """The gate promotes v3 over v2 while an operator rolls back, having seen v2 serve. Without
    the lock the rollback would read v2 and go to v1, and the gate would then put v3 over it;
    with it, the rollback waits, reads the champion again, and refuses the stale request, and a
    second rollback undoes the gate's promotion."""
    for pr_auc in (0.80, 0.85):
        assert tracking.promote(MODEL, register_version(tracking, pr_auc), RULE).promote
    v3 = register_version(tracking, 0.90)
    code = "from mlops_assets_tests.core.test_rollback import gate_held_in_child as g; g()"
    gate = ChildProcess(["-c", code, v3], log=tmp_path / "gate.log")
    outcome: dict[str, Any] = {}
    try:
        gate.expect("in-gate", timeout=120)
        space = tracking.promotion_lock_space()
        with pytest.raises(LockTimeout), named_lock(space, GATE_LOCK_PREFIX + MODEL, timeout_s=0):
            pass

        def operator() -> None:
            try:
                outcome["result"] = tracking.rollback(MODEL, reason="v2 is bad", expect="2")
            except RegistryError as exc:
                outcome["refused"] = str(exc)

        rolling = threading.Thread(target=operator)
        rolling.start()
        rolling.join(1.0)
        assert rolling.is_alive(), "the rollback did not wait for the gate's lock"
        assert _champion(tracking) == "2"
        gate.send()
        assert json.loads(gate.expect("decided").split(" ", 1)[1]) == {"promote": True}
        assert gate.finish() == 0
        rolling.join(60)
        assert not rolling.is_alive()
    finally:
        gate.stop()

    assert "result" not in outcome
    assert outcome["refused"] == (
        f"the champion of model {MODEL!r} is v3, not v2: it moved since you looked; nothing was "
        "rolled back"
    )
    assert _champion(tracking) == "3"
    undone = tracking.rollback(MODEL, reason="v3 came in during the incident")
    assert (undone.from_version, undone.to_version) == ("3", "2")
    assert _moves(tracking) == [
        (None, "1", "promotion"),
        ("1", "2", "promotion"),
        ("2", "3", "promotion"),
        ("3", "2", "rollback"),
    ]


# --- the rollout mode ----------------------------------------------------------------------------


def test_the_rollout_mode_is_kept_in_the_registered_models_tags(tracking: MlflowTracking) -> None:
    register_version(tracking, 0.8)
    assert tracking.get_rollout(MODEL) == Rollout()  # never set: off

    shown = tracking.set_rollout(MODEL, Rollout.of("canary", 0.25, reason="first look at v2"))
    assert (shown.mode, shown.share, shown.reason) == ("canary", 0.25, "first look at v2")
    tags = tracking.client.get_registered_model(MODEL).tags
    assert (tags[MODE_TAG], tags[SHARE_TAG]) == ("canary", "0.25")
    assert tracking.get_rollout(MODEL) == shown

    assert tracking.set_rollout(MODEL, Rollout.of("shadow")).share == 1.0
    assert tracking.get_rollout(MODEL).mode == "shadow"


def test_rollout_tags_are_written_so_no_state_between_is_a_wider_canary(
    tracking: MlflowTracking, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_version(tracking, 0.8)
    tracking.set_rollout(MODEL, Rollout.of("shadow"))  # shadow, share 1.0
    written: list[str] = []
    original = tracking.client.set_registered_model_tag

    def record(name: str, key: str, value: str) -> None:
        written.append(key)
        original(name, key, value)

    monkeypatch.setattr(tracking.client, "set_registered_model_tag", record)
    # Shadow at 1.0 to canary at 0.1: mode first would make a canary of every entity.
    tracking.set_rollout(MODEL, Rollout.of("canary", 0.1))
    assert written[:2] == [SHARE_TAG, MODE_TAG]
    written.clear()
    # Canary at 0.1 to shadow at 1.0: share first would make a canary of every entity.
    tracking.set_rollout(MODEL, Rollout.of("shadow", 1.0))
    assert written[:2] == [MODE_TAG, SHARE_TAG]


def test_the_rollout_of_a_model_that_is_not_registered_is_refused(
    tracking: MlflowTracking,
) -> None:
    with pytest.raises(RegistryError, match="model 'no_such_model' is not registered"):
        tracking.get_rollout("no_such_model")
    with pytest.raises(RegistryError, match="model 'no_such_model' is not registered"):
        tracking.set_rollout("no_such_model", Rollout.of("shadow"))
