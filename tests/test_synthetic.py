"""bench.data.synthetic: Kaggle GTZAN layout, determinism, artist-disjoint splits, learnability."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.data.synthetic import GENRES
from bench.errors import DataError
from bench.features.synthetic import synth_gtzan

SMALL = {"per_genre": 3, "duration": 1.0, "artists_per_genre": 3}
SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return synth_gtzan(tmp_path_factory.mktemp("small") / "gtzan", seed=0, **SMALL)


@pytest.fixture(scope="module")
def learnable(tmp_path_factory) -> Path:
    """10 genres x 12 clips x 3 s: big enough for cross-validation, small enough to be quick."""
    return synth_gtzan(tmp_path_factory.mktemp("learnable"), per_genre=12, duration=3.0, seed=0)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_layout_matches_kaggle_gtzan(small: Path) -> None:
    for genre in GENRES:
        wavs = sorted((small / "genres_original" / genre).iterdir())
        assert [p.name for p in wavs] == [f"{genre}.{i:05d}.wav" for i in range(3)]
    info = sf.info(small / "genres_original" / "jazz" / "jazz.00002.wav")
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    assert info.frames == 22050
    header, rows = _read_csv(small / "features_30_sec.csv")
    assert header[:2] == ["filename", "length"] and header[-1] == "label" and len(header) == 60
    assert len(rows) == 30
    assert rows[0][:2] == ["blues.00000.wav", "22050"] and rows[0][-1] == "blues"
    assert all(np.isfinite([float(v) for v in row[2:-1]]).all() for row in rows)


def test_csv_columns_equal_the_real_csv(small: Path, shared_data: Path) -> None:
    real, _ = _read_csv(shared_data / "gtzan" / "features_30_sec.csv")
    ours, _ = _read_csv(small / "features_30_sec.csv")
    assert ours == real


def test_features_describe_the_written_audio(small: Path) -> None:
    from bench.features.handcrafted import gtzan_features

    header, rows = _read_csv(small / "features_30_sec.csv")
    row = next(r for r in rows if r[0] == "metal.00002.wav")
    wave, sr = sf.read(small / "genres_original" / "metal" / row[0], dtype="float32")
    expected = np.asarray(gtzan_features(wave[None], sr, "cpu"))[0]
    np.testing.assert_allclose([float(v) for v in row[2:-1]], expected, rtol=1e-4, atol=1e-6)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(small: Path, tmp_path) -> None:
    again = synth_gtzan(tmp_path / "again", seed=0, **SMALL)
    other = synth_gtzan(tmp_path / "other", seed=1, **SMALL)
    files = [
        "genres_original/blues/blues.00000.wav",
        "genres_original/rock/rock.00002.wav",
        "features_30_sec.csv",
        "splits/artist_groups.txt",
        "splits/test_filtered.txt",
    ]
    for name in files:
        assert (again / name).read_bytes() == (small / name).read_bytes(), name
    for name in files[:3]:
        assert (other / name).read_bytes() != (small / name).read_bytes(), name


def test_split_lists_are_artist_disjoint_and_complete(learnable: Path) -> None:
    splits = {s: _lines(learnable / "splits" / f"{s}_filtered.txt") for s in SPLITS}
    groups = dict(line.split("\t") for line in _lines(learnable / "splits" / "artist_groups.txt"))
    tracks = [f"{g}/{g}.{i:05d}.wav" for g in GENRES for i in range(12)]
    assert sorted(sum(splits.values(), [])) == sorted(tracks) == sorted(groups)
    side_of_artist: dict[str, set[str]] = {}
    for side, names in splits.items():
        for name in names:
            side_of_artist.setdefault(groups[name], set()).add(side)
    assert all(len(sides) == 1 for sides in side_of_artist.values())
    assert len(side_of_artist) == 3 * len(GENRES)
    for side, names in splits.items():  # every genre on every side, with 3 artists per genre
        assert set(Counter(name.split("/")[0] for name in names)) == set(GENRES), side
    shares = np.array([len(splits[s]) for s in SPLITS]) / len(tracks)
    assert np.all(np.abs(shares - [0.5, 0.2, 0.3]) < 0.12), shares


def test_one_artist_per_genre_still_writes_valid_splits(tmp_path) -> None:
    root = synth_gtzan(tmp_path, per_genre=2, duration=1.0, artists_per_genre=1)
    groups = _lines(root / "splits" / "artist_groups.txt")
    assert len(groups) == 20 and len({line.split("\t")[1] for line in groups}) == 10
    listed = sum((_lines(root / "splits" / f"{s}_filtered.txt") for s in SPLITS), [])
    assert sorted(listed) == sorted(line.split("\t")[0] for line in groups)


def test_genres_are_learnable_and_artist_filtering_is_harder(learnable: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(learnable / "features_30_sec.csv")
    x, y = df.drop(columns=["filename", "length", "label"]).to_numpy(), df["label"].to_numpy()

    def model():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    random_split = cross_val_score(model(), x, y, cv=folds).mean()
    # measured 0.80-0.86 over seeds 0-3 (chance is 0.1)
    assert random_split >= 0.6, random_split

    def names(side):
        return {
            line.split("/")[1] for line in _lines(learnable / "splits" / f"{side}_filtered.txt")
        }

    train = df["filename"].isin(names("train") | names("valid")).to_numpy()
    test = df["filename"].isin(names("test")).to_numpy()
    filtered = model().fit(x[train], y[train]).score(x[test], y[test])
    # measured 0.42-0.58: unseen artists are harder, as in real GTZAN, but still learnable
    assert 0.25 <= filtered < random_split, (filtered, random_split)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"per_genre": 0}, "per_genre=0"),
        ({"duration": 0.1}, "duration=0.1"),
        ({"seed": -1}, "seed=-1"),
        ({"artists_per_genre": 0}, "artists_per_genre=0"),
    ],
)
def test_bad_arguments_raise_data_error(tmp_path, kwargs, message) -> None:
    with pytest.raises(DataError, match=message):
        synth_gtzan(tmp_path / "gtzan", **kwargs)
    assert not (tmp_path / "gtzan").exists()


def test_out_must_be_a_folder(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        synth_gtzan(tmp_path / "file", per_genre=1, duration=1.0)
