"""The prediction API on the stack profile: champion from the MLflow server, card and merchant
features from Redis behind Feast's SQL registry, the request log shipped to S3."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pandas as pd
import pytest

from mlops_assets_tests.fixtures.api_servers import start_api
from mlops_assets_tests.fixtures.fraud_online import (
    FRAUD_REQUEST,
    online_rows,
    write_online_features,
)
from mlops_assets_tests.fixtures.served_models import fit_fraud_pipeline, register
from mlops_assets_tests.fixtures.stack_profile import StackProfile
from mlops_assets_tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]


def test_fraud_api_on_the_stack(stack_profile: Callable[[str], StackProfile], tmp_path) -> None:
    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.feature_store import FeastFeatureStore, clear_caches
    from mlops_assets.core.tracking import MlflowTracking
    from mlops_assets.fraud.training import MODEL_INPUT_COLUMNS
    from mlops_assets.serving.request_log import read_day

    stack = stack_profile("serving")
    settings = stack.settings
    pipeline = fit_fraud_pipeline("xgboost", seed=3)
    version = register(MlflowTracking.from_settings(settings), "fraud_classifier", pipeline)
    cards, merchants = online_rows()
    write_online_features(FeastFeatureStore.from_settings(settings), cards, merchants)
    clear_caches()

    api = start_api(
        {
            "MLOPS_SERVING_USE_CASES": "fraud",
            "MLOPS_SERVING_LOG_SHIP_S": "0.2",
            "MLOPS_SERVING_LOG_SEGMENT_S": "0.5",
        },
        tmp_path / "api.log",
    )
    try:
        ready = httpx.get(f"{api.url}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        response = httpx.post(f"{api.url}/predict/fraud", json=FRAUD_REQUEST, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == version
        assert body["online_features"] == {"card": "present", "merchant": "present"}
        card = cards.loc[cards.card_id == FRAUD_REQUEST["card_id"]].iloc[0].to_dict()
        merchant = merchants.loc[merchants.merchant_id == FRAUD_REQUEST["merchant_id"]].iloc[0]
        row = {**card, **merchant.to_dict(), **FRAUD_REQUEST}
        row["event_ts"] = pd.Timestamp(FRAUD_REQUEST["event_ts"])
        expected = pipeline.predict_proba(pd.DataFrame([row])[MODEL_INPUT_COLUMNS])[0, 1]
        assert body["fraud_probability"] == pytest.approx(float(expected), abs=1e-6)

        unknown = httpx.post(
            f"{api.url}/predict/fraud", json={**FRAUD_REQUEST, "card_id": 99_999}, timeout=30
        )
        assert unknown.status_code == 404
        assert unknown.json()["detail"][0]["loc"] == ["body", "card_id"]

        day = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
        root = AssetStore.from_settings(settings).base

        def shipped() -> bool:
            ids = set(read_day(root, day).column("request_id").to_pylist())
            return {body["request_id"], unknown.json()["request_id"]} <= ids

        wait_until(shipped, 60, "the request log to land in S3")
        listed = stack.keys()  # every object under the data root
        keys = [k for k in listed if k.startswith(f"serving/predictions_log/{day}/")]
        assert keys and all(k.endswith(".parquet") for k in keys)
    finally:
        api.stop_gracefully()
