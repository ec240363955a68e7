"""Store-wide mutexes shared by every process that uses one store: a file lock beside a file
store (SQLite, an Optuna journal; one host), a PostgreSQL advisory lock (many hosts).

Used by the Optuna study lock (:mod:`bench.tuning.storage`) and by MLflow job claims and schema
set-up (:mod:`bench.tracking`).
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class FileLock:
    """An exclusive ``flock`` on the file ``path``, taken by :meth:`acquire`, dropped by
    :meth:`release`.

    The kernel drops it when its holder dies, however it dies: a lock left by a SIGKILLed
    process is free at once, with no grace period to wait out and no pid to check. The file
    stays; it is the lock's name, not the lock. Threads of one process take turns on one
    instance. It speaks Optuna's ``BaseJournalFileLock`` (``acquire() -> bool``, ``release()``),
    so a journal file's writers share it too (:mod:`bench.tuning.storage`).

    Example::

        >>> import tempfile
        >>> lock = FileLock(Path(tempfile.mkdtemp()) / "x.lock")
        >>> lock.acquire(), FileLock(lock.path).acquire(blocking=False)
        (True, False)
        >>> lock.release(); FileLock(lock.path).acquire(blocking=False)
        True
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._turn = threading.Lock()
        self._handle: Any = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False``, return False at once when it is held."""
        if not self._turn.acquire(blocking):
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a")  # noqa: SIM115  (open until release)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BaseException:
                handle.close()
                raise
        except BlockingIOError:
            self._turn.release()
            return False
        except BaseException:
            self._turn.release()
            raise
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
        self._turn.release()


def lock_path(store: Path, suffix: str = "bench-lock") -> Path:
    """The lock file beside ``store``: ``<store>.<suffix>``."""
    return store.with_name(f"{store.name}.{suffix}")


@contextlib.contextmanager
def file_lock(store: Path) -> Iterator[None]:
    """An exclusive :class:`FileLock` on ``<store>.bench-lock``, held for the ``with`` block."""
    lock = FileLock(lock_path(store))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def engine(url: str) -> Any:
    """A SQLAlchemy engine without a pool (a lock must hold its own connection)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})


@contextlib.contextmanager
def advisory_lock(engine: Any, name: str) -> Iterator[None]:
    """A PostgreSQL session-level advisory lock on ``name``, held for the ``with`` block."""
    from sqlalchemy import text

    key = zlib.crc32(name.encode())
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
