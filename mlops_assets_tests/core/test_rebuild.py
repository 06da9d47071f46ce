"""The rebuild's comparison and refusals, without training. The rebuilds of real versions are in
the end-to-end tests that train them: fraud's `test_lineage_rebuild.py`, and heart's and
housing's `test_pipeline.py`."""

import json
import math

import dagster as dg
import numpy as np
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.rebuild import (
    EXIT_REFUSED,
    Comparison,
    Rebuilder,
    RebuildError,
    RebuildRefused,
    check_inputs,
    compare_metrics,
    compare_params,
    compare_predictions,
    rebuilder_for,
)
from mlops_assets.tooling.rebuild import discover_rebuilders, rebuild_command
from mlops_assets_tests.fixtures import deployment

# The instance `mlops rebuild` opens for the test's local profile.
deployment_instance = deployment.deployment_instance


def test_metrics_equal_within_the_tolerance_and_nan_equals_nan() -> None:
    rows = compare_metrics(
        {"auc": 0.9, "brier": math.nan, "loss": 0.3, "gone": 1.0},
        {"auc": 0.9 + 5e-10, "brier": math.nan, "loss": 0.3001, "new": 2.0},
    )
    by_name = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == ["auc", "brier", "gone", "loss", "new"]
    assert by_name["auc"]["equal"] and by_name["brier"]["equal"]
    assert not by_name["loss"]["equal"] and by_name["loss"]["abs_diff"] == pytest.approx(1e-4)
    # A metric of one run only is a difference, never skipped.
    assert by_name["gone"] == {
        "name": "gone",
        "original": 1.0,
        "rebuilt": None,
        "abs_diff": None,
        "equal": False,
    }
    assert not by_name["new"]["equal"]


def test_predictions_count_the_rows_that_differ_and_the_largest_gap() -> None:
    same = compare_predictions([0.1, np.nan, 0.3], np.array([0.1, np.nan, 0.3]))
    assert same == {"rows_original": 3, "rows_rebuilt": 3, "max_abs_diff": 0.0, "differing_rows": 0}
    off = compare_predictions([0.1, 0.2, 0.3, 0.4], [0.1, 0.25, 0.3, 0.2])
    assert off["differing_rows"] == 2 and off["max_abs_diff"] == pytest.approx(0.2)
    assert compare_predictions([1.0], [1.0, 2.0])["differing_rows"] == 2


def test_params_are_compared_as_the_text_mlflow_keeps() -> None:
    rows = compare_params(
        {"seed": "0", "fraction": "0.2", "kind": "svm"}, {"seed": 0, "fraction": 0.2, "kind": "rf"}
    )
    assert [(r["name"], r["equal"]) for r in rows] == [
        ("fraction", True),
        ("kind", False),
        ("seed", True),
    ]


def test_a_changed_input_is_refused_naming_the_asset_partition_and_both_versions() -> None:
    recorded = {("fraud/labels", "2024-01-04"): "a" * 64, ("fraud/labels", "2024-01-05"): "b" * 64}
    check_inputs("m", "3", recorded, dict(recorded))  # unchanged: no refusal
    with pytest.raises(RebuildRefused) as refused:
        check_inputs("m", "3", recorded, {**recorded, ("fraud/labels", "2024-01-04"): "c" * 64})
    [change] = refused.value.changes
    assert (change.asset_key, change.partition) == ("fraud/labels", "2024-01-04")
    assert "fraud/labels partition 2024-01-04: recorded aaaaaaaaaaaa, now cccccccccccc" in str(
        refused.value
    )
    assert "Nothing was trained or logged" in str(refused.value)


def test_every_use_case_with_models_to_rebuild_is_found_and_prefixes_match_entities() -> None:
    names = {r.model_name for r in discover_rebuilders()}
    assert {"fraud_classifier", "heart_disease", "housing_price"} <= names

    def nothing(recorded, sources):  # never called
        raise AssertionError

    per_entity = Rebuilder("demand", "demand_forecaster_", nothing, per_entity=True)
    assert rebuilder_for("demand_forecaster_pjm", [per_entity]) is per_entity
    with pytest.raises(RebuildError, match="no use case rebuilds model 'other'"):
        rebuilder_for("other", [per_entity])


def test_the_comparison_renders_identical_or_each_difference() -> None:
    comparison = Comparison(
        name="m",
        version="2",
        run_id="r1",
        rebuild_run_id="r2",
        experiment_id="1",
        metrics=compare_metrics({"auc": 0.9}, {"auc": 0.9}),
        params=compare_params({"seed": "0"}, {"seed": 0}),
        predictions=compare_predictions([0.5, 0.6], [0.5, 0.6]),
        data={},
        data_version="x" * 64,
        recorded_data_version="x" * 64,
    )
    assert comparison.identical and comparison.render().endswith("\nIDENTICAL")
    comparison.predictions = compare_predictions([0.5, 0.6], [0.5, 0.7])
    comparison.metrics = compare_metrics({"auc": 0.9}, {"auc": 0.8})
    text = comparison.render()
    assert not comparison.identical and "\nDIFFERENT\n" in text
    assert "metric auc: original 0.9, rebuilt 0.8" in text
    assert "predictions: 1 of 2 holdout rows differ" in text
    assert json.loads(json.dumps(comparison.to_dict()))["status"] == "different"


def test_an_unknown_model_or_version_is_one_line_and_exit_2(
    deployment_instance: dg.DagsterInstance, capsys: pytest.CaptureFixture
) -> None:
    def error_line(model: str, version: str) -> str:
        code = rebuild_command(load_settings(), model, version, as_json=False)
        out, err = capsys.readouterr()
        assert code == EXIT_REFUSED and out == "" and "Traceback" not in err
        # (MLflow's own notes about creating its empty database may come first.)
        [line] = [line for line in err.splitlines() if line.startswith("mlops rebuild:")]
        return line

    assert error_line("no_such_model", "1").startswith(
        "mlops rebuild: no use case rebuilds model 'no_such_model'; rebuildable models: "
    )
    assert error_line("heart_disease", "7") == (
        "mlops rebuild: MLflow could not find heart_disease v7: "
        "Model Version (name=heart_disease, version=7) not found"
    )
