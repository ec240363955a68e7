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
from bench.data.protocols import PROTOCOLS, Protocol
from bench.errors import DataError

log = logging.getLogger(__name__)

__all__ = [  # Protocol and PROTOCOLS live in bench.data.protocols (no numpy) and are re-exported
    "PROTOCOLS",
    "DevSplit",
    "Fold",
    "Protocol",
    "dev_split",
    "make_folds",
    "read_groups",
    "read_track_list",
]


@dataclass(frozen=True)
class Fold:
    name: str
    train: np.ndarray
    test: np.ndarray
    groups: np.ndarray | None = None
    """The artist group of every dataset row, when the protocol knows them: a model with
    inner folds of its own (the multimodal stack) keeps each artist on one side of them too."""


@dataclass(frozen=True)
class DevSplit:
    """The tracks hyperparameters are tuned on, and the inner folds over them.

    Tuning must never see a track the leaderboard tests on. For the artist-filtered split that
    is free: tuning uses train -> valid and the test list stays unseen. For k-fold protocols a
    share of the tracks (``fraction``, stratified; whole artist groups for ``artist-kfold``) is
    set aside: tuning cross-validates inside it, and a tuned leaderboard runs its k folds over
    the other tracks, with the development tracks added to every training side only.
    """

    protocol: str
    tracks: np.ndarray
    folds: list[Fold]
    held_out: bool
    """True when the leaderboard folds must exclude ``tracks`` from their test sides."""
    description: str

    @property
    def signature(self) -> str:
        """Names this exact split, so tuned parameters are never scored on their own dev tracks."""
        import hashlib

        digest = hashlib.sha256("\n".join([self.protocol, *sorted(self.tracks)]).encode())
        return digest.hexdigest()[:12]


def dev_split(
    dataset: Dataset, protocol: Protocol, seed: int, fraction: float = 0.4, folds: int = 3
) -> DevSplit:
    """The development split of ``protocol`` (see :class:`DevSplit`)."""
    if protocol.name == "fault-filtered":
        sides = _fault_filtered_sides(dataset, dataset.root / protocol.split_lists)
        fold = Fold("valid", _rows(dataset, sides["train"]), _rows(dataset, sides["valid"]))
        tracks = np.array(sides["train"] + sides["valid"])
        described = (
            f"tuned on train -> valid ({len(sides['train'])} -> {len(sides['valid'])} tracks); "
            "the test list is never seen"
        )
        return DevSplit(protocol.name, tracks, [fold], False, described)
    if not 0 < fraction < 1:
        raise DataError(f"the development fraction must be in (0, 1), got {fraction}")
    tracks, labels, groups = _protocol_tracks(dataset, protocol)
    if groups is None:
        from sklearn.model_selection import train_test_split

        _check_enough(labels, 2, "tracks")
        _, dev = train_test_split(
            np.arange(len(tracks)), test_size=fraction, stratify=labels, random_state=seed
        )
        dev = np.sort(dev)
    else:  # whole artist groups: the nearest 1/k share that stratified group folds can cut
        share = max(2, round(1 / fraction))
        _, dev = next(iter(_splitter(protocol.name, share, seed).split(tracks, labels, groups)))
    dev_groups = None if groups is None else groups[dev]
    _check_enough(labels[dev], folds, "development tracks")
    inner = _splitter(protocol.name, folds, seed).split(tracks[dev], labels[dev], dev_groups)
    inner_folds = [
        Fold(f"dev{k}", _rows(dataset, tracks[dev][tr]), _rows(dataset, tracks[dev][te]))
        for k, (tr, te) in enumerate(inner)
    ]
    unit = "whole artist groups" if groups is not None else "stratified"
    described = (
        f"tuned by {folds}-fold CV on {len(dev)} development tracks ({unit}); tuned "
        f"leaderboards test only the other {len(tracks) - len(dev)}"
    )
    return DevSplit(protocol.name, tracks[dev], inner_folds, True, described)


def make_folds(
    dataset: Dataset, protocol: Protocol, seed: int, dev: DevSplit | None = None
) -> list[Fold]:
    """Row indices of each fold's train and test side.

    With ``dev`` (a held-out development split) the folds are made over the other tracks, and
    the development tracks join every training side: no test side holds a track tuning saw.
    """
    if protocol.name == "fault-filtered":
        sides = _fault_filtered_sides(dataset, dataset.root / protocol.split_lists)
        train = _rows(dataset, np.array(sides["train"] + sides["valid"]))
        test = _rows(dataset, np.array(sides["test"]))
        return [Fold("test", train, test, _known_row_groups(dataset, protocol))]
    tracks, labels, groups = _protocol_tracks(dataset, protocol)
    row_groups = None
    if groups is not None:
        row_groups = _row_groups(dataset, dict(zip(tracks, groups, strict=True)))
    extra = np.array([], dtype=int)
    if dev is not None and dev.held_out:
        keep = ~np.isin(tracks, dev.tracks)
        extra = _rows(dataset, dev.tracks)
        tracks, labels = tracks[keep], labels[keep]
        groups = None if groups is None else groups[keep]
    if groups is None:
        _check_enough(labels, protocol.folds, "tracks")
    elif len(np.unique(groups)) < protocol.folds:
        source = "the dataset" if dataset.groups is not None else protocol.groups
        raise DataError(f"{source}: fewer artist groups than {protocol.folds} folds")
    parts = _splitter(protocol.name, protocol.folds, seed).split(tracks, labels, groups)
    return [
        Fold(
            f"fold{k}",
            np.sort(np.concatenate([_rows(dataset, tracks[tr]), extra])),
            _rows(dataset, tracks[te]),
            row_groups,
        )
        for k, (tr, te) in enumerate(parts)
    ]


def _row_groups(dataset: Dataset, group_of: dict) -> np.ndarray:
    """The group of every dataset row; a track without one is a group of its own."""
    return np.array([str(group_of.get(t, f"track:{t}")) for t in dataset.tracks], dtype=object)


def _known_row_groups(dataset: Dataset, protocol: Protocol) -> np.ndarray | None:
    """Row groups for a split protocol, when the dataset or a groups file gives them."""
    if dataset.groups is not None:
        return np.asarray(dataset.groups, dtype=object)
    path = dataset.root / protocol.groups if protocol.groups else None
    if path is None or not (path.is_dir() or path.is_file()):
        return None
    return _row_groups(dataset, read_groups(path))


def _protocol_tracks(
    dataset: Dataset, protocol: Protocol
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Tracks, their labels and (for ``artist-kfold``) their artist groups.

    The groups come from the dataset when it carries them (MSD's ``artist_id``), else from
    the protocol's groups file.
    """
    tracks, track_labels = _tracks_with_labels(dataset)
    if protocol.name == "stratified-kfold":
        return tracks, track_labels, None
    if dataset.groups is not None:
        _, first = np.unique(dataset.tracks, return_index=True)
        return tracks, track_labels, dataset.groups[first]
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
    return tracks, track_labels, np.array([groups[t] for t in tracks])


def _splitter(protocol: str, folds: int, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if protocol == "stratified-kfold":
        return StratifiedKFold(folds, shuffle=True, random_state=seed)
    return StratifiedGroupKFold(folds, shuffle=True, random_state=seed)


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


def _fault_filtered_sides(dataset: Dataset, lists: Path) -> dict[str, list[str]]:
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
    return sides


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
