"""Validation protocols: every one assigns whole tracks to a side, never single rows.

A model scores ~0.75 on a random GTZAN split and ~0.55 on the artist-filtered one, so the
protocol is part of every result and the leaderboard names it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.dataset import Dataset
from bench.data.gtzan import track_id
from bench.errors import DataError

log = logging.getLogger(__name__)

PROTOCOLS = ("stratified-kfold", "fault-filtered", "artist-kfold")


@dataclass(frozen=True)
class Protocol:
    """How a suite validates; paths are relative to the dataset's folder."""

    name: str = "stratified-kfold"
    folds: int = 5
    split_lists: str = "splits"
    groups: str = "splits/artist_groups.txt"

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise DataError(f"unknown protocol {self.name!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.name != "fault-filtered" and self.folds < 2:
            raise DataError(f"{self.name} needs at least 2 folds, got {self.folds}")

    def describe(self) -> str:
        if self.name == "fault-filtered":
            return "artist-filtered split (train+valid -> test)"
        if self.name == "artist-kfold":
            return f"{self.folds}-fold artist-grouped stratified"
        return f"{self.folds}-fold stratified"


@dataclass(frozen=True)
class Fold:
    name: str
    train: np.ndarray
    test: np.ndarray


def make_folds(dataset: Dataset, protocol: Protocol, seed: int) -> list[Fold]:
    """Row indices of each fold's train and test side."""
    if protocol.name == "fault-filtered":
        return _fault_filtered(dataset, dataset.root / protocol.split_lists)
    tracks, track_labels = _tracks_with_labels(dataset)
    if protocol.name == "stratified-kfold":
        from sklearn.model_selection import StratifiedKFold

        _check_enough(track_labels, protocol.folds, "tracks")
        splitter = StratifiedKFold(protocol.folds, shuffle=True, random_state=seed)
        parts = splitter.split(tracks, track_labels)
    else:
        from sklearn.model_selection import StratifiedGroupKFold

        groups = read_groups(dataset.root / protocol.groups)
        known = np.array([t in groups for t in tracks])
        if not known.all():
            log.warning(
                "%d of %d tracks have no artist group in %s and are left out",
                (~known).sum(),
                len(tracks),
                protocol.groups,
            )
        tracks, track_labels = tracks[known], track_labels[known]
        group_ids = np.array([groups[t] for t in tracks])
        if len(np.unique(group_ids)) < protocol.folds:
            raise DataError(f"{protocol.groups}: fewer artist groups than {protocol.folds} folds")
        splitter = StratifiedGroupKFold(protocol.folds, shuffle=True, random_state=seed)
        parts = splitter.split(tracks, track_labels, group_ids)
    return [
        Fold(f"fold{k}", _rows(dataset, tracks[tr]), _rows(dataset, tracks[te]))
        for k, (tr, te) in enumerate(parts)
    ]


def read_track_list(path: Path) -> list[str]:
    """Track ids named by a split list (one file per line; a second column is ignored)."""
    if not path.is_file():
        raise DataError(f"{path}: split list not found")
    lines = [line.split("\t")[0].strip() for line in path.read_text().splitlines()]
    return [track_id(line) for line in lines if line]


def read_groups(path: Path) -> dict[str, str]:
    """``track<TAB>group`` lines, from one file or every ``*_groups.txt`` in a folder."""
    files = sorted(path.glob("*_groups.txt")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise DataError(f"{path}: artist groups file not found")
    groups: dict[str, str] = {}
    for file in files:
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(f"{file}:{number}: expected 'track<TAB>group', got {line!r}")
            track, group = track_id(parts[0]), parts[1].strip()
            if groups.setdefault(track, group) != group:
                raise DataError(f"{file}:{number}: {track} is in two artist groups")
    return groups


def _fault_filtered(dataset: Dataset, lists: Path) -> list[Fold]:
    present = set(dataset.tracks)
    sides = {}
    for side in ("train", "valid", "test"):
        path = lists / f"{side}_filtered.txt"
        names = read_track_list(path)
        missing = [t for t in names if t not in present]
        if missing:
            raise DataError(
                f"{path}: names {len(missing)} track(s) not in the dataset, e.g. {missing[0]}"
            )
        sides[side] = names
    overlap = set(sides["test"]) & (set(sides["train"]) | set(sides["valid"]))
    if overlap:
        raise DataError(f"{lists}: {sorted(overlap)[0]} is on both sides of the split")
    train = _rows(dataset, np.array(sides["train"] + sides["valid"]))
    return [Fold("test", train, _rows(dataset, np.array(sides["test"])))]


def _tracks_with_labels(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    tracks, first = np.unique(dataset.tracks, return_index=True)
    return tracks, dataset.labels[first]


def _check_enough(labels: np.ndarray, folds: int, what: str) -> None:
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    if counts.min() < folds:
        raise DataError(
            f"{folds} folds need at least {folds} {what} per class; the smallest class has "
            f"{counts.min()}"
        )


def _rows(dataset: Dataset, tracks: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(dataset.tracks, tracks))
