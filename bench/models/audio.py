"""Registration of the audio models (input: a 1-D array of audio file paths): the CNNs
``cnn_ref`` and ``cnn``, and the probes on pretrained embeddings ``musicnn_probe`` and
``vgg_probe``.

They are registered as classes of :mod:`bench.models.cnn` and :mod:`bench.models.pretrained`,
whose constructors are their signatures. This module must stay free of torch at import time,
so that ``bench models`` lists the registry instantly: the registry imports their modules
when a model is first used.
"""

from __future__ import annotations

from typing import Any

from bench.registry import register_class


def _cnn_ref_space(trial: Any) -> dict[str, Any]:
    """The reference keeps its input and architecture; its optimiser settings are tuned."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
    }


register_class(
    "cnn_ref",
    "bench.models.cnn:ReferenceCNNClassifier",
    family="cnn",
    input_kind="audio",
    search_space=_cnn_ref_space,
    description=(
        "The original GTZAN CNN (EnrcDamn): MFCC of the first 1 s, 4 conv blocks, bugs fixed."
    ),
)


def _cnn_space(trial: Any) -> dict[str, Any]:
    """Width, regularisation, augmentation and optimiser of ``cnn`` (features stay cached:
    ``segment_seconds`` is cut from the cached whole-clip image, so tuning it is cheap too)."""
    width = trial.suggest_categorical("width", [8, 16, 24])
    return {
        "channels": (width, 2 * width, 4 * width, 8 * width),
        "segment_seconds": trial.suggest_categorical("segment_seconds", [1.5, 3.0, 5.0]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "freq_mask": trial.suggest_int("freq_mask", 0, 32),
        "time_mask": trial.suggest_int("time_mask", 0, 48),
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
    }


register_class(
    "cnn",
    "bench.models.cnn:CNNClassifier",
    family="cnn",
    input_kind="audio",
    search_space=_cnn_space,
    description=(
        "Log-mel CNN on 3 s segments with batch norm, dropout and masking, voted per track."
    ),
)


def _probe_space(trial: Any) -> dict[str, Any]:
    """The head and its regularisation (embeddings stay cached: a trial costs a head's fit)."""
    head = trial.suggest_categorical("head", ["logreg", "svm"])
    low, high = (1e-4, 1e1) if head == "logreg" else (1e-1, 1e3)
    return {
        "head": head,
        "head_params": {"C": trial.suggest_float(f"{head}_C", low, high, log=True)},
    }


register_class(
    "musicnn_probe",
    "bench.models.pretrained:MusicnnProbe",
    family="pretrained",
    input_kind="audio",
    search_space=_probe_space,
    description=(
        "musicnn (MSD) clip embedding -> standardised logistic regression (or svm, mlp head)."
    ),
)
register_class(
    "vgg_probe",
    "bench.models.pretrained:VGGProbe",
    family="pretrained",
    input_kind="audio",
    search_space=_probe_space,
    description="musicnn's VGG baseline (MSD) clip embedding -> standardised logistic regression.",
)
