"""Million Song Dataset track files, read with h5py by field name into one feature table.

Each MSD track is one HDF5 file (written by PyTables) with groups ``/metadata``,
``/analysis`` and ``/musicbrainz``, each holding a one-row compound table ``songs`` and arrays
such as ``segments_timbre``. Fields are read by name, never by position, into memory types
chosen here (so a file storing float32 or a wider string still reads right), and strings are
decoded as UTF-8: the CORGIS ``music.csv`` made from the same files spells ``Médium`` as
``MA(c)dium``, and the MSD-MLP project's extractor sliced ``str(bytes)`` and corrupted numbers.

Features are the classic MSD genre features (Bertin-Mahieux et al. 2011): the track-level
analysis fields, plus the mean and standard deviation of the 12-d timbre (MFCC-like) and
pitch (chroma) vectors of its segments, optionally the timbre covariance, plus a few rates
from the beat, bar, section and loudness arrays. A folder of track files becomes one table,
cached under a key of every file's path, size and modification time; files are read one at a
time (in parallel processes for large folders), so memory does not grow with their number.

Example::

    from pathlib import Path
    from bench.data.msd import read_track, feature_table
    track = read_track(Path("data/B/D/E/TRBDEXK128F9338916.h5"))
    track.title, track.scalars["tempo"], len(track.timbre)   # ('Like A Star', 105.882, 1206)
    table = feature_table(Path("data"))   # one row per file; bad files have a `problem`

Why one module (~480 lines): reading a track by field name, its features and the cached
table of a folder share one schema (``SCALAR_FIELDS``, the array names and the feature
columns, versioned together by ``FEATURES_VERSION``). Turning tables into datasets with
labels is :mod:`bench.data.msd_dataset`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import DataError

log = logging.getLogger(__name__)

FEATURES_VERSION = 1
"""Bump when a feature's definition changes, so cached tables are rebuilt."""

SCALAR_FIELDS = (
    "duration",
    "tempo",
    "loudness",
    "key",
    "key_confidence",
    "mode",
    "mode_confidence",
    "time_signature",
    "time_signature_confidence",
    "end_of_fade_in",
    "start_of_fade_out",
)
"""Fields of ``/analysis/songs`` used as features as they are."""

# Memory types the fields are read into, by table. HDF5 converts from the file's types.
_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "/metadata/songs": (
        ("song_id", "S32"),
        ("artist_id", "S32"),
        ("artist_name", "S1024"),
        ("title", "S1024"),
        ("release", "S1024"),
    ),
    "/analysis/songs": (
        ("track_id", "S32"),
        *(
            (name, "<i4" if name in ("key", "mode", "time_signature") else "<f8")
            for name in SCALAR_FIELDS
        ),
    ),
    "/musicbrainz/songs": (("year", "<i4"),),
}
# Arrays: name -> number of columns (0 for a 1-d array); numbers are read as float64.
_ARRAYS = {
    "/analysis/segments_timbre": 12,
    "/analysis/segments_pitches": 12,
    "/analysis/segments_loudness_max": 0,
    "/analysis/beats_start": 0,
    "/analysis/bars_start": 0,
    "/analysis/sections_start": 0,
    "/metadata/artist_terms_freq": 0,
    "/metadata/artist_terms_weight": 0,
}
_TERMS = "/metadata/artist_terms"

_SUMMARY_COLUMNS = (
    "year",
    "year_known",
    "segments_per_second",
    "loudness_max_mean",
    "loudness_max_std",
    "beat_interval_cv",
    "bars_per_minute",
    "sections_per_minute",
)
_DIMS = [f"{d:02d}" for d in range(1, 13)]
FEATURE_COLUMNS = (
    *SCALAR_FIELDS,
    *_SUMMARY_COLUMNS,
    *(f"timbre_mean_{d}" for d in _DIMS),
    *(f"timbre_std_{d}" for d in _DIMS),
    *(f"pitch_mean_{d}" for d in _DIMS),
    *(f"pitch_std_{d}" for d in _DIMS),
)
_UPPER = np.triu_indices(12, k=1)
COVARIANCE_COLUMNS = tuple(
    f"timbre_cov_{_DIMS[i]}_{_DIMS[j]}" for i, j in zip(*_UPPER, strict=True)
)
"""The 66 off-diagonal timbre covariances (the diagonal is ``timbre_std`` squared)."""

META_COLUMNS = (
    "path",
    "track_id",
    "song_id",
    "artist_id",
    "artist_name",
    "title",
    "terms",
    "problem",
)
"""Per-row identity: ``terms`` is the weight-ranked artist terms as a JSON list; ``problem`` is
empty for a good file and says why the file was skipped otherwise."""

_PARALLEL_MIN = (
    256  # files per extra process: below it, starting processes costs more than it saves
)
_CHUNK = 64  # files per task sent to a worker process
_CSV_ROWS = 1000  # rows per chunk when reading the cached table back


class TrackError(DataError):
    """One track file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Track:
    """The fields of one MSD track file that bench uses, decoded."""

    path: Path
    track_id: str
    song_id: str
    artist_id: str
    artist_name: str
    title: str
    release: str
    year: int | None
    scalars: dict[str, float]
    timbre: np.ndarray
    pitches: np.ndarray
    loudness_max: np.ndarray
    beats_start: np.ndarray
    bars_start: np.ndarray
    sections_start: np.ndarray
    terms: tuple[str, ...]
    terms_freq: np.ndarray
    terms_weight: np.ndarray

    @property
    def ranked_terms(self) -> list[str]:
        """Artist terms by weight (then frequency), highest first."""
        from bench.data.taxonomy import ranked_terms

        return ranked_terms(self.terms, self.terms_weight, self.terms_freq)


def read_track(path: Path) -> Track:
    """Read one track file; a file that cannot be used raises :class:`TrackError`."""
    from h5py import h5f

    path = Path(path)
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY)
    except OSError as exc:
        raise TrackError(f"{path}: {_open_problem(exc)}") from None
    try:
        rows = {name: _read_row(path, fid, name, fields) for name, fields in _TABLES.items()}
        arrays = {name: _read_array(path, fid, name, width) for name, width in _ARRAYS.items()}
        terms = tuple(_text(t) for t in _read_array(path, fid, _TERMS, 0, dtype=None))
    finally:
        fid.close()
    meta, analysis = rows["/metadata/songs"], rows["/analysis/songs"]
    if len(terms) != len(arrays["/metadata/artist_terms_weight"]) or len(terms) != len(
        arrays["/metadata/artist_terms_freq"]
    ):
        raise TrackError(f"{path}: artist_terms, its freq and its weight differ in length")
    year = int(rows["/musicbrainz/songs"]["year"])
    return Track(
        path=path,
        track_id=_text(analysis["track_id"]),
        song_id=_text(meta["song_id"]),
        artist_id=_text(meta["artist_id"]),
        artist_name=_text(meta["artist_name"]),
        title=_text(meta["title"]),
        release=_text(meta["release"]),
        year=year if year > 0 else None,
        scalars={name: float(analysis[name]) for name in SCALAR_FIELDS},
        timbre=arrays["/analysis/segments_timbre"],
        pitches=arrays["/analysis/segments_pitches"],
        loudness_max=arrays["/analysis/segments_loudness_max"],
        beats_start=arrays["/analysis/beats_start"],
        bars_start=arrays["/analysis/bars_start"],
        sections_start=arrays["/analysis/sections_start"],
        terms=terms,
        terms_freq=arrays["/metadata/artist_terms_freq"],
        terms_weight=arrays["/metadata/artist_terms_weight"],
    )


def _text(value: bytes) -> str:
    """UTF-8 text of a fixed-length HDF5 string (numpy has already dropped the NUL padding)."""
    return bytes(value).decode("utf-8", errors="replace")


def _open_problem(exc: OSError) -> str:
    message = str(exc)
    if "file signature not found" in message:
        return "not an HDF5 file"
    sizes = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", message)
    if sizes:
        return f"truncated HDF5 file ({sizes[1]} of {sizes[2]} bytes)"
    reason = re.search(r"\(([^()]+)\)\)*$", message)  # h5py nests HDF5's reason in parentheses
    return f"unreadable HDF5 file ({reason[1] if reason else message.splitlines()[0]})"


def _open_dataset(path: Path, fid, name: str):
    from h5py import h5d

    try:
        return h5d.open(fid, name.encode())
    except (KeyError, OSError, RuntimeError, ValueError):
        raise TrackError(f"{path}: no {name} (not an MSD track file?)") from None


def _read_row(path: Path, fid, name: str, fields: Sequence[tuple[str, str]]) -> np.void:
    """The first row of compound table ``name``, only ``fields``, converted by HDF5 by name."""
    from h5py import h5s, h5t

    dataset = _open_dataset(path, fid, name)
    file_type = dataset.get_type()
    if not isinstance(file_type, h5t.TypeCompoundID):
        raise TrackError(f"{path}: {name} is not a table")
    for field, _ in fields:
        try:  # HDF5 would silently leave a field the file lacks unset
            file_type.get_member_index(field.encode())
        except (KeyError, RuntimeError, ValueError):
            raise TrackError(f"{path}: {name} has no field {field!r}") from None
    if dataset.shape[:1] == (0,) or len(dataset.shape) != 1:
        raise TrackError(f"{path}: {name} has no rows")
    memory = np.dtype(list(fields))
    out = np.zeros(dataset.shape, dtype=memory)
    try:
        dataset.read(h5s.ALL, h5s.ALL, out, mtype=h5t.py_create(memory))
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise TrackError(f"{path}: cannot read {name} ({first_line(exc)})") from None
    return out[0]


def _read_array(path: Path, fid, name: str, width: int, dtype=np.float64) -> np.ndarray:
    """Array ``name`` as ``dtype`` (None: the file's own type); ``width`` columns, 0 for 1-d."""
    from h5py import h5s

    dataset = _open_dataset(path, fid, name)
    shape = dataset.shape
    if (width == 0 and len(shape) != 1) or (width and (len(shape) != 2 or shape[1] != width)):
        expected = f"(n, {width})" if width else "(n,)"
        raise TrackError(f"{path}: {name} has shape {shape}, expected {expected}")
    out = np.empty(shape, dtype=dataset.dtype if dtype is None else dtype)
    if out.size:
        try:
            dataset.read(h5s.ALL, h5s.ALL, out)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise TrackError(f"{path}: cannot read {name} ({first_line(exc)})") from None
    return out


def first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


# ---------------------------------------------------------------- features


def track_features(track: Track, covariance: bool = False) -> np.ndarray:
    """The feature vector of ``track`` in :data:`FEATURE_COLUMNS` order (+ covariances)."""
    timbre, pitches = track.timbre, track.pitches
    if len(timbre) == 0:
        raise TrackError(f"{track.path}: no segments")
    if len(pitches) != len(timbre):
        raise TrackError(f"{track.path}: {len(timbre)} timbre but {len(pitches)} pitch segments")
    duration = track.scalars["duration"]
    if not duration > 0:
        raise TrackError(f"{track.path}: duration is {duration}")
    minutes = duration / 60.0
    loudness = track.loudness_max if len(track.loudness_max) else np.zeros(1)
    beats = np.diff(track.beats_start)
    cv = float(beats.std() / beats.mean()) if len(beats) >= 2 and beats.mean() > 0 else 0.0
    summary = [
        float(track.year or 0),
        float(track.year is not None),
        len(timbre) / duration,
        float(loudness.mean()),
        float(loudness.std()),
        cv,
        len(track.bars_start) / minutes,
        len(track.sections_start) / minutes,
    ]
    parts = [
        [track.scalars[name] for name in SCALAR_FIELDS],
        summary,
        timbre.mean(axis=0),
        timbre.std(axis=0),
        pitches.mean(axis=0),
        pitches.std(axis=0),
    ]
    if covariance:
        centred = timbre - timbre.mean(axis=0)
        parts.append((centred.T @ centred / len(timbre))[_UPPER])
    values = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    bad = ~np.isfinite(values)
    if bad.any():
        columns = feature_columns(covariance)
        raise TrackError(f"{track.path}: non-finite {columns[int(np.flatnonzero(bad)[0])]}")
    return values


def feature_columns(covariance: bool = False) -> tuple[str, ...]:
    return FEATURE_COLUMNS + (COVARIANCE_COLUMNS if covariance else ())


# ---------------------------------------------------------------- folders and the table


def find_track_files(root: Path) -> list[Path]:
    """Every ``*.h5`` under ``root``, sorted: the subset layout ``data/A/B/C/TR*.h5`` or flat."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: MSD folder does not exist")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        found.extend(Path(folder) / f for f in sorted(files) if f.lower().endswith(".h5"))
    if not found:
        raise DataError(
            f"{root}: no MSD track files (*.h5) found, neither in the subset layout "
            "data/A/B/C/TR*.h5 nor flat"
        )
    return found


def feature_table(
    root: Path,
    *,
    covariance: bool = False,
    cache: Path | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per track file under ``root``: :data:`META_COLUMNS` then the features.

    A file that cannot be used is a row with its ``problem`` and no features, never an error.
    With ``cache`` (a folder), the table is stored there under a key of the files' paths,
    sizes and modification times and reused while none of them changes.
    """
    root = Path(root)
    paths = find_track_files(root)
    key = table_key(root, paths, covariance)
    if cache is not None and (Path(cache) / f"{key}.csv").is_file():
        log.info("MSD feature table of %d files from cache %s", len(paths), cache)
        return _read_table(Path(cache) / f"{key}.csv", covariance)
    with tempfile.TemporaryDirectory(prefix="bench-msd-") as scratch:
        target = Path(cache) if cache is not None else Path(scratch)
        target.mkdir(parents=True, exist_ok=True)
        final = target / f"{key}.csv"
        partial = final.with_suffix(f".{os.getpid()}.tmp")
        columns = (*META_COLUMNS, *feature_columns(covariance))
        try:
            with partial.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(columns)
                for rows in _extract(root, paths, covariance, workers, progress):
                    writer.writerows(rows)
            partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)
        return _read_table(final, covariance)


def table_key(root: Path, paths: Sequence[Path], covariance: bool) -> str:
    """Names the table of exactly these files (relative path, size, mtime) and options."""
    digest = hashlib.sha256(json.dumps([FEATURES_VERSION, covariance]).encode())
    for path in paths:
        stat = path.stat()
        digest.update(
            f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()[:16]


def _extract(
    root: Path, paths: Sequence[Path], covariance: bool, workers: int | None, progress: bool
) -> Iterator[list[list]]:
    """Rows in file order, a chunk at a time, from this process or a pool of ``workers``."""
    from tqdm.auto import tqdm

    from bench.processes import mapped, one_thread

    names = [p.relative_to(root).as_posix() for p in paths]
    tasks = [(str(root), names[i : i + _CHUNK], covariance) for i in range(0, len(names), _CHUNK)]
    if workers is None:
        workers = min(os.cpu_count() or 1, len(paths) // _PARALLEL_MIN)
    with tqdm(total=len(paths), desc="msd features", unit="file", disable=not progress) as bar:
        for rows in mapped(_rows_task, tasks, workers, one_thread):
            yield rows
            bar.update(len(rows))


def _rows_task(task: tuple[str, list[str], bool]) -> list[list]:
    return _rows(*task)


def _rows(root: str, names: list[str], covariance: bool) -> list[list]:
    """Table rows of the files ``names`` (relative to ``root``); a bad file gives its problem."""
    width = len(feature_columns(covariance))
    rows = []
    for name in names:
        path = Path(root) / name
        try:
            track = read_track(path)
            values = track_features(track, covariance)
        except TrackError as exc:
            rows.append([name, "", "", "", "", "", "[]", _problem(exc, path), *[""] * width])
            continue
        except Exception as exc:  # a file must never stop the folder: report it and go on
            problem = f"unexpected {type(exc).__name__} ({first_line(exc)})"
            rows.append([name, "", "", "", "", "", "[]", problem, *[""] * width])
            continue
        identity = [track.track_id, track.song_id, track.artist_id, track.artist_name]
        terms = json.dumps(track.ranked_terms, ensure_ascii=False)
        rows.append([name, *identity, track.title, terms, "", *values.tolist()])
    return rows


def _problem(exc: TrackError, path: Path) -> str:
    """The message without the path prefix (the table keeps the path in its own column)."""
    message = str(exc)
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _read_table(path: Path, covariance: bool) -> pd.DataFrame:
    features = feature_columns(covariance)
    try:
        chunks = pd.read_csv(
            path,
            dtype={**dict.fromkeys(META_COLUMNS, str), **dict.fromkeys(features, np.float64)},
            keep_default_na=False,
            na_values={c: [""] for c in features},
            encoding="utf-8",
            chunksize=_CSV_ROWS,  # the parser's buffers would be ~8x the table read whole
        )
        table = pd.concat(chunks, ignore_index=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(
            f"{path}: cached MSD table is unreadable ({first_line(exc)}); delete it"
        ) from None
    if tuple(table.columns) != (*META_COLUMNS, *features):
        raise DataError(f"{path}: cached MSD table has other columns; delete it")
    return table
