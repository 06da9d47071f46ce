"""Shadow and canary serving through the real API: ``mlops serve`` in a child process on the local
profile, a registry where the champion (v1) and the candidate (v2) give different probabilities,
and a broken version (v3, an unfitted estimator that raises when it scores).

The rollout is set as an operator sets it, with the MLflow client on the registered model's tags,
and the API follows it live (it polls every 0.2 s here). The selection itself (which requests,
which entities) is checked without HTTP over 10,000 entities.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlops_assets.core.rollout import Rollout, bucket, selected
from mlops_assets.serving.rollout_runtime import RecordedReads, ShadowBudget, Ticket, entity_of
from mlops_assets_tests.fixtures.api_servers import ApiProcess, start_api
from mlops_assets_tests.fixtures.fraud_online import (
    FRAUD_REQUEST,
    online_rows,
    write_online_features,
)
from mlops_assets_tests.fixtures.local_profile import FOREIGN_LOCAL_ENV
from mlops_assets_tests.fixtures.paths import REPO_ROOT
from mlops_assets_tests.fixtures.served_models import fit_fraud_pipeline, register
from mlops_assets_tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.timeout(600)

MODEL = "fraud_classifier"
# Long enough for a few polls of 0.2 s on a loaded machine.
FOLLOW_S = 30


class Env:
    """One local-profile home: fraud's champion v1, candidate v2, broken v3, online features."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.vars = {
            "MLOPS_PROFILE": "local",
            "MLOPS_HOME": str(home),
            "MLOPS_FEAST_REPO": str(REPO_ROOT / "feature_repo"),
            "MLOPS_SERVING_USE_CASES": "fraud",
            "MLOPS_SERVING_POLL_S": "0.2",
            "MLOPS_SERVING_LOG_SHIP_S": "0.2",
            "MLOPS_SERVING_LOG_SEGMENT_S": "0.3",
        }
        self.pipelines: dict[str, Any] = {}
        self.cards = self.merchants = pd.DataFrame()

    def settings(self) -> Any:
        from mlops_assets.core.profiles import load_settings

        return load_settings(environ=self.vars)

    def tracking(self) -> Any:
        from mlops_assets.core.tracking import MlflowTracking

        return MlflowTracking.from_settings(self.settings())

    def expected(self, version: str, request: dict[str, Any]) -> float:
        """Version ``version``'s own probability for ``request`` with its online features."""
        from mlops_assets.fraud.training import MODEL_INPUT_COLUMNS

        card = self.cards.loc[self.cards.card_id == request["card_id"]].iloc[0]
        merchant = self.merchants.loc[self.merchants.merchant_id == request["merchant_id"]].iloc[0]
        row = {**card.to_dict(), **merchant.to_dict(), **request}
        row["event_ts"] = pd.Timestamp(request["event_ts"])
        frame = pd.DataFrame([row])[MODEL_INPUT_COLUMNS]
        return float(self.pipelines[version].predict_proba(frame)[0, 1])

    def set_rollout(
        self, mode: str, share: float, *, candidate: str | None = None
    ) -> dict[str, Any]:
        """What an operator does: move the ``candidate`` alias, set the model's rollout tags.
        Returns what ``GET /models`` shows once the API follows the whole setting."""
        client = self.tracking().client
        if candidate is not None:
            client.set_registered_model_alias(MODEL, "candidate", candidate)
        rollout = Rollout.of(mode, share, reason=f"test {mode} at {share}")
        # rollout.updated_at is written last: once the API shows it, it read every tag.
        for key, value in rollout.tags().items():
            client.set_registered_model_tag(MODEL, key, value)
        return {
            "mode": mode,
            "share": share,
            "setting_reason": rollout.reason,
            "updated_at": rollout.updated_at,
        }


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from sklearn.linear_model import LogisticRegression

    from mlops_assets.core.feature_store import FeastFeatureStore, clear_caches

    e = Env(tmp_path_factory.mktemp("serving-rollout"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in e.vars.items():
            mp.setenv(key, value)
        for var in FOREIGN_LOCAL_ENV:
            mp.delenv(var, raising=False)
        tracking = e.tracking()
        e.pipelines["1"] = fit_fraud_pipeline("logreg", seed=0)
        e.pipelines["2"] = fit_fraud_pipeline("logreg", seed=1, C=0.05)
        assert register(tracking, MODEL, e.pipelines["1"]) == "1"
        assert register(tracking, MODEL, e.pipelines["2"], alias="candidate") == "2"
        # Loads and prepares (no compiled scorer: not a Pipeline), raises when it scores.
        assert register(tracking, MODEL, LogisticRegression(), alias=None) == "3"
        e.cards, e.merchants = online_rows()
        write_online_features(FeastFeatureStore.from_settings(e.settings()), e.cards, e.merchants)
        clear_caches()
        yield e


@pytest.fixture(scope="module")
def api(env: Env) -> Iterator[ApiProcess]:
    server = start_api(env.vars, env.home / "api.log")
    yield server
    server.stop_gracefully()


def predict(api: ApiProcess, payload: dict[str, Any], request_id: str) -> httpx.Response:
    response = httpx.post(
        f"{api.url}/predict/fraud", json=payload, headers={"x-request-id": request_id}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response


def rollout_of(api: ApiProcess) -> dict[str, Any]:
    (entry,) = httpx.get(f"{api.url}/models", timeout=10).json()["models"]
    return entry["rollout"]


def wait_for_rollout(api: ApiProcess, **expected: Any) -> dict[str, Any]:
    """The model's rollout in ``GET /models`` once it shows every ``expected`` field."""

    def shown() -> dict[str, Any] | None:
        rollout = rollout_of(api)
        return rollout if all(rollout.get(k) == v for k, v in expected.items()) else None

    try:
        return wait_until(shown, FOLLOW_S, f"the API to follow the rollout {expected}")
    except TimeoutError:
        raise AssertionError(f"rollout shown: {rollout_of(api)}\n{api.output()[-3000:]}") from None


def logged(env: Env, request_ids: set[str], rows_per_request: int) -> pd.DataFrame:
    """The request log's rows of ``request_ids`` once each has ``rows_per_request`` of them."""
    from mlops_assets.serving.request_log import read_day

    root = Path(env.settings().data_root)
    day = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")

    def landed() -> pd.DataFrame | None:
        table = read_day(root, day).to_pandas()
        rows = table[table.request_id.isin(request_ids)]
        counts = rows.request_id.value_counts()
        complete = len(counts) == len(request_ids) and (counts >= rows_per_request).all()
        return rows if complete else None

    return wait_until(landed, FOLLOW_S, "the request log to ship the requests' rows")


def by_role(rows: pd.DataFrame, request_id: str) -> dict[str, dict[str, Any]]:
    mine = rows[rows.request_id == request_id]
    assert sorted(mine.role) == ["served", "shadow"], mine
    return {r["role"]: r for r in mine.to_dict("records")}


# --- shadow -------------------------------------------------------------------------------------


def test_shadow_answers_with_the_champion_and_logs_both_predictions(
    env: Env, api: ApiProcess
) -> None:
    setting = env.set_rollout("shadow", 1.0, candidate="2")
    wait_for_rollout(api, **setting, state="active", candidate_version="2")
    before = rollout_of(api)["counts"]
    expected = {v: env.expected(v, FRAUD_REQUEST) for v in ("1", "2")}
    assert abs(expected["1"] - expected["2"]) > 1e-6  # the two versions are told apart

    ids = [f"shadow-{i}" for i in range(3)]
    for request_id in ids:
        body = predict(api, FRAUD_REQUEST, request_id).json()
        # The answer is the champion's, whatever the candidate says.
        assert (body["model_version"], body["model_alias"]) == ("1", "champion")
        assert body["fraud_probability"] == pytest.approx(expected["1"], abs=1e-9)
        assert body["request_id"] == request_id

    rows = logged(env, set(ids), 2)
    for request_id in ids:
        roles = by_role(rows, request_id)
        served, shadow = roles["served"], roles["shadow"]
        assert (served["model_version"], served["alias"], served["status"]) == (
            "1",
            "champion",
            200,
        )
        assert served["prediction"] == pytest.approx(expected["1"], abs=1e-9)
        assert json.loads(served["response_json"])["model_version"] == "1"
        assert (shadow["model_version"], shadow["alias"], shadow["status"]) == (
            "2",
            "candidate",
            200,
        )
        assert shadow["prediction"] == pytest.approx(expected["2"], abs=1e-9)
        assert shadow["response_json"] is None
        assert shadow["error"] is None
        # The same request, scored on the very features the answer used.
        assert shadow["request_json"] == served["request_json"]
        assert shadow["features_json"] == served["features_json"]
        assert shadow["latency_ms"] > 0
    counts = rollout_of(api)["counts"]
    assert counts["shadow_scored"] - before["shadow_scored"] == len(ids)
    assert counts["shadow_errors"] == before["shadow_errors"]
    assert counts["shadow_skipped_cpu_budget"] == before["shadow_skipped_cpu_budget"]


def test_a_share_of_requests_is_scored_in_shadow_by_the_hash_of_their_id(
    env: Env, api: ApiProcess
) -> None:
    setting = env.set_rollout("shadow", 0.5, candidate="2")
    wait_for_rollout(api, **setting, state="active", candidate_version="2")
    ids = [f"half-{i}" for i in range(12)]
    chosen = {i for i in ids if selected(i, 0.5)}
    assert 0 < len(chosen) < len(ids)  # the hash splits these ids: both cases are seen

    for request_id in ids:
        assert predict(api, FRAUD_REQUEST, request_id).json()["model_version"] == "1"
    logged(env, chosen, 2)
    rows = logged(env, set(ids), 1)
    shadowed = set(rows[rows.role == "shadow"].request_id)
    assert shadowed == chosen


# --- canary -------------------------------------------------------------------------------------


def test_canary_answers_each_card_always_with_the_same_version(env: Env, api: ApiProcess) -> None:
    share = 0.5
    setting = env.set_rollout("canary", share, candidate="2")
    wait_for_rollout(api, **setting, state="active", candidate_version="2")
    before = rollout_of(api)["counts"]
    cards = list(range(30))
    in_canary = {c for c in cards if selected(str(c), share)}
    assert 0 < len(in_canary) < len(cards)

    answered: dict[int, set[tuple[str, str]]] = {c: set() for c in cards}
    sent: dict[str, int] = {}
    for repeat in range(3):
        for card in cards:
            request = {**FRAUD_REQUEST, "card_id": card, "tx_id": f"t-{card}-{repeat}"}
            request_id = f"canary-{card}-{repeat}"
            body = predict(api, request, request_id).json()
            version = body["model_version"]
            answered[card].add((version, body["model_alias"]))
            assert body["fraud_probability"] == pytest.approx(
                env.expected(version, request), abs=1e-9
            )
            sent[request_id] = card
    for card, versions in answered.items():
        # One version per card, over every repeat: the candidate for the cards in the share.
        assert versions == ({("2", "candidate")} if card in in_canary else {("1", "champion")})

    # A canary answer is logged as the candidate's; the champion scored it in shadow.
    canary_ids = {i for i, c in sent.items() if c in in_canary}
    rows = logged(env, canary_ids, 2)
    for request_id in sorted(canary_ids)[:5]:
        card = sent[request_id]
        request = {**FRAUD_REQUEST, "card_id": card, "tx_id": f"t-{card}-{request_id[-1]}"}
        roles = by_role(rows, request_id)
        served, shadow = roles["served"], roles["shadow"]
        assert (served["model_version"], served["alias"]) == ("2", "candidate")
        assert (shadow["model_version"], shadow["alias"]) == ("1", "champion")
        assert served["prediction"] == pytest.approx(env.expected("2", request), abs=1e-9)
        assert shadow["prediction"] == pytest.approx(env.expected("1", request), abs=1e-9)
    after = rollout_of(api)["counts"]
    assert after["canary_answered"] - before["canary_answered"] == 3 * len(in_canary)
    assert after["canary_fallbacks"] == before["canary_fallbacks"]


@pytest.mark.parametrize("share", [0.05, 0.1, 0.25, 0.5, 0.9])
def test_the_canary_share_over_10000_cards_is_within_two_points(share: float) -> None:
    from mlops_assets.fraud.serving import ENDPOINT

    keys = [entity_of(ENDPOINT, {**FRAUD_REQUEST, "card_id": card}) for card in range(10_000)]
    chosen = [selected(key, share) for key in keys]
    assert abs(sum(chosen) / len(chosen) - share) <= 0.02
    # Only the card decides: another amount, merchant or time of the same card goes alike.
    other = {**FRAUD_REQUEST, "card_id": 7, "amount": 1.0, "merchant_id": 9, "event_ts": None}
    assert entity_of(ENDPOINT, other) == keys[7]
    # Growing the share only adds cards: a card in the canary stays in it.
    wider = [selected(key, min(1.0, share + 0.1)) for key in keys]
    assert all(w for c, w in zip(chosen, wider, strict=True) if c)


def test_without_an_entity_key_identical_requests_go_to_the_same_version() -> None:
    from mlops_assets.heart.serving import ENDPOINT, HeartRequest

    assert ENDPOINT.entity_key is None
    example = HeartRequest.model_config["json_schema_extra"]["examples"][0]
    body = HeartRequest(**example).model_dump(mode="json")
    reordered = dict(reversed(list(body.items())))
    assert entity_of(ENDPOINT, body) == entity_of(ENDPOINT, reordered)
    assert bucket(entity_of(ENDPOINT, body)) == bucket(entity_of(ENDPOINT, reordered))
    assert entity_of(ENDPOINT, {**body, "age": body["age"] + 1}) != entity_of(ENDPOINT, body)
    share = 0.3
    patients = [entity_of(ENDPOINT, {**body, "chol": 100 + i}) for i in range(10_000)]
    assert abs(sum(selected(p, share) for p in patients) / 10_000 - share) <= 0.02


# --- safety -------------------------------------------------------------------------------------


def test_a_broken_candidate_never_fails_a_request_and_is_switched_off(
    env: Env, api: ApiProcess
) -> None:
    expected = env.expected("1", FRAUD_REQUEST)
    # In shadow: the champion answers; the candidate's first scoring raises and switches it off.
    setting = env.set_rollout("shadow", 1.0, candidate="3")
    wait_for_rollout(api, **setting, state="active", candidate_version="3")
    for i in range(5):
        body = predict(api, FRAUD_REQUEST, f"broken-shadow-{i}").json()
        assert (body["model_version"], body["fraud_probability"]) == ("1", pytest.approx(expected))
    rollout = wait_for_rollout(api, state="switched off", candidate_version="3")
    assert "NotFittedError" in rollout["reason"]
    assert "in shadow" in rollout["reason"]
    ready = httpx.get(f"{api.url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text  # the champion serves: the API stays ready
    detail = ready.json()["rollout"]["models"][MODEL]
    assert (detail["state"], detail["candidate_version"]) == ("switched off", "3")
    assert "NotFittedError" in detail["reason"]
    assert ready.json()["problems"] == {}
    rows = logged(env, {"broken-shadow-0"}, 2)
    shadow = by_role(rows, "broken-shadow-0")["shadow"]
    assert (shadow["model_version"], shadow["status"]) == ("3", 500)
    assert shadow["error"].startswith("NotFittedError")
    assert shadow["prediction"] is None or pd.isna(shadow["prediction"])

    # In canary, every card in the share: a new setting re-arms the candidate, its first answer
    # raises, the champion answers instead, and it is switched off again.
    setting = env.set_rollout("canary", 1.0, candidate="3")
    wait_for_rollout(api, **setting, state="active", candidate_version="3")
    before = rollout_of(api)["counts"]
    for i in range(5):
        body = predict(api, FRAUD_REQUEST, f"broken-canary-{i}").json()
        assert (body["model_version"], body["model_alias"]) == ("1", "champion")
        assert body["fraud_probability"] == pytest.approx(expected)
    rollout = wait_for_rollout(api, state="switched off", candidate_version="3")
    assert "raised on canary request broken-canary-0" in rollout["reason"]
    # Only the first canary request tried the candidate: switched off, it was tried no more.
    assert rollout["counts"]["canary_fallbacks"] - before["canary_fallbacks"] == 1
    assert rollout["counts"]["canary_answered"] == before["canary_answered"]
    rows = logged(env, {"broken-canary-0"}, 2)
    roles = by_role(rows, "broken-canary-0")
    assert (roles["served"]["model_version"], roles["served"]["alias"]) == ("1", "champion")
    assert (roles["shadow"]["model_version"], roles["shadow"]["alias"]) == ("3", "candidate")
    assert roles["shadow"]["status"] == 500
    # Logged at ERROR, once per switch-off, with the reason.
    lines = [line for line in api.output().splitlines() if "candidate v3 switched off" in line]
    assert len(lines) == 2, lines
    assert all(line.startswith("ERROR:") for line in lines), lines
    assert "raised on request broken-shadow-0 in shadow: NotFittedError" in lines[0]
    assert "raised on canary request broken-canary-0: NotFittedError" in lines[1]


def test_mode_off_is_followed_live_and_the_champion_serves_alone(env: Env, api: ApiProcess) -> None:
    setting = env.set_rollout("shadow", 1.0, candidate="2")
    wait_for_rollout(api, **setting, state="active", candidate_version="2")
    setting = env.set_rollout("off", 0.0)
    wait_for_rollout(api, **setting, state="off")
    before = rollout_of(api)["counts"]["shadow_scored"]

    body = predict(api, FRAUD_REQUEST, "off-1").json()
    assert (body["model_version"], body["model_alias"]) == ("1", "champion")
    predict(api, FRAUD_REQUEST, "off-2")
    rows = logged(env, {"off-1", "off-2"}, 1)
    assert list(rows.role) == ["served", "served"]
    assert rollout_of(api)["counts"]["shadow_scored"] == before


# --- the pieces ---------------------------------------------------------------------------------


def test_recorded_reads_give_the_second_scoring_the_first_ones_rows() -> None:
    from mlops_assets.serving.endpoints import FeatureRow

    class Store:
        def __init__(self) -> None:
            self.reads: list[tuple[tuple[str, ...], dict[str, Any], float | None]] = []

        def read(self, features: Any, entity: Any, *, as_of: float | None = None) -> FeatureRow:
            self.reads.append((tuple(features), dict(entity), as_of))
            return FeatureRow({f: float(len(self.reads)) for f in features}, {})

    store = Store()
    reads = RecordedReads(store)
    first = reads.read(["v:a", "v:b"], {"card_id": 3}, as_of=10.0)
    # The second scoring, later ("now" moved): the same rows, no store round trip.
    assert reads.read(["v:a", "v:b"], {"card_id": 3}, as_of=11.0) is first
    # Other references (a candidate on another feature version) are read, then kept too.
    other = reads.read(["w:a"], {"card_id": 3}, as_of=11.0)
    assert other.values == {"w:a": 2.0}
    assert reads.read(["w:a"], {"card_id": 3}) is other
    assert len(store.reads) == 2


def test_the_shadow_budget_skips_beyond_its_pending_limit_and_its_share_of_a_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_assets.serving import rollout_runtime

    now = [100.0]
    monkeypatch.setattr(rollout_runtime.time, "monotonic", lambda: now[0])
    budget = ShadowBudget(max_pending=2, cpu_share=0.25, burst_s=0.1)

    first, second = budget.admit(), budget.admit()
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    assert budget.admit() == "queue_full"
    budget.settle(first, 0.08)  # costly scorings: 80 ms of CPU each
    budget.settle(second, 0.08)
    assert budget.pending == 0
    # 0.1 - 0.16 = -0.06 s of credit: nothing until the worker's share of a core refills it.
    assert budget.admit() == "cpu_budget"
    now[0] += 0.2  # +0.05 s of credit at a quarter of a core
    assert budget.admit() == "cpu_budget"
    now[0] += 0.1  # +0.025 s: positive again
    third = budget.admit()
    # Admitted, it takes the mean cost of a scoring at once: a burst cannot overdraw.
    assert isinstance(third, Ticket) and third.debit == pytest.approx(0.08)
    assert budget.admit() == "cpu_budget"
    budget.cancel(third)  # never ran: its debit comes back
    assert isinstance(budget.admit(), Ticket)
    with pytest.raises(ValueError, match="cpu_share"):
        ShadowBudget(max_pending=1, cpu_share=1.5)


def test_the_shadow_budget_settings_come_from_the_environment(tmp_path: Path) -> None:
    from mlops_assets.core.profiles import ProfileError
    from mlops_assets.serving.config import ServingConfig

    config = ServingConfig.from_env(
        str(tmp_path),
        {"MLOPS_SERVING_SHADOW_MAX_PENDING": "4", "MLOPS_SERVING_SHADOW_CPU_SHARE": "0.5"},
    )
    assert (config.shadow_max_pending, config.shadow_cpu_share) == (4, 0.5)
    defaults = ServingConfig.from_env(str(tmp_path), {})
    assert (defaults.shadow_max_pending, defaults.shadow_cpu_share) == (32, 0.25)
    with pytest.raises(ProfileError, match="MLOPS_SERVING_SHADOW_CPU_SHARE='2' must be at most 1"):
        ServingConfig.from_env(str(tmp_path), {"MLOPS_SERVING_SHADOW_CPU_SHARE": "2"})
    with pytest.raises(ProfileError, match="MLOPS_SERVING_SHADOW_MAX_PENDING='0' must be at least"):
        ServingConfig.from_env(str(tmp_path), {"MLOPS_SERVING_SHADOW_MAX_PENDING": "0"})


def test_an_entity_key_that_is_not_a_request_field_is_refused() -> None:
    from mlops_assets.fraud.serving import ENDPOINT

    with pytest.raises(ValueError, match="entity_key 'card' is not a field of FraudRequest"):
        type(ENDPOINT)(**{**ENDPOINT.__dict__, "entity_key": "card"})
