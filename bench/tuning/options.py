"""What ``bench tune`` can be asked, and the checks on it (light: the command line builds its
choices from these tables without importing numpy, pandas or Optuna)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.tuning.storage import StorageSpec

METRICS = {
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "f1_macro": "maximize",
    "log_loss": "minimize",
}
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneOptions:
    """What ``bench tune`` was asked (None: the suite's or the environment's default)."""

    model: str
    suite: str = "gtzan"
    trials: int = 50
    data_dir: Path | None = None
    labels: Path | None = None
    protocol: str | None = None
    seed: int | None = None
    timeout: float | None = None
    metric: str | None = None
    storage: str | None = None
    study: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    workers: int = 1
    device: str = "auto"
    progress: bool = False
    """Show a progress bar while the dataset loads."""
    cluster: str | None = None
    """A Dask scheduler's address (else ``$BENCH_CLUSTER``; neither: local processes)."""
    system_metrics: bool = False
    """Record MLflow's system metrics on the study's run while this command tunes."""


def check_options(
    trials: int, workers: int, metric: str, sampler: str, pruner: str, storage: StorageSpec
) -> None:
    """The command's options, as one-line errors (before any data is loaded)."""
    if trials < 1:
        raise BenchError(f"--trials must be at least 1, got {trials}")
    if workers < 1:
        raise BenchError(f"--workers must be at least 1, got {workers}")
    if metric not in METRICS:
        raise BenchError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if sampler not in SAMPLERS:
        raise BenchError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    if pruner not in PRUNERS:
        raise BenchError(f"unknown pruner {pruner!r}; choose one of {PRUNERS}")
    if storage.kind == "sqlite" and workers > 1:
        raise BenchError(
            "SQLite storage is for one worker; with --workers use the default journal file "
            "or PostgreSQL"
        )


def local_cores() -> int:
    """The cores this process may run on: its affinity mask (a container's or taskset's share),
    not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks on this platform
        return os.cpu_count() or 1


def resolve_workers(workers: int, trials: int, on_cluster: bool) -> int:
    """``--workers``, at most ``trials`` (a worker with no trial left to claim only costs a
    process and a copy of the data) and, on this machine, at most its cores (more trial
    processes than cores run no faster, each slower). A Dask cluster's workers are its own
    machines': local cores do not cap them. A capped count is said in a warning."""
    cap, why = trials, f"{trials} trial(s)"
    if not on_cluster and local_cores() < cap:
        cap, why = local_cores(), f"{local_cores()} core(s) here"
    if workers <= cap:
        return workers
    log.warning("--workers %d: starting %d worker(s), as many as %s", workers, cap, why)
    return cap
