"""``bench tune MODEL --trials N``: Optuna studies over a registered model's search space.

- **Objective**: the mean of a metric over the inner folds of the suite's development split
  (:class:`bench.data.splits.DevSplit`), so tuning never sees a track a leaderboard tests on.
  Torch models report every epoch to the pruner, other models every fold.
- **Exactly N trials**: ``--trials N`` is the number of complete-or-pruned trials the study
  ends with, however many workers, machines and re-runs share it. Workers claim a trial under
  one study-wide lock (a file lock beside a journal or SQLite file, a PostgreSQL advisory lock),
  so two workers never both take the last slot.
- **Crashes**: a trial that raises is recorded FAILED and the study goes on. A worker killed
  mid-trial leaves a RUNNING trial: it is failed and re-queued at once when its process is gone
  from this host, or by heartbeat (PostgreSQL) when it ran elsewhere.
- **MLflow**: whoever coordinates copies finished trials from the study into nested runs under
  one parent run per study, keyed by trial number, so each trial is logged once.

Example::

    >>> from bench.tuning import parse_storage
    >>> parse_storage("postgresql://bench:secret@db:5432/optuna").display
    'postgresql://bench:***@db:5432/optuna'
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import registry
from bench.data.dataset import Dataset
from bench.data.splits import DevSplit, Fold
from bench.errors import BenchError
from bench.redact import mask
from bench.suites import Suite

log = logging.getLogger(__name__)

METRICS = {
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "f1_macro": "maximize",
    "log_loss": "minimize",
}
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_STORAGE = "optuna.journal"
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 30
"""A RUNNING trial whose worker sent no heartbeat for this long is failed and re-queued."""
MAX_FAILURES_IN_A_ROW = 5


# --- storage ----------------------------------------------------------------------------------


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
        if not raw or raw == ":memory:":
            raise BenchError(f"--storage {text}: give a SQLite file, e.g. sqlite:///optuna.db")
        path = Path(raw).resolve()
        return StorageSpec(f"sqlite:///{path}", "sqlite", path)
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
            return JournalStorage(JournalFileBackend(str(spec.path)))
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
            with _advisory_lock(_engine(spec.url), "bench-optuna-schema"):
                return RDBStorage(spec.url, **kwargs)
    except Exception as exc:  # SQLAlchemy's errors: refused, unknown host, bad password, ...
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if "DB access module" in reason:
            reason = "no database driver; install it with pip install 'bench[postgres]'"
        raise BenchError(f"cannot use Optuna storage {spec.display}: {reason}") from None


class StudyLock:
    """One study-wide mutex for every worker on every machine that shares the storage."""

    def __init__(self, spec: StorageSpec, study: str) -> None:
        self.spec, self.study = spec, study
        self._engine = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.spec.path is not None:
            lock_file = self.spec.path.with_name(self.spec.path.name + ".bench-lock")
            with open(lock_file, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        if self._engine is None:
            self._engine = _engine(self.spec.url)
        with _advisory_lock(self._engine, f"bench-study:{self.study}"):
            yield


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})


@contextlib.contextmanager
def _advisory_lock(engine: Any, name: str) -> Iterator[None]:
    """A PostgreSQL session-level advisory lock, held for the ``with`` block."""
    from sqlalchemy import text

    key = zlib.crc32(name.encode())
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


# --- objective --------------------------------------------------------------------------------


class Objective:
    """Mean ``metric`` of one parameter set over the development split's inner folds."""

    def __init__(
        self,
        spec: registry.ModelSpec,
        base_params: dict[str, Any],
        dataset: Dataset,
        dev: DevSplit,
        metric: str,
        seed: int,
        device: str,
        threads: int,
    ) -> None:
        from bench.evaluate import model_inputs

        self.spec, self.base_params, self.metric = spec, base_params, metric
        self.seed, self.device, self.threads = seed, device, threads
        self.dataset = dataset
        self.inputs = model_inputs(dataset, spec.input_kind)
        self.folds = _model_folds(spec, dataset, dev, base_params)
        self.maximize = METRICS[metric] == "maximize"
        probe = spec.create(**spec.complete(base_params, seed, "cpu"))
        self.epoch_based = "callbacks" in probe.get_params(deep=False)
        self.stride = int(probe.get_params(deep=False).get("epochs", 1)) if self.epoch_based else 1

    @property
    def max_step(self) -> int:
        return len(self.folds) * self.stride

    def params_of(self, trial: Any) -> dict[str, Any]:
        """The constructor parameters ``trial`` stands for: the suite's, then the sampled."""
        return {**self.base_params, **self.spec.search_space(trial)}

    def __call__(self, trial: Any) -> float:
        params = self.params_of(trial)
        trial.set_user_attr("bench.params", json.dumps(params, default=list))
        return self.evaluate(params, trial)

    def evaluate(self, params: dict[str, Any], trial: Any = None) -> float:
        import optuna
        from threadpoolctl import threadpool_limits

        from bench.environment import cpu_threads
        from bench.evaluate import score_fold, with_resources

        full = self.spec.complete(params, self.seed, self.device)
        full = with_resources(self.spec.parameters, full, self.threads)
        scores: list[float] = []
        with threadpool_limits(self.threads), cpu_threads(self.threads):
            for index, fold in enumerate(self.folds):
                model = self.spec.factory(**full)
                if trial is not None and self.epoch_based:
                    model.set_params(callbacks=[_EpochReport(trial, index * self.stride, self)])
                score = score_fold(model, self.dataset, self.inputs, fold)
                scores.append(score.metrics[self.metric])
                if trial is not None and not self.epoch_based:
                    trial.report(float(np.mean(scores)), index)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned after fold {index}")
        value = float(np.mean(scores))
        if not math.isfinite(value):
            raise ValueError(f"{self.metric} is {value}")
        return value


class _EpochReport:
    """Torch-estimator callback: the best validation score of this fold so far, per epoch."""

    def __init__(self, trial: Any, offset: int, objective: Objective) -> None:
        self.trial, self.offset, self.maximize = trial, offset, objective.maximize
        self.best: float | None = None

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        import optuna

        key = "val_accuracy" if self.maximize else "val_loss"
        if key not in metrics:
            return
        value = metrics[key]
        better = max if self.maximize else min
        self.best = value if self.best is None else better(self.best, value)
        self.trial.report(self.best, self.offset + epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {self.offset + epoch}")

    def __deepcopy__(self, memo: dict) -> _EpochReport:
        return self  # holds a live trial; clone() must not copy it


def _model_folds(
    spec: registry.ModelSpec, dataset: Dataset, dev: DevSplit, params: dict[str, Any]
) -> list[Fold]:
    """The development folds ``spec`` can train on; a BenchError (before any trial) when
    any cannot serve it, for the reason ``bench run`` would skip the model there."""
    from bench.evaluate import servable_folds

    folds, reason = servable_folds(spec, params, dataset, dev.folds)
    if reason:
        raise BenchError(f"{spec.name} cannot be tuned on every development fold: {reason}")
    return folds


# --- the study --------------------------------------------------------------------------------


@dataclass
class TuneRequest:
    model: str
    suite: Suite
    dataset: Dataset
    dev: DevSplit
    trials: int
    storage: StorageSpec
    study_name: str
    metric: str = "accuracy"
    sampler: str = "tpe"
    pruner: str = "median"
    workers: int = 1
    seed: int = 0
    device: str = "cpu"
    timeout: float | None = None
    threads: int = 1

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    @property
    def base_params(self) -> dict[str, Any]:
        entries = {m.name: m.params for m in self.suite.models}
        return dict(entries.get(self.model, {}))


@dataclass
class StudyState:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_number: int | None = None
    baseline: float | None = None

    @property
    def done(self) -> int:
        return self.complete + self.pruned


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


def validate(request: TuneRequest) -> registry.ModelSpec:
    """Everything that can be wrong before a trial runs, as one-line errors."""
    spec = registry.get(request.model)
    check_options(
        request.trials,
        request.workers,
        request.metric,
        request.sampler,
        request.pruner,
        request.storage,
    )
    check_search_space(spec, request.base_params, request.seed)
    return spec


def objective_for(request: TuneRequest, spec: registry.ModelSpec) -> Objective:
    return Objective(
        spec,
        request.base_params,
        request.dataset,
        request.dev,
        request.metric,
        request.seed,
        request.device,
        request.threads,
    )


def check_search_space(spec: registry.ModelSpec, base_params: dict[str, Any], seed: int) -> None:
    """The model declares a search space that suggests something its factory accepts."""
    if spec.search_space is None:
        raise BenchError(f"model {spec.name!r} declares no search space; nothing to tune")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.create_study().ask()
    try:
        params = spec.search_space(probe)
    except Exception as exc:
        raise BenchError(f"search space of {spec.name!r} failed: {exc}") from None
    if not probe.params:
        raise BenchError(f"search space of {spec.name!r} is empty: it suggests no parameter")
    spec.complete({**base_params, **params}, seed, "cpu")


def create_study(request: TuneRequest, storage: Any) -> Any:
    """Create the study, or continue it when it exists and was made for the same job."""
    import optuna

    identity = {
        "bench.model": request.model,
        "bench.suite": request.suite.name,
        "bench.metric": request.metric,
        "bench.dev_split": request.dev.signature,
        "bench.data_fingerprint": request.dataset.fingerprint,
    }
    study = optuna.create_study(
        study_name=request.study_name,
        storage=storage,
        direction=request.direction,
        load_if_exists=True,
    )
    attrs = study.user_attrs
    for key, value in identity.items():
        if key in attrs and attrs[key] != value:
            raise BenchError(
                f"study {request.study_name!r} in {request.storage.display} was made with "
                f"{key.removeprefix('bench.')} {attrs[key]!r}, not {value!r}; "
                "name another with --study"
            )
    for key, value in identity.items():
        if key not in attrs:
            study.set_user_attr(key, value)
    study.set_user_attr("bench.dev_description", request.dev.description)
    return study


def make_sampler(name: str, seed: int | None) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        # constant_liar: parallel workers see each other's running trials as bad, not absent,
        # so they do not all sample the same promising point.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def make_pruner(name: str, objective: Objective) -> Any:
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=objective.max_step)
    warmup = min(10, objective.stride - 1) if objective.epoch_based else 0
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)


def study_state(study: Any) -> StudyState:
    from optuna.trial import TrialState

    state = StudyState()
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE:
            state.complete += 1
        elif trial.state == TrialState.PRUNED:
            state.pruned += 1
        elif trial.state == TrialState.FAIL:
            state.failed += 1
        elif trial.state == TrialState.RUNNING:
            state.running += 1
    if state.complete:
        best = study.best_trial
        state.best_value, state.best_number = best.value, best.number
        state.best_params = json.loads(best.user_attrs.get("bench.params", "{}"))
    state.baseline = study.user_attrs.get("bench.baseline_value")
    return state


def reap_dead_trials(study: Any) -> int:
    """Fail and re-queue RUNNING trials whose worker is gone; the caller holds the study lock.

    Same host: the owner's pid no longer exists. Other hosts: Optuna's heartbeat (PostgreSQL).
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    from bench.environment import pid_alive

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
    host, reaped = socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("bench.owner")
        started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
        if owner is None:
            dead = time.time() - started > GRACE_SECONDS  # died between ask and claim
        else:
            owner_host, pid = owner.rsplit(":", 1)
            dead = owner_host == host and not pid_alive(int(pid))
        if dead:
            study.tell(trial.number, state=TrialState.FAIL)
            retry(study, trial)  # a WAITING copy with the same parameters
            reaped += 1
    if reaped:
        log.warning("failed and re-queued %d trial(s) of killed workers", reaped)
    return reaped


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
                trial.set_user_attr("bench.owner", owner)
        if trial is None:
            if state.done >= request.trials:
                break
            time.sleep(1.0)  # the last slots are being run elsewhere; they may still fail
            continue
        with _heartbeat(storage, trial):
            try:
                value = objective(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
                failures_in_a_row = 0
            except Exception as exc:  # recorded on the trial; the study goes on
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                log.warning("trial %d failed: %s", trial.number, message)
                trial.set_user_attr("bench.error", message)
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


@contextlib.contextmanager
def _heartbeat(storage: Any, trial: Any) -> Iterator[None]:
    """Record heartbeats for ``trial`` while it runs (only storages that support them)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if not is_heartbeat_enabled(storage):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial._trial_id)
            if stop.wait(HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name="bench-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def worker_process(request: TuneRequest, index: int, owner: int, conn: Any) -> None:
    """Entry point of a worker process started by :func:`run_workers`."""
    from bench.environment import exit_with_owner

    exit_with_owner(owner)
    try:
        report = work(request, index)
        conn.send(("ok", report))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0]))
    finally:
        conn.close()


def run_workers(request: TuneRequest, on_poll: Callable[[], None]) -> list[str]:
    """``request.workers`` worker processes; ``on_poll`` runs about once a second meanwhile.

    Returns the workers' errors. Workers fork from a clean forkserver (see bench.runner).
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["bench.tuning", "optuna", "sklearn.metrics", "torch"])
    running, errors = {}, []
    for index in range(request.workers):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=worker_process, args=(request, index, os.getpid(), sender))
        process.start()
        sender.close()
        running[receiver] = process
    while running:
        for conn in wait(list(running), timeout=1.0):
            process = running.pop(conn)
            try:
                status, payload = conn.recv()
            except EOFError:
                status, payload = "error", f"worker died (exit code {process.exitcode})"
            process.join()
            if status == "error":
                errors.append(payload)
            elif payload.error:
                errors.append(payload.error)
        on_poll()
    return errors


# --- coordination: baseline, MLflow, tuned file -----------------------------------------------


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
) -> TuneResult:
    """Run (or continue) the study to ``request.trials`` trials, logging it to ``tracker``."""
    from bench.environment import run_tags

    start = time.monotonic()
    spec = validate(request)
    storage = open_storage(request.storage)
    lock = StudyLock(request.storage, request.study_name)
    tags = {
        "bench.model": request.model,
        "bench.family": spec.family,
        "bench.suite": request.suite.name,
        "bench.protocol": request.suite.protocol.name,
        "bench.metric": request.metric,
        "bench.direction": request.direction,
        "bench.storage": request.storage.display,
        "bench.sampler": request.sampler,
        "bench.pruner": request.pruner,
        "bench.trials_target": str(request.trials),
        "bench.workers": str(request.workers),
        "bench.dev_split": request.dev.signature,
        "bench.dev_description": request.dev.description,
        "bench.data_fingerprint": request.dataset.fingerprint,
        "bench.device": request.device,
        "bench.command": command,
        "bench.host": socket.gethostname(),
        "bench.pid": str(os.getpid()),
        **run_tags(),
    }
    with lock():
        study = create_study(request, storage)
        parent = tracker.study_parent(
            request.study_name,
            params={"model": request.model, "metric": request.metric},
            tags=tags,
        )
    _baseline(request, spec, study, lock)

    def poll() -> None:
        with lock():
            sync_trials(tracker, parent, study, request)
            state = study_state(study)
        if on_progress is not None:
            on_progress(state)

    poll()
    status, errors = "KILLED", []
    try:
        if request.workers == 1:
            report = work(request, 0, on_trial=lambda _: poll())
            errors = [report.error] if report.error else []
        else:
            errors = run_workers(request, poll)
        status = "FAILED" if errors else "FINISHED"
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
    if "bench.baseline_value" in study.user_attrs:
        return
    with lock():
        if "bench.baseline_value" in study.user_attrs:
            return
        objective = objective_for(request, spec)
        try:
            value = objective.evaluate(request.base_params)
        except Exception as exc:
            log.warning("the untuned %s failed on the development split: %s", spec.name, exc)
            return
        study.set_user_attr("bench.baseline_value", value)


def sync_trials(tracker: Any, parent: str, study: Any, request: TuneRequest) -> int:
    """Log every finished trial not yet in MLflow as a nested run; the caller holds the lock."""
    from optuna.trial import TrialState

    logged = tracker.logged_trials(parent)
    new = 0
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    for trial in study.get_trials(deepcopy=False, states=finished):
        if trial.number in logged:
            continue
        tags = {"bench.model": request.model, "bench.study": request.study_name}
        metrics: dict[str, float] = {}
        if trial.state == TrialState.COMPLETE:
            metrics[f"dev_{request.metric}"] = trial.value
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            step = max(trial.intermediate_values)
            tags["bench.pruned_step"] = str(step)
            metrics["last_intermediate"] = trial.intermediate_values[step]
        if trial.state == TrialState.FAIL:
            tags["bench.error"] = trial.user_attrs.get(
                "bench.error", "its worker stopped mid-trial; the trial was re-queued"
            )
        if trial.duration is not None:
            metrics["seconds"] = trial.duration.total_seconds()
        tracker.log_trial(
            parent,
            trial.number,
            state=trial.state.name,
            params=trial.params,
            metrics=metrics,
            intermediate=trial.intermediate_values,
            tags=tags,
        )
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
        tags["bench.best_trial"] = str(state.best_number)
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
    from bench.suites import save_tuned

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


def list_studies(spec: StorageSpec) -> list[dict[str, Any]]:
    """Every study in a storage with its size, best value and best parameters."""
    import optuna

    storage = open_storage(spec)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=True):
        best = summary.best_trial
        attrs = summary.user_attrs
        rows.append(
            {
                "study": summary.study_name,
                "model": attrs.get("bench.model", "?"),
                "metric": attrs.get("bench.metric", "?"),
                "direction": summary.direction.name.lower(),
                "trials": summary.n_trials,
                "best": None if best is None else best.value,
                "baseline": attrs.get("bench.baseline_value"),
                "params": {} if best is None else best.params,
            }
        )
    return rows


def apply_tuned(suite: Suite, dataset: Dataset) -> tuple[Suite, DevSplit]:
    """The suite with a ``tuned`` entry beside each model that has tuned parameters, and the
    development split they were tuned on (for ``bench run --tuned``).

    Tuned parameters are only used on the exact development split and data they were tuned
    on: otherwise a leaderboard test side could hold tracks the tuner saw.
    """
    from dataclasses import replace

    from bench.data.splits import dev_split
    from bench.suites import ModelEntry, load_tuned, tuned_path

    protocol = suite.protocol.name
    tuned = load_tuned(suite.name)
    dev = dev_split(
        dataset, suite.protocol, suite.seed, suite.tuning.dev_fraction, suite.tuning.folds
    )
    entries: list[ModelEntry] = []
    for entry in suite.models:
        entries.append(entry)
        found = tuned.get(entry.name, {}).get(protocol)
        if found is None:
            continue
        for key, expected, what in (
            ("dev_split", dev.signature, "development split (seed, protocol or [tuning] changed)"),
            ("data", dataset.fingerprint, "data"),
        ):
            if found.get(key) != expected:
                raise BenchError(
                    f"{tuned_path(suite.name)}: {entry.name} was tuned on another {what}; "
                    f"re-tune with `bench tune {entry.name} --suite {suite.name}`"
                )
        entries.append(ModelEntry(entry.name, {**entry.params, **found["params"]}, variant="tuned"))
    if len(entries) == len(suite.models):
        raise BenchError(
            f"no tuned parameters for suite {suite.name!r} under protocol {protocol} in "
            f"{tuned_path(suite.name)}; run `bench tune MODEL --suite {suite.name}` first"
        )
    return replace(suite, models=tuple(entries)), dev
