"""SIGTERM and SIGINT stop `mlops dev`, `mlops serve` and `mlops stack` with everything they
started, also when started in the background by a shell.

Each command runs as a subprocess the way `mlops ... &` runs in a script: SIGINT (and SIGQUIT)
ignored, which the process inherits. Once it answers on its port, its descendants are collected
(dagster dev's webserver, daemon and code servers; the stack's SeaweedFS and MLflow server and
their workers), the signal is sent to the `mlops` process alone (as `kill <pid>` does), and
within 30 s: the `mlops` process has exited, none of those descendants is left, and nothing
answers on the port.

`mlops stack` is run with `--no-dagster` (its `dagster dev` is the one `mlops dev` runs; the full
stack with Dagster is stopped by SIGTERM in test_native_stack.py), on fresh PostgreSQL databases
and the tests' Redis like the tests there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops_assets.tooling.native_stack import port_is_open
from mlops_assets_tests.fixtures.paths import REPO_ROOT
from mlops_assets_tests.fixtures.services import free_port
from mlops_assets_tests.fixtures.stack_databases import (
    FOREIGN_ENV,
    drop_databases,
    fresh_databases,
    stack_env,
)

STOP_WITHIN_S = 30.0


def _like_shell_background() -> None:
    # What a non-interactive shell does to a command started with `&`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    # A user's shell leaves SIGTERM at its default; this test process may not have. When pytest
    # itself was started with `&` (SIGINT ignored), an in-process Dagster run earlier in the same
    # worker maps SIGTERM onto SIGINT's disposition on its way out (dagster._utils.interrupts.
    # setup_interrupt_handlers) and leaves it ignored, which a child inherits through exec:
    # uvicorn then re-raised the SIGTERM it had handled into an ignored signal and exited 0.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _mlops() -> list[str]:
    mlops = Path(sys.executable).with_name("mlops")
    return [str(mlops)] if mlops.exists() else [sys.executable, "-m", "mlops_assets.tooling.cli"]


def _local_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MLOPS_") and k not in FOREIGN_ENV
    }
    env.update(
        {
            "MLOPS_PROFILE": "local",
            "MLOPS_HOME": str(home),
            "MLOPS_FEAST_REPO": str(REPO_ROOT / "feature_repo"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def descendants(pid: int) -> list[tuple[int, float]]:
    """Every process below ``pid`` as ``(pid, start time)``: psutil's when installed, else read
    from /proc (the start time tells a process from a later one that reused its pid)."""
    try:
        import psutil
    except ImportError:
        return _proc_descendants(pid)
    return [(p.pid, p.create_time()) for p in psutil.Process(pid).children(recursive=True)]


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """``(parent pid, start time in clock ticks)`` of ``pid`` from /proc, or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return int(fields[1]), float(fields[19])


def _proc_descendants(pid: int) -> list[tuple[int, float]]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))):
            parents.setdefault(stat[0], []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if stat := _proc_stat(child):
                found.append((child, stat[1]))
                todo.append(child)
    return found


def alive(processes: list[tuple[int, float]]) -> list[int]:
    """The pids of ``processes`` still running (zombies, already dead, do not count)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    left = []
    for pid, started in processes:
        if psutil is not None:
            try:
                p = psutil.Process(pid)
                if p.create_time() == started and p.status() != psutil.STATUS_ZOMBIE:
                    left.append(pid)
            except psutil.NoSuchProcess:
                pass
            continue
        stat = _proc_stat(pid)
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if stat else ""
        if stat and stat[1] == started and status != "Z":
            left.append(pid)
    return left


@dataclass
class Started:
    proc: subprocess.Popen
    port: int
    output: Path

    def tail(self) -> str:
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return "\n".join(text.splitlines()[-40:])


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Started]]:
    """Start ``mlops <args>`` like `&` does, its output to a file; killed at the end if left."""
    started: list[Started] = []

    def run(args: list[str], env: dict[str, str], port: int) -> Started:
        output = tmp_path / f"mlops-{args[0]}.out"
        with open(output, "wb") as out:
            proc = subprocess.Popen(
                [*_mlops(), *args],
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_like_shell_background,
                start_new_session=True,  # so that a failed test can kill what is left
            )
        started.append(Started(proc, port, output))
        return started[-1]

    yield run
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(s.proc.pid, signal.SIGKILL)


def _wait_until_answers(started: Started, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert started.proc.poll() is None, (
            f"exited with {started.proc.returncode} before answering:\n{started.tail()}"
        )
        assert time.monotonic() < deadline, f"no answer within {timeout:.0f} s:\n{started.tail()}"
        time.sleep(0.3)


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    return check


def _signal_and_check(
    started: Started, signum: int, expect_children: int = 1, codes: tuple[int, ...] = (0,)
) -> float:
    """Send ``signum`` to the mlops process alone; assert it exits with one of ``codes`` and that
    it and its tree are gone and the port is closed within :data:`STOP_WITHIN_S`. Returns the
    seconds the stop took."""
    tree = descendants(started.proc.pid)
    assert len(tree) >= expect_children, f"expected child processes, found {tree}"
    began = time.monotonic()
    os.kill(started.proc.pid, signum)
    try:
        code = started.proc.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_WITHIN_S:.0f} s after {signum!r}:\n{started.tail()}")
    # Children stopped by the launcher are gone before it exits; allow what is left of 30 s.
    while alive(tree) and time.monotonic() - began < STOP_WITHIN_S:
        time.sleep(0.2)
    took = time.monotonic() - began
    assert code in codes, f"exit code {code} after {signal.Signals(signum).name}:\n{started.tail()}"
    assert alive(tree) == [], f"left running after {took:.1f} s:\n{started.tail()}"
    assert not port_is_open("127.0.0.1", started.port)
    assert took < STOP_WITHIN_S
    return took


@pytest.mark.timeout(150)
def test_dev_stops_with_every_child_on_sigterm_when_started_with_ampersand(
    tmp_path: Path, start: Callable[..., Started]
) -> None:
    port = free_port()
    started = start(["dev", "-p", str(port), "-h", "127.0.0.1"], _local_env(tmp_path), port)
    _wait_until_answers(started, _http_ok(f"http://127.0.0.1:{port}/server_info"), timeout=120)
    # dagster dev, its webserver, its daemon and at least one code server (`dagster api grpc`).
    _wait_until_answers(started, lambda: len(descendants(started.proc.pid)) >= 4, timeout=30)
    _signal_and_check(started, signal.SIGTERM, expect_children=4)
    # It went through dagster dev's own shutdown, not a SIGKILL of its group.
    assert "Dagster services shut down" in started.output.read_text(errors="replace")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_on_signal_when_started_with_ampersand(
    tmp_path: Path, start: Callable[..., Started], signum: int
) -> None:
    port = free_port()
    started = start(["serve", "--port", str(port)], _local_env(tmp_path), port)
    _wait_until_answers(started, lambda: port_is_open("127.0.0.1", port), timeout=60)
    # uvicorn serves in the mlops process itself: no child to leave behind, the port to close.
    # Once shut down it raises the signal again with the disposition it found: SIGTERM's default
    # ends the process by that signal, the SIGINT that `&` left ignored does nothing.
    code = -signum if signum == signal.SIGTERM else 0
    _signal_and_check(started, signum, expect_children=0, codes=(code,))
    assert "Application shutdown complete" in started.output.read_text(errors="replace")


@pytest.mark.stack
@pytest.mark.timeout(150)
def test_stack_stops_every_service_on_sigint_when_started_with_ampersand(
    tmp_path: Path, start: Callable[..., Started], redis_url: str
) -> None:
    databases = fresh_databases()
    ports = {"s3": free_port(), "mlflow": free_port(), "dagster": free_port()}
    env = stack_env(tmp_path, redis_url, databases)
    try:
        started = start(
            ["stack", "--no-dagster", *(f"--{n}-port={p}" for n, p in ports.items())],
            env,
            ports["mlflow"],
        )
        _wait_until_answers(
            started, lambda: "stack ready (no Dagster)" in started.tail(), timeout=120
        )
        _signal_and_check(started, signal.SIGINT, expect_children=2)  # SeaweedFS, MLflow
        assert not port_is_open("127.0.0.1", ports["s3"])
        assert "SIGINT: stopping the stack" in started.tail()
    finally:
        drop_databases(databases)
