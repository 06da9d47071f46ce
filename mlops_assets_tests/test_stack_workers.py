"""`mlops stack --workers`: the native stack as a Celery cluster on this machine's RabbitMQ.

The real command line (`mlops stack --no-dagster --workers 2 --training-workers 1`, free ports,
fresh databases, a virtual host of the test's own on the shared broker) must start three
`mlops worker` processes once MLflow answers, each logging to its own file and listening before
the launcher says "stack ready", that Celery itself finds on the broker with the queues the plan
gave them; a SIGTERM to the launcher must stop them
(each through its own warm shutdown) with the rest of the stack, exit code 0, nothing left.
Running steps on them is `test_celery_cluster.py`'s business.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest

from mlops_assets_tests.fixtures import rabbitmq
from mlops_assets_tests.fixtures.stack_databases import drop_databases, fresh_databases, stack_env
from mlops_assets_tests.test_native_stack import (
    NativeStack,
    _alive,
    _start_services,
    _stop_and_check,
    _stop_leftovers,
)

rabbitmq_vhost = rabbitmq.rabbitmq_vhost  # the fixture, for the test below

# The workers of `--workers 2 --training-workers 1` and the queues each must consume.
EXPECTED_QUEUES = {"default-1": ["default"], "default-2": ["default"], "training-1": ["training"]}
# "started Celery worker default-1 (queues default, pid 1234; log: /.../worker-default-1.log)"
STARTED = re.compile(r"started Celery worker (\S+) \(queues (\S+), pid (\d+); log: (\S+)\)")


def _start(home: Path, env: dict[str, str], databases: dict[str, str], *args: str) -> NativeStack:
    """`mlops stack --no-dagster ARGS` on free ports picked by the launcher (``--*-port 0``);
    returns once it says it is ready, with the ports it took."""
    stack = _start_services(home, env, {"s3": 0, "mlflow": 0}, databases, "workers", *args)
    stack.ports = {
        "s3": urlparse(stack.env["AWS_ENDPOINT_URL"]).port,
        "mlflow": urlparse(stack.env["MLFLOW_TRACKING_URI"]).port,
    }
    return stack


def _not_ready(logs: dict[str, Path]) -> list[str]:
    """The workers that have not logged Celery's ``<name>@<host> ready.``."""
    host = socket.gethostname()
    return sorted(
        name for name, log in logs.items() if f"{name}@{host} ready." not in log.read_text()
    )


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_stack_runs_its_workers_and_stops_them_with_itself(
    tmp_path: Path, redis_url: str, rabbitmq_vhost: str
) -> None:
    import celery

    databases = fresh_databases()
    env = {**stack_env(tmp_path, redis_url, databases), "MLOPS_CELERY_BROKER_URL": rabbitmq_vhost}
    stack = None
    try:
        stack = _start(tmp_path, env, databases, "--workers", "2", "--training-workers", "1")
        assert all(stack.ports.values())
        assert stack.env["MLOPS_EXECUTOR"] == "celery"
        assert stack.env["MLOPS_CELERY_BROKER_URL"] == rabbitmq_vhost

        started = STARTED.findall(stack.output.read_text())
        assert {name: queues for name, queues, _, _ in started} == {
            name: ",".join(queues) for name, queues in EXPECTED_QUEUES.items()
        }
        logs = {name: Path(log) for name, _, _, log in started}
        assert {log.parent for log in logs.values()} == {tmp_path / ".dagster-stack" / "stack-logs"}
        workers = [psutil.Process(int(pid)) for _, _, pid, _ in started]
        # Each in a process group of its own, a child of the launcher.
        assert {w.pid for w in workers} <= {c.pid for c in stack.descendants}
        assert all(psutil.Process(w.pid).ppid() == stack.proc.pid for w in workers)
        # "stack ready" waits for them: every worker listens by then.
        assert not _not_ready(logs), stack.tail()

        app = celery.Celery(broker=rabbitmq_vhost)
        try:
            answered = app.control.inspect(timeout=3).active_queues() or {}
        finally:
            app.close()
        host = socket.gethostname()
        assert {node: sorted(q["name"] for q in queues) for node, queues in answered.items()} == {
            f"{name}@{host}": queues for name, queues in EXPECTED_QUEUES.items()
        }

        _stop_and_check(stack)
        assert not _alive(workers)
        for name, log in logs.items():  # each ended by its own warm shutdown, not a SIGKILL
            assert "mlops worker: stopped" in log.read_text(errors="replace"), name
    finally:
        if stack is not None:
            _stop_leftovers(stack)
        drop_databases(databases)
