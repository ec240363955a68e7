"""Fit AutoGluon on one fold and predict its test side (run by the AutoGluon venv's python).

    python autogluon_fold.py FOLDER

``FOLDER`` holds ``spec.json`` (label column, time limit, seed, cores), ``train.csv`` (features
and label) and ``test.csv`` (features only: the test labels never reach the peer). Writes
``result.json``: the classes, the test rows' probabilities and predictions, fit and predict
seconds, the leaderboard's best model and the versions used. Imports nothing from bench.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from autogluon.tabular import TabularPredictor
from installed import versions  # beside this script, in benchmarks/peers/

PACKAGES = ("autogluon.tabular", "lightgbm", "catboost", "xgboost", "scikit-learn", "numpy")


def _predictor(label: str, path: Path) -> TabularPredictor:
    return TabularPredictor(
        label=label,
        problem_type="multiclass",
        eval_metric="accuracy",
        path=str(path),
        verbosity=2,
    )


def run(folder: Path) -> dict[str, Any]:
    """Fit ``best_quality`` under the spec's wall-clock limit, then predict the test side."""
    spec = json.loads((folder / "spec.json").read_text())
    label = spec["label"]
    train = pd.read_csv(folder / "train.csv")
    test = pd.read_csv(folder / "test.csv")
    fit = {
        "presets": "best_quality",
        "num_cpus": spec["cpus"],
        "num_gpus": 0,
        "ag_args_ensemble": {"model_random_seed": spec["seed"]},
    }
    start = time.perf_counter()
    dystack_failed = False
    try:
        predictor = _predictor(label, folder / "model")
        predictor.fit(train, time_limit=spec["time_limit"], **fit)
    except AssertionError as exc:
        if "already fit" not in str(exc):
            raise
        # AutoGluon 1.6.3 without ray runs the DyStack sub-fit in this process; when that
        # sub-fit raises (no model trained in its share of the time), it does not restore the
        # predictor's learner, and the main fit fails with this assertion. AutoGluon's own
        # decision after a failed sub-fit is num_stack_levels=1: fit that, in the time left.
        dystack_failed = True
        left = max(1.0, spec["time_limit"] - (time.perf_counter() - start))
        predictor = _predictor(label, folder / "model-main")
        predictor.fit(train, time_limit=left, dynamic_stacking=False, num_stack_levels=1, **fit)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    proba = predictor.predict_proba(test)
    predict_seconds = time.perf_counter() - start
    pred = predictor.predict_from_proba(proba)
    board = predictor.leaderboard(silent=True)
    best = predictor.model_best
    row = board.set_index("model").loc[best]
    top = board.head(5)[["model", "score_val", "fit_time", "stack_level"]]
    return {
        "classes": [str(c) for c in proba.columns],
        "proba": proba.to_numpy().tolist(),
        "pred": [str(p) for p in pred],
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "detail": {
            "dystack_failed": dystack_failed,
            "best_model": best,
            "best_score_val": float(row["score_val"]),
            "best_stack_level": int(row["stack_level"]),
            "models_trained": len(board),
            "leaderboard_top": top.to_dict(orient="records"),
        },
        "versions": versions(PACKAGES),
    }


def main() -> int:
    folder = Path(sys.argv[1])
    result = run(folder)
    (folder / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
