"""The one way bench fans work out to processes, in two shapes.

- :func:`isolated`: **one process per task** (a ``bench run`` job, a ``bench tune`` worker),
  started from a forkserver that has preloaded what the tasks import. A task that crashes
  (even a segfault or an out-of-memory kill) or overruns its deadline is an outcome, never the
  end of the command; a task process exits when the process that started it dies.
- :func:`mapped`: **many small tasks over a few spawned workers** (feature extraction, MSD
  files): an ordered ``map`` whose workers may be kept for the next call, because spawning a
  worker that imports torch costs seconds. These are spawned, not taken from the forkserver,
  whose preloads are fixed the first time it starts (so it stays the jobs'), and never forked:
  a fork after torch or OpenMP has run can deadlock, and CUDA cannot be used in a forked child.

Both are what a distributed executor replaces one-for-one: a task is a picklable function and
its arguments, and only the parent process reads outcomes and talks to the stores.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """``target(*args)`` in its own process; ``key`` names it in the outcome."""

    key: Any
    target: Callable[..., Any]
    args: tuple = ()
    seconds: float | None = None
    """Killed after this long (None: no limit)."""


@dataclass(frozen=True)
class Outcome:
    key: Any
    status: str
    """``ok`` (``value`` is what the target returned), ``error`` (it raised: ``value`` is the
    one-line message, ``trace`` the traceback), ``died`` (the process ended without a result)
    or ``timeout`` (killed at its deadline)."""
    value: Any = None
    trace: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_PRIVATE_TMP: list[str] = []


def private_tmp() -> str:
    """This process's temporary folder, ``<system temp>/bench-<pid>-tmp``, made the default for
    it (``tempfile``) and for the processes it starts (``TMPDIR``) on first use; folders of
    the same name whose process is gone are removed first.

    multiprocessing's ``pymp-*`` folders (the forkserver's socket) and the temporary folders
    of jobs and logged models all land in it, so a ``kill -9`` of ``bench run`` leaves one
    folder, which the next command that starts processes removes, instead of ``pymp-*`` and
    ``bench-model-*`` folders for good. It stays under the system's temporary folder because
    a socket path may be at most 107 bytes. Removed when the process exits normally."""
    if not _PRIVATE_TMP:
        import re
        import shutil
        import tempfile
        from multiprocessing import util
        from pathlib import Path

        from bench.environment import pid_alive

        system = Path(tempfile.gettempdir())
        for stale in system.glob("bench-*-tmp"):
            found = re.fullmatch(r"bench-(\d+)-tmp", stale.name)
            if found and not pid_alive(int(found[1])):
                shutil.rmtree(stale, ignore_errors=True)
        folder = system / f"bench-{os.getpid()}-tmp"
        folder.mkdir(exist_ok=True)
        tempfile.tempdir = os.environ["TMPDIR"] = str(folder)
        # after multiprocessing's own exit clean-up (priority -100), which removes its pymp-*
        util.Finalize(None, shutil.rmtree, (folder,), {"ignore_errors": True}, exitpriority=-101)
        _PRIVATE_TMP.append(str(folder))
    return _PRIVATE_TMP[0]


def isolated(
    tasks: Iterable[Task],
    workers: int,
    preload: Iterable[str] = (),
    on_poll: Callable[[], None] | None = None,
) -> Iterator[Outcome]:
    """Run each task in its own process, at most ``workers`` at once; yield outcomes as they end.

    Tasks are taken from ``tasks`` only when a process slot is free (a caller can claim work
    lazily). ``on_poll`` runs about once a second while tasks run. Processes are not daemons: joblib
    (a random forest's ``n_jobs``) refuses to start workers inside a daemon.
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    private_tmp()
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(sorted({"bench.processes", *preload}))
    source, exhausted = iter(tasks), False
    running: dict[Any, tuple[Task, Any, float]] = {}

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(running) < max(1, workers):
            task = next(source, None)
            if task is None:
                exhausted = True
                break
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_child, args=(task.target, task.args, sender, os.getpid())
            )
            process.start()
            sender.close()
            deadline = time.monotonic() + task.seconds if task.seconds else float("inf")
            running[receiver] = (task, process, deadline)

    fill()
    while running:
        ended: list[Outcome] = []
        for conn in wait(list(running), timeout=1.0):
            task, process, _ = running.pop(conn)
            try:
                status, value, trace = conn.recv()
            except EOFError:
                _reap(process)
                ended.append(
                    Outcome(task.key, "died", f"worker died (exit code {process.exitcode})")
                )
                continue
            _reap(process)
            ended.append(Outcome(task.key, status, value, trace))
        now = time.monotonic()
        for conn, (task, process, deadline) in list(running.items()):
            if now > deadline:
                process.kill()
                _reap(process)
                running.pop(conn)
                ended.append(
                    Outcome(task.key, "timeout", f"exceeded its {task.seconds:g} s budget")
                )
        # The free slots take their next tasks before the caller sees what ended: recording
        # an outcome (MLflow writes, artifact copies) then overlaps the next task's run
        # instead of leaving its process slot idle.
        fill()
        yield from ended
        if on_poll is not None:
            on_poll()


def _child(target: Callable[..., Any], args: tuple, conn: Any, owner: int) -> None:
    """A task's process: run it, send ``(status, value, traceback)``, exit at once."""
    from bench.environment import exit_with_owner
    from bench.redact import mask

    exit_with_owner(owner)
    try:
        conn.send(("ok", target(*args), ""))
    except BaseException as exc:  # the parent turns any failure into an outcome
        message = mask(f"{type(exc).__name__}: {exc}".splitlines()[0])
        conn.send(("error", message, mask(traceback.format_exc())))
    finally:
        conn.close()
        _stop_joblib_pool()
        os._exit(0)  # nothing left to wait for: the result is sent, outputs are on disk


def _stop_joblib_pool() -> None:
    """Shut joblib's reusable loky pool (bagging, forests with n_jobs) so it leaks nothing."""
    if "joblib" in sys.modules:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)


def _reap(process: Any, grace: float = 30.0) -> None:
    """Join a task process that has reported; kill it if it lingers past ``grace`` seconds."""
    process.join(grace)
    if process.is_alive():
        process.kill()
        process.join()


def one_thread() -> None:
    """A :func:`mapped` worker initializer: workers share the cores between them, not inside
    each one (BLAS and OpenMP pools of one thread)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


_KEPT: dict[tuple[int, Any], Any] = {}


def mapped(
    function: Callable[[Any], Any],
    tasks: list,
    workers: int,
    initializer: Callable[[], None] | None = None,
    keep: bool = False,
) -> Iterator[Any]:
    """``map(function, tasks)`` in order, in ``workers`` spawned processes when more than one.

    ``keep``: the workers stay up for the next call with the same ``workers`` and
    ``initializer`` (worth it when they import torch). If the workers cannot run (one is
    killed, or the main module cannot be re-imported), the remaining tasks run here, with a
    warning, so a dataset still loads, only slower.
    """
    if workers <= 1 or len(tasks) <= 1:
        yield from map(function, tasks)
        return
    from concurrent.futures.process import BrokenProcessPool

    done = 0
    pool = _pool(workers, initializer, keep)
    try:
        for result in pool.map(function, tasks):
            yield result
            done += 1
    except BrokenProcessPool as exc:
        _KEPT.pop((workers, initializer), None)
        log.warning("worker processes failed (%s); continuing in this process", exc)
        yield from map(function, tasks[done:])
    finally:
        if not keep:
            pool.shutdown(wait=True, cancel_futures=True)


def _pool(workers: int, initializer: Callable[[], None] | None, keep: bool) -> Any:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    private_tmp()
    key = (workers, initializer)
    if keep and key in _KEPT:
        return _KEPT[key]
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=initializer)
    if keep:
        _KEPT[key] = pool
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool
