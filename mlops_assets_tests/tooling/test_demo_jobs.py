"""`mlops demo --jobs N`: use cases at once, each one's steps in order, output whole per step."""

from __future__ import annotations

import sys

import pytest

from mlops_assets.use_cases import DemoStep

# Stand-ins for `dagster asset materialize` and the sensor tick: print the arguments, or fail.
PRINT_ARGS = [sys.executable, "-c", "import sys; print('ran', *sys.argv[1:])"]
FAIL = [sys.executable, "-c", "import sys; print('tick failed'); sys.exit(3)"]


@pytest.fixture
def demo_cli(monkeypatch, tmp_path):
    from mlops_assets.tooling import cli

    created: list = []
    monkeypatch.setattr(cli, "DAGSTER", PRINT_ARGS)
    monkeypatch.setattr(cli, "_demo_settings", lambda settings: None)
    monkeypatch.setattr(cli, "command_env", lambda settings: {"DAGSTER_HOME": str(tmp_path)})
    monkeypatch.setattr(cli, "_print_demo_summary", lambda settings, home: print("summary"))
    monkeypatch.setattr(cli, "_create_instance", created.append)
    return cli, created


def _steps(monkeypatch, steps):
    from mlops_assets import use_cases

    monkeypatch.setattr(use_cases, "demo_steps", lambda: steps)


def test_two_use_cases_run_at_once_each_in_order_with_each_steps_output_whole(
    demo_cli, monkeypatch, capsys, tmp_path
) -> None:
    cli, created = demo_cli
    _steps(
        monkeypatch,
        [
            ("a", DemoStep(select="a/raw")),
            ("a", DemoStep(select="a/model", partition="2024-01-02")),
            ("b", DemoStep(select="b/raw")),
        ],
    )
    assert cli.demo(settings=None, jobs=2) == 0
    # The instance is created once, before the use cases start.
    assert [str(p) for p in created] == [str(tmp_path)]
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "summary"
    assert lines.index("[a] a/raw") < lines.index("[a] a/model")
    for select in ("a/raw", "a/model", "b/raw"):
        # The command as a user would type it, then its own output right below it.
        [shown] = [i for i, line in enumerate(lines) if line.startswith("+ ") and select in line]
        assert lines[shown + 1].startswith("ran asset materialize") and select in lines[shown + 1]


def test_a_failed_use_case_fails_the_demo_with_its_exit_code(demo_cli, monkeypatch, capsys) -> None:
    cli, _ = demo_cli
    monkeypatch.setattr(cli, "SENSOR_TICK", FAIL)
    _steps(monkeypatch, [("a", DemoStep(sensor="a_retrain")), ("b", DemoStep(select="b/raw"))])
    assert cli.demo(settings=None, jobs=2) == 3
    captured = capsys.readouterr()
    assert "tick failed" in captured.out and "summary" not in captured.out
    assert "[a] failed with exit code 3" in captured.err


def test_demo_jobs_must_be_positive(capsys) -> None:
    from mlops_assets.tooling import cli

    with pytest.raises(SystemExit):
        cli.main(["demo", "--jobs", "0"])
    assert "--jobs must be at least 1" in capsys.readouterr().err
