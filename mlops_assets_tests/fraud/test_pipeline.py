"""The fraud pipeline end to end on tiny data: bronze → features → Feast → training set → model →
champion → scores, on the local profile (and, marked `stack`, on S3 + Redis + an MLflow server,
where the same input must give every asset partition the local profile's data version)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.storage import VersionedDataset
from mlops_assets.definitions import resources_for
from mlops_assets.fraud.assets import MODEL_NAME
from mlops_assets.fraud.definitions import ASSETS
from mlops_assets_tests.fixtures.local_profile import use_local_profile

FIRST, LAST = "2024-01-01", "2024-01-10"
TINY_BRONZE = {
    "n_cards": 300,
    "n_merchants": 40,
    "tx_per_day": 600,
    "fraud_rate": 0.05,
    "max_chargeback_days": 2,
}
TINY_TRAINING = {"window_days": 6, "maturity_days": 2}
SILVER = ["fraud/transactions", "fraud/labels", "fraud/card_features", "fraud/merchant_features"]


def _materialize(keys: list[str], assets: list = ASSETS, **kwargs) -> dg.ExecuteInProcessResult:
    """Materialize the fraud assets ``keys`` (and their checks), the rest of the group loaded."""
    selection = dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys])
    return dg.materialize(assets, selection=selection, raise_on_error=False, **kwargs)


def _run_bronze_to_feast(
    resources: dict, first: str = FIRST, last: str = LAST, assets: list = ASSETS, **bronze
):
    return _materialize(
        [*SILVER, "fraud/feature_store"],
        assets,
        resources=resources,
        run_config={"ops": {"bronze": {"config": {**TINY_BRONZE, **bronze}}}},
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )


def _run_training(
    resources: dict,
    day: str = LAST,
    training: dict = TINY_TRAINING,
    assets: list = ASSETS,
    **model_config,
):
    return _materialize(
        ["fraud/training_set", "fraud/model", "fraud/champion", "fraud/scores"],
        assets,
        resources=resources,
        partition_key=day,
        run_config={
            "ops": {
                "fraud__training_set": {"config": training},
                **({"fraud__model": {"config": model_config}} if model_config else {}),
            }
        },
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture
def resources(local_home: Path) -> dict:
    return resources_for(load_settings())


def test_whole_group_runs_and_serves_a_champion(resources: dict, local_home: Path) -> None:
    bronze = _run_bronze_to_feast(resources)
    assert bronze.success
    assert all(_checks(bronze).values()), _checks(bronze)
    data = local_home / ".data" / "fraud"
    days = sorted(p.stem for p in (data / "transactions").glob("*.parquet"))
    assert days[0] == FIRST and days[-1] == LAST and len(days) == 10
    tx = pl.read_parquet(data / "transactions" / f"{LAST}.parquet")
    card = pl.read_parquet(data / "card_features" / f"{LAST}.parquet")
    assert card["tx_id"].to_list() == tx.sort("event_ts", "tx_id")["tx_id"].to_list()
    # History reaches back across partition boundaries: a card active on earlier days.
    assert card["card_tx_count_7d"].max() > card["card_tx_count_1d"].max()

    online = resources["feature_store"].get_online_features(
        ["card_features:card_tx_count_30d"], [{"card_id": int(tx["card_id"][0])}]
    )
    assert online["card_tx_count_30d"][0] is not None

    run = _run_training(resources)
    assert run.success, [e.message for e in run.all_events if e.is_failure]
    assert _checks(run)["snapshots_precede_events"] is True

    dataset = VersionedDataset(resources["asset_store"].base / "fraud" / "training_set")
    current = dataset.current(LAST)
    assert current is not None and current.run_id == run.run_id
    training = pl.from_arrow(dataset.read(current))
    labelled_days = sorted({str(d) for d in training["event_ts"].dt.date().to_list()})
    assert labelled_days == [f"2024-01-0{d}" for d in range(3, 9)]  # 6 days ending 2 days before
    assert training.height == 6 * TINY_BRONZE["tx_per_day"]

    tracking = resources["mlflow"]
    candidate = tracking.get_version_by_alias(MODEL_NAME, "candidate")
    champion = tracking.get_version_by_alias(MODEL_NAME, "champion")
    assert champion is not None and champion.version == candidate.version

    # Retraining on the same data gives an equally good candidate: the gate keeps the champion.
    again = _run_training(resources)
    assert again.success
    [decision] = [
        e.step_materialization_data.materialization.metadata
        for e in again.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["fraud", "champion"])
    ]
    assert decision["promotion/decision"].value == "kept"
    assert "not better" in decision["promotion/reason"].value
    retrained = tracking.get_version_by_alias(MODEL_NAME, "candidate")
    assert int(retrained.version) > int(candidate.version)
    assert tracking.get_version_by_alias(MODEL_NAME, "champion").version == champion.version

    scores = pl.read_parquet(data / "scores" / f"{LAST}.parquet")
    assert scores.height == tx.height
    assert set(scores["model_version"].unique()) == {str(champion.version)}
    assert scores["fraud_probability"].is_between(0, 1).all()

    # The champion loads by alias in a fresh process and scores like the batch path.
    code = (
        "import json, sys, mlflow, pandas as pd; "
        f"m = mlflow.sklearn.load_model('models:/{MODEL_NAME}@champion'); "
        "rows = pd.read_json(sys.stdin.read(), orient='records'); "
        "print(json.dumps(m.predict_proba(rows)[:, 1].tolist()))"
    )
    features = training.drop("is_fraud").head(5).to_pandas()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=features.to_json(orient="records", date_format="iso"),
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    batch = tracking.load_model(MODEL_NAME, "champion").predict_proba(features)[:, 1]
    assert fresh == pytest.approx(batch.tolist(), abs=1e-9)


def test_rematerializing_a_day_gives_the_same_bytes(resources: dict, local_home: Path) -> None:
    assert _run_bronze_to_feast(resources, FIRST, "2024-01-03").success
    data = local_home / ".data" / "fraud"
    before = {p.name: p.read_bytes() for p in (data / "card_features").glob("*.parquet")}
    again = _run_bronze_to_feast(resources, "2024-01-03", "2024-01-03")
    assert again.success
    assert (data / "card_features" / "2024-01-03.parquet").read_bytes() == before[
        "2024-01-03.parquet"
    ]


def _write_user_day(root: Path, day: str, transactions: pl.DataFrame, labels: pl.DataFrame) -> None:
    (root / "transactions").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    transactions.write_csv(root / "transactions" / f"{day}.csv")
    labels.write_parquet(root / "labels" / f"{day}.parquet")


def _good_day(day: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    from datetime import date

    from mlops_assets.fraud import sources

    tx, labels = sources.generate_day(
        date.fromisoformat(day), sources.GeneratorConfig(n_cards=50, n_merchants=10, tx_per_day=40)
    )
    return pl.from_arrow(tx), pl.from_arrow(labels)


@pytest.mark.parametrize(
    ("corrupt", "failing_check", "named"),
    [
        (
            lambda tx: tx.with_columns(pl.lit(None, pl.Int64).alias("card_id")),
            "transactions_meet_expectations",
            "card_id",
        ),
        (lambda tx: pl.concat([tx, tx.head(3)]), "tx_id_is_unique", "tx_id"),
        (
            lambda tx: tx.with_columns(
                pl.when(pl.int_range(pl.len()) < 4)
                .then(pl.col("event_ts").dt.offset_by("2d"))
                .otherwise(pl.col("event_ts"))
                .alias("event_ts")
            ),
            "transactions_inside_their_day",
            "event_ts",
        ),
    ],
)
def test_bad_user_file_fails_a_blocking_check_and_nothing_downstream_runs(
    resources: dict, local_home: Path, corrupt, failing_check: str, named: str
) -> None:
    root = local_home / "incoming"
    good_tx, good_labels = _good_day("2024-01-01")
    _write_user_day(root, "2024-01-01", good_tx, good_labels)
    files = {"source": "files", "files_root": str(root)}
    first = _materialize(
        SILVER,
        resources=resources,
        run_config={"ops": {"bronze": {"config": files}}},
        partition_key="2024-01-01",
    )
    assert first.success
    data = local_home / ".data" / "fraud"
    day1 = (data / "card_features" / "2024-01-01.parquet").read_bytes()

    bad_tx, bad_labels = _good_day("2024-01-02")
    _write_user_day(root, "2024-01-02", corrupt(bad_tx), bad_labels)
    run = _materialize(
        SILVER,
        resources=resources,
        run_config={"ops": {"bronze": {"config": files}}},
        partition_key="2024-01-02",
    )
    evaluations = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert evaluations[failing_check].passed is False
    assert named in json.dumps(
        {k: str(v.value) for k, v in evaluations[failing_check].metadata.items()}
    )
    assert not (data / "card_features" / "2024-01-02.parquet").exists()
    assert (data / "card_features" / "2024-01-01.parquet").read_bytes() == day1


def test_user_file_with_a_missing_column_fails_before_writing(
    resources: dict, local_home: Path
) -> None:
    root = local_home / "incoming"
    tx, labels = _good_day("2024-01-01")
    _write_user_day(root, "2024-01-01", tx.drop("amount"), labels)
    run = _materialize(
        ["fraud/transactions", "fraud/labels"],
        resources=resources,
        run_config={"ops": {"bronze": {"config": {"source": "files", "files_root": str(root)}}}},
        partition_key="2024-01-01",
    )
    assert not run.success
    [failure] = [e for e in run.all_events if e.is_step_failure]
    assert "amount" in str(failure.step_failure_data.error.to_string())
    assert not (local_home / ".data" / "fraud" / "transactions").exists()


# The parity run of both profiles: four days, and the training set of the fourth: the two days
# whose labels are all known by then (a legitimate payment is confirmed exactly
# `max_chargeback_days` after it), ~1,200 rows. Two, not one: the chronological validation part
# (the last 20%) of one day holds a single fraud, and every PR-AUC would be 1.0.
PARITY_DAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
PARITY_FIRST, PARITY_LAST = PARITY_DAYS[0], PARITY_DAYS[-1]
PARITY_TRAINING = {"window_days": 2, "maturity_days": TINY_BRONZE["max_chargeback_days"]}
# One kind: the comparison needs a trained, registered model, not the race between kinds (the
# local test trains both); each kind is an MLflow run and a model upload per profile.
PARITY_KINDS = ["logreg"]
# Dagster's tags on a materialization: its data version; whether the asset returned it (a
# content hash) or Dagster derived it from the code version and the inputs' data versions.
DATA_VERSION_TAG = "dagster/data_version"
USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
CODE_VERSION_TAG = "dagster/code_version"


def _run_parity_pipeline(resources: dict) -> list[dg.ExecuteInProcessResult]:
    """The tiny fraud input through every asset, as the deployment defines them (with their
    derived code versions, `mlops_assets.definitions`): bronze → features → Feast for the parity
    days, then training set → model → champion → scores of the last one."""
    from mlops_assets.core.code_versions import with_code_versions

    assets = list(with_code_versions(dg.Definitions(assets=ASSETS)).assets or [])
    feeds = _run_bronze_to_feast(resources, PARITY_FIRST, PARITY_LAST, assets)
    assert feeds.success, [e.message for e in feeds.all_events if e.is_failure]
    trains = _run_training(resources, PARITY_LAST, PARITY_TRAINING, assets, kinds=PARITY_KINDS)
    assert trains.success, [e.message for e in trains.all_events if e.is_failure]
    return [feeds, trains]


def _data_versions(runs: list[dg.ExecuteInProcessResult]) -> dict[str, str]:
    """``"<asset key> [<partition>]"`` → data version, for every materialization of ``runs``.

    An asset that returns no data version of its own (the Feast load, the model, the champion)
    gets one Dagster derives from its code version and its inputs' data versions; without a
    code version Dagster would put the run's id in its place, and no two runs would agree: such
    a materialization fails here, named."""
    versions: dict[str, str] = {}
    from_run_ids = []
    for run in runs:
        for event in run.get_asset_materialization_events():
            tags = event.materialization.tags or {}
            name = f"{event.asset_key.to_user_string()} [{event.partition}]"
            versions[name] = tags[DATA_VERSION_TAG]
            if tags.get(USER_PROVIDED_TAG) != "true" and tags[CODE_VERSION_TAG] == run.run_id:
                from_run_ids.append(name)
    assert not from_run_ids, f"data versions derived from a run id: {from_run_ids}"
    return versions


def _registered_metrics(tracking) -> tuple[str, dict[str, float]]:
    """The version registered as ``candidate`` by the run, and its MLflow run's metrics."""
    version = tracking.get_version_by_alias(MODEL_NAME, "candidate")
    assert version is not None
    return str(version.version), tracking.client.get_run(version.run_id).data.metrics


def _forget_registered_model(tracking) -> None:
    """Delete ``MODEL_NAME`` from the session's MLflow server, which other stack tests share
    (the API's tests register a champion of that name): the local profile starts from an empty
    registry, and the stack's run must too, or its gate would judge against another test's
    champion and its scores name another version."""
    if tracking.client.search_registered_models(filter_string=f"name = '{MODEL_NAME}'"):
        tracking.client.delete_registered_model(MODEL_NAME)


@pytest.mark.stack
def test_whole_group_on_the_stack_profile(
    stack_profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 through moto's server, Redis online store, Feast SQL registry and MLflow server on
    PostgreSQL: the same pipeline, the same numbers. The same tiny input then runs on the local
    profile (files, SQLite), and every materialization, asset and partition, must carry the same
    data version on both, and the registered model the same MLflow metrics: a data version
    depends on the data only, never on where it is stored or which run wrote it."""
    from mlops_assets.core.feature_store import clear_caches

    stack = stack_profile("fraud")
    resources = resources_for(stack.settings)
    _forget_registered_model(resources["mlflow"])
    on_stack = _run_parity_pipeline(resources)

    keys = stack.keys()
    assert f"fraud/scores/{PARITY_LAST}.parquet" in keys
    assert f"fraud/training_set/dt={PARITY_LAST}/_CURRENT" in keys
    champion = resources["mlflow"].get_version_by_alias(MODEL_NAME, "champion")
    assert champion is not None
    online = resources["feature_store"].get_online_features(
        ["merchant_features:merchant_tx_count_30d"], [{"merchant_id": 1}]
    )
    assert online["merchant_tx_count_30d"][0] is not None
    stack_versions = _data_versions(on_stack)
    stack_model = _registered_metrics(resources["mlflow"])

    # The local profile in a home of its own; the stack's services, bucket and Feast stores
    # out of reach.
    use_local_profile(monkeypatch, tmp_path / "local")
    for var in ("MLOPS_S3_BUCKET", "MLOPS_REDIS_URL", "MLOPS_POSTGRES_URL"):
        monkeypatch.delenv(var, raising=False)
    clear_caches()
    local = resources_for(load_settings())
    assert str(local["asset_store"].base).startswith(str(tmp_path / "local"))
    local_versions = _data_versions(_run_parity_pipeline(local))
    local_model = _registered_metrics(local["mlflow"])

    trained = ["fraud/training_set", "fraud/model", "fraud/champion", "fraud/scores"]
    expected = {
        *(f"{key} [{day}]" for key in [*SILVER, "fraud/feature_store"] for day in PARITY_DAYS),
        *(f"{key} [{PARITY_LAST}]" for key in trained),
    }
    assert set(stack_versions) == set(local_versions) == expected, (
        sorted(set(stack_versions) ^ expected),
        sorted(set(local_versions) ^ expected),
    )
    differing = {
        name: {"stack": stack_versions[name], "local": local_versions[name]}
        for name in sorted(expected)
        if stack_versions[name] != local_versions[name]
    }
    assert not differing, (
        f"{len(differing)} of {len(expected)} differ: {json.dumps(differing, indent=1)}"
    )

    (stack_version, stack_metrics), (local_version, local_metrics) = stack_model, local_model
    assert stack_version == local_version == "1"
    assert stack_metrics.keys() == local_metrics.keys() and stack_metrics
    metric_differences = {
        name: (stack_metrics[name], local_metrics[name])
        for name in sorted(stack_metrics)
        if abs(stack_metrics[name] - local_metrics[name]) > 1e-12
    }
    assert not metric_differences, metric_differences


def _bronze_from_files(resources: dict, root: Path, day: str) -> dg.ExecuteInProcessResult:
    return _materialize(
        SILVER,
        resources=resources,
        run_config={"ops": {"bronze": {"config": {"source": "files", "files_root": str(root)}}}},
        partition_key=day,
    )


def _failure_message(run: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in run.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert error.cls_name == "Failure", error.cls_name
    return error.message


@pytest.mark.parametrize("empty", ["transactions", "labels"])
def test_a_header_only_file_is_refused_with_a_clean_message(
    resources: dict, local_home: Path, empty: str
) -> None:
    root = local_home / "incoming"
    tx, labels = _good_day("2024-01-01")
    tx, labels = (tx.head(0), labels) if empty == "transactions" else (tx, labels.head(0))
    _write_user_day(root, "2024-01-01", tx, labels)
    run = _bronze_from_files(resources, root, "2024-01-01")
    assert not run.success
    message = _failure_message(run)
    assert f"{empty}/2024-01-01" in message and "no rows" in message, message
    assert not (local_home / ".data" / "fraud").exists() or not any(
        (local_home / ".data" / "fraud").rglob("*.parquet")
    )


def test_a_missing_file_fails_with_the_message_only(resources: dict, local_home: Path) -> None:
    root = local_home / "incoming"
    tx, _ = _good_day("2024-01-01")
    (root / "transactions").mkdir(parents=True)
    tx.write_csv(root / "transactions" / "2024-01-01.csv")
    run = _bronze_from_files(resources, root, "2024-01-01")
    assert not run.success
    message = _failure_message(run)
    assert "no labels file for 2024-01-01" in message, message
    assert not (local_home / ".data" / "fraud" / "transactions").exists()


def test_an_implausible_amount_fails_the_transactions_check_with_the_count(
    resources: dict, local_home: Path
) -> None:
    root = local_home / "incoming"
    tx, labels = _good_day("2024-01-01")
    tx = tx.with_columns(
        pl.when(pl.int_range(pl.len()) < 2)
        .then(pl.lit(1e12))
        .otherwise(pl.col("amount"))
        .alias("amount")
    )
    _write_user_day(root, "2024-01-01", tx, labels)
    run = _bronze_from_files(resources, root, "2024-01-01")
    assert not run.success
    check = {e.check_name: e for e in run.get_asset_check_evaluations()}[
        "transactions_meet_expectations"
    ]
    assert check.passed is False
    assert check.metadata["unexpected_count:amount"].value == 2
    assert "amount" in check.description and "2 unexpected" in check.description
    data = local_home / ".data" / "fraud"
    assert not (data / "transactions" / "2024-01-01.parquet").exists()
    assert not (data / "card_features").exists()


def test_unlabelled_transactions_fail_with_a_description_that_says_so(
    resources: dict, local_home: Path
) -> None:
    root = local_home / "incoming"
    tx, labels = _good_day("2024-01-01")
    _write_user_day(root, "2024-01-01", tx, labels.tail(labels.height - 3))
    run = _bronze_from_files(resources, root, "2024-01-01")
    assert not run.success
    check = {e.check_name: e for e in run.get_asset_check_evaluations()}[
        "labels_cover_transactions"
    ]
    assert check.passed is False
    assert check.description == (
        "labels_cover_transactions: 1 of 3 failed on 40 rows; "
        "transactions_without_a_label(tx_id): 3 unexpected"
    )
    assert check.metadata["unexpected_count:tx_id"].value == 3
    data = local_home / ".data" / "fraud"
    assert not (data / "labels" / "2024-01-01.parquet").exists()
    assert not (data / "card_features").exists()


def test_a_payment_labelled_twice_fails_the_coverage_check(
    resources: dict, local_home: Path
) -> None:
    root = local_home / "incoming"
    tx, labels = _good_day("2024-01-01")
    _write_user_day(root, "2024-01-01", tx, pl.concat([labels, labels.head(2)]))
    run = _bronze_from_files(resources, root, "2024-01-01")
    assert not run.success
    check = {e.check_name: e for e in run.get_asset_check_evaluations()}[
        "labels_cover_transactions"
    ]
    assert check.passed is False
    assert "labels_repeated_for_one_transaction(tx_id): 2 unexpected" in check.description
    assert not (local_home / ".data" / "fraud" / "labels" / "2024-01-01.parquet").exists()
