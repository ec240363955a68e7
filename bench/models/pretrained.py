"""Probes on pretrained music embeddings: ``musicnn_probe`` and ``vgg_probe``.

The field's strongest results on artist-filtered GTZAN come from a representation learned on
a large tagged collection with a simple classifier on top, not from a CNN trained on a few
hundred clips (Pons & Serra 2019 report musicnn (MSD) embeddings + SVM at 77.2%). A probe is
that recipe: each clip's embedding from musicnn or its VGG baseline
(:mod:`bench.features.pretrained`; weights from ``bench weights fetch musicnn``), averaged over
its 3 s patches and cached per (weights, file), then a registered tabular model as the head
(``head = "logreg"``: standardised logistic regression, the default; ``"svm"``, ``"mlp"`` or
any other tabular model, with ``head_params``).

Like the CNNs they take a 1-D array of audio file paths as ``X``, so they serve as ``audio``
members of ``stack_multimodal``, through ``bench predict`` and in the logged pyfunc model. What
they save is the head alone: the network is read from the checked weight files when a
prediction needs embeddings that are not cached, so a saved probe holds no network to trust.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from bench.errors import BenchError


class MusicnnProbe(ClassifierMixin, BaseEstimator):
    """A registered tabular model on musicnn clip embeddings.

    ``weights``: ``MSD_musicnn`` (trained on Million Song Dataset tags, the default) or
    ``MTT_musicnn`` (MagnaTagATune). ``layer``: ``penultimate`` (200 values, the default),
    ``max_pool`` (753) or ``taggram`` (50 tag probabilities). Constructor arguments are stored
    unchanged, so ``clone``, ``get_params`` and bagging work.

    Example::

        probe = MusicnnProbe(head="svm").fit(train_paths, y)
        probe.predict_proba(test_paths)
    """

    def __init__(
        self,
        weights: str = "MSD_musicnn",
        layer: str = "penultimate",
        head: str = "logreg",
        head_params: dict[str, Any] | None = None,
        device: str = "auto",
        cache_dir: str | None = None,
        n_jobs: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.weights = weights
        self.layer = layer
        self.head = head
        self.head_params = head_params
        self.device = device
        self.cache_dir = cache_dir
        self.n_jobs = n_jobs
        self.random_state = random_state

    def embed(self, X: Any) -> np.ndarray:
        """(clips, width) embeddings of the audio paths in ``X`` (cached per file), computed
        on ``n_jobs`` CPU threads (the runner's share of the cores; None: torch's default)."""
        from bench.environment import cpu_threads, resolve_device
        from bench.features.pretrained.embed import clip_embeddings
        from bench.models.cnn import audio_paths

        device = resolve_device(self.device)
        with cpu_threads(self.n_jobs):
            paths = audio_paths(X)
            return clip_embeddings(paths, self.weights, self.layer, device, self.cache_dir)

    def _make_head(self) -> Any:
        from bench.registry import get

        spec = get(self.head)
        if spec.input_kind != "tabular":
            raise BenchError(
                f"{type(self).__name__}: head must be a tabular model; {self.head!r} takes "
                f"{spec.input_kind}"
            )
        params = dict(self.head_params or {})
        spec.check(params)
        from bench.environment import resolve_device

        full = spec.complete(params, self.random_state, resolve_device(self.device))
        if "n_jobs" in spec.parameters and full.get("n_jobs") is None:
            full["n_jobs"] = self.n_jobs
        return spec.create(**full)

    def fit(self, X: Any, y: Any) -> MusicnnProbe:
        head = self._make_head()  # a bad head fails before any embedding is computed
        self.head_ = head.fit(self.embed(X), np.asarray(y))
        self.classes_ = np.asarray(self.head_.classes_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.head_.predict_proba(self.embed(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class VGGProbe(MusicnnProbe):
    """:class:`MusicnnProbe` on the VGG baseline shipped beside musicnn: ``weights``
    ``MSD_vgg`` or ``MTT_vgg``, ``layer`` ``pool5`` (256 values, the input of its tag layer) or
    ``taggram``."""

    def __init__(
        self,
        weights: str = "MSD_vgg",
        layer: str = "pool5",
        head: str = "logreg",
        head_params: dict[str, Any] | None = None,
        device: str = "auto",
        cache_dir: str | None = None,
        n_jobs: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(weights, layer, head, head_params, device, cache_dir, n_jobs, random_state)
