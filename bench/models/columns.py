"""Column selection for multimodal stacks (kept apart so the registry imports no sklearn)."""

from __future__ import annotations

from sklearn.base import BaseEstimator, TransformerMixin

AUDIO_COLUMN = "audio_path"


class SelectColumns(TransformerMixin, BaseEstimator):
    """Hand a stack member its part of a multimodal frame: the features or the audio paths."""

    def __init__(self, part: str = "features") -> None:
        self.part = part

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        if self.part == "audio":
            return X[AUDIO_COLUMN].to_numpy(dtype=object)
        return X.drop(columns=[AUDIO_COLUMN]).to_numpy(dtype=float)
