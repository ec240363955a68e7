"""Acceptance on the real Kaggle GTZAN features (1000 tracks): bench reproduces known scores.

Measured outside bench on the same protocols: XGBoost 0.753 (5-fold) and 0.555 (artist-filtered).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from bench.cli import main
from bench.tracking import resolve_uri

pytestmark = pytest.mark.slow


def _accuracies(protocol: str) -> list[float]:
    client = MlflowClient(resolve_uri())
    exp = client.get_experiment_by_name("bench/gtzan")
    runs = client.search_runs(
        [exp.experiment_id],
        f"tags.`bench.model` = 'xgboost' and tags.`bench.protocol` = '{protocol}' "
        "and attributes.status = 'FINISHED'",
    )
    return [r.data.metrics["accuracy"] for r in runs]


@pytest.mark.slow
def test_xgboost_on_real_features_both_protocols(shared_data: Path) -> None:
    base = [
        "run",
        "--suite",
        "gtzan",
        "--data-dir",
        str(shared_data / "gtzan"),
        "--models",
        "xgboost",
    ]
    assert main([*base, "--workers", "2"]) == 0
    folds = _accuracies("stratified-kfold")
    assert len(folds) == 5 and np.mean(folds) >= 0.72
    assert main([*base, "--protocol", "fault-filtered"]) == 0
    (test,) = _accuracies("fault-filtered")
    assert test >= 0.50
    board = Path("reports/gtzan/leaderboard.md").read_text()
    assert "artist-filtered split (train+valid -> test)" in board and "5-fold stratified" in board


@pytest.mark.slow
def test_stack_beats_its_members_on_real_features(shared_data: Path, tmp_path: Path) -> None:
    """Out-of-fold stacking of svm, mlp and extra_trees: 0.762 measured here (members <= 0.745).

    The suite's default stack (logreg, svm, rf, xgboost) scores 0.766 but costs ~4x the time.
    """
    suite = tmp_path / "stackreal.toml"
    suite.write_text(
        """name = "stackreal"
[dataset]
kind = "gtzan"
[protocol]
name = "stratified-kfold"
folds = 5
[[models]]
name = "svm"
params = { C = 10.0 }
[[models]]
name = "mlp"
[[models]]
name = "extra_trees"
[[models]]
name = "stack"
params = { estimators = ["svm", "mlp", "extra_trees"], estimator_params = { svm = { C = 10.0 } } }
"""
    )
    argv = ["run", "--suite", str(suite), "--data-dir", str(shared_data / "gtzan"), "--no-report"]
    assert main(argv) == 0
    client = MlflowClient(resolve_uri())
    exp = client.get_experiment_by_name("bench/stackreal")
    runs = client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'job'")
    means = {
        m: np.mean([r.data.metrics["accuracy"] for r in runs if r.data.tags["bench.model"] == m])
        for m in ("svm", "mlp", "extra_trees", "stack")
    }
    assert means["stack"] >= 0.755, means
    assert means["stack"] > max(means["svm"], means["mlp"], means["extra_trees"]), means
