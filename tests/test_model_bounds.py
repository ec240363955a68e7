"""Model files made only of trusted types that used to exhaust memory, crash the process or end
in a traceback: each is refused in one line, before skops reads what it would inflate, before
a tree's bad index is followed, before a torch layer is allocated."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from bench import artifacts, registry
from bench.errors import BenchError

X = np.random.default_rng(0).normal(size=(60, 4))
Y = np.repeat(np.arange(3), 20)


def _refused(path: Path, match: str) -> str:
    with pytest.raises(BenchError, match=match) as caught:
        artifacts.load_model(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def _never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if skops is asked to read or build the file at all."""

    def read(*args, **kwargs):
        raise AssertionError("skops read the file")

    monkeypatch.setattr(sio, "get_untrusted_types", read)
    monkeypatch.setattr(sio, "load", read)


def _rewrite(path: Path, schema: dict | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """``path`` with its schema replaced and members added, stored deflated like bench's."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    if schema is not None:
        members["schema.json"] = json.dumps(schema).encode()
    members.update(extra or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _saved(name: str, tmp_path: Path, **params) -> Path:
    model = registry.create(name, random_state=0, **params).fit(X, Y)
    return artifacts.save_model(model, tmp_path / f"{name}.skops")


def test_members_that_inflate_past_the_limits_are_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _saved("logreg", tmp_path)
    bomb = _npy(np.zeros(12_500_000))  # 100 MB of zeros: deflates to about 100 KB
    _rewrite(path, extra={"bomb.npy": bomb})
    assert path.stat().st_size < 1_000_000
    _never_read(monkeypatch)
    message = _refused(path, "over the 200x a model file can compress")
    assert "unpacks to 100,0" in message  # the declared size, read from the zip's directory

    monkeypatch.setenv("BENCH_MAX_MODEL_BYTES", str(10_000_000))
    _refused(path, "over the limit of 10,000,000 .*BENCH_MAX_MODEL_BYTES")


def test_an_array_header_that_declares_more_than_its_bytes_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _saved("logreg", tmp_path)
    header = _npy(np.zeros(1))[:-8].replace(b"(1,)", b"(10000000000000,)")
    _rewrite(path, extra={"huge.npy": header + b"\0" * 8})
    _never_read(monkeypatch)
    _refused(path, r"huge.npy declares shape \(10000000000000,\) \(80,000,000,000,000 bytes\)")


def test_a_schema_nested_thousands_deep_is_refused(tmp_path: Path) -> None:
    path = _saved("logreg", tmp_path)
    schema = zipfile.ZipFile(path).read("schema.json").decode()
    opening = (
        '{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": ['
    )
    deep = opening * 3000 + "]}" * 3000
    _rewrite(
        path,
        extra={
            "schema.json": schema.replace(
                '"content": {', f'"deep": {deep}, "content": {{', 1
            ).encode()
        },
    )
    _refused(path, "nested too deeply|nested .* levels deep")


@pytest.mark.slow
def test_torch_hyper_parameters_that_do_not_match_the_weights_allocate_nothing(
    tmp_path: Path,
) -> None:
    path = _saved("mlp_ref", tmp_path, epochs=1)
    schema = json.loads(zipfile.ZipFile(path).read("schema.json"))
    for size in schema["content"]["content"]["hidden_sizes"]["content"]:
        size["content"] = "20000"  # a 6 KB file that would build 20000x20000 layers
    _rewrite(path, schema)
    _refused(path, "do not have the shapes its parameters imply")
    # in a fresh process: the refusal costs no more memory than importing torch. Its peak is
    # VmHWM, which starts anew at exec (ru_maxrss would carry over the forking test process's)
    script = (
        "import re\nfrom pathlib import Path\nfrom bench import artifacts\n"
        f"try:\n    artifacts.load_model({str(path)!r})\nexcept Exception as e:\n"
        "    print(type(e).__name__)\n"
        "status = Path('/proc/self/status').read_text()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status)[1]) // 1024)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True).stdout
    error, peak_mib = out.split()
    assert error == "BenchError" and int(peak_mib) < 1800, (
        out
    )  # imports ~1 GB; the layers 1.6 GB more


def _tree_file(tmp_path: Path, name: str, **params) -> tuple[Path, object]:
    model = registry.create(name, random_state=0, **params).fit(X, Y)
    return tmp_path / f"{name}.skops", model


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("left_child", 10**6, "left child index outside its"),
        ("right_child", 0, "right child index outside its"),  # a cycle back to the root
        ("feature", 999, "splits on a feature outside its 4"),
    ],
)
def test_forest_trees_with_bad_indices_are_refused_before_predicting(
    tmp_path: Path, field: str, value: int, match: str
) -> None:
    """scikit-learn follows these indices unchecked: predicting with them segfaults."""
    from sklearn.tree._tree import Tree

    path, forest = _tree_file(tmp_path, "rf", n_estimators=2)
    tree = forest.estimators_[1].tree_
    state = tree.__getstate__()
    state["nodes"][field][0] = value
    bad = Tree(tree.n_features, tree.n_classes, tree.n_outputs)
    bad.__setstate__(state)
    forest.estimators_[1].tree_ = bad
    artifacts.save_model(forest, path)
    _refused(path, match)


def test_histogram_boosting_nodes_with_bad_indices_are_refused(tmp_path: Path) -> None:
    path, model = _tree_file(tmp_path, "hist_gb", max_iter=3, early_stopping=False)
    predictor = model._predictors[0][0]
    predictor.nodes["left"][0] = 10**6
    artifacts.save_model(model, path)
    _refused(path, "left child index outside its")
    predictor.nodes["left"][0] = 1
    predictor.nodes["feature_idx"][0] = 50
    artifacts.save_model(model, path)
    _refused(path, "splits on a feature outside its 4")


def test_a_dict_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "dict.skops"
    sio.dump({"classes_": [0, 1], "predict_proba": 1}, path)
    _refused(path, "holds a dict, not a fitted classifier")


def test_garbage_booster_data_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = registry.create("catboost", iterations=3, random_state=0).fit(X, Y)
    model.model_bytes_ = b"not a catboost model"
    _refused(artifacts.save_model(model, tmp_path / "cat.skops"), "cannot build the model")

    import xgboost

    model = registry.create("xgboost", n_estimators=3, random_state=0).fit(X, Y)
    monkeypatch.setattr(
        xgboost.core.Booster, "__getstate__", lambda self: {"handle": bytearray(b"garbage")}
    )
    path = artifacts.save_model(model, tmp_path / "xgb.skops")
    monkeypatch.undo()
    _refused(path, "cannot build the model")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not a readable model card"),
        ("[1, 2]", "not a model card"),
        ('{"model": "x", "classes": "abc", "input_kind": "tabular", "feature_columns": []}',
         "'classes' is missing or not a list"),
        ('{"model": "x", "classes": [], "input_kind": "pickle", "feature_columns": []}',
         "input_kind 'pickle' is not one of"),
    ],
)  # fmt: skip
def test_a_corrupt_model_card_is_one_line(tmp_path: Path, text: str, match: str) -> None:
    card = tmp_path / "model_card.json"
    card.write_text(text)
    with pytest.raises(BenchError, match=match) as caught:
        artifacts.read_card(card)
    assert "\n" not in str(caught.value)
