"""A fraud backfill on the native stack under each executor: one process, a process per step,
and a Celery cluster of 1 or 2 workers, all on this machine.

What is run is the README's single-run backfill of the fraud ingestion at the DEFAULT daily
volume (no run config), on the ``stack`` profile (``mlops stack --no-dagster``: SeaweedFS's S3,
the MLflow server, PostgreSQL, Redis, RabbitMQ)::

    dagster asset materialize -m mlops_assets.definitions \\
      --select 'fraud/transactions,fraud/labels,fraud/card_features,fraud/merchant_features,\\
fraud/feature_store' --partition-range 2024-01-01...2024-01-14

* ``in_process``    ``MLOPS_EXECUTOR=in_process``: every step in the CLI's own process;
* ``multiprocess``  Dagster's multiprocess executor, named in the run config: a subprocess per
                    step, as many at once as there are cores (without it, the default executor
                    runs these light steps in process, ``core/runs.py``);
* ``celery1``       ``mlops stack --workers 1``: each step sent to RabbitMQ, run by the one worker;
* ``celery2``       the same with two workers, which may take two steps at once.

Every run gets a stack of its own, started before and stopped after the timed part: a fresh
MLOPS_HOME (an empty bucket), fresh PostgreSQL databases (Dagster's instance, the Feast registry,
MLflow's backend; dropped afterwards), a Feast project of its own in the online store (a Redis
database of the bench's, its keys deleted afterwards), and for the Celery configurations the
workers on a RabbitMQ virtual host of the bench's own (the broker is shared; deleted at the end).
So each backfill writes everything from scratch against the same services, and none is a no-op;
the written objects, bytes and online keys are shown so that the runs can be seen to be alike.
The timed run starts once the fresh stack's processes have gone quiet: the MLflow server's workers
and the Celery workers go on importing for some seconds after the stack answers, which would
otherwise land in the run.

What is measured: the wall time of the command (process start to exit), and the peak of the
summed RSS of the processes doing the work, sampled every 0.2 s: the CLI process and its children,
plus, for the Celery configurations, the worker processes (RSS counts shared pages once per
process, as ``ps`` does). The services of the stack (S3, MLflow, databases, broker) are outside
both figures. Beside them, per run:

* ``workers GB idle/after``: the workers' RSS before the run and after it (what a resident
  cluster holds doing nothing, before and once its processes have imported the steps' libraries);
* ``steps``, ``step s``: the steps that succeeded and the sum of their durations as Dagster
  recorded them (STEP_SUCCESS events in the instance's database; each step's own figure in a
  second table): wall minus that sum is what the run spent outside its steps (process starts,
  code loading, planning, the broker), when the steps ran one after the other;
* ``objects``, ``MB``, ``online keys``: what the run left in its bucket and in Feast's online
  store, the same for every configuration when the runs did the same work;
* ``CPU s ours/all``: CPU seconds of the command (with the step processes it reaped) and of the
  workers, next to the CPU seconds the whole machine was busy meanwhile: the difference is the
  stack's services (S3, MLflow, PostgreSQL, Redis, RabbitMQ) and other work on the machine; ``load start/max`` is the 1-min load average at the start
  and its highest value during the run; ``steps per worker`` the Celery tasks each received.

With ``--repeat`` the configurations are interleaved, so a slow moment of the machine hits them
alike; the medians are printed at the end.

    .venv/bin/python bench/backfill_scale.py [--days 14] [--configs in_process,celery1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

ASSETS = (
    "fraud/transactions,fraud/labels,fraud/card_features,fraud/merchant_features,"
    "fraud/feature_store"
)
FIRST_DAY = date(2024, 1, 1)
# Configuration -> (MLOPS_EXECUTOR of the command, Celery workers the stack starts).
CONFIGS: dict[str, tuple[str, int]] = {
    "in_process": ("in_process", 0),
    "multiprocess": ("multiprocess", 0),
    "celery1": ("celery", 1),
    "celery2": ("celery", 2),
}
# Variables of this shell that would point the stack or the command elsewhere.
FOREIGN_ENV = ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
SERVICES_READY = "stack ready (no Dagster)"
# "started Celery worker default-1 (queues default, pid 1234; log: /.../worker-default-1.log)"
STARTED = re.compile(r"started Celery worker (\S+) \(queues (\S+), pid (\d+); log: (\S+)\)")
SAMPLE_EVERY_S = 0.2


@dataclass
class Result:
    config: str
    repeat: int
    code: int | None = None  # exit code of the command; None: it never ran
    seconds: float = float("nan")
    peak_gb: float = float("nan")
    workers_idle_gb: float = 0.0  # the workers' RSS before the run
    workers_after_gb: float = 0.0  # and after it: what stays resident once they have worked
    objects: int = 0
    megabytes: float = 0.0
    online_keys: int = 0
    steps_per_worker: dict[str, int] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)  # step -> Dagster's duration
    cpu_ours: float = float("nan")  # CPU seconds of the command, its steps and the workers
    cpu_machine: float = float("nan")  # CPU seconds the whole machine was busy meanwhile
    load: tuple[float, float] = (float("nan"), float("nan"))  # 1-min load at the start, highest
    settled_s: float = 0.0  # waited for the fresh stack to go quiet before the timed run
    note: str = ""


# --------------------------------------------------------------------------------------------
# Memory of a process tree.
# --------------------------------------------------------------------------------------------


class PeakRss:
    """Samples the summed RSS of ``roots`` and all their descendants in a thread; ``peak`` is the
    highest sum seen (processes that end between two samples are simply no longer counted)."""

    def __init__(self, roots: list[int], every: float = SAMPLE_EVERY_S) -> None:
        self.roots = roots
        self.every = every
        self.peak = 0
        self.load_max = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def tree_rss(roots: list[int]) -> int:
        import psutil

        seen: set[int] = set()
        total = 0
        for pid in roots:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                if proc.pid in seen:
                    continue
                seen.add(proc.pid)
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:  # ended since the listing
                    continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.tree_rss(self.roots))
            self.load_max = max(self.load_max, os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (the Celery workers: one process each, solo pool)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def busy_cpu_seconds() -> float:
    """CPU seconds all cores of the machine have spent on anything but idling, since boot."""
    import psutil

    t = psutil.cpu_times()
    # guest time is counted in user already; iowait and steal are not this machine's work.
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))


# --------------------------------------------------------------------------------------------
# The services of one run: databases, a broker virtual host, the stack.
# --------------------------------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def drop_databases(admin_url: str, names: list[str]) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_online_keys(redis_url: str, project: str) -> int:
    """Delete the Feast online rows of ``project`` (its Redis keys end with the project's name)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"*{project}", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    return len(keys)


def count_online_keys(redis_url: str, project: str) -> int:
    import redis

    return sum(
        1 for _ in redis.Redis.from_url(redis_url).scan_iter(match=f"*{project}", count=1000)
    )


def bucket_contents(env: dict[str, str]) -> tuple[int, float]:
    """Objects and megabytes in the stack's bucket (everything the backfill wrote)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    objects, size = 0, 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=env["MLOPS_S3_BUCKET"]):
        for obj in page.get("Contents", []):
            objects += 1
            size += obj["Size"]
    return objects, size / 1e6


def step_durations(dagster_db: str) -> dict[str, float]:
    """Each step's duration in seconds as Dagster recorded it (its STEP_SUCCESS events, written to
    the instance's PostgreSQL by whichever process ran the step: the CLI, a step subprocess or a
    Celery worker)."""
    import psycopg

    query = (
        "SELECT step_key, (event::json -> 'dagster_event' -> 'event_specific_data' "
        "->> 'duration_ms')::float FROM event_logs WHERE dagster_event_type = 'STEP_SUCCESS'"
    )
    with psycopg.connect(dagster_db) as conn:
        return {step: ms / 1000 for step, ms in conn.execute(query).fetchall()}


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = shlex.split(line.removeprefix("export "))[0].partition("=")
            env[name] = value
    return env


@dataclass
class Stack:
    proc: subprocess.Popen
    home: Path
    output: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: dict[str, tuple[int, Path]] = field(default_factory=dict)  # name -> (pid, log)
    descendants: list = field(default_factory=list)

    def tail(self, lines: int = 30) -> str:
        logs = [self.output, *sorted((self.home / ".dagster-stack" / "stack-logs").glob("*.log"))]
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
            for p in logs
            if p.exists()
        )


def start_stack(home: Path, env: dict[str, str], workers: int, timeout: float = 300) -> Stack:
    """``mlops stack --no-dagster`` on free ports (with ``--workers``), in a session of its own;
    returns once the services answer and every worker has told Celery it is ready."""
    import psutil

    output = home / "mlops-stack.out"
    command = [sys.executable, "-m", "mlops_assets.tooling.cli", "stack", "--no-dagster"]
    command += ["--s3-port", "0", "--mlflow-port", "0"]
    if workers:
        command += ["--workers", str(workers)]
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack = Stack(proc=proc, home=home, output=output)
    deadline = time.monotonic() + timeout
    while SERVICES_READY not in output.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(f"mlops stack exited with {proc.returncode}:\n{stack.tail()}")
        if time.monotonic() > deadline:
            stop_stack(stack)
            raise RuntimeError(f"the stack did not come up in {timeout:.0f} s:\n{stack.tail()}")
        time.sleep(0.5)
    stack.env = {**env, **read_env_file(home / ".dagster-stack" / "stack.env")}
    stack.workers = {
        name: (int(pid), Path(log)) for name, _, pid, log in STARTED.findall(output.read_text())
    }
    stack.descendants = psutil.Process(proc.pid).children(recursive=True)
    host = socket.gethostname()
    waiting = dict(stack.workers)
    while waiting:
        waiting = {
            name: (pid, log)
            for name, (pid, log) in waiting.items()
            if f"{name}@{host} ready." not in log.read_text(errors="replace")
        }
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_stack(stack)
            raise RuntimeError(f"workers not ready: {sorted(waiting)}\n{stack.tail()}")
        time.sleep(0.5)
    return stack


def settle(stack: Stack, quiet_cpu: float = 0.1, window: float = 2.0, limit: float = 120) -> float:
    """Wait until the stack's processes are quiet (under ``quiet_cpu`` cores together over
    ``window`` seconds): MLflow's server and the workers still import after they answer, and
    that start-up would otherwise land in the first seconds of the timed run. Returns the wait."""
    import psutil

    start = time.monotonic()
    while time.monotonic() - start < limit:
        procs = []
        for proc in [stack.proc, *stack.descendants]:
            try:
                procs.append(psutil.Process(proc.pid))
            except psutil.NoSuchProcess:
                continue
        before = cpu_seconds([p.pid for p in procs])
        time.sleep(window)
        if (cpu_seconds([p.pid for p in procs]) - before) / window < quiet_cpu:
            break
    return time.monotonic() - start


def stop_stack(stack: Stack) -> None:
    """SIGTERM to the launcher (it stops its services), SIGKILL to whatever is left after 90 s."""
    import psutil

    if stack.proc.poll() is None:
        stack.descendants = stack.descendants or psutil.Process(stack.proc.pid).children(True)
        stack.proc.send_signal(signal.SIGTERM)
        try:
            stack.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            stack.proc.kill()
            stack.proc.wait()
    for child in stack.descendants:
        try:
            if child.is_running():
                child.kill()
        except psutil.NoSuchProcess:
            pass


# --------------------------------------------------------------------------------------------
# One run.
# --------------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith("MLOPS_") and k not in FOREIGN_ENV
    }


def run_one(
    config: str, repeat: int, args: argparse.Namespace, workdir: Path, broker_url: str
) -> Result:
    import psutil

    executor, workers = CONFIGS[config]
    result = Result(config, repeat)
    tag = uuid.uuid4().hex[:8]
    home = workdir / f"{config}-{repeat}"
    home.mkdir(parents=True)
    server = args.postgres_admin_url.rsplit("/", 1)[0]
    databases = {p: f"mlops_bench_{p}_{tag}" for p in ("mlops", "dagster", "mlflow")}
    mlops_db = f"{server}/{databases['mlops']}"
    project = f"bench_{config}_{tag}"
    env = {
        **clean_env(),
        "MLOPS_PROFILE": "stack",  # `mlops stack` runs it regardless; the command needs it too
        "MLOPS_HOME": str(home),
        "MLOPS_FEAST_REPO": str(REPO_ROOT / "feature_repo"),
        "MLOPS_FEAST_PROJECT": project,
        "MLOPS_REDIS_URL": args.redis_url,
        "MLOPS_POSTGRES_URL": mlops_db,
        "MLOPS_FEAST_REGISTRY": mlops_db.replace("postgresql://", "postgresql+psycopg://", 1),
        "DAGSTER_POSTGRES_URL": f"{server}/{databases['dagster']}",
        "MLFLOW_BACKEND_STORE_URI": f"{server}/{databases['mlflow']}".replace(
            "postgresql://", "postgresql+psycopg://", 1
        ),
        "PYTHONUNBUFFERED": "1",
    }
    if broker_url:
        env["MLOPS_CELERY_BROKER_URL"] = broker_url
    stack = None
    try:
        stack = start_stack(home, env, workers)
        stack.descendants = psutil.Process(stack.proc.pid).children(recursive=True)
        result.settled_s = settle(stack)
        worker_pids = [pid for pid, _ in stack.workers.values()]
        result.workers_idle_gb = PeakRss.tree_rss(worker_pids) / 1024**3
        last = FIRST_DAY + timedelta(days=args.days - 1)
        command = [
            sys.executable, "-m", "dagster", "asset", "materialize",
            "-m", "mlops_assets.definitions", "--select", ASSETS,
            "--partition-range", f"{FIRST_DAY}...{last}",
        ]  # fmt: skip
        if config == "multiprocess":
            # Named in the run config: a run of light steps only (the fraud ingestion) would
            # otherwise run in process under the default executor (`core/runs.py`).
            command += [
                "--config-json",
                json.dumps({"execution": {"config": {"multiprocess": {}}}}),
            ]
        run_env = {**stack.env, "MLOPS_EXECUTOR": executor}
        log = home / "materialize.log"
        load_start = os.getloadavg()[0]
        machine_busy = busy_cpu_seconds()
        workers_cpu = cpu_seconds(worker_pids)
        with open(log, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(
                command,
                env=run_env,
                cwd=home,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            with PeakRss([proc.pid, *worker_pids]) as peak:
                # wait4: the command's CPU time, with that of the step processes it reaped.
                while True:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    if time.perf_counter() - start > args.timeout:
                        os.killpg(proc.pid, signal.SIGKILL)
                        pid, status, usage = os.wait4(proc.pid, 0)
                        result.note = f"killed after {args.timeout:.0f} s"
                        break
                    time.sleep(0.05)
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
            result.seconds = time.perf_counter() - start
        result.code = proc.returncode
        result.cpu_ours = usage.ru_utime + usage.ru_stime + cpu_seconds(worker_pids) - workers_cpu
        result.cpu_machine = busy_cpu_seconds() - machine_busy
        result.peak_gb = peak.peak / 1024**3
        result.workers_after_gb = PeakRss.tree_rss(worker_pids) / 1024**3
        result.load = (load_start, peak.load_max)
        if result.code != 0 and not result.note:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            result.note = f"exit {result.code}, log {log}"
            print("\n".join(tail), file=sys.stderr, flush=True)
        result.objects, result.megabytes = bucket_contents(stack.env)
        result.online_keys = count_online_keys(args.redis_url, project)
        for name, (_, worker_log) in stack.workers.items():
            text = worker_log.read_text(errors="replace")
            result.steps_per_worker[name] = len(re.findall(r"Task \S+\[[^\]]+\] received", text))
        result.step_seconds = step_durations(f"{server}/{databases['dagster']}")
    except RuntimeError as exc:
        result.note = str(exc).splitlines()[0]
        print(exc, file=sys.stderr, flush=True)
    finally:
        if stack is not None:
            stop_stack(stack)
        drop_databases(args.postgres_admin_url, list(databases.values()))
        delete_online_keys(args.redis_url, project)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------
# Orchestration and the table.
# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=14, help="days from 2024-01-01")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per backfill")
    parser.add_argument(
        "--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/12",
        help="Feast's online store (each run's keys are deleted after it)",
    )
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672")
    parser.add_argument("--keep", action="store_true", help="keep each run's MLOPS_HOME and logs")
    args = parser.parse_args()

    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    if args.days < 1:
        parser.error("--days must be at least 1")

    workdir = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    vhost = ""
    if any(CONFIGS[c][1] for c in configs):
        vhost = f"mlops-bench-{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    broker_url = f"{args.rabbitmq_url.rstrip('/')}/{vhost}" if vhost else ""
    last = FIRST_DAY + timedelta(days=args.days - 1)
    print(
        f"fraud backfill {FIRST_DAY}...{last} ({args.days} days, default volume), stack profile; "
        f"{os.cpu_count()} cores, load average {'/'.join(f'{x:.2f}' for x in os.getloadavg())}"
        f"; workdir {workdir}",
        flush=True,
    )
    results: list[Result] = []
    try:
        for n in range(1, args.repeat + 1):
            for config in configs:
                res = run_one(config, n, args, workdir, broker_url)
                results.append(res)
                shown = (
                    f"{res.seconds:.1f} s, peak {res.peak_gb:.2f} GB (stack quiet after "
                    f"{res.settled_s:.0f} s)"
                    if res.code == 0
                    else f"FAILED ({res.note})"
                )
                print(f"  {config:<13} #{n}: {shown}", flush=True)
    finally:
        if vhost:
            rabbitmqctl("delete_vhost", vhost)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(results, configs)
    # Other work on the machine slows every configuration: the figures mean little under load.
    print(
        f"load average at the end: {'/'.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"({os.cpu_count()} cores)"
    )


def print_table(results: list[Result], configs: list[str]) -> None:
    print(
        f"\n{'config':<13} {'run':>3} {'wall s':>8} {'peak GB':>8} {'workers GB idle/after':>21} "
        f"{'steps':>5} {'step s':>7} {'objects':>7} {'MB':>6} {'online keys':>11} "
        f"{'CPU s ours/all':>15} {'load start/max':>15}  steps per worker"
    )
    for r in results:
        if r.code != 0:
            print(f"{r.config:<13} {r.repeat:>3} {'failed':>8}  {r.note}")
            continue
        steps = ", ".join(f"{k} {v}" for k, v in r.steps_per_worker.items()) or "-"
        idle = f"{r.workers_idle_gb:.2f}/{r.workers_after_gb:.2f}" if r.steps_per_worker else "-"
        print(
            f"{r.config:<13} {r.repeat:>3} {r.seconds:>8.1f} {r.peak_gb:>8.2f} {idle:>21} "
            f"{len(r.step_seconds):>5} {sum(r.step_seconds.values()):>7.1f} "
            f"{r.objects:>7} {r.megabytes:>6.1f} {r.online_keys:>11} "
            f"{r.cpu_ours:>7.0f}/{r.cpu_machine:<7.0f} {r.load[0]:>7.2f}/{r.load[1]:<7.2f}  {steps}"
        )
    ok = [r for r in results if r.code == 0]
    steps = sorted({step for r in ok for step in r.step_seconds})
    if steps:  # where the time went, step by step (Dagster's own durations)
        print(f"\n{'step s':<17} " + " ".join(f"{step:>24}" for step in steps))
        for r in ok:
            cells = " ".join(f"{r.step_seconds.get(step, float('nan')):>24.1f}" for step in steps)
            print(f"{r.config:<13} {r.repeat:>3} {cells}")
    base = [r.seconds for r in ok if r.config == "in_process"]
    if len({r.repeat for r in ok}) > 1 or base:
        print()
        for config in configs:
            times = [r.seconds for r in ok if r.config == config]
            if not times:
                continue
            med = statistics.median(times)
            rel = f", {med / statistics.median(base):.2f}x in_process" if base else ""
            peaks = statistics.median(r.peak_gb for r in ok if r.config == config)
            print(f"{config:<13} median of {len(times)}: {med:.1f} s, peak {peaks:.2f} GB{rel}")


if __name__ == "__main__":
    main()
