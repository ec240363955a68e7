"""Log-mel and MFCC images of audio, batched through torchaudio on any device.

The CNNs of bench see audio only through these images. They are computed from waveforms in
batches of equal-length clips (so every value equals the one-clip-at-a-time result) on the
device the caller names, and :class:`SpectrogramParams` says exactly which image of which part
of a clip is meant, with a stable :meth:`~SpectrogramParams.key` for the feature cache.

Example::

    >>> import numpy as np
    >>> from bench.features.spectrogram import SpectrogramParams, spectrograms
    >>> params = SpectrogramParams(kind="logmel", n_mels=64, seconds=1.0)
    >>> [image.shape for image in spectrograms([np.zeros(30_000, np.float32)], params)]
    [(64, 44)]
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

from bench.data.gtzan import SAMPLE_RATE
from bench.environment import cpu_threads, resolve_device

FEATURE_VERSION = 1
"""Part of every params key: bump when the computation changes so cached images are rebuilt."""

KINDS = ("logmel", "mfcc")
_LOG_OFFSET = 1e-6  # torchaudio's MFCC(log_mels=True) takes log(mel + 1e-6)
# Samples per batch: on CPU the STFT is memory-bound and about one 30 s clip per batch is
# fastest (measured for the handcrafted features); a GPU amortises launches over large batches.
_BATCH_SAMPLES = {"cpu": 700_000, "cuda": 20_000_000}


@dataclass(frozen=True)
class SpectrogramParams:
    """Which image of which part of a clip: everything that changes the cached values.

    ``seconds=None`` takes the whole clip from ``offset``; otherwise exactly ``seconds`` are
    taken, zero-padded when the clip is shorter (as the original GTZAN CNN did for its first
    second). ``top_db`` floors each image that many dB below its own maximum (None: no floor).
    ``log_mels`` (MFCC only) takes the natural log of mel power plus 1e-6 instead of dB, as
    torchaudio's ``MFCC(log_mels=True)`` that the original project used.
    """

    kind: str = "logmel"
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 20
    seconds: float | None = None
    offset: float = 0.0
    top_db: float | None = 80.0
    log_mels: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if min(self.sample_rate, self.n_fft, self.hop_length, self.n_mels) <= 0:
            raise ValueError("sample_rate, n_fft, hop_length and n_mels must be positive")
        if self.kind == "mfcc" and not 0 < self.n_mfcc <= self.n_mels:
            raise ValueError(f"n_mfcc must be in 1..n_mels, got {self.n_mfcc}")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(f"seconds must be positive or None, got {self.seconds}")
        if self.offset < 0:
            raise ValueError(f"offset must be >= 0, got {self.offset}")
        if self.log_mels and self.kind != "mfcc":
            raise ValueError("log_mels applies to kind='mfcc' only")

    def key(self) -> str:
        """Stable 16-hex-digit hash of the parameters and :data:`FEATURE_VERSION`.

        Numbers are normalised (``offset=0`` and ``offset=0.0`` are one key) and fields that do
        not affect the values (``n_mfcc`` of a log-mel, ``top_db`` with ``log_mels``) are left
        out, so equal images share one key.
        """
        fields = asdict(self)
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc"):
            fields[name] = int(fields[name])
        for name in ("seconds", "offset", "top_db"):
            if fields[name] is not None:
                fields[name] = float(fields[name])
        if self.kind != "mfcc":
            fields.pop("n_mfcc")
        if self.log_mels:
            fields.pop("top_db")
        fields["version"] = FEATURE_VERSION
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def n_bins(self) -> int:
        """Rows of each image: mel bands or MFCC coefficients."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def crop(self, wave: np.ndarray) -> np.ndarray:
        """The part of ``wave`` these params describe (1-D float32)."""
        start = int(round(self.offset * self.sample_rate))
        if self.seconds is None:
            part = wave[start:]
            # reflect padding of the centred STFT needs more than half a frame
            if len(part) <= self.n_fft // 2:
                part = np.pad(part, (0, self.n_fft // 2 + 1 - len(part)))
            return np.ascontiguousarray(part, dtype=np.float32)
        length = int(round(self.seconds * self.sample_rate))
        out = np.zeros(length, dtype=np.float32)
        part = wave[start : start + length]
        out[: len(part)] = part
        return out


class SpectrogramTransform(torch.nn.Module):
    """(B, samples) waveforms -> (B, n_bins, frames) images, per item (no batch-wide floor).

    torchaudio's ``AmplitudeToDB(top_db)`` floors a (B, M, T) input against the maximum of
    the whole batch, so a quiet clip's image would depend on its batch-mates; the mel power is
    therefore given to it as (B, 1, M, T), which it floors per item.
    """

    def __init__(self, params: SpectrogramParams):
        super().__init__()
        self.params = params
        with warnings.catch_warnings():
            # the reference CNN's 128 bands over a 400-point FFT leave some bands empty; kept
            # on purpose for faithfulness, so torchaudio's warning about it is noise
            warnings.filterwarnings("ignore", message="At least one mel filterbank")
            self.mel = T.MelSpectrogram(
                sample_rate=params.sample_rate,
                n_fft=params.n_fft,
                hop_length=params.hop_length,
                n_mels=params.n_mels,
                power=2.0,
            )
        self.to_db = T.AmplitudeToDB(stype="power", top_db=params.top_db)
        if params.kind == "mfcc":
            dct = AF.create_dct(params.n_mfcc, params.n_mels, norm="ortho")
            self.register_buffer("dct", dct, persistent=False)
        else:
            self.dct = None

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        power = self.mel(waves[:, None, :])  # (B, 1, M, T)
        image = torch.log(power + _LOG_OFFSET) if self.params.log_mels else self.to_db(power)
        image = image[:, 0]
        if self.dct is not None:
            image = (image.transpose(1, 2) @ self.dct).transpose(1, 2)
        return image


@functools.lru_cache(maxsize=16)
def transform(params: SpectrogramParams, device: str) -> SpectrogramTransform:
    """The (shared, stateless) transform module for ``params`` on ``device``."""
    return SpectrogramTransform(params).to(device).eval()


def spectrograms(
    waves: Sequence[np.ndarray] | np.ndarray,
    params: SpectrogramParams,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """Images of whole waveforms at ``params.sample_rate``, cropped as ``params`` says.

    Clips of equal cropped length are batched together (bounded in samples per batch), so the
    result is identical to computing each clip alone. ``device`` is ``cpu``, ``cuda[:n]`` or
    ``auto``. Returns float32 (n_bins, frames) arrays in input order.
    """
    device = torch.device(resolve_device(str(device)))
    clips = [params.crop(np.asarray(w, dtype=np.float32)) for w in waves]
    out: list[np.ndarray | None] = [None] * len(clips)
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, clip in enumerate(clips):
        by_length[len(clip)].append(index)
    budget = _BATCH_SAMPLES.get(device.type, _BATCH_SAMPLES["cuda"])
    module = transform(params, str(device))
    with torch.inference_mode(), cpu_threads(1 if device.type == "cpu" else None):
        for length, indices in by_length.items():
            per_batch = max(1, budget // length)
            for start in range(0, len(indices), per_batch):
                chunk = indices[start : start + per_batch]
                batch = torch.from_numpy(np.stack([clips[i] for i in chunk])).to(device)
                images = module(batch).float().cpu().numpy()
                for i, image in zip(chunk, images, strict=True):
                    out[i] = image
    return out  # type: ignore[return-value]
