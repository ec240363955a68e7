"""A logged job to work on: logreg on two folds of a GTZAN folder, its fold0 run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from bench.cli import main
from bench.tracking import resolve_uri


def logreg_fold0_run(data_dir: Path) -> Any:
    """Run ``logreg`` of the gtzan suite on 2 folds of ``data_dir`` into this test's store and
    return the MLflow run of its fold0 job."""
    argv = ["run", "--suite", "gtzan", "--data-dir", str(data_dir), "--models", "logreg"]
    assert main([*argv, "--folds", "2", "--no-report"]) == 0
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/gtzan")
    return client.search_runs([experiment.experiment_id], "tags.`bench.fold` = 'fold0'")[0]
