"""Whether a store or a storage answers, asked once and quickly before a command starts work.

MLflow's HTTP client retries a refused connection 7 times with exponential backoff, so an
unreachable tracking server used to cost about 250 s before the first error; a command asks
here first, with :data:`TIMEOUT` seconds, and says which address and why in one line. Retries
stay as MLflow sets them for a server that goes away mid-run. Nothing here creates a file, a
database or a table: ``bench doctor`` asks the same questions and must leave no trace.

Example::

    >>> problem("sqlite:////nonexistent-folder/mlflow.db")
    'folder /nonexistent-folder does not exist'
"""

from __future__ import annotations

import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

TIMEOUT = 10.0
"""Seconds to wait for a server's answer."""


def problem(url: str) -> str | None:
    """Why ``url`` (an MLflow tracking URI or an Optuna storage: ``sqlite:///F``,
    ``postgresql://...``, ``http(s)://...``, a plain file path) cannot be used now, or None."""
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else "file"
    if scheme in ("http", "https"):
        return _http_problem(url)
    if scheme == "postgresql":
        return _postgres_problem(url)
    if scheme == "sqlite":
        return _file_problem(Path(url.split(":///", 1)[1].split("?", 1)[0]), sqlite=True)
    if scheme == "file":
        return _file_problem(Path(url.removeprefix("file://").removeprefix("journal:")))
    return None


def _http_problem(url: str) -> str | None:
    """Any HTTP answer means a server is there (an auth error included: MLflow says more)."""
    parts = urlsplit(url)
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2], path="/health", query="")
    try:
        with urllib.request.urlopen(bare.geturl(), timeout=TIMEOUT):  # noqa: S310  http(s) only
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no answer from {bare.scheme}://{bare.netloc} ({reason})"


def _postgres_problem(url: str) -> str | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    try:
        engine = create_engine(
            url, poolclass=NullPool, connect_args={"connect_timeout": int(TIMEOUT)}
        )
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # SQLAlchemy's errors: refused, unknown host, bad password, driver
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return reason[0] if reason else type(exc).__name__
    return None


def _file_problem(path: Path, sqlite: bool = False) -> str | None:
    """A file store needs a writable folder, and an existing file must be readable (a SQLite
    one a database, opened read-only)."""
    path = path.expanduser().resolve()
    folder = path.parent
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable"
    if path.exists():
        if not path.is_file() or not os.access(path, os.R_OK | os.W_OK):
            return f"{path} is not a readable, writable file"
        if sqlite:
            try:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT)
                try:
                    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                finally:
                    db.close()
            except sqlite3.Error as exc:
                return f"{path} is not a SQLite database ({exc})"
    return None
