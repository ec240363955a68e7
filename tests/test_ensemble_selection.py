"""`ensemble` (greedy selection over k-fold bagged members) and bagged members: fit counts,
weights, out-of-fold guarantees, and no test row seen while fitting."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

from bench.data.splits import Fold
from bench.evaluate import score_fold
from bench.models.stacking import BaggedMember, EnsembleSelection, GreedyEnsemble, _score
from bench.registry import create, get


class Counted(ClassifierMixin, BaseEstimator):
    """A logistic regression on columns 1: that records the ids (column 0) of every row it is
    fitted on or asked about, per name."""

    seen: ClassVar[dict[str, list[tuple[str, set[int]]]]] = {}

    def __init__(self, name: str = "m", C: float = 1.0) -> None:
        self.name = name
        self.C = C

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        Counted.seen.setdefault(self.name, []).append(("fit", set(X[:, 0].astype(int))))
        self.model_ = LogisticRegression(C=self.C, max_iter=1000).fit(X[:, 1:], y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        X = np.asarray(X, dtype=float)
        Counted.seen.setdefault(self.name, []).append(("predict", set(X[:, 0].astype(int))))
        return self.model_.predict_proba(X[:, 1:])


@pytest.fixture(scope="module")
def learnable() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=360, n_features=12, n_informative=6, n_classes=4, random_state=0
    )
    return np.column_stack([np.arange(len(X)), X]), y  # column 0: the row's id


@pytest.mark.parametrize("k", [3, 5])
def test_a_bagged_member_is_fitted_exactly_k_times_and_holds_each_row_out_once(
    learnable, k: int
) -> None:
    X, y = learnable
    Counted.seen.clear()
    bagged = BaggedMember(Counted("m"), k=k).fit(X, y)
    fits = [rows for kind, rows in Counted.seen["m"] if kind == "fit"]
    held = [rows for kind, rows in Counted.seen["m"] if kind == "predict"]
    assert len(fits) == len(bagged.estimators_) == k
    # each fit leaves out exactly the rows it then predicts, and every row is held out once
    everyone = set(range(len(y)))
    assert all(f == everyone - h for f, h in zip(fits, held, strict=True))
    assert sorted(r for h in held for r in h) == sorted(everyone)
    np.testing.assert_allclose(bagged.oof_proba_.sum(axis=1), 1.0)
    # it predicts the mean of its k models, and refits nothing to do so
    Counted.seen.clear()
    expected = np.mean([m.predict_proba(X[:5]) for m in bagged.estimators_], axis=0)
    np.testing.assert_allclose(bagged.predict_proba(X[:5]), expected)
    assert all(kind == "predict" for kind, _ in Counted.seen["m"])


def test_every_member_of_the_ensemble_is_fitted_k_times_and_its_out_of_fold_rows_reused(
    learnable,
) -> None:
    X, y = learnable
    Counted.seen.clear()
    members = [("a", Counted("a", C=1.0)), ("b", Counted("b", C=0.01))]
    layer2 = [("c", Counted("c"))]
    model = EnsembleSelection(members, k=4, second_layer=layer2).fit(X, y)
    for name in ("a", "b", "c"):  # the second layer too: fitted k times, never again
        assert sum(kind == "fit" for kind, _ in Counted.seen[name]) == 4
    assert set(model.layer_scores_) == {"layer 1", "layers 1+2"}
    uses_two = model.layer_scores_["layers 1+2"] < model.layer_scores_["layer 1"]
    assert bool(model.layer2_) == uses_two
    assert model.oof_proba_.shape[1] == 3 if uses_two else 2


@pytest.mark.parametrize("metric", ["log_loss", "accuracy"])
@pytest.mark.parametrize("bags", [0, 20])
def test_weights_sum_to_one_and_never_lose_to_the_best_member_on_their_own_rows(
    metric: str, bags: int
) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 400)
    members = []
    for noise in (1.0, 1.2, 1.0, 3.0, 2.5):  # alike members with independent errors, poor ones
        logits = np.eye(5)[y] * 1.5 + rng.normal(0, noise, (400, 5))
        members.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    P = np.stack(members, axis=1)
    greedy = GreedyEnsemble(metric=metric, bags=bags).fit(P, y)
    assert greedy.weights_.sum() == pytest.approx(1.0) and (greedy.weights_ >= 0).all()
    best_member = min(_score(P[:, m], y, metric) for m in range(P.shape[1]))
    assert _score(greedy.predict_proba(P), y, metric) <= best_member
    assert (greedy.weights_[:3] > 0).sum() >= 2  # it combines members whose errors differ
    if metric == "log_loss":  # strictly better than any one: the errors are independent
        assert _score(greedy.predict_proba(P), y, metric) < best_member - 0.02


def test_the_ensemble_never_scores_worse_on_its_out_of_fold_rows_than_its_best_member(
    learnable,
) -> None:
    X, y = learnable
    members = [
        ("lr", LogisticRegression(max_iter=1000)),
        ("nb", GaussianNB()),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ]
    model = EnsembleSelection(members, k=5).fit(X[:, 1:], y)
    own = _score(model.meta_.predict_proba(model.oof_proba_), y, "log_loss")
    assert own <= min(_score(m.oof_proba_, y, "log_loss") for m in model.members_)
    assert sum(model.weights_.values()) == pytest.approx(1.0)
    assert set(model.weights_) == {"lr", "nb", "tree"}


@pytest.mark.slow
def test_no_test_row_is_read_while_the_ensemble_is_fitted(learnable) -> None:
    """Through the runner's scoring path: every fit of every member (both layers) sees
    training rows only; test rows are only predicted, after fitting."""
    from tests.test_stacking import _toy

    X, y = learnable
    dataset = _toy(X, y)
    order = np.random.default_rng(0).permutation(len(y))
    fold = Fold("fold0", np.sort(order[:240]), np.sort(order[240:]))
    test = set(fold.test.tolist())
    Counted.seen.clear()
    members = [("a", Counted("a")), ("b", Counted("b", C=0.05))]
    model = EnsembleSelection(members, k=3, second_layer=[("c", Counted("c"))])
    score = score_fold(model, dataset, dataset.features.to_numpy(), fold)
    for name in ("a", "b", "c"):  # c, the second layer, sees the ids too (first columns)
        calls = Counted.seen[name]
        last_fit = max(i for i, (kind, _) in enumerate(calls) if kind == "fit")
        assert all(not rows & test for _, rows in calls[: last_fit + 1])
        asked = [rows for kind, rows in calls[last_fit + 1 :] if rows & test]
        if name != "c" or model.layer2_:  # each of the k models predicts the test side
            assert asked == [test] * 3
    assert score.metrics["accuracy"] > 0.4  # 4 classes: chance is 0.25


def test_the_registered_ensemble_learns_and_checks_its_members() -> None:
    from bench.errors import BenchError

    X, y = make_classification(
        n_samples=300, n_features=10, n_informative=6, n_classes=3, random_state=2
    )
    params = {
        "estimators": ["logreg", "lightgbm"],
        "estimator_params": {"lightgbm": {"n_estimators": 40}},
        "k": 3,
        "second_layer": [],
    }
    get("ensemble").check(params)
    model = create("ensemble", **get("ensemble").complete(params, 0, "cpu"))
    model.fit(X[:200], y[:200])
    assert (model.predict(X[200:]) == y[200:]).mean() > 0.6  # 3 classes: chance is 1/3
    with pytest.raises(BenchError, match="no_such_model"):
        get("ensemble").check({"estimators": ["logreg", "no_such_model"]})
    with pytest.raises(BenchError, match="metric"):
        create("ensemble", metric="auc")


def test_a_bagged_forest_shares_its_trees_between_its_k_fits() -> None:
    """`rf` with 10 trees bagged 3 times: 4 trees a fit, 12 in all; other members keep their
    own parameters."""
    X, y = make_classification(
        n_samples=150, n_features=8, n_informative=5, n_classes=3, random_state=3
    )
    params = {
        "estimators": ["rf", "extra_trees", "logreg"],
        "estimator_params": {"rf": {"n_estimators": 10}, "extra_trees": {"n_estimators": 9}},
        "k": 3,
        "second_layer": [],
    }
    model = create("ensemble", **get("ensemble").complete(params, 0, "cpu")).fit(X, y)
    rf, extra, logreg = model.members_
    assert [len(f.estimators_) for f in rf.estimators_] == [4, 4, 4]
    assert [len(f.estimators_) for f in extra.estimators_] == [3, 3, 3]
    assert len(logreg.estimators_) == 3 and not hasattr(logreg.estimators_[0], "n_estimators")
