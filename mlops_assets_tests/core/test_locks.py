"""Named locks of a deployment (``mlops_assets.core.locks``), held by real processes.

Each lock kind is tested the same way: a ``flock`` in a folder (the local profile) and, marked
``stack``, a PostgreSQL advisory lock in a fresh database of the local server. A holder is a
Python process of its own that takes the lock, says so on stdout and keeps it until the test
writes a line to its stdin (or kills it).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mlops_assets.core.locks import LockTimeout, advisory_key, lock_space, named_lock
from mlops_assets.core.profiles import load_settings
from mlops_assets_tests.fixtures.processes import ChildProcess

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
