"""Named locks shared by every process of one deployment, for the few decisions that must not
interleave: publishing a partition (two runs writing one day), moving a model's ``champion``
alias (two gates comparing against the same old champion).

A lock lives in a *lock space*, one per deployment:

* ``local`` profile: a folder (``<home>/.locks``); each lock is an ``flock`` on a file there, so
  it holds between the processes of this machine and is released by the kernel when a process
  dies, even by ``kill -9``;
* ``stack`` profile: the PostgreSQL database of the deployment; each lock is a session-level
  advisory lock, held between machines and released by the server when the holder's connection
  drops (a dead process never keeps it).

Neither leaves anything to clean up after a crash, which is why they are used rather than lock
objects in the bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

from mlops_assets.core.profiles import Settings, libpq_url, redact_url

# How often a waiter tries again. Short enough that a publish barely waits; long enough that a
# waiting process costs nothing.
_POLL_S = 0.05
_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
# Characters of a lock's name kept in its file name before a digest replaces the rest.
_MAX_READABLE = 160


class LockTimeout(TimeoutError):
    """A lock was not free within the time asked."""


def lock_space(settings: Settings) -> str:
    """Where the locks of ``settings``' deployment live: its PostgreSQL URL, else a folder."""
    return settings.postgres_url or str(Path(settings.home) / ".locks")


@contextlib.contextmanager
def named_lock(space: str, name: str, *, timeout_s: float | None = None) -> Iterator[None]:
    """Hold the lock ``name`` of ``space`` (see :func:`lock_space`) for the ``with`` block.

    Waits while another process holds it; raises :class:`LockTimeout` after ``timeout_s``
    seconds (``None``: wait as long as it takes).
    """
    if _is_postgres(space):
        with _advisory_lock(space, name, timeout_s):
            yield
    else:
        if "://" in space:
            # A URL of anything else (redis://, s3://) would otherwise become a local folder
            # named "redis:", and the lock would hold on this machine only, silently.
            raise ValueError(
                f"lock space {redact_url(space)!r} is neither a postgresql:// URL nor a folder"
            )
        with _file_lock(Path(space), name, timeout_s):
            yield


def _is_postgres(space: str) -> bool:
    # libpq takes postgres:// as well as postgresql://; SQLAlchemy URLs name a driver
    # (postgresql+psycopg://).
    scheme = space.split("://", 1)[0] if "://" in space else ""
    return scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+")


def _deadline(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def _wait_or_give_up(deadline: float | None, name: str, timeout_s: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise LockTimeout(f"lock {name!r} still held by another process after {timeout_s:g} s")
    time.sleep(_POLL_S)


@contextlib.contextmanager
def _file_lock(folder: Path, name: str, timeout_s: float | None) -> Iterator[None]:
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _lock_file_name(name)
    deadline = _deadline(timeout_s)
    with open(path, "a") as handle:
        # Non-blocking tries in a loop rather than one blocking flock: a blocked flock cannot be
        # given a timeout, and a signal (Ctrl-C) must still stop a waiting run.
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                _wait_or_give_up(deadline, name, timeout_s)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_file_name(name: str) -> str:
    """A file name for lock ``name``: readable, and within the 255 bytes a file name may have."""
    safe = _SAFE.sub("_", name)
    if len(safe) > _MAX_READABLE:
        # Long names keep a readable head and a digest of the whole name, so two long names
        # that share their first characters are still two locks.
        safe = f"{safe[:_MAX_READABLE]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return safe + ".lock"


def advisory_key(name: str) -> int:
    """The signed 64-bit key PostgreSQL's advisory locks take, derived from ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _advisory_lock(url: str, name: str, timeout_s: float | None) -> Iterator[None]:
    import psycopg

    key = advisory_key(name)
    deadline = _deadline(timeout_s)
    # A connection of its own: the lock belongs to the session, and closing it releases the lock
    # whatever happens in the block.
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as conn:
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            _wait_or_give_up(deadline, name, timeout_s)
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
