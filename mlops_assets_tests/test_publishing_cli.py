"""Write, audit, publish through the client users drive it with: `dagster asset materialize`,
one process per run, on the local profile. A rejected file never replaces the published data,
the quarantine holds it, a later run refuses to build on it, and two runs writing one day at once
leave it whole (transactions and labels of the same run)."""

import hashlib
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlops_assets_tests.fixtures.paths import REPO_ROOT

CLEVELAND = REPO_ROOT / "mlops_assets_tests" / "heart" / "data" / "processed.cleveland.data"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
# The first day of the partitions: its 30-day history window holds no other day.
DAY = "2024-01-01"
SMALL = {"n_cards": 400, "n_merchants": 60, "tx_per_day": 300}


class Cli:
    """``dagster asset materialize`` of the code location, in its own process, as a user runs it."""

    def __init__(self, home: Path) -> None:
        dagster_home = home / ".dagster"
        dagster_home.mkdir(exist_ok=True)
        (dagster_home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
        self.env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}

    def command(self, select: str, config: dict | None, partition: str | None) -> list[str]:
        args = ["--select", select, "--config-json", json.dumps({**IN_PROCESS, **(config or {})})]
        if partition:
            args += ["--partition", partition]
        module = ["-m", "mlops_assets.definitions"]
        return [sys.executable, "-m", "dagster", "asset", "materialize", *module, *args]

    def __call__(self, select: str, config: dict | None = None, partition: str | None = None):
        return subprocess.run(
            self.command(select, config, partition),
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def create_instance(self) -> None:
        """Create the instance's SQLite storage now: two processes creating a fresh one at once
        race on its tables ("table secondary_indexes already exists"), a Dagster limit of SQLite
        storage that a deployment meets once, at its first run."""
        code = "import dagster as dg; dg.DagsterInstance.get().get_runs(limit=1)"
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True, timeout=120)

    def start(self, select: str, config: dict | None = None, partition: str | None = None):
        return subprocess.Popen(
            self.command(select, config, partition),
            env=self.env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli(local_home: Path) -> Cli:
    return Cli(local_home)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _uci(path: str) -> dict:
    return {"ops": {"heart__raw": {"config": {"source": "uci", "path": path}}}}


def test_a_rejected_patients_file_is_quarantined_and_later_runs_refuse_it(
    cli, local_home: Path, tmp_path: Path
) -> None:
    good = cli("heart/raw", _uci(str(CLEVELAND)))
    assert good.returncode == 0, good.stderr[-3000:]
    published = local_home / ".data" / "heart" / "raw.parquet"
    before = _sha(published)

    # A 300-year-old patient: patients_meet_expectations fails.
    lines = CLEVELAND.read_text().splitlines()
    lines[0] = ",".join(["300.0", *lines[0].split(",")[1:]])
    bad_file = tmp_path / "bad.data"
    bad_file.write_text("\n".join(lines) + "\n")
    bad = cli("heart/raw", _uci(str(bad_file)))
    assert bad.returncode != 0
    assert "patients_meet_expectations" in bad.stdout + bad.stderr
    assert _sha(published) == before
    [quarantined] = (local_home / ".data" / "_quarantine" / "heart" / "raw").rglob("*.parquet")
    assert pq.read_table(quarantined).column("age").to_pylist()[0] == 300.0

    # A later run, by itself, refuses to train on the rejected table and says where it is.
    later = cli("heart/features,heart/models")
    assert later.returncode != 0
    output = later.stdout + later.stderr
    assert "heart/raw: its latest version was rejected by its blocking checks" in output
    assert str(quarantined) in output
    assert not (local_home / ".data" / "heart" / "features.parquet").exists()

    # The fixed file is published and the next run builds on it.
    assert cli("heart/raw", _uci(str(CLEVELAND))).returncode == 0
    assert _sha(published) == before
    built = cli("heart/features")
    assert built.returncode == 0, built.stderr[-3000:]
    assert pq.read_table(local_home / ".data" / "heart" / "features.parquet").num_rows == 303


def _fraud_files(root: Path, seed: int, negative: int = 0) -> None:
    """A day of the generator written as the user's files, with ``negative`` amounts below 0."""
    from mlops_assets.fraud import sources

    transactions, labels = sources.generate_day(
        date.fromisoformat(DAY), sources.GeneratorConfig(**SMALL, seed=seed)
    )
    frame = pl.from_arrow(transactions)
    if negative:
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) < negative)
            .then(-50.0)
            .otherwise(pl.col("amount"))
            .alias("amount")
        )
    for kind, table in (("transactions", frame.to_arrow()), ("labels", labels)):
        (root / kind).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / kind / f"{DAY}.parquet")


def _bronze(files_root: Path) -> dict:
    return {"ops": {"bronze": {"config": {"source": "files", "files_root": str(files_root)}}}}


def test_the_issue_example_rejected_fraud_day_never_feeds_the_features(
    cli, local_home: Path, tmp_path: Path
) -> None:
    good_files, bad_files = tmp_path / "good", tmp_path / "bad"
    _fraud_files(good_files, seed=1)
    _fraud_files(bad_files, seed=1, negative=2)
    selection = "fraud/transactions,fraud/labels,fraud/card_features,fraud/merchant_features"
    first = cli(selection, _bronze(good_files), partition=DAY)
    assert first.returncode == 0, first.stderr[-3000:]
    data = local_home / ".data" / "fraud"
    bronze = {kind: _sha(data / kind / f"{DAY}.parquet") for kind in ("transactions", "labels")}
    features = _sha(data / "card_features" / f"{DAY}.parquet")

    bad = cli(selection, _bronze(bad_files), partition=DAY)
    assert bad.returncode != 0
    assert "transactions_meet_expectations" in bad.stdout + bad.stderr
    assert {k: _sha(data / k / f"{DAY}.parquet") for k in bronze} == bronze
    [rejected] = (local_home / ".data" / "_quarantine" / "fraud" / "transactions").rglob(
        "*.parquet"
    )
    assert pc.sum(pc.less(pq.read_table(rejected).column("amount"), 0)).as_py() == 2

    later = cli("fraud/card_features,fraud/merchant_features", partition=DAY)
    assert later.returncode != 0
    assert (
        f"fraud/transactions: the latest version of {DAY} was rejected"
        in later.stdout + later.stderr
    )
    assert _sha(data / "card_features" / f"{DAY}.parquet") == features
    published = pl.read_parquet(data / "card_features" / f"{DAY}.parquet")
    assert published["card_amount_sum_1d"].min() >= 0


def test_two_runs_of_one_fraud_day_at_once_leave_it_whole(
    cli, local_home: Path, tmp_path: Path
) -> None:
    roots = [tmp_path / "a", tmp_path / "b"]
    for seed, root in enumerate(roots, start=1):
        _fraud_files(root, seed=seed)
    cli.create_instance()
    runs = [cli.start("fraud/transactions,fraud/labels", _bronze(root), DAY) for root in roots]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
    data = local_home / ".data" / "fraud"
    transactions = pl.read_parquet(data / "transactions" / f"{DAY}.parquet")
    labels = pl.read_parquet(data / "labels" / f"{DAY}.parquet")
    # Both files come from one of the two runs: every label belongs to a payment of the day and
    # none became known before its payment.
    # Both files come from the same run: the published pair equals one source's pair.
    matches = [
        root.name
        for root in roots
        if transactions.equals(pl.read_parquet(root / "transactions" / f"{DAY}.parquet"))
        and labels.equals(pl.read_parquet(root / "labels" / f"{DAY}.parquet"))
    ]
    assert len(matches) == 1, "the day mixes the transactions and labels of two runs"
    joined = transactions.join(labels, on="tx_id", how="inner")
    assert (joined["label_available_ts"] >= joined["event_ts"]).all()
    assert not any((local_home / ".data" / "_staging").rglob("*.parquet"))


# Loaded by the child process through PYTHONPATH: stalls the write of one temporary file after a
# few bytes, so the test can kill -9 the run at exactly that moment.
_STALL = """
import os, sys, time

_suffix = os.environ.get("MLOPS_TEST_STALL_WRITE")
if _suffix:
    import pyarrow.parquet as pq

    _write_table = pq.write_table

    def write_table(table, where, *args, **kwargs):
        if str(where).endswith(_suffix) and "/_tmp/" in str(where):
            with open(where, "wb") as handle:
                handle.write(b"PAR1 half a file")
            print(f"STALLED {where}", file=sys.stderr, flush=True)
            time.sleep(600)
        return _write_table(table, where, *args, **kwargs)

    pq.write_table = write_table
"""


def test_a_run_killed_while_writing_a_feature_day_leaves_no_file_a_reader_takes_for_data(
    cli, local_home: Path, tmp_path: Path
) -> None:
    import pyarrow.dataset as ds

    bronze = cli("fraud/transactions,fraud/labels", {"ops": {"bronze": {"config": SMALL}}}, DAY)
    assert bronze.returncode == 0, bronze.stderr[-3000:]
    (tmp_path / "stall").mkdir()
    (tmp_path / "stall" / "sitecustomize.py").write_text(_STALL)
    env = {
        **cli.env,
        "PYTHONPATH": str(tmp_path / "stall"),
        "MLOPS_TEST_STALL_WRITE": f"-{DAY}.parquet",
    }
    run = subprocess.Popen(
        cli.command("fraud/card_features", None, DAY),
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in run.stderr:
        if line.startswith("STALLED "):
            break
    else:
        pytest.fail("the run ended before it wrote the feature day")
    run.kill()  # SIGKILL: no handler, no clean-up
    run.wait(timeout=60)

    data = local_home / ".data"
    folder = data / "fraud" / "card_features"
    # The half-written file is under _tmp/, named after the dead process; the asset's folder
    # (which Feast's file source reads whole) holds nothing a reader would choke on.
    [leftover] = (data / "_tmp").iterdir()
    assert leftover.name.startswith(f"{run.pid}-")
    assert not folder.exists() or not any(folder.iterdir())

    again = cli("fraud/card_features", None, DAY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in folder.iterdir()] == [f"{DAY}.parquet"]
    assert ds.dataset(str(folder), format="parquet").to_table().num_rows == SMALL["tx_per_day"]
    # The next run swept the dead writer's file.
    assert not list((data / "_tmp").iterdir())
