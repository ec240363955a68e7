"""Synthetic GTZAN with bench's 57 Kaggle features: :mod:`bench.data.synthetic` is handed the
feature table here, so that data/ never imports feature code (data/ is the bottom layer).

Example::

    from pathlib import Path
    from bench.features.synthetic import synth_gtzan
    root = synth_gtzan(Path("/tmp/gtzan"), per_genre=8, duration=5.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import synthetic
from bench.data.synthetic import GENERATOR_VERSION

__all__ = ["GENERATOR_VERSION", "KAGGLE_FEATURES", "synth_gtzan"]


@dataclass(frozen=True)
class _KaggleFeatures:
    """:func:`bench.features.handcrafted.gtzan_features` and its column names."""

    @property
    def columns(self) -> Sequence[str]:
        from bench.features.handcrafted import FEATURE_COLUMNS

        return FEATURE_COLUMNS

    def __call__(self, clips: Any, sr: int, device: str) -> Any:
        from bench.features.handcrafted import gtzan_features

        return gtzan_features(clips, sr, device)


KAGGLE_FEATURES = _KaggleFeatures()


def synth_gtzan(out: Path, **options: Any) -> Path:
    """:func:`bench.data.synthetic.synth_gtzan` (same options) writing the Kaggle features."""
    return synthetic.synth_gtzan(out, features=KAGGLE_FEATURES, **options)
