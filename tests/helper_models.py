"""Models that misbehave on purpose, registered for runner tests only."""

from __future__ import annotations

import time

from sklearn.linear_model import LogisticRegression

from bench.registry import _REGISTRY, register


class Exploding(LogisticRegression):
    def fit(self, X, y):
        raise RuntimeError("boom: this model always fails")


class Sleepy(LogisticRegression):
    def __init__(self, seconds: float = 30.0, C: float = 1.0):
        super().__init__(C=C, max_iter=500)
        self.seconds = seconds

    def fit(self, X, y):
        time.sleep(self.seconds)
        return super().fit(X, y)


if "boom" not in _REGISTRY:

    @register("boom", family="test")
    def boom() -> Exploding:
        """Always raises in fit."""
        return Exploding()

    @register("sleepy", family="test")
    def sleepy(seconds: float = 30.0) -> Sleepy:
        """Sleeps before fitting a logistic regression."""
        return Sleepy(seconds=seconds)


class Flaky(LogisticRegression):
    """Fails for half of its search space (C above 1)."""

    def fit(self, X, y):
        if self.C > 1.0:
            raise ValueError(f"flaky: C={self.C:.3g} is above 1")
        return super().fit(X, y)


def _c_space(trial):
    return {"C": trial.suggest_float("C", 1e-2, 1e2, log=True)}


if "flaky" not in _REGISTRY:

    @register("flaky", family="test", search_space=_c_space)
    def flaky(C: float = 0.5) -> Flaky:
        """Raises in fit when C > 1."""
        return Flaky(C=C, max_iter=500)

    @register("boom_tunable", family="test", search_space=_c_space)
    def boom_tunable(C: float = 1.0) -> Exploding:
        """Has a search space, and always raises in fit."""
        return Exploding(C=C)

    @register("hollow", family="test", search_space=lambda trial: {})
    def hollow(C: float = 1.0) -> LogisticRegression:
        """Declares a search space that suggests nothing."""
        return LogisticRegression(C=C)


class Leaky(LogisticRegression):
    """Fails with whatever message it is given (a URL with a password, say)."""

    def __init__(self, message: str = "", C: float = 1.0):
        super().__init__(C=C, max_iter=500)
        self.message = message

    def fit(self, X, y):
        raise RuntimeError(self.message)


if "leaky" not in _REGISTRY:

    @register("leaky", family="test")
    def leaky(message: str = "") -> Leaky:
        """Raises in fit with ``message``."""
        return Leaky(message=message)


class Napper(LogisticRegression):
    """Marks each fit in ``marks`` (a folder: one file per fit, named by its process), sleeps,
    then fits: a job long enough to kill its worker in the middle of."""

    def __init__(self, seconds: float = 3.0, marks: str = "", C: float = 1.0):
        super().__init__(C=C, max_iter=500)
        self.seconds, self.marks = seconds, marks

    def fit(self, X, y):
        import os
        from pathlib import Path

        if self.marks:
            Path(self.marks).mkdir(parents=True, exist_ok=True)
            (Path(self.marks) / f"{os.getpid()}-{time.time_ns()}").touch()
        time.sleep(self.seconds)
        return super().fit(X, y)


class WorkerKiller(LogisticRegression):
    """Kills the Dask worker process that runs it: the nearest ancestor a nanny spawned (a job's
    process is the worker's child by subprocess, or its forkserver's without a nanny)."""

    def fit(self, X, y):
        import os
        import signal

        import psutil

        ancestors = psutil.Process().parents()
        worker = next(p for p in ancestors if "spawn_main" in " ".join(p.cmdline()))
        os.kill(worker.pid, signal.SIGKILL)
        time.sleep(60)
        return super().fit(X, y)


if "napper" not in _REGISTRY:

    @register("napper", family="test")
    def napper(seconds: float = 3.0, marks: str = "") -> Napper:
        """Marks and sleeps before fitting a logistic regression."""
        return Napper(seconds=seconds, marks=marks)

    @register("worker_killer", family="test")
    def worker_killer() -> WorkerKiller:
        """Kills the Dask worker it runs on."""
        return WorkerKiller(max_iter=500)
