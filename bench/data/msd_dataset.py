"""Million Song Dataset suites as :class:`Dataset` s: MSD track files (``kind = "msd"``, read
by :mod:`bench.data.msd`) or the CORGIS ``music.csv`` (``kind = "msd-table"``), with genres
from artist terms (:mod:`bench.data.taxonomy`) or from a label file, and artists as groups.

Example::

    from pathlib import Path
    from bench.data.msd_dataset import load_msd
    dataset = load_msd(Path("data/msd"))   # genres derived from artist terms
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.dataset import Dataset
from bench.data.msd import SCALAR_FIELDS, feature_columns, feature_table, first_line
from bench.errors import DataError

log = logging.getLogger(__name__)

TERMS = "terms"
"""Label source: genres derived from artist terms by :mod:`bench.data.taxonomy`."""

TABLE_ID, TABLE_ARTIST, TABLE_TERMS = "song.id", "artist.id", "terms"
"""Identity and label columns of the CORGIS ``music.csv``."""


def load_msd(
    root: Path,
    *,
    labels: str | Path = TERMS,
    covariance: bool = False,
    min_class_artists: int = 1,
    name: str = "msd",
    cache: Path | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Dataset:
    """A folder of MSD track files as a :class:`Dataset`, one row per usable, labelled track.

    ``labels``: ``"terms"`` (derived from artist terms) or a label file (see
    :mod:`bench.data.labels`; a relative path is looked up in ``root``). Unusable files are
    listed in ``skipped``; unlabelled tracks and classes with fewer than ``min_class_artists``
    artists are dropped and counted in ``dropped``. Rows are grouped by ``artist_id``.
    """
    root = Path(root)
    table = feature_table(
        root, covariance=covariance, cache=cache, workers=workers, progress=progress
    )
    bad = table["problem"] != ""
    skipped = [
        f"{root / p}: {why}"
        for p, why in zip(table["path"][bad], table["problem"][bad], strict=True)
    ]
    good = table[~bad]
    repeated = good["track_id"].duplicated()
    skipped += [
        f"{root / p}: duplicate of track {t}"
        for p, t in zip(good["path"][repeated], good["track_id"][repeated], strict=True)
    ]
    good = good[~repeated]
    if skipped:
        log.warning("%d of %d MSD files skipped, e.g. %s", len(skipped), len(table), skipped[0])
    if good.empty:
        raise DataError(f"{root}: none of the {len(table)} track files is usable ({skipped[0]})")
    if labels == TERMS:
        from bench.data.taxonomy import genre_from_ranked

        genres = [genre_from_ranked(json.loads(terms)) for terms in good["terms"]]
        unknown = 0
    else:
        genres, unknown = _genres_from_file(
            _label_path(root, labels), good["track_id"], good["song_id"]
        )
    features = good[list(feature_columns(covariance))].set_index(
        pd.Index(good["track_id"], name="track_id")
    )
    return _dataset(
        name,
        root,
        features,
        genres,
        good["artist_id"].to_numpy(),
        min_class_artists,
        skipped,
        unknown,
    )


def load_msd_table(
    root: Path,
    features: str = "music.csv",
    *,
    labels: str | Path = TERMS,
    min_class_artists: int = 1,
    name: str = "msd-table",
) -> Dataset:
    """The CORGIS MSD table (``music.csv``) as a :class:`Dataset`: the analysis fields it shares
    with the track files as features, genres from its ``terms`` column (the artist's top term)
    or a label file keyed by song id, rows grouped by ``artist.id``."""
    root = Path(root)
    path = root / features if root.is_dir() else root
    if not path.is_file():
        raise DataError(f"{path}: MSD table not found")
    try:
        table = pd.read_csv(path, dtype={TABLE_ID: str, TABLE_ARTIST: str, TABLE_TERMS: str})
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the CSV is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({first_line(exc)})") from None
    needed = [TABLE_ID, TABLE_ARTIST, *SCALAR_FIELDS, "year"] + (
        [TABLE_TERMS] if labels == TERMS else []
    )
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no column(s) {', '.join(map(repr, missing))}")
    for column in (*SCALAR_FIELDS, "year"):
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise DataError(f"{path}: column {column!r} is not numeric")
    dropped: dict[str, int] = {}
    incomplete = table[[TABLE_ID, TABLE_ARTIST, *SCALAR_FIELDS, "year"]].isna().any(axis=1)
    repeated = table[TABLE_ID].duplicated() & ~incomplete
    for reason, rows in (("rows with missing values", incomplete), ("repeated song ids", repeated)):
        if rows.any():
            dropped[reason] = int(rows.sum())
            log.warning("%s: %d %s dropped", path, rows.sum(), reason)
    table = table[~(incomplete | repeated)]
    year = table["year"].to_numpy(dtype=np.float64)
    frame = table[list(SCALAR_FIELDS)].astype(np.float64)
    frame.insert(len(SCALAR_FIELDS), "year", year)
    frame.insert(len(SCALAR_FIELDS) + 1, "year_known", (year > 0).astype(np.float64))
    frame.index = pd.Index(table[TABLE_ID], name="song_id")
    if labels == TERMS:
        from bench.data.taxonomy import term_genre

        genres = [term_genre(t) if isinstance(t, str) else None for t in table[TABLE_TERMS]]
        unknown = 0
    else:
        genres, unknown = _genres_from_file(
            _label_path(root if root.is_dir() else root.parent, labels), table[TABLE_ID]
        )
    return _dataset(
        name,
        path,
        frame,
        genres,
        table[TABLE_ARTIST].to_numpy(),
        min_class_artists,
        [],
        unknown,
        dropped,
    )


def _label_path(root: Path, labels: str | Path) -> Path:
    path = Path(labels)
    return path if path.is_absolute() else root / path


def _genres_from_file(path: Path, *id_columns: pd.Series) -> tuple[list[str | None], int]:
    """Each row's genre from the label file (by its first id column that the file names) and
    the number of the file's ids that name no row."""
    from bench.data.labels import read_label_file

    mapping = read_label_file(path)
    columns = [c.tolist() for c in id_columns]
    genres = [
        next((mapping[i] for i in ids if i in mapping), None) for ids in zip(*columns, strict=True)
    ]
    known = set().union(*map(set, columns))
    unknown = [key for key in mapping if key not in known]
    if unknown:
        log.warning(
            "%s: %d of %d ids name no track in the data (e.g. %s)",
            path,
            len(unknown),
            len(mapping),
            unknown[0],
        )
    return genres, len(unknown)


def _dataset(
    name: str,
    root: Path,
    features: pd.DataFrame,
    genres: list[str | None],
    artists: np.ndarray,
    min_class_artists: int,
    skipped: list[str],
    unknown_ids: int,
    dropped: dict[str, int] | None = None,
) -> Dataset:
    """Drop unlabelled rows and too-small classes (counted), encode labels, fingerprint."""
    if isinstance(min_class_artists, bool) or not isinstance(min_class_artists, int):
        raise DataError(f"min_class_artists must be a whole number, got {min_class_artists!r}")
    dropped = dict(dropped or {})
    if unknown_ids:
        dropped["label-file ids not in the data"] = unknown_ids
    genre = pd.Series(genres, index=features.index, dtype=object)
    labelled = genre.notna().to_numpy()
    if not labelled.all():
        dropped["unlabelled tracks"] = int((~labelled).sum())
        log.warning(
            "%s: %d of %d tracks have no genre and are dropped", root, (~labelled).sum(), len(genre)
        )
    features, genre, artists = features[labelled], genre[labelled], artists[labelled]
    artist_counts = pd.Series(artists).groupby(genre.to_numpy()).nunique()
    small = artist_counts[artist_counts < min_class_artists]
    if len(small):
        keep = ~genre.isin(small.index).to_numpy()
        dropped[f"tracks of genres with fewer than {min_class_artists} artists"] = int(
            (~keep).sum()
        )
        log.warning(
            "%s: %d tracks of %d genre(s) with fewer than %d artists dropped: %s",
            root, (~keep).sum(), len(small), min_class_artists,
            ", ".join(f"{g} ({n})" for g, n in small.items()),
        )  # fmt: skip
        features, genre, artists = features[keep], genre[keep], artists[keep]
    classes = tuple(sorted(genre.unique()))
    if len(classes) < 2:
        raise DataError(
            f"{root}: {len(genre)} labelled track(s) in {len(classes)} genre(s) with at least "
            f"{min_class_artists} artist(s); a benchmark needs 2 genres"
        )
    codes = pd.Categorical(genre.to_numpy(), categories=classes).codes.astype(np.int64)
    tracks = features.index.to_numpy(dtype=str)
    return Dataset(
        name=name,
        root=root,
        features=features.astype(np.float64),
        labels=codes,
        classes=classes,
        tracks=tracks,
        fingerprint=_fingerprint(tracks, features, genre.to_numpy(), artists),
        skipped=skipped,
        groups=np.asarray(artists, dtype=str),
        dropped=dropped,
    )


def _fingerprint(tracks, features: pd.DataFrame, genres, artists) -> str:
    """Content hash of what models see: ids, features, labels, groups (not paths or mtimes)."""
    digest = hashlib.sha256("\0".join(features.columns).encode())
    for values in (tracks, genres, artists):
        digest.update("\0".join(map(str, values)).encode())
    digest.update(np.ascontiguousarray(features.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()[:16]
