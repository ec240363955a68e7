"""Classical tabular baselines and the boosting models: ``xgboost``, ``lightgbm``, ``catboost``
and ``hist_gb``.

The baselines standardise their inputs inside a pipeline, so scaling is always fitted on the
training fold only (one of the original projects fitted its scaler on the test data); trees
need no scaling. ``xgboost``, ``lightgbm`` and ``catboost`` are registered as classes of
:mod:`bench.models.boosting`, imported when the model is first used. Device rule: a booster
whose PyPI wheel trains on CUDA (XGBoost, CatBoost) takes ``device`` and uses the GPU when the
run's device is ``cuda``; LightGBM's wheel has no CUDA build, so it takes no ``device``.
"""

from __future__ import annotations

from typing import Any

from bench.registry import register, register_class


def _scaled(estimator: Any) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), estimator)


def _logreg_space(trial: Any) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}


@register("logreg", family="baseline", search_space=_logreg_space)
def logreg(C: float = 1.0, max_iter: int = 2000, random_state: int | None = 0) -> Any:
    """Multinomial logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression

    return _scaled(LogisticRegression(C=C, max_iter=max_iter, random_state=random_state))


def _svm_space(trial: Any) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("C", 1e-1, 1e3, log=True),
        "gamma": trial.suggest_float("gamma", 1e-4, 1e-1, log=True),
    }


@register("svm", family="baseline", search_space=_svm_space)
def svm(C: float = 10.0, gamma: float | str = "scale", random_state: int | None = 0) -> Any:
    """RBF support-vector machine on standardised features, temperature-scaled probabilities.

    ``SVC(probability=True)`` is deprecated; per-class sigmoid calibration in its place lost
    2 points on real GTZAN (0.722 vs 0.741), multiclass temperature scaling none (0.744).
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    svc = SVC(C=C, gamma=gamma, random_state=random_state)
    return _scaled(CalibratedClassifierCV(svc, method="temperature", ensemble=False))


def _xgb_space(trial: Any) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 1000, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "min_child_weight": trial.suggest_float("min_child_weight", 1e-2, 10, log=True),
    }


register_class(
    "xgboost",
    "bench.models.boosting:XGBoostClassifier",
    family="boosting",
    search_space=_xgb_space,
    description="Gradient-boosted trees (XGBoost hist; CUDA on a GPU; optional early stopping).",
)


def _lightgbm_space(trial: Any) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 1000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 3, 40, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.2, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10, log=True),
        "extra_trees": trial.suggest_categorical("extra_trees", [False, True]),
    }


register_class(
    "lightgbm",
    "bench.models.boosting:LightGBMClassifier",
    family="boosting",
    search_space=_lightgbm_space,
    description="Gradient-boosted trees (LightGBM, leaf-wise; extra_trees=true: random splits).",
)


@register("lightgbm_xt", family="boosting", search_space=_lightgbm_space)
def lightgbm_xt(
    n_estimators: int = 300,
    learning_rate: float = 0.05,
    num_leaves: int = 15,
    min_child_samples: int = 10,
    subsample: float = 0.8,
    colsample_bytree: float = 0.5,
    reg_lambda: float = 0.0,
    extra_trees: bool = True,
    n_jobs: int | None = None,
    random_state: int = 0,
) -> Any:
    """LightGBM with randomised split thresholds (AutoGluon's LightGBMXT): ``lightgbm`` with
    ``extra_trees`` on, a member of its own in ensembles."""
    params = dict(locals())
    from bench.models.boosting import LightGBMClassifier

    return LightGBMClassifier(**params)


def _catboost_space(trial: Any) -> dict[str, Any]:
    return {
        "iterations": trial.suggest_int("iterations", 100, 1000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "depth": trial.suggest_int("depth", 3, 8),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.3, 30, log=True),
    }


register_class(
    "catboost",
    "bench.models.boosting:CatBoostClassifier",
    family="boosting",
    search_space=_catboost_space,
    description="Gradient-boosted symmetric trees (CatBoost, ordered boosting; CUDA on a GPU).",
)


def _hist_gb_space(trial: Any) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 64, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-4, 10, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 50, log=True),
    }


@register("hist_gb", family="boosting", search_space=_hist_gb_space)
def hist_gb(
    learning_rate: float = 0.05,
    max_iter: int = 500,
    max_leaf_nodes: int = 15,
    l2_regularization: float = 0.0,
    min_samples_leaf: int = 20,
    early_stopping: bool = True,
    random_state: int | None = 0,
) -> Any:
    """scikit-learn histogram gradient boosting, early-stopped on a validation slice."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        l2_regularization=l2_regularization,
        min_samples_leaf=min_samples_leaf,
        early_stopping=early_stopping,
        random_state=random_state,
    )
