"""Models that misbehave on purpose, registered for runner tests only."""

from __future__ import annotations

import time

from sklearn.linear_model import LogisticRegression

from bench.registry import _REGISTRY, register


class Exploding(LogisticRegression):
    def fit(self, X, y):
        raise RuntimeError("boom: this model always fails")


class Sleepy(LogisticRegression):
    def __init__(self, seconds: float = 30.0, C: float = 1.0):
        super().__init__(C=C, max_iter=500)
        self.seconds = seconds

    def fit(self, X, y):
        time.sleep(self.seconds)
        return super().fit(X, y)


if "boom" not in _REGISTRY:

    @register("boom", family="test")
    def boom() -> Exploding:
        """Always raises in fit."""
        return Exploding()

    @register("sleepy", family="test")
    def sleepy(seconds: float = 30.0) -> Sleepy:
        """Sleeps before fitting a logistic regression."""
        return Sleepy(seconds=seconds)
