"""The same isolated tasks as :func:`bench.processes.isolated`, on a Dask cluster's workers.

``bench run --cluster tcp://HOST:PORT`` and ``bench tune --cluster ...`` hand their tasks here
(``pip install -e ".[dask]"``). Each Dask task runs its bench task in a child process of the
worker, through :func:`bench.processes.isolated`: Dask cannot stop a running task, so the child
is what enforces a job's time budget, and a job that crashes takes down its child, not the
worker. Only the calling process (the driver) writes records.

Dask runs a task at least once: a task whose worker died is run again elsewhere, up to the
scheduler's ``distributed.scheduler.allowed-failures`` (default 3); a task that kills every
worker it lands on ends as a ``died`` outcome naming the workers it killed. Each task is one
future whose result the driver reads once, so whatever ran twice is recorded once.

Workers are started as Dask documents it (``dask worker ADDRESS``, with a nanny): a nanny's
worker is a daemon process, which multiprocessing does not let start children, so there a
task's process is started with :mod:`subprocess` instead
(:func:`bench.processes.in_subprocess`); a worker that is no daemon (``--no-nanny``, or
``DASK_DISTRIBUTED__WORKER__DAEMON=False``) uses the forkserver, whose preloads start jobs
faster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bench.errors import BenchError
from bench.processes import Outcome, Task, in_subprocess, isolated
from bench.redact import mask

log = logging.getLogger(__name__)

CHECKED_PACKAGES = ("bench", "torch", "scikit-learn", "xgboost", "numpy", "pandas", "optuna")
"""Packages whose versions must match between the driver and every worker, beyond Dask's own
(Python, dask, distributed, cloudpickle, msgpack, ...), which Dask checks itself."""


def cluster_address(address: str | None) -> str | None:
    """``--cluster``, else ``$BENCH_CLUSTER``; None: local processes."""
    return address or os.environ.get("BENCH_CLUSTER") or None


def connect_cluster(address: str | None) -> Any:
    """:func:`connect` to ``address``, else to ``$BENCH_CLUSTER``; None when neither is set."""
    address = cluster_address(address)
    return connect(address) if address else None


def connect(address: str) -> Any:
    """A client of the scheduler at ``address``, refusing a cluster that cannot run bench's
    tasks: no workers, or other versions than here."""
    try:
        from distributed import Client
    except ImportError:
        raise BenchError(
            "--cluster needs Dask: pip install -c requirements.lock -e '.[dask]'"
        ) from None
    try:
        client = Client(address, timeout=15, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise BenchError(f"cannot reach the Dask scheduler at {mask(address)}: {exc}") from None
    try:
        check(client)
    except BaseException:
        client.close()
        raise
    return client


def check(client: Any) -> None:
    """The cluster's workers and their versions."""
    if not client.nthreads():
        client.wait_for_workers(1, timeout=30)
    try:
        client.get_versions(check=True)
    except ValueError as exc:
        first = " ".join(str(exc).split())[:300]
        raise BenchError(f"Dask workers run other versions than this driver: {first}") from None
    here = package_versions()
    for worker, versions in client.run(package_versions).items():
        wrong = [
            f"{name} {versions.get(name)} (here {v})"
            for name, v in here.items()
            if v != versions.get(name)
        ]
        if wrong:
            raise BenchError(
                f"worker {worker} runs {', '.join(wrong)}: install the same versions (the same "
                "requirements.lock and bench) on the driver and every worker"
            )


def package_versions() -> dict[str, str]:
    import importlib.metadata

    found = {}
    for name in CHECKED_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def _is_daemon() -> bool:
    import multiprocessing

    return bool(multiprocessing.current_process().daemon)


def run_tasks(
    tasks: Iterable[Task],
    client: Any,
    preload: Iterable[str] = (),
    on_poll: Callable[[], None] | None = None,
) -> Iterator[Outcome]:
    """Run each task on the cluster, each in its own child process of a worker; yield outcomes
    as they end. Tasks are taken from ``tasks`` only when a worker thread is free, so a caller
    can claim work lazily; ``on_poll`` runs about once a second meanwhile."""
    source = iter(tasks)
    preload = tuple(preload)
    running: dict[Any, Task] = {}
    exhausted, last_poll = False, 0.0
    capacity = max(1, sum(client.nthreads().values()))
    while not exhausted or running:
        while not exhausted and len(running) < capacity:
            task = next(source, None)
            if task is None:
                exhausted = True
                break
            # One key prefix for every job: the scheduler queues them instead of assigning
            # them all to workers up front, so a worker that frees up takes the next one.
            future = client.submit(
                _on_worker, task, preload, key=f"bench-task-{uuid.uuid4().hex}", pure=False
            )
            running[future] = task
        for future in [f for f in running if f.done()]:
            task = running.pop(future)
            yield _outcome(future, task)
        if time.monotonic() - last_poll >= 1.0:  # workers come and go
            capacity = max(1, sum(client.nthreads().values()))
            if on_poll is not None:
                on_poll()
            last_poll = time.monotonic()
        time.sleep(0.1)


class _WorkerThreads:
    """Stands, in a task's arguments, for the threads one task may use on the worker that runs
    it (known only there): ``OMP_NUM_THREADS`` where the worker's environment sets it (a Dask
    nanny sets 1: one core per worker process, Dask's convention), else its cores over its
    Dask threads."""


WORKER_THREADS = _WorkerThreads()


def _on_worker(task: Task, preload: tuple[str, ...]) -> Outcome:
    """On a worker: the task in a child process, with its deadline."""
    from dataclasses import replace

    from distributed import get_worker

    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        threads = int(given)
    else:
        threads = max(1, (os.cpu_count() or 1) // max(1, get_worker().state.nthreads))
    args = tuple(threads if isinstance(a, _WorkerThreads) else a for a in task.args)
    if _is_daemon():  # a nanny's worker: multiprocessing starts no children here
        return in_subprocess(replace(task, args=args))
    return next(isolated([replace(task, args=args)], 1, preload))


def _outcome(future: Any, task: Task) -> Outcome:
    if future.status == "finished":
        return future.result()
    error = future.exception()
    if type(error).__name__ == "KilledWorker":
        message = f"it killed every worker it ran on ({error})"
        return Outcome(task.key, "died", mask(" ".join(message.split())[:500]))
    return Outcome(task.key, "error", mask(f"{type(error).__name__}: {error}".splitlines()[0]))


class LocalCluster:
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1 (dashboards
    too), as the README's commands start them, for tests and benchmarks on one machine.

    Workers keep Dask's defaults (a nanny, so a daemon worker: jobs start through
    :func:`bench.processes.in_subprocess`). Stopped by PID, workers before the scheduler (all
    at once takes seconds longer).
    """

    def __init__(
        self, workers: int = 2, threads: int = 1, env: dict[str, str] | None = None, logs=None
    ) -> None:
        self.n_workers, self.threads = workers, threads
        self.env = {**os.environ, **(env or {})}
        self.logs = logs
        self.scheduler: Any = None
        self.nannies: list[Any] = []
        self.address = ""

    def __enter__(self) -> LocalCluster:
        import glob
        import sys
        import tempfile
        from pathlib import Path

        self._semaphores = set(glob.glob("/dev/shm/sem.mp-*"))
        dask = Path(sys.executable).with_name("dask")
        self._folder = tempfile.TemporaryDirectory(prefix="bench-dask-")
        # The scheduler picks its own free port and writes its address to this file: a port
        # picked here and handed over could be taken by another process in between.
        info = Path(self._folder.name) / "scheduler.json"
        try:
            self.scheduler = self._start(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--dashboard-address", "127.0.0.1:0", "--scheduler-file", info], "scheduler",
            )  # fmt: skip
            self.address = _scheduler_address(info, self.scheduler)
            for i in range(self.n_workers):
                self.nannies.append(
                    self._start(
                        [
                            dask,
                            "worker",
                            self.address,
                            "--host",
                            "127.0.0.1",
                            "--nthreads",
                            str(self.threads),
                            "--dashboard-address",
                            "127.0.0.1:0",
                            "--name",
                            f"worker{i}",
                        ],
                        f"worker{i}",
                    )  # fmt: skip
                )
            from distributed import Client

            with Client(self.address, timeout=30, set_as_default=False) as client:
                client.wait_for_workers(self.n_workers, timeout=120)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, argv: list, name: str) -> Any:
        import subprocess

        out = subprocess.DEVNULL
        if self.logs is not None:
            out = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 (held while it runs)
        return subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def __exit__(self, *exc: Any) -> None:
        import glob
        from pathlib import Path

        _stop(self.nannies)
        _stop([self.scheduler] if self.scheduler is not None else [])
        if hasattr(self, "_folder"):
            self._folder.cleanup()
        for leftover in set(glob.glob("/dev/shm/sem.mp-*")) - self._semaphores:
            Path(leftover).unlink(missing_ok=True)  # left by SIGKILLed worker trees

    def memory(self) -> int:
        """Resident bytes of the scheduler, the workers and their children."""
        import psutil

        total = 0
        for top in [self.scheduler, *self.nannies]:
            process = psutil.Process(top.pid)
            for p in [process, *process.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        return total


def _scheduler_address(info: Any, process: Any, seconds: float = 60) -> str:
    """The address a scheduler wrote to its ``--scheduler-file`` once it listens."""
    import json

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"dask scheduler exited with {process.returncode} before listening")
        try:
            return json.loads(info.read_text())["address"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)  # not written yet, or half written
    raise BenchError(f"dask scheduler wrote no address to {info} in {seconds:g} s")


def _stop(processes: list[Any]) -> None:
    """SIGTERM by PID, then SIGKILL whatever is left (children too) after 15 s."""
    import signal
    import subprocess

    import psutil

    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
            process.kill()
            process.wait()
