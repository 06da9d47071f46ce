"""Write, audit, publish as the Dagster UI shows it: runs launched through the webserver's GraphQL
exactly as the UI's Materialize button sends them, queued and started by a running daemon
(`mlops dev`), on the local profile. A rejected patients file shows its failed check and
`published: false` with its quarantine path; the published table is unchanged; a later run
launched from the UI fails saying which version was rejected and where it is."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlops_assets_tests.conftest import REPO_ROOT
from mlops_assets_tests.fixtures.services import free_port

CLEVELAND = REPO_ROOT / "mlops_assets_tests" / "heart" / "data" / "processed.cleveland.data"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

# The mutation the UI sends for "Materialize" (with a launchpad config), trimmed to the fields
# the test reads.
LAUNCH = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""
# What the UI reads of the selected assets before it launches: their checks in the job, which it
# sends along (`getAssetCheckHandleInputs`), since checks audited in the asset's step cannot be
# left out of it.
CHECKS = """
query Checks($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetChecksOrError { ... on AssetChecks { checks { name jobNames } } }
  }
}
"""
RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      status
      eventConnection(afterCursor: null) {
        events {
          __typename
          ... on ExecutionStepFailureEvent { error { message } }
        }
      }
    }
  }
}
"""
# The asset page: its latest materialization's metadata, and its checks' latest executions.
ASSET = """
query Asset($key: AssetKeyInput!, $check: String!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          label
          ... on BoolMetadataEntry { boolValue }
          ... on TextMetadataEntry { text }
        }
      }
    }
  }
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 1) {
    runId
    status
  }
}
"""


class Ui:
    """A running `mlops dev` (webserver and daemon) and its GraphQL endpoint."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, query: str, **variables) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def materialize(self, keys: list[list[str]], run_config: dict | None = None) -> dict:
        """Launch a run of ``keys`` as the UI does, and wait until it is over."""
        nodes = self.query(CHECKS, keys=[{"path": k} for k in keys])["assetNodes"]
        checks = [
            {"assetKey": {"path": node["assetKey"]["path"]}, "name": check["name"]}
            for node in nodes
            for check in node["assetChecksOrError"]["checks"]
            if "__ASSET_JOB" in check["jobNames"]
        ]
        params = {
            "selector": {
                "repositoryLocationName": "mlops_assets",
                "repositoryName": "__repository__",
                "pipelineName": "__ASSET_JOB",
                "assetSelection": [{"path": k} for k in keys],
                "assetCheckSelection": checks,
            },
            "runConfigData": run_config or {},
            "mode": "default",
            "executionMetadata": {"tags": []},
        }
        launched = self.query(LAUNCH, executionParams=params)["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            run = self.query(RUN, runId=run_id)["runOrError"]
            if run["status"] in TERMINAL:
                return {"run_id": run_id, **run}
            time.sleep(2)
        pytest.fail(f"run {run_id} did not finish: {run['status']}")

    def asset(self, key: list[str], check: str) -> tuple[dict, dict]:
        data = self.query(ASSET, key={"path": key}, check=check)
        [latest] = data["assetOrError"]["assetMaterializations"]
        entries = {e["label"]: e.get("boolValue", e.get("text")) for e in latest["metadataEntries"]}
        [execution] = data["assetCheckExecutions"]
        return {"run_id": latest["runId"], **entries}, execution


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def ui(local_home: Path):
    port = free_port()
    env = {**os.environ}
    env.pop("DAGSTER_HOME", None)  # `mlops dev` puts the instance under MLOPS_HOME/.dagster
    log = open(local_home / "dev.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", "dev", "-p", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _answers(url):
            assert proc.poll() is None, (local_home / "dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the webserver did not answer within 180 s"
            time.sleep(1)
        yield Ui(url)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


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
