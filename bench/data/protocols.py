"""The validation protocols a suite can name (light: the command line builds its choices from
this table without importing numpy or pandas)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import DataError

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
