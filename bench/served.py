"""bench's MLflow model flavour: what ``mlflow.pyfunc.load_model`` runs for a model bench logged.

A job's fitted model is logged as an MLflow model whose ``python_function`` flavour names this
module as its ``loader_module``. MLflow imports it from the installed bench package (never from
the model's files) and calls :func:`_load_pyfunc` on the model's data folder, which holds:

- ``model.skops``: the fitted model, read through bench's exact-type allowlist
  (:func:`bench.artifacts.load_model`), so no pickle is involved and a crafted file is refused
  before anything in it is built;
- ``model_card.json``: the classes, the input kind and the feature columns.

Inputs are one DataFrame row per clip:

- tabular models: the feature columns the model was fitted on (``model_card.json`` lists them,
  the MLflow signature too);
- audio models (the CNNs): one column ``audio_path``, a path to an audio file that bench reads
  as training did (decoded with soundfile, mono, resampled to 22 050 Hz, the first 30 s). A path
  rather than samples: the model sees exactly what training saw, whatever the file's rate,
  channels or format, and a 30 s clip is one short string in a request instead of ~660 000
  floats (about 13 MB of JSON);
- multimodal stacks: both.

The output is a DataFrame of genre probabilities, one column per genre.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import artifacts
from bench.errors import BenchError
from bench.models.columns import AUDIO_COLUMN


class ServedModel:
    """A logged model with its card: frames in, genre probabilities out."""

    def __init__(self, model: Any, card: dict[str, Any]) -> None:
        self.model, self.card = model, card
        codes = np.asarray(model.classes_)
        if (
            codes.dtype.kind not in "iu"
            or not ((codes >= 0) & (codes < len(card["classes"]))).all()
        ):
            raise BenchError(
                f"model {card['model']}: its classes do not index the card's "
                f"{len(card['classes'])} genres"
            )
        self.classes = [str(c) for c in np.asarray(card["classes"])[codes]]

    @classmethod
    def load(cls, folder: Path) -> ServedModel:
        """The model in ``folder`` (``model.skops`` + ``model_card.json``), allowlist-checked."""
        card = artifacts.read_card(folder / artifacts.CARD_FILE)
        return cls(artifacts.load_model(folder / artifacts.MODEL_FILE), card)

    @property
    def input_columns(self) -> list[str]:
        kind = self.card["input_kind"]
        if kind == "audio":
            return [AUDIO_COLUMN]
        return list(self.card["feature_columns"]) + ([AUDIO_COLUMN] if kind != "tabular" else [])

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Genre probabilities, one row per input row (``params`` is MLflow's; none are used)."""
        frame = self._frame(model_input)
        kind = self.card["input_kind"]
        if kind == "audio":
            x: Any = frame[AUDIO_COLUMN].astype(str).to_numpy(dtype=object)
        elif kind == "tabular":
            x = frame[self.card["feature_columns"]].to_numpy(dtype=float)
        else:
            x = frame[self.input_columns].copy()
            x[AUDIO_COLUMN] = x[AUDIO_COLUMN].astype(str)
        return pd.DataFrame(self.model.predict_proba(x), columns=self.classes, index=frame.index)

    def _frame(self, model_input: Any) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            frame = model_input
        elif isinstance(model_input, dict):
            frame = pd.DataFrame(model_input)
        else:
            frame = pd.DataFrame(np.atleast_2d(np.asarray(model_input)), columns=self.input_columns)
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise BenchError(
                f"model {self.card['model']} needs column(s) {shown} "
                f"({len(missing)} of {len(self.input_columns)} missing)"
            )
        return frame


def input_example(card: dict[str, Any], features: Sequence[float], audio: str | None) -> dict:
    """One input row for the model's MLflow input example: a test clip's features and path."""
    row: dict[str, Any] = {}
    if card["input_kind"] != "audio":
        row.update(zip(card["feature_columns"], map(float, features), strict=True))
    if card["input_kind"] != "tabular":
        row[AUDIO_COLUMN] = audio
    return row


def _load_pyfunc(data_path: str, model_config: Any = None) -> ServedModel:
    """MLflow's entry point (``loader_module``): the model in ``data_path``."""
    return ServedModel.load(Path(data_path))
