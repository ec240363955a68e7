"""The audio CNNs behind ``cnn_ref`` and ``cnn`` (imports torch; registration imports it lazily).

Both take a 1-D array of audio file paths as ``X``. Their spectrogram images come from a
:class:`~bench.features.cache.FeatureCache`, so each image is computed once and shared by every
fold, run and model that asks for the same :class:`SpectrogramParams`; training then runs on
device-resident tensors through :class:`~bench.models.torch_estimator.TorchClassifier`.

- :class:`ReferenceCNNClassifier` is the GTZAN CNN of EnrcDamn/MusicGenreClassifier-PyTorch as it
  was (MFCC of the first second, four unnormalised conv blocks, Adam 1e-3, batch 128, 10 epochs),
  with only its outright bugs fixed: logits into the cross-entropy (it put a softmax first),
  shuffled batches, and evaluation on held-out tracks (the runner's folds). Its linear layer is
  sized from the input: the hard-coded 128*4*4 fitted the 13 MFCCs of its training script, not
  the 20 of its dataset script, which bench uses.
- :class:`CNNClassifier` is the same idea done properly: standardised log-mel images of 3 s
  segments of the whole clip, batch norm, dropout, SpecAugment-style masking on the device,
  early stopping on held-out tracks, and one prediction per track from its segments' averaged
  probabilities.

Both networks keep weights and activations channels-last (NHWC): the math is unchanged, but
training on one CPU thread ran 1.7x (cnn_ref) and 2.2x (cnn) faster through oneDNN, and it is the
layout CUDA tensor cores want. A (N, 1, H, W) input has the same memory either way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.transforms as T
from torch import nn

from bench.environment import resolve_device
from bench.errors import DataError
from bench.features.cache import FeatureCache
from bench.features.spectrogram import SpectrogramParams
from bench.models.torch_estimator import Callback, TorchClassifier

REFERENCE_CHANNELS = (16, 32, 64, 128)
LR_SCHEDULES = ("constant", "cosine")


class ReferenceCNN(nn.Module):
    """Four ``Conv2d(k=3, s=1, p=2) -> ReLU -> MaxPool2d(2)`` blocks, flatten, one linear layer.

    ``input_shape`` is (channels=1, bins, frames); the linear layer is sized from it (each block
    maps a side n to (n + 2) // 2), where the original hard-coded one that fits 13 MFCCs only.
    Channels-last, as the module docstring explains.
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        blocks = []
        for out in REFERENCE_CHANNELS:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, out, kernel_size=3, stride=1, padding=2),
                    nn.ReLU(),
                    nn.MaxPool2d(kernel_size=2),
                )
            )
            channels, height, width = out, (height + 2) // 2, (width + 2) // 2
        self.blocks = nn.Sequential(*blocks)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(channels * height * width, n_classes)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.linear(self.flatten(self.blocks(x)))


class GenreCNN(nn.Module):
    """A small CNN for standardised (1, mel bands, frames) segments, sized for CPU training.

    A stride-2 stem and max pooling after every block shrink the image 4x before the second
    convolution: the full-resolution layers dominated CPU time (63 -> 276 segments/s per core
    on 128x129 segments with the same channels). Batch norm after every convolution, global
    average pooling (any input size) and dropout before the linear head. Channels-last, as the
    module docstring explains.
    """

    def __init__(
        self,
        n_classes: int,
        channels: Sequence[int] = (16, 32, 64, 128),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for index, out in enumerate(channels):
            stride = 2 if index == 0 else 1
            layers += [
                nn.Conv2d(previous, out, kernel_size=3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=2, ceil_mode=True),
            ]
            previous = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(previous, n_classes),
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x))


def _band_statistics(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation of (N, 1, bands, frames) images, as float32.

    Accumulated in float64 over chunks, so no float64 copy of the whole tensor is made.
    """
    total = torch.zeros(x.shape[2], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in x.split(1024):
        chunk = chunk.double()
        total += chunk.sum(dim=(0, 1, 3))
        squares += chunk.square().sum(dim=(0, 1, 3))
    count = x.shape[0] * x.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6, std, 1.0)
    return mean.float().numpy(), std.float().numpy()


def audio_paths(X: Any) -> list[Path]:
    """``X`` as a list of paths: a 1-D array (or list, or one-column 2-D array) of file names."""
    array = np.asarray(X, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"X must be a 1-D array of audio file paths, got shape {array.shape}")
    missing = [i for i, p in enumerate(array) if p is None or not str(p)]
    if missing:
        raise DataError(f"row {missing[0]} of X has no audio file ({len(missing)} rows without)")
    return [Path(str(p)) for p in array]


def cut_segments(image: np.ndarray, frames: int, hop: int | None = None) -> np.ndarray:
    """``frames``-wide segments of a (bins, T) image starting every ``hop`` frames (default:
    ``frames``, so they do not overlap), as (n, bins, frames).

    A partial last segment is dropped, except that an image shorter than one segment is padded
    with its own minimum (silence at the dB floor) so no track is left without a segment.
    """
    if image.shape[1] < frames:
        pad = frames - image.shape[1]
        image = np.pad(image, ((0, 0), (0, pad)), constant_values=image.min())
    hop = frames if hop is None else max(1, hop)
    n = (image.shape[1] - frames) // hop + 1
    if hop == frames:
        return image[:, : n * frames].reshape(image.shape[0], n, frames).transpose(1, 0, 2)
    starts = np.arange(n) * hop
    return np.stack([image[:, s : s + frames] for s in starts])


class _AudioClassifier(TorchClassifier):
    """Shared plumbing: paths -> cached images -> (segment tensor, track of each segment)."""

    cpu_threads = 1
    """On 2 busy cores a training step of ``cnn`` ran 614 segments/s on one thread and 140 on two
    (threads waiting on each other); the runner parallelises across processes instead."""

    def _spectrogram_params(self) -> SpectrogramParams:
        raise NotImplementedError

    def _segment_frames(self) -> int | None:
        """Frames per segment, or None for one input per file (the image as it is)."""
        return None

    def _segment_hop(self, frames: int, *, fit: bool) -> int:
        """Frames between the starts of consecutive segments: ``frames`` (no overlap)."""
        return frames

    def _images(self, X: Any) -> list[np.ndarray]:
        device = resolve_device(self.device)
        cache = FeatureCache(None if self.cache_dir is None else Path(self.cache_dir))
        return cache.get(audio_paths(X), self._spectrogram_params(), device=device)

    def _to_tensor(self, X: Any, *, fit: bool) -> tuple[torch.Tensor, np.ndarray]:
        images = self._images(X)
        frames = self._segment_frames()
        if frames is None:
            segments = [image[None] for image in images]
        else:
            hop = self._segment_hop(frames, fit=fit)
            segments = [cut_segments(image, frames, hop) for image in images]
        rows = np.repeat(np.arange(len(segments)), [len(s) for s in segments])
        x = torch.from_numpy(np.concatenate(segments)[:, None])  # (N, 1, bins, frames)
        return x, rows


class ReferenceCNNClassifier(_AudioClassifier):
    """``cnn_ref``: the original GTZAN CNN on MFCCs of the first ``seconds`` of each clip.

    MFCC as the original computed it with torchaudio's defaults: 20 coefficients of the natural
    log of 128 mel bands (``log_mels=True``) of a 400-point STFT with hop 200, at 22050 Hz, the
    clip cut or zero-padded to ``seconds`` from ``offset``. Training is the original's too: Adam
    (AdamW without weight decay) at 1e-3, batches of 128, 10 epochs on everything it is given
    (``validation_fraction=0``, no early stopping).

    Example::

        model = ReferenceCNNClassifier(epochs=30).fit(train_paths, train_labels)
        model.predict(test_paths)
    """

    def __init__(
        self,
        seconds: float = 1.0,
        offset: float = 0.0,
        *,
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
        self.seconds = seconds
        self.offset = offset
        self.cache_dir = cache_dir

    def _spectrogram_params(self) -> SpectrogramParams:
        return reference_params(self.seconds, self.offset)

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        return ReferenceCNN(input_shape, n_classes)


def reference_params(seconds: float = 1.0, offset: float = 0.0) -> SpectrogramParams:
    """The original project's MFCC: torchaudio ``MFCC(sample_rate=22050, n_mfcc=20,
    log_mels=True)`` with its default 400-point FFT, hop 200 and 128 mel bands."""
    return SpectrogramParams(
        kind="mfcc",
        n_fft=400,
        hop_length=200,
        n_mels=128,
        n_mfcc=20,
        seconds=seconds,
        offset=offset,
        top_db=None,
        log_mels=True,
    )


class CNNClassifier(_AudioClassifier):
    """``cnn``: log-mel segments of whole clips, voted per track.

    Each clip's whole 128-band log-mel (2048-point FFT, hop 512, floored 80 dB below its
    maximum) is cut into non-overlapping ``segment_seconds`` segments; every segment is a
    training input with its track's label, and ``predict_proba`` averages a track's segment
    probabilities, so there is one row per input path. The early-stopping validation slice
    holds whole tracks (segments of one track never sit on both sides). Bands are standardised
    with statistics of the training segments (``band_mean_``, ``band_scale_``); during training
    each segment gets ``n_masks`` random frequency and time masks of up to ``freq_mask`` bands
    and ``time_mask`` frames (SpecAugment), drawn on the training device.

    Also: ``mixup`` (alpha of the Beta law of mixup's weight; 0 turns it off) mixes each
    training batch with a shuffled copy of itself and their targets alike; ``lr_schedule``
    ``"cosine"`` anneals the learning rate per epoch from ``lr`` towards 0 over ``epochs``
    (``"constant"`` keeps it); ``test_overlap`` (a fraction below 1) starts a track's
    prediction segments every ``(1 - test_overlap) * segment_seconds``, so more, overlapping
    segments are averaged at prediction time (training segments never overlap).

    Example::

        model = CNNClassifier(epochs=20, device="cuda").fit(train_paths, train_labels)
        model.predict_proba(test_paths)  # (len(test_paths), n_classes)
    """

    def __init__(
        self,
        segment_seconds: float = 3.0,
        n_mels: int = 128,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        dropout: float = 0.3,
        freq_mask: int = 16,
        time_mask: int = 24,
        n_masks: int = 1,
        mixup: float = 0.0,
        test_overlap: float = 0.5,
        *,
        epochs: int = 60,
        batch_size: int = 64,
        lr: float = 2e-3,
        lr_schedule: str = "cosine",
        weight_decay: float = 1e-4,
        patience: int | None = None,
        validation_fraction: float = 0.15,
        device: str = "auto",
        random_state: int | None = 0,
        checkpoint_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
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
        self.segment_seconds = segment_seconds
        self.n_mels = n_mels
        self.channels = channels
        self.dropout = dropout
        self.freq_mask = freq_mask
        self.time_mask = time_mask
        self.n_masks = n_masks
        self.mixup = mixup
        self.test_overlap = test_overlap
        self.lr_schedule = lr_schedule
        self.cache_dir = cache_dir

    def fit(self, X: Any, y: Any) -> CNNClassifier:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.test_overlap < 1:
            raise ValueError(f"test_overlap must be in [0, 1), got {self.test_overlap}")
        if self.mixup < 0:
            raise ValueError(f"mixup must be >= 0, got {self.mixup}")
        return super().fit(X, y)

    def _spectrogram_params(self) -> SpectrogramParams:
        return SpectrogramParams(kind="logmel", n_fft=2048, hop_length=512, n_mels=self.n_mels)

    def _segment_hop(self, frames: int, *, fit: bool) -> int:
        return frames if fit else max(1, round(frames * (1 - self.test_overlap)))

    def _epoch_lr(self, epoch: int) -> float:
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / self.epochs))
        return self.lr

    def _batch_loss(
        self, module: nn.Module, batch: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy; with ``mixup``, of the batch mixed with a permutation of itself."""
        if not self.mixup:
            return super()._batch_loss(module, batch, targets)
        weight = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
        other = torch.randperm(len(batch), device=batch.device)
        logits = module(weight * batch + (1 - weight) * batch[other])
        return weight * F.cross_entropy(logits, targets) + (1 - weight) * F.cross_entropy(
            logits, targets[other]
        )

    def _segment_frames(self) -> int:
        params = self._spectrogram_params()
        return max(1, round(self.segment_seconds * params.frames_per_second))

    def _to_tensor(self, X: Any, *, fit: bool) -> tuple[torch.Tensor, np.ndarray]:
        x, rows = super()._to_tensor(X, fit=fit)
        if fit:
            self.band_mean_, self.band_scale_ = _band_statistics(x)
        x.sub_(torch.from_numpy(self.band_mean_)[:, None])  # in place: x can be gigabytes
        x.div_(torch.from_numpy(self.band_scale_)[:, None])
        return x, rows

    def _augment(self, batch: torch.Tensor) -> torch.Tensor:
        """Masks set standardised values to 0, the band mean: neither silence nor loudness."""
        for _ in range(self.n_masks):
            if self.freq_mask > 0:
                batch = T.FrequencyMasking(self.freq_mask, iid_masks=True)(batch)
            if self.time_mask > 0:
                batch = T.TimeMasking(self.time_mask, iid_masks=True)(batch)
        return batch

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        return GenreCNN(n_classes, channels=tuple(self.channels), dropout=self.dropout)
