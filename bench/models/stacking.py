"""A stack whose members' out-of-fold probabilities are computed once and whose meta-learner is
chosen on them, by inner validation: the multimodal stack (a CNN on audio beside tabular models
on features of the same tracks).

Why not scikit-learn's ``StackingClassifier``: it fixes one meta-learner, and choosing another
would compute the members' out-of-fold probabilities again, which for a CNN is the whole cost.
Here each member is fitted ``cv + 1`` times per call of :meth:`SelectedStack.fit` (``cv`` inner
folds, then once on every row), or twice with ``blend`` (a held-out slice, then every row);
every candidate meta-learner is then scored on the same out-of-fold probabilities:

- ``greedy``: ensemble selection with replacement (Caruana et al. 2004), started from the best
  member (the sorted initialisation of Caruana et al. 2006), keeping the best round, so on the
  data it is chosen on it never scores worse than its best member;
- ``logit``: a regularised logistic regression on the members' log-probabilities, one per
  ``C`` in :data:`LOGIT_C`.

The candidate with the lowest inner-validation log loss predicts; every candidate is kept
fitted (``metas_``), so what was chosen over what can be read back.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

LOGIT_C = (0.03, 0.3, 3.0)
_EPS = 1e-6


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], _EPS, 1.0))))


class GreedyEnsemble(ClassifierMixin, BaseEstimator):
    """Weights over members from greedy selection with replacement on their probabilities.

    Input: ``(rows, members, classes)`` probabilities, labels ``0..classes-1``.
    """

    def __init__(self, rounds: int = 40) -> None:
        self.rounds = rounds

    def fit(self, P: np.ndarray, y: np.ndarray) -> GreedyEnsemble:
        n_members = P.shape[1]
        losses = [_log_loss(P[:, m], y) for m in range(n_members)]
        counts = np.zeros(n_members)
        counts[int(np.argmin(losses))] = 1  # sorted initialisation: the best member
        best_counts, best_loss = counts.copy(), min(losses)
        total = P[:, int(np.argmin(losses))].copy()
        for _ in range(self.rounds):
            size = counts.sum()
            trials = [(total + P[:, m]) / (size + 1) for m in range(n_members)]
            scores = [_log_loss(t, y) for t in trials]
            pick = int(np.argmin(scores))
            counts[pick] += 1
            total += P[:, pick]
            if scores[pick] < best_loss - 1e-12:
                best_counts, best_loss = counts.copy(), scores[pick]
        self.weights_ = best_counts / best_counts.sum()
        self.classes_ = np.arange(P.shape[2])
        return self

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        return np.tensordot(P, self.weights_, axes=([1], [0]))

    def predict(self, P: np.ndarray) -> np.ndarray:
        return self.predict_proba(P).argmax(axis=1)


class LogitMeta(ClassifierMixin, BaseEstimator):
    """A regularised logistic regression on the members' log-probabilities."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, P: np.ndarray, y: np.ndarray) -> LogitMeta:
        from sklearn.linear_model import LogisticRegression

        self.model_ = LogisticRegression(C=self.C, max_iter=3000).fit(self._x(P), y)
        self.classes_ = np.arange(P.shape[2])
        return self

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        out = np.zeros((len(P), len(self.classes_)))
        out[:, self.model_.classes_] = self.model_.predict_proba(self._x(P))
        return out

    def predict(self, P: np.ndarray) -> np.ndarray:
        return self.predict_proba(P).argmax(axis=1)

    @staticmethod
    def _x(P: np.ndarray) -> np.ndarray:
        return np.log(np.clip(P, _EPS, 1.0)).reshape(len(P), -1)


def _rows(X: Any, index: np.ndarray) -> Any:
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


class SelectedStack(ClassifierMixin, BaseEstimator):
    """Members fitted on the rows given, their out-of-fold probabilities computed once, the
    meta-learner chosen on those by inner validation (see the module docstring).

    ``estimators``: ``(name, estimator)`` pairs. ``cv``: inner folds for the out-of-fold
    probabilities. ``blend``: instead, the share of rows held out once ("blending"): each
    member is fitted twice, and the meta-learners see only that slice. ``meta_cv``: folds over
    the out-of-fold rows that score the candidate meta-learners.
    """

    def __init__(
        self,
        estimators: list[tuple[str, Any]],
        cv: int = 5,
        blend: float = 0.0,
        meta_cv: int = 5,
        random_state: int | None = 0,
    ) -> None:
        self.estimators = estimators
        self.cv = cv
        self.blend = blend
        self.meta_cv = meta_cv
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None) -> SelectedStack:
        """``groups`` (an artist per row): inner folds keep each group on one side, as the
        outer artist-grouped folds do, so no member's out-of-fold probabilities profit from
        an artist it was trained on."""
        from sklearn.model_selection import (
            StratifiedGroupKFold,
            StratifiedKFold,
            StratifiedShuffleSplit,
        )

        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        n = len(codes)
        groups = None if groups is None else np.asarray(groups)
        if groups is not None:
            k = self.cv if self.blend <= 0 else max(2, round(1 / self.blend))
            folds = StratifiedGroupKFold(k, shuffle=True, random_state=self.random_state)
            with warnings.catch_warnings():  # a class with fewer rows than folds: fine here
                warnings.filterwarnings("ignore", "The least populated class", UserWarning)
                splits = list(folds.split(np.zeros(n), codes, groups))
            splits = splits[:1] if self.blend > 0 else splits
        elif self.blend > 0:
            split = StratifiedShuffleSplit(1, test_size=self.blend, random_state=self.random_state)
            splits = list(split.split(np.zeros(n), codes))
        else:
            folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
            splits = list(folds.split(np.zeros(n), codes))
        held = np.concatenate([test for _, test in splits])
        oof = np.zeros((n, len(self.estimators), len(self.classes_)))
        for m, (_, estimator) in enumerate(self.estimators):
            for train, test in splits:
                fitted = clone(estimator).fit(_rows(X, train), codes[train])
                oof[test, m] = self._aligned(fitted, _rows(X, test))
        self.members_ = [clone(e).fit(X, codes) for _, e in self.estimators]
        P, target = oof[held], codes[held]
        self.oof_rows_ = np.sort(held)
        """Row positions (of the rows fit was given) the meta-learners were chosen and fitted on."""
        candidates: dict[str, Any] = {"greedy": GreedyEnsemble()}
        candidates.update({f"logit C={c:g}": LogitMeta(C=c) for c in LOGIT_C})
        inner_groups = None if groups is None else groups[held]
        self.meta_scores_ = {
            name: self._inner_loss(meta, P, target, inner_groups)
            for name, meta in candidates.items()
        }
        self.meta_name_ = min(self.meta_scores_, key=self.meta_scores_.get)
        self.metas_ = {name: meta.fit(P, target) for name, meta in candidates.items()}
        return self

    def _inner_loss(
        self, meta: Any, P: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
    ) -> float:
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        smallest = int(np.bincount(y).min())
        k = max(2, min(self.meta_cv, smallest))
        if smallest < 2:  # a class seen once: no fold can hold it out
            return _log_loss(clone(meta).fit(P, y).predict_proba(P), y)
        if groups is not None and len(np.unique(groups)) >= k:
            folds = StratifiedGroupKFold(k, shuffle=True, random_state=self.random_state)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "The least populated class", UserWarning)
                parts = list(folds.split(P, y, groups))
        else:
            parts = StratifiedKFold(k, shuffle=True, random_state=self.random_state).split(P, y)
        losses = [
            _log_loss(clone(meta).fit(P[a], y[a]).predict_proba(P[b]), y[b]) for a, b in parts
        ]
        return float(np.mean(losses))

    def _aligned(self, model: Any, X: Any) -> np.ndarray:
        """A member's probabilities in this stack's class order (classes a fold lacked: 0)."""
        out = np.zeros((len(X), len(self.classes_)))
        out[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(X)
        return out

    def _member_probas(self, X: Any) -> np.ndarray:
        return np.stack([self._aligned(m, X) for m in self.members_], axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.metas_[self.meta_name_].predict_proba(self._member_probas(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    @property
    def weights_(self) -> dict[str, float]:
        """The greedy candidate's weight per member (whichever candidate was chosen)."""
        weights = self.metas_["greedy"].weights_
        return {name: float(w) for (name, _), w in zip(self.estimators, weights, strict=True)}
