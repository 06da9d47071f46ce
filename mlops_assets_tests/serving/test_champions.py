"""The served champions: loaded by alias, swapped when the alias moves, kept when a new version
cannot be served, and never seen half-built by a request."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from mlops_assets.core.rollout import Rollout
from mlops_assets.serving.champions import Champions
from mlops_assets.serving.endpoints import Endpoint, ModelInfo, Prediction, Services
from mlops_assets_tests.fixtures.waiting import wait_until

NAME = "toy_model"


@dataclass
class RawModel:
    """What the fake registry loads: a model that multiplies by its version number."""

    name: str
    version: str
    weight: float


class FakeTracking:
    """The part of ``MlflowTracking`` that ``Champions`` uses, over an in-memory registry."""

    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], str] = {}
        self.version_tags: dict[tuple[str, str], dict[str, str]] = {}
        self.run_tags: dict[str, dict[str, str]] = {}
        self.broken: dict[tuple[str, str], Exception] = {}
        self.lookup_error: Exception | None = None
        self.loads: list[tuple[str, str, str]] = []
        self.registered: list[str] = []
        self.model_tags: dict[str, dict[str, str]] = {}
        self.rollout_error: Exception | None = None
        self.lock = threading.Lock()

    # -- what the tests do to the registry ---------------------------------------------------

    def set_alias(self, name: str, version: str, *, alias: str = "champion") -> None:
        with self.lock:
            self.aliases[(name, alias)] = version

    def remove_alias(self, name: str, *, alias: str = "champion") -> None:
        with self.lock:
            self.aliases.pop((name, alias), None)

    def set_rollout(self, name: str, mode: str, share: float | None = None) -> None:
        """Set the registered model's rollout tags, as ``mlops rollout`` does."""
        with self.lock:
            self.model_tags[name] = Rollout.of(mode, share, reason="test").tags()

    # -- what Champions calls ----------------------------------------------------------------

    def get_version_by_alias(self, name: str, alias: str) -> Any:
        if self.lookup_error is not None:
            raise self.lookup_error
        with self.lock:
            version = self.aliases.get((name, alias))
        if version is None:
            return None
        return SimpleNamespace(
            version=int(version),  # MLflow's ModelVersion has str versions; ints must work too
            run_id=f"run-{name}-{version}",
            tags=self.version_tags.get((name, version), {}),
        )

    @property
    def client(self) -> Any:
        return self

    def get_registered_model(self, name: str) -> Any:
        if self.rollout_error is not None:
            raise self.rollout_error
        with self.lock:
            aliases = {a: v for (n, a), v in self.aliases.items() if n == name}
            tags = dict(self.model_tags.get(name, {}))
        if not aliases and not tags:
            raise NotRegistered(name)
        return SimpleNamespace(name=name, aliases=aliases, tags=tags)

    def get_model_version(self, name: str, version: str) -> Any:
        return SimpleNamespace(
            version=str(version),
            run_id=f"run-{name}-{version}",
            tags=self.version_tags.get((name, str(version)), {}),
        )

    def get_run(self, run_id: str) -> Any:
        return SimpleNamespace(data=SimpleNamespace(tags=dict(self.run_tags.get(run_id, {}))))

    def load_model_version(self, name: str, version: str, *, flavor: str = "sklearn") -> RawModel:
        self.loads.append((name, version, flavor))
        if (name, version) in self.broken:
            raise self.broken[(name, version)]
        return RawModel(name, version, float(version))


class NotRegistered(Exception):
    """MLflow's answer for a registered model that does not exist."""

    error_code = "RESOURCE_DOES_NOT_EXIST"


class Ask(BaseModel):
    x: float
    key: str = "a"


def predict(model: Any, request: Ask, services: Services) -> Prediction:
    y = model.weight * request.x
    return Prediction(body={"y": y}, value=y)


@dataclass
class Prepared:
    """What ``prepare`` makes of a raw model: a scorer that knows its version."""

    version: str
    weight: float
    scorer_note: str = "prepared"
    checks: list[float] = field(default_factory=list)


def prepare(raw: RawModel, info: ModelInfo) -> Prepared:
    assert raw.version == info.version
    return Prepared(version=info.version, weight=raw.weight)


def endpoint(**overrides: Any) -> Endpoint:
    fields: dict[str, Any] = {
        "use_case": "toy",
        "model_name": NAME,
        "request": Ask,
        "predict": predict,
        "flavor": "pyfunc",
    }
    fields.update(overrides)
    return Endpoint(**fields)


@pytest.fixture
def tracking() -> FakeTracking:
    return FakeTracking()


def champions_of(tracking: FakeTracking, *endpoints: Endpoint, **kwargs: Any) -> Champions:
    served = endpoints or (endpoint(),)
    return Champions(tracking, {e.use_case: e for e in served}, **kwargs)  # type: ignore[arg-type]


def test_refresh_loads_the_version_the_alias_points_at(tracking: FakeTracking) -> None:
    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking)

    assert champions.get(NAME) is None
    assert champions.refresh() == [f"{NAME}: none -> v1"]

    loaded = champions.get(NAME)
    assert loaded is not None
    assert loaded.info == ModelInfo(NAME, "1", f"run-{NAME}-1", {}, {})
    assert loaded.model == RawModel(NAME, "1", 1.0)  # no prepare: the raw model serves
    assert tracking.loads == [(NAME, "1", "pyfunc")]
    assert champions.swaps == 0
    assert champions.error(NAME) is None
    assert champions.names("toy") == [NAME]


def test_a_refresh_without_a_move_loads_nothing(tracking: FakeTracking) -> None:
    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking)
    champions.refresh()
    first = champions.get(NAME)

    assert champions.refresh() == []
    assert champions.get(NAME) is first
    assert len(tracking.loads) == 1


def test_an_alias_move_swaps_in_the_new_version(tracking: FakeTracking) -> None:
    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking, endpoint(prepare=prepare))
    champions.refresh()
    old = champions.get(NAME)

    tracking.set_alias(NAME, "2")
    changes = champions.refresh()

    assert changes == [f"{NAME}: v1 -> v2"]
    assert champions.swaps == 1
    new = champions.get(NAME)
    assert new is not None and old is not None
    assert new.info.version == "2"
    assert new.model == Prepared(version="2", weight=2.0)
    # A request that took the old one before the swap finishes on it, unchanged.
    assert old.model == Prepared(version="1", weight=1.0)
    assert new.endpoint.predict(new.model, Ask(x=3), Services(online=None)).value == 6.0


class Clock:
    """``time.monotonic`` of the champions module, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    from mlops_assets.serving import champions

    fake = Clock()
    monkeypatch.setattr(champions.time, "monotonic", fake)
    return fake


def _v1_serving_and_v2_broken(tracking: FakeTracking) -> Champions:
    """Champions that loaded v1 (polled every 10 s), then the alias moved to a v2 whose artifacts
    cannot be read."""
    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking, poll_s=10.0)
    champions.refresh()
    tracking.broken[(NAME, "2")] = OSError("artifact store unreachable")
    tracking.set_alias(NAME, "2")
    return champions


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    tracking: FakeTracking, clock: Clock
) -> None:
    champions = _v1_serving_and_v2_broken(tracking)

    assert champions.refresh() == []
    loaded = champions.get(NAME)
    assert loaded is not None and loaded.info.version == "1"
    assert champions.swaps == 0
    assert champions.error(NAME) == "v2 could not be loaded: OSError: artifact store unreachable"

    # Fixed in the registry: once its back-off has passed, it loads and the error goes.
    del tracking.broken[(NAME, "2")]
    assert champions.refresh() == []  # within the back-off: not tried again yet
    clock.now += 10.0
    assert champions.refresh() == [f"{NAME}: v1 -> v2"]
    assert champions.error(NAME) is None


def test_a_version_that_keeps_failing_is_retried_ever_less_often(
    tracking: FakeTracking, clock: Clock
) -> None:
    from mlops_assets.serving.champions import MAX_BACKOFF_S

    champions = _v1_serving_and_v2_broken(tracking)

    attempts_at: list[float] = []
    start = clock.now
    while clock.now < start + 1000:
        before = len(tracking.loads)
        champions.refresh()
        if len(tracking.loads) > before:
            attempts_at.append(clock.now - start)
        clock.now += 5.0
    gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
    assert gaps[:5] == [10.0, 20.0, 40.0, 80.0, 160.0]
    assert max(gaps) == MAX_BACKOFF_S
    assert champions.get(NAME).info.version == "1"  # type: ignore[union-attr]


def test_a_version_that_prepare_refuses_leaves_the_old_one_serving(
    tracking: FakeTracking,
) -> None:
    def picky(raw: RawModel, info: ModelInfo) -> Prepared:
        if info.version_tags.get("feature_version") != "2":
            raise ValueError(f"feature_version {info.version_tags.get('feature_version')}")
        return prepare(raw, info)

    tracking.version_tags[(NAME, "1")] = {"feature_version": "2"}
    tracking.version_tags[(NAME, "2")] = {"feature_version": "1"}
    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking, endpoint(prepare=picky))
    champions.refresh()
    tracking.set_alias(NAME, "2")

    assert champions.refresh() == []

    loaded = champions.get(NAME)
    assert loaded is not None and loaded.model == Prepared(version="1", weight=1.0)
    assert champions.error(NAME) == "v2 could not be loaded: ValueError: feature_version 1"
    entry = champions.describe()[0]
    assert entry["version"] == "1"
    assert entry["last_error"] == "v2 could not be loaded: ValueError: feature_version 1"


def test_no_alias_yet_is_reported_and_nothing_serves(tracking: FakeTracking) -> None:
    champions = champions_of(tracking)

    assert champions.refresh() == []

    assert champions.get(NAME) is None
    assert champions.error(NAME) == "no version has the alias 'champion' yet"
    assert champions.describe() == [
        {
            "use_case": "toy",
            "model_name": NAME,
            "version": None,
            "alias": "champion",
            "status": "no champion loaded",
            "last_error": "no version has the alias 'champion' yet",
            "input_schema": Ask.model_json_schema(),
            "rollout": {
                "mode": "off",
                "share": 0.0,
                "candidate_version": None,
                "state": "off",
                "reason": f"{NAME} is not registered",
                "updated_at": None,
                "setting_reason": None,
                "last_error": None,
            },
        }
    ]


def test_an_alias_removed_after_loading_keeps_the_loaded_version(tracking: FakeTracking) -> None:
    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking)
    champions.refresh()

    tracking.remove_alias(NAME)

    assert champions.refresh() == []
    loaded = champions.get(NAME)
    assert loaded is not None and loaded.info.version == "1"
    assert champions.error(NAME) is None


def test_a_registry_outage_is_reported_and_the_loaded_version_keeps_serving(
    tracking: FakeTracking,
) -> None:
    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking)
    champions.refresh()

    tracking.lookup_error = ConnectionError("registry down")

    assert champions.refresh() == []
    loaded = champions.get(NAME)
    assert loaded is not None and loaded.info.version == "1"
    assert champions.error(NAME) == "registry look-up failed: registry down"

    tracking.lookup_error = None
    assert champions.refresh() == []
    assert champions.error(NAME) is None


def keyed_endpoint() -> Endpoint:
    return endpoint(
        use_case="forecast",
        model_name="forecaster_{key}",
        model_key="key",
        model_names=lambda t: t.list_names(),
        prepare=prepare,
    )


def test_a_keyed_endpoint_serves_every_listed_model(tracking: FakeTracking) -> None:
    names = ["forecaster_b", "forecaster_a"]
    tracking.list_names = lambda: list(names)  # type: ignore[attr-defined]
    tracking.set_alias("forecaster_a", "3")
    tracking.set_alias("forecaster_b", "5")
    served = keyed_endpoint()
    champions = champions_of(tracking, served)

    changes = champions.refresh()

    assert sorted(changes) == ["forecaster_a: none -> v3", "forecaster_b: none -> v5"]
    assert champions.names("forecast") == ["forecaster_a", "forecaster_b"]
    assert served.name_for(Ask(x=1, key="b")) == "forecaster_b"
    loaded = champions.get(served.name_for(Ask(x=1, key="b")))
    assert loaded is not None and loaded.model == Prepared(version="5", weight=5.0)
    assert [(e["model_name"], e["version"]) for e in champions.describe()] == [
        ("forecaster_a", "3"),
        ("forecaster_b", "5"),
    ]

    # A model registered later is picked up by the next refresh.
    names.append("forecaster_c")
    tracking.set_alias("forecaster_c", "1")
    assert champions.refresh() == ["forecaster_c: none -> v1"]
    assert champions.names("forecast") == ["forecaster_a", "forecaster_b", "forecaster_c"]


def test_a_failed_listing_keeps_the_known_models_and_clears_once_it_recovers(
    tracking: FakeTracking,
) -> None:
    listing: dict[str, Any] = {"names": [], "error": ConnectionError("registry down")}

    def list_names() -> list[str]:
        if listing["error"] is not None:
            raise listing["error"]
        return list(listing["names"])

    tracking.list_names = list_names  # type: ignore[attr-defined]
    champions = champions_of(tracking, keyed_endpoint())

    champions.refresh()
    assert champions.names("forecast") == []
    assert champions.error("forecaster_{key}") == "listing models failed: registry down"
    assert champions.describe()[0]["last_error"] == "listing models failed: registry down"

    # The registry answers, with no model registered yet: the outage is over.
    listing["error"] = None
    champions.refresh()
    assert champions.error("forecaster_{key}") is None
    assert champions.describe()[0]["last_error"] is None

    listing["names"] = ["forecaster_a"]
    tracking.set_alias("forecaster_a", "1")
    champions.refresh()
    listing["error"] = ConnectionError("registry down again")
    assert champions.refresh() == []
    assert champions.names("forecast") == ["forecaster_a"]
    assert champions.get("forecaster_a") is not None


def test_describe_shows_the_lineage_and_training_data_versions(tracking: FakeTracking) -> None:
    tracking.run_tags[f"run-{NAME}-4"] = {
        "dagster.run_id": "abc",
        "dagster.asset_key": "toy/model",
        "dagster.input.toy/training_set.data_version": "v-ts",
        "dagster.input.toy/holdout.data_version": "v-ho",
        "training_set.data_version": "v-direct",
        "mlops.use_case": "toy",
        "mlflow.user": "someone",  # not lineage
    }
    tracking.version_tags[(NAME, "4")] = {"feature_version": "2"}
    tracking.set_alias(NAME, "4")
    champions = champions_of(tracking, endpoint(prepare=prepare))
    champions.refresh()

    (entry,) = champions.describe()

    assert entry["use_case"] == "toy"
    assert entry["model_name"] == NAME
    assert entry["version"] == "4"
    assert entry["alias"] == "champion"
    assert entry["run_id"] == f"run-{NAME}-4"
    assert entry["training_data_versions"] == {
        "toy/holdout": "v-ho",
        "toy/training_set": "v-ts",
        "training_set": "v-direct",
    }
    assert entry["lineage"] == {
        "dagster.asset_key": "toy/model",
        "dagster.input.toy/holdout.data_version": "v-ho",
        "dagster.input.toy/training_set.data_version": "v-ts",
        "dagster.run_id": "abc",
        "mlops.use_case": "toy",
        "training_set.data_version": "v-direct",
    }
    assert list(entry["lineage"]) == sorted(entry["lineage"])
    assert entry["input_schema"] == Ask.model_json_schema()
    assert entry["notes"] == "prepared"
    assert entry["signature"] is None
    assert entry["load_seconds"] >= 0
    assert "last_error" not in entry
    loaded = champions.get(NAME)
    assert loaded is not None and loaded.info.version_tags == {"feature_version": "2"}


def test_polling_picks_up_an_alias_move_and_stop_joins_the_thread(
    tracking: FakeTracking,
) -> None:
    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking, poll_s=0.05)
    champions.refresh()
    champions.start_polling()
    try:
        tracking.set_alias(NAME, "2")
        loaded = wait_until(
            lambda: (m := champions.get(NAME)) is not None and m.info.version == "2" and m,
            timeout=2.0,
            what="the poller to load v2",
        )
        assert loaded.model == RawModel(NAME, "2", 2.0)
        assert champions.swaps == 1
    finally:
        champions.stop()

    assert not [t for t in threading.enumerate() if t.name == "champion-poller"]
    # Stopped means stopped: a later move is not loaded.
    tracking.set_alias(NAME, "3")
    time.sleep(0.2)
    loaded = champions.get(NAME)
    assert loaded is not None and loaded.info.version == "2"


def test_a_reader_never_sees_a_missing_or_half_built_model_during_swaps(
    tracking: FakeTracking,
) -> None:
    def slow_prepare(raw: RawModel, info: ModelInfo) -> Prepared:
        time.sleep(0.001)  # widen the window in which a careless swap would be visible
        return prepare(raw, info)

    tracking.set_alias(NAME, "1")
    champions = champions_of(tracking, endpoint(prepare=slow_prepare))
    champions.refresh()
    stop = threading.Event()
    seen: set[str] = set()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            loaded = champions.get(NAME)
            reads += 1
            if loaded is None:
                problems.append("get() returned None")
            elif not isinstance(loaded.model, Prepared):
                problems.append(f"v{loaded.info.version} served unprepared: {loaded.model!r}")
            elif loaded.model.version != loaded.info.version:
                problems.append(f"v{loaded.info.version} holds v{loaded.model.version}'s model")
            else:
                seen.add(loaded.info.version)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            tracking.set_alias(NAME, str(2 + i % 5))
            champions.refresh()
    finally:
        stop.set()
        thread.join()

    assert problems == []
    assert champions.swaps == 200
    assert seen - {"1"} == {"2", "3", "4", "5", "6"}
    assert reads > 200


# --- the rollout: the candidate beside the champion ---------------------------------------------


def _champion_1_candidate_2(tracking: FakeTracking, mode: str = "shadow", share: float = 1.0):
    tracking.set_alias(NAME, "1")
    tracking.set_alias(NAME, "2", alias="candidate")
    tracking.set_rollout(NAME, mode, share)
    return champions_of(tracking, endpoint(prepare=prepare))


def test_an_active_rollout_loads_the_candidate_prepared_beside_the_champion(
    tracking: FakeTracking,
) -> None:
    champions = _champion_1_candidate_2(tracking, "canary", 0.2)

    assert champions.refresh() == [
        f"{NAME}: none -> v1",
        f"{NAME}: candidate v2 in canary at share 0.2",
    ]

    champion, candidate = champions.get(NAME), champions.candidate(NAME)
    assert champion is not None and champion.model == Prepared(version="1", weight=1.0)
    assert candidate is not None and candidate.loaded.model == Prepared(version="2", weight=2.0)
    assert (candidate.rollout.mode, candidate.rollout.share) == ("canary", 0.2)
    status = champions.rollout_status(NAME)
    assert (status.state, status.candidate_version) == ("active", "2")
    assert status.reason == "v2 in canary: 20% of entities answered by it"
    (entry,) = champions.describe()
    assert entry["version"] == "1"
    assert entry["rollout"]["state"] == "active"
    assert entry["rollout"]["mode"] == "canary"
    assert entry["rollout"]["share"] == 0.2
    assert entry["rollout"]["candidate_version"] == "2"
    assert entry["rollout"]["setting_reason"] == "test"
    # A poll that finds nothing new loads nothing.
    assert champions.refresh() == []
    assert tracking.loads == [(NAME, "1", "pyfunc"), (NAME, "2", "pyfunc")]
    # A new share is followed without reloading the candidate.
    tracking.set_rollout(NAME, "shadow", 0.5)
    assert champions.refresh() == [f"{NAME}: candidate v2 in shadow at share 0.5"]
    candidate = champions.candidate(NAME)
    assert candidate is not None and (candidate.rollout.mode, candidate.rollout.share) == (
        "shadow",
        0.5,
    )
    assert len(tracking.loads) == 2


@pytest.mark.parametrize(
    ("change", "state", "reason"),
    [
        (lambda t: t.set_rollout(NAME, "off"), "off", "the champion serves alone"),
        (
            lambda t: t.set_rollout(NAME, "canary", 0.0),
            "off",
            "the champion serves alone (canary at share 0)",
        ),
        (
            lambda t: t.remove_alias(NAME, alias="candidate"),
            "no candidate",
            "no version has the alias 'candidate': the champion serves alone",
        ),
        (
            lambda t: t.set_alias(NAME, "2"),  # promoted: the candidate is the champion
            "idle",
            "v2 is the champion: nothing to compare",
        ),
    ],
)
def test_without_an_active_candidate_the_champion_serves_alone(
    tracking: FakeTracking, change: Any, state: str, reason: str
) -> None:
    champions = _champion_1_candidate_2(tracking)
    champions.refresh()
    assert champions.candidate(NAME) is not None

    change(tracking)
    champions.refresh()

    assert champions.candidate(NAME) is None
    assert champions.rollout_status(NAME).state == state
    assert champions.rollout_status(NAME).reason == reason
    assert champions.get(NAME) is not None


def test_a_candidate_that_fails_to_load_is_switched_off_until_its_alias_moves(
    tracking: FakeTracking, caplog: pytest.LogCaptureFixture
) -> None:
    tracking.broken[(NAME, "2")] = OSError("artifact store unreachable")
    champions = _champion_1_candidate_2(tracking)

    with caplog.at_level("ERROR", logger="mlops_assets.serving.champions"):
        champions.refresh()
        champions.refresh()
        champions.refresh()

    assert champions.candidate(NAME) is None
    assert champions.get(NAME).info.version == "1"  # type: ignore[union-attr]
    status = champions.rollout_status(NAME)
    assert status.state == "switched off"
    assert status.reason == "v2 could not be loaded: OSError: artifact store unreachable"
    assert tracking.loads.count((NAME, "2", "pyfunc")) == 1  # not retried while off
    assert champions.missing() == {}  # the champion serves: nothing is missing
    (line,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "candidate v2 could not be loaded" in line.getMessage()
    assert "switched off" in line.getMessage()

    tracking.set_alias(NAME, "3", alias="candidate")  # a new candidate re-arms the rollout
    champions.refresh()
    candidate = champions.candidate(NAME)
    assert candidate is not None and candidate.loaded.info.version == "3"
    assert champions.rollout_status(NAME).state == "active"


def test_a_candidate_that_raised_is_switched_off_once_and_re_armed_by_a_new_setting(
    tracking: FakeTracking,
) -> None:
    champions = _champion_1_candidate_2(tracking)
    champions.refresh()

    assert champions.switch_off(NAME, "2", "raised on request r-1: ZeroDivisionError") is True
    assert champions.switch_off(NAME, "2", "raised on request r-2: ZeroDivisionError") is False
    assert champions.candidate(NAME) is None
    status = champions.rollout_status(NAME)
    assert (status.state, status.reason) == (
        "switched off",
        "raised on request r-1: ZeroDivisionError",
    )
    assert champions.rollouts()[NAME] == status

    champions.refresh()  # the same version under the same setting stays off
    assert champions.candidate(NAME) is None
    assert champions.rollout_status(NAME).state == "switched off"
    assert tracking.loads.count((NAME, "2", "pyfunc")) == 1

    tracking.set_rollout(NAME, "shadow", 0.5)  # a changed setting re-arms it
    champions.refresh()
    candidate = champions.candidate(NAME)
    assert candidate is not None and candidate.loaded.info.version == "2"
    assert champions.rollout_status(NAME).state == "active"


def test_a_registry_hiccup_keeps_the_candidate_and_invalid_tags_drop_it(
    tracking: FakeTracking,
) -> None:
    champions = _champion_1_candidate_2(tracking)
    champions.refresh()

    tracking.rollout_error = ConnectionError("registry down")
    champions.refresh()
    assert champions.candidate(NAME) is not None
    status = champions.rollout_status(NAME)
    assert status.state == "active"
    assert status.last_error == "registry look-up failed: ConnectionError: registry down"

    tracking.rollout_error = None
    tracking.model_tags[NAME] = {"rollout.mode": "blue-green"}
    champions.refresh()
    assert champions.candidate(NAME) is None
    status = champions.rollout_status(NAME)
    assert status.state == "invalid"
    assert "rollout mode 'blue-green'" in status.reason
    assert status.last_error is None
