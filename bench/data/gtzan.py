"""GTZAN in the Kaggle layout: ``genres_original/<genre>/<genre>.NNNNN.wav`` and a features CSV.

A clip may be stored in any of :data:`AUDIO_SUFFIXES` (``blues.00012.flac``); it is still the
track ``blues.00012`` that the CSV row ``blues.00012.wav`` and the split lists name.

Tracks are named ``<genre>.<NNNNN>`` everywhere in bench, whatever spelling a list file uses
(``blues/blues.00012.wav``, ``./blues_00012.wav``, ``blues.00012.3.wav`` for a 3 s segment).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
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


def printable(path: Path | str) -> str:
    """``path`` as text that prints and encodes anywhere: bytes of a non-UTF-8 file name are
    written as ``\\xff`` escapes (Python keeps them as surrogates, which UTF-8 cannot encode)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a regular file once its links are followed, or None; never opens it.

    Opening a FIFO blocks until someone writes to it (``bench predict`` hung on one), and a
    device may act on being opened, so only ``stat`` looks at what is not a regular file.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return "is a broken symbolic link"
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(mode):
        return f"is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not an audio file"
    return None


class _Unopenable(DataError):
    """``path`` is not a regular file, or cannot be opened; ``reason`` says which."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{printable(path)}: {reason}")
        self.reason = reason


def _open_regular(path: Path) -> int:
    """A read-only descriptor of ``path``, a regular file (checked again on the open file, so a
    file swapped for a FIFO after :func:`file_problem` is refused too; O_NONBLOCK keeps that
    open from hanging)."""
    problem = file_problem(path)
    if problem:
        raise _Unopenable(path, problem)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _Unopenable(path, f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Unopenable(path, "is not a regular file, not an audio file")
    return fd


def _sf_reason(exc: Exception) -> str:
    """libsndfile's own words, without soundfile's ``Error opening <fd>:`` prefix."""
    return getattr(exc, "error_string", None) or str(exc).splitlines()[0]


def wav_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as audio, or None. Reads headers only.

    Anything but a regular file is refused unopened (:func:`file_problem`). libsndfile silently
    shortens a truncated WAV, so the RIFF ``data`` chunk's declared size is checked against the
    bytes really present. Files are opened by descriptor, so non-UTF-8 names read like others.
    """
    import soundfile as sf

    try:
        fd = _open_regular(path)
    except _Unopenable as exc:
        return exc.reason
    try:
        info = sf.info(fd)  # closes fd
    except Exception as exc:  # libsndfile raises several types for unreadable files
        return f"unreadable ({_sf_reason(exc)})"
    if info.frames == 0:
        return "holds no audio frames"
    if path.suffix.lower() == ".wav":
        declared, present = _wav_data_sizes(path)
        if declared is not None and present < declared:
            return f"truncated (header declares {declared} bytes of audio, file holds {present})"
    return None


def _wav_data_sizes(path: Path) -> tuple[int | None, int]:
    with os.fdopen(_open_regular(path), "rb") as fh:
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
    truncated, or not a regular file: a FIFO, folder or link loop is never opened).
    """
    problem = wav_problem(path)
    if problem:
        raise DataError(f"{printable(path)}: {problem}")
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

    fd = _open_regular(path)
    try:
        return sf.read(fd, dtype="float32", always_2d=True)  # closes fd
    except Exception as exc:  # libsndfile raises several types for unreadable files
        raise DataError(f"{printable(path)}: unreadable audio ({_sf_reason(exc)})") from None


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


def list_clips(folder: Path) -> tuple[list[Path], list[str]]:
    """Usable audio files of ``folder/<label>/<file>`` (sorted), and those skipped, with why.

    The one listing of clips, shared by the dataset index (``bench run``, ``bench tune``) and
    ``bench features``, so both skip the same files for the same reasons: anything with an audio
    suffix that is not a regular file (a folder named ``x.wav``, a link loop, a FIFO) or that
    :func:`wav_problem` finds unusable. Each skip is logged as a warning.
    """
    found: list[Path] = []
    skipped: list[str] = []
    for path in sorted(Path(folder).glob("*/*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        problem = wav_problem(path)
        if problem:
            log.warning("skipping %s: %s", printable(path), problem)
            skipped.append(f"{printable(path)}: {problem}")
        else:
            found.append(path)
    return found, skipped


def index_audio(root: Path) -> tuple[dict[str, Path], list[str]]:
    """Readable clips under ``root/genres_original`` by track id, and the skipped ones.

    Only usable files need a track name and count as copies of a clip (see
    :func:`check_one_file_per_clip`); what is skipped is only reported.
    """
    audio_dir = root / AUDIO_DIR
    if not audio_dir.is_dir():
        return {}, []
    paths, skipped = list_clips(audio_dir)
    check_one_file_per_clip(paths, lambda path: track_id(printable(path.name)))
    return {track_id(printable(path.name)): path for path in paths}, skipped


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
        digest.update(os.fsencode(path.name) + f":{path.stat().st_size}".encode())
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
