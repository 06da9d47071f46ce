"""The prediction fast path: a valid ``POST /predict/<use_case>`` answered without FastAPI's
routing gets exactly the answer FastAPI's route gives, and every other request still goes
through FastAPI (its errors, its messages)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops_assets_tests.fixtures.fake_online_store import FakeOnlineStore
from mlops_assets_tests.fixtures.fraud_online import FRAUD_REQUEST, online_rows
from mlops_assets_tests.fixtures.local_profile import use_local_profile
from mlops_assets_tests.fixtures.served_models import ModelShelf, fit_fraud_pipeline

JSON = "application/json"
# (body, content type, which path must answer it: "fast" or "fastapi")
REQUESTS: list[tuple[bytes, str, str]] = [
    (json.dumps(FRAUD_REQUEST).encode(), JSON, "fast"),
    (json.dumps({**FRAUD_REQUEST, "tx_id": None, "country": "ZZ"}).encode(), JSON, "fast"),
    (json.dumps({**FRAUD_REQUEST, "card_id": 12345}).encode(), JSON, "fast"),  # 404: never seen
    (json.dumps(FRAUD_REQUEST).encode(), "application/json; charset=utf-8", "fastapi"),
    (json.dumps(FRAUD_REQUEST).encode(), "application/merge-patch+json", "fastapi"),
    (json.dumps({**FRAUD_REQUEST, "amount": -5}).encode(), JSON, "fastapi"),
    (json.dumps({**FRAUD_REQUEST, "card_id": True}).encode(), JSON, "fastapi"),
    (json.dumps({**FRAUD_REQUEST, "colour": "red"}).encode(), JSON, "fastapi"),
    (json.dumps(FRAUD_REQUEST).replace("120.5", "NaN").encode(), JSON, "fastapi"),
    (b"[]", JSON, "fastapi"),
    (b'{"card_id": 3,', JSON, "fastapi"),
    (b'{"card_id": "\x80"}', JSON, "fastapi"),  # not UTF-8: 400
    (b"", JSON, "fastapi"),
]


@pytest.fixture(scope="module")
def pipeline() -> Any:
    return fit_fraud_pipeline("logreg", seed=0)


def _answers(
    home: Path, pipeline: Any, monkeypatch: pytest.MonkeyPatch, *, fast: bool
) -> tuple[list[tuple[int, Any, str | None]], list[str]]:
    """Each request's (status, body without its request id, Retry-After), and which path
    answered each prediction."""
    from fastapi.testclient import TestClient

    from mlops_assets.core.profiles import load_settings
    from mlops_assets.serving import app as app_module
    from mlops_assets.serving.config import ServingConfig

    if not fast:

        async def through_fastapi(self: Any, scope: dict, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)

        monkeypatch.setattr(app_module.PredictFastPath, "__call__", through_fastapi)
    paths: list[str] = []
    predict = getattr(app_module.predict, "__wrapped__", app_module.predict)  # not a spy's spy

    async def spy(runtime: Any, endpoint: Any, request: Any, body: Any) -> Any:
        # FastAPI's router puts the route's endpoint in the scope; the fast path does not.
        paths.append("fastapi" if "endpoint" in request.scope else "fast")
        return await predict(runtime, endpoint, request, body)

    spy.__wrapped__ = predict  # type: ignore[attr-defined]
    monkeypatch.setattr(app_module, "predict", spy)
    use_local_profile(monkeypatch, home)
    cards, merchants = online_rows()
    online = FakeOnlineStore(
        {"card_features": cards, "merchant_features": merchants},
        {"card_features": "card_id", "merchant_features": "merchant_id"},
    )
    app = app_module.create_app(
        load_settings(),
        ServingConfig(use_cases=("fraud",), log_dir=str(home / "wal"), poll_s=60),
        tracking=ModelShelf({"fraud_classifier": pipeline}),
        online=online,
    )
    answers = []
    with TestClient(app) as client:
        for body, content_type, _ in REQUESTS:
            response = client.post(
                "/predict/fraud", content=body, headers={"content-type": content_type}
            )
            payload = response.json()
            assert payload.pop("request_id", None) == response.headers.get("x-request-id")
            answers.append((response.status_code, payload, response.headers.get("retry-after")))
    return answers, paths


def test_the_fast_path_answers_exactly_as_fastapis_route(
    tmp_path: Path, pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, fast_paths = _answers(tmp_path / "fast", pipeline, monkeypatch, fast=True)
    with monkeypatch.context() as mp:
        slow, slow_paths = _answers(tmp_path / "slow", pipeline, mp, fast=False)
    assert fast == slow
    statuses = [status for status, _, _ in fast]
    assert statuses == [200, 200, 404, 200, 200, 422, 422, 422, 422, 422, 422, 400, 422]
    # The valid JSON bodies took the fast path; a body FastAPI reads otherwise (another content
    # type) reached the same predict through FastAPI; the invalid ones never reached predict.
    predicted = [
        path for _, content_type, path in REQUESTS if path == "fast" or content_type != JSON
    ]
    assert fast_paths == predicted
    assert slow_paths == ["fastapi"] * len(predicted)
