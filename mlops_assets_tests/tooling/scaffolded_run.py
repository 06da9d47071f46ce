"""What a scaffolded use case does once it is in the package, run in a fresh process by
``test_scaffold.py``: ``python scaffolded_run.py NAME`` with ``PYTHONPATH`` at a copy of the
package that holds the new use case ``NAME`` and a fresh local-profile home.

It imports the use case, loads the code location, materializes the use case's demo through the
location's resources, and asks the prediction API for a prediction; it prints one JSON object of
what it saw, which the test judges. Not a test module itself (no ``test_`` prefix).
"""

import json
import sys
from pathlib import Path

# What the code location must not import when it loads (see test_definitions.py).
HEAVY = ["mlflow", "sklearn", "pandas", "pyarrow", "polars", "great_expectations", "feast"]


def main(name: str) -> dict:
    import importlib

    import mlops_assets

    seen: dict = {"package": mlops_assets.__file__}
    definitions = importlib.import_module(f"mlops_assets.{name}.definitions")
    serving = importlib.import_module(f"mlops_assets.{name}.serving")
    seen["heavy_at_import"] = [m for m in HEAVY if m in sys.modules]

    import dagster as dg

    from mlops_assets.core.profiles import load_settings
    from mlops_assets.definitions import defs, resources_for
    from mlops_assets.use_cases import USE_CASES

    seen["use_cases"] = list(USE_CASES)
    graph = defs.resolve_asset_graph()
    seen["assets"] = sorted(
        k.to_user_string() for k in graph.get_all_asset_keys() if k.path[0] == name
    )
    seen["checks"] = sorted(
        f"{k.asset_key.to_user_string()}:{k.name}"
        for k in graph.asset_check_keys
        if k.asset_key.path[0] == name
    )
    seen["demo_select"] = [step.select for step in definitions.demo]
    seen["schedules"] = sorted(s.name for s in defs.schedules if s.name.startswith(name))

    settings = load_settings()
    resources = resources_for(settings)
    result = dg.materialize(
        definitions.ASSETS,
        resources=resources,
        run_config={"ops": definitions.demo_run_config},
        raise_on_error=False,
    )
    seen["materialized"] = result.success
    seen["materializations"] = sorted(
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    )
    seen["check_results"] = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    if not result.success:
        failures = [e for e in result.all_events if e.is_failure]
        seen["failures"] = [str(e.event_specific_data)[-2000:] for e in failures]
        return seen
    gate = result.asset_materializations_for_node(f"{name}__champion")[0].metadata
    seen["decision"] = gate["promotion/decision"].value
    tracking = resources["mlflow"]
    model_name = serving.ENDPOINT.model_name
    champion = tracking.get_version_by_alias(model_name, "champion")
    seen["champion"] = None if champion is None else (champion.name, str(champion.version))

    seen["api"] = ask_the_api(name, settings, serving, tracking)
    return seen


def ask_the_api(name: str, settings, serving, tracking) -> dict:
    import importlib

    import pandas as pd
    from fastapi.testclient import TestClient

    from mlops_assets.serving.app import create_app
    from mlops_assets.serving.config import ServingConfig

    features = importlib.import_module(f"mlops_assets.{name}.features")
    training = importlib.import_module(f"mlops_assets.{name}.training")
    example = serving.ENDPOINT.request.model_json_schema()["examples"][0]
    config = ServingConfig(use_cases=(name,), log_dir=str(Path(settings.home) / "wal"), poll_s=60)
    with TestClient(create_app(settings, config)) as client:
        good = client.post(f"/predict/{name}", json=example)
        out_of_range = client.post(f"/predict/{name}", json={**example, "visits": -1})
        unknown_field = client.post(f"/predict/{name}", json={**example, "colour": "red"})
    # The champion's own probability for the example, scored outside the API.
    model = tracking.load_model_version(serving.ENDPOINT.model_name, "1")
    expected = training.score(model, features.engineer(pd.DataFrame([example])))[0]
    return {
        "good": [good.status_code, good.json()],
        "expected_probability": float(expected),
        "out_of_range": [out_of_range.status_code, out_of_range.json()["detail"][0]["loc"]],
        "unknown_field": [unknown_field.status_code, unknown_field.json()["detail"][0]["loc"]],
    }


if __name__ == "__main__":
    print("SEEN " + json.dumps(main(sys.argv[1])), flush=True)
