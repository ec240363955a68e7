"""The model registry: classes registered by import path, imported only when a model is used."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sklearn.base import clone

from bench import registry
from bench.errors import BenchError

# What the factories these classes replaced built when given no parameters (their defaults, plus
# the class's own for what they did not forward): registering the classes must not change them.
OLD_FACTORY_DEFAULTS = {
    "cnn_ref": {
        "seconds": 1.0,
        "offset": 0.0,
        "epochs": 10,
        "batch_size": 128,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "patience": None,
        "validation_fraction": 0.0,
        "device": "auto",
        "random_state": 0,
        "checkpoint_dir": None,
        "cache_dir": None,
        "callbacks": None,
    },
    "cnn": {
        "segment_seconds": 3.0,
        "n_mels": 128,
        "channels": (16, 32, 64, 128),
        "dropout": 0.3,
        "freq_mask": 16,
        "time_mask": 24,
        "n_masks": 1,
        "mixup": 0.0,
        "test_overlap": 0.5,
        "epochs": 60,
        "batch_size": 64,
        "lr": 2e-3,
        "lr_schedule": "cosine",
        "weight_decay": 1e-4,
        "patience": None,
        "validation_fraction": 0.15,
        "device": "auto",
        "random_state": 0,
        "checkpoint_dir": None,
        "cache_dir": None,
        "callbacks": None,
    },
    "xgboost": {
        "n_estimators": 500,
        "max_depth": 4,
        "learning_rate": 0.05,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "min_child_weight": 1.0,
        "early_stopping_rounds": None,
        "validation_fraction": 0.1,
        "device": "cpu",
        "n_jobs": None,
        "random_state": 0,
    },
}
CLASSES = {
    "cnn_ref": "bench.models.cnn.ReferenceCNNClassifier",
    "cnn": "bench.models.cnn.CNNClassifier",
    "xgboost": "bench.models.boosting.XGBoostClassifier",
}


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry, so models registered by a test vanish after it."""
    registry.list_models()  # load the built-in models first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_listing_imports_no_model_class() -> None:
    code = textwrap.dedent(
        """
        import sys
        from bench.registry import list_models
        specs = {s.name: s for s in list_models()}
        print(sorted(specs))
        print([specs[n].description for n in ("cnn_ref", "cnn", "xgboost")])
        heavy = ("torch", "torchaudio", "sklearn", "xgboost", "bench.models.cnn")
        print("HEAVY", [m for m in heavy if m in sys.modules])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    assert "'cnn', 'cnn_ref'" in out and "'hist_gb'" in out and "'xgboost'" in out
    assert "Log-mel CNN on 3 s segments" in out and "Gradient-boosted trees" in out


@pytest.mark.parametrize("name", sorted(OLD_FACTORY_DEFAULTS))
def test_class_models_build_what_their_old_factories_built(name: str) -> None:
    model = registry.create(name)
    assert f"{type(model).__module__}.{type(model).__name__}" == CLASSES[name]
    assert model.get_params(deep=False) == OLD_FACTORY_DEFAULTS[name]
    assert clone(model).get_params(deep=False) == OLD_FACTORY_DEFAULTS[name]


@pytest.mark.parametrize("name", sorted(OLD_FACTORY_DEFAULTS))
def test_a_class_spec_is_its_constructor(name: str) -> None:
    spec = registry.get(name)
    assert isinstance(spec.factory, type)
    assert spec.parameters == tuple(OLD_FACTORY_DEFAULTS[name])
    # the runner's view of a job's factory, and what travels to its child process
    assert tuple(inspect.signature(spec.factory).parameters) == spec.parameters
    assert pickle.loads(pickle.dumps(spec.factory)) is spec.factory
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert all(spec.value({}, p) == v for p, v in OLD_FACTORY_DEFAULTS[name].items())
    hints = spec.type_hints()
    assert hints["random_state"] == (int if name == "xgboost" else int | None)
    assert spec.complete({}, 7, "cpu")["random_state"] == 7


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("cnn", {"epoch": 3}, "model 'cnn' has no parameter 'epoch' (did you mean 'epochs'?)"),
        ("cnn", {"epochs": "ten"}, "model 'cnn': epochs must be an integer, got 'ten'"),
        ("cnn", {"channels": [8, "x"]}, "model 'cnn': channels must be a list, got [8, 'x']"),
        ("cnn_ref", {"lr": True}, "model 'cnn_ref': lr must be a number, got True"),
        ("cnn_ref", {"callbacks": ["log"]}, "callbacks must be a list or none, got ['log']"),
        ("xgboost", {"max_depth": 2.5}, "model 'xgboost': max_depth must be an integer, got 2.5"),
        ("xgboost", {"subsampl": 0.5}, "(did you mean 'subsample'?)"),
    ],
)
def test_class_parameters_are_checked(name: str, params: dict, message: str) -> None:
    with pytest.raises(BenchError) as error:
        registry.get(name).check(params)
    assert message in str(error.value)


def test_class_parameters_that_fit_pass_the_check() -> None:
    registry.get("cnn").check({"channels": [8, 16, 32, 64], "patience": None, "lr": 1})
    registry.get("xgboost").check({"early_stopping_rounds": 20, "validation_fraction": 0.2})


def test_cnn_channels_are_kept_as_given_and_used_as_a_sequence() -> None:
    model = registry.create("cnn", channels=[8, 16, 32, 64], dropout=0.1)
    assert model.get_params()["channels"] == [8, 16, 32, 64]  # as given: clone() needs that
    assert clone(model).get_params() == model.get_params()
    network = model._build_module((1, 128, 129), n_classes=10)
    widths = [m.out_channels for m in network.modules() if type(m).__name__ == "Conv2d"]
    assert widths == [8, 16, 32, 64]


def test_hist_gb_moved_beside_xgboost_unchanged() -> None:
    import optuna

    spec = registry.get("hist_gb")
    assert spec.family == "boosting" and spec.factory.__module__ == "bench.models.tabular"
    params = spec.create().get_params()
    expected = {
        "learning_rate": 0.05,
        "max_iter": 500,
        "max_leaf_nodes": 15,
        "l2_regularization": 0.0,
        "min_samples_leaf": 20,
        "early_stopping": True,
        "random_state": 0,
    }
    assert {k: params[k] for k in expected} == expected
    assert spec.parameters == tuple(expected)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    assert set(spec.search_space(trial)) == {
        "learning_rate",
        "max_leaf_nodes",
        "l2_regularization",
        "min_samples_leaf",
    }


def test_a_class_is_imported_on_first_use_and_hinted_by_its_init(
    scratch_registry, tmp_path: Path, monkeypatch, request
) -> None:
    (tmp_path / "registry_probe.py").write_text(
        textwrap.dedent(
            """
            class Probe:
                label: str  # a class attribute: not a constructor parameter

                def __init__(self, depth: int = 3, rate: float | None = None) -> None:
                    self.depth = depth
                    self.rate = rate
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    request.addfinalizer(lambda: sys.modules.pop("registry_probe", None))
    registry.register_class("probe", "registry_probe:Probe", family="test", description="d")
    assert "probe" in [s.name for s in registry.list_models(family="test")]
    assert "registry_probe" not in sys.modules
    spec = registry.get("probe")
    assert spec.parameters == ("depth", "rate")
    assert "registry_probe" in sys.modules
    assert set(spec.type_hints()) == {"depth", "rate", "return"}
    with pytest.raises(BenchError, match="depth must be an integer"):
        spec.check({"depth": "deep"})
    assert spec.create(rate=0.5).__dict__ == {"depth": 3, "rate": 0.5}


def test_bad_class_registrations_are_refused(scratch_registry) -> None:
    with pytest.raises(ValueError, match="not an import path"):
        registry.register_class("nowhere", "bench.models.boosting", family="test", description="")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_class("cnn", "bench.models.cnn:CNNClassifier", family="x", description="")
    registry.register_class("ghost", "bench.models.boosting:Nope", family="test", description="")
    registry.register_class("plain", "bench.models.cnn:audio_paths", family="test", description="")
    assert {"ghost", "plain"} <= {s.name for s in registry.list_models(family="test")}
    with pytest.raises(ImportError, match="'bench.models.boosting:Nope' names nothing"):
        registry.get("ghost").create()
    with pytest.raises(TypeError, match="is not a class"):
        registry.get("plain").check({})
