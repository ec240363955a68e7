"""The multilayer perceptron behind ``mlp`` and ``mlp_ref`` (imports torch; import it lazily)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.models.torch_estimator import Callback, TorchClassifier


class Standardize(nn.Module):
    """Feature standardisation as a layer, so its statistics travel with the state dict."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class MLPClassifier(TorchClassifier):
    """Standardise, then ``Linear -> ReLU [-> Dropout]`` per hidden size, then a linear head.

    The mean and scale are fitted in ``fit`` on the training rows only (one original project
    fitted its scaler on the test data) and stored as ``mean_`` / ``scale_``.

    Example::

        >>> from sklearn.datasets import make_classification
        >>> X, y = make_classification(200, n_informative=5, n_classes=3, random_state=0)
        >>> model = MLPClassifier(hidden_sizes=(32,), epochs=5, device="cpu").fit(X, y)
        >>> model.predict_proba(X).shape, len(model.history_)
        ((200, 3), 5)
    """

    cpu_threads = 1
    """Batches of 32-64 rows are far too small to share among threads: on 2 busy cores, fitting
    ``mlp_ref`` took 0.18 s on one thread and 11-19 s on two (threads waiting on each other)."""

    def __init__(
        self,
        hidden_sizes: tuple[int, ...] = (128, 64, 32),
        dropout: float = 0.0,
        *,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int | None = 10,
        validation_fraction: float = 0.1,
        device: str = "auto",
        random_state: int | None = 0,
        checkpoint_dir: str | os.PathLike | None = None,
        callbacks: list[Callback] | None = None,
    ) -> None:
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            validation_fraction=validation_fraction,
            device=device,
            random_state=random_state,
            checkpoint_dir=checkpoint_dir,
            callbacks=callbacks,
        )
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout

    def _to_tensor(self, X: Any, *, fit: bool) -> tuple[torch.Tensor, np.ndarray]:
        x, rows = super()._to_tensor(X, fit=fit)
        if fit:
            self.mean_ = x.double().mean(dim=0).numpy()
            scale = x.double().std(dim=0, correction=0).numpy()
            self.scale_ = np.where(scale > 0, scale, 1.0)
        return x, rows

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        layers: list[nn.Module] = [Standardize(self.mean_, self.scale_)]
        width = input_shape[0]
        for size in self.hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if self.dropout:
                layers.append(nn.Dropout(self.dropout))
            width = size
        layers.append(nn.Linear(width, n_classes))
        return nn.Sequential(*layers)
