"""`mlops rollback` and `mlops rollout` against the local profile's registry, as a user runs them:
`.venv/bin/mlops` in a process of its own, in a temp home holding fraud's model. Command lines
that are wrong are checked in this process (they never reach the registry)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.core.evaluation import PromotionRule
from mlops_assets.core.tracking import CANDIDATE, MlflowTracking
from mlops_assets.tooling.cli import main
from mlops_assets.use_cases import USE_CASES
from mlops_assets_tests.core.test_rollback import (
    create_empty_registry,
    local_registry,
    register_version,
)
from mlops_assets_tests.fixtures.paths import REPO_ROOT

pytestmark = pytest.mark.timeout(300)

MLOPS = Path(sys.executable).with_name("mlops")
FRAUD = "fraud_classifier"
RULE = PromotionRule(metric="pr_auc", higher_is_better=True, min_improvement=0.005)
AT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_empty_registry(tmp_path_factory.mktemp("empty_registry"))


@pytest.fixture
def fraud_registry(
    local_home: Path, empty_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> MlflowTracking:
    """The local profile's registry with fraud's model: v1 then v2 promoted by the gate (v2
    serves), v3 the candidate."""
    tracking = local_registry(local_home, empty_registry, monkeypatch)
    for pr_auc in (0.80, 0.85):
        version = register_version(tracking, pr_auc, FRAUD)
        assert tracking.promote(FRAUD, version, RULE).promote
    tracking.set_alias(FRAUD, CANDIDATE, register_version(tracking, 0.90, FRAUD))
    return tracking


def mlops(*args: str) -> subprocess.CompletedProcess:
    """``mlops args...`` in a process of its own, with this test's environment (its home)."""
    return subprocess.run(
        [str(MLOPS), *args], capture_output=True, text=True, timeout=180, cwd=REPO_ROOT
    )


def _champion(tracking: MlflowTracking) -> str:
    return str(tracking.champion(FRAUD).version)


def test_mlops_rollback_moves_the_champion_back_and_says_so(
    fraud_registry: MlflowTracking, capsys: pytest.CaptureFixture[str]
) -> None:
    done = mlops("rollback", "fraud", "--reason", "v2 flags refunds as fraud")
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == "fraud_classifier: champion v2 -> v1 (rollback: v2 flags refunds as fraud)\n"
    )
    assert _champion(fraud_registry) == "1"
    last = fraud_registry.champion_history(FRAUD)[-1]
    assert (last["previous"], last["version"], last["kind"]) == ("2", "1", "rollback")
    assert last["reason"] == "v2 flags refunds as fraud"

    # v1 was the first champion: refused, in one line that says what to do; nothing moves.
    assert main(["rollback", "fraud", "--reason", "v1 too"]) == 1
    assert capsys.readouterr() == (
        "",
        "mlops rollback: v1 was the first champion of model 'fraud_classifier' (since "
        f"{fraud_registry.champion_history(FRAUD)[0]['at']}): there is no earlier champion to "
        "roll back to; pass --to VERSION\n",
    )
    missing = mlops("rollback", "fraud", "--to", "9", "--reason", "the good one")
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        "mlops rollback: the rollback target v9 of model 'fraud_classifier' does not exist "
        "(deleted, or never registered); its versions are: v3, v2, v1"
    )
    assert _champion(fraud_registry) == "1"

    forward = mlops("rollback", "fraud", "--to", "v2", "--reason", "the refunds were a test feed")
    assert forward.returncode == 0, forward.stderr
    assert forward.stdout == (
        "fraud_classifier: champion v1 -> v2 (rollback: the refunds were a test feed)\n"
    )
    assert _champion(fraud_registry) == "2"


def test_mlops_rollout_sets_the_mode_and_shows_it_with_the_champions_history(
    fraud_registry: MlflowTracking,
) -> None:
    done = mlops("rollout", "fraud", "canary", "--share", "0.25", "--reason", "first look at v3")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "fraud_classifier: rollout canary, share 0.25: 25% of entities are answered by the "
        "candidate\n"
    )
    now = fraud_registry.get_rollout(FRAUD)
    assert (now.mode, now.share, now.reason) == ("canary", 0.25, "first look at v3")

    shown = mlops("rollout", "fraud")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == (
        "fraud_classifier: rollout canary, share 0.25: 25% of entities are answered by the "
        "candidate"
    )
    assert lines[1] == f"  set {now.updated_at}: first look at v3"
    assert lines[2:5] == [
        "  champion:  v2",
        "  candidate: v3",
        "  champion history (last 2 of 2, oldest first):",
    ]
    history = fraud_registry.champion_history(FRAUD)
    assert lines[5] == f"    {history[0]['at']}  promotion  v1 (first)      {history[0]['reason']}"
    assert lines[6] == f"    {history[1]['at']}  promotion  v1 -> v2        {history[1]['reason']}"
    assert len(lines) == 7

    # A mode that does not exist: argparse's message, exit 2, the setting unchanged.
    bad = mlops("rollout", "fraud", "blue")
    assert bad.returncode == 2
    assert "argument mode: invalid choice: 'blue' (choose from 'off', 'shadow', 'canary')" in (
        bad.stderr
    )
    assert fraud_registry.get_rollout(FRAUD) == now


def test_mlops_rollout_of_a_model_with_no_candidate_says_the_setting_waits_for_one(
    local_home: Path, empty_registry: Path, monkeypatch, capsys
) -> None:
    tracking = local_registry(local_home, empty_registry, monkeypatch)
    register_version(tracking, 0.8, "heart_disease")

    assert main(["rollout", "heart", "shadow"]) == 0
    assert capsys.readouterr().out == (
        "heart_disease: rollout shadow, share 1: the champion answers; 100% of requests are also "
        "scored by the candidate\n"
        "  note: heart_disease has no candidate yet: this applies once one is registered\n"
    )
    assert tracking.get_rollout("heart_disease").mode == "shadow"
    assert main(["rollout", "heart", "off", "--reason", "v1 is enough"]) == 0
    assert capsys.readouterr().out == "heart_disease: rollout off: only the champion answers\n"
    off = tracking.get_rollout("heart_disease")
    assert (off.mode, off.share, off.reason, off.active) == ("off", 0.0, "v1 is enough", False)


def test_registry_refusals_exit_1_with_one_line(
    local_home: Path, empty_registry: Path, monkeypatch, capsys
) -> None:
    local_registry(local_home, empty_registry, monkeypatch)
    assert main(["rollout", "housing"]) == 1
    assert capsys.readouterr().err == (
        f"mlops rollout: model 'housing_price' is not registered in "
        f"sqlite:///{local_home}/.mlflow/mlflow.db\n"
    )
    assert main(["rollback", "housing", "--reason", "bad"]) == 1
    assert "model 'housing_price' is not registered" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["rollout", "fraud", "canary", "--share", "1.5"],
            "mlops rollout: rollout share 1.5 must be between 0 and 1",
        ),
        (
            ["rollout", "fraud", "shadow", "--share", "nan"],
            "mlops rollout: rollout share nan is not a number",
        ),
        (
            ["rollout", "fraud", "off", "--share", "0.5"],
            "mlops rollout: --share means nothing with off: only the champion answers",
        ),
        (
            ["rollout", "fraud", "--share", "0.5"],
            "mlops rollout: --share and --reason go with a mode to set: mlops rollout fraud "
            "{off,shadow,canary} [--share F] [--reason TEXT]",
        ),
        (
            ["rollout", "demand", "shadow"],
            "mlops rollout: use case 'demand' registers one model per respondent "
            "(demand_forecaster_{key}): name the one to act on with --model, e.g. "
            "--model demand_forecaster_<respondent>",
        ),
        (
            ["rollout", "demand", "--model", "fraud_classifier"],
            "mlops rollout: --model 'fraud_classifier' is not a model of use case 'demand': its "
            "models are named demand_forecaster_{key}",
        ),
        (
            ["rollback", "fraud", "--model", "housing_price", "--reason", "x"],
            "mlops rollback: use case 'fraud' registers one model, 'fraud_classifier': --model "
            "'housing_price' is not it",
        ),
        (
            ["rollback", "churn", "--reason", "x"],
            f"mlops rollback: unknown use case 'churn': use cases are {', '.join(USE_CASES)}",
        ),
        (
            ["rollback", "fraud", "--reason", "  "],
            "mlops rollback: --reason must say why (it is kept in the champion history)",
        ),
        (
            ["rollback", "fraud", "--to", "latest", "--reason", "x"],
            "mlops rollback: --to: 'latest' is not a model version: versions are 1, 2, 3...",
        ),
    ],
)
def test_wrong_command_lines_exit_2_with_a_message_and_touch_nothing(
    local_home: Path, capsys, args: list[str], message: str
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message + "\n")
    assert not (local_home / ".mlflow").exists()  # the registry was never opened


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rollout", "fraud", "blue"], "argument mode: invalid choice: 'blue'"),
        (["rollout", "fraud", "canary", "--share", "half"], "argument --share: invalid float"),
        (["rollback", "fraud"], "the following arguments are required: --reason"),
    ],
)
def test_argparse_errors_exit_2(local_home: Path, capsys, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_rollback_from_the_candidate_in_canary_says_how_to_take_it_off_live_traffic(
    fraud_registry: MlflowTracking, capsys: pytest.CaptureFixture[str]
) -> None:
    # v3 promoted: it is champion and candidate; a canary is on when v3 turns out bad.
    assert fraud_registry.promote(FRAUD, "3", RULE).promote
    assert main(["rollout", "fraud", "canary", "--share", "0.2"]) == 0
    capsys.readouterr()
    assert main(["rollback", "fraud", "--reason", "v3 blocks every refund"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "fraud_classifier: champion v3 -> v2 (rollback: v3 blocks every refund)",
        "note: the candidate is v3, the version rolled back from, and the rollout is canary, "
        "share 0.2: 20% of entities are answered by the candidate; `mlops rollout fraud off` "
        "takes it off live traffic",
    ]
    assert _champion(fraud_registry) == "2"
    # With the rollout off, a rollback has nothing to add.
    assert main(["rollout", "fraud", "off"]) == 0
    assert main(["rollback", "fraud", "--to", "1", "--reason", "back to the first"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "fraud_classifier: champion v2 -> v1 (rollback: back to the first)"
    )
