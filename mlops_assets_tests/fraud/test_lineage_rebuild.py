"""`mlops lineage` and `mlops rebuild` on one tiny fraud deployment, trained once.

A batch score, an API request and a model version are traced back to the bronze partitions,
their data versions and the Dagster runs that made them; the registered version rebuilds
IDENTICAL from the partitions its training set's manifest names. Then one bronze day is made
again with other data: the lineage marks it CHANGED, and `mlops rebuild` (the console script, in a
process of its own) refuses by name, training and logging nothing."""

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.rebuild import EXIT_IDENTICAL, EXIT_REFUSED, TAG_REBUILD_OF
from mlops_assets.core.storage import VersionedDataset
from mlops_assets.definitions import resources_for
from mlops_assets.fraud.assets import MODEL_NAME
from mlops_assets.serving.request_log import RequestLog
from mlops_assets.tooling.cli import main
from mlops_assets.tooling.rebuild import rebuild_command
from mlops_assets_tests.fixtures import deployment
from mlops_assets_tests.fixtures.cli import REPO
from mlops_assets_tests.fraud.test_pipeline import SILVER, TINY_BRONZE, _materialize

# The instance both commands read (DAGSTER_HOME of the profile), kept on disk between the calls.
deployment_instance = deployment.deployment_instance

FIRST, DAY = "2024-01-02", "2024-01-04"
# Two days of transactions (Jan 2-3) train the model of Jan 4, which scores Jan 4: three days
# of bronze, the fewest that make a model and its scores.
TRAINING = {"window_days": 2, "maturity_days": 1}
WINDOW = ["2024-01-02", "2024-01-03"]
# The bronze day made again after the model was trained (one of the window's).
TAMPERED = "2024-01-02"
# `mlops` as a user types it: the project's console script beside this interpreter.
MLOPS = Path(sys.executable).with_name("mlops")


def _mlops(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``mlops ARGS`` in this process: exit code, stdout, stderr (of that call only)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _links(link: dict):
    yield link
    for parent in link["parents"]:
        yield from _links(parent)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lineage_traces_to_bronze_runs_the_version_rebuilds_identical_and_a_changed_day_is_refused(
    deployment_instance: dg.DagsterInstance, local_home: Path, capsys: pytest.CaptureFixture
) -> None:
    resources = resources_for(load_settings())
    bronze = _materialize(
        [*SILVER, "fraud/feature_store"],
        resources=resources,
        instance=deployment_instance,
        run_config={"ops": {"bronze": {"config": TINY_BRONZE}}},
        tags={
            "dagster/asset_partition_range_start": FIRST,
            "dagster/asset_partition_range_end": DAY,
        },
    )
    assert bronze.success
    trained = _materialize(
        ["fraud/training_set", "fraud/model", "fraud/champion", "fraud/scores"],
        resources=resources,
        instance=deployment_instance,
        partition_key=DAY,
        run_config={
            "ops": {
                "fraud__training_set": {"config": TRAINING},
                "fraud__model": {"config": {"kinds": ["logreg"]}},
            }
        },
    )
    assert trained.success
    data = local_home / ".data" / "fraud"
    training_set = VersionedDataset(data / "training_set").current(DAY)
    assert training_set is not None
    assert training_set.extra["days"] == WINDOW
    # What the training set read, as its manifest recorded it: the hash of each bronze file.
    day_file = data / "transactions" / f"{TAMPERED}.parquet"
    recorded = _sha256(day_file)
    assert training_set.extra["source_data_versions"]["transactions"][TAMPERED] == recorded

    # -- lineage of a model version, by alias ----------------------------------------------------
    code, text, _ = _mlops("lineage", "model", f"{MODEL_NAME}@champion", capsys=capsys)
    assert code == 0
    assert f"model {MODEL_NAME} v1  (aliases now: candidate, champion)" in text
    assert f"data version: {training_set.data_version}" in text
    # Each bronze day the training set read, with its data version and the run that made it.
    transactions_line = (
        f"fraud/transactions  {TAMPERED}  data {recorded[:12]}  run {bronze.run_id[:8]}"
    )
    assert transactions_line in text and "CHANGED" not in text
    assert (
        f"fraud/training_set  {DAY}  data {training_set.data_version[:12]}  run {trained.run_id[:8]}"
        in text
    )

    # -- a batch score, as JSON: the row, its partition's materialization and the model above it
    scores = pl.read_parquet(data / "scores" / f"{DAY}.parquet")
    tx_id = scores["tx_id"][0]
    code, out, _ = _mlops("lineage", "score", "fraud", tx_id, "--day", DAY, "--json", capsys=capsys)
    assert code == 0
    result = json.loads(out)
    [row] = result["predictions"]
    assert (row["tx_id"], row["model_version"]) == (tx_id, "1")
    chain = result["materialization"]
    assert (chain["asset_key"], chain["partition"], chain["run_id"]) == (
        "fraud/scores",
        DAY,
        trained.run_id,
    )
    links = list(_links(chain))
    assert not [link for link in links if link["missing"] or link["changed"]]
    # Through the champion and the model to the training set, walked by what it read.
    [read] = [
        link
        for link in links
        if link["asset_key"] == "fraud/transactions"
        and link["partition"] == TAMPERED
        and link["data_version"] == recorded
    ][:1]
    assert read["run_id"] == bronze.run_id and read["current_data_version"] == read["data_version"]
    [model] = result["models"]
    assert (model["name"], model["version"], model["params"]["kind"]) == (MODEL_NAME, "1", "logreg")
    assert model["training_set"]["data_version"] == training_set.data_version
    assert model["training_set"]["days"] == WINDOW
    assert model["model_materialization"]["run_id"] == trained.run_id
    assert model["alias_history"][0]["version"] == "1"

    # -- an API request, appended through the request log's own writer ---------------------------
    log = RequestLog(local_home / "wal", resources["asset_store"].base, fsync=False)
    log.start()
    log.append_blocking(
        {
            "request_id": "req-42",
            "ts": datetime(2024, 1, 5, 9, 30, tzinfo=UTC),
            "use_case": "fraud",
            "model_name": MODEL_NAME,
            "model_version": "1",
            "status": 200,
            "prediction": 0.25,
            "request": {"card_id": 7, "amount": 12.5},
            "role": "served",
            "alias": "champion",
        }
    )
    log.close()
    code, out, _ = _mlops("lineage", "request", "req-42", capsys=capsys)
    assert code == 0
    assert "request req-42  2024-01-05T09:30:00+00:00  fraud  status 200  prediction 0.25" in out
    assert f"by {MODEL_NAME} v1 (champion, served)" in out
    assert f"training set fraud/training_set dt={DAY}/run_id={trained.run_id}" in out

    # -- what does not exist: exit code 2 and one line saying what was looked for ----------------
    for args, message in [
        (("request", "no-such-request"), "request 'no-such-request' is not in the request log"),
        (("model", f"{MODEL_NAME}@9"), f"model '{MODEL_NAME}' has no version 9"),
        (("model", "no_such_model@champion"), "model 'no_such_model' is not registered"),
        (
            ("score", "fraud", "no-such-tx", "--day", DAY),
            f"transaction no-such-tx is not in fraud/scores partition {DAY}",
        ),
    ]:
        code, out, err = _mlops("lineage", *args, capsys=capsys)
        assert (code, out) == (2, ""), (args, err)
        assert err.startswith(f"mlops lineage: {message}"), (args, err)
        assert len(err.strip().splitlines()) == 1

    # -- the registered version rebuilt from its recorded lineage: IDENTICAL ---------------------
    tracking = resources["mlflow"]
    experiment = tracking.client.get_run(
        tracking.get_version_by_alias(MODEL_NAME, "champion").run_id
    ).info.experiment_id
    capsys.readouterr()
    code = rebuild_command(load_settings(), MODEL_NAME, "1", as_json=True)
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert code == EXIT_IDENTICAL, out
    # The training set rebuilt from its 8 source partitions (4 inputs, 2 days) has the recorded
    # data version: the one the lineage printed.
    rebuilt_set = report["training_data"]
    assert rebuilt_set["identical"]
    assert rebuilt_set["rebuilt_data_version"] == training_set.data_version
    assert rebuilt_set["recorded_data_version"] == training_set.data_version
    assert "8 source partitions" in rebuilt_set["training set"]
    assert {"pr_auc", "roc_auc", "log_loss"} <= {m["name"] for m in report["metrics"]}
    assert all(m["equal"] for m in report["metrics"])
    # The promotion gate's holdout: the latest 20% of the set's labelled payments (ties in time
    # kept together), each priced alike by the registered and the rebuilt model.
    rows = VersionedDataset(data / "training_set").read(training_set).num_rows
    holdout = report["predictions"]
    assert round(0.2 * rows) <= holdout["rows_original"] == holdout["rows_rebuilt"] < 0.25 * rows
    assert holdout["differing_rows"] == 0
    rebuilt = tracking.client.get_run(report["rebuild_run_id"])
    assert rebuilt.info.experiment_id == experiment
    assert rebuilt.data.tags[TAG_REBUILD_OF] == "1"
    runs_before = len(tracking.client.search_runs([experiment]))

    # -- the same day made again alone, with the same settings: the same bytes, so nothing changed
    # (the ranged run recorded one version for all its days; each day compares by its own hash)
    again = _materialize(
        ["fraud/transactions", "fraud/labels"],
        resources=resources,
        instance=deployment_instance,
        partition_key=TAMPERED,
        run_config={"ops": {"bronze": {"config": TINY_BRONZE}}},
    )
    assert again.success and _sha256(day_file) == recorded
    code, out, _ = _mlops("lineage", "model", f"{MODEL_NAME}@1", capsys=capsys)
    assert code == 0 and "changed since read: nothing" in out, out

    # -- one bronze day of the window made again, with another seed: other payments, other labels
    tampered = _materialize(
        ["fraud/transactions", "fraud/labels"],
        resources=resources,
        instance=deployment_instance,
        partition_key=TAMPERED,
        run_config={"ops": {"bronze": {"config": {**TINY_BRONZE, "seed": 7}}}},
    )
    assert tampered.success
    now = _sha256(day_file)
    assert now != recorded
    code, out, _ = _mlops("lineage", "model", f"{MODEL_NAME}@1", capsys=capsys)
    assert code == 0
    # Named as changed, with the version read and the version now.
    assert f"{transactions_line}  CHANGED since: now {now[:12]}" in out

    # `mlops rebuild` as a user types it: refused, naming each changed partition and its versions.
    refused = subprocess.run(
        [str(MLOPS), "rebuild", MODEL_NAME, "1"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert refused.returncode == EXIT_REFUSED, refused.stdout + refused.stderr
    lines = refused.stdout.splitlines()
    assert lines[0] == (
        f"REFUSED: {MODEL_NAME} v1 cannot be rebuilt: 2 source partition(s) changed since it was "
        "trained:"
    )
    # Each with the version read then (as the lineage recorded it) and the version now: the
    # content hash of the file made again.
    changed = {line.split(" partition ")[0].strip(): line for line in lines[1:-1]}
    assert sorted(changed) == ["fraud/labels", "fraud/transactions"]
    for name in ("transactions", "labels"):
        line = changed[f"fraud/{name}"]
        read = training_set.extra["source_data_versions"][name][TAMPERED]
        assert line.startswith(f"  fraud/{name} partition {TAMPERED}: recorded {read[:12]}")
        assert line.endswith(f", now {_sha256(data / name / f'{TAMPERED}.parquet')[:12]}")
    assert lines[-1] == "Nothing was trained or logged."
    assert "Traceback" not in refused.stderr
    # Nothing trained, nothing logged.
    assert len(tracking.client.search_runs([experiment])) == runs_before
