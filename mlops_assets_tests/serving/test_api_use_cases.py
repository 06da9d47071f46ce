"""The prediction API in-process for heart, housing, athletes and demand: real tiny champions in a
local-profile registry, the app with its lifespan (champion polling, the request log) driven by
FastAPI's TestClient, and athletes' online store faked over a generated features frame. Fraud runs
through a real ``mlops serve`` in test_api_local.py.

The app starts with ``heart_disease`` registered but not aliased: the first test sees heart refused
with a 503, promotes v1 and sees it hot-loaded (the other heart tests make sure of it themselves);
the last test stops the app and reads back every request the module sent from the request log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from mlops_assets.athletes import features as athlete_features
from mlops_assets.athletes import schema as athletes_schema
from mlops_assets.athletes.serving import AthleteRequest
from mlops_assets.demand.forecaster import DemandForecaster, model_input
from mlops_assets.demand.serving import DemandRequest
from mlops_assets.heart import schema as heart_schema
from mlops_assets.heart.serving import HeartRequest
from mlops_assets.housing.serving import HousingRequest
from mlops_assets_tests.fixtures import athletes_serving, demand_serving, housing_serving
from mlops_assets_tests.fixtures.fake_online_store import FakeOnlineStore
from mlops_assets_tests.fixtures.hostile_payloads import mangled
from mlops_assets_tests.fixtures.local_profile import use_local_profile
from mlops_assets_tests.fixtures.served_models import fit_heart_pipeline, register, register_pyfunc
from mlops_assets_tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

# The use cases' module-scoped fixtures (generated data, fitted models): built once here.
raw = housing_serving.raw
housing_model = housing_serving.model
frames = athletes_serving.frames
pipelines = athletes_serving.pipelines
clean = demand_serving.clean


def _example(request_model: type) -> dict[str, Any]:
    return request_model.model_config["json_schema_extra"]["examples"][0]


HEART_EXAMPLE = _example(HeartRequest)
HOUSING_EXAMPLE = _example(HousingRequest)
ATHLETE_EXAMPLE = _example(AthleteRequest)
DEMAND_EXAMPLE = _example(DemandRequest)

HEART = "heart_disease"
HOUSING = "housing_price"
ATHLETES = "athletes_total_lift"
RESPONDENTS = ("ciso", "erco")
FORECASTERS = tuple(f"demand_forecaster_{r}" for r in RESPONDENTS)
ATHLETES_VIEW = "athlete_features_v1"
# The app polls the registry every POLL_S. A moved alias serves after one or two polls (~0.3 s
# here); the wait allows for a loaded machine.
POLL_S = 0.2
HOT_LOAD_S = 25 * POLL_S

# The headline number of an answer, which the request log keeps as `prediction`.
HEADLINE: dict[str, Callable[[dict[str, Any]], float]] = {
    "heart": lambda body: body["probability"],
    "housing": lambda body: body["predicted_price"],
    "athletes": lambda body: body["predicted_total_lift"],
    "demand": lambda body: body["forecast"][0]["mean"],
}


@dataclass
class Sent:
    """One request the module sent, as the request log must have it."""

    request_id: str
    use_case: str
    status: int
    model_version: str | None
    prediction: float | None
    day: str


@dataclass
class Api:
    """The app in-process, its registry, the models it serves (as fitted here) and the requests
    sent so far."""

    client: TestClient
    settings: Any
    tracking: Any
    heart: Any
    housing: Any
    athletes: Any
    athletes_frame: pd.DataFrame
    stop: Callable[[], None]
    sent: list[Sent] = field(default_factory=list)

    def post(self, use_case: str, payload: Any) -> httpx.Response:
        response = self.client.post(f"/predict/{use_case}", json=payload)
        body = response.json()
        assert body["request_id"] == response.headers["x-request-id"]
        self.sent.append(
            Sent(
                request_id=body["request_id"],
                use_case=use_case,
                status=response.status_code,
                model_version=body.get("model_version"),
                prediction=HEADLINE[use_case](body) if response.status_code == 200 else None,
                day=datetime.now(UTC).strftime("%Y-%m-%d"),
            )
        )
        return response

    def models(self) -> dict[str, dict[str, Any]]:
        response = self.client.get("/models")
        assert response.status_code == 200, response.text
        assert response.json()["alias"] == "champion"
        return {m["model_name"]: m for m in response.json()["models"]}


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    raw: pd.DataFrame,
    housing_model: Any,
    frames: dict[str, pd.DataFrame],
    pipelines: dict[str, Any],
    clean: pd.DataFrame,
) -> Iterator[Api]:
    from mlops_assets.core.profiles import load_settings
    from mlops_assets.core.tracking import MlflowTracking
    from mlops_assets.demand import forecaster
    from mlops_assets.housing import inference
    from mlops_assets.serving.app import create_app
    from mlops_assets.serving.config import ServingConfig

    home = tmp_path_factory.mktemp("serving-use-cases")
    with pytest.MonkeyPatch.context() as mp, ExitStack() as app_scope:
        use_local_profile(mp, home)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        settings = load_settings()
        tracking = MlflowTracking.from_settings(settings)

        heart = fit_heart_pipeline()
        assert register(tracking, HEART, heart, alias=None) == "1"  # no champion yet
        signature, example = inference.signature_and_example(raw)
        assert (
            register_pyfunc(
                tracking,
                HOUSING,
                housing_model,
                signature=signature,
                input_example=example,
                pip_requirements=inference.pip_requirements(),
                run_tags={"training_set.data_version": "housing-abc"},
            )
            == "1"
        )
        assert (
            register(tracking, ATHLETES, pipelines["v1"], version_tags={"feature_version": "v1"})
            == "1"
        )
        signature, example = forecaster.signature_and_example(
            clean, demand_serving.SPEC, model="seasonal_naive"
        )
        for name in FORECASTERS:
            assert (
                register_pyfunc(
                    tracking,
                    name,
                    DemandForecaster("seasonal_naive", demand_serving.SPEC),
                    signature=signature,
                    input_example=example,
                    pip_requirements=forecaster.pip_requirements(),
                )
                == "1"
            )

        # The example athlete (42) is not among the generated ones: give it the first one's row.
        frame = frames["v1"]
        frame = pd.concat(
            [frame, frame.head(1).assign(**{athletes_schema.KEY: ATHLETE_EXAMPLE["athlete_id"]})],
            ignore_index=True,
        )
        online = FakeOnlineStore({ATHLETES_VIEW: frame}, keys=athletes_schema.KEY)
        app = create_app(
            load_settings(),
            ServingConfig(
                use_cases=("heart", "housing", "athletes", "demand"),
                log_dir=str(home / "wal"),
                poll_s=POLL_S,
                ship_interval_s=0.2,
                segment_max_age_s=0.5,
            ),
            online=online,
        )
        client = app_scope.enter_context(TestClient(app))
        yield Api(
            client=client,
            settings=settings,
            tracking=tracking,
            heart=heart,
            housing=housing_model,
            athletes=pipelines["v1"],
            athletes_frame=frame,
            stop=app_scope.close,
        )


@pytest.fixture
def heart_champion(api: Api) -> None:
    """``heart_disease`` v1 is the champion and served (the first test promotes it; a heart test
    run without it does it here)."""
    if api.tracking.get_version_by_alias(HEART, "champion") is None:
        api.tracking.set_alias(HEART, "champion", "1")
    wait_until(lambda: api.models()[HEART]["version"] == "1", HOT_LOAD_S, "heart to be served")


def _heart_probability(api: Api, payload: dict[str, Any]) -> float:
    frame = pd.DataFrame([payload])[list(heart_schema.INPUTS)].astype("float64")
    return float(api.heart.predict_proba(frame)[0, 1])


def _assert_detail_names(response: httpx.Response, status: int, field: str) -> str:
    """The response is a ``status`` whose every error is located at ``body.<field>``; returns
    the messages."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail and all(d["loc"][:2] == ["body", field] for d in detail), detail
    return " ".join(d["msg"] for d in detail)


# --- a use case without a champion, then hot-loaded -------------------------------------------


def test_a_use_case_without_a_champion_is_a_503_until_its_alias_is_set(api: Api) -> None:
    refused = api.post("heart", HEART_EXAMPLE)
    assert refused.status_code == 503, refused.text
    (error,) = refused.json()["detail"]
    assert error["type"] == "no_champion"
    assert error["msg"].startswith("heart_disease has no champion to serve")
    assert "no version has the alias 'champion' yet" in error["msg"]
    ready = api.client.get("/ready")
    assert ready.status_code == 503, ready.text
    assert ready.json()["ready"] is False
    assert ready.json()["problems"] == {HEART: "no version has the alias 'champion' yet"}
    assert api.models()[HEART]["status"] == "no champion loaded"

    api.tracking.set_alias(HEART, "champion", "1", reason="hot-load test")
    wait_until(lambda: api.models()[HEART]["version"] == "1", HOT_LOAD_S, "heart to hot-load")

    answered = api.post("heart", HEART_EXAMPLE)
    assert answered.status_code == 200, answered.text
    assert answered.json()["model_version"] == "1"
    assert answered.json()["probability"] == pytest.approx(
        _heart_probability(api, HEART_EXAMPLE), abs=1e-12
    )
    ready = api.client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["problems"] == {}


# --- each use case's example, answered by its champion ----------------------------------------


@pytest.mark.usefixtures("heart_champion")
def test_the_heart_example_is_the_pipelines_probability(api: Api) -> None:
    from mlops_assets.heart.training import DECISION_THRESHOLD

    response = api.post("heart", HEART_EXAMPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = _heart_probability(api, HEART_EXAMPLE)
    assert body == {
        "use_case": "heart",
        "model_name": HEART,
        "model_version": "1",
        "model_alias": "champion",
        "probability": pytest.approx(expected, abs=1e-12),
        "prediction": int(expected >= DECISION_THRESHOLD),
        "label": "disease" if expected >= DECISION_THRESHOLD else "no disease",
        "threshold": DECISION_THRESHOLD,
        "request_id": response.headers["x-request-id"],
    }


def test_the_housing_example_is_the_inference_paths_price(api: Api) -> None:
    from mlops_assets.housing.inference import predict_records

    response = api.post("housing", HOUSING_EXAMPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    (expected,), _ = predict_records(api.housing, [HOUSING_EXAMPLE])
    assert (body["model_name"], body["model_version"]) == (HOUSING, "1")
    assert body["predicted_price"] == pytest.approx(float(expected), rel=1e-12)
    assert body["currency"] == "USD"
    assert (body["missing_fields"], body["coerced_fields"], body["unseen_categories"]) == (
        [],
        [],
        {},
    )


def test_the_athletes_example_is_the_pipelines_lift_on_the_online_row(api: Api) -> None:
    response = api.post("athletes", ATHLETE_EXAMPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    columns = list(athlete_features.FEATURES["v1"])
    frame = api.athletes_frame
    row = frame.loc[frame[athletes_schema.KEY] == ATHLETE_EXAMPLE["athlete_id"], columns]
    assert (body["model_name"], body["model_version"]) == (ATHLETES, "1")
    assert body["predicted_total_lift"] == pytest.approx(
        float(api.athletes.predict(row)[0]), abs=1e-9
    )
    assert (body["unit"], body["feature_version"], body["missing_features"]) == ("lb", "v1", {})


def _forecast(history: list[dict[str, Any]], code: str, horizon: int) -> pd.DataFrame:
    """The forecaster's own forecast of ``history`` (a request's), outside the app."""
    frame = pd.DataFrame(
        {
            "unique_id": code,
            "ds": pd.to_datetime([p["ds"] for p in history], utc=True),
            "y": [p["y"] for p in history],
        }
    )
    forecaster = DemandForecaster("seasonal_naive", demand_serving.SPEC)
    return forecaster.predict(None, model_input(frame), {"horizon": horizon})


@pytest.mark.parametrize(("respondent", "horizon"), [("CISO", 24), ("erco", 6)])
def test_the_demand_example_is_answered_by_the_respondents_forecaster(
    api: Api, respondent: str, horizon: int
) -> None:
    payload = {**DEMAND_EXAMPLE, "respondent": respondent, "horizon": horizon}
    response = api.post("demand", payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == f"demand_forecaster_{respondent.lower()}"
    assert body["model_version"] == "1"
    assert (body["respondent"], body["horizon"]) == (respondent.upper(), horizon)
    expected = _forecast(DEMAND_EXAMPLE["history"], respondent.upper(), horizon)
    # The horizon reached the model through the logged signature's params.
    assert len(body["forecast"]) == len(expected) == horizon
    assert [r["ds"] for r in body["forecast"]] == [
        ds.strftime("%Y-%m-%dT%H:%M:%SZ") for ds in pd.to_datetime(expected.ds, utc=True)
    ]
    for column, key in demand_serving.FORECAST_FIELDS.items():
        assert [r[key] for r in body["forecast"]] == pytest.approx(expected[column].tolist())


# --- what the API serves -----------------------------------------------------------------------


@pytest.mark.usefixtures("heart_champion")
def test_models_lists_every_champion_with_its_run_and_input_schema(api: Api) -> None:
    models = api.models()
    assert set(models) == {HEART, HOUSING, ATHLETES, *FORECASTERS}
    use_cases = {HEART: "heart", HOUSING: "housing", ATHLETES: "athletes"}
    use_cases |= dict.fromkeys(FORECASTERS, "demand")
    fields = {
        "heart": set(heart_schema.INPUTS),
        "housing": set(HousingRequest.model_fields),
        "athletes": {"athlete_id"},
        "demand": {"respondent", "horizon", "history"},
    }
    for name, entry in models.items():
        version = api.tracking.get_version_by_alias(name, "champion")
        assert entry["use_case"] == use_cases[name]
        assert (entry["version"], entry["alias"]) == ("1", "champion")
        assert entry["run_id"] == version.run_id
        assert set(entry["input_schema"]["properties"]) == fields[entry["use_case"]]
        assert "last_error" not in entry
    assert models[HOUSING]["training_data_versions"] == {"training_set": "housing-abc"}
    assert models[HOUSING]["signature"]["outputs"]  # the pyfunc's logged signature
    assert [n for n in models if n.startswith("demand_")] == list(FORECASTERS)


# --- refused requests --------------------------------------------------------------------------


def test_the_docs_show_each_use_cases_request_and_example_answer(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    for use_case in ("heart", "housing", "athletes", "demand"):
        post = spec["paths"][f"/predict/{use_case}"]["post"]
        assert "requestBody" in post
        example = post["responses"]["200"]["content"]["application/json"]["example"]
        assert example["use_case"] == use_case
    demand = spec["paths"]["/predict/demand"]["post"]["responses"]["200"]
    assert demand["content"]["application/json"]["example"]["model_name"] == (
        "demand_forecaster_ciso"
    )


def _hours_later(point: dict[str, Any], hours: int) -> dict[str, Any]:
    ds = datetime.fromisoformat(point["ds"].replace("Z", "+00:00")) + timedelta(hours=hours)
    return {**point, "ds": ds.isoformat().replace("+00:00", "Z")}


def test_demand_for_a_respondent_without_a_model_is_a_404_naming_respondent(api: Api) -> None:
    response = api.post("demand", {**DEMAND_EXAMPLE, "respondent": "PJM"})
    message = _assert_detail_names(response, 404, "respondent")
    assert response.json()["detail"][0]["loc"] == ["body", "respondent"]
    assert "'demand_forecaster_pjm'" in message


def test_demand_history_with_a_gap_is_a_422_naming_history(api: Api) -> None:
    hours = DEMAND_EXAMPLE["history"]
    # 2024-05-02T00:00 missing: the second day starts an hour late (still 48 points).
    history = hours[:24] + [_hours_later(p, 1) for p in hours[24:]]
    response = api.post("demand", {**DEMAND_EXAMPLE, "history": history})
    message = _assert_detail_names(response, 422, "history")
    assert "1 hour(s) missing from 2024-05-02T00:00:00Z" in message
    assert response.json()["model_name"] == "demand_forecaster_ciso"


@pytest.mark.parametrize("horizon", [0, 24 * 7 + 1])
def test_demand_horizon_out_of_range_is_a_422(api: Api, horizon: int) -> None:
    response = api.post("demand", {**DEMAND_EXAMPLE, "horizon": horizon})
    _assert_detail_names(response, 422, "horizon")


@pytest.mark.usefixtures("heart_champion")
@pytest.mark.parametrize(
    ("change", "field"),
    [({"age": 121}, "age"), ({"trestbps": 300}, "trestbps"), ({"thal": 5}, "thal")],
)
def test_heart_value_out_of_range_is_a_422_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    _assert_detail_names(api.post("heart", {**HEART_EXAMPLE, **change}), 422, field)


def test_housing_notes_an_unseen_category_instead_of_refusing_it(api: Api) -> None:
    from mlops_assets.housing.inference import predict_records

    payload = {**HOUSING_EXAMPLE, "city": "Atlantis", "property_type": "houseboat"}
    response = api.post("housing", payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["unseen_categories"] == {"city": ["Atlantis"], "property_type": ["houseboat"]}
    (expected,), _ = predict_records(api.housing, [payload])
    assert body["predicted_price"] == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"baths": "many"}, "baths"),
        ({"beds": -1}, "beds"),
        ({"living_area_sqft": 10}, "living_area_sqft"),
        # A valid date, but one inference cannot represent: refused by the model's own path.
        ({"sale_date": "0001-01-01"}, "sale_date"),
    ],
)
def test_housing_bad_number_or_date_is_a_422_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    _assert_detail_names(api.post("housing", {**HOUSING_EXAMPLE, **change}), 422, field)


def test_an_athlete_not_in_the_online_store_is_a_404_naming_athlete_id(api: Api) -> None:
    response = api.post("athletes", {"athlete_id": 999_999})
    message = _assert_detail_names(response, 404, "athlete_id")
    assert message.startswith("athlete_id 999999 is not in the online store")
    assert (response.json()["model_name"], response.json()["model_version"]) == (ATHLETES, "1")


# --- a champion that cannot be prepared ---------------------------------------------------------


def test_a_new_champion_that_cannot_be_prepared_leaves_the_previous_one_serving(
    api: Api, pipelines: dict[str, Any]
) -> None:
    # No feature_version tag: prepare cannot tell which online features v2 reads.
    assert register(api.tracking, ATHLETES, pipelines["v1"]) == "2"
    try:
        entry = wait_until(
            lambda: (m := api.models()[ATHLETES]).get("last_error") and m,
            HOT_LOAD_S,
            "v2 to be refused",
        )
        assert entry["version"] == "1"
        assert entry["last_error"].startswith(
            "v2 could not be loaded: ValueError: athletes_total_lift v2 has feature_version=None"
        )
        response = api.post("athletes", ATHLETE_EXAMPLE)
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == "1"
        assert api.client.get("/ready").status_code == 200  # v1 still serves
    finally:
        api.tracking.set_alias(ATHLETES, "champion", "1")
    wait_until(lambda: "last_error" not in api.models()[ATHLETES], HOT_LOAD_S, "the error to clear")


# --- the request log (stops the app: last) -------------------------------------------------------


@pytest.mark.parametrize("use_case", ["heart", "housing", "athletes", "demand"])
def test_no_user_input_gets_a_500(api: Api, heart_champion: None, use_case: str) -> None:
    """Whatever JSON a client sends, the answer is a prediction or a 4xx that says what is wrong."""
    example = {
        "heart": HEART_EXAMPLE,
        "housing": HOUSING_EXAMPLE,
        "athletes": ATHLETE_EXAMPLE,
        "demand": DEMAND_EXAMPLE,
    }[use_case]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(payload=mangled(example))
    def check(payload: Any) -> None:
        response = api.client.post(f"/predict/{use_case}", json=payload)
        assert response.status_code < 500, (payload, response.text)
        body = response.json()
        if response.status_code >= 400:
            assert body["detail"] and all(d["msg"] for d in body["detail"]), body

    check()


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_json_numbers_are_refused(api: Api, heart_champion: None, token: bytes) -> None:
    """Python's JSON reader accepts NaN and Infinity; no model may see them."""
    body = json.dumps({**HEART_EXAMPLE, "oldpeak": 0.0}).encode().replace(b"0.0", token, 1)
    response = api.client.post(
        "/predict/heart", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "oldpeak"]


def test_every_request_is_in_the_request_log_with_its_status(api: Api) -> None:
    from mlops_assets.serving.request_log import read_day

    api.post("housing", HOUSING_EXAMPLE)  # one at least, when this test runs alone
    api.post("athletes", {"athlete_id": 0})  # refused by validation, logged all the same
    api.stop()  # the lifespan's shutdown seals and ships the log

    root = Path(api.settings.data_root)
    days = sorted({s.day for s in api.sent})
    logged = pd.concat([read_day(root, day).to_pandas() for day in days], ignore_index=True)
    assert not logged.request_id.duplicated().any()
    rows = logged.set_index("request_id")
    statuses = {s.status for s in api.sent}
    assert {200, 422} <= statuses
    for sent in api.sent:
        assert sent.request_id in rows.index, sent
        row = rows.loc[sent.request_id]
        assert (row["use_case"], row["status"]) == (sent.use_case, sent.status), sent
        if sent.model_version is not None:
            assert row["model_version"] == sent.model_version, sent
        if sent.status == 200:
            assert row["prediction"] == pytest.approx(sent.prediction), sent
            assert row["error"] is None
        else:
            assert row["error"], sent
