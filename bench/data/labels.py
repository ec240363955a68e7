"""Genre label files for datasets whose files carry no genre (the MSD).

Two formats, both keyed by MSD track id (``TR...``) or song id (``SO...``):

- tagtraum style: ``track_id<TAB>genre`` per line (further columns, such as tagtraum's
  minority genre, are ignored; blank lines and ``#`` comments are skipped);
- CSV with a header: an id column (``track_id``, ``song_id``, ``song.id`` or ``id``) and a
  genre column (``genre``, ``label`` or ``majority_genre``).

Example::

    from pathlib import Path
    from bench.data.labels import read_label_file
    read_label_file(Path("msd_tagtraum_cd2.cls"))   # {'TRAAAAK128F9318786': 'Rock', ...}
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.errors import DataError

_ID_COLUMNS = ("track_id", "song_id", "id")
_GENRE_COLUMNS = ("genre", "label", "majority_genre")


def read_label_file(path: Path) -> dict[str, str]:
    """``{id: genre}`` from a tagtraum-style or CSV label file (format by suffix: ``.csv``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file not found")
    if path.suffix.lower() == ".csv":
        return _csv_labels(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: label file is not UTF-8 text ({exc.reason})") from None
    labels: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise DataError(f"{path}:{number}: expected 'track_id<TAB>genre', got {line!r}")
        _add(labels, parts[0], parts[1], f"{path}:{number}")
    if not labels:
        raise DataError(f"{path}: label file holds no labels")
    return labels


def _csv_labels(path: Path) -> dict[str, str]:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: label file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    by_key = {_column_key(c): c for c in table.columns}
    id_column = next((by_key[k] for k in _ID_COLUMNS if k in by_key), None)
    genre_column = next((by_key[k] for k in _GENRE_COLUMNS if k in by_key), None)
    if id_column is None or genre_column is None:
        missing = "an id column (track_id, song_id or id)" if id_column is None else ""
        if genre_column is None:
            missing += (" and " if missing else "") + "a genre column (genre or label)"
        raise DataError(f"{path}: no {missing}; columns: {', '.join(table.columns)}")
    labels: dict[str, str] = {}
    for row, (key, genre) in enumerate(zip(table[id_column], table[genre_column], strict=True)):
        if key.strip() and genre.strip():
            _add(labels, key.strip(), genre.strip(), f"{path}:{row + 2}")
    if not labels:
        raise DataError(f"{path}: label file holds no labels")
    return labels


def _column_key(name: str) -> str:
    return name.strip().lower().replace(".", "_").replace("-", "_").replace(" ", "_")


def _add(labels: dict[str, str], key: str, genre: str, where: str) -> None:
    if labels.setdefault(key, genre) != genre:
        raise DataError(f"{where}: {key} is labelled both {labels[key]!r} and {genre!r}")
