"""The prediction API on the local profile, through a real ``mlops serve`` process on loopback:
fraud predictions from Feast's online store, bad input, an alias swap under load, and a crash
that must not lose an acknowledged request."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from mlops_assets_tests.fixtures.api_servers import ApiProcess, start_api
from mlops_assets_tests.fixtures.fraud_online import (
    FRAUD_REQUEST,
    online_rows,
    write_online_features,
)
from mlops_assets_tests.fixtures.hostile_payloads import mangled
from mlops_assets_tests.fixtures.local_profile import FOREIGN_LOCAL_ENV
from mlops_assets_tests.fixtures.paths import REPO_ROOT
from mlops_assets_tests.fixtures.served_models import fit_fraud_pipeline, register
from mlops_assets_tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.timeout(600)


class Env:
    """One local-profile home with a fraud champion and online features."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.vars = {
            "MLOPS_PROFILE": "local",
            "MLOPS_HOME": str(home),
            "MLOPS_FEAST_REPO": str(REPO_ROOT / "feature_repo"),
            "MLOPS_SERVING_USE_CASES": "fraud",
            "MLOPS_SERVING_POLL_S": "0.2",
            "MLOPS_SERVING_LOG_SHIP_S": "0.2",
            "MLOPS_SERVING_LOG_SEGMENT_S": "0.5",
            "MLOPS_SERVING_MAX_BODY_BYTES": "4096",
        }
        self.pipelines: dict[str, Any] = {}

    @property
    def log_dir(self) -> Path:
        return self.home / ".serving" / "request-log"

    def settings(self):
        from mlops_assets.core.profiles import load_settings

        return load_settings(environ=self.vars)

    def tracking(self):
        from mlops_assets.core.tracking import MlflowTracking

        return MlflowTracking.from_settings(self.settings())

    def expected(
        self, version: str, request: dict[str, Any], cards: pd.DataFrame, merchants: pd.DataFrame
    ) -> float:
        """The champion pipeline's own probability for ``request`` with its online features."""
        from mlops_assets.fraud.training import MODEL_INPUT_COLUMNS

        card = cards.loc[cards.card_id == request["card_id"]].iloc[0]
        merchant = merchants.loc[merchants.merchant_id == request["merchant_id"]].iloc[0]
        row = {**card.to_dict(), **merchant.to_dict(), **request}
        row["event_ts"] = pd.Timestamp(request["event_ts"])
        frame = pd.DataFrame([row])[MODEL_INPUT_COLUMNS]
        return float(self.pipelines[version].predict_proba(frame)[0, 1])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from mlops_assets.core.feature_store import FeastFeatureStore, clear_caches

    e = Env(tmp_path_factory.mktemp("serving-local"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in e.vars.items():
            mp.setenv(key, value)
        for var in FOREIGN_LOCAL_ENV:
            mp.delenv(var, raising=False)
        tracking = e.tracking()
        e.pipelines["1"] = fit_fraud_pipeline("logreg", seed=0)
        assert (
            register(
                tracking,
                "fraud_classifier",
                e.pipelines["1"],
                run_tags={"training_set.data_version": "abc123"},
            )
            == "1"
        )
        e.cards, e.merchants = online_rows()
        write_online_features(FeastFeatureStore.from_settings(e.settings()), e.cards, e.merchants)
        clear_caches()
        yield e


@pytest.fixture(scope="module")
def api(env: Env) -> Iterator[ApiProcess]:
    server = start_api(env.vars, env.home / "api.log")
    yield server
    server.stop_gracefully()


def predict(api: ApiProcess, payload: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{api.url}/predict/fraud", json=payload, timeout=30, **kwargs)


def test_fraud_prediction_uses_the_online_features_and_names_the_model(
    env: Env, api: ApiProcess
) -> None:
    response = predict(api, FRAUD_REQUEST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "fraud_classifier"
    assert body["model_version"] == "1"
    assert body["tx_id"] == "t-1"
    assert body["online_features"] == {"card": "present", "merchant": "present"}
    assert body["fraud_probability"] == pytest.approx(
        env.expected("1", FRAUD_REQUEST, env.cards, env.merchants), abs=1e-9
    )
    assert response.headers["x-request-id"] == body["request_id"]


def test_health_ready_models_and_docs(api: ApiProcess) -> None:
    assert httpx.get(f"{api.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{api.url}/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    models = httpx.get(f"{api.url}/models").json()["models"]
    (fraud,) = [m for m in models if m["use_case"] == "fraud"]
    assert fraud["model_name"] == "fraud_classifier"
    assert fraud["alias"] == "champion"
    assert fraud["run_id"]
    assert fraud["training_data_versions"] == {"training_set": "abc123"}
    assert "card_id" in fraud["input_schema"]["properties"]
    assert "compiled scorer" in (fraud["notes"] or "")
    spec = httpx.get(f"{api.url}/openapi.json").json()
    assert "/predict/fraud" in spec["paths"]
    assert httpx.get(f"{api.url}/docs").status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"card_id": "forty-two"}, 422, "card_id"),
        ({"amount": -5}, 422, "amount"),
        ({"amount": None}, 422, "amount"),
        ({"channel": "carrier-pigeon"}, 422, "channel"),
        ({"country": "France"}, 422, "country"),
        ({"event_ts": "2026-11-22T02:14:00"}, 422, "event_ts"),  # no UTC offset: ambiguous
        ({"surprise": 1}, 422, "surprise"),
        ({"card_id": 10_000}, 404, "card_id"),
        ({"merchant_id": 10_000}, 404, "merchant_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    api: ApiProcess, change: dict, status: int, field: str
) -> None:
    response = predict(api, {**FRAUD_REQUEST, **change})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert any(field in [str(p) for p in d["loc"]] for d in detail), detail
    assert all(d["msg"] for d in detail)
    # The champion was chosen before the input was refused: the answer names it.
    assert response.json()["model_name"] == "fraud_classifier"
    assert response.json()["model_version"] == "1"


def test_a_missing_field_is_named(api: ApiProcess) -> None:
    payload = {k: v for k, v in FRAUD_REQUEST.items() if k != "merchant_id"}
    response = predict(api, payload)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "merchant_id"]


def test_malformed_and_oversized_bodies_and_unknown_use_cases(api: ApiProcess) -> None:
    broken = httpx.post(
        f"{api.url}/predict/fraud",
        content=b'{"card_id": 3,',
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["type"] == "json_invalid"
    not_an_object = predict(api, [FRAUD_REQUEST])
    assert not_an_object.status_code == 422
    huge = predict(api, {**FRAUD_REQUEST, "tx_id": "x" * 10_000})
    assert huge.status_code == 413
    assert "limit of 4096 bytes" in huge.json()["detail"][0]["msg"]
    unknown = httpx.post(f"{api.url}/predict/weather", json={})
    assert unknown.status_code == 404
    assert unknown.json()["detail"][0]["loc"] == ["path", "use_case"]
    assert "fraud" in unknown.json()["detail"][0]["msg"]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=mangled(FRAUD_REQUEST))
def test_no_user_input_gets_a_500(api: ApiProcess, payload: Any) -> None:
    """Whatever JSON a client sends, the answer is a score or a 4xx that says what is wrong."""
    response = predict(api, payload)
    assert response.status_code < 500, (payload, response.text)
    if response.status_code >= 400:
        assert all(d["msg"] for d in response.json()["detail"]), response.text


def test_every_request_lands_in_the_log_with_its_outcome(env: Env, api: ApiProcess) -> None:
    from mlops_assets.serving.request_log import read_day

    ok = predict(api, {**FRAUD_REQUEST, "tx_id": "logged-ok"})
    bad = predict(api, {**FRAUD_REQUEST, "amount": "lots"})
    ids = {ok.json()["request_id"]: 200, bad.json()["request_id"]: 422}
    day = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    root = env.settings().data_root

    def landed() -> pd.DataFrame | None:
        table = read_day(Path(root), day).to_pandas()
        rows = table[table.request_id.isin(ids)]
        return rows if len(rows) == len(ids) else None

    rows = wait_until(landed, 30, "the request log to be shipped").set_index("request_id")
    for request_id, status in ids.items():
        assert rows.loc[request_id, "status"] == status
        assert rows.loc[request_id, "use_case"] == "fraud"
        assert rows.loc[request_id, "model_version"] == "1"
    answered = rows.loc[ok.json()["request_id"]]
    assert answered["prediction"] == pytest.approx(ok.json()["fraud_probability"])
    assert '"card_tx_count_1h"' in answered["features_json"]
    assert answered["latency_ms"] > 0
    refused = rows.loc[bad.json()["request_id"]]
    assert "amount" in refused["error"]


def test_alias_swap_under_load_drops_no_request(env: Env, api: ApiProcess) -> None:
    """Move ``champion`` to a new version while clients send requests without pause: every request
    succeeds, each answer comes from the version it names, and the new version takes over."""
    env.pipelines["2"] = fit_fraud_pipeline("logreg", seed=1, C=0.05)
    tracking = env.tracking()
    v2 = register(env.tracking(), "fraud_classifier", env.pipelines["2"], alias="candidate")
    assert v2 == "2"
    expected = {v: env.expected(v, FRAUD_REQUEST, env.cards, env.merchants) for v in ("1", "2")}
    assert abs(expected["1"] - expected["2"]) > 1e-6  # the two versions are told apart
    stop = threading.Event()
    answers: list[tuple[int, str | None, float | None]] = []

    def client() -> None:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            while not stop.is_set():
                r = http.post("/predict/fraud", json=FRAUD_REQUEST)
                body = r.json()
                answers.append(
                    (r.status_code, body.get("model_version"), body.get("fraud_probability"))
                )

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client) for _ in range(4)]
        time.sleep(1.0)
        tracking.set_alias("fraud_classifier", "champion", v2, reason="swap test")
        wait_until(lambda: any(v == "2" for _, v, _ in answers[-20:]), 60, "version 2 to serve")
        time.sleep(0.5)
        stop.set()
        for f in futures:
            f.result()
    assert len(answers) > 50
    assert {status for status, _, _ in answers} == {200}
    for _, version, probability in answers:
        assert probability == pytest.approx(expected[version], abs=1e-9)
    assert answers[-1][1] == "2"
    assert httpx.get(f"{api.url}/models").json()["models"][0]["version"] == "2"


def test_a_killed_server_loses_no_acknowledged_request(
    env: Env, api: ApiProcess, tmp_path: Path
) -> None:
    """Answered requests survive a SIGKILL of the server: the restarted server ships them."""
    from mlops_assets.serving.request_log import read_day

    log_dir = tmp_path / "wal"
    vars = {
        **env.vars,
        "MLOPS_SERVING_LOG_DIR": str(log_dir),
        "MLOPS_SERVING_LOG_SHIP_S": "3600",
        "MLOPS_SERVING_LOG_SEGMENT_S": "3600",
    }
    doomed = start_api(vars, tmp_path / "doomed.log")
    acknowledged = []
    for i in range(25):
        r = httpx.post(
            f"{doomed.url}/predict/fraud", json={**FRAUD_REQUEST, "tx_id": f"crash-{i}"}, timeout=30
        )
        assert r.status_code == 200
        acknowledged.append(r.json()["request_id"])
    doomed.stop(signal.SIGKILL)
    assert list(log_dir.glob("*.jsonl.open")), "the killed server left its open segment behind"
    day = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    root = Path(env.settings().data_root)
    before = set(read_day(root, day).column("request_id").to_pylist())
    assert not before & set(acknowledged)  # nothing had been shipped before the kill

    restarted = start_api({**vars, "MLOPS_SERVING_LOG_SHIP_S": "0.2"}, tmp_path / "restarted.log")
    try:

        def shipped() -> bool:
            ids = read_day(root, day).column("request_id").to_pylist()
            return set(acknowledged) <= set(ids)

        wait_until(shipped, 30, "the recovered log to be shipped")
        ids = read_day(root, day).column("request_id").to_pylist()
        assert sum(i in set(acknowledged) for i in ids) == len(acknowledged)  # no duplicates
    finally:
        restarted.stop_gracefully()
    assert not list(log_dir.glob("*.jsonl*")), "every recovered segment was shipped and removed"


def test_graceful_stop_ships_the_log(env: Env, tmp_path: Path) -> None:
    from mlops_assets.serving.request_log import read_day

    vars = {
        **env.vars,
        "MLOPS_SERVING_LOG_DIR": str(tmp_path / "wal"),
        "MLOPS_SERVING_LOG_SHIP_S": "3600",
        "MLOPS_SERVING_LOG_SEGMENT_S": "3600",
    }
    server = start_api(vars, tmp_path / "api.log")
    r = httpx.post(
        f"{server.url}/predict/fraud", json={**FRAUD_REQUEST, "tx_id": "graceful"}, timeout=30
    )
    server.stop_gracefully()
    day = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    ids = read_day(Path(env.settings().data_root), day).column("request_id").to_pylist()
    assert r.json()["request_id"] in ids
