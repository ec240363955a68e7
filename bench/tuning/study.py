"""The study: the request, its options checked, samplers and pruners, its state, and the
reaping of trials whose worker died."""

from __future__ import annotations

import json
import logging
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from bench import registry
from bench.data.dataset import Dataset
from bench.data.splits import DevSplit
from bench.errors import BenchError
from bench.suites import Suite
from bench.tracking import Tag
from bench.tuning.objective import Objective
from bench.tuning.options import METRICS
from bench.tuning.storage import GRACE_SECONDS, StorageSpec, open_storage

log = logging.getLogger(__name__)


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
        Tag.MODEL: request.model,
        Tag.SUITE: request.suite.name,
        Tag.METRIC: request.metric,
        Tag.DEV_SPLIT: request.dev.signature,
        Tag.DATA_FINGERPRINT: request.dataset.fingerprint,
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
    study.set_user_attr(Tag.DEV_DESCRIPTION, request.dev.description)
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
        state.best_params = json.loads(best.user_attrs.get(Tag.PARAMS, "{}"))
    state.baseline = study.user_attrs.get(Tag.BASELINE_VALUE)
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
        owner = trial.user_attrs.get(Tag.OWNER)
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
                "model": attrs.get(Tag.MODEL, "?"),
                "metric": attrs.get(Tag.METRIC, "?"),
                "direction": summary.direction.name.lower(),
                "trials": summary.n_trials,
                "best": None if best is None else best.value,
                "baseline": attrs.get(Tag.BASELINE_VALUE),
                "params": {} if best is None else best.params,
            }
        )
    return rows
