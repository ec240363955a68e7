"""Where a study lives, and the study-wide lock every worker on every machine shares.

``journal`` (a file; many processes on one machine), ``sqlite`` (one process) or ``postgresql``
(many machines). PostgreSQL studies also get heartbeats, so a trial whose machine died is
failed and re-queued (see :func:`bench.tuning.study.reap_dead_trials`).

Example::

    >>> from bench.tuning.storage import parse_storage
    >>> parse_storage("postgresql://bench:secret@db:5432/optuna").display
    'postgresql://bench:***@db:5432/optuna'
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.redact import mask

DEFAULT_STORAGE = "optuna.journal"
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 30
"""A RUNNING trial whose worker sent no heartbeat for this long is failed and re-queued."""


@dataclass(frozen=True)
class StorageSpec:
    """Where a study lives: ``journal`` (a file, many local processes), ``sqlite`` (one
    process) or ``postgresql`` (many machines)."""

    url: str
    kind: str
    path: Path | None = None

    @property
    def display(self) -> str:
        """The URL without its password, for logs, MLflow tags and files."""
        return mask(self.url)


def parse_storage(text: str | None) -> StorageSpec:
    """``--storage``, else ``$BENCH_OPTUNA_STORAGE``, else the journal file ``./optuna.journal``.

    A plain path (or ``journal:PATH``) is a journal file; ``sqlite:///F`` and
    ``postgresql://user:password@host:port/db`` are database URLs.
    """
    text = text or os.environ.get("BENCH_OPTUNA_STORAGE") or DEFAULT_STORAGE
    if "://" not in text:
        path = Path(text.removeprefix("journal:")).expanduser().resolve()
        return StorageSpec(str(path), "journal", path)
    scheme = text.split("://", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        raw = text.split(":///", 1)[1] if ":///" in text else ""
        raw, query = raw.split("?", 1) if "?" in raw else (raw, "")
        if not raw or raw == ":memory:":
            raise BenchError(f"--storage {text}: give a SQLite file, e.g. sqlite:///optuna.db")
        path = Path(raw).resolve()  # the file, without the URL's query (its lock is named after it)
        return StorageSpec(f"sqlite:///{path}" + (f"?{query}" if query else ""), "sqlite", path)
    if scheme == "postgresql":
        return StorageSpec(text, "postgresql")
    raise BenchError(
        f"--storage {text}: unsupported; use a journal file path, sqlite:///FILE (one worker) "
        "or a postgresql:// URL (postgresql://USER:PASSWORD@HOST:PORT/DB)"
    )


def open_storage(spec: StorageSpec) -> Any:
    """The Optuna storage behind ``spec``; an unreachable database is a one-line error."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if spec.kind == "journal":
        try:
            spec.path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(spec.path), journal_lock(spec.path)))
        except OSError as exc:
            raise BenchError(f"Optuna journal {spec.path}: {exc.strerror or exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            kwargs: dict[str, Any] = {}
            if spec.kind == "postgresql":
                kwargs = {
                    "engine_kwargs": {"connect_args": {"connect_timeout": 10}},
                    "heartbeat_interval": HEARTBEAT_SECONDS,
                    "grace_period": GRACE_SECONDS,
                    "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(3),
                }
            if spec.kind != "postgresql":
                return RDBStorage(spec.url, **kwargs)
            # The first connection creates Optuna's tables; two machines starting together
            # would race on that, so it happens under an advisory lock.
            from bench.locks import advisory_lock, engine

            with advisory_lock(engine(spec.url), "bench-optuna-schema"):
                return RDBStorage(spec.url, **kwargs)
    except Exception as exc:  # SQLAlchemy's errors: refused, unknown host, bad password, ...
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if "DB access module" in reason:
            reason = "no database driver; install it with pip install 'bench[postgres]'"
        raise BenchError(f"cannot use Optuna storage {spec.display}: {reason}") from None


def journal_lock(path: Path) -> Any:
    """The lock a journal file's writers append under: a :class:`bench.locks.FileLock` on
    ``<journal>.append-lock``, passed as ``JournalFileBackend(lock_obj=...)``, which calls only
    ``acquire()`` and ``release()``.

    Optuna's own lock (a ``<journal>.lock`` link) stays behind when its holder is killed, and
    the next writer waits out a 30 s grace period before breaking it; the kernel frees this one
    when its holder dies. Not the study lock's file: a worker appends while holding that."""
    from bench.locks import FileLock, lock_path

    return FileLock(lock_path(path, "append-lock"))


class StudyLock:
    """One study-wide mutex for every worker on every machine that shares the storage."""

    def __init__(self, spec: StorageSpec, study: str) -> None:
        self.spec, self.study = spec, study
        self._engine = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        from bench.locks import advisory_lock, engine, file_lock

        if self.spec.path is not None:
            with file_lock(self.spec.path):
                yield
            return
        if self._engine is None:
            self._engine = engine(self.spec.url)
        with advisory_lock(self._engine, f"bench-study:{self.study}"):
            yield


@contextlib.contextmanager
def heartbeat(storage: Any, trial: Any) -> Iterator[None]:
    """Record heartbeats for ``trial`` while it runs (storages made with a heartbeat interval:
    bench's PostgreSQL ones). ``study.optimize`` does this itself; ask-and-tell workers must."""
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()
    trial_id = storage_trial_id(trial)

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name="bench-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def storage_trial_id(trial: Any) -> int:
    """The storage's id of an asked ``optuna.Trial``: the one private Optuna attribute bench
    reads. ``BaseStorage.record_heartbeat`` takes this id, and Optuna offers no public way from
    a ``Trial`` to it (``Trial.number`` counts within the study, the id across the storage).
    tests/test_tuning.py pins it: the id read here is the one the storage maps to the trial."""
    return trial._trial_id
