"""Scores of one fold's predictions."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1 and log loss of class probabilities.

    ``proba`` has one column per class of the whole dataset, so the log loss stays defined when
    a fold's test side lacks a class.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss

    labels = np.arange(proba.shape[1])
    y_pred = proba.argmax(axis=1)
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "f1_macro": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "log_loss": float(log_loss(y_true, clipped, labels=labels)),
    }


def align_proba(proba: np.ndarray, model_classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Spread a model's probability columns onto all ``n_classes`` (absent classes get 0)."""
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(model_classes, dtype=int)] = proba
    return full
