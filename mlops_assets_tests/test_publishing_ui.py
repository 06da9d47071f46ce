"""Write, audit, publish as the Dagster UI shows it: runs launched through the webserver's GraphQL
exactly as the UI's Materialize button sends them, queued and started by a running daemon
(`mlops dev`), on the local profile. A rejected patients file shows its failed check and
`published: false` with its quarantine path; the published table is unchanged; a later run
launched from the UI fails saying which version was rejected and where it is."""

import hashlib
from pathlib import Path

from mlops_assets_tests.fixtures.dagster_ui import Ui
from mlops_assets_tests.fixtures.paths import REPO_ROOT

CLEVELAND = REPO_ROOT / "mlops_assets_tests" / "heart" / "data" / "processed.cleveland.data"


def _uci(path: Path) -> dict:
    return {"ops": {"heart__raw": {"config": {"source": "uci", "path": str(path)}}}}


def test_the_ui_shows_a_rejected_version_and_later_ui_runs_refuse_it(
    ui: Ui, local_home: Path, tmp_path: Path
) -> None:
    raw, check = ["heart", "raw"], "patients_meet_expectations"
    good = ui.materialize([raw], _uci(CLEVELAND))
    assert good["status"] == "SUCCESS", good
    published = local_home / ".data" / "heart" / "raw.parquet"
    before = hashlib.sha256(published.read_bytes()).hexdigest()
    metadata, execution = ui.asset(raw, check)
    assert metadata["published"] is True and metadata["data_version"] == before
    assert execution["status"] == "SUCCEEDED"

    lines = CLEVELAND.read_text().splitlines()
    lines[0] = ",".join(["300.0", *lines[0].split(",")[1:]])
    bad_file = tmp_path / "bad.data"
    bad_file.write_text("\n".join(lines) + "\n")
    bad = ui.materialize([raw], _uci(bad_file))
    assert bad["status"] == "FAILURE"

    # The asset page: the rejected version is the latest materialization, marked unpublished,
    # with its quarantine and the version readers still get; its check failed.
    metadata, execution = ui.asset(raw, check)
    assert metadata["run_id"] == bad["run_id"]
    assert metadata["published"] is False
    assert metadata["rejected_by"] == check
    assert metadata["quarantine"].endswith(f"{bad['run_id']}.parquet")
    assert Path(metadata["quarantine"]).exists()
    assert execution == {"runId": bad["run_id"], "status": "FAILED"}
    assert hashlib.sha256(published.read_bytes()).hexdigest() == before

    later = ui.materialize([["heart", "features"]])
    assert later["status"] == "FAILURE"
    messages = [
        e["error"]["message"]
        for e in later["eventConnection"]["events"]
        if e["__typename"] == "ExecutionStepFailureEvent"
    ]
    assert any(
        "heart/raw: its latest version was rejected by its blocking checks" in m
        and metadata["quarantine"] in m
        for m in messages
    ), messages
