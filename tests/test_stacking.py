"""SelectedStack (the multimodal stack): members' out-of-fold probabilities computed once, the
meta-learner chosen on them, nothing of the test side seen while fitting."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

from bench.data.dataset import Dataset
from bench.data.splits import Fold
from bench.evaluate import score_fold
from bench.models.stacking import GreedyEnsemble, SelectedStack, _log_loss


class Spy(ClassifierMixin, BaseEstimator):
    """Logistic regression that records the ids (column 0) of every row it is fitted on or
    asked about, per instance name."""

    seen: ClassVar[dict[str, list[tuple[str, np.ndarray]]]] = {}

    def __init__(self, name: str = "spy") -> None:
        self.name = name

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        Spy.seen.setdefault(self.name, []).append(("fit", X[:, 0].astype(int)))
        self.model_ = LogisticRegression(max_iter=1000).fit(X[:, 1:], y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        X = np.asarray(X, dtype=float)
        Spy.seen.setdefault(self.name, []).append(("predict", X[:, 0].astype(int)))
        return self.model_.predict_proba(X[:, 1:])


@pytest.fixture
def learnable() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=300, n_features=12, n_informative=6, n_classes=4, random_state=0
    )
    return np.column_stack([np.arange(len(X)), X]), y  # column 0: the row's id


def _toy(X: np.ndarray, y: np.ndarray) -> Dataset:
    """``learnable`` as a Dataset, so folds go through the runner's own ``score_fold``."""
    frame = pd.DataFrame(X, columns=["row", *(f"f{i}" for i in range(X.shape[1] - 1))])
    return Dataset(
        name="toy",
        root=Path("toy"),
        features=frame,
        labels=y,
        classes=tuple("abcd"),
        tracks=np.array([f"t{i}" for i in range(len(y))]),
        fingerprint="toy",
    )


@pytest.mark.parametrize(("cv", "blend", "fits"), [(3, 0.0, 4), (5, 0.0, 6), (5, 0.25, 2)])
def test_each_member_is_fitted_cv_plus_one_times_or_twice_when_blending(
    learnable, cv: int, blend: float, fits: int
) -> None:
    X, y = learnable
    Spy.seen.clear()
    members = [("a", Spy("a")), ("b", Spy("b"))]
    stack = SelectedStack(members, cv=cv, blend=blend).fit(X, y)
    for name in ("a", "b"):
        assert sum(kind == "fit" for kind, _ in Spy.seen[name]) == fits
    # the out-of-fold probabilities cover every row once (k-fold) or the held-out share
    expected = len(X) if blend == 0 else round(blend * len(X))
    assert len(stack.oof_rows_) == expected == len(set(stack.oof_rows_))
    # every candidate meta-learner was scored on them, and the best one predicts
    assert set(stack.meta_scores_) == {"greedy", "logit C=0.03", "logit C=0.3", "logit C=3"}
    assert stack.meta_name_ == min(stack.meta_scores_, key=stack.meta_scores_.get)


@pytest.mark.parametrize("k", [2, 3])
def test_bagged_members_are_fitted_k_times_and_never_on_every_row(learnable, k: int) -> None:
    X, y = learnable
    Spy.seen.clear()
    stack = SelectedStack([("a", Spy("a")), ("b", Spy("b"))], bag=k).fit(X, y)
    for name in ("a", "b"):
        fits = [ids for kind, ids in Spy.seen[name] if kind == "fit"]
        assert len(fits) == k and all(len(ids) < len(X) for ids in fits)
        held = [ids for kind, ids in Spy.seen[name] if kind == "predict"]
        assert sorted(np.concatenate(held)) == list(range(len(X)))  # each row held out once
    assert len(stack.oof_rows_) == len(X)
    Spy.seen.clear()
    proba = stack.predict_proba(X[:10])
    assert [kind for kind, _ in Spy.seen["a"]] == ["predict"] * k  # the mean of its k models
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="bag must be 0 or at least 2"):
        SelectedStack([("a", Spy("a"))], bag=1).fit(X, y)


@pytest.mark.parametrize("bag", [0, 3])
def test_no_test_row_is_seen_while_the_stack_is_fitted(learnable, bag: int) -> None:
    """Through the runner's own scoring path: members and meta-learner learn from the fold's
    training rows only; test rows are only ever predicted, after fitting."""
    X, y = learnable
    dataset = _toy(X, y)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    fold = Fold("fold0", np.sort(order[:200]), np.sort(order[200:]))
    Spy.seen.clear()
    stack = SelectedStack([("a", Spy("a")), ("b", Spy("b"))], cv=4, bag=bag)
    score = score_fold(stack, dataset, dataset.features.to_numpy(), fold)
    test = set(fold.test.tolist())
    final = 3 if bag else 1  # the test side is predicted by each bagged model
    for name in ("a", "b"):
        calls = Spy.seen[name]
        fitting = calls[:-final]  # everything before the final prediction of the test side
        assert all(kind == "predict" and set(ids.tolist()) == test for kind, ids in calls[-final:])
        assert all(not set(ids.tolist()) & test for _, ids in fitting)
    assert set(fold.train[stack.oof_rows_].tolist()) == set(fold.train.tolist())
    assert score.metrics["accuracy"] > 0.5  # 4 classes: chance is 0.25


def test_greedy_weights_sum_to_one_and_never_lose_to_the_best_member_on_its_data() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 400)
    members = []
    for noise in (1.0, 1.0, 1.0, 3.0):  # three alike with independent errors, one poor
        logits = np.eye(5)[y] * 2 + rng.normal(0, noise, (400, 5))
        members.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    P = np.stack(members, axis=1)
    greedy = GreedyEnsemble().fit(P, y)
    assert greedy.weights_.sum() == pytest.approx(1.0) and (greedy.weights_ >= 0).all()
    best_member = min(_log_loss(P[:, m], y) for m in range(P.shape[1]))
    assert _log_loss(greedy.predict_proba(P), y) <= best_member
    assert (greedy.weights_[:3] > 0).sum() >= 2  # it combines members whose errors differ
    assert greedy.weights_[3] == min(greedy.weights_)  # and trusts the poor one least


def test_the_stack_keeps_up_with_its_best_member_on_learnable_data(learnable) -> None:
    X, y = learnable
    train, test = np.arange(200), np.arange(200, 300)
    members = [
        ("lr", LogisticRegression(max_iter=1000)),
        ("nb", GaussianNB()),
        ("tree", DecisionTreeClassifier(max_depth=4, random_state=0)),
    ]
    stack = SelectedStack(members, cv=5).fit(X[train, 1:], y[train])
    accuracy = (stack.predict(X[test, 1:]) == y[test]).mean()
    best = max((m.predict(X[test, 1:]) == y[test]).mean() for m in stack.members_)
    assert accuracy >= best - 0.03 and accuracy > 0.5
    assert sum(stack.weights_.values()) == pytest.approx(1.0)


def test_with_artist_groups_the_inner_folds_keep_each_artist_on_one_side(learnable) -> None:
    """Through score_fold, as the runner calls it: a fold that knows its rows' artists hands
    them to the stack, whose inner folds then never fit and predict one artist."""
    X, y = learnable
    dataset = _toy(X, y)
    artist = np.arange(len(y)) // 6  # six songs per artist
    fold = Fold("fold0", np.arange(0, 240), np.arange(240, 300), artist.astype(object))
    Spy.seen.clear()
    stack = SelectedStack([("a", Spy("a"))], cv=4)
    score_fold(stack, dataset, dataset.features.to_numpy(), fold)
    calls = Spy.seen["a"]
    inner = calls[:8]  # four inner folds: fit, then predict the held-out rows
    for (fit, fitted), (predict, held) in zip(inner[0::2], inner[1::2], strict=True):
        assert (fit, predict) == ("fit", "predict")
        assert not set(artist[fitted]) & set(artist[held])
    assert sorted(np.concatenate([ids for _, ids in inner[1::2]])) == list(range(240))
