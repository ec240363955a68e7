"""The 57 GTZAN features of audio files, in the Kaggle table layout, whole clips or segments.

``features_30_sec.csv`` and ``features_3_sec.csv`` of the Kaggle GTZAN dataset were computed once,
clip by clip, with librosa; the 3-second one cannot be obtained here. This module computes both
layouts from any folder of audio with :func:`bench.features.handcrafted.gtzan_features`:

- whole clips: one row per file, ``filename`` as the file is named, ``length`` its samples;
- ``segment=3``: one row per 3-second piece, ``blues.00000.0.wav`` ... ``blues.00000.9.wav``,
  ``length`` 66149 as in Kaggle's table (see :func:`segment_samples`).

Files stream through a small window of in-flight work, so memory stays bounded whatever the
number of clips. On CPU each worker *thread* featurises one file at a time with one torch
thread: torch releases the GIL inside its kernels, so two threads use two cores without the
start-up cost of worker processes (the guide measured one thread per worker to beat OpenMP
threads on a shared machine). On CUDA, threads only read audio and the device gets large batches.

Bad input never yields NaN: unreadable, empty or truncated files are skipped with a warning;
stereo is mixed down and other sample rates resampled; non-finite samples become 0; a clip
shorter than one segment is zero-padded to one segment; all with a warning naming the file.

Example::

    from bench.features.extract import featurise_folder, write_table
    result = featurise_folder(Path("data/gtzan"), segment=3.0)
    write_table(result.rows, Path("features_3_sec.csv"))

Why one module (~480 lines): reading clips, cutting segments, the thread, process and
device-batch paths and the segment table are one pipeline whose rows must come out in the
same order and values whichever path runs; tests compare the paths with each other.
"""

from __future__ import annotations

import csv
import ctypes
import functools
import hashlib
import json
import logging
import os
import platform
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.data.dataset import Dataset
from bench.data.gtzan import (
    AUDIO_DIR,
    AUDIO_SUFFIXES,
    SAMPLE_RATE,
    check_one_file_per_clip,
    list_clips,
    printable,
    read_clip,
)
from bench.errors import DataError

logger = logging.getLogger(__name__)

VOTES = ("row", "track")
PARALLEL = ("auto", "threads", "processes")
# From this many files on, a process pool's one-off start-up (~3 s here) costs less than the
# GIL does to threads (two threads measured 1.54x-1.79x one worker, two processes 1.85x).
_PROCESS_MIN_FILES = 64
# Samples handed to the GPU at once: ~30 clips of 30 s; large batches amortise kernel launches.
_CUDA_BATCH_SAMPLES = 20_000_000
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters of glibc's malloc.h


def segment_samples(seconds: float, sr: int = SAMPLE_RATE) -> int:
    """Samples per segment: one short of ``seconds * sr``, as Kaggle's 3 s table has it.

    Every row of ``features_3_sec.csv`` has ``length`` 66149 = 3 * 22050 - 1, so bench cuts its
    segments to the same length and its rows line up with the real table's.
    """
    length = int(round(seconds * sr)) - 1
    if length < 1:
        raise DataError(f"segment length must be positive, got {seconds} s")
    return length


@dataclass
class ClipRows:
    """The feature rows of one audio file (one per segment, or one for the whole clip)."""

    path: Path
    label: str
    names: list[str]
    length: int
    values: np.ndarray  # (rows, 57) float64
    notes: list[str] = field(default_factory=list)


@dataclass
class FeatureRun:
    """What a featurisation produced: rows per file, and the files it skipped or fixed, why."""

    rows: list[ClipRows] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)


def audio_files(root: Path) -> list[tuple[Path, str]]:
    """Usable audio files under ``root`` with their labels (see :func:`find_audio`)."""
    files, skipped = find_audio(root)
    if not files:
        raise DataError(f"{root}: no usable audio ({len(skipped)} file(s) skipped)")
    return files


def find_audio(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """Audio files under ``root`` with their labels, ``<label>/<file>`` below
    ``root/genres_original`` (the Kaggle layout) or below ``root`` itself, and the skipped ones.

    Listed by :func:`bench.data.gtzan.list_clips`, as the dataset index lists them, so ``bench
    features`` and ``bench run`` skip the same files with the same reasons.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data directory does not exist")
    base = root / AUDIO_DIR if (root / AUDIO_DIR).is_dir() else root
    paths, skipped = list_clips(base)
    if not paths and not skipped:
        raise DataError(f"{base}: no audio files in <label>/<file> folders ({AUDIO_SUFFIXES})")
    check_one_file_per_clip(paths, lambda p: f"{p.parent.name}/{p.stem}")
    return [(path, path.parent.name) for path in paths], skipped


def split_clip(
    wave: np.ndarray, name: str, segment: float | None, sr: int = SAMPLE_RATE
) -> tuple[np.ndarray, list[str], int, list[str]]:
    """``(pieces, row names, length, notes)``: the whole clip, or its segments in Kaggle naming.

    ``blues.00000.wav`` cut in 3 s gives rows ``blues.00000.0.wav`` ... ``blues.00000.9.wav``; a
    remainder shorter than a segment is dropped (as Kaggle's table does), and a clip shorter than
    one segment is zero-padded to one.
    """
    if segment is None:
        return wave[None, :], [name], len(wave), []
    length = segment_samples(segment, sr)
    notes = []
    n = len(wave) // length
    if n == 0:
        notes.append(f"{len(wave) / sr:.2f} s, shorter than one {segment:g} s segment: zero-padded")
        wave = np.pad(wave, (0, length - len(wave)))
        n = 1
    stem, dot, suffix = name.rpartition(".")
    stem, suffix = (stem, f".{suffix}") if dot else (name, "")
    names = [f"{stem}.{k}{suffix}" for k in range(n)]
    return wave[: n * length].reshape(n, length), names, length, notes


def featurise_files(
    files: Sequence[tuple[Path, str]],
    segment: float | None = None,
    device: str = "cpu",
    workers: int | None = None,
    sr: int = SAMPLE_RATE,
    on_file: Callable[[ClipRows | str], None] | None = None,
    batched: bool | None = None,
    parallel: str = "auto",
) -> Iterator[ClipRows | str]:
    """Feature rows of each ``(path, label)`` in input order; a skipped file yields its reason.

    At most ``2 * workers`` files are in flight per worker pool, so memory does not grow with
    the number of files. ``workers`` defaults to the number of cores. ``on_file`` (e.g. a
    progress bar) is called with each result as it is yielded. ``batched`` (default: on any
    device but the CPU) lets threads only read and featurises large batches on ``device``; tests
    use it to run the GPU path on the CPU.

    ``parallel`` (CPU): ``threads`` share this process (no start-up cost, but they share
    Python's GIL, held while torch dispatches each small operation: two threads measured
    1.54x-1.79x one); ``processes`` use a persistent pool of spawned workers (1.85x on 2 cores,
    after a start-up of ~3 s paid once per process); ``auto`` takes processes from
    ``_PROCESS_MIN_FILES`` files on.
    """
    import torch

    from bench.environment import cpu_threads

    if parallel not in PARALLEL:
        raise ValueError(f"parallel must be one of {PARALLEL}, got {parallel!r}")
    workers = max(1, workers or os.cpu_count() or 1)
    dev = torch.device(device)
    keep_freed_memory()
    if batched if batched is not None else dev.type != "cpu":
        with ThreadPoolExecutor(workers, thread_name_prefix="bench-features") as pool:
            reads = (pool.submit(_read_one, path, label, segment, sr) for path, label in files)
            batches = _device_batches(_in_order(reads, 4 * workers), dev, sr)
            yield from _announce(batches, on_file)
        return
    many = len(files) >= _PROCESS_MIN_FILES
    if workers > 1 and (parallel == "processes" or (parallel == "auto" and many)):
        from bench.processes import mapped

        tasks = [(path, label, segment, sr) for path, label in files]
        # kept: each spawned worker pays ~3 s of imports once per process, not per call
        results = mapped(_featurise_task, tasks, workers, _init_worker, keep=True)
        yield from _announce(results, on_file)
        return
    # one torch thread per worker, set once here so that no worker restores another value
    with ThreadPoolExecutor(workers, thread_name_prefix="bench-features") as pool, cpu_threads(1):
        jobs = (pool.submit(_featurise_one, path, label, segment, sr) for path, label in files)
        yield from _announce(_in_order(jobs, 2 * workers), on_file)


def _announce(
    results: Iterable[ClipRows | str], on_file: Callable | None
) -> Iterator[ClipRows | str]:
    """Log what was skipped or fixed (here, so worker processes need no logging set-up)."""
    for result in results:
        if isinstance(result, str):
            logger.warning("skipping %s", result)
        else:
            for note in result.notes:
                logger.warning("%s: %s", result.path, note)
        if on_file is not None:
            on_file(result)
        yield result


def warm_workers(workers: int) -> None:
    """Start the kept feature worker processes now (``bench perf`` times their start-up)."""
    from bench.processes import mapped

    list(mapped(_noop, list(range(workers)), workers, _init_worker, keep=True))


def _noop(_: Any) -> None:
    return None


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    keep_freed_memory()


def _featurise_task(task: tuple[Path, str, float | None, int]) -> ClipRows | str:
    return _featurise_one(*task)


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 32 MiB for reuse (process-wide, once).

    By default glibc serves every block above a dynamic threshold (128 KiB at first) with its own
    mmap and returns it to the OS when freed, so each clip's STFT-sized temporaries (1025 x 1293
    complex: 10.6 MB) are page-faulted and zeroed afresh by the kernel: measured here as ~20% of
    a 30 s clip's feature time on one core. Keeping them costs at most the peak working set,
    which is held anyway while featurising. Returns whether the setting took (glibc only).
    """
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        )
    except (OSError, AttributeError):  # not glibc
        return False


def _in_order(futures: Iterable[Future], window: int) -> Iterator[ClipRows | str]:
    """Results of lazily submitted futures in order, with at most ``window`` submitted ahead."""
    pending: deque[Future] = deque()
    source = iter(futures)
    for future in source:
        pending.append(future)
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(source, None)
        if nxt is not None:
            pending.append(nxt)
        yield result


def _read_one(path: Path, label: str, segment: float | None, sr: int) -> ClipRows | str:
    """The file's pieces, not yet featurised (``values`` holds the audio), or why it is skipped."""
    try:
        wave, notes = read_clip(path, sr)
    except DataError as exc:
        return str(exc)
    pieces, names, length, more = split_clip(wave, printable(path.name), segment, sr)
    return ClipRows(path, label, names, length, pieces, notes + more)


def _featurise_one(path: Path, label: str, segment: float | None, sr: int) -> ClipRows | str:
    from bench.features.handcrafted import gtzan_features

    clip = _read_one(path, label, segment, sr)
    if isinstance(clip, ClipRows):
        clip.values = gtzan_features(clip.values, sr)
    return clip


def _device_batches(clips: Iterator[ClipRows | str], device, sr: int) -> Iterator[ClipRows | str]:
    """Group read clips into large device batches, featurise them, yield in input order."""
    from bench.features.handcrafted import gtzan_features

    batch: list[ClipRows | str] = []
    samples = 0

    def flush() -> Iterator[ClipRows | str]:
        ready = [c for c in batch if isinstance(c, ClipRows)]
        if ready:
            values = gtzan_features([p for c in ready for p in c.values], sr, device)
            start = 0
            for clip in ready:
                clip.values = values[start : start + len(clip.names)]
                start += len(clip.names)
        yield from batch
        batch.clear()

    for clip in clips:
        batch.append(clip)
        if isinstance(clip, ClipRows):
            samples += clip.values.size
        if samples >= _CUDA_BATCH_SAMPLES:
            yield from flush()
            samples = 0
    yield from flush()


def featurise_folder(
    root: Path,
    segment: float | None = None,
    device: str = "cpu",
    workers: int | None = None,
    on_file: Callable[[ClipRows | str], None] | None = None,
    parallel: str = "auto",
    on_start: Callable[[int], None] | None = None,
) -> FeatureRun:
    """Feature rows of every audio file under ``root`` (see :func:`find_audio`); what the
    listing skipped comes first in ``skipped``. ``on_start`` (e.g. a progress bar) is told how
    many files will be featurised."""
    if segment is not None and segment <= 0:
        raise DataError(f"--segment must be positive, got {segment}")
    files, skipped = find_audio(root)
    run = FeatureRun(skipped=list(skipped))
    if on_start is not None:
        on_start(len(files))
    for item in featurise_files(
        files, segment, device, workers, on_file=on_file, parallel=parallel
    ):
        if isinstance(item, str):
            run.skipped.append(item)
            continue
        run.rows.append(item)
        run.fixed += [f"{item.path}: {note}" for note in item.notes]
    return run


@dataclass(frozen=True)
class TableParams:
    """Which feature rows of a file :class:`~bench.features.cache.FeatureCache` holds: the 57
    GTZAN features of the whole clip (``segment=None``) or of its ``segment``-second pieces.

    Cached values are (rows, 57) float64 arrays, in :data:`FEATURE_COLUMNS` order.
    """

    segment: float | None = None
    sample_rate: int = SAMPLE_RATE
    kind: str = "gtzan57"
    parallel: str = "auto"
    """How to use the cores (see :func:`featurise_files`); it does not change the values."""

    def key(self) -> str:
        """Stable 16-hex-digit hash of the parameters and the handcrafted feature version."""
        from bench.features.handcrafted import FEATURE_VERSION

        fields = {
            "kind": self.kind,
            "segment": None if self.segment is None else float(self.segment),
            "sample_rate": int(self.sample_rate),
            "version": FEATURE_VERSION,
        }
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def compute(self, paths: Sequence[Path], device: str = "cpu") -> Iterator[np.ndarray]:
        """The rows of each path in order; an unusable file raises :class:`DataError`."""
        files = [(Path(p), "") for p in paths]
        rows = featurise_files(
            files, self.segment, device, sr=self.sample_rate, parallel=self.parallel
        )
        for item in rows:
            if isinstance(item, str):
                raise DataError(item)
            yield item.values


def computed_dataset(
    root: Path,
    segment: float | None,
    name: str,
    vote: str = "track",
    device: str = "auto",
    cache_dir: Path | None = None,
    progress: bool = False,
) -> Dataset:
    """A GTZAN-layout folder's audio as a :class:`Dataset` of features computed by bench.

    One row per ``segment``-second piece (or per clip), named as Kaggle's table names them, each
    carrying its track id, so every protocol keeps a track's segments on one side; with
    ``vote="track"`` the runner scores tracks by their segments' mean probability. Features are
    cached per file (:class:`~bench.features.cache.FeatureCache`), so only new or changed clips
    are computed. Unreadable clips are skipped and listed in ``skipped``.
    """
    from bench.data.gtzan import index_audio
    from bench.features.cache import FeatureCache
    from bench.features.handcrafted import FEATURE_COLUMNS

    if vote not in VOTES:
        raise DataError(f"vote must be one of {VOTES}, got {vote!r}")
    root = Path(root)
    audio, skipped = index_audio(root)
    if not audio:
        raise DataError(f"{root / AUDIO_DIR}: no readable audio to compute features from")
    params = TableParams(segment=segment)
    paths = list(audio.values())
    values = FeatureCache(cache_dir).get(paths, params, device=device, progress=progress)
    names, tracks, genres = [], [], []
    for (track, path), rows in zip(audio.items(), values, strict=True):
        if segment is None:
            names.append(printable(path.name))
        else:
            names += [f"{track}.{k}{path.suffix}" for k in range(len(rows))]
        tracks += [track] * len(rows)
        genres += [path.parent.name] * len(rows)
    classes = tuple(sorted(set(genres)))
    index = pd.Index(names, name="filename")
    features = pd.DataFrame(np.concatenate(values), columns=list(FEATURE_COLUMNS), index=index)
    digest = hashlib.sha256(params.key().encode())
    for path in paths:
        digest.update(os.fsencode(path.name) + f":{path.stat().st_size}".encode())
    return Dataset(
        name=name,
        root=root,
        features=features,
        labels=np.searchsorted(classes, genres).astype(np.int64),
        classes=classes,
        tracks=np.array(tracks),
        fingerprint=digest.hexdigest()[:16],
        vote=vote,
        audio=audio,
        skipped=skipped,
    )


def table_header() -> list[str]:
    from bench.features.handcrafted import FEATURE_COLUMNS

    return ["filename", "length", *FEATURE_COLUMNS, "label"]


def write_table(rows: Iterable[ClipRows], out: Path) -> int:
    """Write the Kaggle column layout (``filename``, ``length``, 57 features, ``label``).

    Returns the number of rows written. Values are written with full float precision.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with out.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(table_header())
        for clip in rows:
            for name, values in zip(clip.names, clip.values, strict=True):
                if not np.isfinite(values).all():  # a bug upstream, never a silent NaN row
                    raise DataError(f"{clip.path}: non-finite features for {name}")
                writer.writerow([name, clip.length, *map(repr, values.tolist()), clip.label])
                count += 1
    return count
