"""One fold, scored one way: what ``bench run`` logs is what ``bench tune`` optimises.

Both the runner (a job per model and fold) and the tuning objective (inner folds of the
development split) go through these functions: which rows a model sees, which folds it can be
scored on and why not the others, the resources it is given, and fit -> predict_proba ->
align -> vote -> metrics. Scoring in one place is what keeps the objective and the leaderboard
from drifting apart.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.data.dataset import Dataset
from bench.data.splits import Fold
from bench.environment import torchaudio_problem
from bench.metrics import align_proba, classification_metrics, per_class_f1, vote_by_track
from bench.registry import ModelSpec

AUDIO_KINDS = ("audio", "multimodal")


def model_inputs(dataset: Dataset, input_kind: str) -> Any:
    """What a model of ``input_kind`` is fitted on, one row per dataset row.

    tabular: the feature matrix; audio: an array of clip paths; multimodal: a DataFrame of the
    features plus an ``audio_path`` column, from which each stack member selects its part.
    """
    if input_kind == "tabular":
        return dataset.features.to_numpy()
    paths = np.array([str(dataset.audio.get(t, "")) for t in dataset.tracks], dtype=object)
    if input_kind == "audio":
        return paths
    if input_kind == "multimodal":
        from bench.models.columns import AUDIO_COLUMN

        frame = dataset.features.reset_index(drop=True).copy()
        frame[AUDIO_COLUMN] = paths
        return frame
    raise ValueError(f"unknown input kind {input_kind!r}")


def take_rows(inputs: Any, rows: np.ndarray) -> Any:
    """Rows of a model's inputs: a DataFrame (multimodal) or an array."""
    return inputs.iloc[rows] if hasattr(inputs, "iloc") else inputs[rows]


def audio_folds(dataset: Dataset, folds: list[Fold]) -> list[Fold]:
    """``folds`` restricted to the rows that have audio (for audio and multimodal models)."""
    has_audio = np.array([t in dataset.audio for t in dataset.tracks])
    return [
        Fold(f.name, f.train[has_audio[f.train]], f.test[has_audio[f.test]], f.groups)
        for f in folds
    ]


def thin_for_inner_cv(dataset: Dataset, folds: list[Fold], inner: object) -> dict[str, int]:
    """Folds whose training side no stratified ``inner``-fold CV can split, with their largest
    class count (scikit-learn refuses when every class has fewer rows than folds)."""
    if not isinstance(inner, int) or isinstance(inner, bool) or inner < 2:
        return {}
    thin = {}
    for fold in folds:
        largest = int(np.bincount(dataset.labels[fold.train]).max(initial=0))
        if largest < inner:
            thin[fold.name] = largest
    return thin


def servable_folds(
    spec: ModelSpec, params: dict[str, Any], dataset: Dataset, folds: list[Fold]
) -> tuple[list[Fold], str | None]:
    """The folds ``spec`` can be scored on (audio rows only for audio models), and why the
    others cannot, or None when every fold serves.

    Audio models need a torchaudio that loads and clips on both sides of a fold; a stack needs
    a class with ``cv`` training rows for its own inner CV (else scikit-learn refuses).
    """
    reasons = []
    if spec.input_kind in AUDIO_KINDS:
        broken = torchaudio_problem()
        if broken:
            return [], f"{broken}; `bench doctor` names the fix"
        has_audio = np.array([t in dataset.audio for t in dataset.tracks])
        audio_note = f"{int(has_audio.sum())} of {len(has_audio)} tracks have audio"
        if not has_audio.any():
            return [], (
                f"needs audio ({spec.input_kind}), but {dataset.root} has no readable clips "
                "under genres_original/"
            )
        folds = audio_folds(dataset, folds)
        empty = [f.name for f in folds if not len(f.test) or not len(f.train)]
        if empty:
            reasons.append(
                f"{', '.join(empty)}: no tracks with audio on one side of the split ({audio_note})"
            )
            folds = [f for f in folds if f.name not in empty]
    inner = spec.value(params, "bag") or spec.value(params, "cv")  # a stack's own folds
    thin = thin_for_inner_cv(dataset, folds, inner)
    if thin:
        reason = (
            f"{', '.join(thin)}: the inner {inner}-fold CV needs a class with at least "
            f"{inner} training rows, but the largest has {max(thin.values())}"
        )
        if spec.input_kind in AUDIO_KINDS:
            reason += f" ({audio_note})"
        reasons.append(reason)
        folds = [f for f in folds if f.name not in thin]
    return folds, "; ".join(reasons) or None


def with_resources(
    accepted: Collection[str],
    params: dict[str, Any],
    threads: int,
    checkpoint_dir: str | None = None,
) -> dict[str, Any]:
    """``params`` plus the resources of where the fit runs (threads for ``n_jobs``, a
    checkpoint folder), where the factory takes them (``accepted``: its parameter names) and
    the suite left them unset. They stay out of a job's configuration hash: they change where
    it runs, not what it computes."""
    full = dict(params)
    if "n_jobs" in accepted and full.get("n_jobs") is None:
        full["n_jobs"] = threads
    if checkpoint_dir and "checkpoint_dir" in accepted and full.get("checkpoint_dir") is None:
        full["checkpoint_dir"] = checkpoint_dir
    return full


@dataclass
class FoldScore:
    """A fitted model's scores on one fold's test side (tracks, when rows are segments)."""

    metrics: dict[str, float]
    proba: np.ndarray
    y_true: np.ndarray
    ids: pd.Index


def score_fold(model: Any, dataset: Dataset, inputs: Any, fold: Fold) -> FoldScore:
    """Fit ``model`` on the fold's training rows and score its test rows.

    Probabilities are aligned to the dataset's classes; with segment rows
    (``dataset.vote == "track"``) each track is scored by its segments' mean probability.
    Metrics: accuracy, balanced accuracy, macro-F1, log loss, per-class F1, fit seconds and
    predict seconds per item.
    """
    grouped = {}
    if fold.groups is not None and "groups" in inspect.signature(model.fit).parameters:
        grouped["groups"] = fold.groups[fold.train]  # for the model's own inner folds
    start = time.perf_counter()
    model.fit(take_rows(inputs, fold.train), dataset.labels[fold.train], **grouped)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    raw = model.predict_proba(take_rows(inputs, fold.test))
    predict_seconds = time.perf_counter() - start
    proba = align_proba(raw, model.classes_, len(dataset.classes))
    y_true = dataset.labels[fold.test]
    ids = dataset.features.index[fold.test]
    if dataset.vote == "track":
        ids, y_true, proba = vote_by_track(dataset.tracks[fold.test], y_true, proba)
        ids = pd.Index(ids, name="track")
    metrics = classification_metrics(y_true, proba)
    if dataset.vote == "track":
        metrics["n_test_tracks"] = len(ids)
    metrics.update(per_class_f1(y_true, proba.argmax(axis=1), dataset.classes))
    metrics.update(
        fit_seconds=fit_seconds,
        predict_seconds_per_item=predict_seconds / max(1, len(fold.test)),
    )
    return FoldScore(metrics, proba, y_true, ids)
