"""Torch classifiers that speak the scikit-learn estimator protocol.

Speaking ``fit`` / ``predict_proba`` / ``classes_`` with constructor arguments stored unchanged is
what lets ``clone``, ``BaggingClassifier``, ``StackingClassifier`` and the runner use a network like
any other model. This module imports torch; registration modules import it lazily.

Why one module (~450 lines): the training loop, early stopping, checkpoint and resume and
the scikit-learn protocol share the estimator's state; the networks are elsewhere
(:mod:`bench.models.cnn`, :mod:`bench.models.mlp_net`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _num_samples,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from torch import nn

from bench.environment import cpu_threads, resolve_device

log = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, float]], None]
"""Called as ``callback(epoch, metrics)`` after each epoch; what it raises ends ``fit``."""

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
RESUME_IGNORES = ("device", "checkpoint_dir")
"""Parameters that say where a training runs, not what it is: resuming across them is allowed."""


@dataclass
class _Progress:
    """Where a training stands: enough, with the model and optimizer, to resume it."""

    data: str = ""
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: tuple[float, float] = (-float("inf"), -float("inf"))
    """(validation accuracy, -validation loss) of the best epoch: larger is better."""
    best_state: dict[str, torch.Tensor] | None = None


class TorchClassifier(ClassifierMixin, BaseEstimator):
    """Base class: a torch network trained by a short loop, used through the sklearn API.

    Subclasses write an ``__init__`` that stores their own parameters and these, and override:

    - ``_build_module(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module``
      (required): the network, mapping a batch ``(B, *input_shape)`` to logits ``(B, n_classes)``.
      It is also called to rebuild the network when a pickled or skops-saved model is loaded, so
      it may use fitted attributes set by ``_to_tensor(fit=True)`` but must not need the data.
    - ``_to_tensor(self, X, *, fit: bool) -> tuple[torch.Tensor, np.ndarray]``: turn ``X`` into
      float inputs (any device, moved to the training device once) and ``rows``, where
      ``rows[i]`` is the row of ``X`` that input ``i`` came from. One input per row by default (a
      validated 2-D float array); an audio subclass returns several segments per file. Labels are
      repeated over a row's inputs, and ``predict_proba`` averages their probabilities per row
      (soft voting). With ``fit=True`` it may fit preprocessing on the training data.
    - ``_groups(self, X) -> np.ndarray | None``: a group label per row of ``X``; the early-stopping
      validation split never puts one group on both sides. Inputs from one row always stay
      together, so segments of one track need no override; return e.g. artist ids when ``X``
      rows are themselves segments of shared tracks.
    - ``_augment(self, batch: torch.Tensor) -> torch.Tensor``: applied to every training
      mini-batch on the device (never to validation or prediction); identity by default.
    - ``_batch_loss(self, module, batch, targets) -> torch.Tensor``: the training loss of one
      augmented mini-batch; cross-entropy of the logits by default (mixup overrides it).
    - ``_epoch_lr(self, epoch: int) -> float``: the learning rate of a 1-based epoch, set before
      it starts; ``lr`` throughout by default. A function of the epoch alone, so a resumed
      training continues its schedule without a scheduler state in the checkpoint.
    - ``_make_optimizer(self, params) -> torch.optim.Optimizer``: ``AdamW(lr, weight_decay)``.
    - class attributes ``eval_batch_size`` (inputs per forward pass outside training) and
      ``cpu_threads`` (torch threads while fitting and predicting; ``None`` leaves torch's).

    Training holds out a stratified ``validation_fraction`` of the rows (grouped as above) and keeps
    the weights of the epoch with the best validation accuracy, ties going to the lower validation
    loss; it stops after ``patience`` epochs without improvement (``None``: never). Loss alone is
    not the criterion: it rises with over-confidence while accuracy still improves, and stopping
    on it cost ``mlp_ref`` 4 points on GTZAN. ``validation_fraction=0`` trains all ``epochs`` on
    everything and keeps the last weights. With ``checkpoint_dir``, ``last.pt`` is written every
    epoch and ``best.pt`` on every improvement, and a later ``fit`` with the same parameters
    (``device`` and ``checkpoint_dir`` aside) and the same data resumes from ``last.pt``: the epoch
    count, history, optimizer and RNG states carry on. Checkpoints hold only tensors and builtins,
    for ``torch.load(path, map_location="cpu", weights_only=True)``.

    Fitted attributes: ``classes_``, ``module_`` (in eval mode), ``input_shape_``, ``history_``
    (one dict per epoch: epoch, lr, train_loss, val_loss, val_accuracy, seconds; the ``val_``
    keys only with a validation split; accuracy is per input, not per row) and ``best_epoch_``
    (1-based).

    Pickling and skops keep the weights as numpy arrays and rebuild the module on load, on the
    CPU; ``callbacks`` are dropped, because they belong to one run (an Optuna trial) and ``clone``
    deep-copies them (a callback holding unpicklable state should define ``__deepcopy__``).
    """

    eval_batch_size = 1024
    """Inputs per forward pass in evaluation and prediction (memory, not results)."""
    cpu_threads: int | None = None
    """Torch intra-op threads during ``fit`` and ``predict_proba`` (``None``: leave torch's)."""

    def __init__(
        self,
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
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks

    # --- extension points -------------------------------------------------------------------

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement _build_module")

    def _to_tensor(self, X: Any, *, fit: bool) -> tuple[torch.Tensor, np.ndarray]:
        X = validate_data(self, X, reset=fit, dtype=np.float32)
        return torch.from_numpy(X), np.arange(len(X))

    def _groups(self, X: Any) -> np.ndarray | None:
        return None

    def _augment(self, batch: torch.Tensor) -> torch.Tensor:
        return batch

    def _make_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def _batch_loss(
        self, module: nn.Module, batch: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return F.cross_entropy(module(batch), targets)  # logits: no softmax before it

    def _epoch_lr(self, epoch: int) -> float:
        return self.lr

    # --- scikit-learn API -------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> TorchClassifier:
        """Train on (X, y), holding out a validation slice for early stopping."""
        device = torch.device(resolve_device(self.device))
        amp = autocast(device)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))

        labels = self._encode_labels(X, y)
        x, rows = self._to_tensor(X, fit=True)
        targets = torch.from_numpy(labels[rows])
        train, val = self._validation_split(labels, rows, self._groups(X), seed)
        self.input_shape_ = tuple(x.shape[1:])
        fingerprint = _fingerprint(x, targets, train)
        x_train, y_train = x[train].to(device), targets[train].to(device)
        x_val, y_val = x[val].to(device), targets[val].to(device)
        del x, targets

        # Seed weight init and dropout inside a fork, so the caller's global RNG is left alone.
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), cpu_threads(self.cpu_threads):
            torch.manual_seed(seed)
            module = self._build_module(self.input_shape_, len(self.classes_)).to(device)
            optimizer = self._make_optimizer(module.parameters())
            shuffle = torch.Generator().manual_seed(seed)
            progress = self._resume(module, optimizer, shuffle, fingerprint, device)
            resumed_from = progress.epoch
            self._train(module, optimizer, shuffle, progress, x_train, y_train, x_val, y_val, amp)

        if progress.best_state is not None:
            module.load_state_dict(progress.best_state)
        self.module_ = module.eval()
        self.history_ = progress.history
        self.best_epoch_ = progress.best_epoch
        self.resumed_from_epoch_ = resumed_from  # 0 unless a killed training was continued
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the logits, averaged over the inputs of each row of ``X``."""
        check_is_fitted(self, "module_")
        x, rows = self._to_tensor(X, fit=False)
        device = next(self.module_.parameters()).device
        with cpu_threads(self.cpu_threads):
            logits = _logits(self.module_, x, autocast(device), self.eval_batch_size, device)
        proba = torch.softmax(logits.double(), dim=1).cpu().numpy()
        n_rows = _num_samples(X)
        out = np.zeros((n_rows, proba.shape[1]))
        np.add.at(out, rows, proba)
        return out / np.bincount(rows, minlength=n_rows)[:, None]

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]

    # --- the training loop ------------------------------------------------------------------

    def _train(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        shuffle: torch.Generator,
        progress: _Progress,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_val: torch.Tensor,
        y_val: torch.Tensor,
        amp: AbstractContextManager,
    ) -> None:
        """Epochs of shuffled mini-batches (index slices of one permutation) from where we are."""
        n = len(x_train)
        for epoch in range(progress.epoch + 1, self.epochs + 1):
            if self.patience is not None and epoch - 1 - progress.best_epoch >= self.patience:
                log.debug(
                    "early stop before epoch %d: best was epoch %d", epoch, progress.best_epoch
                )
                break
            t0 = time.perf_counter()
            lr = self._epoch_lr(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            module.train()
            order = torch.randperm(n, generator=shuffle).to(x_train.device)
            total = torch.zeros((), device=x_train.device)
            for start in range(0, n, self.batch_size):
                batch = order[start : start + self.batch_size]
                with amp:
                    loss = self._batch_loss(module, self._augment(x_train[batch]), y_train[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(batch)

            metrics = {"epoch": epoch, "lr": lr, "train_loss": total.item() / n}
            if len(x_val):
                metrics.update(self._evaluate(module, x_val, y_val, amp))
            metrics["seconds"] = time.perf_counter() - t0
            score = (metrics["val_accuracy"], -metrics["val_loss"]) if len(x_val) else None
            improved = score is None or score > progress.best_score
            if improved:
                progress.best_epoch, progress.best_score = epoch, score or progress.best_score
                progress.best_state = {k: v.clone() for k, v in module.state_dict().items()}
            progress.epoch = epoch
            progress.history.append(metrics)
            log.debug("epoch %d %s", epoch, metrics)
            if self.checkpoint_dir is not None:
                self._save_checkpoint(module, optimizer, shuffle, progress, improved)
            for callback in self.callbacks or ():
                callback(epoch, dict(metrics))

    def _evaluate(
        self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: AbstractContextManager
    ) -> dict[str, float]:
        logits = _logits(module, x, amp, self.eval_batch_size, x.device)
        return {
            "val_loss": F.cross_entropy(logits, y).item(),
            "val_accuracy": (logits.argmax(dim=1) == y).float().mean().item(),
        }

    # --- data -------------------------------------------------------------------------------

    def _encode_labels(self, X: Any, y: Any) -> np.ndarray:
        """Set ``classes_`` (sorted) and return ``y`` as codes into it."""
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        return codes.astype(np.int64)

    def _validation_split(
        self, labels: np.ndarray, rows: np.ndarray, groups: np.ndarray | None, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices of training and validation inputs, split by group, stratified when possible."""
        item_groups = rows if groups is None else np.asarray(groups)[rows]
        everything, nothing = np.arange(len(rows)), np.arange(0)
        unique, first = np.unique(item_groups, return_index=True)
        if not self.validation_fraction or len(unique) < 2:
            return everything, nothing
        group_labels = labels[rows][first]
        split = {"test_size": self.validation_fraction, "random_state": seed}
        try:
            _, val_groups = train_test_split(unique, stratify=group_labels, **split)
        except ValueError:  # a class too rare to be on both sides: split without stratifying
            _, val_groups = train_test_split(unique, **split)
        is_val = np.isin(item_groups, val_groups)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)

    # --- checkpoints ------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        """Constructor parameters as JSON values (tuples become lists), without callbacks."""
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "callbacks"}
        return json.loads(json.dumps(params, default=str))

    def _resume(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        shuffle: torch.Generator,
        fingerprint: str,
        device: torch.device,
    ) -> _Progress:
        """Load ``last.pt`` into module, optimizer and RNGs when it is this very training."""
        fresh = _Progress(data=fingerprint)
        if self.checkpoint_dir is None:
            return fresh
        path = Path(self.checkpoint_dir) / LAST_CHECKPOINT
        if not path.is_file():
            return fresh
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
            log.warning("%s: unreadable checkpoint (%s); training from scratch", path, exc)
            return fresh
        wanted = {k: v for k, v in self._config().items() if k not in RESUME_IGNORES}
        found = {k: v for k, v in ckpt["config"].items() if k not in RESUME_IGNORES}
        if found != wanted or ckpt["data"] != fingerprint:
            what = "parameters" if found != wanted else "training data"
            log.warning("%s: written for other %s; training from scratch", path, what)
            return fresh
        module.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        shuffle.set_state(ckpt["rng"]["shuffle"])
        if device.type == "cuda" and ckpt["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        best = ckpt["best_model"]
        log.info("%s: resuming after epoch %d", path, ckpt["epoch"])
        return _Progress(
            data=fingerprint,
            epoch=ckpt["epoch"],
            history=ckpt["history"],
            best_epoch=ckpt["best_epoch"],
            best_score=tuple(ckpt["best_score"]),
            best_state=None if best is None else {k: v.to(device) for k, v in best.items()},
        )

    def _save_checkpoint(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        shuffle: torch.Generator,
        progress: _Progress,
        improved: bool,
    ) -> None:
        """Write ``last.pt`` (and ``best.pt`` when ``improved``); tensors and builtins only."""
        device = next(module.parameters()).device
        cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        ckpt = {
            "epoch": progress.epoch,
            "model": module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "best_model": progress.best_state,
            "best_epoch": progress.best_epoch,
            "best_score": list(progress.best_score),
            "history": progress.history,
            "config": self._config(),
            "data": progress.data,
            "classes": self.classes_.tolist(),
            "input_shape": list(self.input_shape_),
            "rng": {
                "torch": torch.get_rng_state(),
                "shuffle": shuffle.get_state(),
                "cuda": cuda_rng,
            },
        }
        directory = Path(self.checkpoint_dir)
        directory.mkdir(parents=True, exist_ok=True)
        if improved:
            _atomic_save(ckpt, directory / BEST_CHECKPOINT)
        _atomic_save(ckpt, directory / LAST_CHECKPOINT)

    # --- persistence ------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Builtins and numpy only (weights as arrays), so skops can save it without pickle."""
        state = dict(super().__getstate__())
        state["callbacks"] = None
        module = state.pop("module_", None)
        if module is not None:
            state["module_state_"] = {
                k: v.detach().cpu().numpy() for k, v in module.state_dict().items()
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Weights back into a module whose shapes are first checked on the ``meta`` device:
        hyper-parameters from a file (``hidden_sizes``, channels) must not size an allocation
        that the stored weights do not match."""
        state = dict(state)
        weights = state.pop("module_state_", None)
        super().__setstate__(state)
        if weights is not None:
            shape, n_classes = tuple(self.input_shape_), len(self.classes_)
            with torch.device("meta"):  # shapes only: nothing is allocated
                expected = {k: tuple(v.shape) for k, v in self._build_module(shape, n_classes)
                            .state_dict().items()}  # fmt: skip
            stored = {k: tuple(np.shape(v)) for k, v in weights.items()}
            if stored != expected:
                wrong = sorted(set(stored.items()) ^ set(expected.items()))[:2]
                raise ValueError(
                    f"{type(self).__name__}: the stored weights do not have the shapes its "
                    f"parameters imply ({wrong})"
                )
            module = self._build_module(shape, n_classes)
            module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
            self.module_ = module.eval()


def autocast(device: torch.device) -> AbstractContextManager:
    """bf16 autocast on CUDA; plain fp32 on the CPU, where bf16 matmuls are slow and lossy."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def _logits(
    module: nn.Module,
    x: torch.Tensor,
    amp: AbstractContextManager,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Float32 logits of ``x`` in eval mode, ``batch_size`` inputs at a time."""
    module.eval()
    out = []
    for start in range(0, len(x), batch_size):
        with amp:
            out.append(module(x[start : start + batch_size].to(device)).float())
    return torch.cat(out) if out else torch.zeros(0, 0, device=device)


def _fingerprint(x: torch.Tensor, targets: torch.Tensor, train: np.ndarray) -> str:
    """Hash of the inputs, labels and split: a checkpoint resumes only the same training."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (x, targets, torch.from_numpy(train)):
        digest.update(part.detach().cpu().contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file then ``os.replace``: a kill never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
