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


def _score(proba: np.ndarray, y: np.ndarray, metric: str) -> float:
    """Lower is better: log loss, or the error rate with log loss breaking ties (accuracy
    alone is flat over most of the weights, so the selection would wander)."""
    loss = _log_loss(proba, y)
    if metric == "log_loss":
        return loss
    return float(np.mean(proba.argmax(axis=1) != y)) + 1e-6 * loss


def _select(P: np.ndarray, y: np.ndarray, members: np.ndarray, rounds: int, metric: str):
    """Greedy selection with replacement among ``members`` (Caruana et al. 2004), from the best
    one alone (sorted initialisation), keeping the best round: member counts and their score."""
    scores = [_score(P[:, m], y, metric) for m in members]
    first = int(members[int(np.argmin(scores))])
    counts = np.zeros(P.shape[1])
    counts[first] = 1
    best_counts, best = counts.copy(), min(scores)
    total = P[:, first].copy()
    for _ in range(rounds):
        size = counts.sum()
        trials = [_score((total + P[:, m]) / (size + 1), y, metric) for m in members]
        pick = int(members[int(np.argmin(trials))])
        counts[pick] += 1
        total += P[:, pick]
        if min(trials) < best - 1e-12:
            best_counts, best = counts.copy(), min(trials)
    return best_counts, best


class GreedyEnsemble(ClassifierMixin, BaseEstimator):
    """Weights over members from greedy selection with replacement on their probabilities.

    Input: ``(rows, members, classes)`` probabilities, labels ``0..classes-1``. ``metric``:
    ``log_loss`` or ``accuracy``. ``bags`` > 0: bagged selection (Caruana et al. 2006): each
    bag selects among a random ``fraction`` of the members and the bags' weights are averaged,
    which overfits the selection rows less. Those averaged weights are kept only while they
    score no worse on the rows than the best member alone; otherwise the plain selection's
    are. Either way the result never scores worse on the rows it was fitted on than its best
    member.
    """

    def __init__(
        self,
        rounds: int = 40,
        metric: str = "log_loss",
        bags: int = 0,
        fraction: float = 0.5,
        random_state: int | None = 0,
    ) -> None:
        self.rounds = rounds
        self.metric = metric
        self.bags = bags
        self.fraction = fraction
        self.random_state = random_state

    def fit(self, P: np.ndarray, y: np.ndarray) -> GreedyEnsemble:
        if self.metric not in ("log_loss", "accuracy"):
            raise ValueError(f"metric must be log_loss or accuracy, not {self.metric!r}")
        n_members = P.shape[1]
        everyone = np.arange(n_members)
        counts, _ = _select(P, y, everyone, self.rounds, self.metric)
        weights = counts / counts.sum()
        single = min(_score(P[:, m], y, self.metric) for m in everyone)
        if self.bags > 0 and n_members > 2:
            rng = np.random.default_rng(self.random_state)
            size = max(2, round(self.fraction * n_members))
            bagged = np.zeros(n_members)
            for _ in range(self.bags):
                chosen = np.sort(rng.choice(n_members, size, replace=False))
                c, _ = _select(P, y, chosen, self.rounds, self.metric)
                bagged += c / c.sum()
            bagged /= self.bags
            if _score(np.tensordot(P, bagged, axes=([1], [0])), y, self.metric) <= single:
                weights = bagged
        self.weights_ = weights
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


def _aligned(model: Any, X: Any, n_classes: int) -> np.ndarray:
    """A model fitted on labels ``0..n_classes-1`` (some maybe missing from its rows): its
    probabilities with a column per class, 0 for the classes it never saw."""
    out = np.zeros((len(X), n_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(X)
    return out


def _folds(
    codes: np.ndarray, groups: np.ndarray | None, k: int, random_state: int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` stratified folds over the rows, each group (artist) on one side when ``groups``
    are given and there are at least ``k`` of them."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    with warnings.catch_warnings():  # a class with fewer rows than folds: fine here
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        if groups is not None and len(np.unique(groups)) >= k:
            folds = StratifiedGroupKFold(k, shuffle=True, random_state=random_state)
            return list(folds.split(np.zeros(len(codes)), codes, groups))
        folds = StratifiedKFold(k, shuffle=True, random_state=random_state)
        return list(folds.split(np.zeros(len(codes)), codes))


def _inner_score(
    meta: Any,
    P: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    folds: int,
    random_state: int | None,
    metric: str = "log_loss",
) -> float:
    """A combiner's mean held-out score over folds of the out-of-fold rows ``P``: what it
    would score on rows it was not fitted on (lower is better)."""
    smallest = int(np.bincount(y).min())
    if smallest < 2:  # a class seen once: no fold can hold it out
        return _score(clone(meta).fit(P, y).predict_proba(P), y, metric)
    parts = _folds(y, groups, max(2, min(folds, smallest)), random_state)
    scores = [
        _score(clone(meta).fit(P[a], y[a]).predict_proba(P[b]), y[b], metric) for a, b in parts
    ]
    return float(np.mean(scores))


class BaggedMember(ClassifierMixin, BaseEstimator):
    """An estimator fitted ``k`` times, once on each fold's training side (AutoGluon's bagged
    models): its out-of-fold probabilities (``oof_proba_``) come free with the fit, and it
    predicts the mean of the ``k`` models. No model is refitted on all the rows.

    Labels must be ``0..classes-1``. ``groups`` keeps each artist on one side of every fold.
    """

    def __init__(self, estimator: Any, k: int = 5, random_state: int | None = 0) -> None:
        self.estimator = estimator
        self.k = k
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None) -> BaggedMember:
        codes = np.asarray(y, dtype=int)
        self.classes_ = np.arange(codes.max() + 1)
        groups = None if groups is None else np.asarray(groups)
        oof = np.zeros((len(codes), len(self.classes_)))
        self.estimators_ = []
        for train, test in _folds(codes, groups, self.k, self.random_state):
            fitted = clone(self.estimator).fit(_rows(X, train), codes[train])
            oof[test] = _aligned(fitted, _rows(X, test), len(self.classes_))
            self.estimators_.append(fitted)
        self.oof_proba_ = oof
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        n = len(self.classes_)
        return np.mean([_aligned(e, X, n) for e in self.estimators_], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


class SelectedStack(ClassifierMixin, BaseEstimator):
    """Members fitted on the rows given, their out-of-fold probabilities computed once, the
    meta-learner chosen on those by inner validation (see the module docstring).

    ``estimators``: ``(name, estimator)`` pairs. ``cv``: inner folds for the out-of-fold
    probabilities. ``blend``: instead, the share of rows held out once ("blending"): each
    member is fitted twice, and the meta-learners see only that slice. ``bag`` = k >= 2:
    instead, each member is a :class:`BaggedMember`, fitted k times on the same k folds and
    never on every row; its out-of-fold probabilities come with those fits and it predicts
    the mean of its k models (``cv`` and ``blend`` are then unused). ``meta_cv``: folds over
    the out-of-fold rows that score the candidate meta-learners.
    """

    def __init__(
        self,
        estimators: list[tuple[str, Any]],
        cv: int = 5,
        blend: float = 0.0,
        bag: int = 0,
        meta_cv: int = 5,
        random_state: int | None = 0,
    ) -> None:
        self.estimators = estimators
        self.cv = cv
        self.blend = blend
        self.bag = bag
        self.meta_cv = meta_cv
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None) -> SelectedStack:
        """``groups`` (an artist per row): inner folds keep each group on one side, as the
        outer artist-grouped folds do, so no member's out-of-fold probabilities profit from
        an artist it was trained on."""
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        n = len(codes)
        groups = None if groups is None else np.asarray(groups)
        if self.bag:
            if self.bag < 2:
                raise ValueError(f"bag must be 0 or at least 2 folds, not {self.bag}")
            self.members_ = [
                BaggedMember(e, self.bag, self.random_state).fit(X, codes, groups)
                for _, e in self.estimators
            ]
            oof = np.stack([m.oof_proba_ for m in self.members_], axis=1)
            held = np.arange(n)
        else:
            splits = self._splits(codes, groups)
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
            name: _inner_score(meta, P, target, inner_groups, self.meta_cv, self.random_state)
            for name, meta in candidates.items()
        }
        self.meta_name_ = min(self.meta_scores_, key=self.meta_scores_.get)
        self.metas_ = {name: meta.fit(P, target) for name, meta in candidates.items()}
        return self

    def _splits(
        self, codes: np.ndarray, groups: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The inner folds, or with ``blend`` the one held-out slice."""
        from sklearn.model_selection import StratifiedShuffleSplit

        n = len(codes)
        if self.blend > 0 and groups is None:
            split = StratifiedShuffleSplit(1, test_size=self.blend, random_state=self.random_state)
            return list(split.split(np.zeros(n), codes))
        # k-fold; blending with groups holds out one fold of round(1 / blend)
        k = self.cv if self.blend <= 0 else max(2, round(1 / self.blend))
        return _folds(codes, groups, k, self.random_state)[: 1 if self.blend > 0 else k]

    def _aligned(self, model: Any, X: Any) -> np.ndarray:
        return _aligned(model, X, len(self.classes_))

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


class EnsembleSelection(ClassifierMixin, BaseEstimator):
    """Bagged members combined over their out-of-fold probabilities (AutoGluon's
    ``WeightedEnsemble`` over ``_BAG_L1`` models, and optionally a second layer).

    Each of ``estimators`` (``(name, estimator)`` pairs) is a :class:`BaggedMember`, fitted
    ``k`` times on the same ``k`` folds; the combiner is fitted once on their out-of-fold
    probabilities, which are never recomputed:

    - ``combiner="greedy"``: greedy ensemble selection with replacement (sorted initialisation,
      ``bags`` bagged selections, :class:`GreedyEnsemble`) optimising ``metric``;
    - ``combiner="logit"``: a logistic regression (``C``) on their log-probabilities.

    ``second_layer``: ``(name, estimator)`` pairs fitted, bagged on the same folds, on the
    original features beside the first layer's out-of-fold log-probabilities. They join the
    combiner's candidates only when inner validation (``meta_cv`` folds over the out-of-fold
    rows) scores the combiner better with them than without (``layer_scores_``).
    """

    def __init__(
        self,
        estimators: list[tuple[str, Any]],
        k: int = 5,
        combiner: str = "greedy",
        metric: str = "log_loss",
        bags: int = 20,
        C: float = 1.0,
        second_layer: list[tuple[str, Any]] | tuple = (),
        meta_cv: int = 5,
        random_state: int | None = 0,
    ) -> None:
        self.estimators = estimators
        self.k = k
        self.combiner = combiner
        self.metric = metric
        self.bags = bags
        self.C = C
        self.second_layer = second_layer
        self.meta_cv = meta_cv
        self.random_state = random_state

    def _combiner(self) -> Any:
        if self.combiner == "greedy":
            return GreedyEnsemble(
                metric=self.metric, bags=self.bags, random_state=self.random_state
            )
        if self.combiner == "logit":
            return LogitMeta(C=self.C)
        raise ValueError(f"combiner must be greedy or logit, not {self.combiner!r}")

    def fit(self, X: Any, y: Any, groups: Any = None) -> EnsembleSelection:
        """``groups`` (an artist per row): every bag's folds keep each artist on one side."""
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        groups = None if groups is None else np.asarray(groups)
        self.members_ = [
            BaggedMember(e, self.k, self.random_state).fit(X, codes, groups)
            for _, e in self.estimators
        ]
        P = np.stack([m.oof_proba_ for m in self.members_], axis=1)
        self.layer2_: list[BaggedMember] = []
        self.layer_scores_: dict[str, float] = {}
        if self.second_layer:
            X2 = self._layer2_input(X, P)
            layer2 = [
                BaggedMember(e, self.k, self.random_state).fit(X2, codes, groups)
                for _, e in self.second_layer
            ]
            both = np.concatenate([P, np.stack([m.oof_proba_ for m in layer2], axis=1)], axis=1)
            for name, candidate in (("layer 1", P), ("layers 1+2", both)):
                combiner, seed = self._combiner(), self.random_state
                self.layer_scores_[name] = _inner_score(
                    combiner, candidate, codes, groups, self.meta_cv, seed, self.metric
                )
            if self.layer_scores_["layers 1+2"] < self.layer_scores_["layer 1"]:
                self.layer2_, P = layer2, both
        self.oof_proba_ = P
        """The combiner's inputs: each used member's out-of-fold probabilities."""
        self.meta_ = self._combiner().fit(P, codes)
        return self

    @staticmethod
    def _layer2_input(X: Any, P: np.ndarray) -> np.ndarray:
        logs = np.log(np.clip(P, _EPS, 1.0)).reshape(len(P), -1)
        return np.hstack([np.asarray(X, dtype=np.float64), logs])

    def predict_proba(self, X: Any) -> np.ndarray:
        weights = getattr(self.meta_, "weights_", None)
        n = len(self.classes_)
        needed = self.layer2_ or weights is None
        P = np.stack(
            [
                m.predict_proba(X) if needed or weights[i] > 0 else np.zeros((len(X), n))
                for i, m in enumerate(self.members_)
            ],
            axis=1,
        )
        if self.layer2_:
            X2 = self._layer2_input(X, P)
            P = np.concatenate(
                [P, np.stack([m.predict_proba(X2) for m in self.layer2_], axis=1)], axis=1
            )
        return self.meta_.predict_proba(P)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    @property
    def weights_(self) -> dict[str, float]:
        """Each member's weight in the greedy combination (second-layer members as ``L2 name``);
        empty for the logistic combiner, whose coefficients are not weights."""
        weights = getattr(self.meta_, "weights_", None)
        if weights is None:
            return {}
        names = [n for n, _ in self.estimators] + [f"L2 {n}" for n, _ in self.layer2_names()]
        return {name: float(w) for name, w in zip(names, weights, strict=True)}

    def layer2_names(self) -> list[tuple[str, Any]]:
        """The second-layer members in use (none when inner validation kept one layer)."""
        return list(self.second_layer) if self.layer2_ else []
