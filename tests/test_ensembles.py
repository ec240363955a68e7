"""Bagging, boosting and stacking: built from the registry, learn, and survive skops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

from bench.artifacts import load_model, save_model
from bench.errors import BenchError
from bench.registry import create, get


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=400, n_features=12, n_informative=8, n_classes=5, random_state=0
    )
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("extra_trees", {"n_estimators": 100}),
        ("bagging", {"n_estimators": 30}),
        ("bagging", {"base": "logreg", "n_estimators": 5}),
        ("hist_gb", {"max_iter": 100}),
        ("xgboost", {"n_estimators": 100}),
        ("lightgbm", {"n_estimators": 60}),
        ("catboost", {"iterations": 60}),
        (
            "ensemble",
            {"estimators": ["logreg", "lightgbm"], "k": 3, "second_layer": ["logreg"]},
        ),
        ("stack", {"estimators": ["logreg", "svm"], "bag": 3}),
        (
            "stack",
            {"estimators": ["logreg", "rf"], "estimator_params": {"rf": {"n_estimators": 50}}},
        ),
    ],
)
@pytest.mark.slow
def test_ensembles_learn_and_round_trip(data, tmp_path: Path, name: str, params: dict) -> None:
    X_train, X_test, y_train, y_test = data
    model = create(name, **params).fit(X_train, y_train)
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (model.predict(X_test) == y_test).mean() > 0.5  # five classes: chance is 0.2
    loaded = load_model(save_model(model, tmp_path / "m.skops"))
    np.testing.assert_allclose(loaded.predict_proba(X_test), proba, rtol=1e-6)
    assert clone(model).get_params().keys() == model.get_params().keys()


@pytest.mark.slow
def test_xgboost_early_stopping_picks_rounds_and_takes_string_labels(data) -> None:
    X_train, X_test, y_train, y_test = data
    names = np.array(list("abcde"))
    model = create("xgboost", n_estimators=2000, learning_rate=0.3, early_stopping_rounds=20)
    model.fit(X_train, names[y_train])
    assert 1 <= model.best_n_estimators_ < 2000
    assert model.model_.n_estimators == model.best_n_estimators_
    assert list(model.classes_) == list("abcde")
    assert (model.predict(X_test) == names[y_test]).mean() > 0.5


def test_stack_is_out_of_fold_over_registered_members(data) -> None:
    X_train, _, y_train, _ = data
    model = create("stack", estimators=["logreg", "svm"], cv=3).fit(X_train, y_train)
    assert [n for n, _ in model.estimators] == ["logreg", "svm"]
    assert model.final_estimator_.coef_.shape == (5, 10)  # two members x five class probabilities


def test_bagging_rejects_non_tabular_or_unknown_base() -> None:
    with pytest.raises(BenchError, match="unknown model 'nope'"):
        create("bagging", base="nope")
    with pytest.raises(BenchError, match="bagging needs a tabular base model; 'cnn' takes audio"):
        create("bagging", base="cnn")


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.skops"
    sio.dump({"f": Path("x")}, path)
    with pytest.raises(BenchError, match=r"refusing to load untrusted type\(s\) pathlib.PosixPath"):
        load_model(path)


def test_every_family_is_registered() -> None:
    families = {
        get(n).family for n in ("rf", "extra_trees", "bagging", "hist_gb", "xgboost", "stack")
    }
    assert families == {"bagging", "boosting", "stacking"}


def test_lightgbm_xt_is_lightgbm_with_random_splits() -> None:
    model = create("lightgbm_xt", n_estimators=7)
    assert type(model).__name__ == "LightGBMClassifier"
    assert model.get_params()["extra_trees"] is True and model.n_estimators == 7
    assert create("lightgbm").get_params()["extra_trees"] is False


def test_the_multimodal_stack_bags_by_default_and_refuses_inner_cv_beside_a_bag() -> None:
    stack = create("stack_multimodal", tabular=["logreg"], audio=[])
    assert (stack.bag, stack.blend) == (3, 0.0)  # the measured default
    assert create("stack_multimodal", tabular=["logreg"], audio=[], bag=0, cv=4).cv == 4
    for params in ({"cv": 3}, {"blend": 0.25}):
        with pytest.raises(BenchError, match="cv and blend apply only with bag = 0"):
            create("stack_multimodal", tabular=["logreg"], audio=[], **params)
