"""Audio files -> musicnn / VGG outputs per 3 s patch, batched on any device, cached on disk.

One forward pass gives every output a probe may want, so the cache keeps them all: per file a
(patches, width) float32 array whose columns are the model's :data:`LAYERS` side by side
(musicnn: ``max_pool`` 753, ``penultimate`` 200, ``taggram`` 50; VGG: ``pool5`` 256,
``taggram`` 50). :func:`clip_embeddings` slices one layer out and averages it over the clip's
patches, the per-clip embedding the musicnn authors' probes use.

The cache is :class:`~bench.features.cache.FeatureCache`, the one the 57 features and the
spectrograms use: one HDF5 file per :meth:`EmbeddingParams.key` (the model, the SHA-256 of its
converted weights, and :data:`EMBED_VERSION`), one dataset per audio file fingerprint, so an
embedding is computed once per (weights, file) and changes when either does.

Audio goes through bench's one reader (:func:`bench.data.gtzan.load_audio`, here at 16 kHz),
so the probes see what every other model sees. CPU and CUDA run the same code; ``device`` is a
parameter. Patches of several clips share a forward pass (:data:`BATCH_PATCHES`).

Example::

    from bench.features.pretrained.embed import clip_embeddings
    x = clip_embeddings(wav_paths, "MSD_musicnn", "penultimate", device="cpu")  # (n, 200)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.features.pretrained.weights import ARCHITECTURE, CONVERTED_SHA256

logger = logging.getLogger(__name__)

EMBED_VERSION = 1
"""Bump when what is cached for a (weights, file) changes, so old caches are not served."""
LAYERS = {
    "musicnn": (("max_pool", 753), ("penultimate", 200), ("taggram", 50)),
    "vgg": (("pool5", 256), ("taggram", 50)),
}
BATCH_PATCHES = {"cpu": 20, "cuda": 320}
"""Patches per forward pass: two 30 s clips' worth on a CPU (a larger batch only adds memory
traffic there: musicnn's timbral filters make ~14 MB of activations a patch), 32 on a GPU."""


def layer_columns(model: str, layer: str) -> slice:
    """Which columns of the cached array hold ``layer`` of ``model``."""
    _check(model)
    start = 0
    for name, width in LAYERS[ARCHITECTURE[model]]:
        if name == layer:
            return slice(start, start + width)
        start += width
    known = ", ".join(name for name, _ in LAYERS[ARCHITECTURE[model]])
    raise BenchError(f"{model} has no output {layer!r}; it has {known}")


def _check(model: str) -> None:
    if model not in ARCHITECTURE:
        raise BenchError(f"unknown musicnn weights {model!r}; known: {', '.join(ARCHITECTURE)}")


@dataclass(frozen=True)
class EmbeddingParams:
    """Which outputs :class:`~bench.features.cache.FeatureCache` holds: every layer of
    ``model`` for each 3 s patch of a file, (patches, width) float32."""

    model: str = "MSD_musicnn"
    kind: str = "musicnn"

    def key(self) -> str:
        _check(self.model)
        fields = {
            "kind": self.kind,
            "model": self.model,
            "weights": CONVERTED_SHA256[self.model],
            "version": EMBED_VERSION,
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def compute(self, paths: Sequence[Path], device: str = "cpu") -> Iterator[np.ndarray]:
        """Each file's outputs in order; an unusable file raises :class:`DataError`."""
        yield from Embedder(self.model, device).files(paths)


class Embedder:
    """musicnn or VGG with its weights on ``device``: waves or files in, outputs per patch out."""

    def __init__(self, model: str = "MSD_musicnn", device: str = "cpu") -> None:
        import torch

        from bench.features.pretrained.musicnn import LogMel, build
        from bench.features.pretrained.weights import load_state

        _check(model)
        self.model, self.device = model, torch.device(device)
        self.arch = ARCHITECTURE[model]
        self.net = build(self.arch, load_state(model)).to(self.device)
        self.logmel = LogMel().to(self.device)
        self.batch = BATCH_PATCHES["cuda" if self.device.type == "cuda" else "cpu"]

    def waves(self, waves: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
        """The (patches, width) outputs of each 16 kHz wave, in order, computed in batches of
        patches across waves."""
        import torch

        from bench.features.pretrained.musicnn import patches

        pending: list[torch.Tensor] = []
        for wave in waves:
            with torch.inference_mode():
                signal = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
                pending.append(patches(self.logmel(signal.to(self.device))))
            if sum(len(p) for p in pending) >= self.batch:
                yield from self._run(pending)
                pending = []
        if pending:
            yield from self._run(pending)

    def files(self, paths: Sequence[Path]) -> Iterator[np.ndarray]:
        """The outputs of each audio file, read by bench's one reader at 16 kHz."""
        from bench.features.pretrained.musicnn import SAMPLE_RATE

        yield from self.waves(_read(Path(p), SAMPLE_RATE) for p in paths)

    def _run(self, pending: list) -> Iterator[np.ndarray]:
        import torch

        counts = [len(p) for p in pending]
        batch = torch.cat(pending)
        cudnn = torch.backends.cudnn
        # cuDNN convolutions default to TF32 on recent GPUs (~1e-3 relative): the port would
        # no longer be the original to 1e-4 on CUDA, so full float32 here (no effect on CPU)
        exact = cudnn.flags(
            enabled=cudnn.enabled,
            benchmark=cudnn.benchmark,
            deterministic=cudnn.deterministic,
            allow_tf32=False,
        )
        with torch.inference_mode(), exact:
            outputs = [self.net(chunk) for chunk in batch.split(self.batch)]
        names = [name for name, _ in LAYERS[self.arch]]
        joined = torch.cat([torch.cat([o[n] for n in names], dim=1) for o in outputs])
        yield from np.split(joined.float().cpu().numpy(), np.cumsum(counts)[:-1])


def _read(path: Path, sr: int) -> np.ndarray:
    """``read_clip`` at 16 kHz; its repairs are warnings, except resampling, which every clip
    of every dataset needs here (GTZAN is 22 050 Hz) and which is not a repair."""
    from bench.data.gtzan import read_clip
    from bench.errors import DataError

    wave, notes = read_clip(path, sr)
    for note in notes:
        (logger.debug if note.startswith("resampled") else logger.warning)("%s: %s", path, note)
    if wave.size == 0:
        raise DataError(f"{path}: holds no audio frames")
    return wave


def patch_outputs(
    paths: Sequence[Path | str],
    model: str = "MSD_musicnn",
    device: str = "cpu",
    cache_dir: Path | str | None = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """Every output of ``model`` for each 3 s patch of each file, (patches, width), cached."""
    from bench.environment import resolve_device
    from bench.features.cache import FeatureCache

    cache = FeatureCache(None if cache_dir is None else Path(cache_dir))
    device = resolve_device(device)
    return cache.get(paths, EmbeddingParams(model), device=device, progress=progress)


def clip_embeddings(
    paths: Sequence[Path | str],
    model: str = "MSD_musicnn",
    layer: str = "penultimate",
    device: str = "cpu",
    cache_dir: Path | str | None = None,
) -> np.ndarray:
    """(files, width): ``layer`` of ``model`` averaged over each file's 3 s patches."""
    columns = layer_columns(model, layer)
    outputs = patch_outputs(paths, model, device, cache_dir)
    return np.stack([o[:, columns].mean(axis=0) for o in outputs]).astype(np.float32)
