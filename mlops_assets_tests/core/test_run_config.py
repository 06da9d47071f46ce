"""The deployment's run config (`mlops.yaml`): its values become the defaults of the assets'
config classes, a run can still override them, and a bad file stops the code location's load
with the file and the setting named."""

import os
from pathlib import Path

import dagster as dg
import pytest
import yaml
from pydantic import Field

from mlops_assets.core import run_config
from mlops_assets.core.run_config import RunConfigError, deployment_defaults
from mlops_assets_tests.fixtures.cli import validate_code_location


@pytest.fixture
def deployment_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write ``ops`` as the deployment's file; returns its path."""
    path = tmp_path / "mlops.yaml"
    monkeypatch.setenv("MLOPS_RUN_CONFIG", str(path))
    run_config._read.cache_clear()

    def write(ops: dict | str) -> Path:
        path.write_text(ops if isinstance(ops, str) else yaml.safe_dump({"ops": ops}))
        run_config._read.cache_clear()
        return path

    yield write
    run_config._read.cache_clear()


def _config_class(op: str):
    @deployment_defaults(op)
    class Source(dg.Config):
        """Where the data comes from."""

        n_cards: int = Field(default=100, gt=0, description="Cards in the population.")
        seed: int = 42

    return Source


def test_the_file_sets_the_defaults_and_a_run_still_overrides_them(deployment_file) -> None:
    deployment_file({"source": {"config": {"n_cards": 7}}})
    source = _config_class("source")
    assert source().n_cards == 7 and source().seed == 42
    assert source.__name__ == "Source" and source.__doc__ == "Where the data comes from."
    assert source.model_fields["n_cards"].description == "Cards in the population."

    @dg.asset(name="source")
    def asset(config: source) -> int:  # type: ignore[valid-type]
        return config.n_cards

    assert dg.materialize([asset]).output_for_node("source") == 7
    override = {"ops": {"source": {"config": {"n_cards": 3}}}}
    assert dg.materialize([asset], run_config=override).output_for_node("source") == 3
    # The launchpad's default (the run-config schema) is the deployment's value.
    schema = dg.Definitions(assets=[asset]).resolve_implicit_global_asset_job_def()
    fields = schema.run_config_schema.config_type.fields["ops"].config_type.fields
    assert (
        fields["source"].config_type.fields["config"].config_type.fields["n_cards"].default_value
        == 7
    )


def test_an_op_inside_a_graph_asset_is_reached_by_its_path(deployment_file) -> None:
    deployment_file({"models": {"ops": {"grid": {"config": {"n_cards": 9}}}}})

    @deployment_defaults("models", "grid")
    class Grid(dg.Config):
        n_cards: int = 1

    assert Grid().n_cards == 9
    # The graph's name alone is not its inner op.
    assert _config_class("models")().n_cards == 100


def test_without_a_file_the_code_defaults_stand(deployment_file) -> None:
    assert _config_class("source")().n_cards == 100


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"source": {"config": {"n_card": 7}}}, "has no setting n_card; its settings are"),
        ({"source": {"config": {"n_cards": 0}}}, "ops.source.config: n_cards: Input should be"),
        ({"source": {"config": {"n_cards": "many"}}}, "n_cards: Input should be a valid integer"),
        ("ops: [unclosed", "not valid YAML"),
        ("bronze: {}", "expected a mapping with one key, `ops`"),
        ({"source": {"config": ["n_cards"]}}, "ops.source must hold a `config` mapping"),
    ],
)
def test_a_bad_file_names_the_file_and_the_setting(deployment_file, ops, message: str) -> None:
    path = deployment_file(ops)
    with pytest.raises(RunConfigError) as error:
        _config_class("source")
    assert str(path) in str(error.value) and message in str(error.value)


def test_an_op_no_asset_has_stops_the_code_location(tmp_path: Path) -> None:
    """`dagster definitions validate` (what the webserver and the CLI do on load) fails naming
    the op, in a fresh process that reads the file as every Dagster process does."""
    path = tmp_path / "mlops.yaml"
    path.write_text(yaml.safe_dump({"ops": {"bronz": {"config": {"n_cards": 10}}}}))
    env = {**os.environ, "MLOPS_HOME": str(tmp_path), "MLOPS_RUN_CONFIG": str(path)}
    proc = validate_code_location(env)
    assert proc.returncode != 0
    assert f"{path} sets ops that no asset has: bronz" in proc.stdout + proc.stderr


def test_the_demo_writes_its_settings_once_and_keeps_a_deployments_own(tmp_path: Path) -> None:
    from mlops_assets.use_cases import demo_run_config

    path = tmp_path / "mlops.yaml"
    assert run_config.write_if_absent(path, demo_run_config(), "written by the demo")
    written = yaml.safe_load(path.read_text())
    assert written["ops"]["bronze"]["config"]["n_cards"] == 5_000
    assert written["ops"]["athletes__models"]["ops"]["grid_points"]["config"]["n_estimators"]
    assert path.read_text().startswith("# written by the demo\n")
    path.write_text("ops: {}\n")
    assert not run_config.write_if_absent(path, demo_run_config(), "again")
    assert path.read_text() == "ops: {}\n"
    assert not list(tmp_path.glob(".mlops.yaml.*"))  # no temporary file left
