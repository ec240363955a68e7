"""Protocols: exact membership, no track on both sides, clear errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.data.gtzan import load_gtzan
from bench.data.splits import Protocol, make_folds, read_groups, read_track_list
from bench.errors import DataError


def _assert_partition(ds, folds) -> None:
    for fold in folds:
        assert not set(ds.tracks[fold.train]) & set(ds.tracks[fold.test])


def test_stratified_kfold_partitions_tracks(tabular_gtzan: Path) -> None:
    ds = load_gtzan(tabular_gtzan)
    folds = make_folds(ds, Protocol("stratified-kfold", folds=3), seed=0)
    assert len(folds) == 3
    _assert_partition(ds, folds)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests) == list(range(len(ds)))
    for fold in folds:
        assert np.bincount(ds.labels[fold.test]).tolist() == [4] * 10
    again = make_folds(ds, Protocol("stratified-kfold", folds=3), seed=0)
    assert all((a.test == b.test).all() for a, b in zip(folds, again, strict=True))
    other = make_folds(ds, Protocol("stratified-kfold", folds=3), seed=1)
    assert any((a.test != b.test).any() for a, b in zip(folds, other, strict=True))


def test_segments_of_a_track_stay_together(tabular_gtzan: Path) -> None:
    ds = load_gtzan(tabular_gtzan)
    rows = np.repeat(np.arange(len(ds)), 10)  # ten 3 s segments per track
    segmented = replace(
        ds,
        features=ds.features.iloc[rows],
        labels=ds.labels[rows],
        tracks=ds.tracks[rows],
    )
    folds = make_folds(segmented, Protocol("stratified-kfold", folds=3), seed=0)
    _assert_partition(segmented, folds)
    assert sum(len(f.test) for f in folds) == len(segmented)


def test_fault_filtered_real_lists(shared_data: Path) -> None:
    ds = load_gtzan(shared_data / "gtzan")
    (fold,) = make_folds(ds, Protocol("fault-filtered"), seed=0)
    assert (len(fold.train), len(fold.test)) == (443 + 197, 290)
    expected = set(read_track_list(shared_data / "gtzan" / "splits" / "test_filtered.txt"))
    assert set(ds.tracks[fold.test]) == expected
    lists = shared_data / "gtzan" / "splits"
    train = read_track_list(lists / "train_filtered.txt") + read_track_list(
        lists / "valid_filtered.txt"
    )
    assert set(ds.tracks[fold.train]) == set(train)
    assert "blues.00012" in expected


def test_split_list_naming_missing_track(tabular_gtzan: Path) -> None:
    with (tabular_gtzan / "splits" / "test_filtered.txt").open("a") as fh:
        fh.write("rock/rock.00999.wav\n")
    ds = load_gtzan(tabular_gtzan)
    with pytest.raises(
        DataError,
        match=r"test_filtered.txt: names 1 track\(s\) not in the dataset, e.g. rock.00999",
    ):
        make_folds(ds, Protocol("fault-filtered"), seed=0)


def test_artist_kfold_keeps_artists_apart(tabular_gtzan: Path) -> None:
    ds = load_gtzan(tabular_gtzan)
    groups = read_groups(tabular_gtzan / "splits" / "artist_groups.txt")
    folds = make_folds(ds, Protocol("artist-kfold", folds=3), seed=0)
    for fold in folds:
        train = {groups[t] for t in ds.tracks[fold.train]}
        test = {groups[t] for t in ds.tracks[fold.test]}
        assert not train & test and test


def test_folds_carry_every_rows_artist_for_models_inner_folds(tabular_gtzan: Path) -> None:
    ds = load_gtzan(tabular_gtzan)
    groups = read_groups(tabular_gtzan / "splits" / "artist_groups.txt")
    expected = [groups[t] for t in ds.tracks]
    assert len(set(expected)) == 30  # 10 genres x 3 artists
    for protocol in (Protocol("artist-kfold", folds=3), Protocol("fault-filtered")):
        for fold in make_folds(ds, protocol, seed=0):
            assert list(fold.groups) == expected, protocol.name
    for fold in make_folds(ds, Protocol("stratified-kfold", folds=3), seed=0):
        assert fold.groups is None  # artists leak across these folds anyway
    (tabular_gtzan / "splits" / "artist_groups.txt").unlink()
    (fold,) = make_folds(ds, Protocol("fault-filtered"), seed=0)
    assert fold.groups is None  # no groups file: none, and no error


def test_artist_kfold_real_groups(shared_data: Path) -> None:
    ds = load_gtzan(shared_data / "gtzan")
    protocol = Protocol("artist-kfold", folds=3, groups="splits/artist_folds")
    groups = read_groups(shared_data / "gtzan" / "splits" / "artist_folds")
    assert len(groups) == 948
    folds = make_folds(ds, protocol, seed=0)
    assert sum(len(f.test) for f in folds) == 948
    for fold in folds:
        assert not {groups[t] for t in ds.tracks[fold.train]} & {
            groups[t] for t in ds.tracks[fold.test]
        }


def test_unknown_protocol() -> None:
    with pytest.raises(DataError, match="unknown protocol 'random'"):
        Protocol("random")
