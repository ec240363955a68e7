"""Tuning workers: each claims a trial under the study lock, runs it and tells the result,
until the study holds the requested number of trials. Several run as processes through
:func:`bench.processes.isolated`, like ``bench run``'s jobs."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import registry
from bench.tracking import Tag
from bench.tuning.storage import StudyLock, heartbeat, open_storage
from bench.tuning.study import (
    TuneRequest,
    make_pruner,
    make_sampler,
    objective_for,
    reap_dead_trials,
    study_state,
)

log = logging.getLogger(__name__)

MAX_FAILURES_IN_A_ROW = 5


@dataclass
class WorkerReport:
    error: str | None = None


def work(
    request: TuneRequest,
    index: int,
    on_trial: Callable[[Any], None] | None = None,
) -> WorkerReport:
    """One worker: claim a trial under the study lock, run it, tell the result; repeat until
    the study holds ``request.trials`` complete-or-pruned trials (or the timeout passes)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = registry.get(request.model)
    storage = open_storage(request.storage)
    objective = objective_for(request, spec)
    # One worker alone replays exactly; parallel workers must not sample identical points.
    seed = request.seed if request.workers == 1 else request.seed * 1000 + index + os.getpid()
    study = optuna.load_study(
        study_name=request.study_name,
        storage=storage,
        sampler=make_sampler(request.sampler, seed),
        pruner=make_pruner(request.pruner, objective),
    )
    lock = StudyLock(request.storage, request.study_name)
    deadline = time.monotonic() + request.timeout if request.timeout else math.inf
    report, failures_in_a_row = WorkerReport(), 0
    owner = f"{socket.gethostname()}:{os.getpid()}"
    while time.monotonic() < deadline:
        with lock():
            reap_dead_trials(study)
            state = study_state(study)
            trial = None
            if state.done + state.running < request.trials:
                trial = study.ask()
                trial.set_user_attr(Tag.OWNER, owner)
        if trial is None:
            if state.done >= request.trials:
                break
            time.sleep(1.0)  # the last slots are being run elsewhere; they may still fail
            continue
        with heartbeat(storage, trial):
            try:
                value = objective(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
                failures_in_a_row = 0
            except Exception as exc:  # recorded on the trial; the study goes on
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                log.warning("trial %d failed: %s", trial.number, message)
                trial.set_user_attr(Tag.ERROR, message)
                study.tell(trial, state=TrialState.FAIL)
                failures_in_a_row += 1
                if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                    report.error = f"{failures_in_a_row} trials in a row failed; last: {message}"
                    break
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            else:
                study.tell(trial, value)
                failures_in_a_row = 0
        if on_trial is not None:
            on_trial(study)
    return report


PRELOAD = ("bench.tuning.workers", "optuna", "sklearn.metrics", "torch")


def run_workers(
    request: TuneRequest, on_poll: Callable[[], None], cluster: Any = None
) -> list[str]:
    """``request.workers`` worker processes (here, or tasks of the Dask ``cluster``); ``on_poll``
    runs about once a second meanwhile. Returns the workers' errors.
    """
    from bench.processes import Task, isolated

    tasks = [Task(index, work, (request, index)) for index in range(request.workers)]
    errors = []
    if cluster is None:
        outcomes = isolated(tasks, request.workers, PRELOAD, on_poll)
    else:
        from bench.cluster import run_tasks

        outcomes = run_tasks(tasks, cluster, PRELOAD, on_poll)
    for outcome in outcomes:
        if not outcome.ok:
            errors.append(outcome.value)
        elif outcome.value.error:
            errors.append(outcome.value.error)
    return errors
