"""Test support for the prediction API: real models in a real registry, real online features, and
the API itself in its own process (``mlops serve``), as a user starts it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from mlops_assets.fraud import schema as fraud_schema
from mlops_assets_tests.fixtures.services import free_port, wait_for_port
from mlops_assets_tests.fraud.test_training import make_training_set

REPO = Path(__file__).resolve().parents[2]
FRAUD_REQUEST = {
    "tx_id": "t-1",
    "card_id": 3,
    "merchant_id": 5,
    "amount": 120.5,
    "merchant_category": "electronics",
    "channel": "ecom",
    "country": "FR",
    "event_ts": "2026-11-22T02:14:00Z",
}
# When online_rows' snapshots are written: a day before FRAUD_REQUEST's payment, so that they are
# fresh as of it (Feast's TTL, 30 days, is measured back from the request's event_ts) whatever
# day the tests run, and not after it (a snapshot newer than the payment is not used).
SNAPSHOT_TS = pd.Timestamp("2026-11-21T00:00:00Z")


def fit_fraud_pipeline(kind: str = "logreg", *, seed: int = 0, **params: Any) -> Any:
    """A fraud pipeline fitted on synthetic labelled transactions (the real training code)."""
    from mlops_assets.fraud import training

    frame = make_training_set(1500, seed=seed)
    pipeline = training.build_pipeline(kind, seed=seed, classifier_params=params or None)
    return pipeline.fit(frame[training.MODEL_INPUT_COLUMNS], frame[training.LABEL])


def fit_heart_pipeline() -> Any:
    """A heart logistic-regression Pipeline fitted on 300 generated patients."""
    from mlops_assets.heart import schema as heart_schema
    from mlops_assets.heart import sources
    from mlops_assets.heart.training import build_pipeline

    patients = sources.generate_patients(sources.GeneratorConfig(n_patients=300)).to_pandas()
    return build_pipeline("logistic_regression", seed=0).fit(
        patients[list(heart_schema.INPUTS)], patients[heart_schema.TARGET]
    )


def register(
    tracking: Any,
    name: str,
    model: Any,
    *,
    flavor: str = "sklearn",
    run_tags: Mapping[str, str] | None = None,
    version_tags: Mapping[str, str] | None = None,
    alias: str | None = "champion",
) -> str:
    """Log ``model`` in a run of experiment ``serving-tests`` and register it; returns the version."""
    import mlflow

    from mlops_assets.core.tracking import _global_tracking_uri, default_pip_requirements

    tracking.ensure_backend()
    with _global_tracking_uri(tracking.tracking_uri):
        mlflow.set_experiment("serving-tests")
        with mlflow.start_run(tags=dict(run_tags or {})):
            log_model = mlflow.sklearn.log_model if flavor == "sklearn" else mlflow.pyfunc.log_model
            # cloudpickle, as TrackedRun.log_model does: skops refuses the pipeline's own functions.
            kwargs = (
                {"sk_model": model, "serialization_format": "cloudpickle"}
                if flavor == "sklearn"
                else {"python_model": model}
            )
            info = log_model(
                name="model",
                pip_requirements=default_pip_requirements(flavor, model),  # type: ignore[arg-type]
                **kwargs,
            )
    version = tracking.register(info, name, alias=alias, tags=version_tags)
    return str(version.version)


def online_rows(
    n_cards: int = 50, n_merchants: int = 20, *, seed: int = 0, at: pd.Timestamp = SNAPSHOT_TS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Latest card and merchant snapshots, stamped ``at``, in the fraud views' schemas."""
    rng = np.random.default_rng(seed)
    now = at.floor("s")

    def frame(key: str, n: int, columns: list[str]) -> pd.DataFrame:
        out = pd.DataFrame({key: np.arange(n, dtype="int64"), "event_ts": [now] * n})
        for column in columns:
            if any(m in column for m in ("_tx_count_", "_distinct_merchants_", "_fraud_count_")):
                out[column] = rng.poisson(2.0, n).astype("int64")
            else:
                out[column] = rng.lognormal(3.0, 0.5, n)
        return out

    return (
        frame("card_id", n_cards, fraud_schema.card_feature_columns()),
        frame("merchant_id", n_merchants, fraud_schema.merchant_feature_columns()),
    )


def write_online_features(feature_store: Any, cards: pd.DataFrame, merchants: pd.DataFrame) -> None:
    """Register the fraud views and write the snapshots into the online store directly (what
    ``fraud/feature_store`` materializes from the silver snapshots)."""
    feature_store.apply(use_case="fraud")
    store = feature_store.get_store()
    store.write_to_online_store("card_features", cards)
    store.write_to_online_store("merchant_features", merchants)


@dataclass
class ApiProcess:
    """``mlops serve`` in a child process (its own session, so a kill reaches only it)."""

    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def stop_gracefully(self) -> None:
        """SIGTERM, as an orchestrator stops it: uvicorn drains, runs the app's shutdown (the
        request log is shipped) and re-raises the signal, so the exit status is -SIGTERM."""
        code = self.stop(signal.SIGTERM)
        output = self.output()
        assert code in (0, -signal.SIGTERM), output
        assert "Application shutdown complete" in output, output


def start_api(
    env: Mapping[str, str], log_path: Path, *, port: int | None = None, timeout: float = 120
) -> ApiProcess:
    """Start ``python -m mlops_assets.cli serve`` with ``env`` and wait until ``/health`` answers."""
    import httpx

    port = port or free_port()
    out = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port)],
        env={**os.environ, **env},
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = ApiProcess(proc, port, log_path)
    try:
        wait_for_port("127.0.0.1", port, timeout, proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api.url}/health", timeout=2).status_code == 200:
                    return api
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"/health did not answer:\n{api.output()}")
    except BaseException:
        api.stop(signal.SIGKILL)
        raise RuntimeError(f"the API did not start:\n{api.output()}") from None


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def dumps(payload: Any) -> str:
    return json.dumps(payload)


def register_pyfunc(
    tracking: Any,
    name: str,
    python_model: Any,
    *,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    run_tags: Mapping[str, str] | None = None,
    version_tags: Mapping[str, str] | None = None,
    alias: str | None = "champion",
) -> str:
    """Log a custom ``PythonModel`` with the signature its asset logs, and register it; returns the
    version. ``register`` logs no signature, and a pyfunc drops the ``params`` its signature does
    not declare: a demand forecaster logged that way would ignore the request's horizon."""
    import mlflow

    from mlops_assets.core.tracking import _global_tracking_uri, default_pip_requirements

    tracking.ensure_backend()
    with _global_tracking_uri(tracking.tracking_uri):
        mlflow.set_experiment("serving-tests")
        with mlflow.start_run(tags=dict(run_tags or {})):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=python_model,
                signature=signature,
                input_example=input_example,
                pip_requirements=pip_requirements or default_pip_requirements("pyfunc"),
            )
    version = tracking.register(info, name, alias=alias, tags=version_tags)
    return str(version.version)


class ModelShelf:
    """The part of ``MlflowTracking`` that the app's champions use, over models kept in memory:
    version 1 of each is the champion."""

    def __init__(
        self, models: Mapping[str, Any], tags: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        self.models = dict(models)
        self.tags = {k: dict(v) for k, v in (tags or {}).items()}

    @property
    def client(self) -> ModelShelf:
        return self

    def get_version_by_alias(self, name: str, alias: str) -> Any:
        if name not in self.models:
            return None
        return SimpleNamespace(version="1", run_id=f"run-{name}", tags=self.tags.get(name, {}))

    def get_run(self, run_id: str) -> Any:
        return SimpleNamespace(data=SimpleNamespace(tags={}))

    def load_model_version(self, name: str, version: str, *, flavor: str = "sklearn") -> Any:
        return self.models[name]

    def search_registered_models(self, **_: Any) -> Any:
        # One page: demand's listing stops when the page has no token.
        class Page(list):
            token = None

        return Page(SimpleNamespace(name=n) for n in self.models if n.startswith("demand_"))


@contextlib.contextmanager
def serve_in_thread(app: Any, timeout: float = 60) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread of this process (its
    lifespan included) until ``/ready`` answers 200; yields the base URL, stops the server after."""
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/ready", timeout=5).status_code == 200
        return False

    try:
        wait_until(ready, timeout, "the API to be ready")
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


# -- hostile payloads -----------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "NaN", "1e999", "2024-02-30", "2024-05-01T00:00:00Z", "-1", "0x10"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def mangled(draw: st.DrawFn, example: dict[str, Any]) -> Any:
    """The example request with fields dropped, retyped or added, or any JSON value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    payload = dict(example)
    for key in draw(st.lists(st.sampled_from(sorted(example)), max_size=3, unique=True)):
        if draw(st.booleans()):
            payload.pop(key)
        else:
            payload[key] = draw(json_values)
    payload.update(draw(st.dictionaries(st.text(max_size=8), json_scalars, max_size=2)))
    return payload
