"""The tuning objective: the mean of a metric over the development split's inner folds, scored
by :func:`bench.evaluate.score_fold` exactly as ``bench run`` scores a job."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from bench import registry
from bench.data.dataset import Dataset
from bench.data.splits import DevSplit, Fold
from bench.errors import BenchError
from bench.tracking import Tag
from bench.tuning.options import METRICS


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
        self.folds = model_folds(spec, dataset, dev, base_params)
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
        trial.set_user_attr(Tag.PARAMS, json.dumps(params, default=list))
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


def model_folds(
    spec: registry.ModelSpec, dataset: Dataset, dev: DevSplit, params: dict[str, Any]
) -> list[Fold]:
    """The development folds ``spec`` can train on; a BenchError (before any trial) when
    any cannot serve it, for the reason ``bench run`` would skip the model there."""
    from bench.evaluate import servable_folds

    folds, reason = servable_folds(spec, params, dataset, dev.folds)
    if reason:
        raise BenchError(f"{spec.name} cannot be tuned on every development fold: {reason}")
    return folds
