"""GTZAN in the Kaggle layout: ``genres_original/<genre>/<genre>.NNNNN.wav`` and a features CSV.

A clip may be stored in any of :data:`AUDIO_SUFFIXES` (``blues.00012.flac``); it is still the
track ``blues.00012`` that the CSV row ``blues.00012.wav`` and the split lists name.

Tracks are named ``<genre>.<NNNNN>`` everywhere in bench, whatever spelling a list file uses
(``blues/blues.00012.wav``, ``./blues_00012.wav``, ``blues.00012.3.wav`` for a 3 s segment).
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.dataset import Dataset
from bench.errors import DataError

log = logging.getLogger(__name__)

GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
SAMPLE_RATE = 22050
AUDIO_DIR = "genres_original"
FEATURES_CSV = "features_30_sec.csv"
# The audio files bench reads, defined once for the dataset index and `bench features`: the formats
# soundfile's bundled libsndfile decodes without FFmpeg (Kaggle ships .wav, the original GTZAN .au).
AUDIO_SUFFIXES = (".wav", ".au", ".flac", ".ogg", ".aiff", ".aif")
_NON_FEATURES = ("filename", "length", "label")
_TRACK_RE = re.compile(r"([a-z]+)[._](\d{5})")


def track_id(name: str) -> str:
    """``blues/blues.00012.wav``, ``./blues_00012.wav``, ``blues.00012.3.wav``: ``blues.00012``."""
    match = _TRACK_RE.search(Path(name).name)
    if not match:
        raise DataError(f"{name!r} is not a GTZAN track name (expected like blues.00012.wav)")
    return f"{match[1]}.{match[2]}"


def wav_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as audio, or None. Reads headers only.

    libsndfile silently shortens a truncated WAV, so the RIFF ``data`` chunk's declared size is
    checked against the bytes really present.
    """
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for unreadable files
        return f"unreadable ({str(exc).splitlines()[0]})"
    if info.frames == 0:
        return "holds no audio frames"
    if path.suffix.lower() == ".wav":
        declared, present = _wav_data_sizes(path)
        if declared is not None and present < declared:
            return f"truncated (header declares {declared} bytes of audio, file holds {present})"
    return None


def _wav_data_sizes(path: Path) -> tuple[int | None, int]:
    with path.open("rb") as fh:
        header = fh.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None, 0
        while chunk := fh.read(8):
            if len(chunk) < 8:
                break
            tag, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if tag == b"data":
                start = fh.tell()
                end = fh.seek(0, 2)
                return size, end - start
            fh.seek(size + (size & 1), 1)
    return None, 0


def load_audio(path: Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mono, finite float32 samples of ``path`` at ``sr`` Hz; what was repaired is logged."""
    wave, notes = read_clip(path, sr)
    for note in notes:
        log.warning("%s: %s", path, note)
    return wave


def read_clip(path: Path, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, list[str]]:
    """Mono float32 samples of ``path`` at ``sr`` Hz, finite, and notes on what was fixed.

    The one reader of audio: features, spectrogram caches, the CNNs and ``bench predict`` all
    see the same samples (stereo mixed down, NaN/inf set to 0, resampled). Raises
    :class:`DataError` naming the file when it cannot be used at all (unreadable, empty,
    truncated).
    """
    problem = wav_problem(path)
    if problem:
        raise DataError(f"{path}: {problem}")
    samples, native_sr = read_samples(path)
    notes = []
    if samples.shape[1] > 1:
        notes.append(f"{samples.shape[1]} channels mixed to mono")
    wave = samples.mean(axis=1)
    finite = np.isfinite(wave)
    if not finite.all():
        notes.append(f"{int((~finite).sum())} non-finite sample(s) replaced by 0")
        wave = np.where(finite, wave, np.float32(0))
    if native_sr != sr:
        notes.append(f"resampled from {native_sr} Hz to {sr} Hz")
    return resample(wave, native_sr, sr), notes


def read_samples(path: Path) -> tuple[np.ndarray, int]:
    """``(frames x channels float32, sample rate)``; an unreadable file is a DataError."""
    import soundfile as sf

    try:
        return sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for unreadable files
        raise DataError(f"{path}: unreadable audio ({str(exc).splitlines()[0]})") from None


def resample(wave: np.ndarray, native_sr: int, sr: int) -> np.ndarray:
    """Contiguous float32 ``wave`` at ``sr`` Hz (torchaudio's resampler when the rates differ)."""
    if native_sr != sr:
        import torch
        import torchaudio.functional as AF

        wave = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), native_sr, sr).numpy()
    return np.ascontiguousarray(wave, dtype=np.float32)


def read_features_csv(path: Path) -> pd.DataFrame:
    """The Kaggle features table, checked: ``filename``, ``label`` and numeric feature columns."""
    if not path.is_file():
        raise DataError(f"{path}: features CSV not found")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the CSV is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    for column in ("filename", "label"):
        if column not in table.columns:
            raise DataError(f"{path}: no {column!r} column (columns: {', '.join(table.columns)})")
    if table.empty:
        raise DataError(f"{path}: the CSV has a header but no rows")
    table = table.drop(columns=[c for c in table.columns if c.startswith("Unnamed")])
    features = table.drop(columns=[c for c in _NON_FEATURES if c in table.columns])
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise DataError(f"{path}: non-numeric feature column(s) {', '.join(bad)}")
    if features.shape[1] == 0:
        raise DataError(f"{path}: no feature columns besides filename/length/label")
    missing = table["label"].isna()
    if missing.any():
        row = int(np.flatnonzero(missing)[0]) + 2
        raise DataError(f"{path}: line {row} has no label")
    return table


def index_audio(root: Path) -> tuple[dict[str, Path], list[str]]:
    """Readable clips under ``root/genres_original`` by track id, and the skipped ones."""
    audio_dir = root / AUDIO_DIR
    found: dict[str, Path] = {}
    skipped: list[str] = []
    if not audio_dir.is_dir():
        return found, skipped
    paths = [p for p in sorted(audio_dir.glob("*/*")) if p.suffix.lower() in AUDIO_SUFFIXES]
    check_one_file_per_clip(paths, lambda path: track_id(path.name))
    for path in paths:
        problem = wav_problem(path)
        if problem:
            log.warning("skipping %s: %s", path, problem)
            skipped.append(f"{path}: {problem}")
            continue
        found[track_id(path.name)] = path
    return found, skipped


def check_one_file_per_clip(paths: Iterable[Path], clip: Callable[[Path], str]) -> None:
    """Two files of one clip (``blues.00003.wav`` beside ``blues.00003.flac``) are an error.

    Picking either would make results depend on directory order, and featurising both would
    count the track twice; only the user knows which copy is the right one.
    """
    seen: dict[str, Path] = {}
    for path in paths:
        key = clip(path)
        if key in seen:
            raise DataError(f"{seen[key]} and {path} are both clip {key}: keep one of them")
        seen[key] = path


def load_gtzan(root: Path, features: str = FEATURES_CSV, name: str = "gtzan") -> Dataset:
    """Index a Kaggle-layout GTZAN folder into a :class:`Dataset` of its features table."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: GTZAN data directory does not exist")
    csv_path = root / features
    if not csv_path.is_file():
        has_audio = (root / AUDIO_DIR).is_dir()
        extra = f" ({AUDIO_DIR}/ is there: compute it with `bench features`)" if has_audio else ""
        raise DataError(f"{csv_path}: features CSV not found{extra}")
    table = read_features_csv(csv_path)
    tracks = np.array([track_id(f) for f in table["filename"].astype(str)])
    _check_unique(csv_path, table["filename"].astype(str), tracks)
    audio, skipped = index_audio(root)
    classes = tuple(sorted(table["label"].astype(str).unique()))
    labels = pd.Categorical(table["label"].astype(str), categories=classes).codes
    feature_table = table.drop(columns=[c for c in _NON_FEATURES if c in table.columns])
    feature_table.index = pd.Index(table["filename"].astype(str), name="filename")
    return Dataset(
        name=name,
        root=root,
        features=feature_table.astype(np.float64),
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        tracks=tracks,
        fingerprint=fingerprint(csv_path, audio.values()),
        audio=audio,
        skipped=skipped,
    )


_SEGMENT_RE = re.compile(r"[a-z]+[._]\d{5}\.\d+\.[A-Za-z0-9]+$")


def _check_unique(path: Path, filenames: pd.Series, tracks: np.ndarray) -> None:
    """A file or a whole-clip track listed twice would be counted, and maybe split, twice.

    Rows of 3 s segments (``blues.00000.3.wav``) share their track by design; a track may not
    appear both as segments and as a whole clip.
    """
    repeated = filenames[filenames.duplicated()].unique()
    if len(repeated):
        shown = ", ".join(repeated[:5]) + (" ..." if len(repeated) > 5 else "")
        raise DataError(f"{path}: {len(repeated)} filename(s) listed more than once: {shown}")
    whole = ~filenames.str.contains(_SEGMENT_RE).to_numpy()
    names, counts = np.unique(tracks[whole], return_counts=True)
    mixed = set(tracks[whole]) & set(tracks[~whole])
    twice = sorted(set(names[counts > 1]) | mixed)
    if twice:
        shown = ", ".join(twice[:5]) + (" ..." if len(twice) > 5 else "")
        raise DataError(
            f"{path}: {len(twice)} track(s) listed more than once under different file names: "
            f"{shown}"
        )


def fingerprint(csv_path: Path, audio_paths) -> str:
    """Content hash of the table plus name and size of every clip: changes when the data does."""
    digest = hashlib.sha256(csv_path.read_bytes())
    for path in sorted(audio_paths):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def segment(wave: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """Cut ``wave`` into non-overlapping ``seconds``-long segments, (n_segments, samples).

    A clip shorter than one segment is zero-padded to one segment so it is never dropped.
    Segments keep their track's id in bench's protocols, so they are never split apart.
    """
    length = int(round(seconds * sr))
    if length <= 0:
        raise DataError(f"segment length must be positive, got {seconds} s")
    n = max(1, len(wave) // length)
    padded = np.zeros(n * length, dtype=wave.dtype)
    padded[: min(len(wave), n * length)] = wave[: n * length]
    return padded.reshape(n, length)
