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
