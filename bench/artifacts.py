"""What a job leaves behind: the fitted model in a safe format, predictions, a confusion matrix.

Models are stored with skops, which rebuilds only types the loader trusts; bench trusts an exact
list of type names (:data:`TRUSTED_TYPES`), so loading a logged model never runs arbitrary code.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL_FILE = "model.skops"
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion_matrix.png"
CARD_FILE = "model_card.json"
TRUSTED_TYPES = frozenset(
    {
        "bench.models.boosting.CatBoostClassifier",
        "bench.models.boosting.LightGBMClassifier",
        "bench.models.boosting.XGBoostClassifier",
        "bench.models.cnn.CNNClassifier",
        "bench.models.cnn.ReferenceCNNClassifier",
        "bench.models.columns.SelectColumns",
        "bench.models.mlp_net.MLPClassifier",
        "bench.models.pretrained.MusicnnProbe",
        "bench.models.pretrained.VGGProbe",
        "bench.models.stacking.BaggedMember",
        "bench.models.stacking.EnsembleSelection",
        "bench.models.stacking.GreedyEnsemble",
        "bench.models.stacking.LogitMeta",
        "bench.models.stacking.SelectedStack",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._TemperatureScaling",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
    }
)
"""Exact names of the types, beyond skops's own defaults (primitives, containers, numpy arrays,
scikit-learn's public estimators), that bench's registered models leave in a fitted model.
No prefixes and no functions: a file naming anything else is refused before it is read.
``tests/test_trust.py`` fits, saves and reloads every registered model and checks that this
set is exactly what they need, so it can neither miss a type nor hold a spare one."""


def save_model(model: Any, path: Path) -> Path:
    """Deflate level 1: a 500-tree forest goes from 33 MB to 5.6 MB for ~0.7 s.

    skops writes each numpy array as a member of the zip and first checks that the name is
    not already there with ``ZipFile.namelist()``, a new list of every member so far: saving
    n arrays costs n**2 / 2 name copies. An ``ensemble`` held ~25,000 arrays when its
    forests grew 500 trees in each of 5 bags, so that check dominated its save. While bench saves,
    skops's zip answers it from a set instead (:class:`_IndexedZip`); what is written is the
    same. ``benchmarks/model_save.py`` measures both.
    """
    import skops.io as sio

    with _indexed_zip():
        sio.dump(model, path, compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    return path


class _Names(list):
    """A growing member list whose membership test is a set lookup."""

    def __init__(self) -> None:
        super().__init__()
        self._set: set[str] = set()

    def add(self, names: Any) -> None:
        for name in names:
            self.append(name)
            self._set.add(name)

    def __contains__(self, name: object) -> bool:
        return name in self._set


class _IndexedZip(zipfile.ZipFile):
    """A ZipFile whose ``namelist()`` grows as members are written, with a set behind its
    ``in``: the same names in the same order as ZipFile's own list."""

    def namelist(self) -> list[str]:
        names = self.__dict__.setdefault("_bench_names", _Names())
        names.add(info.filename for info in self.filelist[len(names) :])
        return names


@contextlib.contextmanager
def _indexed_zip() -> Iterator[bool]:
    """For the ``with`` block, skops's saver opens an :class:`_IndexedZip` (its module's
    ``ZipFile`` name, restored after); yields whether it does. If skops no longer opens its
    zip through that name, nothing changes: a plain, slower save."""
    import skops.io._persist as persist

    if getattr(persist, "ZipFile", None) is not zipfile.ZipFile:
        yield False
        return
    persist.ZipFile = _IndexedZip
    try:
        yield True
    finally:
        persist.ZipFile = zipfile.ZipFile


def load_model(path: Path) -> Any:
    """Load a model written by :func:`save_model`; any type outside the allowlist is refused.

    Sizes, depth and array headers are checked from the zip's directory first
    (:func:`bench.trust.check_archive`); the file's types are then listed from its schema
    without constructing anything, so a refused file runs nothing; the built model must be a
    fitted classifier whose trees index only their own nodes and features
    (:func:`bench.trust.check_loaded`). Every refusal and every failure to build is one line.
    """
    import skops.io as sio

    from bench import trust
    from bench.errors import BenchError

    found = check_model_file(path)
    try:
        model = sio.load(path, trusted=sorted(found))
    except Exception as exc:  # a library's own error on bad content: one line, never a trace
        raise BenchError(f"{path}: cannot build the model ({_first_line(exc)})") from None
    trust.check_loaded(model, path)
    return model


def check_model_file(path: Path) -> set[str]:
    """The file's types, once its sizes and depth are within bounds and every type is on the
    allowlist; nothing in it is built."""
    import skops.io as sio

    from bench import trust
    from bench.errors import BenchError

    trust.check_archive(path)
    try:
        found = set(sio.get_untrusted_types(file=path))
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, RecursionError) as exc:
        raise BenchError(f"{path}: not a skops model file ({_first_line(exc)})") from None
    refused = sorted(found - TRUSTED_TYPES)
    if refused:
        raise BenchError(
            f"{path}: refusing to load untrusted type(s) {', '.join(refused)} "
            "(bench loads only the types its registered models produce)"
        )
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def write_card(path: Path, **facts: Any) -> Path:
    """What ``bench predict`` needs to use a logged model: classes, input kind, feature columns."""
    import json

    path.write_text(json.dumps(facts, indent=2, default=str))
    return path


def read_card(path: Path) -> dict[str, Any]:
    """A model card, refused in one line unless it has the keys and types bench writes."""
    import json

    from bench.errors import BenchError

    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BenchError(f"{path}: not a readable model card ({_first_line(exc)})") from None
    if not isinstance(card, dict):
        raise BenchError(f"{path}: not a model card (a JSON object was expected)")
    for key, kind in _CARD_KEYS.items():
        value = card.get(key)
        ok = isinstance(value, kind) and (
            not isinstance(value, list) or all(isinstance(v, str) for v in value)
        )
        if not ok:
            raise BenchError(f"{path}: model card key {key!r} is missing or not a {kind.__name__}")
    if card["input_kind"] not in INPUT_KINDS:
        raise BenchError(f"{path}: model card input_kind {card['input_kind']!r} is not one of "
                         f"{', '.join(INPUT_KINDS)}")  # fmt: skip
    return card


INPUT_KINDS = ("tabular", "audio", "multimodal")
_CARD_KEYS = {"model": str, "classes": list, "input_kind": str, "feature_columns": list}


def write_predictions(
    path: Path, ids: pd.Index, y_true: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]
) -> Path:
    table = pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes], index=ids)
    table.insert(0, "predicted", np.asarray(classes)[proba.argmax(axis=1)])
    table.insert(0, "truth", np.asarray(classes)[y_true])
    table.to_csv(path, float_format="%.6g")
    return path


def write_confusion_png(
    path: Path, y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...], title: str
) -> Path:
    from sklearn.metrics import confusion_matrix

    from bench.plots import confusion_png

    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)))
    return confusion_png(path, [matrix], classes, [title])
