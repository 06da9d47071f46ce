"""The Kubernetes deployment of the stack profile: deploy/helm/values.yaml, for Dagster's official
Helm chart (dagster/dagster).

No cluster, no image build and (unless `helm` and a pulled chart are at hand) no `helm template`
here: the values are read as YAML and checked against what they must agree with, namely the
project's settings (mlops_assets/core/profiles.py), the Docker deployment they mirror
(docker/compose.yaml, docker/dagster.yaml, docker/Dockerfile), the install instructions at the top
of the file, and Dagster's own config schemas for the parts of the instance the chart writes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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
from mlops_assets.core.runs import executor_for

REPO = Path(__file__).resolve().parents[2]
VALUES_FILE = REPO / "deploy" / "helm" / "values.yaml"
COMPOSE_FILE = REPO / "docker" / "compose.yaml"
DOCKER = REPO / "docker"

# Top-level keys of the chart's values (helm/dagster/schema/schema/charts/dagster/values.py in
# dagster-io/dagster): a misspelt section would be ignored by Helm without a word.
CHART_SECTIONS = {
    "global", "dagsterWebserver", "dagster-user-deployments", "postgresql",
    "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
    "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
    "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount",
    "retention", "additionalInstanceConfig", "concurrency", "extraManifests",
}  # fmt: skip
# Variables that only Dagster reads, each with why a pod of this release may carry it.
DAGSTER_VARS = {
    # Set by the chart on every pod from global.postgresqlSecretName (key postgresql-password);
    # the instance's dagster.yaml reads the PostgreSQL password from it.
    "DAGSTER_PG_PASSWORD",
    # Set by the chart from global.dagsterHome; where the UI and daemon find dagster.yaml.
    "DAGSTER_HOME",
}
# The key the chart reads the instance's PostgreSQL password from (secretKeyRef).
CHART_PG_PASSWORD_KEY = "postgresql-password"
# Variable names that hold credentials: never a plain `env` entry.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|API_KEY|TOKEN")
PLACEHOLDER = re.compile(r"<[^<>]+>")


@cache
def values_text() -> str:
    return VALUES_FILE.read_text()


@cache
def values() -> dict[str, Any]:
    return yaml.safe_load(values_text())


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@cache
def dagster_tool() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]


def deployment() -> dict[str, Any]:
    deployments = values()["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1, "one code location, as in docker/workspace.yaml"
    return deployments[0]


def deployment_env() -> dict[str, str]:
    env = deployment()["env"]
    # The map form: the chart writes it to a ConfigMap, which runs and steps also get.
    assert isinstance(env, dict), "give the user deployment's env as a map"
    for name, value in env.items():
        assert isinstance(value, str), f"{name}: quote {value!r} (a ConfigMap takes strings only)"
    return env


@cache
def install_instructions() -> str:
    """The comment block that opens values.yaml, without its ``#`` and with lines continued."""
    lines = []
    for line in values_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return "\n".join(lines).replace("\\\n", " ")


@cache
def created_secrets() -> dict[str, dict[str, str]]:
    """Each Secret the install instructions create, with its literal keys and values."""
    secrets: dict[str, dict[str, str]] = {}
    for line in install_instructions().splitlines():
        if "create secret generic" not in line:
            continue
        words = shlex.split(line.split("#", 1)[0])
        name = words[words.index("generic") + 1]
        literals = [w.removeprefix("--from-literal=") for w in words if w.startswith("--from-")]
        assert all("=" in item for item in literals), f"{name}: {literals}"
        assert name not in secrets, f"Secret {name} created twice"
        secrets[name] = dict(item.split("=", 1) for item in literals)
    return secrets


def env_secret_names(section: dict[str, Any]) -> list[str]:
    return [ref["name"] for ref in section.get("envSecrets") or []]


def referenced_secrets() -> dict[str, list[str]]:
    """Secret name -> the components that read it as environment variables."""
    launcher = values()["runLauncher"]["config"]["k8sRunLauncher"]
    found: dict[str, list[str]] = {}
    for component, section in (
        ("webserver", values()["dagsterWebserver"]),
        ("daemon", values()["dagsterDaemon"]),
        ("code location", deployment()),
        ("run launcher", launcher),
    ):
        for name in env_secret_names(section):
            found.setdefault(name, []).append(component)
    return found


def compose_environment_names() -> set[str]:
    """Every variable any service or x- block of docker/compose.yaml sets."""
    names: set[str] = set()
    for key, block in compose().items():
        if key.startswith("x-") and isinstance(block, dict) and key.endswith("env"):
            names.update(block)
    for service in compose()["services"].values():
        env = service.get("environment") or {}
        names.update(env if isinstance(env, dict) else (e.split("=", 1)[0] for e in env))
    return names


@cache
def stack_env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (DOCKER / "stack.env.example").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` from ``env``."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        assert not op.endswith("?"), f"{name} is required: {arg}"
        return arg

    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", substitute, value)


def stack_env() -> tuple[dict[str, str], set[str]]:
    """Compose's x-stack-env as the example env file resolves it, and which of its variables
    carry a secret (a value interpolated from a required variable of the env file)."""
    raw = {k: str(v) for k, v in compose()["x-stack-env"].items()}
    secret = {name for name, value in raw.items() if re.search(r"\$\{\w+:\?", value)}
    return {k: interpolate(v, stack_env_example()) for k, v in raw.items()}, secret


def application_environ(password: str = "change-me-mlops-db") -> dict[str, str]:
    """What a code location, run or step pod sees: the env map plus the Secrets, with the install
    instructions' placeholders filled in."""
    environ = dict(deployment_env())
    for name in env_secret_names(deployment()):
        for key, literal in created_secrets()[name].items():
            environ[key] = PLACEHOLDER.sub(
                lambda m: password if m.group(0) == "<db-password>" else "dummy", literal
            )
    return environ


def pod_sections() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "webserver", values()["dagsterWebserver"]
    yield "daemon", values()["dagsterDaemon"]
    yield "code location", deployment()


def camel_to_snake(config: dict[str, Any]) -> dict[str, Any]:
    """The chart's camelCase keys as its templates write them into dagster.yaml (one to one for
    the run coordinator, run monitoring and S3 compute log sections)."""
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(): value for key, value in config.items()}


# -- structure -------------------------------------------------------------------------------------


def test_values_use_only_sections_of_the_chart() -> None:
    assert set(values()) <= CHART_SECTIONS, set(values()) - CHART_SECTIONS
    assert values()["dagster-user-deployments"]["enabled"] is True
    # The instance's database is compose's PostgreSQL server, not one the chart deploys.
    assert values()["postgresql"]["enabled"] is False
    assert values()["generatePostgresqlPasswordSecret"] is False
    assert values()["telemetry"] == {"enabled": False}


def test_runs_get_a_pod_each_and_steps_a_job_each() -> None:
    launcher = values()["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert set(launcher["config"]) == {"k8sRunLauncher"}
    assert launcher["config"]["k8sRunLauncher"]["loadInclusterConfig"] is True
    # Runs and steps carry the code location's settings and Secrets.
    assert deployment()["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert deployment_env()["MLOPS_EXECUTOR"] == "k8s"


def test_the_code_location_serves_the_project_module_from_the_compose_image() -> None:
    module = dagster_tool()["module_name"]
    assert deployment()["dagsterApiGrpcArgs"] == ["-m", module]
    command = compose()["services"]["code-location"]["command"]
    assert command[command.index("-m") + 1] == module
    assert deployment()["port"] == int(command[command.index("-p") + 1]) == 4000

    # `${MLOPS_IMAGE:-mlops-assets:latest}`: the image compose builds from docker/Dockerfile.
    default_image = interpolate(compose()["x-app"]["image"], {})
    repository = default_image.rsplit(":", 1)[0]
    assert repository == "mlops-assets"
    images = {
        "code location": deployment()["image"],
        "webserver": values()["dagsterWebserver"]["image"],
        "daemon": values()["dagsterDaemon"]["image"],
    }
    for role, image in images.items():
        assert image["repository"] == repository, role
        # Left to the install: the chart's own version would otherwise become the tag.
        assert image["tag"] is None, f"{role}: the tag is set at install (--set ...image.tag)"
    # ... and the install command sets every one of them.
    instructions = install_instructions()
    for path in (
        "dagsterWebserver.image",
        "dagsterDaemon.image",
        "'dagster-user-deployments.deployments[0].image",
    ):
        for field in ("repository", "tag"):
            assert f"--set {path}.{field}" in instructions, f"{path}.{field} not set at install"


def test_the_ui_and_daemon_load_the_one_code_location_under_its_project_name() -> None:
    workspace = values()["dagsterWebserver"]["workspace"]
    assert workspace["enabled"] is True
    assert workspace["servers"] == [
        {
            # The chart names the user deployment's Service after the deployment.
            "host": deployment()["name"],
            "port": deployment()["port"],
            "name": dagster_tool()["code_location_name"],
        }
    ]
    # Same name as compose's workspace, so runs and schedules keep their origin's name.
    compose_workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    assert compose_workspace["load_from"][0]["grpc_server"]["location_name"] == "mlops_assets"
    service = values()["dagsterWebserver"]["service"]
    assert service["port"] == 3000
    for probe in ("readinessProbe", "livenessProbe"):
        assert values()["dagsterWebserver"][probe]["httpGet"] == {
            "path": "/server_info",
            "port": service["port"],
        }


# -- settings --------------------------------------------------------------------------------------


def test_the_stack_profile_resolves_from_the_values_with_the_k8s_executor() -> None:
    settings = load_settings(environ=application_environ())
    assert settings.profile == "stack"
    assert settings.executor == "k8s"
    assert executor_for(settings.executor).name == "k8s"
    assert settings.data_root == "s3://mlops-assets"
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert settings.feast_online_store == "redis"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert urlparse(settings.postgres_url).password == "change-me-mlops-db"
    assert urlparse(settings.feast_registry).path == "/mlops"


def test_the_values_give_the_code_location_what_compose_gives_it() -> None:
    expected, secret = stack_env()
    assert secret == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MLOPS_FEAST_REGISTRY",
        "MLOPS_POSTGRES_URL",
    }
    env = deployment_env()
    # Compose's non-secret settings, value for value (the service names are the same: see the
    # top of values.yaml); the secret ones come from the Secrets only.
    for name in sorted(set(expected) - secret):
        assert env.get(name) == expected[name], name
    assert not secret & set(env), f"{secret & set(env)} given in plain env"
    # The secret ones are in the code location's Secrets; the URLs, with the example password,
    # are compose's exactly.
    environ = application_environ(password=stack_env_example()["MLOPS_DB_PASSWORD"])
    for name in sorted(secret):
        assert name in environ, f"{name}: in none of the code location's Secrets"
        if "://" in expected[name]:
            assert environ[name] == expected[name], name
    # Beyond compose: only the executor.
    assert set(env) - set(expected) == {"MLOPS_EXECUTOR"}


def test_every_variable_the_values_set_or_expect_is_a_known_setting() -> None:
    known = {PROFILE_ENV, *ENV_VARS.values(), *compose_environment_names(), *DAGSTER_VARS}
    named: dict[str, str] = {}
    for component, section in pod_sections():
        env = section.get("env") or {}
        names = env if isinstance(env, dict) else [item["name"] for item in env]
        named.update((name, f"{component} env") for name in names)
    launcher = values()["runLauncher"]["config"]["k8sRunLauncher"]
    named.update(
        (item.split("=", 1)[0], "run launcher envVars") for item in launcher.get("envVars") or []
    )
    for secret in referenced_secrets():
        named.update((key, f"Secret {secret}") for key in created_secrets()[secret])
    assert named, "no variable found"
    for name, source in sorted(named.items()):
        assert name in known, (
            f"{name} ({source}) is no setting of the project (core/profiles.py), no variable of "
            "docker/compose.yaml and none Dagster reads"
        )


# -- secrets ---------------------------------------------------------------------------------------


def test_every_secret_the_values_name_is_created_by_the_install_instructions() -> None:
    pg_secret = values()["global"]["postgresqlSecretName"]
    named = {*referenced_secrets(), pg_secret}
    assert named == set(created_secrets()), (
        f"named in the values: {sorted(named)}; created at the top: {sorted(created_secrets())}"
    )
    # The chart reads this one by key (secretKeyRef), not as environment variables.
    assert set(created_secrets()[pg_secret]) == {CHART_PG_PASSWORD_KEY}
    assert pg_secret not in referenced_secrets()
    # The UI reads the compute logs from S3: the S3 keys, and nothing else.
    assert env_secret_names(values()["dagsterWebserver"]) == ["mlops-assets-s3"]
    assert set(created_secrets()["mlops-assets-s3"]) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    assert not env_secret_names(values()["dagsterDaemon"])


def test_no_credential_in_the_file() -> None:
    for component, section in pod_sections():
        for name, value in (section.get("env") or {}).items():
            assert not SECRET_NAME.search(name), f"{component}: {name} in plain env"
            assert urlparse(value).password is None, f"{component}: {name} has a password"
    assert "postgresqlPassword" not in values()["postgresql"]
    # Every value the instructions put into a Secret is a placeholder to replace.
    for name, literals in created_secrets().items():
        for key, literal in literals.items():
            assert PLACEHOLDER.search(literal), f"{name}.{key}={literal!r} is not a placeholder"
    # The same password everywhere the `mlops` role logs in.
    passwords = {
        urlparse(url).password for url in created_secrets()["mlops-assets-db"].values()
    } | set(created_secrets()[values()["global"]["postgresqlSecretName"]].values())
    assert passwords == {"<db-password>"}


# -- the Dagster instance --------------------------------------------------------------------------


def test_the_instance_database_is_the_compose_one_through_psycopg2() -> None:
    pg = values()["postgresql"]
    url = urlparse(
        interpolate(compose()["x-dagster-env"]["DAGSTER_POSTGRES_URL"], stack_env_example())
    )
    assert pg["postgresqlScheme"] == url.scheme == "postgresql+psycopg2"
    assert pg["postgresqlHost"] == url.hostname
    assert url.hostname in compose()["services"]
    assert pg["service"]["port"] == url.port
    assert pg["postgresqlUsername"] == url.username
    assert "/" + pg["postgresqlDatabase"] == url.path
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert f"DAGSTER_HOME={values()['global']['dagsterHome']}" in dockerfile


def test_the_instance_limits_runs_and_pools_as_compose_does_and_dagster_accepts_it(
    tmp_path: Path,
) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator

    daemon = values()["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    queued = camel_to_snake(coordinator["config"]["queuedRunCoordinator"])
    assert process_config(QueuedRunCoordinator.config_type(), queued).success, queued
    monitoring = camel_to_snake(daemon["runMonitoring"])
    # The part of dagster.yaml these values decide, as the chart writes it.
    rendered = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": queued,
        },
        "run_monitoring": monitoring,
        **values()["additionalInstanceConfig"],
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _ = dagster_instance_config(str(tmp_path))  # raises on a key Dagster does not know
    assert daemon["runRetries"] == {"enabled": False}, "run_retries written once, below"

    compose_instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    runs = compose_instance["concurrency"]["runs"]
    assert queued["max_concurrent_runs"] == runs["max_concurrent_runs"]
    assert queued["tag_concurrency_limits"] == runs["tag_concurrency_limits"]
    pools = compose_instance["concurrency"]["pools"]
    assert config["concurrency"]["default_op_concurrency_limit"] == pools["default_limit"]
    # Op granularity, compose's, is Dagster's default when the instance names none.
    assert pools["granularity"] == "op" and "pools" not in config["concurrency"]
    assert config["run_retries"] == compose_instance["run_retries"]
    assert config["freshness"] == compose_instance["freshness"]
    assert monitoring == compose_instance["run_monitoring"]


def test_compute_logs_go_to_the_bucket_of_the_stack() -> None:
    from dagster._config import process_config
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    manager = values()["computeLogManager"]
    assert manager["type"] == "S3ComputeLogManager"
    s3 = manager["config"]["s3ComputeLogManager"]
    env = deployment_env()
    assert s3["bucket"] == env["MLOPS_S3_BUCKET"]
    assert s3["endpointUrl"] == env["AWS_ENDPOINT_URL"]
    assert s3["region"] == env["AWS_DEFAULT_REGION"]
    # Not under the asset data's or MLflow's prefixes.
    assert s3["prefix"].startswith("dagster/")
    assert process_config(S3ComputeLogManager.config_type(), camel_to_snake(s3)).success


# -- pods ------------------------------------------------------------------------------------------


def _quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_every_pod_runs_as_the_image_user_with_requests_within_limits() -> None:
    uid = int(re.findall(r"^USER (\d+):", (DOCKER / "Dockerfile").read_text(), re.M)[-1])
    launcher = values()["runLauncher"]["config"]["k8sRunLauncher"]
    contexts = [(c, s["podSecurityContext"]) for c, s in pod_sections()]
    contexts.append(("run and step pods", launcher["securityContext"]))
    for component, context in contexts:
        assert context["runAsNonRoot"] is True and context["runAsUser"] == uid, component
    for component, section in [*pod_sections(), ("run and step pods", launcher)]:
        security = section["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, component
        assert security["capabilities"] == {"drop": ["ALL"]}, component
    for component, section in pod_sections():
        resources = section["resources"]
        for kind in ("cpu", "memory"):
            request, limit = resources["requests"][kind], resources["limits"][kind]
            assert 0 < _quantity(request) <= _quantity(limit), f"{component} {kind}"
    # Runs and steps take the code location's (includeConfigInLaunchedRuns): enough for a step.
    assert _quantity(deployment()["resources"]["limits"]["memory"]) >= 2 * 2**30


def test_the_install_installs_the_chart_of_the_locked_dagster() -> None:
    from importlib.metadata import version

    # The chart's version is Dagster's: its webserver and daemon templates, instance schema and
    # the dagster-k8s launcher they configure move with it.
    versions = re.findall(
        r"helm upgrade --install \S+ dagster/dagster --version (\S+)", install_instructions()
    )
    assert versions == [version("dagster")]
    assert "helm repo add dagster https://dagster-io.github.io/helm" in install_instructions()


def test_the_secret_commands_are_valid_kubectl() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("`kubectl` is not installed: the commands are parsed, not run")
    commands = [
        line.split("#", 1)[0].strip()
        for line in install_instructions().splitlines()
        if "create secret generic" in line
    ]
    assert len(commands) == len(created_secrets())
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "kubectl"
        # Client side only: nothing reaches a cluster.
        result = subprocess.run(
            [kubectl, *words[1:], "--dry-run=client", "-o", "json"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        name = words[words.index("generic") + 1]
        assert sorted(json.loads(result.stdout)["data"]) == sorted(created_secrets()[name])


# -- the chart itself, where it can be rendered ----------------------------------------------------


def test_helm_template_renders_the_values() -> None:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip(
            "`helm` is not installed (CI has no Helm, and the chart cannot be downloaded "
            "there): the values are checked as YAML only"
        )
    chart = os.environ.get("MLOPS_DAGSTER_CHART")
    if not chart or not Path(chart).exists():
        pytest.skip(
            "helm found, but no chart: `helm pull dagster/dagster --version <1.13.x>` and set "
            "MLOPS_DAGSTER_CHART to the .tgz (nothing is downloaded by the tests)"
        )
    rendered = subprocess.run(
        [
            helm, "template", "mlops", chart, "-n", "mlops", "-f", str(VALUES_FILE),
            "--set", "dagsterWebserver.image.tag=test",
            "--set", "dagsterDaemon.image.tag=test",
            "--set", "dagster-user-deployments.deployments[0].image.tag=test",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    (config_map,) = [
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-instance")
    ]
    instance = yaml.safe_load(config_map["data"]["dagster.yaml"])
    assert instance["run_launcher"]["class"] == "K8sRunLauncher"
    assert instance["concurrency"] == {"default_op_concurrency_limit": 1}
    postgres = instance["run_storage"]["config"]["postgres_db"]
    assert postgres["scheme"] == "postgresql+psycopg2" and postgres["hostname"] == "postgres"
    (code,) = [
        d
        for d in documents
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"].get("deployment") == deployment()["name"]
    ]
    container = code["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "mlops-assets:test"
    assert container["args"][-2:] == ["-m", dagster_tool()["module_name"]]
