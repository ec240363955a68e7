"""GTZAN in the Kaggle layout: ``genres_original/<genre>/<genre>.NNNNN.wav`` and a features CSV.

Tracks are named ``<genre>.<NNNNN>`` everywhere in bench, whatever spelling a list file uses
(``blues/blues.00012.wav``, ``./blues_00012.wav``, ``blues.00012.3.wav`` for a 3 s segment).
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
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
    """Mono float32 samples of ``path`` at ``sr`` Hz (downmixed and resampled as needed)."""
    samples, native_sr = read_samples(path)
    return resample(samples.mean(axis=1), native_sr, sr)


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
    for path in sorted(audio_dir.glob("*/*")):
        if path.suffix.lower() not in (".wav", ".au"):
            continue
        problem = wav_problem(path)
        if problem:
            log.warning("skipping %s: %s", path, problem)
            skipped.append(f"{path}: {problem}")
            continue
        found[track_id(path.name)] = path
    return found, skipped


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
    audio, skipped = index_audio(root)
    classes = tuple(sorted(table["label"].astype(str).unique()))
    labels = pd.Categorical(table["label"].astype(str), categories=classes).codes
    feature_table = table.drop(columns=[c for c in _NON_FEATURES if c in table.columns])
    feature_table.index = pd.Index(table["filename"].astype(str), name="filename")
    tracks = np.array([track_id(f) for f in table["filename"].astype(str)])
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
