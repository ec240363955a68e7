"""Genre predictions for audio files from a model logged by ``bench run``."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.models.columns import AUDIO_COLUMN
from bench.served import ServedModel

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    path: Path
    top: list[tuple[str, float]]
    error: str | None = None


def load_logged_model(ref: str, tracking_uri: str | None = None) -> ServedModel:
    """A model bench logged, by job run id, ``runs:/<id>/model`` or ``models:/NAME@alias``:
    its MLmodel checked first, then its skops file through the type allowlist."""
    from bench.tracking import download_model

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        return ServedModel.load(download_model(ref, Path(tmp), tracking_uri))


def predict_files(model: ServedModel, paths: list[Path], top_k: int = 3) -> list[Prediction]:
    """Top-k genres per file (every genre with ``top_k=0``). A file ``bench run`` would skip
    (unreadable, empty, truncated) is skipped here too, with the reason, and the others go on;
    a repaired one (NaN samples, stereo, another rate) is read the way training read it, with a
    warning."""
    from bench.data.gtzan import load_audio

    results = []
    for path in paths:
        try:
            wave = load_audio(path)
            proba = model.predict(model_frame(model.card, path, wave)).iloc[0]
        except BenchError as exc:
            log.warning("skipping %s", exc)
            results.append(Prediction(path, [], str(exc)))
            continue
        ranked = proba.sort_values(ascending=False, kind="stable")
        ranked = ranked if top_k == 0 else ranked[:top_k]
        results.append(Prediction(path, [(str(c), float(p)) for c, p in ranked.items()]))
    return results


def model_frame(card: dict[str, Any], path: Path, wave: np.ndarray) -> pd.DataFrame:
    """The one-row input a logged model takes for one clip (what its MLflow signature says)."""
    frame = pd.DataFrame(index=[0])
    if card["input_kind"] != "audio":
        frame = pd.DataFrame(_features_for(card, wave), columns=card["feature_columns"])
    if card["input_kind"] != "tabular":
        frame[AUDIO_COLUMN] = str(path)
    return frame


def _features_for(card: dict[str, Any], wave: np.ndarray) -> np.ndarray:
    """The 57 GTZAN features of the first 30 s, in the column order the model was fitted on."""
    from bench.data.gtzan import SAMPLE_RATE
    from bench.features.handcrafted import FEATURE_COLUMNS, gtzan_features

    wanted = card["feature_columns"]
    missing = [c for c in wanted if c not in FEATURE_COLUMNS]
    if missing:
        raise BenchError(
            f"model {card['model']} was fitted on columns bench cannot compute from audio "
            f"({', '.join(missing[:3])}...)"
        )
    values = gtzan_features(wave[None, : 30 * SAMPLE_RATE], SAMPLE_RATE)[0]
    by_name = dict(zip(FEATURE_COLUMNS, values, strict=True))
    return np.array([[by_name[c] for c in wanted]])
