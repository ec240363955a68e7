"""MSD: real track files read by field name, the taxonomy, label files, bad input, the
synthetic generator's schema, and the msd suites end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from boards import table_rows
from mlflow.tracking import MlflowClient

from bench.cli import main
from bench.data.msd import (
    FEATURE_COLUMNS,
    feature_columns,
    feature_table,
    find_track_files,
    read_track,
)
from bench.data.msd_dataset import load_msd, load_msd_table
from bench.data.splits import Protocol, make_folds
from bench.data.synthetic_msd import ARRAY_SCHEMA, TRUTH_FILE, synth_msd
from bench.data.taxonomy import GENRES, KEYWORDS, genre_from_terms, ranked_terms, term_genre
from bench.errors import DataError
from bench.tracking import resolve_uri

# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def real_h5(shared_data: Path) -> Path:
    root = shared_data / "msd" / "h5"
    if not root.is_dir():
        pytest.skip(f"real MSD files not found at {root}")
    return root


@pytest.fixture
def music_csv(shared_data: Path) -> pd.DataFrame:
    path = shared_data / "msd" / "music.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return pd.read_csv(path).set_index("song.id")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """300 MSD-schema files, ~4 songs per artist: written once for the whole module."""
    return synth_msd(tmp_path_factory.mktemp("msd") / "syn", tracks=300, seed=0, workers=1)


def _real(root: Path, track_id: str) -> Path:
    return root / track_id[2] / track_id[3] / track_id[4] / f"{track_id}.h5"


# --- real files -----------------------------------------------------------------------------

# Looked up with h5py in the real files, field by field.
REAL = {
    "TRBDEXK128F9338916": {
        "song_id": "SOJTVHW12A8C142F98",
        "artist_name": "Joe McBride",
        "title": "Like A Star",
        "tempo": 105.882,
        "duration": 309.39383,
        "loudness": -13.896,
        "key": 9,
        "time_signature": 7,
        "year": None,
        "segments": 1206,
        "beats": 551,
        "top_term": "smooth jazz",
    },
    "TRBDANT128E0782452": {
        "song_id": "SOAPQSY12A6310E055",
        "artist_name": "R.E.M.",
        "title": "Stumble",
        "tempo": 153.833,
        "duration": 340.11383,
        "loudness": -13.692,
        "key": 2,
        "time_signature": 1,
        "year": 1982,
        "segments": 1599,
        "beats": 860,
        "top_term": "jangle pop",
    },
    "TRBDBIU128E0791595": {
        "song_id": "SOVHPUY12A67020A44",
        "artist_name": "Kanye West",
        "title": "Skit #2 (Kanye West/Late Registration)",
        "tempo": 60.276,
        "duration": 31.37261,
        "loudness": -12.352,
        "key": 11,
        "time_signature": 1,
        "year": 2005,
        "segments": 116,
        "beats": 30,
        "top_term": "hip hop",
    },
}


@pytest.mark.parametrize("track_id", sorted(REAL))
def test_real_track_fields_by_name(real_h5: Path, track_id: str) -> None:
    want = REAL[track_id]
    track = read_track(_real(real_h5, track_id))
    assert track.track_id == track_id and track.song_id == want["song_id"]
    assert (track.artist_name, track.title, track.year) == (
        want["artist_name"],
        want["title"],
        want["year"],
    )
    assert track.scalars["tempo"] == want["tempo"]
    assert track.scalars["duration"] == want["duration"]
    assert track.scalars["loudness"] == want["loudness"]
    assert track.scalars["key"] == want["key"]
    assert track.scalars["time_signature"] == want["time_signature"]
    assert track.timbre.shape == track.pitches.shape == (want["segments"], 12)
    assert len(track.beats_start) == want["beats"]
    assert track.ranked_terms[0] == want["top_term"]


def test_non_ascii_strings_are_decoded_as_utf8(real_h5: Path, music_csv: pd.DataFrame) -> None:
    track = read_track(_real(real_h5, "TRBDDMU128F9350474"))
    assert (track.title, track.release, track.artist_name) == (
        "Médium",
        "Ahí Vamos",
        "Gustavo Cerati",
    )
    assert (track.scalars["tempo"], track.scalars["duration"], len(track.timbre)) == (
        196.429,
        333.19138,
        952,
    )
    gospel = read_track(_real(real_h5, "TRBDDTD12903CA7AA9"))
    assert gospel.artist_name == "Andraé Crouch & Solid Gospel"
    # the CORGIS table, made from the same files, lost the accents
    assert music_csv.loc[track.song_id, "title"] == "MA(c)dium"


def test_every_real_file_agrees_with_music_csv(real_h5: Path, music_csv: pd.DataFrame) -> None:
    table = feature_table(real_h5)
    assert len(table) == 40 and (table["problem"] == "").all()
    assert table["song_id"].isin(music_csv.index).all()
    rows = music_csv.loc[table["song_id"]]
    for column in ("duration", "tempo", "loudness", "key", "mode", "time_signature"):
        np.testing.assert_array_equal(table[column].to_numpy(), rows[column].to_numpy(), column)
    np.testing.assert_array_equal(table["year"].to_numpy(), rows["year"].to_numpy())
    assert (table["artist_id"].to_numpy() == rows["artist.id"].to_numpy()).all()
    # music.csv's `terms` is the artist's top term by weight
    top = [json.loads(terms)[0] for terms in table["terms"]]
    assert top == rows["terms"].tolist()
    ascii_titles = table["title"].map(str.isascii).to_numpy()
    assert ascii_titles.sum() >= 37
    assert (table["title"][ascii_titles].to_numpy() == rows["title"][ascii_titles].to_numpy()).all()


def test_features_are_the_segment_statistics(real_h5: Path) -> None:
    path = _real(real_h5, "TRBDEXK128F9338916")
    table = feature_table(real_h5, covariance=True).set_index("track_id")
    row = table.loc["TRBDEXK128F9338916", list(feature_columns(True))].astype(float)
    with h5py.File(path, "r") as f:  # independently, through h5py's high-level API
        timbre = f["analysis/segments_timbre"][()]
        pitches = f["analysis/segments_pitches"][()]
        beats = f["analysis/beats_start"][()]
    np.testing.assert_allclose(row[[f"timbre_mean_{d:02d}" for d in range(1, 13)]], timbre.mean(0))
    np.testing.assert_allclose(row[[f"pitch_std_{d:02d}" for d in range(1, 13)]], pitches.std(0))
    assert row["timbre_cov_01_02"] == pytest.approx(np.cov(timbre.T, bias=True)[0, 1])
    assert row["segments_per_second"] == pytest.approx(1206 / 309.39383)
    assert row["beat_interval_cv"] == pytest.approx(np.diff(beats).std() / np.diff(beats).mean())
    assert (row["year"], row["year_known"]) == (0.0, 0.0)


def test_real_folder_loads_with_term_genres_and_artist_groups(real_h5: Path) -> None:
    ds = load_msd(real_h5, min_class_artists=5)
    # 40 files: rock 11, pop 6, hip hop 6; nine genres have fewer than 5 artists
    assert ds.classes == ("hiphop", "pop", "rock") and len(ds) == 23
    assert ds.dropped == {"tracks of genres with fewer than 5 artists": 17}
    assert list(ds.features.columns) == list(FEATURE_COLUMNS)
    assert len(ds.groups) == len(ds) and ds.groups[0].startswith("AR")
    assert load_msd(real_h5).classes == tuple(
        sorted(["rock", "pop", "hiphop", "metal", "jazz", "folk", "latin", "electronic"]
               + ["reggae", "punk", "world", "country"])
    )  # fmt: skip


# --- taxonomy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "term, genre",
    [
        ("hip hop", "hiphop"),
        ("Hip-Hop", "hiphop"),
        ("gangster rap", "hiphop"),
        ("blues-rock", "rock"),
        ("country blues", "blues"),
        ("latin jazz", "jazz"),
        ("pop punk", "punk"),
        ("rap metal", "metal"),
        ("trip hop", "electronic"),
        ("lovers rock", "reggae"),
        ("rock steady", "reggae"),
        ("western swing", "country"),
        ("new jack swing", "rnb"),
        ("soul jazz", "jazz"),
        ("blue-eyed soul", "rnb"),
        ("rock 'n roll", "rock"),
        ("dubstep", "electronic"),
        ("chanson", "world"),
        ("salsa", "latin"),
        ("opera", "classical"),
        ("honky tonk", "country"),
        ("ccm", "pop"),
        ("los angeles", None),
        ("female vocalist", None),
        ("soundtrack", None),
        ("xyzzy", None),
    ],
)
def test_term_genre(term: str, genre: str | None) -> None:
    assert term_genre(term) == genre


def test_every_keyword_names_its_own_genre() -> None:
    assert set(KEYWORDS) == set(GENRES) and len(GENRES) == 15
    wrong = [(g, k, term_genre(k)) for g, ks in KEYWORDS.items() for k in ks if term_genre(k) != g]
    assert wrong == []


def test_terms_rank_by_weight_then_frequency_and_vague_terms_are_passed_over() -> None:
    terms = ["rock", "los angeles", "jazz", "soundtrack"]
    assert ranked_terms(terms, [0.5, 1.0, 0.9, 0.9], [0.1, 1.0, 0.2, 0.8]) == [
        "los angeles",
        "soundtrack",
        "jazz",
        "rock",
    ]
    assert genre_from_terms(terms, [0.5, 1.0, 0.9, 0.9], [0.1, 1.0, 0.2, 0.8]) == "jazz"
    assert genre_from_terms(["comedy", "soundtrack"], [1.0, 0.5]) is None


def test_corgis_terms_mostly_name_a_genre(music_csv: pd.DataFrame) -> None:
    genres = music_csv["terms"].dropna().map(term_genre)
    assert genres.notna().mean() > 0.93  # 9403 of 10000 rows, measured
    assert set(genres.dropna()) == set(GENRES)


# --- label files ----------------------------------------------------------------------------


def test_tagtraum_style_label_file(synthetic: Path, tmp_path: Path) -> None:
    truth = dict(line.split("\t") for line in (synthetic / TRUTH_FILE).read_text().splitlines())
    ids = sorted(truth)
    lines = ["# tagtraum-style: track id, majority genre, minority genre", ""]
    lines += [f"{t}\t{truth[t].title()}\tMinority" for t in ids[:250]]
    lines += ["TRNOTINTHEDATA0001\tRock", "TRNOTINTHEDATA0002\tJazz"]
    (tmp_path / "genres.cls").write_text("\n".join(lines) + "\n")
    ds = load_msd(synthetic, labels=tmp_path / "genres.cls")
    assert len(ds) == 250
    assert ds.dropped == {"label-file ids not in the data": 2, "unlabelled tracks": 50}
    assert {ds.classes[c] for c in ds.labels} == {truth[t].title() for t in ids[:250]}
    assert all(ds.classes[ds.labels[i]] == truth[t].title() for i, t in enumerate(ds.tracks))


def test_csv_label_file_by_song_id(synthetic: Path, tmp_path: Path) -> None:
    table = feature_table(synthetic)
    labels = pd.DataFrame({"Song ID": table["song_id"][:100], "Genre": ["a", "b"] * 50})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    ds = load_msd(synthetic, labels=tmp_path / "labels.csv")
    assert ds.classes == ("a", "b") and len(ds) == 100 and ds.dropped == {"unlabelled tracks": 200}


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("l.tsv", "TRAAAA\n", "l.tsv:1: expected 'track_id<TAB>genre'"),
        ("l.tsv", "TRAAAA\tRock\nTRAAAA\tJazz\n", "TRAAAA is labelled both 'Rock' and 'Jazz'"),
        ("l.tsv", "# only a comment\n", "holds no labels"),
        ("l.csv", "track,style\nTRAAAA,Rock\n", "no an id column (track_id, song_id or id) and"),
    ],
)
def test_bad_label_files(synthetic: Path, tmp_path: Path, name, text, message) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_msd(synthetic, labels=tmp_path / name)
    with pytest.raises(DataError, match="nowhere.tsv: label file not found"):
        load_msd(synthetic, labels=tmp_path / "nowhere.tsv")


# --- bad input ------------------------------------------------------------------------------


def _rewrite_table_without(path: Path, table: str, field: str) -> None:
    with h5py.File(path, "r+") as f:
        rows = f[table][()]
        keep = [n for n in rows.dtype.names if n != field]
        del f[table]
        f.create_dataset(
            table, data=rows[keep].astype(np.dtype([(n, rows.dtype[n]) for n in keep]))
        )


def test_bad_files_are_skipped_and_counted(synthetic: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = find_track_files(synthetic)[:10]
    for path in good:
        shutil.copy(path, folder / path.name)
    names = [p.name for p in good]
    (folder / "TRNOTHDF5.h5").write_text("this is not HDF5\n")
    (folder / "README.txt").write_text("not a track file, not even looked at\n")
    data = (folder / names[0]).read_bytes()
    (folder / names[0]).write_bytes(data[: len(data) // 3])
    with h5py.File(folder / names[1], "r+") as f:
        del f["musicbrainz"]
    _rewrite_table_without(folder / names[2], "analysis/songs", "tempo")
    with h5py.File(folder / names[3], "r+") as f:
        timbre = f["analysis/segments_timbre"][()]
        del f["analysis/segments_timbre"]
        f["analysis/segments_timbre"] = timbre[:, :11]
    table = feature_table(folder)
    problems = dict(zip(table["path"], table["problem"], strict=True))
    assert problems["TRNOTHDF5.h5"] == "not an HDF5 file"
    size = len(data)
    assert problems[names[0]] == f"truncated HDF5 file ({size // 3} of {size} bytes)"
    assert problems[names[1]] == "no /musicbrainz/songs (not an MSD track file?)"
    assert problems[names[2]] == "/analysis/songs has no field 'tempo'"
    shape = f"({len(timbre)}, 11)"
    assert problems[names[3]] == f"/analysis/segments_timbre has shape {shape}, expected (n, 12)"
    assert all(problems[name] == "" for name in names[4:])
    assert len(table) == 11 and table.loc[table["problem"] != "", "tempo"].isna().all()
    ds = load_msd(folder)
    assert len(ds) == 6 and len(ds.skipped) == 5
    assert any(s.endswith("TRNOTHDF5.h5: not an HDF5 file") for s in ds.skipped)


def test_empty_or_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no MSD track files"):
        load_msd(tmp_path / "empty")
    with pytest.raises(DataError, match="nowhere: MSD folder does not exist"):
        load_msd(tmp_path / "nowhere")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(
        DataError, match=r"none of the 1 track files is usable .*a.h5: unreadable HDF5 file \("
    ):
        load_msd(tmp_path / "junk")


def test_cli_errors_are_one_line(capsys, tmp_path: Path, synthetic: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["run", "--suite", "msd", "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no MSD track files (*.h5) found" in err[0]
    argv = ["run", "--suite", "msd", "--data-dir", str(synthetic), "--labels", "missing.tsv"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "bench: error: missing.tsv: label file not found"
    assert main(["run", "--suite", "msd"]) == 2
    assert "put Million Song Dataset track files there" in capsys.readouterr().err


# --- the feature table ----------------------------------------------------------------------


def test_table_is_cached_until_a_file_changes(synthetic: Path, tmp_path: Path, monkeypatch) -> None:
    import bench.data.msd as msd

    first = feature_table(synthetic, cache=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.csv"))) == 1

    def unused(path):
        raise AssertionError("read from the cache, not the files")

    monkeypatch.setattr(msd, "read_track", unused)
    pd.testing.assert_frame_equal(feature_table(synthetic, cache=tmp_path / "cache"), first)
    monkeypatch.undo()
    touched = find_track_files(synthetic)[0]
    stat = touched.stat()
    import os

    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    again = feature_table(synthetic, cache=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.csv"))) == 2
    pd.testing.assert_frame_equal(again, first)


def test_worker_processes_give_the_same_table(synthetic: Path) -> None:
    pd.testing.assert_frame_equal(
        feature_table(synthetic, workers=2), feature_table(synthetic, workers=1)
    )


# --- the synthetic generator ----------------------------------------------------------------


def _schema(path: Path) -> dict:
    found = {}

    def visit(name, node):
        if isinstance(node, h5py.Dataset):
            fields = [(n, node.dtype[n].str) for n in node.dtype.names or ()]
            found[name] = (fields or node.dtype.str, node.shape[1:], node.chunks, node.compression,
                           node.compression_opts, node.shuffle)  # fmt: skip
        else:
            found[name] = "group"

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def test_synthetic_schema_equals_the_real_schema(synthetic: Path, real_h5: Path) -> None:
    real = _schema(_real(real_h5, "TRBDEXK128F9338916"))
    ours = _schema(find_track_files(synthetic)[0])
    assert ours == real
    assert {f"{g}/{a}" for g, arrays in ARRAY_SCHEMA.items() for a in arrays} | {
        f"{g}/songs" for g in ARRAY_SCHEMA
    } == {name for name, kind in real.items() if kind != "group"}


@pytest.mark.slow
def test_synthetic_layout_determinism_and_truth(synthetic: Path, tmp_path: Path) -> None:
    files = find_track_files(synthetic)
    assert len(files) == 300
    for path in files:
        tid = path.stem
        assert path.relative_to(synthetic).parts == ("data", tid[2], tid[3], tid[4], path.name)
        assert len(tid) == 18 and tid.startswith("TRA")
    again = synth_msd(tmp_path / "again", tracks=300, seed=0, workers=2)
    other = synth_msd(tmp_path / "other", tracks=3, seed=1, workers=1)
    for path in files[:5]:
        assert (again / path.relative_to(synthetic)).read_bytes() == path.read_bytes()
    assert not (other / files[0].relative_to(synthetic)).exists()
    truth = (synthetic / TRUTH_FILE).read_text().splitlines()
    assert len(truth) == 300 and {line.split("\t")[1] for line in truth} <= set(GENRES)
    ds = load_msd(synthetic)
    agree = np.mean(
        [
            ds.classes[c] == dict(t.split("\t") for t in truth)[tid]
            for c, tid in zip(ds.labels, ds.tracks, strict=True)
        ]
    )
    assert 0.85 <= agree < 1.0  # ~5% of artists rank an influence's term first
    assert len(np.unique(ds.groups)) < len(ds) / 2  # several songs per artist


def test_artist_folds_never_split_an_artist(synthetic: Path) -> None:
    ds = load_msd(synthetic, min_class_artists=3)
    folds = make_folds(ds, Protocol("artist-kfold", folds=3), seed=0)
    assert sorted(np.concatenate([f.test for f in folds])) == list(range(len(ds)))
    for fold in folds:
        assert not set(ds.groups[fold.train]) & set(ds.groups[fold.test])


@pytest.mark.parametrize("kwargs", [{"tracks": 1}, {"seed": -1}, {"songs_per_artist": 0.5}])
def test_synth_refuses_bad_arguments(tmp_path: Path, kwargs) -> None:
    with pytest.raises(DataError, match="cannot synthesise MSD"):
        synth_msd(tmp_path / "x", **{"tracks": 10, **kwargs})


def test_cli_synth_msd_and_gtzan_still_works(tmp_path: Path, capsys) -> None:
    assert main(["data", "synth", "msd", "--out", "m", "--tracks", "12", "--seed", "3"]) == 0
    assert (
        len(find_track_files(Path("m"))) == 12 and "m/truth_genres.tsv" in capsys.readouterr().out
    )
    assert (
        main(["data", "synth", "gtzan", "--out", "g", "--per-genre", "1", "--duration", "1"]) == 0
    )
    assert len(list(Path("g/genres_original").glob("*/*.wav"))) == 10


# --- suites end to end ----------------------------------------------------------------------


def _jobs(suite: str) -> list:
    client = MlflowClient(resolve_uri())
    exp = client.get_experiment_by_name(f"bench/{suite}")
    return client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'job'", max_results=1000)


@pytest.mark.slow
def test_synthetic_suite_learns_well_above_chance(tmp_path: Path, capsys) -> None:
    suite = tmp_path / "msdsyn.toml"
    suite.write_text(
        """name = "msdsyn"
[dataset]
kind = "synthetic-msd"
tracks = 400
seed = 0
min_class_artists = 3
[protocol]
name = "artist-kfold"
folds = 3
[[models]]
name = "logreg"
[[models]]
name = "rf"
params = { n_estimators = 100 }
[[models]]
name = "mlp_ref"
"""
    )
    assert main(["run", "--suite", str(suite), "--workers", "2"]) == 0
    jobs = _jobs("msdsyn")
    assert len(jobs) == 9 and all(r.info.status == "FINISHED" for r in jobs)
    assert {r.data.tags["bench.dataset"] for r in jobs} == {"synthetic-msd"}
    assert {r.data.tags["bench.protocol"] for r in jobs} == {"artist-kfold"}
    # 15 genres: chance is ~0.07 and the largest genre holds ~0.13 of the tracks
    for model in ("logreg", "rf", "mlp_ref"):
        scores = [r.data.metrics["accuracy"] for r in jobs if r.data.tags["bench.model"] == model]
        assert np.mean(scores) > 0.3, (model, scores)
    board = Path("reports/msdsyn/leaderboard.md").read_text()
    assert "3-fold artist-grouped stratified" in board


@pytest.mark.slow
def test_msd_suite_on_the_real_files(real_h5: Path, capsys) -> None:
    argv = ["run", "--suite", "msd", "--data-dir", str(real_h5), "--models", "logreg,rf"]
    assert main([*argv, "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "dropped: 17 tracks of genres with fewer than 5 artists" in out
    assert "msd (23 rows, 23 tracks), 3-fold artist-grouped stratified" in out
    jobs = _jobs("msd")
    assert len(jobs) == 6 and all(r.info.status == "FINISHED" for r in jobs)
    parent = MlflowClient(resolve_uri()).get_run(jobs[0].data.tags["mlflow.parentRunId"])
    assert json.loads(parent.data.tags["bench.dropped"]) == {
        "tracks of genres with fewer than 5 artists": 17
    }
    board = Path("reports/msd/leaderboard.md").read_text()
    ranked = {row[1] for row in table_rows(board) if len(row) == 14 and row[0].isdigit()}
    assert ranked == {"logreg", "rf"}


def test_msd_table_suite_on_music_csv(shared_data: Path, capsys) -> None:
    data = shared_data / "msd"
    if not (data / "music.csv").is_file():
        pytest.skip("music.csv not found")
    argv = ["run", "--suite", "msd-table", "--data-dir", str(data), "--models", "logreg"]
    assert main([*argv, "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "dropped: 597 unlabelled tracks" in out
    jobs = _jobs("msd-table")
    assert len(jobs) == 3 and all(r.info.status == "FINISHED" for r in jobs)
    ds = load_msd_table(data, min_class_artists=5)
    majority = np.bincount(ds.labels).max() / len(ds)
    assert all(r.data.metrics["accuracy"] > majority for r in jobs)
    assert list(ds.features.columns) == list(FEATURE_COLUMNS[:13])
    assert Path("reports/msd-table/leaderboard.md").is_file()


def test_msd_table_missing_column(tmp_path: Path) -> None:
    (tmp_path / "music.csv").write_text("song.id,artist.id,terms,duration\nSO1,AR1,rock,1.0\n")
    with pytest.raises(DataError, match="music.csv: no column\\(s\\) 'tempo', 'loudness'"):
        load_msd_table(tmp_path)
