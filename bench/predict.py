"""Genre predictions for audio files from a model logged by ``bench run``."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import artifacts
from bench.errors import BenchError

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    path: Path
    top: list[tuple[str, float]]
    error: str | None = None


def load_logged_model(run_id: str, tracking_uri: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The fitted model of a job run and its model card, from MLflow."""
    from bench.tracking import download_run_files

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        files = download_run_files(
            run_id, [artifacts.MODEL_FILE, artifacts.CARD_FILE], Path(tmp), tracking_uri
        )
        return artifacts.load_model(files[0]), artifacts.read_card(files[1])


def predict_files(
    model: Any, card: dict[str, Any], paths: list[Path], top_k: int = 3
) -> list[Prediction]:
    """Top-k genres per file. A file ``bench run`` would skip (unreadable, empty, truncated)
    is skipped here too, with the reason, and the others go on; a repaired one (NaN samples,
    stereo, another rate) is read the way training read it, with a warning."""
    from bench.data.gtzan import load_audio

    classes = np.asarray(card["classes"])
    results = []
    for path in paths:
        try:
            wave = load_audio(path)
            proba = model.predict_proba(_inputs(card, path, wave))[0]
        except BenchError as exc:
            log.warning("skipping %s", exc)
            results.append(Prediction(path, [], str(exc)))
            continue
        order = np.argsort(proba)[::-1][:top_k]
        labels = classes[np.asarray(model.classes_)[order]]
        top = [(str(c), float(proba[i])) for c, i in zip(labels, order, strict=True)]
        results.append(Prediction(path, top))
    return results


def _inputs(card: dict[str, Any], path: Path, wave: np.ndarray) -> Any:
    kind = card["input_kind"]
    if kind == "audio":
        return np.array([str(path)], dtype=object)
    features = _features_for(card, wave)
    if kind == "tabular":
        return features
    import pandas as pd

    from bench.models.columns import AUDIO_COLUMN

    frame = pd.DataFrame(features, columns=card["feature_columns"])
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
