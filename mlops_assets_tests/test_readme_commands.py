"""Every command in the README's code blocks, executed as a user types it, in the README's order,
on a fresh local deployment whose `mlops.yaml` holds tiny settings (so the commands run as
quoted, without the per-run JSON a user would have to copy).

`eval "$(.venv/bin/mlops env)"` is honoured: the variables `mlops env` prints are those every
later command runs with. Files a command names (`my_load`, `fixed.data`) are made first, in the
working directory. Commands that serve until stopped are started and stopped by their own tests
(named in `SERVERS`), and every other command of a code block must be run here: a command added to
the README without being run fails this test.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from mlops_assets_tests.fixtures.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent
CLEVELAND = REPO_ROOT / "mlops_assets_tests" / "heart" / "data" / "processed.cleveland.data"

# Long-running commands, with the test that starts them, checks they answer and stops them.
SERVERS = {
    "mlops dev": "test_cli_signals.py, test_publishing_ui.py, test_ui_backfills.py",
    "mlops dev -p 3001 -h 0.0.0.0": "test_cli_signals.py and the UI tests (`mlops dev -p <port>`)",
    "mlops serve": "test_cli_signals.py",
    "mlops serve --host 0.0.0.0 --port 8080": "test_cli_signals.py (same command, other port)",
    "mlops stack": "test_cli_signals.py, test_native_stack.py",
    "mlops demo": "test_definitions.py::test_demo_materializes_every_use_case_from_the_cli",
    "dagster-daemon run -w workspace.yaml": "test_publishing_ui.py (the daemon of mlops dev)",
}
# Commands that need a registry history the README's tiny deployment does not have (a rollback
# needs two champions in a row), run exactly as quoted by the test named.
RUN_ELSEWHERE = {
    # The README deployment runs no API, so its request log is empty.
    "mlops lineage request req-42": (
        "fraud/test_lineage_rebuild.py::"
        "test_lineage_traces_to_bronze_runs_the_version_rebuilds_identical_and_a_changed_day_is_refused"
    ),
    "mlops rollback fraud --reason 'v2 flags refunds as fraud'": (
        "test_cli_rollout.py::test_mlops_rollback_moves_the_champion_back_and_says_so"
    ),
}
# What a command needs that the README states in prose around it, not as a command.
PREREQUISITES = {
    # "athletes/features,athletes/models --partition v2" reads the clean athletes.
    "athletes/features,athletes/models": [
        "dagster asset materialize -m mlops_assets.definitions --select athletes/raw,athletes/clean"
    ],
}

# The deployment's settings: small data everywhere (the README's commands override some).
TINY = {
    "bronze": {
        "config": {
            "n_cards": 150,
            "n_merchants": 20,
            "tx_per_day": 120,
            "fraud_rate": 0.1,
            "max_chargeback_days": 2,
        }
    },
    "fraud__training_set": {"config": {"window_days": 6, "maturity_days": 2}},
    "fraud__model": {"config": {"kinds": ["logreg"]}},
    "demand__raw": {"config": {"respondents": ["CISO"]}},
    "demand__cv_results": {"config": {"n_windows": 1, "input_hours": 336}},
    "housing__raw": {"config": {"n_sales": 1200}},
    "housing__model": {"config": {"max_estimators": 20}},
    "heart__models": {"config": {"n_folds": 3}},
    "athletes__raw": {"config": {"n_athletes": 300}},
}


def readme_commands() -> list[str]:
    """The command lines of the README's bash code blocks, in order: continuation lines
    joined, comments dropped, `eval "$(...)"` kept as it is."""
    commands = []
    for language, body in re.findall(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", README, re.M | re.S):
        if language not in ("bash", "sh", ""):
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            # `MLOPS_PROFILE=stack mlops serve`: the assignments are the environment, not the
            # command.
            tokens = [t for t in line.split() if not re.fullmatch(r"[A-Z_]+=\S*", t)]
            first = tokens[0] if tokens else ""
            if first != "eval" and _program(first) not in ("dagster", "mlops", "dagster-daemon"):
                continue
            words = shlex.split(" ".join(tokens), comments=True)
            if words[0] == "eval":
                commands.append(f"eval {words[1]}")
            else:
                commands.append(shlex.join([_program(words[0]), *words[1:]]))
    return commands


def _program(word: str) -> str:
    return word.removeprefix(".venv/bin/")


def _demand_files(folder: Path, first: str, last: str) -> None:
    """One CSV per UTC day of CISO's hourly demand, with its UTC offset, as README describes."""
    folder.mkdir()
    day = date.fromisoformat(first)
    rng = np.random.default_rng(0)
    while day <= date.fromisoformat(last):
        hours = np.arange(24)
        values = 25_000 + 5_000 * np.sin((hours - 6) / 24 * 2 * np.pi) + rng.normal(0, 300, 24)
        pl.DataFrame(
            {
                "respondent": ["CISO"] * 24,
                "period": [f"{day.isoformat()}T{h:02d}:00Z" for h in hours],
                "value": [f"{v:.0f}" for v in values],
            }
        ).write_csv(folder / f"{day.isoformat()}.csv")
        day += timedelta(days=1)


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    words[0] = str(BIN / _program(words[0]))
    return subprocess.run(
        words, env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.timeout(2400)
def test_every_readme_command_runs_as_quoted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "workspace.yaml", home / "workspace.yaml")
    (home / "mlops.yaml").write_text(yaml.safe_dump({"ops": TINY}))
    _demand_files(home / "my_load", "2024-05-01", "2024-06-25")
    shutil.copy(CLEVELAND, home / "fixed.data")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_", "AWS_"))
    }
    env.update(
        MLOPS_HOME=str(home),
        MLOPS_FEAST_REPO=str(REPO_ROOT / "feature_repo"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )

    commands = readme_commands()
    assert len(commands) >= 20, commands
    ran, failures = [], []
    for command in commands:
        # A command quoted twice (the fraud range of a use case's section and of the backfills
        # section) was run already, with the same result: once is enough.
        if command in SERVERS or command in RUN_ELSEWHERE or command in ran:
            continue
        if command.startswith("eval "):
            # eval "$(.venv/bin/mlops env)": the exports become the environment.
            inner = re.fullmatch(r"eval \$\((.*)\)", command)
            assert inner, command
            proc = _run(inner.group(1), env, home)
            assert proc.returncode == 0, proc.stderr
            exports = re.findall(r"^export (\w+)=(.*)$", proc.stdout, re.M)
            env.update({name: shlex.split(value)[0] for name, value in exports})
            assert env["DAGSTER_HOME"].startswith(str(home)), env["DAGSTER_HOME"]
            continue
        for needed, setup in PREREQUISITES.items():
            if needed in command:
                for step in setup:
                    proc = _run(step, env, home)
                    assert proc.returncode == 0, proc.stderr[-3000:]
        proc = _run(command, env, home)
        ran.append(command)
        if proc.returncode != 0 or "RUN_FAILURE" in proc.stderr:
            failures.append(f"$ {command}\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    assert not failures, "\n\n".join(failures)

    # The commands did what they say, on the deployment's settings.
    data = home / ".data"
    january = pl.read_parquet(data / "fraud" / "transactions" / "2024-01-31.parquet")
    assert january.height == TINY["bronze"]["config"]["tx_per_day"]
    assert (data / "fraud" / "scores" / "2024-01-31.parquet").exists()
    assert (data / "fraud" / "transactions" / "2024-03-01.parquet").exists()
    assert not (data / "fraud" / "labels" / "2024-03-01.parquet").exists()
    assert (data / "fraud" / "card_features" / "2026-11-22.parquet").exists()
    forecasts = pl.read_parquet(data / "demand" / "forecasts" / "2024-06-25.parquet")
    assert forecasts.height == 48  # the command's horizon, one respondent
    assert (data / "athletes" / "models" / "v2.parquet").exists()
    assert len(ran) >= 20


def test_commands_run_elsewhere_are_quoted_and_run_as_written() -> None:
    quoted = set(readme_commands())
    for command, where in RUN_ELSEWHERE.items():
        assert command in quoted, f"{command!r} is no longer in the README: drop it here"
        path, _, name = where.partition("::")
        source = (REPO_ROOT / "mlops_assets_tests" / path).read_text()
        words = shlex.split(command)[1:]
        call = ", ".join(f'"{w}"' for w in words)
        assert f"def {name}(" in source and call in source, (command, where)
