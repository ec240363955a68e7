"""A disk cache of spectrogram images, shared by every model, fold and run.

A CNN benchmark recomputes the same log-mel of the same clip once per model, fold, epoch and
run unless something remembers it. :class:`FeatureCache` keeps one HDF5 file per
:meth:`SpectrogramParams.key <bench.features.spectrogram.SpectrogramParams.key>` under its root
(``root/<key>.h5``, one float32 dataset per audio file), so an image is computed once per
(params, audio file) and read back in well under a millisecond afterwards. The same cache holds
the 57 handcrafted GTZAN features per file (:class:`bench.features.extract.TableParams`, whose
``compute`` streams rows from worker threads): any params object with ``key()`` and, unless it
is a :class:`SpectrogramParams`, ``compute(paths, device)`` works.

An audio file is identified by its *fingerprint*: a hash of its name, size and modification
time in nanoseconds. A ``stat`` is ~1000x cheaper than hashing the content (a content hash
would read as many bytes as decoding the clip does), and any rewrite or ``touch`` of the file
changes it, so stale images are never served; the price is a rebuild after copying a dataset
without preserving times (``cp -p`` and ``rsync -t`` keep them). The folder does not enter
the fingerprint, so a dataset moved with its times intact keeps its cache.

Concurrency: a lock file next to each HDF5 file (``fcntl``) is held shared while reading and
exclusively while adding images, so any number of processes can read at once, only one writes,
and a process that waits for the writer then finds the images it needed already there.

Example::

    from bench.features.cache import FeatureCache
    from bench.features.spectrogram import SpectrogramParams
    cache = FeatureCache(Path(".cache/bench/features"))
    images = cache.get(wav_paths, SpectrogramParams(kind="logmel"), device="cuda")
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from bench.data.gtzan import load_audio
from bench.environment import cache_home, resolve_device
from bench.errors import DataError
from bench.features.spectrogram import SpectrogramParams, spectrograms

logger = logging.getLogger(__name__)

# Audio samples decoded per compute batch: bounds memory whatever the number of files
# (about 15 clips of 30 s, 58 MB of float32) while giving a GPU batches worth launching.
_BATCH_SAMPLES = 15 * 30 * 22050
_FLUSH_EVERY = 16  # items written between flushes: an interrupted call keeps what it finished


def default_cache_dir() -> Path:
    """``$BENCH_CACHE/features``, or ``./.cache/bench/features`` when it is unset."""
    return cache_home() / "features"


def fingerprint(path: Path) -> str:
    """Name, size and mtime (ns) of ``path``, hashed: changes whenever the file is rewritten."""
    try:
        stat = Path(path).stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read audio file ({exc.strerror})") from None
    text = f"{Path(path).name}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()  # any file name


class FeatureCache:
    """Spectrogram images of audio files, computed once per (params, file) and kept on disk."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def file_for(self, params: SpectrogramParams) -> Path:
        """The HDF5 file holding every image made with ``params``."""
        return self.root / f"{params.key()}.h5"

    def get(
        self,
        paths: Sequence[Path | str],
        params: SpectrogramParams,
        device: str = "cpu",
        progress: bool = False,
    ) -> list[np.ndarray]:
        """One float32 (n_bins, frames) image per path, in order, computing only missing ones.

        Missing images are computed in bounded batches on ``device`` and written as they are
        done, so an interrupted or failed call keeps what it finished. An unreadable or empty
        audio file raises :class:`~bench.errors.DataError` naming it.
        """
        paths = [Path(p) for p in paths]
        keys = [fingerprint(p) for p in paths]
        found = self._read(params, keys)
        missing = [i for i, key in enumerate(keys) if key not in found]
        if missing:
            with self._locked(params, exclusive=True), self._open_for_write(params) as h5:
                # another process may have added some while this one waited for the lock
                todo = {keys[i]: paths[i] for i in missing if keys[i] not in h5}
                self._compute(h5, list(todo.values()), list(todo), params, device, progress)
                found.update({keys[i]: h5[keys[i]][()] for i in missing})
        return [found[key] for key in keys]

    def _read(self, params: SpectrogramParams, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached images among ``keys`` (read-only open under a shared lock)."""
        target = self.file_for(params)
        if not target.exists():
            return {}
        with self._locked(params, exclusive=False):
            try:
                with h5py.File(target, "r") as h5:
                    return {key: h5[key][()] for key in dict.fromkeys(keys) if key in h5}
            except OSError as exc:  # a write killed half-way leaves an unreadable file
                logger.warning("feature cache %s is unreadable (%s); rebuilding it", target, exc)
                return {}

    @contextlib.contextmanager
    def _open_for_write(self, params: SpectrogramParams) -> Iterator[h5py.File]:
        """The params' HDF5 file opened for appending (recreated when it is corrupt)."""
        target = self.file_for(params)
        try:
            h5 = h5py.File(target, "a")
        except OSError:
            target.unlink(missing_ok=True)
            h5 = h5py.File(target, "w")
        with h5:
            if "params" not in h5.attrs:
                h5.attrs["params"] = json.dumps(asdict(params), sort_keys=True)
            yield h5

    @contextlib.contextmanager
    def _locked(self, params: SpectrogramParams, exclusive: bool) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.file_for(params).with_suffix(".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _compute(
        self,
        h5: h5py.File,
        paths: Sequence[Path],
        keys: Sequence[str],
        params: SpectrogramParams,
        device: str,
        progress: bool,
    ) -> None:
        """Decode, transform and store ``paths`` as the values stream in (flushed in groups)."""
        if not paths:
            return
        device = resolve_device(str(device))
        logger.info("computing %d %s item(s) into %s", len(paths), params.kind, h5.filename)
        if isinstance(params, SpectrogramParams):
            values = _spectrogram_stream(paths, params, device)
        else:
            values = params.compute(paths, device)
        with tqdm(
            total=len(paths), desc=f"{params.kind} features", unit="clip", disable=not progress
        ) as bar:
            for done, (path, key, value) in enumerate(zip(paths, keys, values, strict=True), 1):
                h5.create_dataset(key, data=value)
                h5[key].attrs["source"] = str(path)
                if done % _FLUSH_EVERY == 0:
                    h5.flush()
                bar.update(1)
            h5.flush()


def _spectrogram_stream(
    paths: Sequence[Path], params: SpectrogramParams, device: str
) -> Iterator[np.ndarray]:
    """Images of ``paths`` in order, computed in batches that fit the sample budget."""
    for batch_paths in _batches(paths):
        waves = [_read_audio(p, params.sample_rate) for p in batch_paths]
        yield from spectrograms(waves, params, device=device)


def _batches(paths: Sequence[Path]) -> Iterator[list[Path]]:
    """Consecutive groups whose audio, estimated from file size, fits the sample budget."""
    batch_paths: list[Path] = []
    samples = 0
    for path in paths:
        estimate = path.stat().st_size // 2  # 16-bit PCM: two bytes per sample
        if batch_paths and samples + estimate > _BATCH_SAMPLES:
            yield batch_paths
            batch_paths, samples = [], 0
        batch_paths.append(path)
        samples += estimate
    if batch_paths:
        yield batch_paths


def _read_audio(path: Path, sr: int) -> np.ndarray:
    wave = load_audio(path, sr)
    if wave.size == 0:
        raise DataError(f"{path}: holds no audio frames")
    return wave
