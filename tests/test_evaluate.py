"""One evaluator: a fold scored by `bench run` and by the tuning objective gives one number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from bench import registry
from bench.cli import main
from bench.data.gtzan import load_gtzan
from bench.data.splits import DevSplit, Protocol, make_folds
from bench.tracking import resolve_uri
from bench.tuning.objective import Objective


@pytest.mark.slow
@pytest.mark.parametrize("model", ["logreg", "rf", "mlp"])
def test_runner_and_tuning_objective_score_a_fold_identically(
    tabular_gtzan: Path, model: str
) -> None:
    argv = ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--folds", "2"]
    assert main([*argv, "--models", model, "--no-report", "--device", "cpu"]) == 0
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/gtzan")
    logged = {
        run.data.tags["bench.fold"]: run.data.metrics
        for run in client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'job'")
    }

    dataset = load_gtzan(tabular_gtzan)
    folds = make_folds(dataset, Protocol("stratified-kfold", folds=2), seed=0)
    spec = registry.get(model)
    for fold in folds:
        dev = DevSplit("stratified-kfold", dataset.tracks, [fold], False, "one fold")
        for metric in ("accuracy", "log_loss", "f1_macro"):
            objective = Objective(spec, {}, dataset, dev, metric, 0, "cpu", threads=1)
            value = objective.evaluate({})
            assert value == pytest.approx(logged[fold.name][metric], rel=1e-9, abs=1e-12)
    assert np.mean([m["accuracy"] for m in logged.values()]) > 0.5  # ten genres: chance 0.1
