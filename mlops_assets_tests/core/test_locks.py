"""Named locks of a deployment (``mlops_assets.core.locks``), held by real processes.

Each lock kind is tested the same way: a ``flock`` in a folder (the local profile) and, marked
``stack``, a PostgreSQL advisory lock in a fresh database of the local server. A holder is a
Python process of its own that takes the lock, says so on stdout and keeps it until the test
writes a line to its stdin (or kills it).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlops_assets.core.locks import LockTimeout, advisory_key, lock_space, named_lock
from mlops_assets.core.profiles import load_settings
from mlops_assets_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(120)

NAME = "mlflow.champion.fraud_classifier"

# A process that takes lock argv[2] of space argv[1] (waiting argv[3] seconds, or "none"),
# prints "held <seconds it waited>", and keeps it until a line arrives on stdin.
_HOLDER = r"""
import sys, time
from mlops_assets.core.locks import LockTimeout, named_lock

space, name, timeout = sys.argv[1], sys.argv[2], sys.argv[3]
print("started", flush=True)
began = time.monotonic()
try:
    with named_lock(space, name, timeout_s=None if timeout == "none" else float(timeout)):
        print(f"held {time.monotonic() - began:.3f}", flush=True)
        sys.stdin.readline()
except LockTimeout as exc:
    print(f"timeout {exc}", flush=True)
    sys.exit(3)
print("released", flush=True)
"""


class ChildProcess:
    """A Python child whose stdout lines the test waits for, one expected word at a time.

    Lines are read by a thread into a queue, so waiting for a line never blocks the test past
    its timeout. ``stderr`` goes to a file, shown when an expected line does not come.
    """

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, log: Path) -> None:
        self.log = log
        with open(log, "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=REPO_ROOT,
                env={**os.environ, **(env or {})},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._pushed_back: list[str | None] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _next(self, timeout: float) -> str | None:
        if self._pushed_back:
            return self._pushed_back.pop()
        return self.lines.get(timeout=timeout)

    def expect(self, word: str, timeout: float = 60.0) -> str:
        """The next line that starts with ``word`` (lines before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"printed no line starting with {word!r} within {timeout} s")
            try:
                line = self._next(left)
            except queue.Empty:
                continue
            if line is None:
                self._fail(f"exited ({self.proc.wait()}) before a line starting with {word!r}")
            if line.startswith(word):
                return line

    def quiet_for(self, seconds: float) -> bool:
        """True if the child printed nothing for ``seconds`` (e.g. it is still waiting)."""
        try:
            line = self._next(seconds)
        except queue.Empty:
            return True
        self._pushed_back.append(line)  # kept for the next expect
        return False

    def send(self, line: str = "") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self, timeout: float = 60.0) -> int:
        """Close the child's stdin (a holder lets go) and return its exit code."""
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def _fail(self, what: str) -> None:
        self.stop()
        stderr = self.log.read_text()[-3000:] if self.log.exists() else ""
        pytest.fail(f"child {self.proc.args[1:3]} {what}; stderr:\n{stderr}")


@pytest.fixture
def children(tmp_path: Path):
    """Start holders with ``children(space, name, timeout="none")``; all stopped at the end."""
    started: list[ChildProcess] = []

    def start(space: str, name: str = NAME, timeout: str = "none") -> ChildProcess:
        child = ChildProcess(
            ["-c", _HOLDER, space, name, timeout], log=tmp_path / f"child-{len(started)}.log"
        )
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop()


@pytest.fixture(params=["file", pytest.param("postgres", marks=pytest.mark.stack)])
def space(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A lock space of each kind: a folder, or a fresh PostgreSQL database."""
    if request.param == "file":
        return str(tmp_path / "locks")
    return request.getfixturevalue("postgres_database")("locks")


def test_a_second_process_waits_until_the_holder_releases(space: str, children) -> None:
    first = children(space)
    first.expect("held")
    # Held means held for this process too, and for a second process, which waits.
    with pytest.raises(LockTimeout), named_lock(space, NAME, timeout_s=0.2):
        pass
    second = children(space)
    second.expect("started")
    assert second.quiet_for(1.0), "the second process took a lock the first one holds"

    first.send()
    first.expect("released")
    waited = float(second.expect("held", timeout=10).split()[1])
    assert waited >= 0.9
    assert first.finish() == 0
    second.send()
    assert second.finish() == 0
    with named_lock(space, NAME, timeout_s=0):  # free again once both are done
        pass


def test_a_holder_killed_with_sigkill_never_keeps_the_lock(space: str, children) -> None:
    holder = children(space)
    holder.expect("held")
    waiter = children(space)
    waiter.expect("started")
    assert waiter.quiet_for(0.5)

    holder.kill()  # kill -9: no finally block, no unlock; the kernel or the server releases it
    waiter.expect("held", timeout=10)
    waiter.kill()  # and the waiter, now the holder, dies the same way
    began = time.monotonic()
    with named_lock(space, NAME, timeout_s=10):
        assert time.monotonic() - began < 5


def test_a_lock_not_free_in_time_raises_lock_timeout_naming_it(space: str, children) -> None:
    holder = children(space)
    holder.expect("held")

    began = time.monotonic()
    with (
        pytest.raises(LockTimeout, match=f"lock '{NAME}' still held .* after 0.5 s"),
        named_lock(space, NAME, timeout_s=0.5),
    ):
        pass
    assert 0.5 <= time.monotonic() - began < 5
    assert issubclass(LockTimeout, TimeoutError)

    impatient = children(space, timeout="0.3")
    assert impatient.expect("timeout").startswith(f"timeout lock '{NAME}'")
    assert impatient.finish() == 3

    holder.send()
    assert holder.finish() == 0
    with named_lock(space, NAME, timeout_s=0):
        pass


def test_other_names_are_other_locks_and_one_process_excludes_itself(space: str) -> None:
    with named_lock(space, NAME, timeout_s=0):
        with named_lock(space, NAME + ".other", timeout_s=0):
            pass
        # Not reentrant: a second taker in the same process (another thread, a nested gate)
        # waits like any other process.
        errors: list[BaseException] = []

        def take() -> None:
            try:
                with named_lock(space, NAME, timeout_s=0.2):
                    pass
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=take)
        thread.start()
        thread.join(timeout=30)
        assert len(errors) == 1 and isinstance(errors[0], LockTimeout)


@pytest.mark.stack
def test_every_spelling_of_one_postgres_database_is_one_lock_space(postgres_database) -> None:
    url = postgres_database("locks")
    with named_lock(url, NAME, timeout_s=0):
        for spelling in (
            url.replace("postgresql://", "postgresql+psycopg://", 1),
            url.replace("postgresql://", "postgres://", 1),
        ):
            with pytest.raises(LockTimeout), named_lock(spelling, NAME, timeout_s=0):
                pass
    # Advisory keys are signed 64-bit integers, stable across processes and Python versions.
    key = advisory_key(NAME)
    assert -(2**63) <= key < 2**63 and key == advisory_key(NAME)


def test_a_url_that_is_not_postgres_is_refused_not_made_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with (
        pytest.raises(ValueError, match="neither a postgresql:// URL nor a folder") as refused,
        named_lock("redis://:secret@127.0.0.1:6379/0", NAME),
    ):
        pass
    assert "secret" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_long_names_get_file_names_that_fit_and_stay_distinct(tmp_path: Path) -> None:
    head = "model." + "x" * 400
    with (
        named_lock(str(tmp_path), head + "a", timeout_s=0),
        named_lock(str(tmp_path), head + "b", timeout_s=0),
    ):
        pass
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 2 and all(len(n.encode()) <= 255 for n in names)


def test_the_lock_space_of_each_profile(local_home: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_POSTGRES_URL", raising=False)
    assert lock_space(load_settings()) == str(local_home / ".locks")
    monkeypatch.setenv("MLOPS_POSTGRES_URL", "postgresql://u@db:5432/mlops")
    assert lock_space(load_settings()) == "postgresql://u@db:5432/mlops"
