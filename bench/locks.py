"""Store-wide mutexes shared by every process that uses one store: a file lock beside a file
store (SQLite, an Optuna journal; one host), a PostgreSQL advisory lock (many hosts).

Used by the Optuna study lock (:mod:`bench.tuning.storage`) and by MLflow job claims and schema
set-up (:mod:`bench.tracking`).
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def file_lock(store: Path) -> Iterator[None]:
    """An exclusive lock on ``<store>.bench-lock``, held for the ``with`` block."""
    lock_file = store.with_name(store.name + ".bench-lock")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
