"""The one in-memory shape every dataset is turned into before models see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import DataError


@dataclass
class Dataset:
    """Rows of features with labels, and the track each row belongs to.

    ``labels`` are integer codes into ``classes``, encoded once here so every model, fold and
    report uses the same mapping. ``tracks`` lets protocols split by track, so segment-level
    rows of one track can never land on both sides of a split. ``groups`` (the artist of each
    row, when the data itself says: MSD's ``artist_id``) is what artist-grouped protocols use
    instead of a groups file. ``dropped`` counts, by reason, what loading left out (unlabelled
    tracks, classes too small to validate), so a run can report it.
    """

    name: str
    root: Path
    features: pd.DataFrame
    labels: np.ndarray
    classes: tuple[str, ...]
    tracks: np.ndarray
    fingerprint: str
    vote: str = "row"  # "track": rows are segments, scored by their track's mean probability
    audio: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    groups: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        present = np.unique(self.labels)
        if len(present) < 2:
            names = ", ".join(self.classes[i] for i in present) or "none"
            raise DataError(
                f"{self.root}: {self.name} has {len(present)} class ({names}) in "
                f"{len(self.labels)} row(s); classification needs at least 2"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_tracks(self) -> int:
        return len(np.unique(self.tracks))
