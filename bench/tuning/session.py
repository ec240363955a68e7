"""``bench tune``: run (or continue) a study to N trials, log it to MLflow, save the best
parameters for ``bench run --tuned``."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import registry
from bench.tracking import Status, Tag, TrialRecord
from bench.tuning.options import TuneOptions
from bench.tuning.storage import StudyLock, open_storage
from bench.tuning.study import (
    StudyState,
    TuneRequest,
    create_study,
    objective_for,
    study_state,
)
from bench.tuning.workers import run_workers, work

log = logging.getLogger(__name__)


def plan(options: TuneOptions) -> TuneRequest:
    """The study ``options`` ask for, on its loaded data and development split.

    Everything that can be wrong is checked once, here, before any data is read: the options,
    the model's suite parameters and search space, and that the storage can be opened.
    """
    from bench.catalog import open_dataset
    from bench.cluster import cluster_address
    from bench.data.splits import dev_split
    from bench.environment import resolve_device
    from bench.errors import BenchError
    from bench.suites import load_suite
    from bench.tracking import SYSTEM_METRICS_ON_A_CLUSTER
    from bench.tuning.options import check_options, resolve_workers
    from bench.tuning.storage import parse_storage
    from bench.tuning.study import check_search_space

    storage = parse_storage(options.storage)
    suite = load_suite(options.suite).with_overrides(
        None, options.protocol, None, options.seed, options.labels
    )
    metric = options.metric or suite.tuning.metric
    check_options(options.trials, options.workers, metric, options.sampler, options.pruner, storage)
    if options.timeout is not None and options.timeout <= 0:
        raise BenchError(f"--timeout must be a positive number of seconds, got {options.timeout:g}")
    on_cluster = cluster_address(options.cluster) is not None
    if options.system_metrics and on_cluster:
        raise BenchError(SYSTEM_METRICS_ON_A_CLUSTER)
    spec = registry.get(options.model)
    suite_params = dict({m.name: m.params for m in suite.models}.get(spec.name, {}))
    spec.check(suite_params)
    check_search_space(spec, suite_params, suite.seed)
    open_storage(storage)  # an unreachable database fails here, before the data is loaded
    workers = resolve_workers(options.workers, options.trials, on_cluster)
    device = resolve_device(options.device)
    dataset = open_dataset(suite.dataset, options.data_dir, progress=options.progress)
    tuning = suite.tuning
    dev = dev_split(dataset, suite.protocol, suite.seed, tuning.dev_fraction, tuning.folds)
    return TuneRequest(
        model=spec.name,
        suite=suite,
        dataset=dataset,
        dev=dev,
        trials=options.trials,
        storage=storage,
        study_name=options.study or f"{suite.name}.{suite.protocol.name}.{spec.name}.{metric}",
        metric=metric,
        sampler=options.sampler,
        pruner=options.pruner,
        workers=workers,
        seed=suite.seed,
        device=device,
        timeout=options.timeout,
        threads=max(1, (os.cpu_count() or 1) // workers),
    )


@dataclass
class TuneResult:
    study: str
    state: StudyState
    parent_run_id: str
    tuned_file: Path | None
    errors: list[str]
    seconds: float


def tune(
    request: TuneRequest,
    tracker: Any,
    on_progress: Callable[[StudyState], None] | None = None,
    command: str = "",
    cluster: Any = None,
) -> TuneResult:
    """Run (or continue) the study to ``request.trials`` trials, logging it to ``tracker``.

    ``cluster``: a Dask client (:func:`bench.cluster.connect`): the ``request.workers`` trial
    workers run as its tasks, sharing the study through its storage (a journal file every
    worker reaches, or PostgreSQL)."""
    from bench.catalog import data_ref
    from bench.tracking import run_tags

    start = time.monotonic()
    spec = registry.get(request.model)  # the request was checked when it was planned
    storage = open_storage(request.storage)
    lock = StudyLock(request.storage, request.study_name)
    tags = {
        Tag.MODEL: request.model,
        Tag.FAMILY: spec.family,
        Tag.SUITE: request.suite.name,
        Tag.PROTOCOL: request.suite.protocol.name,
        Tag.METRIC: request.metric,
        Tag.DIRECTION: request.direction,
        Tag.STORAGE: request.storage.display,
        Tag.SAMPLER: request.sampler,
        Tag.PRUNER: request.pruner,
        Tag.TRIALS_TARGET: str(request.trials),
        Tag.WORKERS: str(request.workers),
        Tag.DEV_SPLIT: request.dev.signature,
        Tag.DEV_DESCRIPTION: request.dev.description,
        Tag.DATA_FINGERPRINT: request.dataset.fingerprint,
        Tag.DEVICE: request.device,
        Tag.COMMAND: command,
        Tag.HOST: socket.gethostname(),
        Tag.PID: str(os.getpid()),
        **run_tags(),
    }
    with lock():
        study = create_study(request, storage)
        parent = tracker.study_parent(
            request.study_name,
            params={"model": request.model, "metric": request.metric},
            tags=tags,
        )
    tracker.log_dataset(parent, data_ref(request.dataset), "tuning")
    tracker.watch(parent)
    _baseline(request, spec, study, lock)

    def poll() -> None:
        with lock():
            sync_trials(tracker, parent, study, request)
            state = study_state(study)
        if on_progress is not None:
            on_progress(state)

    poll()
    status, errors = Status.KILLED, []
    try:
        if request.workers == 1 and cluster is None:
            report = work(request, 0, on_trial=lambda _: poll())
            errors = [report.error] if report.error else []
        else:
            errors = run_workers(request, poll, cluster)
        status = Status.FAILED if errors else Status.FINISHED
    finally:
        with lock():  # several commands may share one MLflow store too
            sync_trials(tracker, parent, study, request)
            state = study_state(study)
            _end_parent(tracker, parent, request, state, status)
    tuned_file = None
    if state.best_value is not None:
        tuned_file = _save_tuned(request, state)
    return TuneResult(
        request.study_name, state, parent, tuned_file, errors, time.monotonic() - start
    )


def _baseline(request: TuneRequest, spec: registry.ModelSpec, study: Any, lock: StudyLock) -> None:
    """Score the suite's own parameters once per study, on the same folds, for comparison."""
    if Tag.BASELINE_VALUE in study.user_attrs:
        return
    with lock():
        if Tag.BASELINE_VALUE in study.user_attrs:
            return
        objective = objective_for(request, spec)
        try:
            value = objective.evaluate(request.base_params)
        except Exception as exc:
            log.warning("the untuned %s failed on the development split: %s", spec.name, exc)
            return
        study.set_user_attr(Tag.BASELINE_VALUE, value)


def sync_trials(tracker: Any, parent: str, study: Any, request: TuneRequest) -> int:
    """Log every finished trial not yet in MLflow as a nested run; the caller holds the lock."""
    from optuna.trial import TrialState

    logged = tracker.logged_trials(parent)
    new = 0
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    for trial in study.get_trials(deepcopy=False, states=finished):
        if trial.number in logged:
            continue
        metrics: dict[str, float] = {}
        pruned_step = error = None
        if trial.state == TrialState.COMPLETE:
            metrics[f"dev_{request.metric}"] = trial.value
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            pruned_step = max(trial.intermediate_values)
            metrics["last_intermediate"] = trial.intermediate_values[pruned_step]
        if trial.state == TrialState.FAIL:
            error = trial.user_attrs.get(
                Tag.ERROR, "its worker stopped mid-trial; the trial was re-queued"
            )
        if trial.duration is not None:
            metrics["seconds"] = trial.duration.total_seconds()
        record = TrialRecord(
            trial.number, trial.state.name, trial.params, metrics, trial.intermediate_values,
            pruned_step, error,
        )  # fmt: skip
        tracker.log_trial(parent, record, {Tag.MODEL: request.model, Tag.STUDY: request.study_name})
        new += 1
    return new


def _end_parent(
    tracker: Any, parent: str, request: TuneRequest, state: StudyState, status: str
) -> None:
    import tempfile

    metrics = {
        "trials_complete": state.complete,
        "trials_pruned": state.pruned,
        "trials_failed": state.failed,
    }
    tags = {}
    if state.best_value is not None:
        metrics[f"best_dev_{request.metric}"] = state.best_value
        tags = {f"best.{k}": json.dumps(v) for k, v in state.best_params.items()}
        tags[Tag.BEST_TRIAL] = str(state.best_number)
    if state.baseline is not None:
        metrics[f"baseline_dev_{request.metric}"] = state.baseline
    with tempfile.TemporaryDirectory(prefix="bench-study-") as scratch:
        files = []
        if state.best_value is not None:
            path = Path(scratch) / "best_params.json"
            path.write_text(json.dumps(state.best_params, indent=2, default=list) + "\n")
            files.append(path)
        tracker.end_study(parent, metrics, tags, files=files, status=status)


def _save_tuned(request: TuneRequest, state: StudyState) -> Path:
    from bench.tuned import save_tuned

    entry = {
        "params": state.best_params,
        "metric": request.metric,
        "value": state.best_value,
        "trials": state.done,
        "pruned": state.pruned,
        "failed": state.failed,
        "best_trial": state.best_number,
        "study": request.study_name,
        "storage": request.storage.display,
        "dev_split": request.dev.signature,
        "dev": request.dev.description,
        "seed": request.seed,
        "data": request.dataset.fingerprint,
        "tuned_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if state.baseline is not None:
        entry["baseline"] = state.baseline
    return save_tuned(request.suite.name, request.model, request.suite.protocol.name, entry)
