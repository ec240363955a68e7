"""Scores of one fold's predictions."""

from __future__ import annotations

import re

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


def vote_by_track(
    tracks: np.ndarray, y_true: np.ndarray, proba: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Track-level predictions from segment rows: ``(tracks, labels, mean probabilities)``.

    Each track's probability is the mean of its segments' (soft voting); its predicted class is
    the argmax of that mean. Tracks come out sorted. A track whose segments disagree on the
    label is an error in the data, not something to average away.
    """
    names, inverse = np.unique(np.asarray(tracks), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(names))
    summed = np.zeros((len(names), proba.shape[1]))
    np.add.at(summed, inverse, proba)
    labels = np.full(len(names), -1, dtype=np.int64)
    labels[inverse] = y_true
    if np.any(labels[inverse] != y_true):
        bad = names[np.flatnonzero(np.bincount(inverse, weights=labels[inverse] != y_true))[0]]
        raise ValueError(f"track {bad} has segments with different labels")
    return names, labels, summed / counts[:, None]


def align_proba(proba: np.ndarray, model_classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Spread a model's probability columns onto all ``n_classes`` (absent classes get 0)."""
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(model_classes, dtype=int)] = proba
    return full


PER_CLASS_F1 = "f1_class."
ENSEMBLE_WEIGHT = "weight."
"""Metric prefix of a member's weight in a greedy ensemble (``weight.lightgbm``)."""


def per_class_f1(
    y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]
) -> dict[str, float]:
    """``f1_class.<genre>`` for every class present in the truth or the predictions of a fold.

    A class absent from both has no defined F1 and is left out rather than logged as 0.
    Characters MLflow refuses in metric names become ``_``.
    """
    from sklearn.metrics import f1_score

    present = np.union1d(np.unique(y_true), np.unique(y_pred)).astype(int)
    scores = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    return {
        PER_CLASS_F1 + re.sub(r"[^\w\-. /:]", "_", classes[c]): float(s)
        for c, s in zip(present, scores, strict=True)
    }
