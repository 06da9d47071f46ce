"""The Docker deployment of the stack profile: docker/compose.yaml, docker/stack.env.example and
the one project image (docker/Dockerfile).

No container runs here (CI has no Docker engine): the file is read as YAML and checked against the
project's own settings, and Compose itself validates it (`docker compose config`, or Debian's
docker-compose 1.29, which .ci/run installs when neither is there).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from mlops_assets.core.profiles import ENV_VARS, PROFILE_ENV, load_settings
from mlops_assets.serving.config import ENV_VARS as SERVING_ENV_VARS
from mlops_assets.serving.config import ServingConfig

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / "stack.env.example"
DOCKERFILE = DOCKER / "Dockerfile"

# Services built from docker/Dockerfile, and those of them that run the project's code.
PROJECT_IMAGE_SERVICES = {
    "mlflow",
    "code-location",
    "webserver",
    "daemon",
    "api",
    "worker",
    "worker-training",
}
APP_SERVICES = {"code-location", "webserver", "daemon", "api", "worker", "worker-training"}
# The Celery workers (`mlops worker`) and the queue each takes steps from.
WORKER_QUEUES = {"worker": "default", "worker-training": "training"}
ONE_SHOT_SERVICES = {"minio-init"}
# What each long-running service's health check must ask.
HEALTH_PROBES = {
    "minio": ["mc", "ready", "local"],
    "postgres": ["pg_isready"],
    "redis": ["redis-cli ping", "PONG"],
    "rabbitmq": ["rabbitmq-diagnostics", "-q", "ping"],
    "mlflow": ["http://127.0.0.1:5000/health"],
    "code-location": ["dagster", "api", "grpc-health-check", "-p", "4000"],
    "webserver": ["http://127.0.0.1:3000/server_info"],
    "daemon": ["dagster-daemon", "liveness-check"],
    "api": ["http://127.0.0.1:8000/health"],
    # An established connection to the broker's port (5672 = 0x1628): busy workers answer no ping.
    "worker": ["/proc/net/tcp", ":1628 01 "],
    "worker-training": ["/proc/net/tcp", ":1628 01 "],
}
PUBLISHED = {"webserver": 3000, "api": 8000}
# Variable names that hold credentials: their values must come from the env file.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|API_KEY|TOKEN|ROOT_USER")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@cache
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@cache
def compose() -> dict[str, Any]:
    # PyYAML resolves the anchors and `<<` merges as Compose does.
    return yaml.safe_load(compose_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


@cache
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"stack.env.example: {line!r} is not NAME=value"
            assert name not in values, f"stack.env.example sets {name} twice"
            values[name] = value
    return values


def referenced_variables() -> dict[str, set[str]]:
    """Every ``${VAR...}`` of compose.yaml, with the operators it is used with ('' for none)."""
    found: dict[str, set[str]] = {}
    for match in REFERENCE.finditer(compose_text().replace("$$", "")):
        found.setdefault(match.group(1), set()).add(match.group(2) or "")
    return found


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` with Compose's interpolation applied from ``env`` (recursively)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        present = name in env and (env[name] != "" or not op.startswith(":"))
        if present:
            return env[name]
        if op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return REFERENCE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def environment(service: str, env: dict[str, str] | None = None) -> dict[str, str]:
    raw = services()[service].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    raw = {k: "" if v is None else str(v) for k, v in raw.items()}
    return raw if env is None else interpolate(raw, env)


def healthcheck_command(service: str) -> str:
    test = services()[service].get("healthcheck", {}).get("test")
    assert test, f"{service} has no health check"
    if isinstance(test, str):
        return test
    assert test[0] in ("CMD", "CMD-SHELL"), f"{service}: health check {test!r}"
    return " ".join(test[1:])


def dockerfile_final_stage() -> list[str]:
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    instructions = [
        line.strip() for line in lines if line.strip() and not line.strip().startswith("#")
    ]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def dockerfile_env(stage: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in stage:
        if line.upper().startswith("ENV "):
            env.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line[4:]))
    return env


def all_environment_blocks() -> Iterator[tuple[str, dict[str, str]]]:
    for name in services():
        yield name, environment(name)
    for key, value in compose().items():
        if key.startswith("x-") and isinstance(value, dict) and key.endswith("env"):
            yield key, {k: str(v) for k, v in value.items()}


# -- Structure ------------------------------------------------------------------------------------


def test_every_long_running_service_has_its_health_check() -> None:
    one_shot = {name for name, svc in services().items() if svc.get("restart") == "no"}
    assert one_shot == ONE_SHOT_SERVICES
    long_running = set(services()) - one_shot
    assert long_running == set(HEALTH_PROBES)
    for name in sorted(long_running):
        svc = services()[name]
        assert svc.get("restart") in ("unless-stopped", "always"), f"{name}: restart policy"
        assert not svc["healthcheck"].get("disable"), f"{name}: health check disabled"
        command = healthcheck_command(name)
        for part in HEALTH_PROBES[name]:
            assert part in command, f"{name}: health check {command!r} does not ask {part!r}"
        for field in ("interval", "timeout", "retries", "start_period"):
            assert field in svc["healthcheck"], f"{name}: health check without {field}"


def test_only_the_ui_and_the_api_are_published() -> None:
    published: dict[str, list[tuple[int, int]]] = {}
    for name, svc in services().items():
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                published.setdefault(name, []).append((int(port["published"]), int(port["target"])))
            else:
                *_, host, container = str(port).split(":")
                published.setdefault(name, []).append((int(host), int(container.split("/")[0])))
    assert published == {name: [(port, port)] for name, port in PUBLISHED.items()}
    for name, svc in services().items():
        assert svc.get("network_mode") != "host", f"{name} shares the host's network"


def test_depends_on_targets_exist_and_wait_for_readiness() -> None:
    for name, svc in services().items():
        depends_on = svc.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for target, spec in depends_on.items():
            assert target in services(), f"{name} depends on unknown service {target!r}"
            expected = (
                "service_completed_successfully"
                if target in ONE_SHOT_SERVICES
                else "service_healthy"
            )
            assert spec.get("condition") == expected, f"{name} -> {target}: {spec}"
    # The code location checks every service of the stack when it loads (check_stack).
    assert set(services()["code-location"]["depends_on"]) >= {
        "minio-init",
        "postgres",
        "redis",
        "mlflow",
    }
    # The bucket exists before anything that writes to S3 starts.
    for name in ("mlflow", "code-location", "api"):
        assert "minio-init" in services()[name]["depends_on"]
    assert services()["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    for name in ("webserver", "daemon"):
        assert services()[name]["depends_on"]["code-location"]["condition"] == "service_healthy"


def test_project_image_services_share_one_image_and_never_run_as_root() -> None:
    stage = dockerfile_final_stage()
    users = [line.split(None, 1)[1].strip() for line in stage if line.upper().startswith("USER ")]
    assert users, "the runtime stage of docker/Dockerfile sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]}: give the numeric uid (runAsNonRoot can check it)"
    assert int(uid) == 10001

    built = {name for name, svc in services().items() if "build" in svc}
    assert built == PROJECT_IMAGE_SERVICES
    images = {services()[name]["image"] for name in built}
    assert len(images) == 1, f"one image for every role, got {images}"
    for name in built:
        build = services()[name]["build"]
        assert (DOCKER / build["context"]).resolve() == REPO
        assert build["dockerfile"] == "docker/Dockerfile"
    for name, svc in services().items():
        user = str(svc.get("user", "")).split(":")[0]
        assert user not in ("root", "0"), f"{name} overrides the user with {svc['user']!r}"
        assert not svc.get("privileged"), f"{name} is privileged"


def test_dockerfile_installs_the_locked_environment_with_the_feature_repo() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^COPY pyproject\.toml uv\.lock ", text, re.M)
    syncs = re.findall(r"uv sync([^\n&]*)", text)
    assert syncs, "the image is not installed with `uv sync`"
    for flags in syncs:
        assert "--frozen" in flags and "--no-dev" in flags, f"uv sync{flags}"
    assert "pip install -r" not in text and "uv pip install" not in text
    assert "UV_COMPILE_BYTECODE=1" in text
    assert re.search(r"^COPY feature_repo \./feature_repo$", text, re.M)
    stage = dockerfile_final_stage()
    assert any(line.startswith("COPY --from=build /app /app") for line in stage)
    env = dockerfile_env(stage)
    assert env["MLOPS_FEAST_REPO"] == "/app/feature_repo"
    assert env["MLOPS_PROFILE"] == "stack"
    # The stack's Dagster instance config is what DAGSTER_HOME holds.
    assert f"COPY docker/dagster.yaml {env['DAGSTER_HOME']}/dagster.yaml" in stage
    # curl for the HTTP health checks of compose.yaml.
    assert re.search(r"apt-get install [^\n]*\bcurl\b", " ".join(stage))


def test_dagster_services_load_the_code_location_over_grpc() -> None:
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]
    code_location = services()["code-location"]["command"]
    # Exits when the definitions fail to load (code-server start would serve the error, healthy).
    assert code_location[:3] == ["dagster", "api", "grpc"]
    assert code_location[code_location.index("-p") + 1] == "4000"
    assert code_location[code_location.index("-h") + 1] == "0.0.0.0"
    assert code_location[code_location.index("-m") + 1] == tool["module_name"]
    assert services()["code-location"].get("expose") == ["4000"]

    workspace_path = "/app/docker/workspace.yaml"
    assert services()["webserver"]["command"] == [
        "dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", workspace_path,
    ]  # fmt: skip
    assert services()["daemon"]["command"] == ["dagster-daemon", "run", "-w", workspace_path]
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    assert workspace == {
        "load_from": [
            {
                "grpc_server": {
                    "host": "code-location",
                    "port": 4000,
                    "location_name": tool["code_location_name"],
                }
            }
        ]
    }
    # The image copies docker/ to /app/docker: the path above is the repo's docker/workspace.yaml.
    assert "COPY docker/dagster.yaml docker/workspace.yaml ./docker/" in DOCKERFILE.read_text()

    stage_env = dockerfile_env(dockerfile_final_stage())
    for name in ("code-location", "webserver", "daemon"):
        env = environment(name, env_example())
        assert env["DAGSTER_HOME"] == stage_env["DAGSTER_HOME"]
        # psycopg2: dagster-postgres's NOTIFY fails under psycopg v3.
        assert env["DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://mlops:")
        assert urlparse(env["DAGSTER_POSTGRES_URL"]).path == "/dagster"
        # Compute logs written by runs in the code location, read by the webserver.
        assert f"dagster-storage:{stage_env['DAGSTER_HOME']}/storage" in services()[name]["volumes"]


def test_mlflow_server_runs_on_postgresql_with_proxied_s3_artifacts() -> None:
    svc = services()["mlflow"]
    command = interpolate(svc["command"], env_example())
    assert command[:2] == ["mlflow", "server"]
    flag = {
        command[i]: command[i + 1]
        for i in range(2, len(command) - 1)
        if command[i].startswith("--")
    }
    assert flag["--host"] == "0.0.0.0" and flag["--port"] == "5000"
    assert flag["--artifacts-destination"] == f"s3://{env_example()['MLOPS_S3_BUCKET']}/mlflow"
    assert "--serve-artifacts" in command
    # MLflow 3 refuses other Host headers: the one its clients send must be allowed.
    client_host = urlparse(environment("api", env_example())["MLFLOW_TRACKING_URI"]).netloc
    assert client_host in flag["--allowed-hosts"].split(",")
    env = environment("mlflow", env_example())
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://mlops:")
    assert urlparse(env["MLFLOW_BACKEND_STORE_URI"]).path == "/mlflow"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "MLFLOW_TRACKING_URI" not in env


def test_celery_workers_take_the_steps_of_the_code_location_s_runs() -> None:
    """RabbitMQ on the compose network, the workers on it with what a step needs, and the code
    location (where each run's worker sends the steps) on the same broker."""
    example = env_example()
    rabbitmq = services()["rabbitmq"]
    image, _, tag = rabbitmq["image"].partition(":")
    assert image == "rabbitmq" and re.match(r"\d+\.\d+\.\d+-", tag), "pin a release tag"
    assert environment("rabbitmq", example) == {
        "RABBITMQ_DEFAULT_USER": example["RABBITMQ_USER"],
        "RABBITMQ_DEFAULT_PASS": example["RABBITMQ_PASSWORD"],
    }
    assert rabbitmq["volumes"] == ["rabbitmq-data:/var/lib/rabbitmq"]
    # The node's data folder on the volume is named after the host: it must not change.
    assert rabbitmq["hostname"] == "rabbitmq"
    assert rabbitmq["expose"] == ["5672"] and "ports" not in rabbitmq

    for name in ("code-location", *WORKER_QUEUES):
        settings = load_settings(environ=environment(name, example))
        broker = urlparse(settings.celery_broker_url)
        assert settings.executor == "celery", name
        assert (broker.scheme, broker.hostname, broker.port, broker.path) == (
            "amqp",
            "rabbitmq",
            5672,
            "//",  # the virtual host "/"
        )
        assert (broker.username, broker.password) == (
            example["RABBITMQ_USER"],
            example["RABBITMQ_PASSWORD"],
        )
        assert services()[name]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}

    stage_env = dockerfile_env(dockerfile_final_stage())
    grace = {}
    for name, queue in WORKER_QUEUES.items():
        svc = services()[name]
        assert svc["command"] == ["mlops", "worker", "--queue", queue]
        # `--scale worker=N` needs neither a fixed name nor a host port.
        assert "container_name" not in svc and "ports" not in svc
        assert set(svc["depends_on"]) == {"rabbitmq", "minio-init", "postgres", "redis", "mlflow"}
        env = environment(name, example)
        # A step writes its events to the run's Dagster instance and its stdout to the volume
        # the webserver reads compute logs from.
        assert env["DAGSTER_HOME"] == stage_env["DAGSTER_HOME"]
        assert (
            env["DAGSTER_POSTGRES_URL"]
            == environment("code-location", example)["DAGSTER_POSTGRES_URL"]
        )
        assert f"dagster-storage:{stage_env['DAGSTER_HOME']}/storage" in svc["volumes"]
        assert env["EIA_API_KEY"] == ""  # the demand ingest's step runs here
        minutes = re.fullmatch(r"(\d+)m", svc["stop_grace_period"])
        assert minutes, f"{name}: stop_grace_period {svc['stop_grace_period']!r}"
        grace[name] = int(minutes.group(1))
    # Long enough for a step to end (warm shutdown); training steps run longest.
    assert 1 <= grace["worker"] <= grace["worker-training"]
    # Runs are launched by the code location, not by the webserver or the daemon.
    for name in ("webserver", "daemon"):
        assert "MLOPS_EXECUTOR" not in environment(name)


# -- Settings -------------------------------------------------------------------------------------


def test_app_services_get_only_known_settings() -> None:
    documented = set(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M)
    )
    known = {PROFILE_ENV, *ENV_VARS.values(), *SERVING_ENV_VARS.values(), *documented}
    for name in sorted(APP_SERVICES):
        for var in environment(name):
            assert var in known or var.startswith(("DAGSTER_", "MLFLOW_", "AWS_")), (
                f"{name}: {var} is no setting of the project (.env.example, core/profiles.py, "
                "serving/config.py) nor of Dagster, MLflow or AWS"
            )


def test_the_stack_profile_resolves_to_the_compose_services() -> None:
    for name in ("code-location", "api", *WORKER_QUEUES):
        env = environment(name, env_example())
        settings = load_settings(environ=env)
        assert settings.profile == "stack"
        assert settings.data_root == f"s3://{env_example()['MLOPS_S3_BUCKET']}"
        assert settings.s3_endpoint_url == "http://minio:9000"
        assert settings.mlflow_tracking_uri == "http://mlflow:5000"
        assert settings.mlflow_artifact_root == ""  # the server proxies the artifacts
        assert settings.feast_online_store == "redis"
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.feast_repo_path == "/app/feature_repo"
        for url in (settings.feast_registry, settings.postgres_url):
            parsed = urlparse(url)
            assert parsed.scheme == "postgresql+psycopg"
            assert (parsed.hostname, parsed.port, parsed.path) == ("postgres", 5432, "/mlops")
            assert parsed.username == "mlops"
            assert parsed.password == env_example()["MLOPS_DB_PASSWORD"]
        assert env["AWS_ACCESS_KEY_ID"] == env_example()["AWS_ACCESS_KEY_ID"]
    # The webserver and the daemon get the Dagster instance, not the pipeline's credentials.
    for name in ("webserver", "daemon"):
        assert set(environment(name)) == {"DAGSTER_HOME", "DAGSTER_POSTGRES_URL"}


def test_the_api_request_log_survives_restarts() -> None:
    env = environment("api", env_example())
    config = ServingConfig.from_env("/app", env)
    assert config.log_dir == "/var/lib/mlops/request-log"
    assert f"request-log:{config.log_dir}" in services()["api"]["volumes"]
    assert "request-log" in compose()["volumes"]
    assert services()["api"]["command"] == ["mlops", "serve", "--host", "0.0.0.0", "--port", "8000"]
    # The image creates the folder owned by the app user, so a new volume is writable by it.
    stage = " ".join(dockerfile_final_stage())
    assert config.log_dir in stage and "chown -R 10001:10001" in stage


def test_named_volumes_are_declared_and_bind_mounts_exist() -> None:
    declared = set(compose()["volumes"])
    used = set()
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert used == declared
    assert {"minio-data", "postgres-data", "request-log", "dagster-storage"} <= declared


def test_init_scripts_are_valid_shell() -> None:
    for script, shell in (
        (DOCKER / "postgres-init" / "create-databases.sh", "bash"),
        (DOCKER / "minio-init" / "create-bucket.sh", "sh"),
    ):
        assert os.access(script, os.X_OK), f"{script} is not executable"
        subprocess.run([shell, "-n", str(script)], check=True)
    create = (DOCKER / "postgres-init" / "create-databases.sh").read_text()
    for database in ("mlops", "mlflow", "dagster"):
        assert f"CREATE DATABASE {database} OWNER mlops;" in create


# -- Secrets --------------------------------------------------------------------------------------


def test_no_secret_literal_in_compose() -> None:
    whole_reference = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$")
    for block, env in all_environment_blocks():
        for name, value in env.items():
            if SECRET_NAME.search(name):
                assert whole_reference.match(value), f"{block}: {name} is not a ${{...}} reference"
            parsed = urlparse(value)
            if parsed.password is not None:
                assert whole_reference.match(parsed.password), f"{block}: {name} embeds a password"
    assert "env_file" not in compose_text()
    for name, value in env_example().items():
        if SECRET_NAME.search(name) and value:
            assert value not in compose_text(), f"the value of {name} is written in compose.yaml"


def test_every_interpolated_variable_is_in_the_env_example() -> None:
    referenced = referenced_variables()
    missing = set(referenced) - set(env_example())
    assert not missing, f"docker/stack.env.example lacks {sorted(missing)}"
    unused = set(env_example()) - set(referenced) - {"COMPOSE_PROJECT_NAME"}
    assert not unused, f"docker/stack.env.example sets {sorted(unused)}, which compose never reads"
    for name, operators in referenced.items():
        if SECRET_NAME.search(name) and name != "EIA_API_KEY":
            # A missing credential stops compose with a message, never an empty default.
            assert operators == {":?"}, f"{name} is used as {operators}"
    for match in REFERENCE.finditer(compose_text()):
        if match.group(2) == ":?":
            assert "docker/stack.env" in match.group(3), f"{match.group(0)}: name the env file"


def test_env_example_values_are_safe_placeholders() -> None:
    env = env_example()
    for name, value in env.items():
        if SECRET_NAME.search(name) and name != "EIA_API_KEY":
            assert value.startswith("change-me"), f"{name}={value!r} is not an obvious placeholder"
    # MinIO's limits; the app user is not the root account.
    assert len(env["MINIO_ROOT_USER"]) >= 3 and len(env["MINIO_ROOT_PASSWORD"]) >= 8
    assert len(env["AWS_SECRET_ACCESS_KEY"]) >= 8
    assert env["AWS_ACCESS_KEY_ID"] != env["MINIO_ROOT_USER"]
    # It goes into connection URLs unescaped.
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", env["MLOPS_DB_PASSWORD"])
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", env["RABBITMQ_USER"])
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", env["RABBITMQ_PASSWORD"])
    assert env["EIA_API_KEY"] == ""
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "docker/stack.env" in ignored


# -- Compose itself -------------------------------------------------------------------------------


def compose_command() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail(
        "neither `docker compose` nor `docker-compose` is installed, so docker/compose.yaml cannot "
        "be validated: run .ci/run (it installs Debian's docker-compose), or install Docker Compose"
    )


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that would stand in for the env file."""
    names = set(referenced_variables()) | set(env_example())
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}


def _compose(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Compose on ``docker/compose.yaml``, in a clean environment (no secret leaks in from ours)."""
    return subprocess.run(
        [*compose_command(), *args],
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_validates_with_the_env_example(tmp_path: Path) -> None:
    # `config` validates, then prints the fully resolved file: one call does both.
    result = _compose(tmp_path, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config")
    assert result.returncode == 0, result.stderr
    # The fully resolved file: every service and volume, and the example's values in it.
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) == set(services())
    assert set(config["volumes"]) == set(compose()["volumes"])
    env = config["services"]["api"]["environment"]
    assert env["MLOPS_FEAST_REGISTRY"] == environment("api", env_example())["MLOPS_FEAST_REGISTRY"]
    example = env_example()
    broker = f"amqp://{example['RABBITMQ_USER']}:{example['RABBITMQ_PASSWORD']}@rabbitmq:5672//"
    for name in ("code-location", *WORKER_QUEUES):
        assert config["services"][name]["environment"]["MLOPS_CELERY_BROKER_URL"] == broker


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    result = _compose(tmp_path, "-f", str(COMPOSE_FILE), "config", "-q")
    assert result.returncode != 0
    assert "in docker/stack.env and pass --env-file docker/stack.env" in result.stderr
