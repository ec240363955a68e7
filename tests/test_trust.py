"""What bench loads: an exact list of model types, and crafted files refused before they run."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import itertools
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from support.runs import logreg_fold0_run

from bench import artifacts, registry
from bench.cli import main
from bench.data.gtzan import load_gtzan
from bench.errors import BenchError
from bench.evaluate import model_inputs
from bench.features.synthetic import synth_gtzan

QUICK = {
    "mlp": {"epochs": 2},
    "mlp_ref": {"epochs": 2},
    "bagging_mlp": {"n_estimators": 2, "mlp_params": {"epochs": 2}},
    "cnn_ref": {"epochs": 1},
    "cnn": {"epochs": 1},
    "rf": {"n_estimators": 5},
    "extra_trees": {"n_estimators": 5},
    "bagging": {"n_estimators": 3},
    "xgboost": {"n_estimators": 5},
    "lightgbm": {"n_estimators": 5},
    "lightgbm_xt": {"n_estimators": 5},
    "catboost": {"iterations": 5},
    "ensemble": {
        "k": 2,
        "estimator_params": {
            "lightgbm": {"n_estimators": 5},
            "lightgbm_xt": {"n_estimators": 5},
            "catboost": {"iterations": 5},
            "extra_trees": {"n_estimators": 5},
            "rf": {"n_estimators": 5},
            "mlp": {"epochs": 2},
        },
    },
    "hist_gb": {"max_iter": 5, "early_stopping": False},
    "musicnn_probe": {},
    "vgg_probe": {},
    "stack": {"cv": 2, "estimator_params": {"rf": {"n_estimators": 5}}},
    "stack_multimodal": {
        "bag": 2,
        "tabular": ["logreg", "svm"],
        "audio": ["cnn"],
        "estimator_params": {"cnn": {"epochs": 1}},
    },
}
"""Every registered model, cut down to fit in seconds (the types it leaves do not change)."""


@pytest.fixture(scope="module")
def tiny_gtzan(tmp_path_factory: pytest.TempPathFactory):
    root = synth_gtzan(tmp_path_factory.mktemp("tiny") / "gtzan", per_genre=10, duration=3.0)
    return load_gtzan(root)


@pytest.fixture
def probe_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probes leave the same types whatever their embeddings: where the musicnn weights
    were not fetched, a stand-in embedding (a hash of each path) keeps this test exact."""
    from bench.features.pretrained.weights import weight_file

    if all(weight_file(m).is_file() for m in ("MSD_musicnn", "MSD_vgg")):
        return

    def stand_in(self, X) -> np.ndarray:
        digests = [hashlib.sha256(str(p).encode()).digest() for p in X]
        return np.array([np.frombuffer(d, dtype=np.uint8) for d in digests], dtype=float)

    monkeypatch.setattr("bench.models.pretrained.MusicnnProbe.embed", stand_in)


@pytest.mark.slow
def test_allowlist_is_exactly_what_the_registered_models_need(
    tiny_gtzan, tmp_path: Path, probe_embeddings
) -> None:
    needed: set[str] = set()
    specs = [s for s in registry.list_models() if s.family != "test"]
    assert {s.name for s in specs} <= set(QUICK) | {"logreg", "svm"}
    for spec in specs:
        params = {**QUICK.get(spec.name, {}), "random_state": 0}
        if "device" in spec.parameters:
            params["device"] = "cpu"
        X = model_inputs(tiny_gtzan, spec.input_kind)
        model = spec.create(**params).fit(X, tiny_gtzan.labels)
        path = artifacts.save_model(model, tmp_path / f"{spec.name}.skops")
        needed |= set(sio.get_untrusted_types(file=path))
        loaded = artifacts.load_model(path)
        np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-6)
    assert needed == artifacts.TRUSTED_TYPES
    assert not any(t.startswith("builtins.") for t in artifacts.TRUSTED_TYPES)


_ids = itertools.count(1)


def _json(value) -> dict:
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": next(_ids),
    }


def _call(module: str, name: str, *args) -> dict:
    """A skops node that calls ``module.name(*args)`` when the file is loaded."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [a if isinstance(a, dict) else _json(a) for a in args],
            "__id__": next(_ids),
        },
        "__id__": next(_ids),
    }


def _skops_file(path: Path, node: dict) -> Path:
    """A model file whose one entry is ``node``, in skops's own schema layout."""
    key_type = {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"}
    schema = {
        "__class__": "dict",
        "__module__": "builtins",
        "__loader__": "DictNode",
        "content": {"model": node},
        "key_types": {
            "__class__": "list",
            "__module__": "builtins",
            "__loader__": "ListNode",
            "content": [{**key_type, "__id__": next(_ids)}],
            "__id__": next(_ids),
        },
        "__id__": next(_ids),
        "protocol": 2,
        "_skops_version": importlib.metadata.version("skops"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    path.write_bytes(buffer.getvalue())
    return path


def _payloads(marker: Path) -> dict[str, dict]:
    touch = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return {
        "builtins.eval": _call("builtins", "eval", touch),
        "builtins.exec": _call("builtins", "exec", touch),
        "os.system": _call("os", "system", f"touch {marker}"),
        "builtins.__import__": _call("builtins", "__import__", "os"),
        "builtins.getattr": _call(
            "builtins", "getattr", _call("builtins", "__import__", "os"), "system"
        ),
        "operator.attrgetter": _call("operator", "attrgetter", "system"),
        # a function of a package bench uses, but not a type in the list: it writes a file
        "numpy.savetxt": _call("numpy", "savetxt", str(marker), [1.0, 2.0]),
    }


def test_crafted_payloads_really_run_when_everything_is_trusted(tmp_path: Path) -> None:
    """The files below are real attacks: skops told to trust all their types runs them."""
    for name in ("builtins.eval", "os.system", "numpy.savetxt"):
        marker = tmp_path / f"ran-{name}"
        path = _skops_file(tmp_path / f"{name}.skops", _payloads(marker)[name])
        sio.load(path, trusted=sio.get_untrusted_types(file=path))
        assert marker.exists(), name


@pytest.mark.parametrize(
    "target",
    [
        "builtins.eval",
        "builtins.exec",
        "os.system",
        "builtins.__import__",
        "builtins.getattr",
        "operator.attrgetter",
        "numpy.savetxt",
    ],
)
def test_crafted_model_is_refused_and_nothing_runs(tmp_path: Path, target: str) -> None:
    marker = tmp_path / "payload-ran"
    path = _skops_file(tmp_path / artifacts.MODEL_FILE, _payloads(marker)[target])
    with pytest.raises(BenchError) as refused:
        artifacts.load_model(path)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: refusing to load untrusted type(s) ")
    assert target in message
    assert not marker.exists()


def test_predict_refuses_a_crafted_model_logged_to_a_run(tabular_gtzan: Path, capsys) -> None:
    """The attack as reported: a run's model.skops replaced (now in its logged MLflow model),
    then `bench predict` on it."""
    from mlflow.tracking import MlflowClient

    from bench.tracking import resolve_uri

    run = logreg_fold0_run(tabular_gtzan)
    client = MlflowClient(resolve_uri())
    marker = tabular_gtzan / "payload-ran"
    folder = tabular_gtzan / "evil" / "data" / "model"  # the logged model's data folder
    folder.mkdir(parents=True)
    _skops_file(folder / artifacts.MODEL_FILE, _payloads(marker)["builtins.eval"])
    model_id = client.get_run(run.info.run_id).outputs.model_outputs[0].model_id
    client.log_model_artifacts(model_id, str(tabular_gtzan / "evil"))
    wav = tabular_gtzan / "x.wav"
    wav.write_bytes(b"")
    capsys.readouterr()
    assert main(["predict", "--run", run.info.run_id, str(wav)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "refusing to load untrusted type(s) builtins.eval" in err[0]
    assert not marker.exists()


def test_saving_answers_skops_name_checks_from_a_set_and_writes_the_same_model(
    tmp_path: Path,
) -> None:
    """skops asks the zip for its member list once per array; while bench saves, the zip
    answers from a set. The file must load to the same model, and the swap must not outlive
    the save."""
    import skops.io._persist as persist
    from sklearn.ensemble import RandomForestClassifier

    X, y = np.random.default_rng(0).normal(size=(120, 5)), np.arange(120) % 3
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    with artifacts._indexed_zip() as active:
        assert active and persist.ZipFile is artifacts._IndexedZip  # the pinned skops
    assert persist.ZipFile is zipfile.ZipFile
    path = artifacts.save_model(forest, tmp_path / "forest.skops")
    assert persist.ZipFile is zipfile.ZipFile
    with zipfile.ZipFile(path) as written:
        assert len(written.namelist()) > 90  # an array file or more per tree
    np.testing.assert_array_equal(
        artifacts.load_model(path).predict_proba(X), forest.predict_proba(X)
    )
    plain = tmp_path / "plain.skops"
    sio.dump(forest, plain, compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    with zipfile.ZipFile(path) as ours, zipfile.ZipFile(plain) as theirs:
        assert len(ours.namelist()) == len(theirs.namelist())

    with artifacts._IndexedZip(tmp_path / "names.zip", "w") as archive:
        for name in ("a", "b", "a/c"):
            archive.writestr(name, b"x")
            assert name in archive.namelist() and "zz" not in archive.namelist()
        assert archive.namelist() == ["a", "b", "a/c"] == zipfile.ZipFile.namelist(archive)
