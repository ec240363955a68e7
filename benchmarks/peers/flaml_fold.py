"""Fit FLAML's AutoML on one fold and predict its test side (run by the FLAML venv's python).

    python flaml_fold.py FOLDER

``FOLDER`` holds ``spec.json`` (label column, time budget, seed, cores), ``train.csv`` (features
and label) and ``test.csv`` (features only: the test labels never reach the peer). Writes
``result.json``: the classes, the test rows' probabilities and predictions, fit and predict
seconds, the estimator FLAML chose and the versions used. Imports nothing from bench.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from flaml import AutoML
from installed import versions  # beside this script, in benchmarks/peers/

PACKAGES = ("flaml", "lightgbm", "xgboost", "scikit-learn", "numpy")
METRIC = "accuracy"
"""What FLAML's search minimises (as 1 - accuracy): the metric the leaderboard ranks by."""


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a FLAML config value (numpy scalars become Python numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def run(folder: Path) -> dict[str, Any]:
    """Search under the spec's time budget; score the test side with the chosen estimator."""
    spec = json.loads((folder / "spec.json").read_text())
    label = spec["label"]
    train = pd.read_csv(folder / "train.csv")
    test = pd.read_csv(folder / "test.csv")
    start = time.perf_counter()
    automl = AutoML()
    automl.fit(
        X_train=train.drop(columns=[label]),
        y_train=train[label],
        task="classification",
        metric=METRIC,
        time_budget=spec["time_limit"],
        n_jobs=spec["cpus"],
        seed=spec["seed"],
        log_file_name="",
        verbose=1,
    )
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    proba = automl.predict_proba(test)
    predict_seconds = time.perf_counter() - start
    classes = [str(c) for c in automl.classes_]
    return {
        "classes": classes,
        "proba": proba.tolist(),
        "pred": [classes[i] for i in proba.argmax(axis=1)],
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "detail": {
            "metric": METRIC,
            "best_estimator": automl.best_estimator,
            "best_config": _plain(automl.best_config),
            "best_val_accuracy": 1 - float(automl.best_loss),
            "trials": int(getattr(automl, "modelcount", 0)),
            "trials_per_estimator": {
                str(k): int(v) for k, v in getattr(automl, "_iter_per_learner", {}).items()
            },
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
