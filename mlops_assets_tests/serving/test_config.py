"""The API's settings from the environment: defaults, overrides, and refusals that name the
variable to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_assets.core.profiles import ProfileError
from mlops_assets.serving.config import ENV_VARS, ServingConfig


def test_defaults_put_the_request_log_under_the_home(tmp_path: Path) -> None:
    config = ServingConfig.from_env(str(tmp_path), {})

    assert config == ServingConfig(
        host="127.0.0.1",
        port=8000,
        use_cases=(),
        poll_s=10.0,
        log_dir=str(tmp_path / ".serving" / "request-log"),
        ship_interval_s=5.0,
        segment_max_age_s=60.0,
        max_body_bytes=64 * 1024,
        unknown_entities="reject",
    )


def test_blank_variables_fall_back_to_the_defaults(tmp_path: Path) -> None:
    blank = dict.fromkeys(ENV_VARS.values(), "  ")

    assert ServingConfig.from_env(str(tmp_path), blank) == ServingConfig.from_env(str(tmp_path), {})


def test_every_variable_overrides_its_setting(tmp_path: Path) -> None:
    environ = {
        "MLOPS_SERVING_HOST": "0.0.0.0",
        "MLOPS_SERVING_PORT": " 9001 ",
        "MLOPS_SERVING_USE_CASES": "fraud, housing ,,",
        "MLOPS_SERVING_POLL_S": "0.5",
        "MLOPS_SERVING_LOG_DIR": "/var/lib/wal",
        "MLOPS_SERVING_LOG_SHIP_S": "2",
        "MLOPS_SERVING_LOG_SEGMENT_S": "30",
        "MLOPS_SERVING_MAX_BODY_BYTES": "1024",
        "MLOPS_SERVING_UNKNOWN_ENTITIES": "no_history",
    }

    config = ServingConfig.from_env(str(tmp_path), environ)

    assert config == ServingConfig(
        host="0.0.0.0",
        port=9001,
        use_cases=("fraud", "housing"),
        poll_s=0.5,
        log_dir="/var/lib/wal",
        ship_interval_s=2.0,
        segment_max_age_s=30.0,
        max_body_bytes=1024,
        unknown_entities="no_history",
    )
    assert isinstance(config.port, int)
    assert isinstance(config.max_body_bytes, int)


def test_the_process_environment_is_read_when_none_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_SERVING_PORT", "8123")
    monkeypatch.delenv("MLOPS_SERVING_LOG_DIR", raising=False)

    config = ServingConfig.from_env(str(tmp_path))

    assert config.port == 8123
    assert config.log_dir == str(tmp_path / ".serving" / "request-log")


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("MLOPS_SERVING_PORT", "eighty", "MLOPS_SERVING_PORT='eighty' is not a number"),
        ("MLOPS_SERVING_PORT", "80.5", "MLOPS_SERVING_PORT='80.5' is not a number"),
        ("MLOPS_SERVING_PORT", "0", "MLOPS_SERVING_PORT='0' must be at least 1"),
        ("MLOPS_SERVING_POLL_S", "-1", "MLOPS_SERVING_POLL_S='-1' must be at least 0.05"),
        ("MLOPS_SERVING_POLL_S", "nan", "MLOPS_SERVING_POLL_S='nan' is not a finite number"),
        ("MLOPS_SERVING_POLL_S", "inf", "MLOPS_SERVING_POLL_S='inf' is not a finite number"),
        ("MLOPS_SERVING_LOG_SHIP_S", "0", "MLOPS_SERVING_LOG_SHIP_S='0' must be at least 0.05"),
        ("MLOPS_SERVING_MAX_BODY_BYTES", "100", "MLOPS_SERVING_MAX_BODY_BYTES='100' must be"),
        (
            "MLOPS_SERVING_UNKNOWN_ENTITIES",
            "zero",
            "MLOPS_SERVING_UNKNOWN_ENTITIES='zero': use one of ['reject', 'no_history']",
        ),
    ],
)
def test_a_malformed_value_is_refused_naming_its_variable(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    with pytest.raises(ProfileError) as raised:
        ServingConfig.from_env(str(tmp_path), {variable: value})

    assert says in str(raised.value)
