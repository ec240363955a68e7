"""Registration of the audio CNNs ``cnn_ref`` and ``cnn`` (input: a 1-D array of WAV paths).

This module must stay free of torch at import time, so that ``bench models`` lists the registry
instantly: the factories import :mod:`bench.models.cnn` when they are called.
"""

from __future__ import annotations

import os
from typing import Any

from bench.registry import register


def _cnn_ref_space(trial: Any) -> dict[str, Any]:
    """The reference keeps its input and architecture; its optimiser settings are tuned."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
    }


@register("cnn_ref", family="cnn", input_kind="audio", search_space=_cnn_ref_space)
def cnn_ref(
    seconds: float = 1.0,
    offset: float = 0.0,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int | None = None,
    validation_fraction: float = 0.0,
    device: str = "auto",
    random_state: int | None = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """The original GTZAN CNN (EnrcDamn): MFCC of the first 1 s, 4 conv blocks, bugs fixed."""
    from bench.models.cnn import ReferenceCNNClassifier

    return ReferenceCNNClassifier(
        seconds=seconds,
        offset=offset,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        validation_fraction=validation_fraction,
        device=device,
        random_state=random_state,
        checkpoint_dir=checkpoint_dir,
        cache_dir=cache_dir,
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


@register("cnn", family="cnn", input_kind="audio", search_space=_cnn_space)
def cnn(
    segment_seconds: float = 3.0,
    n_mels: int = 128,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    dropout: float = 0.3,
    freq_mask: int = 16,
    time_mask: int = 24,
    n_masks: int = 1,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    patience: int | None = 6,
    validation_fraction: float = 0.15,
    device: str = "auto",
    random_state: int | None = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """Log-mel CNN on 3 s segments with batch norm, dropout and masking, voted per track."""
    from bench.models.cnn import CNNClassifier

    return CNNClassifier(
        segment_seconds=segment_seconds,
        n_mels=n_mels,
        channels=tuple(channels),
        dropout=dropout,
        freq_mask=freq_mask,
        time_mask=time_mask,
        n_masks=n_masks,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        validation_fraction=validation_fraction,
        device=device,
        random_state=random_state,
        checkpoint_dir=checkpoint_dir,
        cache_dir=cache_dir,
    )
