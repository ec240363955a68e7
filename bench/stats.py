"""Statistics a leaderboard needs to say whether a gap between two models is real.

Fold scores of k-fold cross-validation are not independent samples: the training sides overlap,
so a plain paired t-test over folds is far too eager to call a gap significant. The corrected
resampled t-test of Nadeau & Bengio (2003) inflates the variance by the test/train size ratio to
account for that. With one train/test split there are no fold pairs at all; McNemar's exact test
compares the two models item by item on the shared test set. Across several datasets, models
are compared by mean rank (Friedman test, Nemenyi critical difference; Demšar 2006).

>>> round(corrected_resampled_ttest([0.80, 0.82, 0.79], [0.75, 0.78, 0.76], 200, 800), 4)
0.0346
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean over folds; (nan, nan) with one fold."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return (float("nan"), float("nan"))
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return (float(x.mean() - half), float(x.mean() + half))


def corrected_resampled_ttest(
    a: Sequence[float], b: Sequence[float], n_test: float, n_train: float
) -> float:
    """Two-sided p-value that models a and b (paired fold scores) differ, Nadeau & Bengio.

    ``n_test`` / ``n_train``: mean test and training sizes of a fold. With ``n_test = 0`` this
    is the ordinary paired t-test.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    k = len(d)
    if k < 2:
        raise ValueError("the corrected resampled t-test needs at least two paired folds")
    variance = (1 / k + n_test / n_train) * d.var(ddof=1)
    if variance == 0:
        return 1.0 if d.mean() == 0 else 0.0
    t = d.mean() / np.sqrt(variance)
    return float(2 * stats.t.sf(abs(t), k - 1))


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired fold scores (1.0 when all are equal).

    With 5 folds the smallest possible p is 0.0625: the test cannot reject at 0.05 there.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if not np.any(d):
        return 1.0
    return float(stats.wilcoxon(d).pvalue)


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value: are the items only one of two models gets right
    split evenly between them?"""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue)


def pareto_front(scores: Sequence[float], costs: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both score (higher) and cost (lower)."""
    s, c = np.asarray(scores, dtype=float), np.asarray(costs, dtype=float)
    front = []
    for i in range(len(s)):
        dominated = np.any((s >= s[i]) & (c <= c[i]) & ((s > s[i]) | (c < c[i])))
        if not dominated:
            front.append(i)
    return front


@dataclass
class RankSummary:
    """Mean ranks of models over datasets (rank 1 = best), with Friedman and Nemenyi."""

    models: list[str]
    mean_ranks: list[float]
    n_datasets: int
    friedman_p: float
    critical_difference: float


def ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each model (column) within each dataset (row): 1 = highest score, ties averaged."""
    return np.vstack([stats.rankdata(-np.asarray(row, dtype=float)) for row in scores])


def rank_summary(scores: np.ndarray, models: list[str], alpha: float = 0.05) -> RankSummary:
    """``scores[dataset, model]``, higher is better; every model must have every dataset."""
    scores = np.asarray(scores, dtype=float)
    n, k = scores.shape
    ranked = ranks(scores)
    friedman = float("nan")
    if k >= 3 and n >= 2:
        friedman = float(stats.friedmanchisquare(*scores.T).pvalue)
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2) if k >= 2 else np.nan
    cd = float(q * np.sqrt(k * (k + 1) / (6 * n)))
    return RankSummary(models, [float(r) for r in ranked.mean(axis=0)], n, friedman, cd)
